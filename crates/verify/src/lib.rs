//! Verification of a rendered GitOps tree, offline: what today only fails on the cluster.
//!
//! [`verify`] loads every YAML document of the rendered tree (with file and line, decrypting
//! nothing) and reports, as [`schema::Diagnostic`]s with codes `verify::<rule>`:
//! - `*.sops.*` files that are not encrypted;
//! - the kustomize graph: missing resources and components, duplicate objects, bad patches
//!   (an in-process subset of `kustomize build`, see the `kustomize` module);
//! - the Flux graph: Kustomization paths that do not exist, `dependsOn` that does not resolve
//!   or loops, objects applied by two Flux Kustomizations (or by none), HelmRelease charts
//!   whose source is missing;
//! - every object against its upstream schema: CRD `openAPIV3Schema` (strict fields, defaults,
//!   int-or-string, nullable, preserve-unknown-fields) and its `x-kubernetes-validations` CEL
//!   rules evaluated with the Kubernetes CEL libraries, built-in kinds against the Kubernetes
//!   OpenAPI — worded like the API server (`spec.rules[0]: Invalid value: "object": …`);
//! - cross-resource rules for Envoy AI Gateway v0.4.0 on Envoy Gateway v1.6.7 (see `cross`);
//! - HelmRelease values against their chart's pinned `values.schema.json`, and
//!   `talos/talconfig.yaml` against talhelper's schema (see `helm`).
//!
//! **Invariants.** No network and no decryption: a pure function of the tree and a
//! [`SchemaSet`]. Findings are data, never a panic or an early return. Without schemas the
//! graph and cross-resource checks still run, and the report says schema checks were skipped.
//!
//! [`validate_object`] checks one in-memory object against the schema set (used by the
//! conformance test and by other crates' tests). [`pins`] holds the pinned upstream schema
//! files and the verify-then-store step of `cargo xtask schemas fetch`.

mod cel;
mod config;
mod cross;
mod digests;
mod field;
mod flux;
mod helm;
mod kustomize;
mod object;
mod openapi;
mod par;
pub mod pins;
mod report;
mod schemaset;
mod sops;
mod talos;
mod tree;
mod validate;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use schema::Diagnostic;

pub use config::{FluxEntry, ValueSchemas, VerifyConfig};
pub use field::{FieldError, FieldErrorKind, apiserver_message};
pub use helm::{
    CHART_PINS, ChartPin, HelmStats, TALCONFIG_SCHEMA, WITHOUT_SCHEMA, store_chart_digests,
};
pub use object::{ObjectReport, SchemaUse, validate_object};
pub use report::{Report, Stats};
pub use schemaset::{CompileSummary, PinnedLoad, PinnedState, SchemaSet, SchemaSetError};

use crate::kustomize::{Built, Kustomizer, Obj, Scopes};

/// Verifies the rendered tree at `root`.
pub fn verify(root: &Path, schemas: &SchemaSet, config: &VerifyConfig) -> Report {
    let mut tree = tree::Tree::load(root, &config.scan);
    let mut diags = std::mem::take(&mut tree.diagnostics);
    let mut stats = Stats {
        sops_files: tree.sops_files,
        schemas_available: !schemas.is_empty(),
        ..Stats::default()
    };
    let scopes = scopes(&tree, schemas);

    let mut kustomizer = Kustomizer::new(&mut tree, &scopes);
    let graph = flux::resolve(&mut kustomizer, config);
    let flux_consumed = kustomizer.consumed.clone();
    let flux_failed = kustomizer.failed.clone();
    // Every kustomization directory must build on its own too (as kubeconform.sh does), also
    // the ones no Flux Kustomization reaches.
    let mut standalone: Vec<Rc<Built>> = Vec::new();
    let dirs = kustomization_dirs(&mut kustomizer, &config.manifests);
    stats.kustomize_dirs = dirs.len();
    for dir in dirs {
        if let Some(built) = kustomizer.build_dir(&dir) {
            standalone.push(built);
        }
    }
    diags.append(&mut kustomizer.diagnostics);
    drop(kustomizer);
    // Files the builds loaded on demand (outside the scanned directories) report here.
    diags.append(&mut tree.diagnostics);
    diags.extend(graph.diagnostics.iter().cloned());
    diags.extend(not_applied(
        &tree,
        &config.manifests,
        &flux_consumed,
        &flux_failed,
    ));

    stats.flux_kustomizations = graph.kustomizations.len();
    stats.objects = graph.objects.len();
    stats.files = tree.files.len();

    // The Helm values and talconfig.yaml checks read and parse their own schema files (cilium's
    // are 350 kB): they run on a second thread beside the CRD schema and cross-resource checks.
    let value_schemas = &config.value_schemas;
    let dir = value_schemas.dir.as_deref().or(schemas.dir());
    let (tree_ref, graph_ref) = (&tree, &graph);
    let (helm_diags, helm_stats) = std::thread::scope(|scope| {
        let helm = scope.spawn(move || helm::check(tree_ref, graph_ref, dir, value_schemas));
        check_schemas(&tree, schemas, &graph, &standalone, &mut diags, &mut stats);
        diags.extend(talos::check(&tree));
        let (cross_diags, cross_stats) = cross::check(&tree, &graph);
        diags.extend(cross_diags);
        stats.unverifiable_refs = cross_stats.unverifiable;
        helm.join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    diags.extend(helm_diags);
    stats.helm = helm_stats;

    Report {
        diagnostics: sorted(diags),
        stats,
    }
}

/// Builds one kustomization directory (`dir` relative to `root`) with the in-process kustomize
/// subset, knowing only built-in scopes (like `kubectl kustomize`). Returns the objects, or the
/// reasons the build fails. For tests and tools that compare against `kustomize build`.
pub fn build_kustomization(
    root: &Path,
    dir: &Path,
) -> Result<Vec<serde_json::Value>, Vec<Diagnostic>> {
    let mut tree = tree::Tree::load(root, &[]);
    let scopes = Scopes::new();
    let mut k = Kustomizer::new(&mut tree, &scopes);
    match k.build_dir(dir) {
        Some(built) if k.diagnostics.iter().all(|d| !d.is_error()) => {
            Ok(built.objects.iter().map(|o| o.value.clone()).collect())
        }
        _ => Err(std::mem::take(&mut k.diagnostics)),
    }
}

fn scopes(tree: &tree::Tree, schemas: &SchemaSet) -> Scopes {
    let mut scopes = Scopes::new();
    for ((group, kind), namespaced) in schemas.scopes() {
        scopes.insert(group, kind, *namespaced);
    }
    for file in tree.files.values() {
        for doc in &file.docs {
            if doc.get("kind").and_then(|k| k.as_str()) == Some("CustomResourceDefinition") {
                let spec = doc.get("spec");
                let text = |p: &[&str]| {
                    let mut n = spec;
                    for k in p {
                        n = n.and_then(|x| x.get(k));
                    }
                    n.and_then(|x| x.as_str()).map(str::to_owned)
                };
                if let (Some(g), Some(k)) = (text(&["group"]), text(&["names", "kind"])) {
                    scopes.insert(&g, &k, text(&["scope"]).as_deref() != Some("Cluster"));
                }
            }
        }
    }
    scopes
}

/// Directories under `manifests` that hold a kustomization file of kind `Kustomization`.
fn kustomization_dirs(k: &mut Kustomizer<'_>, manifests: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![manifests.to_path_buf()];
    while let Some(dir) = todo.pop() {
        if let Some(file) = k.kustomization_file(&dir) {
            let is_component = k
                .tree
                .file(&file)
                .and_then(|f| f.docs.iter().find(|d| !d.is_null()))
                .and_then(|d| d.get("kind").and_then(|n| n.as_str()).map(str::to_owned))
                .is_some_and(|kind| kind == "Component");
            if !is_component {
                out.push(dir.clone());
            }
        }
        for (entry, is_dir) in k.tree.list(&dir) {
            if is_dir {
                todo.push(entry);
            }
        }
    }
    out.sort();
    out
}

/// Kubernetes objects in files under `manifests` that no Flux Kustomization applies. Files under
/// a directory whose build failed are left out: the failure is reported, and what the directory
/// would apply once fixed is unknown (one broken kustomization would otherwise list every file
/// beneath it).
fn not_applied(
    tree: &tree::Tree,
    manifests: &Path,
    consumed: &BTreeSet<PathBuf>,
    failed: &BTreeSet<PathBuf>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (path, file) in &tree.files {
        if !path.starts_with(manifests)
            || consumed.contains(path)
            || failed.iter().any(|dir| path.starts_with(dir))
        {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if kustomize::KUSTOMIZATION_FILES.contains(&name.as_str()) {
            continue;
        }
        for doc in &file.docs {
            let text = |k: &str| doc.get(k).and_then(|n| n.as_str()).unwrap_or_default();
            let (api, kind) = (text("apiVersion"), text("kind"));
            if api.is_empty() || kind.is_empty() || api.starts_with("kustomize.config.k8s.io/") {
                continue;
            }
            let obj_name = doc
                .get("metadata")
                .and_then(|m| m.get("name"))
                .map(|n| n.scalar_text())
                .unwrap_or_default();
            out.push(
                Diagnostic::error(
                    "verify::not_applied",
                    "",
                    format!("{kind} {obj_name} is in the tree, but no Flux Kustomization applies it"),
                )
                .at(Some(doc.location(path)))
                .with_help("list the file under `resources` of the kustomization.yaml in its directory (and make sure a Flux Kustomization builds that directory), or delete it"),
            );
        }
    }
    out
}

fn check_schemas(
    tree: &tree::Tree,
    schemas: &SchemaSet,
    graph: &flux::FluxGraph,
    standalone: &[Rc<Built>],
    diags: &mut Vec<Diagnostic>,
    stats: &mut Stats,
) {
    if schemas.is_empty() {
        diags.push(
            Diagnostic::warning(
                "verify::schemas_unavailable",
                "",
                "schema checks skipped: no schema set is available, so objects were only checked by the graph and cross-resource rules",
            )
            .with_help("run `cargo xtask schemas fetch` once (needs network); verify then runs the schema and CEL checks offline"),
        );
        return;
    }
    // One check per source document: the copy Flux applies first, the standalone kustomize
    // build of a directory only for documents no Flux Kustomization reaches.
    let mut seen: HashSet<(&Path, usize)> = HashSet::new();
    let objects: Vec<&Obj> = graph
        .objects
        .iter()
        .map(|o| &o.obj)
        .chain(standalone.iter().flat_map(|b| b.objects.iter()))
        .filter(|obj| seen.insert((obj.file.as_path(), obj.doc)))
        .collect();
    // Objects are checked independently (in parallel); their findings are taken in order.
    let (reports, envs) = par::map_with(
        &objects,
        || (cel::CelEnv::new(), cel::CelStats::default()),
        |(env, cel_stats), obj| {
            let mut report = object::check_object(schemas, env, &obj.value, cel_stats);
            // Only the findings are kept; the defaulted copy is freed on the worker.
            report.defaulted = serde_json::Value::Null;
            report
        },
    );
    let mut cel_stats = cel::CelStats::default();
    for (_, s) in &envs {
        cel_stats.evaluated += s.evaluated;
        cel_stats.skipped_unknown += s.skipped_unknown;
    }
    let mut missing: BTreeSet<String> = BTreeSet::new();
    for (obj, report) in objects.into_iter().zip(reports) {
        match &report.schema {
            SchemaUse::Missing => {
                missing.insert(format!("{} {}", obj.api_version(), obj.kind()));
                continue;
            }
            SchemaUse::NotAnObject => continue,
            _ => stats.schema_checked += 1,
        }
        let what = format!("{} ({})", obj.display(), schema_source(&report.schema));
        for e in &report.errors {
            let code = if e.rule.is_some() {
                "verify::cel_rule"
            } else {
                "verify::schema"
            };
            let mut d = Diagnostic::error(code, e.path.clone(), e.body())
                .at(flux::locate(tree, obj, &e.path))
                .with_note(what.clone(), None);
            if let Some(help) = schema_hint(e) {
                d = d.with_help(help);
            }
            diags.push(d);
        }
        for w in &report.warnings {
            diags.push(
                Diagnostic::warning("verify::cel_unevaluated", w.path.clone(), w.body())
                    .at(flux::locate(tree, obj, &w.path))
                    .with_note(what.clone(), None),
            );
        }
    }
    stats.cel_evaluated = cel_stats.evaluated;
    stats.cel_skipped = cel_stats.skipped_unknown;
    if !missing.is_empty() {
        diags.push(
            Diagnostic::warning(
                "verify::schema_missing",
                "",
                format!(
                    "no schema for {} kind(s), so their objects were only checked by the graph and cross-resource rules: {}",
                    missing.len(),
                    missing.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
            .with_help("add the CRDs to the pinned schema set (crates/verify/src/pins.rs) if these kinds matter"),
        );
    }
    stats.schema_missing = missing.into_iter().collect();
}

fn schema_source(s: &SchemaUse) -> String {
    match s {
        SchemaUse::Crd { source } | SchemaUse::BuiltIn { source } => source.clone(),
        SchemaUse::NotServed { .. } => "version not served".to_owned(),
        SchemaUse::Missing | SchemaUse::NotAnObject => "no schema".to_owned(),
    }
}

/// Hints for rule failures the plan met on a real cluster, and for the generic kinds.
fn schema_hint(e: &FieldError) -> Option<String> {
    let hint = match e.kind {
        FieldErrorKind::UnknownField => {
            "the schema does not declare this field: remove it or fix its spelling (the API server rejects it with strict field validation)"
        }
        FieldErrorKind::Required => "add the required field",
        _ if e
            .detail
            .contains("only InferencePool from inference.networking.k8s.io group is supported") =>
        {
            "reference an AIServiceBackend by `name` (and `namespace`) only: omit `group` and `kind`, which are for InferencePools"
        }
        _ if e
            .detail
            .contains("BackendRef must be a Backend resource of Envoy Gateway") =>
        {
            "set `backendRef: {group: gateway.envoyproxy.io, kind: Backend, name: …}`; Services are not accepted in v0.4.0"
        }
        _ => return None,
    };
    Some(hint.to_owned())
}

fn sorted(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    fn key(d: &Diagnostic) -> Option<(&Path, u32, u32)> {
        d.location
            .as_ref()
            .map(|l| (l.file.as_path(), l.line, l.col))
    }
    diags.sort_by(|a, b| {
        key(a)
            .cmp(&key(b))
            .then_with(|| a.code.cmp(&b.code))
            .then_with(|| a.message.cmp(&b.message))
    });
    diags.dedup_by(|a, b| a == b);
    diags
}
