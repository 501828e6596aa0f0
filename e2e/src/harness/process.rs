//! Running programs: commands, their output, `kubectl apply`.

use std::io::Write;
use std::process::Stdio;

use anyhow::{Context, bail};
use serde_json::Value;

pub(super) fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

pub(super) async fn run_command(
    program: &str,
    args: &[String],
    env: &[(String, String)],
    stdin: Option<Vec<u8>>,
) -> anyhow::Result<()> {
    let mut command = tokio::process::Command::new(program);
    command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        pipe.write_all(&data).await?;
        drop(pipe);
    }
    let status = child.wait().await?;
    if !status.success() {
        bail!("`{program} {}` exited with {status}", args.join(" "));
    }
    Ok(())
}

pub(super) async fn command_output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub(super) async fn kubectl_apply(object: &Value) -> anyhow::Result<()> {
    let mut data = Vec::new();
    writeln!(data, "{object}")?;
    run_command(
        "kubectl",
        &strings(&["apply", "--server-side", "--force-conflicts", "-f", "-"]),
        &[],
        Some(data),
    )
    .await
}
