//! What a Flux Kustomization applies: its overrides on the path's build, and Flux's generated
//! kustomization for a path without one.

use std::path::Path;

use schema::Location;
use schema::yaml::{self, Limits};
use serde_json::Value;

use super::build::{Built, Kustomizer};
use super::spec::{PatchSource, Spec};

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

impl<'t> Kustomizer<'t> {
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
}
