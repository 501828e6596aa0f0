//! `cargo xtask secrets`: sops-compatible encryption without a sops binary.
//!
//! ```text
//! cargo xtask secrets encrypt FILE [--in-place]   encrypt per the nearest .sops.yaml
//! cargo xtask secrets decrypt FILE                 print the plaintext to stdout (never to a file)
//! cargo xtask secrets status FILE...               like `sops filestatus`; exit 1 if any is not encrypted
//! cargo xtask secrets keygen [--output PATH]       new age key file (mode 0600, never overwritten)
//! ```
//!
//! Keys come from sops' sources (`SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`,
//! `~/.config/sops/age/keys.txt`) or `--age-key-file PATH`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use lexopt::prelude::*;
use secrets::{FileStatus, Identity, KeyFile, SopsConfig, load_identities, load_identities_from};

const HELP: &str = "\
cargo xtask secrets <command> [options]

Commands:
  encrypt FILE [--in-place]    encrypt FILE per the nearest .sops.yaml (stdout, or in place)
  decrypt FILE                 print the decrypted FILE to stdout
  status FILE...               report whether each FILE is sops-encrypted (exit 1 if not)
  keygen [--output PATH]       create an age key file (default: age.key at the repository
                               root), mode 0600

Options:
  --age-key-file PATH          age identities to decrypt with (default: SOPS_AGE_KEY,
                               SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt)
";

pub fn run(args: &mut lexopt::Parser) -> anyhow::Result<ExitCode> {
    let mut command: Option<String> = None;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut in_place = false;
    let mut output: Option<PathBuf> = None;
    let mut key_file: Option<PathBuf> = None;
    while let Some(arg) = args.next()? {
        match arg {
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Long("in-place") | Short('i') => in_place = true,
            Long("output") | Short('o') => output = Some(args.value()?.into()),
            Long("age-key-file") => key_file = Some(args.value()?.into()),
            Value(v) if command.is_none() => command = Some(v.string()?),
            Value(v) => files.push(v.into()),
            other => bail!(
                "unexpected argument {}\n{HELP}",
                crate::util::describe(&other)
            ),
        }
    }
    let identities = || -> anyhow::Result<Vec<Identity>> {
        let ids = match &key_file {
            Some(path) => load_identities_from(path)?,
            None => load_identities()?,
        };
        if ids.is_empty() {
            bail!(
                "no age identity found: set SOPS_AGE_KEY_FILE (e.g. to ./age.key) or pass --age-key-file"
            );
        }
        Ok(ids)
    };
    match command.as_deref() {
        Some("encrypt") => {
            let [file] = files.as_slice() else {
                bail!("encrypt takes one FILE\n{HELP}")
            };
            let text = secrets::read_file(file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (config, rel) = config_for(file)?;
            warn_foreign_recipients(file, &config, &rel, identities());
            let encrypted = secrets::encrypt(&rel, &text, &config, None)
                .map_err(|e| anyhow::anyhow!("{}", e.in_file(file)))?;
            if in_place {
                schema::writefile::write_atomically(file, encrypted.as_bytes(), 0o600)
                    .with_context(|| format!("cannot replace {}", file.display()))?;
                eprintln!("encrypted {}", file.display());
            } else {
                crate::util::out::stdout_bytes(encrypted.as_bytes());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("decrypt") => {
            let [file] = files.as_slice() else {
                bail!("decrypt takes one FILE\n{HELP}")
            };
            let text = secrets::read_file(file).map_err(|e| anyhow::anyhow!("{e}"))?;
            let indent = config_for(file).map(|(c, _)| c.indent()).unwrap_or(4);
            let ids = identities()?;
            let is_env = file.extension().is_some_and(|e| e == "env");
            let result = if is_env {
                secrets::decrypt_dotenv(&text, &ids)
            } else {
                secrets::decrypt(&text, &ids)
            };
            match result {
                Ok(dec) => {
                    for w in dec.warnings() {
                        eprintln!("warning: {}: {w}", file.display());
                    }
                    crate::util::out::stdout_bytes(dec.to_yaml(indent).as_bytes());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        secrets::ErrorKind::Tampered | secrets::ErrorKind::MacMismatch
                    ) =>
                {
                    eprintln!("error: {}", e.in_file(file));
                    Ok(ExitCode::from(1))
                }
                Err(e) => bail!("{}", e.in_file(file)),
            }
        }
        Some("status") => {
            if files.is_empty() {
                bail!("status takes at least one FILE\n{HELP}");
            }
            let mut findings = false;
            for file in &files {
                let text = secrets::read_file(file).map_err(|e| anyhow::anyhow!("{e}"))?;
                match secrets::status(&text) {
                    FileStatus::Encrypted => println!("{}: encrypted", file.display()),
                    FileStatus::NotEncrypted { reason } => {
                        findings = true;
                        println!("{}: not encrypted ({reason})", file.display());
                    }
                    FileStatus::Malformed { reason } => {
                        findings = true;
                        println!("{}: malformed ({reason})", file.display());
                    }
                }
            }
            Ok(if findings {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Some("keygen") => {
            let path = output.unwrap_or_else(|| crate::util::at_root("age.key"));
            let identity = Identity::generate()?;
            let created = secrets::Clock::System.rfc3339();
            secrets::write_new_key_file(&path, &KeyFile::new(&identity, &created))?;
            eprintln!("wrote {} (mode 0600); keep it out of git", path.display());
            println!("{}", identity.recipient());
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => bail!("unknown secrets command `{other}`\n{HELP}"),
        None => {
            print!("{HELP}");
            Ok(ExitCode::from(2))
        }
    }
}

/// The nearest `.sops.yaml` above `file` and `file`'s path relative to its directory.
fn config_for(file: &Path) -> anyhow::Result<(SopsConfig, String)> {
    let absolute =
        std::path::absolute(file).with_context(|| format!("cannot resolve {}", file.display()))?;
    let start = absolute.parent().unwrap_or(Path::new("/"));
    let Some(config_path) = SopsConfig::find(start) else {
        bail!(
            "{}: no .sops.yaml in this directory or any parent",
            file.display()
        );
    };
    let config = SopsConfig::load(&config_path)?;
    let base = config_path.parent().unwrap_or(Path::new("/"));
    let rel = absolute.strip_prefix(base).unwrap_or(&absolute);
    let rel = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    Ok((config, rel))
}

/// `.sops.yaml` is a repository file: a pull request may add a recipient to it. Teams list
/// several recipients on purpose, so `secrets encrypt` does not refuse (configure does, for
/// the files it renders); it names every recipient that is none of the user's identities.
fn warn_foreign_recipients(
    file: &Path,
    config: &SopsConfig,
    rel: &str,
    identities: anyhow::Result<Vec<Identity>>,
) {
    let Ok(rule) = config.rule_for(rel) else {
        return;
    };
    let all = |rs: &[secrets::Recipient]| {
        rs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match identities {
        Ok(ids) => {
            let own: Vec<secrets::Recipient> = ids.iter().map(Identity::recipient).collect();
            let foreign: Vec<secrets::Recipient> = rule
                .recipients
                .iter()
                .filter(|r| !own.contains(r))
                .copied()
                .collect();
            if !foreign.is_empty() {
                eprintln!(
                    "warning: {}: .sops.yaml encrypts it to {}, which is none of your age identities: whoever holds that key can read this secret\n  help: check who added it (`git log -p .sops.yaml`) before committing the encrypted file",
                    file.display(),
                    all(&foreign)
                );
            }
        }
        Err(_) => eprintln!(
            "warning: {}: no age identity found, so the recipients of .sops.yaml cannot be checked; it is encrypted to {}",
            file.display(),
            all(&rule.recipients)
        ),
    }
}
