//! `cargo xtask dist`: the release archive, reproducibly.
//!
//! The archive holds exactly what a user needs to start a cluster repository from this template
//! and run `cargo xtask`: the workspace sources, templates, samples, docs, editor schemas and
//! workflows — taken from the files git tracks, so rendered output, keys, caches and build
//! products can never slip in — plus the release's CHANGELOG section and a checksum file.
//! Same commit and version → same bytes: entries are sorted, owners and times are fixed
//! (`SOURCE_DATE_EPOCH`, else the commit time), and gzip carries no name or time.

use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::util;

pub const NAME: &str = "aiops-cluster-template";

pub const HELP: &str = "\
cargo xtask dist [--version V] [--out DIR]

Builds dist/aiops-cluster-template-<version>.tar.gz and its .sha256 from the files git tracks:
the workspace, templates, samples, docs, editor schemas, workflows, the CHANGELOG section of the
version and a SHA256SUMS file. Rendered output, keys, caches and build products are never
included. Reproducible: the same commit and version give the same bytes.

Options:
  --version V   release version (default: the workspace version, e.g. 0.1.0)
  --out DIR     output directory (default: dist/)
";

/// Top-level paths a release may contain; anything else git tracks is left out.
const INCLUDE: &[&str] = &[
    ".cargo/",
    ".ci/",
    ".github/",
    ".gitignore",
    ".schemas/",
    "CHANGELOG.md",
    "Cargo.lock",
    "Cargo.toml",
    "LICENSE",
    "README.md",
    ".renovaterc.json5",
    "cluster.sample.yaml",
    "crates/",
    "docs/",
    "e2e/",
    "nodes.sample.yaml",
    "rust-toolchain.toml",
    "scripts/",
    "templates/",
    // The pinned versions of the cluster tools; xtask compiles it in (cluster/tools.rs).
    "tools.toml",
    "xtask/",
];

/// Never shipped, even if tracked by mistake: user inputs, keys, rendered output, caches.
const EXCLUDE: &[&str] = &[
    "cluster.yaml",
    "nodes.yaml",
    "age.key",
    "github-deploy.key",
    "github-deploy.key.pub",
    "github-push-token.txt",
    "cloudflare-tunnel.json",
    ".sops.yaml",
    "kubeconfig",
    "talosconfig",
    ".render-manifest.json",
];
/// Never shipped, at any depth: build products, caches, the tidy folder.
const EXCLUDE_DIRS: &[&str] = &["target/", "dist/", "node_modules/", ".private/"];
/// Rendered output, at the top level only: `templates/config/kubernetes/` is the template.
const EXCLUDE_TOP_DIRS: &[&str] = &["kubernetes/", "bootstrap/", "talos/"];

pub fn run(args: &mut lexopt::Parser) -> Result<ExitCode> {
    let root = util::project_root();
    let mut version = workspace_version(&root)?;
    let mut out = root.join("dist");
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("version") => {
                version = args.value()?.into_string().map_err(|v| {
                    anyhow::anyhow!("--version {} is not UTF-8", v.to_string_lossy())
                })?
            }
            lexopt::Arg::Long("out") => out = args.value()?.into(),
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(util::unexpected(&other, HELP)),
        }
    }
    let archive = build(&root, &version)?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let file = out.join(format!("{NAME}-{version}.tar.gz"));
    schema::writefile::write_atomically(&file, &archive.bytes, 0o644)
        .with_context(|| format!("cannot write {}", file.display()))?;
    let sum = format!(
        "{}  {}\n",
        hex(&Sha256::digest(&archive.bytes)),
        file.file_name().unwrap_or_default().to_string_lossy()
    );
    let sum_file = out.join(format!("{NAME}-{version}.tar.gz.sha256"));
    schema::writefile::write_atomically(&sum_file, sum.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", sum_file.display()))?;
    eprintln!(
        "wrote {} ({} files, {} bytes)",
        file.display(),
        archive.files.len(),
        archive.bytes.len()
    );
    eprint!("sha256 {sum}");
    Ok(ExitCode::SUCCESS)
}

pub struct Archive {
    /// Paths inside the archive, below the `<name>-<version>/` folder.
    pub files: Vec<String>,
    pub bytes: Vec<u8>,
}

/// Builds the archive in memory.
pub fn build(root: &Path, version: &str) -> Result<Archive> {
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
    {
        bail!("version `{version}` must be made of letters, digits, `.`, `-` and `+`");
    }
    let changelog =
        std::fs::read_to_string(root.join("CHANGELOG.md")).context("cannot read CHANGELOG.md")?;
    let notes = changelog_section(&changelog, version)
        .with_context(|| format!("CHANGELOG.md has no `## {version}` section\n  help: add the release notes under `## {version}` before building the release"))?;
    let mtime = source_date_epoch(root)?;

    let mut entries: Vec<(String, Vec<u8>, u32)> = Vec::new();
    for path in tracked_files(root)? {
        if !is_shipped(&path) {
            continue;
        }
        let full = root.join(&path);
        // A tracked file deleted in the work tree is not shipped.
        let Ok(meta) = std::fs::symlink_metadata(&full) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let bytes = std::fs::read(&full).with_context(|| format!("cannot read {path}"))?;
        entries.push((path, bytes, mode(&meta)));
    }
    entries.push(("RELEASE_NOTES.md".to_owned(), notes.into_bytes(), 0o644));
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let sums: String = entries
        .iter()
        .map(|(p, b, _)| format!("{}  {p}\n", hex(&Sha256::digest(b))))
        .collect();
    entries.push(("SHA256SUMS".to_owned(), sums.into_bytes(), 0o644));

    let prefix = format!("{NAME}-{version}");
    let mut tar = Vec::new();
    for (path, bytes, mode) in &entries {
        tar_entry(&mut tar, &format!("{prefix}/{path}"), bytes, *mode, mtime);
    }
    tar.extend_from_slice(&[0u8; 1024]);
    Ok(Archive {
        files: entries.into_iter().map(|(p, _, _)| p).collect(),
        bytes: gzip(&tar),
    })
}

fn is_shipped(path: &str) -> bool {
    let top_ok = INCLUDE.iter().any(|inc| {
        if inc.ends_with('/') {
            path.starts_with(inc)
        } else {
            path == *inc
        }
    });
    let name = path.rsplit('/').next().unwrap_or(path);
    let excluded = EXCLUDE.contains(&path)
        || EXCLUDE_DIRS
            .iter()
            .any(|d| path.starts_with(d) || path.contains(&format!("/{d}")))
        || EXCLUDE_TOP_DIRS.iter().any(|d| path.starts_with(d))
        || name.ends_with(".key")
        || name.ends_with(".agekey") && !path.contains("/tests/");
    top_ok && !excluded
}

fn tracked_files(root: &Path) -> Result<Vec<String>> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .context("cannot run git (the release is built from the files git tracks)")?;
    if !out.status.success() {
        bail!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

fn source_date_epoch(root: &Path) -> Result<u64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH `{v}` is not a number"));
    }
    let out = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(root)
        .output()
        .context("cannot run git")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.trim().parse().unwrap_or(0))
}

fn workspace_version(root: &Path) -> Result<String> {
    let manifest = std::fs::read_to_string(root.join("xtask/Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| {
            l.strip_prefix("version = \"")
                .and_then(|r| r.strip_suffix('"'))
        })
        .map(str::to_owned)
        .context("no version in xtask/Cargo.toml")
}

/// The text under `## <version>` (up to the next `## `), heading included.
pub fn changelog_section(changelog: &str, version: &str) -> Option<String> {
    let mut out = String::new();
    let mut inside = false;
    for line in changelog.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if inside {
                break;
            }
            let v = heading.trim().trim_start_matches('v');
            inside = v == version || v.starts_with(&format!("{version} "));
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(unix)]
fn mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

#[cfg(not(unix))]
fn mode(_: &std::fs::Metadata) -> u32 {
    0o644
}

/// One ustar entry; paths longer than ustar allows get a PAX `path` record first.
fn tar_entry(out: &mut Vec<u8>, path: &str, data: &[u8], mode: u32, mtime: u64) {
    if path.len() > 100 {
        let record = pax_record("path", path);
        let name = format!("PaxHeaders/{}", &path[path.len().saturating_sub(80)..]);
        header(out, &name, record.len() as u64, 0o644, mtime, b'x');
        pad(out, &record);
    }
    let short: String = if path.len() > 100 {
        path[path.len() - 100..].to_owned()
    } else {
        path.to_owned()
    };
    header(out, &short, data.len() as u64, mode, mtime, b'0');
    pad(out, data);
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    // "<len> <key>=<value>\n" where <len> counts itself.
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while format!("{len}{body}").len() != len {
        len += 1;
    }
    format!("{len}{body}").into_bytes()
}

fn header(out: &mut Vec<u8>, name: &str, size: u64, mode: u32, mtime: u64, kind: u8) {
    let mut h = [0u8; 512];
    let name = name.as_bytes();
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    out.extend_from_slice(&h);
}

fn octal(field: &mut [u8], value: u64) {
    let text = format!("{:0width$o}", value, width = field.len() - 1);
    field[..text.len()].copy_from_slice(text.as_bytes());
    field[field.len() - 1] = 0;
}

fn pad(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let rem = data.len() % 512;
    if rem != 0 {
        out.extend(std::iter::repeat_n(0u8, 512 - rem));
    }
}

/// gzip with no file name and mtime 0, so the bytes depend only on the input.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 9));
    out.write_all(&crc32(data).to_le_bytes())
        .expect("writing to a Vec");
    out.write_all(&(data.len() as u32).to_le_bytes())
        .expect("writing to a Vec");
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    let mut crc = !0u32;
    for b in data {
        crc = table[((crc ^ u32::from(*b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn root() -> PathBuf {
        util::project_root()
    }

    /// Lists the archive with the system `tar` when it is there (an independent reader).
    fn list_with_tar(bytes: &[u8]) -> Option<Vec<String>> {
        let dir = std::env::temp_dir().join(format!("dist-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let file = dir.join("a.tar.gz");
        std::fs::write(&file, bytes).ok()?;
        let out = Command::new("tar").arg("-tzf").arg(&file).output().ok()?;
        std::fs::remove_dir_all(&dir).ok()?;
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
    }

    #[test]
    fn file_list_has_the_template_and_nothing_private() {
        let version = workspace_version(&root()).unwrap();
        let a = build(&root(), &version).unwrap();
        for required in [
            "Cargo.toml",
            "Cargo.lock",
            "tools.toml",
            "README.md",
            "CHANGELOG.md",
            "RELEASE_NOTES.md",
            "SHA256SUMS",
            "cluster.sample.yaml",
            "nodes.sample.yaml",
            ".cargo/config.toml",
            ".schemas/cluster.schema.json",
            ".github/tests/public.yaml",
            "docs/configuration.md",
            "xtask/src/main.rs",
            "crates/schema/src/lib.rs",
            "scripts/bootstrap-apps.sh",
            ".renovaterc.json5",
            ".github/workflows/cluster-verify.yaml",
            ".github/scripts/cluster-verify-tool.sh",
            // The templates of the rendered folders (whose rendered copies are never shipped).
            "templates/config/kubernetes/flux/cluster/ks.yaml.j2",
            "templates/config/talos/talconfig.yaml.j2",
            "templates/config/bootstrap/helmfile.d/01-apps.yaml.j2",
        ] {
            assert!(
                a.files.iter().any(|f| f == required),
                "{required} is missing from the release"
            );
        }
        assert!(
            a.files.iter().any(|f| f.starts_with("templates/config/")),
            "no templates in the release"
        );
        for f in &a.files {
            assert!(
                !f.starts_with("target/") && !f.contains("node_modules/"),
                "build product {f}"
            );
            assert!(
                ![
                    "cluster.yaml",
                    "nodes.yaml",
                    "age.key",
                    ".sops.yaml",
                    ".render-manifest.json"
                ]
                .contains(&f.as_str()),
                "private file {f}"
            );
            assert!(
                !f.starts_with("kubernetes/")
                    && !f.starts_with("bootstrap/")
                    && !f.starts_with("talos/"),
                "rendered output {f}"
            );
        }
        if let Some(listed) = list_with_tar(&a.bytes) {
            let prefix = format!("{NAME}-{version}/");
            let mut want: Vec<String> = a.files.iter().map(|f| format!("{prefix}{f}")).collect();
            let mut got = listed;
            want.sort();
            got.sort();
            assert_eq!(got, want, "tar reads a different file list");
        }
    }

    #[test]
    fn same_inputs_give_the_same_bytes() {
        let version = workspace_version(&root()).unwrap();
        let a = build(&root(), &version).unwrap();
        let b = build(&root(), &version).unwrap();
        assert!(a.bytes == b.bytes, "two builds differ");
    }

    #[test]
    fn exclusions() {
        assert!(is_shipped("templates/config/.sops.yaml.j2"));
        assert!(is_shipped("crates/secrets/tests/fixtures/test.agekey"));
        assert!(!is_shipped(".sops.yaml"));
        assert!(!is_shipped("kubernetes/apps/x.yaml"));
        assert!(!is_shipped("talos/talconfig.yaml"));
        assert!(is_shipped("templates/config/kubernetes/apps/x.yaml.j2"));
        assert!(is_shipped("templates/config/talos/talenv.yaml.j2"));
        assert!(is_shipped(".renovaterc.json5"));
        assert!(!is_shipped("crates/secrets/tests/oracle/node_modules/x.js"));
        assert!(!is_shipped("age.key"));
        assert!(!is_shipped("templates/config/some.key"));
        assert!(!is_shipped("random-top-level-file"));
    }

    #[test]
    fn changelog_sections() {
        let text = "# Changelog\n\n## 0.2.0\n\n- b\n\n## 0.1.0 (2026-11-27)\n\n- a\n";
        assert_eq!(
            changelog_section(text, "0.1.0").unwrap(),
            "## 0.1.0 (2026-11-27)\n\n- a\n"
        );
        assert_eq!(
            changelog_section(text, "0.2.0").unwrap(),
            "## 0.2.0\n\n- b\n\n"
        );
        assert!(changelog_section(text, "0.3.0").is_none());
    }

    #[test]
    fn gzip_and_pax_are_well_formed() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let r = pax_record("path", "x");
        assert_eq!(r, b"9 path=x\n");
        assert_eq!(
            pax_record("path", &"y".repeat(95)),
            format!("105 path={}\n", "y".repeat(95)).into_bytes()
        );
        let long = "a/".repeat(80) + "file";
        let mut out = Vec::new();
        tar_entry(&mut out, &long, b"hi", 0o644, 0);
        assert_eq!(out.len() % 512, 0);
        assert_eq!(out[156], b'x');
    }
}
