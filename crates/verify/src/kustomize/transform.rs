//! The transformers: patches, namespace, labels, annotations, name prefix and suffix.

use schema::{Diagnostic, Location};
use serde_json::{Map, Value};

use super::build::Kustomizer;
use super::object::Obj;
use super::patch::{json6902, strategic_merge};
use super::selector::Selector;
use super::spec::{PatchSource, Spec};

impl<'t> Kustomizer<'t> {
    pub(super) fn transform(&mut self, objects: &mut [Obj], spec: &Spec) {
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
