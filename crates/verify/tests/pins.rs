//! The pinned manifest and the shared schema set agree: every pinned file is there with its
//! blob id, and every schema file there is pinned.

mod common;

use verify::pins::{FileStatus, PINS, status};

#[test]
fn every_shared_schema_file_is_pinned_and_matches() {
    let dir = common::schemas_dir();
    for (pin, state) in status(&dir) {
        assert_eq!(state, FileStatus::Ok, "{}", pin.relative_path().display());
    }
    let mut on_disk = Vec::new();
    for folder in std::fs::read_dir(&dir).unwrap().flatten() {
        if folder.file_type().unwrap().is_dir() {
            for f in std::fs::read_dir(folder.path()).unwrap().flatten() {
                on_disk.push(format!(
                    "{}/{}",
                    folder.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                ));
            }
        }
    }
    on_disk.sort();
    let mut pinned: Vec<String> = PINS
        .iter()
        .map(|p| p.relative_path().to_string_lossy().into_owned())
        .collect();
    pinned.sort();
    assert_eq!(on_disk, pinned);
}

/// The cache is untrusted: a pinned path holding a FIFO, a symlink (even to the right bytes), a
/// directory or an oversized file is reported unusable without being read or followed (a FIFO
/// used to hang `schemas status` and `schemas fetch`), and an absent one missing.
#[test]
fn status_reads_no_special_file_and_follows_no_symlink() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path();
    let shared = common::schemas_dir();
    let [fifo, link, folder, big, gone, good] = [0, 1, 2, 3, 4, 5].map(|i| &PINS[i]);
    for pin in [fifo, link, folder, big, good] {
        std::fs::create_dir_all(dir.join(pin.folder)).unwrap();
    }
    let path = |pin: &verify::pins::PinnedFile| dir.join(pin.relative_path());
    let made = std::process::Command::new("mkfifo")
        .arg(path(fifo))
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink(shared.join(link.relative_path()), path(link)).unwrap();
    std::fs::create_dir(path(folder)).unwrap();
    std::fs::File::create(path(big))
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    std::fs::copy(shared.join(good.relative_path()), path(good)).unwrap();
    let states = verify::pins::status_of(dir, [fifo, link, folder, big, gone, good].into_iter());
    let unusable = |s: &FileStatus| matches!(s, FileStatus::Unusable(_));
    assert!(unusable(&states[0].1), "{:?}", states[0]);
    assert!(unusable(&states[1].1), "{:?}", states[1]);
    assert!(unusable(&states[2].1), "{:?}", states[2]);
    assert!(unusable(&states[3].1), "{:?}", states[3]);
    assert_eq!(states[4].1, FileStatus::Missing);
    assert_eq!(states[5].1, FileStatus::Ok);
}

/// Digests are named and their hashes pinned by the source's blob id (a chart's by its
/// `values.yaml` blob), so two pinned files with the same bytes would share one digest, with the
/// first one's source name in findings. No two pins may have the same blob id.
#[test]
fn every_pinned_file_has_its_own_blob_id() {
    let mut seen = std::collections::HashMap::new();
    for pin in verify::pins::all() {
        if let Some(other) = seen.insert(pin.blob, pin.relative_path()) {
            panic!(
                "{} and {} are the same bytes ({}): key their digests by path too",
                other.display(),
                pin.relative_path().display(),
                pin.blob
            );
        }
    }
}
