//! Rendering the e2e configuration the way a user would (`cargo xtask init`, `configure`).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

/// Fake Cloudflare tunnel credentials: the tunnel's template needs the file, the tunnel itself
/// never runs in the e2e cluster (its app is suspended).
const FAKE_TUNNEL: &str = "{\"AccountTag\":\"e2e-fake-account\",\"TunnelSecret\":\"ZTJlLWZha2UtdHVubmVsLXNlY3JldA==\",\"TunnelID\":\"00000000-0000-4000-8000-00000000e2e0\"}\n";

/// Make `dir` a throwaway repository for the e2e render: copies of `e2e/cluster.yaml` and
/// `e2e/nodes.yaml`, and fake tunnel credentials (mode 0600). The keys come from
/// `cargo xtask init` (see [`render_commands`]): fresh for every run, never the user's.
pub fn prepare_render_dir(workspace: &Path, dir: &Path) -> anyhow::Result<()> {
    create_private_dir(dir)?;
    for name in ["cluster.yaml", "nodes.yaml"] {
        let from = workspace.join("e2e").join(name);
        std::fs::copy(&from, dir.join(name))
            .with_context(|| format!("cannot copy {} to {}", from.display(), dir.display()))?;
    }
    write_private(&dir.join("cloudflare-tunnel.json"), FAKE_TUNNEL.as_bytes())
}

/// The commands (run from the workspace root) that render the e2e configuration in `dir`, as a
/// user would: `cargo xtask init` creates a new age key, push token (and deploy key) there,
/// keeping the copied configs, then `cargo xtask configure` reads the keys from the directory
/// of its `--config` and writes the tree, encrypted with that age key, into `--out`. The
/// rendered tree and its `age.key` end up side by side in `dir`, the layout `--rendered DIR`
/// takes; Flux gets the same age key to decrypt.
pub fn render_commands(dir: &Path) -> Vec<Vec<String>> {
    let path = |name: &str| dir.join(name).display().to_string();
    let xtask = |args: &[String]| {
        ["cargo", "xtask"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
    };
    let dir = dir.display().to_string();
    vec![
        xtask(&["init".into(), "--dir".into(), dir.clone()]),
        xtask(&[
            "configure".into(),
            "--config".into(),
            path("cluster.yaml"),
            "--nodes".into(),
            path("nodes.yaml"),
            "--out".into(),
            dir,
        ]),
    ]
}

pub(super) fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Render e2e/cluster.yaml into `dir` (see [`render_commands`]).
pub(super) fn render(workspace: &Path, dir: &Path) -> anyhow::Result<()> {
    prepare_render_dir(workspace, dir)?;
    for command in render_commands(dir) {
        println!("==> render the e2e config: {}", command.join(" "));
        let status = std::process::Command::new(&command[0])
            .args(&command[1..])
            .current_dir(workspace)
            .status()
            .with_context(|| format!("cannot run {}", command[0]))?;
        if !status.success() {
            bail!(
                "`{}` failed ({status}, see above); pass --rendered DIR to use a tree rendered elsewhere",
                command.join(" ")
            );
        }
    }
    Ok(())
}
