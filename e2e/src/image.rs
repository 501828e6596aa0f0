//! Archives written by hand, so no base image and no registry is needed:
//! - the mock container image, as a `docker save`-style archive (one layer holding the static
//!   mock binary), loadable with `docker load` and `kind load image-archive`;
//! - the Flux artifact: the rendered `kubernetes/` tree as a deterministic tar+gzip.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::digest::sha256_hex;

/// Where the mock binary lives in its image.
pub const MOCK_ENTRYPOINT: &str = "/e2e-mock";
/// Where the harness copies each mock's configuration.
pub const MOCK_CONFIG_PATH: &str = "/etc/mock/config.json";

/// A minimal ustar writer: regular files and directories, deterministic (mtime 0, uid 0).
#[derive(Default)]
pub struct Tar {
    buf: Vec<u8>,
}

impl Tar {
    pub fn dir(&mut self, path: &str) -> Result<(), String> {
        let path = format!("{}/", path.trim_end_matches('/'));
        self.header(&path, 0o755, 0, b'5')
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), String> {
        self.header(path, mode, data.len() as u64, b'0')?;
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
        Ok(())
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend(std::iter::repeat_n(0u8, 1024));
        self.buf
    }

    fn header(&mut self, path: &str, mode: u32, size: u64, kind: u8) -> Result<(), String> {
        let mut header = [0u8; 512];
        let (prefix, name) = split_path(path)?;
        header[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut header[100..108], u64::from(mode));
        octal(&mut header[108..116], 0);
        octal(&mut header[116..124], 0);
        octal(&mut header[124..136], size);
        octal(&mut header[136..148], 0);
        header[148..156].fill(b' ');
        header[156] = kind;
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[265..269].copy_from_slice(b"root");
        header[297..301].copy_from_slice(b"root");
        header[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        let field = format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(field.as_bytes());
        self.buf.extend_from_slice(&header);
        Ok(())
    }
}

/// Split a path into ustar `prefix` (≤155) and `name` (≤100) at a `/`.
fn split_path(path: &str) -> Result<(&str, &str), String> {
    if path.len() <= 100 {
        return Ok(("", path));
    }
    let bytes = path.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'/' && i <= 155 && path.len() - i - 1 <= 100 && i > 0 {
            return Ok((&path[..i], &path[i + 1..]));
        }
    }
    Err(format!("{path}: too long for a tar header"))
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(text.as_bytes());
    field[width] = 0;
}

/// A `docker save` archive of a one-layer image whose only program is `binary`.
pub fn mock_image_archive(binary: &[u8], tag: &str) -> Result<Vec<u8>, String> {
    let mut layer = Tar::default();
    layer.file(MOCK_ENTRYPOINT.trim_start_matches('/'), 0o755, binary)?;
    layer.dir("etc")?;
    layer.dir("etc/mock")?;
    let layer = layer.finish();
    let layer_id = sha256_hex(&layer);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2000-01-01T00:00:00Z",
        "config": {
            "Entrypoint": [MOCK_ENTRYPOINT],
            "Cmd": [MOCK_CONFIG_PATH],
            "Env": ["PATH=/"]
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_id}")]},
        "history": [{"created": "2000-01-01T00:00:00Z", "created_by": "cargo xtask e2e (static mock binary, no base image)"}]
    })
    .to_string()
    .into_bytes();
    let config_id = sha256_hex(&config);
    let manifest = json!([{
        "Config": format!("{config_id}.json"),
        "RepoTags": [tag],
        "Layers": [format!("{layer_id}/layer.tar")]
    }])
    .to_string()
    .into_bytes();
    let mut archive = Tar::default();
    archive.file(&format!("{config_id}.json"), 0o644, &config)?;
    archive.dir(&layer_id)?;
    archive.file(&format!("{layer_id}/layer.tar"), 0o644, &layer)?;
    archive.file("manifest.json", 0o644, &manifest)?;
    Ok(archive.finish())
}

/// The rendered `kubernetes/` tree under `root` as tar+gzip, entries sorted, with `transform`
/// applied to each file's content (e.g. nothing, in the normal case).
pub fn flux_artifact(root: &Path) -> Result<Vec<u8>, String> {
    let mut files = Vec::new();
    collect(root, &root.join("kubernetes"), &mut files)?;
    files.sort();
    let mut tar = Tar::default();
    for (rel, path) in &files {
        let data = std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?;
        tar.file(rel, 0o644, &data)?;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar.finish()).map_err(|err| err.to_string())?;
    gz.finish().map_err(|err| err.to_string())
}

fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, std::path::PathBuf)>,
) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|err| err.to_string())?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .map_err(|err| err.to_string())?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// GNU tar is the oracle: it must list and extract what we wrote.
    #[test]
    fn tar_reads_our_archives() {
        let dir = tempfile::tempdir().unwrap();
        let mut tar = Tar::default();
        tar.dir("a").unwrap();
        tar.file("a/hello.txt", 0o640, b"hello\n").unwrap();
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        tar.file(&long, 0o755, &[7u8; 513]).unwrap();
        let archive = dir.path().join("t.tar");
        std::fs::write(&archive, tar.finish()).unwrap();
        let out = Command::new("tar")
            .arg("-tvf")
            .arg(&archive)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains("-rw-r----- root/root         6 1970-01-01 00:00 a/hello.txt"),
            "{listing}"
        );
        assert!(listing.contains(&long), "{listing}");
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read(dir.path().join("a/hello.txt")).unwrap(),
            b"hello\n"
        );
        assert_eq!(
            std::fs::read(dir.path().join(&long)).unwrap(),
            vec![7u8; 513]
        );
        assert!(Tar::default().file(&"x".repeat(300), 0o644, b"").is_err());
    }

    #[test]
    fn image_archive_has_docker_save_layout() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = mock_image_archive(b"\x7fELF fake", "ai-gateway-e2e-mock:dev").unwrap();
        let archive = dir.path().join("image.tar");
        std::fs::write(&archive, &bytes).unwrap();
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(manifest[0]["RepoTags"][0], "ai-gateway-e2e-mock:dev");
        let layer_path = dir.path().join(manifest[0]["Layers"][0].as_str().unwrap());
        let layer = std::fs::read(&layer_path).unwrap();
        let config_path = dir.path().join(manifest[0]["Config"].as_str().unwrap());
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        // The diff_id is the digest of the uncompressed layer, as `docker load` verifies.
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(&layer))
        );
        assert_eq!(config["config"]["Entrypoint"][0], MOCK_ENTRYPOINT);
        let out = Command::new("tar")
            .arg("-tvf")
            .arg(&layer_path)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.contains("-rwxr-xr-x root/root") && listing.contains("e2e-mock"),
            "{listing}"
        );
    }

    #[test]
    fn flux_artifact_is_deterministic_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("kubernetes/apps/x")).unwrap();
        std::fs::write(
            dir.path().join("kubernetes/apps/x/ks.yaml"),
            "kind: Kustomization\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("kubernetes/a.yaml"), "a: 1\n").unwrap();
        std::fs::write(dir.path().join("age.key"), "not in the artifact").unwrap();
        let first = flux_artifact(dir.path()).unwrap();
        assert_eq!(first, flux_artifact(dir.path()).unwrap());
        let archive = dir.path().join("a.tar.gz");
        std::fs::write(&archive, &first).unwrap();
        let out = Command::new("tar")
            .arg("-tzf")
            .arg(&archive)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "kubernetes/a.yaml\nkubernetes/apps/x/ks.yaml\n"
        );
    }
}
