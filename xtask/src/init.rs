//! `cargo xtask init`: the files a new cluster repository needs before the first `configure`.
//!
//! Idempotent and existence-guarded: every file is created only when absent (`O_EXCL`), nothing
//! is ever moved, overwritten or deleted, and a second run reports everything as kept.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

use crate::configure::crypto;
use crate::util;

pub const HELP: &str = "\
cargo xtask init [--dir DIR]

Creates, in DIR (default: the repository root, found from any subdirectory), each of these
files that does not exist yet — never overwriting, moving or deleting anything:

  cluster.yaml, nodes.yaml     copies of cluster.sample.yaml and nodes.sample.yaml
  age.key                      a new age key (mode 0600); keep it safe, it opens every secret
  github-deploy.key(.pub)      an ed25519 deploy key pair (mode 0600), made with ssh-keygen
  github-push-token.txt        16 random bytes as hex (mode 0600), the push webhook token
  .sops.yaml                   the sops creation rules for age.key, rendered from templates/

cloudflare-tunnel.json is yours to create: `cloudflared tunnel login`, then
`cloudflared tunnel create --credentials-file cloudflare-tunnel.json kubernetes`.

Options:
  --dir DIR   where to create the files (default: the repository root; a directory below
              the root is refused)
";

pub fn run(args: &mut lexopt::Parser) -> Result<ExitCode> {
    let mut dir: Option<PathBuf> = None;
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("dir") => dir = Some(args.value()?.into()),
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(util::unexpected(&other, HELP)),
        }
    }
    let root = util::project_root();
    let dir = match target_dir(dir) {
        Ok(dir) => dir,
        Err(why) => {
            eprintln!("{why}");
            return Ok(ExitCode::from(2));
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut failed = false;
    let mut report = |name: &str, outcome: Result<Outcome>| match outcome {
        Ok(o) => eprintln!("{name:<24} {}", o.describe()),
        Err(e) => {
            failed = true;
            eprintln!("{name:<24} failed: {e:#}");
        }
    };

    for (target, sample) in [
        ("cluster.yaml", "cluster.sample.yaml"),
        ("nodes.yaml", "nodes.sample.yaml"),
    ] {
        report(
            target,
            copy_sample(&root.join(sample), &dir.join(target), sample),
        );
    }
    let age_key = dir.join(render::AGE_KEY_FILE);
    report(
        render::AGE_KEY_FILE,
        if age_key.exists() {
            Ok(Outcome::Kept)
        } else {
            crypto::new_age_key_file(&age_key)
                .map(|()| Outcome::Created("mode 0600; back it up, it opens every secret".into()))
        },
    );
    report(
        render::DEPLOY_KEY_FILE,
        deploy_key(&dir.join(render::DEPLOY_KEY_FILE)),
    );
    report(
        render::PUSH_TOKEN_FILE,
        push_token(&dir.join(render::PUSH_TOKEN_FILE)),
    );
    report(".sops.yaml", sops_config(&root.join("templates"), &dir));
    let tunnel = dir.join(render::TUNNEL_FILE);
    if tunnel.exists() {
        report(render::TUNNEL_FILE, Ok(Outcome::Kept));
    } else {
        eprintln!(
            "{:<24} missing: create it with `cloudflared tunnel login` and `cloudflared tunnel create --credentials-file {} kubernetes`",
            render::TUNNEL_FILE,
            tunnel.display()
        );
    }
    if failed {
        return Ok(ExitCode::from(2));
    }
    eprintln!(
        "next: fill in cluster.yaml and nodes.yaml (see docs/configuration.md), then run `cargo xtask configure`"
    );
    Ok(ExitCode::SUCCESS)
}

/// Where init creates its files: the repository root, wherever in the repository it is run
/// from. A second `age.key`, deploy key and push token in a subdirectory would be a second set of
/// secrets nobody uses (and, before `.gitignore` matched them at any depth, one `git add -A` from
/// being committed), so init refuses a directory below a repository root, and refuses to guess
/// outside any repository unless `--dir` says where.
fn target_dir(dir: Option<PathBuf>) -> Result<PathBuf, String> {
    let Some(dir) = dir else {
        return util::repo_root().ok_or_else(|| {
            "init: not inside a repository made from this template (no Cargo.toml with xtask/ here or above)\n  help: run it from the repository (any subdirectory will do), or pass --dir DIR".to_owned()
        });
    };
    let absolute = std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let below_root = absolute.ancestors().skip(1).find(|a| util::is_repo_root(a));
    match below_root {
        Some(root) if !util::is_repo_root(&absolute) => Err(format!(
            "init: {} is inside the repository at {}, not its root; the key files and configs belong at the root\n  help: run `cargo xtask init` without --dir (from anywhere in the repository)",
            dir.display(),
            root.display()
        )),
        _ => Ok(dir),
    }
}

enum Outcome {
    Created(String),
    Kept,
    Skipped(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Created(how) if how.is_empty() => "created".to_owned(),
            Outcome::Created(how) => format!("created ({how})"),
            Outcome::Kept => "exists, kept".to_owned(),
            Outcome::Skipped(why) => format!("skipped: {why}"),
        }
    }
}

fn copy_sample(sample: &Path, target: &Path, name: &str) -> Result<Outcome> {
    if target.exists() {
        return Ok(Outcome::Kept);
    }
    let bytes =
        std::fs::read(sample).with_context(|| format!("cannot read {}", sample.display()))?;
    match create_new(target, &bytes, false) {
        Ok(()) => Ok(Outcome::Created(format!(
            "from {name}; fill in the REQUIRED keys"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Outcome::Kept),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", target.display())),
    }
}

/// An ed25519 key pair as `ssh-keygen -t ed25519 -C deploy-key -q -N ""` writes it. The key is
/// generated by OpenSSH's own `ssh-keygen` (no key code of ours) into a private temporary
/// directory, then moved into place only if the target still does not exist.
fn deploy_key(path: &Path) -> Result<Outcome> {
    let public = PathBuf::from(format!("{}.pub", path.display()));
    if path.exists() {
        return Ok(Outcome::Kept);
    }
    if Command::new("ssh-keygen").arg("-?").output().is_err() {
        return Ok(Outcome::Skipped(
            "ssh-keygen not found (install OpenSSH and run init again; only private repositories need the deploy key)".into(),
        ));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    sweep_staging(dir);
    let staging = dir.join(format!(".init-{}", std::process::id()));
    create_private_dir(&staging)?;
    let result = (|| -> Result<Outcome> {
        let key = staging.join("key");
        let out = Command::new("ssh-keygen")
            .args(["-t", "ed25519", "-C", "deploy-key", "-q", "-N", ""])
            .arg("-f")
            .arg(&key)
            .output()
            .context("cannot run ssh-keygen")?;
        if !out.status.success() {
            bail!(
                "ssh-keygen failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let private = std::fs::read(&key)?;
        let public_text = std::fs::read(staging.join("key.pub"))?;
        match create_new(path, &private, true) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Outcome::Kept),
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
        if !public.exists() {
            create_new(&public, &public_text, false)
                .with_context(|| format!("cannot create {}", public.display()))?;
        }
        Ok(Outcome::Created(format!(
            "ed25519 via ssh-keygen, mode 0600; add {} as a deploy key of your repository",
            public.display()
        )))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Removes the staging folders of earlier `init` runs that were killed while `ssh-keygen` ran:
/// each may hold an unencrypted private key (`key`). Only real folders named `.init-<digits>`
/// holding nothing but `key` and `key.pub` are removed; a symlink or anything else is left.
fn sweep_staging(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name
            .strip_prefix(".init-")
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if !ours || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let staging = e.path();
        let Ok(inner) = std::fs::read_dir(&staging) else {
            continue;
        };
        let inner: Vec<_> = inner.flatten().collect();
        let only_keys = inner.iter().all(|f| {
            f.file_type().is_ok_and(|t| t.is_file())
                && matches!(f.file_name().to_str(), Some("key" | "key.pub"))
        });
        if only_keys {
            for f in &inner {
                let _ = std::fs::remove_file(f.path());
            }
            let _ = std::fs::remove_dir(&staging);
        }
    }
}

fn push_token(path: &Path) -> Result<Outcome> {
    if path.exists() {
        return Ok(Outcome::Kept);
    }
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match create_new(path, format!("{hex}\n").as_bytes(), true) {
        Ok(()) => Ok(Outcome::Created("16 random bytes as hex, mode 0600".into())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Outcome::Kept),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Renders only `.sops.yaml` (it needs nothing but the age public key), so files can be
/// encrypted by hand before the first configure. configure later renders the same bytes and
/// adopts the file into its manifest.
fn sops_config(templates: &Path, dir: &Path) -> Result<Outcome> {
    let target = dir.join(".sops.yaml");
    if target.exists() {
        return Ok(Outcome::Kept);
    }
    let (mut inputs, diags) = render::Inputs::load(dir);
    if let Some(d) = diags.first() {
        bail!("{}", d.message);
    }
    if let Err(d) = crate::configure::crypto::bind_age_key(&mut inputs, dir) {
        bail!(
            "{}\n  help: {}",
            d.message,
            d.help.as_deref().unwrap_or_default()
        );
    }
    if inputs.age_public_key.is_none() {
        return Ok(Outcome::Skipped("no age.key".into()));
    }
    // Rendered before cluster.yaml has values: an empty context.
    let context = render::empty_context();
    let output = match render::render_template(templates, ".sops.yaml", &context, &inputs) {
        Ok(Some(o)) => o,
        Ok(None) => {
            return Ok(Outcome::Skipped(
                "templates/ has no .sops.yaml template yet".into(),
            ));
        }
        Err(diags) => {
            return Ok(Outcome::Skipped(format!(
                "its template needs values from cluster.yaml ({}); configure will render it",
                diags.first().map(|d| d.message.as_str()).unwrap_or("")
            )));
        }
    };
    match create_new(&target, &output.contents, false) {
        Ok(()) => Ok(Outcome::Created("sops creation rules for age.key".into())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Outcome::Kept),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", target.display())),
    }
}

/// Creates `path` with `bytes`, failing if it exists (`O_EXCL`); mode 0600 when `private`.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<()> {
    create_new(path, bytes, true).with_context(|| format!("cannot create {}", path.display()))
}

fn create_new(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn create_private_dir(path: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

#[cfg(unix)]
fn random_bytes(buf: &mut [u8]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .context("cannot read /dev/urandom")
}

#[cfg(not(unix))]
fn random_bytes(_: &mut [u8]) -> Result<()> {
    bail!(
        "creating the push token needs /dev/urandom; create github-push-token.txt with 32 random hex digits yourself"
    )
}
