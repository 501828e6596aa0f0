//! How long `verify` takes on a rendered tree (the fixture tree until the rendered public
//! example exists), and how long loading the pinned schema set takes.
//!
//! Run: `cargo bench -p verify`. The schema directory comes from `CLUSTER_SHARED_DIR`
//! (default `<workspace>/../shared`) + `/schemas`.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use verify::{SchemaSet, VerifyConfig};

fn schemas_dir() -> PathBuf {
    let shared = std::env::var_os("CLUSTER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    shared.join("schemas")
}

/// The tree to verify; point it at the rendered public example once render produces one.
const TREE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/good");

fn bench(c: &mut Criterion) {
    let dir = schemas_dir();
    let schemas = SchemaSet::load(&dir).expect("schema set (set CLUSTER_SHARED_DIR)");
    let config = VerifyConfig::cluster_template();
    let root = PathBuf::from(TREE);
    let first = verify::verify(&root, &schemas, &config);
    assert!(
        !first.has_errors(),
        "the benchmarked tree must verify clean"
    );
    c.bench_function("verify fixture tree (schemas loaded and compiled)", |b| {
        b.iter(|| verify::verify(&root, &schemas, &config))
    });
    c.bench_function("load schema set", |b| b.iter(|| SchemaSet::load(&dir)));
    c.bench_function("load schema set + verify fixture tree (cold)", |b| {
        b.iter(|| {
            let s = SchemaSet::load(&dir).expect("schemas");
            verify::verify(&root, &s, &config)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
