//! Helm values and talhelper's config against their upstream JSON schemas: what `helm install`
//! (run by Flux's helm-controller) and `talhelper genconfig` would refuse, found before a push.
//!
//! - `verify::helm_values`: a HelmRelease's `spec.values`, merged over the chart's pinned
//!   `values.yaml` as Helm merges them, violates the chart's `values.schema.json`. Charts
//!   resolve through `spec.chartRef` to the OCIRepository's URL (last segment = chart name) and
//!   `ref.tag` (= version); only versions in [`CHART_PINS`] have a schema.
//! - `verify::talconfig_schema`: `talos/talconfig.yaml` violates talhelper's schema.
//!
//! The schema files come from the schema set's directory (fetched with the CRDs) and are used
//! only when they are the pinned bytes. Values Flux substitutes on the cluster (`${VAR}`) are
//! not judged, and a release with `valuesFrom` is skipped: its values are only known there.

mod charts;
mod coalesce;
mod digest;
mod jsonschema;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use schema::Diagnostic;
use serde_json::Value;

use crate::flux::{FluxGraph, locate};
use crate::pins::PinnedFile;
use crate::tree::{Seg, Tree, node_at, segments};

pub use charts::{CHART_PINS, ChartPin, TALCONFIG_SCHEMA, WITHOUT_SCHEMA, pinned_files};
#[cfg(test)]
pub(crate) use digest::digest_hash;

use jsonschema::{Schema, Violation};

/// Largest schema or values file read from the schema directory (cilium's are ~180 KB).
const MAX_FILE: u64 = 8 << 20;

/// What the summary says about these checks.
#[derive(Clone, Debug, Default)]
pub struct HelmStats {
    /// HelmReleases whose values were checked against their chart's schema.
    pub releases_checked: usize,
    /// `chart version: why not checked`, one per chart version, sorted.
    pub unchecked: Vec<String>,
    /// Whether talconfig.yaml was checked against talhelper's schema.
    pub talconfig_checked: bool,
}

pub(crate) fn check(
    tree: &Tree,
    graph: &FluxGraph,
    schema_dir: Option<&Path>,
    known: &crate::ValueSchemas,
) -> (Vec<Diagnostic>, HelmStats) {
    let mut diags = Vec::new();
    let mut stats = HelmStats::default();
    let mut unchecked: BTreeSet<String> = BTreeSet::new();
    let mut loaded: HashMap<&str, Option<(Schema, Value)>> = HashMap::new();
    let mut seen = HashSet::new();

    for owned in &graph.objects {
        let obj = &owned.obj;
        if obj.group() != crate::flux::HELM_GROUP || obj.kind() != "HelmRelease" {
            continue;
        }
        let namespace = obj.namespace().unwrap_or("default");
        if !seen.insert((namespace.to_owned(), obj.name().to_owned())) {
            continue;
        }
        let Some((chart, version)) = chart_of(graph, obj, namespace) else {
            continue;
        };
        let label = format!("{chart} {version}");
        let Some(pin) = known
            .charts
            .iter()
            .find(|p| p.chart == chart && p.version == version)
        else {
            let why = WITHOUT_SCHEMA
                .iter()
                .find(|(name, _)| *name == chart)
                .map_or("no pinned schema for this version", |(_, why)| why);
            unchecked.insert(format!("{label}: {why}"));
            continue;
        };
        if obj.value.pointer("/spec/valuesFrom").is_some() {
            unchecked.insert(format!(
                "{label} ({}): valuesFrom, values only the cluster knows",
                obj.name()
            ));
            continue;
        }
        let Some(dir) = schema_dir else {
            unchecked.insert(format!("{label}: no schema set"));
            continue;
        };
        let entry = loaded
            .entry(pin.schema.folder)
            .or_insert_with(|| load_chart(dir, pin));
        let Some((schema, defaults)) = entry else {
            unchecked.insert(format!(
                "{label}: its schema is not in the schema set (run `cargo xtask schemas fetch`)"
            ));
            continue;
        };
        let overrides = obj
            .value
            .pointer("/spec/values")
            .cloned()
            .unwrap_or(Value::Object(Default::default()));
        let merged = coalesce::coalesce(defaults, &overrides);
        stats.releases_checked += 1;
        for v in schema.validate(&merged) {
            if substituted_on_cluster(&merged, &v.path) {
                continue;
            }
            let field = if v.path.is_empty() || v.path.starts_with('[') {
                format!("spec.values{}", v.path)
            } else {
                format!("spec.values.{}", v.path)
            };
            diags.push(
                Diagnostic::error(
                    "verify::helm_values",
                    field.clone(),
                    format!(
                        "HelmRelease {}: {}; Helm refuses to install chart {label} with these values",
                        obj.name(),
                        v.message
                    ),
                )
                .at(locate(tree, obj, &field))
                .with_help(format!(
                    "the chart's values.schema.json ({}/{} at {}) decides; fix the value in the template or cluster.yaml",
                    pin.schema.repo, pin.schema.path, pin.schema.tag
                )),
            );
        }
    }

    if let (Some(dir), Some(pin)) = (schema_dir, &known.talconfig) {
        stats.talconfig_checked = talconfig(tree, dir, pin, &mut diags, &mut unchecked);
    }
    stats.unchecked = unchecked.into_iter().collect();
    (diags, stats)
}

/// The chart name and version a HelmRelease installs, through its `chartRef` OCIRepository.
fn chart_of(
    graph: &FluxGraph,
    release: &crate::kustomize::Obj,
    namespace: &str,
) -> Option<(String, String)> {
    let chart_ref = release.value.pointer("/spec/chartRef")?;
    if chart_ref.get("kind").and_then(Value::as_str) != Some("OCIRepository") {
        return None;
    }
    let name = chart_ref.get("name").and_then(Value::as_str)?;
    let ns = chart_ref
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(namespace);
    let repo = graph.objects.iter().map(|o| &o.obj).find(|o| {
        o.group() == crate::flux::SOURCE_GROUP
            && o.kind() == "OCIRepository"
            && o.name() == name
            && o.namespace().unwrap_or("default") == ns
    })?;
    let url = repo.value.pointer("/spec/url").and_then(Value::as_str)?;
    let tag = repo
        .value
        .pointer("/spec/ref/tag")
        .and_then(Value::as_str)?;
    let chart = url.trim_end_matches('/').rsplit('/').next()?;
    Some((chart.to_owned(), tag.to_owned()))
}

/// Writes the digest of every pinned chart whose files are in the cache `dir` (as `schemas
/// fetch` does after downloading, so that the first `verify` is already fast).
pub fn store_chart_digests(dir: &Path) {
    for pin in CHART_PINS {
        let _ = digest::load(dir, pin);
    }
}

fn load_chart(dir: &Path, pin: &ChartPin) -> Option<(Schema, Value)> {
    let (schema, defaults) = digest::load(dir, pin)?;
    Some((Schema::new(schema), defaults))
}

/// The file's bytes if it is in `dir` and is the pinned file.
fn read_pinned(dir: &Path, pin: &PinnedFile) -> Option<Vec<u8>> {
    crate::pins::read_pinned(dir, pin, MAX_FILE).ok()
}

/// Whether the value at `path` is, or holds, a string Flux rewrites on the cluster (`${VAR}`).
fn substituted_on_cluster(merged: &Value, path: &str) -> bool {
    let mut node = merged;
    for seg in segments(path) {
        let next = match seg {
            Seg::Index(i) => node.get(i),
            Seg::Key(k) => node.get(k),
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    contains_substitution(node)
}

fn contains_substitution(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("${"),
        Value::Array(a) => a.iter().any(contains_substitution),
        Value::Object(m) => m.values().any(contains_substitution),
        _ => false,
    }
}

const TALCONFIG: &str = "talos/talconfig.yaml";

/// `talos/talconfig.yaml` against talhelper's schema; whether it was checked.
fn talconfig(
    tree: &Tree,
    dir: &Path,
    pin: &PinnedFile,
    diags: &mut Vec<Diagnostic>,
    unchecked: &mut BTreeSet<String>,
) -> bool {
    let file = Path::new(TALCONFIG);
    let Some(source) = tree.files.get(file) else {
        return false;
    };
    let Some(schema) = read_pinned(dir, pin)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(Schema::new)
    else {
        unchecked.insert(format!(
            "talconfig.yaml (talhelper {}): its schema is not in the schema set (run `cargo xtask schemas fetch`)",
            pin.tag
        ));
        return false;
    };
    for doc in &source.docs {
        let value = doc.to_json();
        for Violation { path, message } in schema.validate(&value) {
            if substituted_on_cluster(&value, &path) {
                continue;
            }
            diags.push(
                Diagnostic::error(
                    "verify::talconfig_schema",
                    path.clone(),
                    format!("{message}; talhelper genconfig refuses this talconfig.yaml"),
                )
                .at(Some(node_at(doc, &path).location(file)))
                .with_help(format!(
                    "talhelper's schema ({}/{} at {}) decides; fix the template or cluster.yaml/nodes.yaml",
                    pin.repo, pin.path, pin.tag
                )),
            );
        }
    }
    true
}
