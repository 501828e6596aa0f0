//! An in-process subset of `kustomize build` — enough to know which objects each directory
//! produces, with which namespace, and from which file and line.
//!
//! Modelled: `resources` (files and directories), `components`, `namespace`, `patches`,
//! `patchesStrategicMerge`, `patchesJson6902`, `commonLabels`, `labels`, `commonAnnotations`,
//! `namePrefix`/`nameSuffix`, and Flux's generated kustomization for a path without one
//! (every sub-directory holding a kustomization file is a resource and is not descended into;
//! every other `*.yaml`/`*.yml` file is a resource). Strategic-merge patches merge maps and
//! merge lists of named items by `name`; other lists are replaced. Generators, Helm charts,
//! replacements and remote bases are not modelled and are reported as such.
//!
//! `kubectl kustomize` is the independent oracle for this module in the tests.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use regex::Regex;
use schema::yaml::{self, Limits, Node};
use schema::{Diagnostic, Location};
use serde_json::{Map, Value};

use crate::tree::{Tree, join_rel};

pub(crate) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// One object as a build produced it, remembering the document it came from.
#[derive(Clone, Debug)]
pub(crate) struct Obj {
    pub(crate) value: Value,
    pub(crate) file: PathBuf,
    pub(crate) doc: usize,
}

impl Obj {
    // The accessors below read fields with `get` rather than `Value::pointer`, which allocates
    // (it unescapes every segment): they run for every object in every index and lookup.
    pub(crate) fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    pub(crate) fn kind(&self) -> &str {
        self.value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    pub(crate) fn group(&self) -> &str {
        self.api_version().split_once('/').map_or("", |(g, _)| g)
    }
    pub(crate) fn name(&self) -> &str {
        self.meta("name").unwrap_or_default()
    }
    pub(crate) fn namespace(&self) -> Option<&str> {
        self.meta("namespace")
    }
    fn meta(&self, key: &str) -> Option<&str> {
        self.value
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
    }
    /// The id kustomize registers an object under (before any scope is known): group, kind,
    /// namespace (empty when unset), name.
    fn res_id(&self) -> ResId {
        (
            self.group().to_owned(),
            self.kind().to_owned(),
            self.namespace().unwrap_or_default().to_owned(),
            self.name().to_owned(),
        )
    }
    /// `Kind/name` or `Kind/namespace/name` for messages.
    pub(crate) fn display(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }
}

type ResId = (String, String, String, String);

/// The objects of one build in order, with the position of the first object of each id (what
/// kustomize's resource map refuses a second time).
#[derive(Default)]
struct Building {
    objects: Vec<Obj>,
    first: HashMap<ResId, usize>,
}

impl Building {
    /// Re-reads every id after a transformation may have changed namespaces or names.
    fn reindex(&mut self) {
        self.first.clear();
        for (i, o) in self.objects.iter().enumerate() {
            self.first.entry(o.res_id()).or_insert(i);
        }
    }
}

/// Which kinds are cluster-scoped.
pub(crate) struct Scopes {
    /// group → kind → namespaced (nested so that a lookup by `&str` allocates nothing).
    known: HashMap<String, HashMap<String, bool>>,
}

/// Built-in kinds and their scope (the ones a GitOps tree meets).
const BUILTIN_SCOPES: &[(&str, &str, bool)] = &[
    ("", "Namespace", false),
    ("", "Node", false),
    ("", "PersistentVolume", false),
    ("", "ComponentStatus", false),
    ("", "ConfigMap", true),
    ("", "Secret", true),
    ("", "Service", true),
    ("", "ServiceAccount", true),
    ("", "Pod", true),
    ("", "PersistentVolumeClaim", true),
    ("", "Endpoints", true),
    ("", "LimitRange", true),
    ("", "ResourceQuota", true),
    ("apps", "Deployment", true),
    ("apps", "StatefulSet", true),
    ("apps", "DaemonSet", true),
    ("apps", "ReplicaSet", true),
    ("batch", "Job", true),
    ("batch", "CronJob", true),
    ("rbac.authorization.k8s.io", "ClusterRole", false),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", false),
    ("rbac.authorization.k8s.io", "Role", true),
    ("rbac.authorization.k8s.io", "RoleBinding", true),
    ("apiextensions.k8s.io", "CustomResourceDefinition", false),
    ("storage.k8s.io", "StorageClass", false),
    ("storage.k8s.io", "CSIDriver", false),
    ("scheduling.k8s.io", "PriorityClass", false),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        false,
    ),
    ("apiregistration.k8s.io", "APIService", false),
    ("networking.k8s.io", "IngressClass", false),
    ("networking.k8s.io", "Ingress", true),
    ("networking.k8s.io", "NetworkPolicy", true),
    ("node.k8s.io", "RuntimeClass", false),
    ("policy", "PodDisruptionBudget", true),
    ("autoscaling", "HorizontalPodAutoscaler", true),
    ("coordination.k8s.io", "Lease", true),
];

impl Scopes {
    pub(crate) fn new() -> Scopes {
        let mut scopes = Scopes {
            known: HashMap::new(),
        };
        for (g, k, ns) in BUILTIN_SCOPES {
            scopes.insert(g, k, *ns);
        }
        scopes
    }

    pub(crate) fn insert(&mut self, group: &str, kind: &str, namespaced: bool) {
        self.known
            .entry(group.to_owned())
            .or_default()
            .insert(kind.to_owned(), namespaced);
    }

    /// `Some(true)` namespaced, `Some(false)` cluster-scoped, `None` unknown.
    pub(crate) fn namespaced(&self, group: &str, kind: &str) -> Option<bool> {
        self.known.get(group)?.get(kind).copied()
    }
}

/// What one build produced.
#[derive(Clone, Debug, Default)]
pub(crate) struct Built {
    pub(crate) objects: Vec<Obj>,
}

/// Extra inputs a Flux Kustomization adds to the build of its path.
#[derive(Clone, Debug)]
pub(crate) struct FluxOverrides {
    pub(crate) target_namespace: Option<String>,
    /// `spec.patches` entries (`patch` + optional `target`) as JSON.
    pub(crate) patches: Vec<Value>,
    /// `spec.components`, relative to the path.
    pub(crate) components: Vec<String>,
    /// `spec.namePrefix` / `spec.nameSuffix`.
    pub(crate) name_prefix: String,
    pub(crate) name_suffix: String,
    /// Where the Flux Kustomization is declared (for messages).
    pub(crate) at: Option<Location>,
}

pub(crate) struct Kustomizer<'t> {
    pub(crate) tree: &'t mut Tree,
    pub(crate) scopes: &'t Scopes,
    cache: HashMap<PathBuf, Option<Rc<Built>>>,
    stack: Vec<PathBuf>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Files read as resources, patches or kustomization files by any build.
    pub(crate) consumed: BTreeSet<PathBuf>,
    /// Directories whose build failed (the reason is among the diagnostics): what they would
    /// have applied is unknown.
    pub(crate) failed: BTreeSet<PathBuf>,
    /// Objects added to builds so far, against [`MAX_BUILT_OBJECTS`].
    built: usize,
    /// Set once the budget is spent (reported once); every build fails from then on.
    exhausted: bool,
}

/// Objects all kustomize builds of one verify run may produce together. Kustomizations that
/// list each other as resources multiply: ten directories each including the next level ten
/// times make 10^8 objects from 80 small files. The 1,000-deployment benchmark tree builds a
/// few thousand.
pub(crate) const MAX_BUILT_OBJECTS: usize = 200_000;

/// A parsed kustomization (file or Flux-generated).
struct Spec {
    dir: PathBuf,
    /// The kustomization file, if there is one (for messages).
    file: Option<PathBuf>,
    doc: Option<Node>,
    is_component: bool,
    resources: Vec<(String, Option<Location>)>,
    components: Vec<(String, Option<Location>)>,
    namespace: Option<String>,
    patches: Vec<PatchSource>,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    name_prefix: String,
    name_suffix: String,
}

enum PatchSource {
    /// A patch document (SMP) or op list (JSON 6902), with an optional target selector.
    Inline {
        patch: Value,
        target: Option<Value>,
        at: Option<Location>,
    },
}

const KNOWN_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "bases",
    "components",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "replicas",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
    "generators",
    "transformers",
    "validators",
    "helmCharts",
    "helmGlobals",
    "crds",
    "openapi",
    "replacements",
    "vars",
    "buildMetadata",
    "sortOptions",
    "configurations",
];

/// Keys that generate or rewrite objects in ways this subset does not follow.
const UNMODELLED: &[&str] = &[
    "configMapGenerator",
    "secretGenerator",
    "generators",
    "transformers",
    "helmCharts",
    "replacements",
    "vars",
];

impl<'t> Kustomizer<'t> {
    pub(crate) fn new(tree: &'t mut Tree, scopes: &'t Scopes) -> Kustomizer<'t> {
        Kustomizer {
            tree,
            scopes,
            cache: HashMap::new(),
            stack: Vec::new(),
            diagnostics: Vec::new(),
            consumed: BTreeSet::new(),
            failed: BTreeSet::new(),
            built: 0,
            exhausted: false,
        }
    }

    /// The kustomization file in `dir`, if any.
    pub(crate) fn kustomization_file(&self, dir: &Path) -> Option<PathBuf> {
        KUSTOMIZATION_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|p| self.tree.root.join(p).is_file())
    }

    /// `kustomize build <dir>` for a directory holding a kustomization file. `None` if the
    /// build fails (the reasons are in `diagnostics`).
    pub(crate) fn build_dir(&mut self, dir: &Path) -> Option<Rc<Built>> {
        if let Some(done) = self.cache.get(dir) {
            return done.clone();
        }
        if self.stack.iter().any(|d| d == dir) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .chain(std::iter::once(&dir.to_path_buf()))
                .map(|p| p.display().to_string())
                .collect();
            self.diagnostics.push(Diagnostic::error(
                "verify::kustomize_cycle",
                "",
                format!("kustomizations include each other: {}", chain.join(" -> ")),
            ));
            return None;
        }
        let spec = self.read_spec(dir, false)?;
        self.stack.push(dir.to_path_buf());
        let built = self.build_spec(&spec, None).map(Rc::new);
        self.stack.pop();
        if built.is_none() {
            self.failed.insert(dir.to_path_buf());
        }
        self.cache.insert(dir.to_path_buf(), built.clone());
        built
    }

    /// What a Flux Kustomization with `path` applies: the path's kustomization (generated when
    /// missing, as Flux does) with the Flux Kustomization's namespace, patches and components.
    pub(crate) fn build_flux(&mut self, path: &Path, flux: &FluxOverrides) -> Option<Built> {
        let mut spec = if self.kustomization_file(path).is_some() {
            self.read_spec(path, false)?
        } else {
            self.generated_spec(path)
        };
        if let Some(ns) = &flux.target_namespace {
            spec.namespace = Some(ns.clone());
        }
        spec.name_prefix = format!("{}{}", flux.name_prefix, spec.name_prefix);
        spec.name_suffix = format!("{}{}", spec.name_suffix, flux.name_suffix);
        for c in &flux.components {
            spec.components.push((c.clone(), flux.at.clone()));
        }
        for p in &flux.patches {
            if let Some(patch) = p.get("patch").and_then(Value::as_str) {
                let parsed = yaml::load(patch, Path::new("<flux patch>"), Limits::MANIFESTS);
                for d in parsed.documents.iter().filter(|d| !d.is_null()) {
                    spec.patches.push(PatchSource::Inline {
                        patch: d.to_json(),
                        target: p.get("target").cloned(),
                        at: flux.at.clone(),
                    });
                }
            }
        }
        self.stack.push(path.to_path_buf());
        let built = self.build_spec(&spec, flux.at.clone());
        self.stack.pop();
        built
    }

    /// Flux's generated kustomization for a directory without one.
    fn generated_spec(&mut self, dir: &Path) -> Spec {
        let mut resources = Vec::new();
        self.scan_generated(dir, dir, &mut resources);
        Spec {
            dir: dir.to_path_buf(),
            file: None,
            doc: None,
            is_component: false,
            resources: resources.into_iter().map(|r| (r, None)).collect(),
            components: Vec::new(),
            namespace: None,
            patches: Vec::new(),
            labels: Vec::new(),
            annotations: Vec::new(),
            name_prefix: String::new(),
            name_suffix: String::new(),
        }
    }

    fn scan_generated(&self, base: &Path, dir: &Path, out: &mut Vec<String>) {
        for (entry, is_dir) in self.tree.list(dir) {
            let rel = entry
                .strip_prefix(base)
                .unwrap_or(&entry)
                .to_string_lossy()
                .into_owned();
            if is_dir {
                if self.kustomization_file(&entry).is_some() {
                    out.push(rel);
                } else {
                    self.scan_generated(base, &entry, out);
                }
            } else if rel.ends_with(".yaml") || rel.ends_with(".yml") {
                out.push(rel);
            }
        }
    }

    fn read_spec(&mut self, dir: &Path, want_component: bool) -> Option<Spec> {
        let Some(file) = self.kustomization_file(dir) else {
            self.diagnostics.push(Diagnostic::error(
                "verify::kustomize_missing",
                "",
                format!(
                    "{} has no kustomization.yaml, kustomization.yml or Kustomization",
                    dir.display()
                ),
            ));
            return None;
        };
        self.consumed.insert(file.clone());
        let doc = self
            .tree
            .file(&file)
            .and_then(|f| f.docs.iter().find(|d| !d.is_null()).cloned());
        let Some(doc) = doc else {
            self.invalid(&file, None, "kustomization file is empty or does not parse");
            return None;
        };
        if doc.as_map().is_none() {
            self.invalid(&file, Some(&doc), "kustomization file is not a mapping");
            return None;
        }
        let loc = |n: &Node| Some(n.location(&file));
        let kind = doc
            .get("kind")
            .and_then(Node::as_str)
            .unwrap_or("Kustomization");
        let is_component = kind == "Component";
        if !matches!(kind, "Kustomization" | "Component") {
            self.invalid(
                &file,
                doc.get("kind"),
                &format!("unknown kustomization kind `{kind}`"),
            );
            return None;
        }
        if is_component != want_component {
            let what = if want_component {
                "listed under `components` but is a Kustomization, not a Component"
            } else {
                "is a Component; list it under `components`, not `resources`"
            };
            self.diagnostics.push(
                Diagnostic::error(
                    "verify::kustomize_invalid",
                    "",
                    format!("{} {what}", dir.display()),
                )
                .at(loc(&doc)),
            );
            return None;
        }
        let mut spec = Spec {
            dir: dir.to_path_buf(),
            file: Some(file.clone()),
            doc: Some(doc.clone()),
            is_component,
            resources: Vec::new(),
            components: Vec::new(),
            namespace: doc
                .get("namespace")
                .and_then(Node::as_str)
                .map(str::to_owned),
            patches: Vec::new(),
            labels: Vec::new(),
            annotations: Vec::new(),
            name_prefix: doc
                .get("namePrefix")
                .and_then(Node::as_str)
                .unwrap_or_default()
                .to_owned(),
            name_suffix: doc
                .get("nameSuffix")
                .and_then(Node::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        for (k, v) in doc.as_map().unwrap_or_default() {
            let key = k.scalar_text();
            if !KNOWN_KEYS.contains(&key.as_str()) {
                self.diagnostics.push(
                    Diagnostic::error(
                        "verify::kustomize_invalid",
                        key.clone(),
                        format!("unknown field `{key}` in kustomization"),
                    )
                    .at(loc(k))
                    .with_help("kustomize rejects unknown fields; check the spelling against the kustomization reference"),
                );
            } else if UNMODELLED.contains(&key.as_str()) {
                self.diagnostics.push(
                    Diagnostic::warning(
                        "verify::kustomize_unmodelled",
                        key.clone(),
                        format!("`{key}` is not modelled by verify; what it generates or rewrites is not checked"),
                    )
                    .at(loc(k)),
                );
            }
            let _ = v;
        }
        for key in ["resources", "bases"] {
            spec.resources.extend(self.string_list(&file, &doc, key));
        }
        spec.components = self.string_list(&file, &doc, "components");
        self.read_patches(&file, &doc, &mut spec);
        for key in ["commonLabels", "commonAnnotations"] {
            if let Some(map) = doc.get(key).and_then(Node::as_map) {
                let pairs = map.iter().map(|(k, v)| (k.scalar_text(), v.scalar_text()));
                if key == "commonLabels" {
                    spec.labels.extend(pairs);
                } else {
                    spec.annotations.extend(pairs);
                }
            }
        }
        if let Some(items) = doc.get("labels").and_then(Node::as_seq) {
            for item in items {
                if let Some(pairs) = item.get("pairs").and_then(Node::as_map) {
                    spec.labels.extend(
                        pairs
                            .iter()
                            .map(|(k, v)| (k.scalar_text(), v.scalar_text())),
                    );
                }
            }
        }
        Some(spec)
    }

    fn string_list(
        &mut self,
        file: &Path,
        doc: &Node,
        key: &str,
    ) -> Vec<(String, Option<Location>)> {
        let Some(node) = doc.get(key) else {
            return Vec::new();
        };
        let Some(items) = node.as_seq() else {
            self.invalid(
                file,
                Some(node),
                &format!("`{key}` must be a list of paths"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match item.as_str() {
                Some(s) => out.push((s.to_owned(), Some(item.location(file)))),
                None => self.invalid(
                    file,
                    Some(item),
                    &format!("`{key}` entries must be strings"),
                ),
            }
        }
        out
    }

    fn read_patches(&mut self, file: &Path, doc: &Node, spec: &mut Spec) {
        let dir = spec.dir.clone();
        for key in ["patches", "patchesJson6902"] {
            let Some(items) = doc.get(key).and_then(Node::as_seq) else {
                continue;
            };
            for item in items {
                let at = Some(item.location(file));
                let target = item.get("target").map(Node::to_json);
                if let Some(text) = item.get("patch").and_then(Node::as_str) {
                    let parsed = yaml::load(text, file, Limits::MANIFESTS);
                    for d in parsed.documents.iter().filter(|d| !d.is_null()) {
                        spec.patches.push(PatchSource::Inline {
                            patch: d.to_json(),
                            target: target.clone(),
                            at: at.clone(),
                        });
                    }
                } else if let Some(path) = item.get("path").and_then(Node::as_str) {
                    for patch in self.patch_file(&dir, path, item, file) {
                        spec.patches.push(PatchSource::Inline {
                            patch,
                            target: target.clone(),
                            at: at.clone(),
                        });
                    }
                } else {
                    self.invalid(file, Some(item), "a patch needs `patch` or `path`");
                }
            }
        }
        if let Some(items) = doc.get("patchesStrategicMerge").and_then(Node::as_seq) {
            for item in items {
                let at = Some(item.location(file));
                let Some(text) = item.as_str() else { continue };
                let patches =
                    if text.contains('\n') || text.contains(':') && !text.ends_with(".yaml") {
                        let parsed = yaml::load(text, file, Limits::MANIFESTS);
                        parsed
                            .documents
                            .iter()
                            .filter(|d| !d.is_null())
                            .map(Node::to_json)
                            .collect()
                    } else {
                        self.patch_file(&dir, text, item, file)
                    };
                for patch in patches {
                    spec.patches.push(PatchSource::Inline {
                        patch,
                        target: None,
                        at: at.clone(),
                    });
                }
            }
        }
    }

    fn patch_file(&mut self, dir: &Path, path: &str, item: &Node, file: &Path) -> Vec<Value> {
        let Some(rel) = join_rel(dir, path) else {
            self.missing(
                file,
                item,
                &format!("patch `{path}` is outside the repository"),
            );
            return Vec::new();
        };
        self.consumed.insert(rel.clone());
        match self.tree.file(&rel) {
            Some(f) => f
                .docs
                .iter()
                .filter(|d| !d.is_null())
                .map(Node::to_json)
                .collect(),
            None => {
                self.missing(file, item, &format!("patch file `{path}` does not exist"));
                Vec::new()
            }
        }
    }

    fn invalid(&mut self, file: &Path, node: Option<&Node>, msg: &str) {
        let loc = node
            .map(|n| n.location(file))
            .unwrap_or_else(|| Location::new(file, 1, 1, 1));
        self.diagnostics
            .push(Diagnostic::error("verify::kustomize_invalid", "", msg.to_owned()).at(Some(loc)));
    }

    fn missing(&mut self, file: &Path, node: &Node, msg: &str) {
        self.diagnostics.push(
            Diagnostic::error("verify::kustomize_missing", "", msg.to_owned())
                .at(Some(node.location(file)))
                .with_help("fix the path (it is relative to the directory of the kustomization file) or render the missing file"),
        );
    }

    fn build_spec(&mut self, spec: &Spec, flux_at: Option<Location>) -> Option<Built> {
        let mut out = Building::default();
        let mut ok = true;
        let here = |at: &Option<Location>| at.clone().or_else(|| flux_at.clone());
        for (res, at) in &spec.resources {
            if res.contains("://") || res.starts_with("github.com/") || res.starts_with("git@") {
                self.diagnostics.push(
                    Diagnostic::warning(
                        "verify::kustomize_unmodelled",
                        "",
                        format!(
                            "remote resource `{res}` is not fetched; its objects are not checked"
                        ),
                    )
                    .at(here(at)),
                );
                continue;
            }
            let Some(rel) = join_rel(&spec.dir, res) else {
                self.push_missing(
                    here(at),
                    format!("resource `{res}` is outside the repository"),
                );
                ok = false;
                continue;
            };
            if self.tree.is_dir(&rel) {
                if self.kustomization_file(&rel).is_none() {
                    self.push_missing(
                        here(at),
                        format!(
                            "resource directory `{res}` has no kustomization.yaml (kustomize cannot build it)"
                        ),
                    );
                    ok = false;
                    continue;
                }
                match self.build_dir(&rel) {
                    Some(b) => {
                        for o in &b.objects {
                            if self.exhausted {
                                ok = false;
                                break;
                            }
                            ok &= self.add(&mut out, o.clone(), spec, here(at));
                        }
                    }
                    None => ok = false,
                }
            } else if self.tree.exists(&rel) {
                self.consumed.insert(rel.clone());
                // Each document as JSON, or where it is if it is not a Kubernetes object.
                let docs: Vec<(usize, Result<Value, Location>)> = self
                    .tree
                    .file(&rel)
                    .map(|f| {
                        f.docs
                            .iter()
                            .enumerate()
                            .filter(|(_, d)| !d.is_null())
                            .map(|(i, d)| {
                                let value = d.to_json();
                                let has = |k: &str| {
                                    value
                                        .get(k)
                                        .and_then(Value::as_str)
                                        .is_some_and(|s| !s.is_empty())
                                };
                                if has("apiVersion") && has("kind") {
                                    (i, Ok(value))
                                } else {
                                    (i, Err(d.location(&rel)))
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                for (i, doc) in docs {
                    let value = match doc {
                        Ok(value) => value,
                        Err(loc) => {
                            self.diagnostics.push(
                                Diagnostic::error(
                                    "verify::kustomize_invalid",
                                    "",
                                    "document is not a Kubernetes object: `apiVersion` and `kind` are required".to_owned(),
                                )
                                .at(Some(loc)),
                            );
                            ok = false;
                            continue;
                        }
                    };
                    let obj = Obj {
                        value,
                        file: rel.clone(),
                        doc: i,
                    };
                    ok &= self.add(&mut out, obj, spec, here(at));
                }
            } else {
                self.push_missing(here(at), format!("resource `{res}` does not exist"));
                ok = false;
            }
        }
        for (comp, at) in &spec.components {
            let Some(rel) = join_rel(&spec.dir, comp) else {
                self.push_missing(
                    here(at),
                    format!("component `{comp}` is outside the repository"),
                );
                ok = false;
                continue;
            };
            if !self.tree.is_dir(&rel) {
                self.push_missing(here(at), format!("component `{comp}` does not exist"));
                ok = false;
                continue;
            }
            if self.stack.contains(&rel) {
                self.diagnostics.push(
                    Diagnostic::error(
                        "verify::kustomize_cycle",
                        "",
                        format!(
                            "component `{comp}` includes itself (through {})",
                            spec.dir.display()
                        ),
                    )
                    .at(here(at)),
                );
                ok = false;
                continue;
            }
            let Some(cspec) = self.read_spec(&rel, true) else {
                ok = false;
                continue;
            };
            self.stack.push(rel.clone());
            // A component adds its resources to the parent, then transforms everything.
            let added = self.build_spec(
                &Spec {
                    namespace: None,
                    patches: Vec::new(),
                    labels: Vec::new(),
                    annotations: Vec::new(),
                    name_prefix: String::new(),
                    name_suffix: String::new(),
                    components: cspec.components.clone(),
                    resources: cspec.resources.clone(),
                    dir: cspec.dir.clone(),
                    file: cspec.file.clone(),
                    doc: None,
                    is_component: true,
                },
                here(at),
            );
            self.stack.pop();
            match added {
                Some(b) => {
                    for o in b.objects {
                        if self.exhausted {
                            ok = false;
                            break;
                        }
                        ok &= self.add(&mut out, o, spec, here(at));
                    }
                }
                None => ok = false,
            }
            self.transform(&mut out.objects, &cspec);
            out.reindex();
        }
        self.transform(&mut out.objects, spec);
        let _ = (spec.is_component, &spec.doc);
        ok.then_some(Built {
            objects: out.objects,
        })
    }

    fn push_missing(&mut self, at: Option<Location>, msg: String) {
        self.diagnostics.push(
            Diagnostic::error("verify::kustomize_missing", "", msg)
                .at(at)
                .with_help("fix the path (it is relative to the directory of the kustomization file) or render the missing file"),
        );
    }

    /// Adds an object, refusing a second object with the same id (like kustomize).
    fn add(&mut self, out: &mut Building, obj: Obj, spec: &Spec, at: Option<Location>) -> bool {
        self.built += 1;
        if self.built > MAX_BUILT_OBJECTS {
            if !self.exhausted {
                self.exhausted = true;
                self.diagnostics.push(
                    Diagnostic::error(
                        "verify::kustomize_too_large",
                        "",
                        format!(
                            "the kustomize builds produce more than {MAX_BUILT_OBJECTS} objects; building stopped at {}",
                            obj.file.display()
                        ),
                    )
                    .at(at)
                    .with_help("kustomizations that include each other many times multiply their objects; a rendered tree builds a few thousand"),
                );
            }
            return false;
        }
        let new_id = obj.res_id();
        if let Some(prev) = out.first.get(&new_id).map(|&i| &out.objects[i]) {
            let where_ = spec.file.as_ref().map_or_else(
                || spec.dir.display().to_string(),
                |f| f.display().to_string(),
            );
            self.diagnostics.push(
                Diagnostic::error(
                    "verify::kustomize_duplicate",
                    "",
                    format!(
                        "{} is added twice to the build of {where_}; kustomize refuses an already registered id",
                        obj.display()
                    ),
                )
                .at(at)
                .with_note(
                    format!("first added from {}", prev.file.display()),
                    None,
                )
                .with_help("list each file once across `resources` and components"),
            );
            return false;
        }
        out.first.insert(new_id, out.objects.len());
        out.objects.push(obj);
        true
    }

    fn transform(&mut self, objects: &mut [Obj], spec: &Spec) {
        for patch in &spec.patches {
            let PatchSource::Inline { patch, target, at } = patch;
            self.apply_patch(objects, patch, target.as_ref(), at.clone());
        }
        if let Some(ns) = &spec.namespace {
            for o in objects.iter_mut() {
                let kind = o.kind().to_owned();
                let namespaced = self.scopes.namespaced(o.group(), &kind);
                if kind == "Namespace" && o.group().is_empty() {
                    set(
                        &mut o.value,
                        &["metadata", "name"],
                        Value::String(ns.clone()),
                    );
                } else if namespaced != Some(false) {
                    set(
                        &mut o.value,
                        &["metadata", "namespace"],
                        Value::String(ns.clone()),
                    );
                }
            }
        }
        for (key, pairs) in [("labels", &spec.labels), ("annotations", &spec.annotations)] {
            for o in objects.iter_mut() {
                for (k, v) in pairs {
                    set(
                        &mut o.value,
                        &["metadata", key, k],
                        Value::String(v.clone()),
                    );
                }
            }
        }
        if !spec.name_prefix.is_empty() || !spec.name_suffix.is_empty() {
            for o in objects.iter_mut() {
                if o.kind() == "Namespace" || o.kind() == "CustomResourceDefinition" {
                    continue;
                }
                let name = format!("{}{}{}", spec.name_prefix, o.name(), spec.name_suffix);
                set(&mut o.value, &["metadata", "name"], Value::String(name));
            }
        }
    }

    fn apply_patch(
        &mut self,
        objects: &mut [Obj],
        patch: &Value,
        target: Option<&Value>,
        at: Option<Location>,
    ) {
        let ops = patch.as_array();
        let selected: Vec<usize> = match target {
            Some(t) => {
                let selector = Selector::new(t);
                (0..objects.len())
                    .filter(|&i| selector.matches(&objects[i]))
                    .collect()
            }
            None => {
                let kind = patch.get("kind").and_then(Value::as_str);
                let name = patch.pointer("/metadata/name").and_then(Value::as_str);
                let ns = patch.pointer("/metadata/namespace").and_then(Value::as_str);
                let found: Vec<usize> = (0..objects.len())
                    .filter(|&i| {
                        let o = &objects[i];
                        Some(o.kind()) == kind
                            && Some(o.name()) == name
                            && ns.is_none_or(|n| o.namespace() == Some(n))
                    })
                    .collect();
                if found.is_empty() || ops.is_some() {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "verify::kustomize_patch",
                            "",
                            format!(
                                "patch for {} {} matches no object of this build",
                                kind.unwrap_or("?"),
                                name.unwrap_or("?")
                            ),
                        )
                        .at(at.clone())
                        .with_help("a patch without `target` must name an object the kustomization builds (kind + metadata.name)"),
                    );
                    return;
                }
                found
            }
        };
        for i in selected {
            let obj = &mut objects[i];
            match ops {
                Some(list) => {
                    if let Err(e) = json6902(&mut obj.value, list) {
                        self.diagnostics.push(
                            Diagnostic::error(
                                "verify::kustomize_patch",
                                "",
                                format!("JSON patch on {} fails: {e}", obj.display()),
                            )
                            .at(at.clone()),
                        );
                    }
                }
                None => {
                    let mut p = patch.clone();
                    if let Some(m) = p.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                            meta.remove("name");
                            meta.remove("namespace");
                        }
                    }
                    strategic_merge(&mut obj.value, &p);
                }
            }
        }
    }
}

fn set(v: &mut Value, path: &[&str], new: Value) {
    let mut cur = v;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let map = cur.as_object_mut().expect("just made an object");
        if i + 1 == path.len() {
            map.insert((*key).to_owned(), new);
            return;
        }
        cur = map
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Whether a patch `target` selector picks `o`.
#[cfg(test)]
fn selects(target: &Value, o: &Obj) -> bool {
    Selector::new(target).matches(o)
}

/// A patch `target`, its name and namespace patterns compiled once per patch (not per object).
struct Selector<'v> {
    group: Option<&'v str>,
    version: Option<&'v str>,
    kind: Option<&'v str>,
    name: Option<FullMatch<'v>>,
    namespace: Option<FullMatch<'v>>,
    labels: Option<&'v str>,
    annotations: Option<&'v str>,
}

/// A pattern that must match the whole value; compared literally if it is not a regex.
enum FullMatch<'v> {
    Regex(Regex),
    Literal(&'v str),
}

impl FullMatch<'_> {
    fn new(pattern: &str) -> FullMatch<'_> {
        match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) => FullMatch::Regex(re),
            Err(_) => FullMatch::Literal(pattern),
        }
    }

    fn is_match(&self, value: &str) -> bool {
        match self {
            FullMatch::Regex(re) => re.is_match(value),
            FullMatch::Literal(pattern) => *pattern == value,
        }
    }
}

impl<'v> Selector<'v> {
    fn new(target: &'v Value) -> Selector<'v> {
        let field = |k: &str| target.get(k).and_then(Value::as_str);
        Selector {
            group: field("group"),
            version: field("version"),
            kind: field("kind"),
            name: field("name").map(FullMatch::new),
            namespace: field("namespace").map(FullMatch::new),
            labels: field("labelSelector"),
            annotations: field("annotationSelector"),
        }
    }

    fn matches(&self, o: &Obj) -> bool {
        let version = o.api_version().rsplit('/').next().unwrap_or_default();
        let meta = |k: &str| o.value.get("metadata").and_then(|m| m.get(k));
        self.group.is_none_or(|g| g == o.group())
            && self.version.is_none_or(|v| v == version)
            && self.kind.is_none_or(|k| k == o.kind())
            && self.name.as_ref().is_none_or(|n| n.is_match(o.name()))
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| n.is_match(o.namespace().unwrap_or_default()))
            && self
                .labels
                .is_none_or(|s| matches_selector(s, meta("labels")))
            && self
                .annotations
                .is_none_or(|s| matches_selector(s, meta("annotations")))
    }
}

fn matches_selector(selector: &str, map: Option<&Value>) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .all(|term| {
            let get = |k: &str| map.and_then(|m| m.get(k.trim())).and_then(Value::as_str);
            if let Some((k, v)) = term.split_once("!=") {
                get(k) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once('=') {
                get(k.trim_end_matches('=')) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                get(k).is_none()
            } else {
                get(term).is_some()
            }
        })
}

/// A strategic merge patch, simplified: maps merge, `null` deletes, lists of named maps merge by
/// `name` (`$patch: delete` removes an item), other lists are replaced.
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, pv) in p {
                if k == "$patch" {
                    continue;
                }
                if pv.is_null() {
                    t.remove(k);
                    continue;
                }
                match t.get_mut(k) {
                    Some(tv) if tv.is_object() && pv.is_object() => strategic_merge(tv, pv),
                    Some(tv) if tv.is_array() && pv.is_array() => merge_list(tv, pv),
                    _ => {
                        t.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn merge_list(target: &mut Value, patch: &Value) {
    let named = |v: &Value| {
        v.as_array()
            .is_some_and(|a| a.iter().all(|i| i.get("name").is_some()))
    };
    if !(named(target) && named(patch)) {
        *target = patch.clone();
        return;
    }
    let Some(items) = target.as_array_mut() else {
        return;
    };
    for p in patch.as_array().into_iter().flatten() {
        let name = p.get("name");
        let pos = items.iter().position(|i| i.get("name") == name);
        let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                items.remove(i);
            }
            (Some(i), false) => strategic_merge(&mut items[i], p),
            (None, false) => items.push(p.clone()),
            (None, true) => {}
        }
    }
}

/// RFC 6902 JSON patch (`add`, `remove`, `replace`, `copy`, `move`, `test`).
pub(crate) fn json6902(doc: &mut Value, ops: &[Value]) -> Result<(), String> {
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("op without `path`")?;
        match kind {
            "add" | "replace" => {
                let value = op.get("value").cloned().ok_or("op without `value`")?;
                put(doc, path, value, kind == "add")?;
            }
            "remove" => {
                take(doc, path)?;
            }
            "copy" | "move" => {
                let from = op
                    .get("from")
                    .and_then(Value::as_str)
                    .ok_or("op without `from`")?;
                let value = if kind == "move" {
                    take(doc, from)?
                } else {
                    doc.pointer(from)
                        .cloned()
                        .ok_or(format!("`{from}` does not exist"))?
                };
                put(doc, path, value, true)?;
            }
            "test" => {}
            other => return Err(format!("unknown op `{other}`")),
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let idx = path.rfind('/').ok_or(format!("bad path `{path}`"))?;
    let last = path[idx + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..idx].to_owned(), last))
}

fn put(doc: &mut Value, path: &str, value: Value, insert: bool) -> Result<(), String> {
    let (parent, last) = split_pointer(path)?;
    let target = doc
        .pointer_mut(&parent)
        .ok_or(format!("`{parent}` does not exist"))?;
    match target {
        Value::Object(map) => {
            if !insert && !map.contains_key(&last) {
                return Err(format!("`{path}` does not exist"));
            }
            map.insert(last, value);
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| format!("bad index in `{path}`"))?;
                if insert && i <= items.len() {
                    items.insert(i, value);
                } else if i < items.len() {
                    items[i] = value;
                } else {
                    return Err(format!("index out of range in `{path}`"));
                }
            }
        }
        _ => return Err(format!("`{parent}` is not a container")),
    }
    Ok(())
}

fn take(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let target = doc
        .pointer_mut(&parent)
        .ok_or(format!("`{parent}` does not exist"))?;
    match target {
        Value::Object(map) => map.remove(&last).ok_or(format!("`{path}` does not exist")),
        Value::Array(items) => {
            let i: usize = last.parse().map_err(|_| format!("bad index in `{path}`"))?;
            if i < items.len() {
                Ok(items.remove(i))
            } else {
                Err(format!("index out of range in `{path}`"))
            }
        }
        _ => Err(format!("`{parent}` is not a container")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_maps_and_named_lists() {
        let mut t = json!({"spec": {"a": 1, "b": 2, "containers": [{"name": "x", "image": "i"}]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"b": null, "c": 3, "containers": [{"name": "x", "image": "j"}, {"name": "y"}]}}),
        );
        assert_eq!(
            t,
            json!({"spec": {"a": 1, "c": 3, "containers": [{"name": "x", "image": "j"}, {"name": "y"}]}})
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"a": [1, 2], "b": {"c": 1}});
        json6902(
            &mut d,
            &[
                json!({"op": "add", "path": "/a/-", "value": 3}),
                json!({"op": "replace", "path": "/b/c", "value": 2}),
                json!({"op": "remove", "path": "/a/0"}),
            ],
        )
        .unwrap();
        assert_eq!(d, json!({"a": [2, 3], "b": {"c": 2}}));
        assert!(
            json6902(
                &mut d,
                &[json!({"op": "replace", "path": "/x/y", "value": 1})]
            )
            .is_err()
        );
    }

    #[test]
    fn selectors() {
        let o = Obj {
            value: json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                "metadata": {"name": "app", "labels": {"a": "b"}}}),
            file: PathBuf::new(),
            doc: 0,
        };
        assert!(selects(
            &json!({"group": "kustomize.toolkit.fluxcd.io", "kind": "Kustomization"}),
            &o
        ));
        assert!(selects(&json!({"name": "a.*", "labelSelector": "a=b"}), &o));
        assert!(!selects(&json!({"name": "ap"}), &o));
        assert!(!selects(&json!({"labelSelector": "a!=b"}), &o));
    }
}
