//! Loading a kustomization file: its known and unmodelled keys, resource and component lists,
//! patches, labels and annotations.

use std::path::{Path, PathBuf};

use schema::yaml::{self, Limits, Node};
use schema::{Diagnostic, Location};
use serde_json::Value;

use super::build::Kustomizer;
use crate::tree::join_rel;

pub(crate) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// A parsed kustomization (file or Flux-generated).
pub(super) struct Spec {
    pub(super) dir: PathBuf,
    /// The kustomization file, if there is one (for messages).
    pub(super) file: Option<PathBuf>,
    pub(super) doc: Option<Node>,
    pub(super) is_component: bool,
    pub(super) resources: Vec<(String, Option<Location>)>,
    pub(super) components: Vec<(String, Option<Location>)>,
    pub(super) namespace: Option<String>,
    pub(super) patches: Vec<PatchSource>,
    pub(super) labels: Vec<(String, String)>,
    pub(super) annotations: Vec<(String, String)>,
    pub(super) name_prefix: String,
    pub(super) name_suffix: String,
}

pub(super) enum PatchSource {
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
    /// The kustomization file in `dir`, if any.
    pub(crate) fn kustomization_file(&self, dir: &Path) -> Option<PathBuf> {
        KUSTOMIZATION_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|p| self.tree.root.join(p).is_file())
    }

    pub(super) fn read_spec(&mut self, dir: &Path, want_component: bool) -> Option<Spec> {
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
}
