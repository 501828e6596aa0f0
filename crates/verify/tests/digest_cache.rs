//! The schema cache's digests (`SchemaSet::load_pinned`): written on the first run, used on the
//! next, never trusted when they do not hash to their pinned value, and never a different
//! finding from the source files.

mod common;

use std::path::Path;

use verify::pins::PINS;
use verify::{PinnedState, SchemaSet, VerifyConfig};

fn report_text(schemas: &SchemaSet, root: &Path) -> String {
    let report = verify::verify(root, schemas, &VerifyConfig::cluster_template());
    format!("{:#?}\n{:#?}", report.diagnostics, report.stats)
}

#[test]
fn first_run_writes_digests_and_the_second_uses_them() {
    let cache = common::pinned_cache();
    let first = SchemaSet::load_pinned(cache.path());
    assert!(
        first.states.iter().all(|(_, s)| *s
            == PinnedState::Source {
                digest_written: true
            }),
        "{:?}",
        first.states
    );
    let second = SchemaSet::load_pinned(cache.path());
    assert_eq!(second.from_digests(), PINS.len(), "{:?}", second.states);
    let source = common::schemas();
    assert_eq!(second.set.len(), source.len());
    assert_eq!(first.set.len(), source.len());
    assert!(
        second.set.problems().is_empty(),
        "{:?}",
        second.set.problems()
    );
    // Every rule and pattern of the set, compiled from the digests, as from the sources.
    let (a, b) = (source.compile_all(), second.set.compile_all());
    assert_eq!(
        (a.crd_versions, a.builtin_kinds, a.rules, a.errors.len()),
        (b.crd_versions, b.builtin_kinds, b.rules, b.errors.len())
    );
    assert_eq!(a.unavailable, b.unavailable);
}

#[test]
fn the_fixture_trees_get_the_same_findings_from_digests_and_sources() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for tree in ["good", "kustomize"] {
        let root = fixtures.join(tree);
        assert_eq!(
            report_text(common::schemas(), &root),
            report_text(common::digest_schemas(), &root),
            "{tree}"
        );
    }
}

/// A digest that does not hash to its pinned value is ignored: truncated, edited, swapped for
/// another file's valid digest, or replaced by a symlink. The source is read instead (and the
/// digest rewritten), with the same set.
#[test]
fn a_digest_that_does_not_verify_is_never_used() {
    let cache = common::pinned_cache();
    let _ = SchemaSet::load_pinned(cache.path());
    let digest = |i: usize| {
        cache
            .path()
            .join(".digest")
            .join(format!("{}.digest", PINS[i].blob))
    };
    let truncated = std::fs::read(digest(0)).unwrap();
    std::fs::write(digest(0), &truncated[..truncated.len() / 2]).unwrap();
    let mut edited = std::fs::read(digest(1)).unwrap();
    let at = edited.len() - 10;
    edited[at] ^= 0x20;
    std::fs::write(digest(1), edited).unwrap();
    std::fs::copy(digest(4), digest(2)).unwrap();
    std::fs::remove_file(digest(3)).unwrap();
    std::os::unix::fs::symlink(digest(4), digest(3)).unwrap();

    let load = SchemaSet::load_pinned(cache.path());
    for (i, (pin, state)) in load.states.iter().enumerate() {
        let expected = if i < 4 {
            PinnedState::Source {
                // The symlink is removed (not followed) and a regular digest written.
                digest_written: true,
            }
        } else {
            PinnedState::Digest
        };
        assert_eq!(*state, expected, "{}", pin.file);
    }
    assert_eq!(load.set.len(), common::schemas().len());
    assert!(
        !std::fs::symlink_metadata(digest(3))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Rewritten: all from digests again.
    assert_eq!(
        SchemaSet::load_pinned(cache.path()).from_digests(),
        PINS.len()
    );
}

/// The digest folder itself as a symlink: not read through, not written through.
#[test]
fn a_symlinked_digest_folder_is_neither_read_nor_written() {
    let cache = common::pinned_cache();
    let elsewhere = tempfile::tempdir().unwrap();
    let _ = SchemaSet::load_pinned(elsewhere.path()); // nothing there: all missing
    std::os::unix::fs::symlink(elsewhere.path(), cache.path().join(".digest")).unwrap();
    let load = SchemaSet::load_pinned(cache.path());
    assert!(
        load.states.iter().all(|(_, s)| *s
            == PinnedState::Source {
                digest_written: false
            }),
        "{:?}",
        load.states
    );
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

/// A valid digest stands for its pinned file (it hashes to the pinned value), so a source file
/// edited or removed afterwards does not matter; without a digest, an edited or missing source
/// file is reported as before.
#[test]
fn sources_matter_only_without_a_digest() {
    let cache = common::pinned_cache();
    let _ = SchemaSet::load_pinned(cache.path());
    let source = cache.path().join(PINS[0].relative_path());
    std::fs::write(&source, "tampered").unwrap();
    std::fs::remove_file(cache.path().join(PINS[1].relative_path())).unwrap();
    let load = SchemaSet::load_pinned(cache.path());
    assert_eq!(load.from_digests(), PINS.len());

    std::fs::remove_dir_all(cache.path().join(".digest")).unwrap();
    let load = SchemaSet::load_pinned(cache.path());
    assert!(matches!(load.states[0].1, PinnedState::Modified(_)));
    assert_eq!(load.states[1].1, PinnedState::Missing);
    assert_eq!(load.bad(), 2);
}
