//! `cargo xtask bench` end to end on a small size: the headline spawns the real binary with the
//! schema set read from a scratch schema cache (digests included), and every run, in a child
//! process or in-process, verifies without an error.

mod common;

#[test]
fn bench_times_whole_processes_with_the_schema_cache_and_finds_nothing() {
    let schemas = common::shared_dir().join("schemas");
    if !schemas.is_dir() {
        common::skip_or_fail("the shared schema set is needed (set CLUSTER_SHARED_DIR)");
        return;
    }
    let out = common::xtask(
        &[
            "bench",
            "--sizes",
            "5",
            "--runs",
            "1",
            "--schemas",
            schemas.to_str().unwrap(),
        ],
        &common::repo(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("whole process, as a user starts it")
            && stdout.contains("pinned schema set from a schema cache with its digests"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("verify reported errors"),
        "the generated configurations must verify clean:\n{stdout}"
    );
    // One row per case in each table: the headline (5 columns) and the steps (13 columns).
    for label in ["public.yaml", "5"] {
        let widths: Vec<usize> = stdout
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(label))
            .map(|l| l.split_whitespace().count())
            .collect();
        assert!(
            widths.contains(&4) || widths.contains(&5),
            "{label}: {widths:?}\n{stdout}"
        );
        assert!(
            widths.contains(&12) || widths.contains(&13),
            "{label}: {widths:?}\n{stdout}"
        );
    }
    assert!(stdout.contains("peer: not timed"), "{stdout}");
}
