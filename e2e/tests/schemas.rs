//! The objects the harness generates for the real rendered e2e tree (OCIRepository, root
//! Kustomizations and what their patches produce, the patched BackendTLSPolicy) against the
//! upstream CRD schemas in the shared tree: no field the CRD does not declare, every required
//! field present, enums respected.
//!
//! The schemas are read from `$CLUSTER_SHARED_DIR` (default `<workspace>/../shared`); without
//! them the tests print a skip message, unless `REQUIRE_ORACLES=1` makes that a failure.

#![allow(clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};

use e2e::plan::{self, Action, E2eConfig, Layout};
use e2e::rendered::{Tree, parse_documents};
use serde_json::{Value, json};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("CLUSTER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir().join("../../shared"));
    if dir.join("schemas").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("REQUIRE_ORACLES").as_deref() != Ok("1"),
        "shared CRD schemas not found at {} (REQUIRE_ORACLES=1)",
        dir.display()
    );
    eprintln!(
        "skipping: shared CRD schemas not found at {}",
        dir.display()
    );
    None
}

/// The `openAPIV3Schema` of `plural.group` at `version` from a (multi-document) CRD file.
fn crd_schema(file: &Path, name: &str, version: &str) -> Value {
    let text = std::fs::read_to_string(file).unwrap();
    let docs = parse_documents(&file.display().to_string(), &text).unwrap();
    let crd = docs
        .iter()
        .find(|d| d.name() == name)
        .unwrap_or_else(|| panic!("{name} not in {}", file.display()));
    crd.value["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .unwrap_or_else(|| panic!("{name} has no version {version}"))
}

/// Structural check: unknown fields, missing required fields, enum values, basic types.
fn violations(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(map) => {
            if schema
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "object")
            {
                out.push(format!(
                    "{path}: object where the schema wants {}",
                    schema["type"]
                ));
                return;
            }
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = required.as_str().unwrap_or("");
                if !map.contains_key(key) {
                    out.push(format!("{path}: missing required `{key}`"));
                }
            }
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                match (
                    schema.get("properties").and_then(|p| p.get(key)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(child_schema), _) => violations(child_schema, child, &child_path, out),
                    (None, Some(Value::Object(_))) => {
                        violations(&schema["additionalProperties"], child, &child_path, out)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    (None, _)
                        if schema.get("properties").is_none()
                            && schema.get("additionalProperties").is_none() => {}
                    (None, _) => out.push(format!("{child_path}: field not declared by the CRD")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    violations(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::String(_)
            if schema
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "string")
                && schema.get("x-kubernetes-int-or-string") != Some(&Value::Bool(true)) =>
        {
            out.push(format!(
                "{path}: string where the schema wants {}",
                schema["type"]
            ));
        }
        Value::Bool(_)
            if schema
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "boolean") =>
        {
            out.push(format!(
                "{path}: boolean where the schema wants {}",
                schema["type"]
            ));
        }
        _ => {}
    }
}

fn assert_valid(schema: &Value, object: &Value, what: &str) {
    let mut out = Vec::new();
    // Top-level apiVersion/kind/metadata are not part of the CRD's structural checks here.
    let mut body = object.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        map.remove("metadata");
    }
    violations(schema, &body, what, &mut out);
    assert!(out.is_empty(), "{what}:\n{}", out.join("\n"));
}

#[test]
fn the_validator_catches_what_it_should() {
    // The validator itself must be able to fail, or the tests below prove nothing.
    let schema = json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object",
        "properties": {"kind": {"type": "string", "enum": ["A", "B"]}, "flag": {"type": "boolean"}}}}});
    let mut out = Vec::new();
    violations(
        &schema,
        &json!({"spec": {"kind": "C", "flag": "yes", "extra": 1}}),
        "x",
        &mut out,
    );
    assert_eq!(out.len(), 3, "{out:?}");
    let mut out = Vec::new();
    violations(&schema, &json!({}), "x", &mut out);
    assert_eq!(out, vec!["x: missing required `spec`".to_owned()]);
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// The objects the plan applies, for the real rendered e2e tree (kept alive by the caller).
fn plan_objects(rendered: &common::Rendered) -> Vec<Value> {
    let root = rendered.path();
    let tree = Tree::load(root).unwrap();
    let config = E2eConfig::load(&crate_dir().join("cluster.yaml")).unwrap();
    let layout = Layout {
        workspace: PathBuf::from("/ws"),
        rendered: root.to_path_buf(),
        scratch: PathBuf::from("/scratch"),
        age_key: root.join("age.key"),
    };
    plan::build(&layout, &tree, &config)
        .unwrap()
        .steps
        .into_iter()
        .flat_map(|s| s.actions)
        .filter_map(|a| {
            if let Action::Apply { object, .. } = a {
                Some(object)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn generated_flux_objects_match_the_flux_crds() {
    let Some(shared) = shared() else { return };
    let flux = shared.join("schemas/flux-v2.8.8");
    let ks_schema = crd_schema(
        &flux.join("kustomize.toolkit.fluxcd.io_kustomizations.yaml"),
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "v1",
    );
    let oci_schema = crd_schema(
        &flux.join("source.toolkit.fluxcd.io_ocirepositories.yaml"),
        "ocirepositories.source.toolkit.fluxcd.io",
        "v1",
    );
    let rendered = common::render_e2e();
    let objects = plan_objects(&rendered);
    let mut seen = 0;
    for object in &objects {
        match object["kind"].as_str() {
            Some("Kustomization") => {
                assert_valid(
                    &ks_schema,
                    object,
                    &format!("Kustomization {}", object["metadata"]["name"]),
                );
                // What the child patch turns an app Kustomization into must be valid too
                // (merged like a strategic merge patch on these plain fields).
                let patch = object["spec"]["patches"][0]["patch"].as_str().unwrap();
                let patch: Value = serde_saphyr::from_str(patch).unwrap();
                let child = rendered
                    .path()
                    .join("kubernetes/apps/network/envoy-gateway/ks.yaml");
                let mut child =
                    parse_documents("ks.yaml", &std::fs::read_to_string(child).unwrap()).unwrap()
                        [0]
                    .value
                    .clone();
                merge(&mut child["spec"], &patch["spec"]);
                assert_eq!(child["spec"]["sourceRef"]["kind"], "OCIRepository");
                assert_valid(&ks_schema, &child, "patched child Kustomization");
                seen += 1;
            }
            Some("OCIRepository") => {
                assert_valid(&oci_schema, object, "OCIRepository");
                seen += 1;
            }
            _ => {}
        }
    }
    assert_eq!(seen, 3, "two root Kustomizations and one OCIRepository");
}

#[test]
fn patched_backend_tls_policy_matches_gateway_api() {
    let Some(shared) = shared() else { return };
    let schema = crd_schema(
        &shared.join("schemas/gateway-api-v1.4.1-experimental/gatewayapi-crds.yaml"),
        "backendtlspolicies.gateway.networking.k8s.io",
        "v1",
    );
    // The rendered policy is valid as rendered …
    let rendered = common::render_e2e();
    let text = std::fs::read_to_string(
        rendered
            .path()
            .join("kubernetes/apps/ai-gateway/mcp/app/backend.yaml"),
    )
    .unwrap();
    let docs = parse_documents("backend.yaml", &text).unwrap();
    let mut policy = docs
        .iter()
        .find(|d| d.kind() == "BackendTLSPolicy")
        .unwrap()
        .value
        .clone();
    assert_valid(&schema, &policy, "rendered BackendTLSPolicy");
    // … and so is the result of the harness's JSON patch (applied here by hand, the kustomize
    // test in tests/plan.rs checks kustomize produces exactly this).
    let validation = policy["spec"]["validation"].as_object_mut().unwrap();
    validation.remove("wellKnownCACertificates");
    validation.insert(
        "caCertificateRefs".into(),
        json!([{"group": "", "kind": "ConfigMap", "name": plan::TEST_CA_CONFIGMAP}]),
    );
    assert_valid(&schema, &policy, "patched BackendTLSPolicy");
}
