//! Upstream's own CRD validation cases for AI Gateway v0.4.0 (`tests/crdcel` at the tag): every
//! case must get upstream's verdict, and each rejection upstream's message at upstream's path.

mod common;

use verify::{apiserver_message, validate_object};

#[test]
fn every_upstream_case_gets_upstreams_verdict() {
    every_case_gets_upstreams_verdict(common::schemas());
}

/// The same cases through the schema cache's digests: the cached form changes no verdict.
#[test]
fn every_upstream_case_gets_upstreams_verdict_from_the_digests() {
    every_case_gets_upstreams_verdict(common::digest_schemas());
}

fn every_case_gets_upstreams_verdict(schemas: &verify::SchemaSet) {
    let dir = common::shared_dir().join("conformance/ai-gateway-crdcel");
    let cases = std::fs::read_to_string(dir.join("cases.tsv")).expect("cases.tsv");
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in cases.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let (file, expected) = line.split_once('\t').unwrap_or((line, ""));
        let docs = common::load_json(&dir.join(file));
        assert_eq!(docs.len(), 1, "{file}: one object per case");
        let object = &docs[0];
        let report = validate_object(schemas, object);
        assert!(
            matches!(report.schema, verify::SchemaUse::Crd { .. }),
            "{file}: validated against {:?}",
            report.schema
        );
        let kind = object["kind"].as_str().unwrap_or_default();
        let group = object["apiVersion"]
            .as_str()
            .and_then(|a| a.split_once('/'))
            .map_or("", |(g, _)| g);
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let text = apiserver_message(kind, group, name, &report.errors);
        let expected = expected.trim();
        if expected.is_empty() {
            if !report.errors.is_empty() {
                failures.push(format!("{file}: upstream accepts it, we say: {text}"));
            }
        } else if !text.contains(expected) {
            failures.push(format!(
                "{file}: upstream rejects with\n    {expected}\n  we say\n    {}",
                if report.errors.is_empty() {
                    "nothing (accepted)".to_owned()
                } else {
                    text
                }
            ));
        }
        if !report.warnings.is_empty() {
            failures.push(format!("{file}: undecided rules: {:?}", report.warnings));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, 19, "cases.tsv lists 19 cases");
}
