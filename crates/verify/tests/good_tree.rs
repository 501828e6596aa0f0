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
    // The one finding: the shared schema set holds the Kubernetes OpenAPI of `v1` and `apps/v1`
    // only, so the Redis NetworkPolicy (networking.k8s.io/v1, issue 13) has no schema.
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["verify::schema_missing"], "{}", tree::dump(&report));
    assert!(
        report.diagnostics[0]
            .message
            .ends_with("networking.k8s.io/v1 NetworkPolicy"),
        "{}",
        report.diagnostics[0].message
    );
}

#[test]
fn what_verify_saw_adds_up_for_the_fixture() {
    // Counted by hand from tests/fixtures/good: the entry point, cluster-apps and 7 app
    // Kustomizations; 12 objects from the entry and cluster-apps (2 namespaces, each with its
    // Namespace, cluster-secrets copy and ks.yaml files, plus cluster-apps itself) and 29 from
    // the app directories (issue 13 added the AI gateway's EnvoyProxy, the MCP session seed
    // Secret and the Redis NetworkPolicy).
    let report = verify::verify(
        std::path::Path::new(tree::BASE),
        common::schemas(),
        &verify::VerifyConfig::cluster_template(),
    );
    let s = &report.stats;
    assert_eq!(s.flux_kustomizations, 9);
    assert_eq!(s.objects, 41);
    assert_eq!(s.sops_files, 5);
    assert_eq!(s.kustomize_dirs, 9);
    assert!(s.schemas_available);
    assert_eq!(s.schema_missing.len(), 1, "{:?}", s.schema_missing);
    assert!(s.cel_evaluated > 0);
    // Gateway hostnames hold ${SECRET_DOMAIN}: the rules over them are left to the cluster.
    assert!(s.cel_skipped > 0);
}
