//! Are the tools the e2e run needs here, and does the container engine answer?
//!
//! Looks executables up on an explicit `PATH` (tests pass a fake one) and runs one probe per
//! tool. Nothing is created: a missing piece is reported with how to get it, and the run stops
//! before touching anything.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One tool the run needs.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub purpose: &'static str,
    /// Arguments of a command that succeeds only if the tool really works.
    pub probe: &'static [&'static str],
    pub how_to_get: &'static str,
}

pub const TOOLS: &[Tool] = &[
    Tool {
        name: "docker",
        purpose: "container engine for kind and the mock upstreams",
        probe: &["info", "--format", "{{.ServerVersion}}"],
        how_to_get: "install Docker Engine and start it (https://docs.docker.com/engine/install/); \
                     GitHub's ubuntu-latest runners have it running",
    },
    Tool {
        name: "kind",
        purpose: "the throwaway Kubernetes cluster",
        probe: &["version"],
        how_to_get: "https://kind.sigs.k8s.io/docs/user/quick-start/#installation \
                     (the e2e workflow installs the pinned release)",
    },
    Tool {
        name: "kubectl",
        purpose: "applying manifests and patching the cluster",
        probe: &["version", "--client"],
        how_to_get: "https://kubernetes.io/docs/tasks/tools/",
    },
    Tool {
        name: "helm",
        purpose: "installing Envoy Gateway from the rendered HelmRelease values, as the bootstrap helmfile does",
        probe: &["version", "--short"],
        how_to_get: "https://helm.sh/docs/intro/install/ (the e2e workflow installs the pinned release)",
    },
];

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Ready(PathBuf),
    Missing,
    /// Found, but the probe failed (e.g. docker CLI without an engine).
    Broken(PathBuf, String),
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub tool: Tool,
    pub status: Status,
}

impl Finding {
    pub fn ok(&self) -> bool {
        matches!(self.status, Status::Ready(_))
    }
}

/// Find an executable file called `name` on `path` (a `PATH`-style list).
pub fn find_in_path(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Check every tool in `tools` on `path`; probes run with that `PATH`.
pub fn check(tools: &[Tool], path: &OsStr) -> Vec<Finding> {
    tools
        .iter()
        .map(|tool| {
            let status = match find_in_path(tool.name, path) {
                None => Status::Missing,
                Some(exe) => match Command::new(&exe)
                    .args(tool.probe)
                    .env("PATH", path)
                    .output()
                {
                    Ok(out) if out.status.success() => Status::Ready(exe),
                    Ok(out) => {
                        let stderr = String::from_utf8_lossy(&out.stderr);
                        let stdout = String::from_utf8_lossy(&out.stdout);
                        let first = stderr
                            .lines()
                            .chain(stdout.lines())
                            .find(|l| !l.trim().is_empty())
                            .unwrap_or("");
                        Status::Broken(
                            exe,
                            format!(
                                "`{} {}` failed: {}",
                                tool.name,
                                tool.probe.join(" "),
                                first.trim()
                            ),
                        )
                    }
                    Err(err) => Status::Broken(exe, err.to_string()),
                },
            };
            Finding {
                tool: *tool,
                status,
            }
        })
        .collect()
}

/// The report for people; `None` when everything is ready.
pub fn problems(findings: &[Finding]) -> Option<String> {
    if findings.iter().all(Finding::ok) {
        return None;
    }
    let mut out = String::from("e2e preflight: cannot run, nothing was created\n");
    for finding in findings {
        let tool = finding.tool;
        match &finding.status {
            Status::Ready(path) => {
                out.push_str(&format!("  [ok  ] {}: {}\n", tool.name, path.display()))
            }
            Status::Missing => out.push_str(&format!(
                "  [MISS] {}: not found on PATH ({})\n         get it: {}\n",
                tool.name, tool.purpose, tool.how_to_get
            )),
            Status::Broken(path, why) => out.push_str(&format!(
                "  [FAIL] {} ({}): {why}\n         fix: {}\n",
                tool.name,
                path.display(),
                tool.how_to_get
            )),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn reports_missing_and_broken_tools() {
        let dir = tempfile::tempdir().unwrap();
        // Like this machine: a docker CLI whose engine is not there.
        script(
            dir.path(),
            "docker",
            "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2; exit 1",
        );
        script(dir.path(), "kubectl", "echo v1.34.1");
        // Present but not executable: does not count.
        std::fs::write(dir.path().join("helm"), "").unwrap();
        let findings = check(TOOLS, dir.path().as_os_str());
        let statuses: Vec<(&str, &str)> = findings
            .iter()
            .map(|f| {
                let s = match f.status {
                    Status::Ready(_) => "ready",
                    Status::Missing => "missing",
                    Status::Broken(..) => "broken",
                };
                (f.tool.name, s)
            })
            .collect();
        assert_eq!(
            statuses,
            vec![
                ("docker", "broken"),
                ("kind", "missing"),
                ("kubectl", "ready"),
                ("helm", "missing")
            ]
        );
        let text = problems(&findings).unwrap();
        assert!(
            text.contains("Cannot connect to the Docker daemon"),
            "{text}"
        );
        assert!(text.contains("[MISS] kind: not found on PATH"), "{text}");
        assert!(
            text.contains("get it: https://helm.sh/docs/intro/install/"),
            "{text}"
        );
        assert!(text.contains("[ok  ] kubectl"), "{text}");
    }

    #[test]
    fn all_ready() {
        let dir = tempfile::tempdir().unwrap();
        for tool in TOOLS {
            script(dir.path(), tool.name, "exit 0");
        }
        let findings = check(TOOLS, dir.path().as_os_str());
        assert!(problems(&findings).is_none());
    }
}
