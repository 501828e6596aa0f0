//! The tool manifest (`tools.toml` at the repository root) and the preflight that reads it.
//!
//! The manifest is compiled in (`include_str!`), so the pins the preflight reports are exactly
//! the ones in the checkout that built this binary; a Renovate bump of `tools.toml` rebuilds
//! xtask on the next `cargo xtask`. Tools are looked up on an explicit `PATH` (the tests pass a
//! fake one) and never run except for their `--version`-style query.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The manifest's text, as committed.
pub const MANIFEST: &str = include_str!("../../../tools.toml");
/// Its path, for messages.
pub const MANIFEST_PATH: &str = "tools.toml";

/// One pinned tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub name: String,
    pub version: String,
    /// 1-based line in the manifest.
    pub line: usize,
}

/// Parses the manifest: `[tools]` followed by `name = "version"` lines; `#` comments and blank
/// lines anywhere. Every problem is reported (`tools.toml:LINE:COL: message`).
pub fn parse(text: &str) -> Result<Vec<Pin>, Vec<String>> {
    let mut pins: Vec<Pin> = Vec::new();
    let mut errors = Vec::new();
    let mut in_tools = false;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let col = raw.len() - raw.trim_start().len() + 1;
        if line.starts_with('[') {
            in_tools = line == "[tools]";
            if !in_tools {
                errors.push(format!(
                    "{MANIFEST_PATH}:{line_no}:{col}: unknown section {line}\n  help: the manifest has one section, [tools]"
                ));
            }
            continue;
        }
        if !in_tools {
            errors.push(format!(
                "{MANIFEST_PATH}:{line_no}:{col}: `{line}` is outside the [tools] section\n  help: put every tool under [tools]"
            ));
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            errors.push(format!(
                "{MANIFEST_PATH}:{line_no}:{col}: expected `name = \"version\"`\n  help: e.g. talosctl = \"v1.12.6\""
            ));
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        let version = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .filter(|v| !v.is_empty() && !v.contains('"'));
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        match (name_ok, version) {
            (false, _) => errors.push(format!(
                "{MANIFEST_PATH}:{line_no}:{col}: `{name}` is not a tool name\n  help: use the executable's name (letters, digits, - and _)"
            )),
            (true, None) => errors.push(format!(
                "{MANIFEST_PATH}:{line_no}:{col}: the version of {name} must be a non-empty quoted string\n  help: e.g. {name} = \"v1.2.3\""
            )),
            (true, Some(_)) if pins.iter().any(|p| p.name == name) => errors.push(format!(
                "{MANIFEST_PATH}:{line_no}:{col}: {name} is pinned twice\n  help: keep one line per tool"
            )),
            (true, Some(v)) => pins.push(Pin {
                name: name.to_owned(),
                version: v.to_owned(),
                line: line_no,
            }),
        }
    }
    if errors.is_empty() {
        Ok(pins)
    } else {
        Err(errors)
    }
}

fn strip_comment(line: &str) -> &str {
    // No tool name or version contains `#`; a `#` inside quotes is a parse error later anyway.
    line.split_once('#').map_or(line, |(before, _)| before)
}

/// The compiled-in manifest, parsed. A broken manifest is a bug of the checkout (a test parses
/// the committed one), reported as an error rather than a panic.
pub fn pins() -> anyhow::Result<Vec<Pin>> {
    parse(MANIFEST).map_err(|errors| anyhow::anyhow!("{}", errors.join("\n")))
}

/// What the preflight knows about each tool besides its pin.
pub struct ToolInfo {
    pub name: &'static str,
    /// Arguments that print the version (and need no cluster).
    pub version_args: &'static [&'static str],
    pub how_to_get: &'static str,
}

/// Every tool the cluster steps may run. A test checks that this list and `tools.toml` name the
/// same tools.
pub const KNOWN: &[ToolInfo] = &[
    ToolInfo {
        name: "talhelper",
        version_args: &["--version"],
        how_to_get: "https://budimanjojo.github.io/talhelper/latest/installation/",
    },
    ToolInfo {
        name: "talosctl",
        version_args: &["version", "--client", "--short"],
        how_to_get: "https://www.talos.dev/latest/talos-guides/install/talosctl/",
    },
    ToolInfo {
        name: "kubectl",
        version_args: &["version", "--client"],
        how_to_get: "https://kubernetes.io/docs/tasks/tools/",
    },
    ToolInfo {
        name: "helmfile",
        version_args: &["--version"],
        how_to_get: "https://helmfile.readthedocs.io/en/latest/#installation",
    },
    ToolInfo {
        name: "helm",
        version_args: &["version", "--short"],
        how_to_get: "https://helm.sh/docs/intro/install/",
    },
];

/// Find an executable file called `name` on `path` (a `PATH`-style list).
pub fn find_in_path(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// What the preflight found for one tool.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    Missing,
    /// Found; its version matches the pin.
    Ok(PathBuf),
    /// Found, but it reports another version.
    Mismatch(PathBuf, String),
    /// Found, but its version could not be read (it failed, hung or printed none).
    Unknown(PathBuf, String),
}

/// The preflight's verdict on every tool `needed`.
pub struct Preflight {
    pub rows: Vec<(Pin, Found)>,
}

impl Preflight {
    pub fn missing(&self) -> usize {
        self.rows
            .iter()
            .filter(|(_, f)| *f == Found::Missing)
            .count()
    }

    /// The report for people: one line per tool; help under each missing one.
    pub fn report(&self, command: &str) -> String {
        let mut out = String::new();
        let missing = self.missing();
        if missing > 0 {
            let _ = writeln!(
                out,
                "{command}: preflight: {missing} of {} tools missing; nothing was run",
                self.rows.len()
            );
        } else {
            let _ = writeln!(out, "{command}: preflight:");
        }
        for (pin, found) in &self.rows {
            let how = KNOWN
                .iter()
                .find(|k| k.name == pin.name)
                .map_or("", |k| k.how_to_get);
            let pinned = format!("{} (pinned in {MANIFEST_PATH}:{})", pin.version, pin.line);
            let _ = match found {
                Found::Ok(path) => writeln!(
                    out,
                    "  [ok  ] {} {} ({})",
                    pin.name,
                    pin.version,
                    path.display()
                ),
                Found::Missing => writeln!(
                    out,
                    "  [MISS] {}: not found on PATH; needs {pinned}\n         help: install {} {} from {how}",
                    pin.name, pin.name, pin.version
                ),
                Found::Mismatch(path, seen) => writeln!(
                    out,
                    "  [WARN] {} ({}) reports {seen}, but {MANIFEST_PATH} pins {pinned}\n         help: the commands may still work; install {} {} to run what was tested",
                    pin.name,
                    path.display(),
                    pin.name,
                    pin.version
                ),
                Found::Unknown(path, why) => writeln!(
                    out,
                    "  [WARN] {} ({}): cannot read its version ({why}); {MANIFEST_PATH} pins {pinned}",
                    pin.name,
                    path.display()
                ),
            };
        }
        out
    }
}

/// Check each of `needed` (tool names) on `path`. A name missing from the manifest is a bug and
/// an error.
pub fn preflight(needed: &[&str], path: &OsStr) -> anyhow::Result<Preflight> {
    let pins = pins()?;
    let mut rows = Vec::new();
    for name in needed {
        let pin = pins
            .iter()
            .find(|p| p.name == *name)
            .ok_or_else(|| anyhow::anyhow!("{MANIFEST_PATH} does not pin {name} (a bug)"))?;
        let found = match find_in_path(name, path) {
            None => Found::Missing,
            Some(exe) => check_version(&exe, pin, path),
        };
        rows.push((pin.clone(), found));
    }
    Ok(Preflight { rows })
}

/// Run the tool's version query (at most 10 s) and compare with the pin.
fn check_version(exe: &Path, pin: &Pin, path: &OsStr) -> Found {
    let args = KNOWN
        .iter()
        .find(|k| k.name == pin.name)
        .map_or(&["--version"][..], |k| k.version_args);
    let output = match run_bounded(exe, args, path, Duration::from_secs(10)) {
        Ok(text) => text,
        Err(why) => return Found::Unknown(exe.to_owned(), why),
    };
    let want = pin.version.trim_start_matches('v');
    let versions = versions_in(&output);
    if versions.iter().any(|v| v == want) {
        return Found::Ok(exe.to_owned());
    }
    match versions.first() {
        Some(seen) => Found::Mismatch(exe.to_owned(), format!("v{seen}")),
        None => Found::Unknown(exe.to_owned(), "no version in its output".to_owned()),
    }
}

/// Every `X.Y.Z` in `text` (a leading `v` dropped; a `+build` or `-pre` suffix cut off).
pub fn versions_in(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .map(|w| w.trim_start_matches('v'))
        .filter(|w| {
            let parts: Vec<&str> = w.split('.').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_owned)
        .collect()
}

/// Runs `exe args` with `PATH=path`, returns stdout+stderr (first 64 KiB), or why not.
fn run_bounded(exe: &Path, args: &[&str], path: &OsStr, limit: Duration) -> Result<String, String> {
    use std::io::Read;
    let mut child = Command::new(exe)
        .args(args)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{}` did not finish in {}s",
                    args.join(" "),
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let mut text = String::new();
    let mut buf = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.by_ref().take(64 << 10).read_to_end(&mut buf);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.by_ref().take(64 << 10).read_to_end(&mut buf);
    }
    text.push_str(&String::from_utf8_lossy(&buf));
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_manifest_parses_and_names_exactly_the_known_tools() {
        let pins = pins().unwrap();
        let mut in_manifest: Vec<&str> = pins.iter().map(|p| p.name.as_str()).collect();
        let mut known: Vec<&str> = KNOWN.iter().map(|k| k.name).collect();
        in_manifest.sort_unstable();
        known.sort_unstable();
        assert_eq!(in_manifest, known);
        // Each pin has its Renovate comment on the line above.
        let lines: Vec<&str> = MANIFEST.lines().collect();
        for pin in &pins {
            assert!(
                lines[pin.line - 2].starts_with("# renovate: datasource="),
                "{} has no renovate comment above it",
                pin.name
            );
        }
    }

    #[test]
    fn reports_every_manifest_error_with_its_line() {
        let errors = parse("x = \"1\"\n[tools]\nkubectl = v1\nkubectl = \"v1\"\nkubectl = \"v2\"\nbad name = \"1\"\n[other]\n").unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].starts_with("tools.toml:1:1: `x = \"1\"` is outside"));
        assert!(errors[1].starts_with("tools.toml:3:1: the version of kubectl"));
        assert!(errors[2].starts_with("tools.toml:5:1: kubectl is pinned twice"));
        assert!(errors[3].starts_with("tools.toml:6:1: `bad name` is not a tool name"));
        assert!(errors[4].starts_with("tools.toml:7:1: unknown section [other]"));
    }

    #[test]
    fn finds_versions_in_real_output_shapes() {
        assert_eq!(
            versions_in("Client Version: v1.35.4\nKustomize Version: v5.7.1"),
            ["1.35.4", "5.7.1"]
        );
        assert_eq!(versions_in("v4.1.4+g05fa379"), ["4.1.4"]);
        assert_eq!(versions_in("helmfile version 1.4.4"), ["1.4.4"]);
        assert_eq!(versions_in("Client:\n\tTag: v1.12.6"), ["1.12.6"]);
        assert!(versions_in("1.2 and 1.2.3.4 and v1.x.3").is_empty());
    }
}
