//! Every CEL rule in every CRD of the pinned schema set compiles, and every function the rules
//! call exists in the Kubernetes CEL library we evaluate them with.

mod common;

use serde_json::Value;

/// Counts `x-kubernetes-validations` entries by walking the raw CRD files, independently of the
/// compiler under test.
fn count_rules(v: &Value) -> usize {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, child)| match (k.as_str(), child) {
                ("x-kubernetes-validations", Value::Array(rules)) => rules.len(),
                ("default" | "example" | "enum", _) => 0,
                _ => count_rules(child),
            })
            .sum(),
        Value::Array(items) => items.iter().map(count_rules).sum(),
        _ => 0,
    }
}

#[test]
#[allow(clippy::print_stderr)]
fn every_rule_in_every_crd_compiles() {
    let mut expected = 0;
    let mut files = Vec::new();
    for dir in std::fs::read_dir(common::schemas_dir()).expect("schemas dir") {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                files.push(f.unwrap().path());
            }
        }
    }
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        for doc in common::load_json(f) {
            if doc["kind"] == "CustomResourceDefinition" {
                for v in doc["spec"]["versions"].as_array().unwrap() {
                    expected += count_rules(&v["schema"]["openAPIV3Schema"]);
                }
            }
        }
    }
    let summary = common::schemas().compile_all();
    eprintln!(
        "compiled {} CEL rules in {} CRD versions (+{} built-in kinds)",
        summary.rules, summary.crd_versions, summary.builtin_kinds
    );
    assert!(summary.errors.is_empty(), "{:#?}", summary.errors);
    assert!(summary.unavailable.is_empty(), "{:#?}", summary.unavailable);
    assert_eq!(summary.rules, expected);
    assert!(summary.rules > 700, "the pinned set has 763 rules");
}
