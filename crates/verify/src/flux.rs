//! The Flux graph: which Flux Kustomization applies which object, and whether every reference
//! between Flux objects resolves.
//!
//! Starting from the entry Kustomization, each Kustomization's `path` is built the way
//! kustomize-controller builds it (see `kustomize/flux.rs`); the Flux Kustomizations found in a
//! build are followed in turn. The result is the desired cluster state with an owner for every
//! object — two owners for one object is the double apply of the plan's §11.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use schema::{Diagnostic, Location};
use serde_json::Value;

use crate::config::VerifyConfig;
use crate::kustomize::{FluxOverrides, Kustomizer, Obj};
use crate::tree::{Tree, join_rel, node_at};

pub(crate) const KS_GROUP: &str = "kustomize.toolkit.fluxcd.io";
pub(crate) const HELM_GROUP: &str = "helm.toolkit.fluxcd.io";
pub(crate) const SOURCE_GROUP: &str = "source.toolkit.fluxcd.io";

/// One Flux Kustomization: the entry, or one found in a build.
pub(crate) struct FluxKs {
    pub(crate) name: String,
    pub(crate) namespace: String,
    /// The object (for found ones) and the index of the Kustomization that applies it.
    pub(crate) obj: Option<(Obj, usize)>,
}

impl FluxKs {
    pub(crate) fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// An object of the desired state with the Flux Kustomization that applies it.
pub(crate) struct Owned {
    pub(crate) obj: Obj,
    pub(crate) owner: usize,
}

pub(crate) struct FluxGraph {
    pub(crate) kustomizations: Vec<FluxKs>,
    pub(crate) objects: Vec<Owned>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

/// Where an object's field is, for diagnostics.
pub(crate) fn locate(tree: &Tree, obj: &Obj, path: &str) -> Option<Location> {
    let doc = tree.files.get(&obj.file)?.docs.get(obj.doc)?;
    Some(node_at(doc, path).location(&obj.file))
}

pub(crate) fn resolve(k: &mut Kustomizer<'_>, config: &VerifyConfig) -> FluxGraph {
    let mut g = FluxGraph {
        kustomizations: vec![FluxKs {
            name: config.entry.name.clone(),
            namespace: config.entry.namespace.clone(),
            obj: None,
        }],
        objects: Vec::new(),
        diagnostics: Vec::new(),
    };
    let mut queue: Vec<(usize, PathBuf, FluxOverrides)> = vec![(
        0,
        config.entry.path.clone(),
        FluxOverrides {
            target_namespace: None,
            patches: Vec::new(),
            components: Vec::new(),
            name_prefix: String::new(),
            name_suffix: String::new(),
            at: None,
        },
    )];
    if !k.tree.is_dir(&config.entry.path) {
        g.diagnostics.push(
            Diagnostic::error(
                "verify::flux_path_missing",
                "",
                format!(
                    "the Flux entry point `{}` does not exist; nothing would be applied",
                    config.entry.path.display()
                ),
            )
            .with_help("render the tree first (`cargo xtask configure`)"),
        );
        return g;
    }
    // (namespace, name) of every Kustomization followed so far.
    let mut followed: HashSet<(String, String)> = HashSet::new();
    followed.insert((config.entry.namespace.clone(), config.entry.name.clone()));
    let mut head = 0;
    while head < queue.len() {
        let (owner, path, overrides) = queue[head].clone();
        head += 1;
        let Some(built) = k.build_flux(&path, &overrides) else {
            k.failed.insert(path.clone());
            continue;
        };
        for obj in built.objects {
            let namespaced = k.scopes.namespaced(obj.group(), obj.kind());
            if namespaced == Some(true) && obj.namespace().is_none() {
                let ks = &g.kustomizations[owner];
                g.diagnostics.push(
                    Diagnostic::error(
                        "verify::namespace_missing",
                        "metadata.namespace",
                        format!(
                            "{} {} has no namespace and Kustomization {} sets no `targetNamespace`; Flux fails with \"namespace not specified\"",
                            obj.kind(),
                            obj.name(),
                            ks.id()
                        ),
                    )
                    .at(locate(k.tree, &obj, "metadata"))
                    .with_help("set `namespace:` in the kustomization.yaml that lists this file, or `spec.targetNamespace` on the Flux Kustomization"),
                );
            }
            // A Kustomization applied twice is reported by the ownership check; following it a
            // second time would only repeat every finding below it.
            if obj.group() == KS_GROUP
                && obj.kind() == "Kustomization"
                && followed.insert((
                    obj.namespace().unwrap_or("default").to_owned(),
                    obj.name().to_owned(),
                ))
            {
                let idx = g.kustomizations.len();
                g.kustomizations.push(FluxKs {
                    name: obj.name().to_owned(),
                    namespace: obj.namespace().unwrap_or("default").to_owned(),
                    obj: Some((obj.clone(), owner)),
                });
                if let Some(next) = follow(k.tree, &obj, idx, config, &mut g.diagnostics) {
                    queue.push(next);
                }
            }
            g.objects.push(Owned { obj, owner });
        }
    }
    check_ownership(k.tree, &mut g, k.scopes);
    check_depends_on(k.tree, &mut g);
    check_helm(k.tree, &mut g);
    g
}

/// The build a found Kustomization asks for, if it builds from this repository.
fn follow(
    tree: &Tree,
    obj: &Obj,
    idx: usize,
    config: &VerifyConfig,
    diags: &mut Vec<Diagnostic>,
) -> Option<(usize, PathBuf, FluxOverrides)> {
    let spec = obj.value.get("spec")?;
    let ns = obj.namespace().unwrap_or("default");
    let src = spec.get("sourceRef");
    let s = |k: &str| src.and_then(|s| s.get(k)).and_then(Value::as_str);
    let ours = s("kind") == Some(config.entry.source_kind.as_str())
        && s("name") == Some(config.entry.source_name.as_str())
        && s("namespace").unwrap_or(ns) == config.entry.source_namespace;
    if !ours {
        diags.push(
            Diagnostic::warning(
                "verify::flux_source_external",
                "spec.sourceRef",
                format!(
                    "Kustomization {ns}/{} builds from {} {}, not from this repository; what it applies is not checked",
                    obj.name(),
                    s("kind").unwrap_or("?"),
                    s("name").unwrap_or("?")
                ),
            )
            .at(locate(tree, obj, "spec.sourceRef")),
        );
        return None;
    }
    let raw = spec.get("path").and_then(Value::as_str).unwrap_or("./");
    let at = locate(tree, obj, "spec.path");
    let missing = |why: String| {
        Diagnostic::error("verify::flux_path_missing", "spec.path", why)
            .at(at.clone())
            .with_help("`spec.path` is relative to the repository root, like `./kubernetes/apps/<ns>/<app>/app`")
    };
    let Some(path) = join_rel(std::path::Path::new(""), raw) else {
        diags.push(missing(format!("path `{raw}` leaves the repository")));
        return None;
    };
    if !tree.is_dir(&path) {
        diags.push(missing(format!(
            "Kustomization {ns}/{} points at `{raw}`, which is not a directory in the repository",
            obj.name()
        )));
        return None;
    }
    let list = |k: &str| -> Vec<Value> {
        spec.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    Some((
        idx,
        path,
        FluxOverrides {
            target_namespace: spec
                .get("targetNamespace")
                .and_then(Value::as_str)
                .map(str::to_owned),
            patches: list("patches"),
            components: list("components")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            name_prefix: spec
                .get("namePrefix")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            name_suffix: spec
                .get("nameSuffix")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            at: locate(tree, obj, "spec.path"),
        },
    ))
}

/// Identity of an object in the cluster: group, kind, namespace (none if cluster-scoped), name.
pub(crate) fn identity(
    obj: &Obj,
    scopes: &crate::kustomize::Scopes,
) -> (String, String, String, String) {
    let ns = match scopes.namespaced(obj.group(), obj.kind()) {
        Some(false) => String::new(),
        _ => obj.namespace().unwrap_or_default().to_owned(),
    };
    (
        obj.group().to_owned(),
        obj.kind().to_owned(),
        ns,
        obj.name().to_owned(),
    )
}

fn check_ownership(tree: &Tree, g: &mut FluxGraph, scopes: &crate::kustomize::Scopes) {
    let mut first: HashMap<(String, String, String, String), usize> = HashMap::new();
    let mut diags = Vec::new();
    for (i, o) in g.objects.iter().enumerate() {
        let id = identity(&o.obj, scopes);
        match first.get(&id) {
            None => {
                first.insert(id, i);
            }
            Some(&j) => {
                let prev = &g.objects[j];
                let (a, b) = (
                    g.kustomizations[prev.owner].id(),
                    g.kustomizations[o.owner].id(),
                );
                diags.push(
                    Diagnostic::error(
                        "verify::double_apply",
                        "",
                        format!(
                            "{} is applied by two Flux Kustomizations: {a} and {b}",
                            o.obj.display()
                        ),
                    )
                    .at(locate(tree, &o.obj, "metadata.name"))
                    .with_note(
                        format!("also applied by {a} from here"),
                        locate(tree, &prev.obj, "metadata.name"),
                    )
                    .with_help("every object needs exactly one owner: a Kustomization whose path contains the directories of other Kustomizations applies their objects too (the plan's §11 bug); point it at a directory of its own or drop the second Kustomization"),
                );
            }
        }
    }
    g.diagnostics.extend(diags);
}

fn check_depends_on(tree: &Tree, g: &mut FluxGraph) {
    let index: HashMap<(String, String), usize> = g
        .kustomizations
        .iter()
        .enumerate()
        .map(|(i, k)| ((k.namespace.clone(), k.name.clone()), i))
        .collect();
    // Namespaces per Kustomization name, in order, for the hint of a reference that misses.
    let mut by_name: HashMap<&str, Vec<&str>> = HashMap::new();
    for k in &g.kustomizations {
        by_name.entry(&k.name).or_default().push(&k.namespace);
    }
    let mut edges: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut diags = Vec::new();
    for (i, ks) in g.kustomizations.iter().enumerate() {
        let Some((obj, _)) = &ks.obj else { continue };
        let deps = obj
            .value
            .pointer("/spec/dependsOn")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (d, dep) in deps.iter().enumerate() {
            let Some(name) = dep.get("name").and_then(Value::as_str) else {
                continue;
            };
            let ns = dep
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(&ks.namespace);
            match index.get(&(ns.to_owned(), name.to_owned())) {
                Some(&j) => edges.entry(i).or_default().push(j),
                None => {
                    let elsewhere: Vec<String> = by_name
                        .get(name)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(|ns| format!("`{ns}`"))
                        .collect();
                    let help = if elsewhere.is_empty() {
                        format!(
                            "no Flux Kustomization is named `{name}`; fix the name or add the Kustomization"
                        )
                    } else {
                        format!(
                            "a Kustomization `{name}` exists in namespace {}; `dependsOn` defaults to the dependent's own namespace ({}), so set `namespace:` on the reference",
                            elsewhere.join(", "),
                            ks.namespace
                        )
                    };
                    diags.push(
                        Diagnostic::error(
                            "verify::depends_on_missing",
                            format!("spec.dependsOn[{d}]"),
                            format!(
                                "Kustomization {} depends on {ns}/{name}, which does not exist; it will never become ready",
                                ks.id()
                            ),
                        )
                        .at(locate(tree, obj, &format!("spec.dependsOn[{d}]")))
                        .with_help(help),
                    );
                }
            }
        }
    }
    // Cycles: depth-first search with colours; each cycle is reported once, at its first member.
    let n = g.kustomizations.len();
    let mut colour = vec![0u8; n];
    let mut stack = Vec::new();
    let mut cycles: Vec<Vec<usize>> = Vec::new();
    fn dfs(
        v: usize,
        edges: &BTreeMap<usize, Vec<usize>>,
        colour: &mut [u8],
        stack: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        colour[v] = 1;
        stack.push(v);
        for &w in edges.get(&v).map(Vec::as_slice).unwrap_or_default() {
            if colour[w] == 1 {
                let start = stack.iter().position(|&x| x == w).unwrap_or(0);
                cycles.push(stack[start..].to_vec());
            } else if colour[w] == 0 {
                dfs(w, edges, colour, stack, cycles);
            }
        }
        stack.pop();
        colour[v] = 2;
    }
    for v in 0..n {
        if colour[v] == 0 {
            dfs(v, &edges, &mut colour, &mut stack, &mut cycles);
        }
    }
    for cycle in cycles {
        let names: Vec<String> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| g.kustomizations[i].id())
            .collect();
        let first = &g.kustomizations[cycle[0]];
        let at = first
            .obj
            .as_ref()
            .and_then(|(o, _)| locate(tree, o, "spec.dependsOn"));
        diags.push(
            Diagnostic::error(
                "verify::depends_on_cycle",
                "spec.dependsOn",
                format!(
                    "Kustomizations depend on each other in a cycle: {}",
                    names.join(" -> ")
                ),
            )
            .at(at)
            .with_help(
                "Flux waits forever on a dependency cycle; remove one of the `dependsOn` entries",
            ),
        );
    }
    g.diagnostics.extend(diags);
}

fn check_helm(tree: &Tree, g: &mut FluxGraph) {
    // Every applied object by (group, kind, namespace or `default`, name).
    let applied: HashSet<(&str, &str, &str, &str)> = g
        .objects
        .iter()
        .map(|o| {
            let o = &o.obj;
            (
                o.group(),
                o.kind(),
                o.namespace().unwrap_or("default"),
                o.name(),
            )
        })
        .collect();
    let find =
        |group: &str, kind: &str, ns: &str, name: &str| applied.contains(&(group, kind, ns, name));
    let mut diags = Vec::new();
    for o in &g.objects {
        let obj = &o.obj;
        if obj.group() != HELM_GROUP || obj.kind() != "HelmRelease" {
            continue;
        }
        let ns = obj.namespace().unwrap_or("default");
        let spec = obj.value.get("spec");
        let mut refs: Vec<(String, &Value, &str)> = Vec::new();
        if let Some(r) = spec.and_then(|s| s.get("chartRef")) {
            refs.push(("spec.chartRef".to_owned(), r, SOURCE_GROUP));
        }
        if let Some(r) = spec.and_then(|s| s.pointer("/chart/spec/sourceRef")) {
            refs.push(("spec.chart.spec.sourceRef".to_owned(), r, SOURCE_GROUP));
        }
        for (path, r, group) in refs {
            let kind = r.get("kind").and_then(Value::as_str).unwrap_or_default();
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            let rns = r.get("namespace").and_then(Value::as_str).unwrap_or(ns);
            if kind == "ExternalArtifact" || name.contains("${") {
                continue;
            }
            if !find(group, kind, rns, name) {
                diags.push(
                    Diagnostic::error(
                        "verify::chart_ref_missing",
                        path.clone(),
                        format!(
                            "HelmRelease {ns}/{} takes its chart from {kind} {rns}/{name}, which no Flux Kustomization applies",
                            obj.name()
                        ),
                    )
                    .at(locate(tree, obj, &path))
                    .with_help(format!("add the {kind} next to the HelmRelease (app/ocirepository.yaml) and list it in app/kustomization.yaml")),
                );
            }
        }
        let deps = spec
            .and_then(|s| s.get("dependsOn"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (d, dep) in deps.iter().enumerate() {
            let Some(name) = dep.get("name").and_then(Value::as_str) else {
                continue;
            };
            let dns = dep.get("namespace").and_then(Value::as_str).unwrap_or(ns);
            if !find(HELM_GROUP, "HelmRelease", dns, name) {
                let path = format!("spec.dependsOn[{d}]");
                diags.push(
                    Diagnostic::error(
                        "verify::depends_on_missing",
                        path.clone(),
                        format!(
                            "HelmRelease {ns}/{} depends on HelmRelease {dns}/{name}, which does not exist",
                            obj.name()
                        ),
                    )
                    .at(locate(tree, obj, &path))
                    .with_help("`dependsOn` of a HelmRelease names other HelmReleases (namespace defaults to its own)"),
                );
            }
        }
    }
    g.diagnostics.extend(diags);
}
