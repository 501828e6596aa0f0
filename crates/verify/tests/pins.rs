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
