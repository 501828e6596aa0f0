//! The correct tree verifies clean, and what verify saw adds up.

mod common;

use common::tree;

#[test]
#[allow(clippy::print_stderr)]
fn the_good_tree_has_no_findings() {
    let t = tree::base();
    let report = t.verify();
    eprintln!("{}", tree::dump(&report));
    eprintln!("{:#?}", report.stats);
    assert!(report.diagnostics.is_empty(), "{}", tree::dump(&report));
}
