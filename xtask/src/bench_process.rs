//! The headline of `cargo xtask bench`: configure and verify as a user starts them, each a child
//! process of this binary (process start to exit, the schema set read from a cache on disk), and,
//! when a configured peer checkout is given, the peer's render + encrypt of its own config.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Median wall times of one case, each a separate process.
pub struct ProcessTimes {
    /// `configure` into an empty directory (render, encrypt, write, verify).
    pub first: Duration,
    /// `configure` again over its own output: nothing changes (verify still runs).
    pub rerun: Duration,
    /// `verify` of the written tree.
    pub verify: Duration,
    /// The first run's output, when a run failed or verify reported errors.
    pub failure: Option<String>,
}

/// Runs `exe configure` (first run and no-change re-run) and `exe verify` on the case in
/// `case_dir` (cluster.yaml, nodes.yaml and key files), `runs` times each; medians.
pub fn time_case(
    exe: &Path,
    case_dir: &Path,
    templates: &Path,
    schemas: &crate::bench::Schemas,
    runs: usize,
) -> Result<ProcessTimes> {
    let (mut first, mut rerun, mut verify) = (Vec::new(), Vec::new(), Vec::new());
    let mut failure = None;
    for run in 0..runs {
        let out = case_dir.join(format!("proc{run}"));
        let _ = std::fs::remove_dir_all(&out);
        let configure = |out: &Path| {
            let mut cmd = Command::new(exe);
            cmd.arg("configure")
                .arg("--config")
                .arg(case_dir.join("cluster.yaml"))
                .arg("--nodes")
                .arg(case_dir.join("nodes.yaml"))
                .arg("--out")
                .arg(out)
                .arg("--templates")
                .arg(templates);
            schemas.apply(&mut cmd);
            cmd
        };
        let (t, f) = timed(configure(&out))?;
        first.push(t);
        failure = failure.or(f);
        let (t, f) = timed(configure(&out))?;
        rerun.push(t);
        failure = failure.or(f);
        let mut cmd = Command::new(exe);
        cmd.arg("verify").arg(&out);
        schemas.apply(&mut cmd);
        let (t, f) = timed(cmd)?;
        verify.push(t);
        failure = failure.or(f);
        let _ = std::fs::remove_dir_all(&out);
    }
    Ok(ProcessTimes {
        first: median(&mut first),
        rerun: median(&mut rerun),
        verify: median(&mut verify),
        failure,
    })
}

/// Wall time of `cmd` from spawn to exit; its output only if it failed.
fn timed(mut cmd: Command) -> Result<(Duration, Option<String>)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let elapsed = started.elapsed();
    let failure = (!out.status.success()).then(|| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = text.lines().rev().take(12).collect();
        format!(
            "{:?} exited with {}:\n{}",
            cmd.get_args().next().unwrap_or_default(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    });
    Ok((elapsed, failure))
}

pub fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// The peer's render + encrypt times (medians).
pub struct PeerTimes {
    /// As its `configure` task runs them: `makejinja`, then for every rendered `*.sops.*` file
    /// `sops filestatus | jq .encrypted` and, if it is not encrypted, `sops --encrypt
    /// --in-place`. `None` when `jq` is not installed.
    pub as_task: Option<Duration>,
    /// `makejinja`, then `sops --encrypt --in-place` on every file, without the per-file check:
    /// the fastest the peer's two steps could be.
    pub encrypt_only: Duration,
}

/// The peer's render + encrypt in `dir`, a configured cluster-template checkout (its
/// `makejinja.toml`, `cluster.yaml`, `nodes.yaml`, and `age.key` for sops), both ways of
/// [`PeerTimes`]. The task's own start-up and its other steps (cue, kubeconform, talhelper) are
/// not timed. `None` when `makejinja` or `sops` is not installed. Median of `runs`.
pub fn time_peer(dir: &Path, runs: usize) -> Result<Option<PeerTimes>> {
    let available = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !available("makejinja") || !available("sops") {
        return Ok(None);
    }
    if !dir.join("makejinja.toml").is_file() {
        bail!(
            "{}: not a cluster-template checkout (no makejinja.toml)",
            dir.display()
        );
    }
    let encrypt_only = peer_runs(dir, runs, false)?;
    let as_task = if available("jq") {
        Some(peer_runs(dir, runs, true)?)
    } else {
        None
    };
    Ok(Some(PeerTimes {
        as_task,
        encrypt_only,
    }))
}

/// The check the peer's `encrypt-secrets` task runs on each file before encrypting it.
const PEER_ENCRYPT_IF_PLAIN: &str = r#"if [ "$(sops filestatus "$1" | jq ".encrypted")" = "false" ]; then sops --encrypt --in-place "$1"; fi"#;

fn peer_runs(dir: &Path, runs: usize, as_task: bool) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        // makejinja lists every file it renders; only its errors are shown.
        let out = Command::new("makejinja")
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .context("cannot run makejinja")?;
        if !out.status.success() {
            bail!(
                "makejinja failed in {} ({}):\n{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut secrets = Vec::new();
        for top in ["bootstrap", "kubernetes", "talos"] {
            collect_sops(&dir.join(top), &mut secrets);
        }
        for file in &secrets {
            let mut cmd = if as_task {
                let mut c = Command::new("sh");
                c.args(["-c", PEER_ENCRYPT_IF_PLAIN, "sh"]).arg(file);
                c
            } else {
                let mut c = Command::new("sops");
                c.args(["--encrypt", "--in-place"]).arg(file);
                c
            };
            let status = cmd
                .current_dir(dir)
                .env("SOPS_AGE_KEY_FILE", dir.join("age.key"))
                .stdin(Stdio::null())
                .output()
                .context("cannot run sops")?;
            if !status.status.success() {
                bail!(
                    "sops failed on {} ({}):\n{}",
                    file.display(),
                    status.status,
                    String::from_utf8_lossy(&status.stderr)
                );
            }
        }
        times.push(started.elapsed());
    }
    Ok(median(&mut times))
}

fn collect_sops(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => collect_sops(&path, out),
            Ok(t) if t.is_file() && e.file_name().to_string_lossy().contains(".sops.") => {
                out.push(path)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_middle_run() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(30), ms(10), ms(20)]), ms(20));
        assert_eq!(median(&mut [ms(40), ms(10)]), ms(40));
        assert_eq!(median(&mut []), Duration::ZERO);
    }
}
