//! Resolving a kustomization's `resources` (files and directories) and `components` into the
//! objects of its build.

use schema::{Diagnostic, Location};
use serde_json::Value;

use super::build::{Building, Built, Kustomizer};
use super::object::Obj;
use super::spec::Spec;
use crate::tree::join_rel;

impl<'t> Kustomizer<'t> {
    pub(super) fn build_spec(&mut self, spec: &Spec, flux_at: Option<Location>) -> Option<Built> {
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
}
