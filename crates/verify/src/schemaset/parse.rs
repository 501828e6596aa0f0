//! Reading one schema file from its source: CRD YAML (single or multi-document) or a Kubernetes
//! OpenAPI v3 JSON document.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use schema::repofile::{self, ReadError};
use schema::yaml::{self, Limits};
use serde_json::Value;

use super::{CrdSchema, CrdVersion, Gvk, LazyJson, OpenApiDoc};

/// The largest schema file read (the largest pinned one is ~2 MB).
pub(crate) const MAX_SCHEMA_FILE: u64 = Limits::MANIFESTS.max_bytes as u64;

/// One schema file, read and indexed (independently of the others, so files load in parallel).
pub(crate) enum Parsed {
    Crds {
        versions: Vec<(Gvk, CrdVersion)>,
        scopes: Vec<((String, String), bool)>,
        problems: Vec<String>,
    },
    OpenApi {
        doc: OpenApiDoc,
        gvks: Vec<(Gvk, String)>,
    },
    Problem(String),
    Nothing,
}

/// Whether `name` is a file the schema set reads (CRD YAML or OpenAPI JSON). A JSON Schema
/// document (`*.schema.json`, e.g. a chart's `values.schema.json`) is not one: such pinned files
/// are for other checks and are skipped here.
pub(crate) fn is_schema_file(name: &str) -> bool {
    (name.ends_with(".json") && !name.ends_with(".schema.json"))
        || ((name.ends_with(".yaml") || name.ends_with(".yml")) && name != "SOURCES.yaml")
}

pub(crate) fn parse_file(path: &Path, name: &str) -> Parsed {
    if !is_schema_file(name) {
        return Parsed::Nothing;
    }
    parse_bytes(repofile::read(path, MAX_SCHEMA_FILE), name)
}

/// Indexes the bytes of the file `name` (`<folder>/<file>`), or reports why it cannot be read.
pub(crate) fn parse_bytes(bytes: Result<Vec<u8>, ReadError>, name: &str) -> Parsed {
    if !is_schema_file(name) {
        return Parsed::Nothing;
    }
    if name.ends_with(".json") {
        let document = bytes
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
        match document {
            Ok(v) => parse_openapi(v, name),
            Err(e) => Parsed::Problem(format!("{name}: {e}")),
        }
    } else {
        let loaded = match bytes.and_then(repofile::into_text) {
            Ok(text) => yaml::load(&text, Path::new(name), Limits::MANIFESTS),
            Err(err) => yaml::Loaded {
                diagnostics: vec![yaml::read_error(&err, Path::new(name))],
                ..yaml::Loaded::default()
            },
        };
        parse_crds(loaded, name)
    }
}

fn parse_crds(loaded: yaml::Loaded, name: &str) -> Parsed {
    let mut problems: Vec<String> = loaded.diagnostics.iter().map(|d| d.headline()).collect();
    let mut versions = Vec::new();
    let mut scopes = Vec::new();
    for doc in loaded.documents {
        if doc.get("kind").and_then(|k| k.as_str()) != Some("CustomResourceDefinition") {
            continue;
        }
        let mut crd = doc.to_json();
        let spec = &mut crd["spec"];
        let group = spec["group"].as_str().unwrap_or_default().to_owned();
        let kind = spec["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        scopes.push(((group.clone(), kind.clone()), namespaced));
        let Some(list) = spec["versions"].as_array_mut() else {
            problems.push(format!("{name}: CRD {kind} has no spec.versions"));
            continue;
        };
        for v in list {
            let version = v["name"].as_str().unwrap_or_default().to_owned();
            let schema = v["schema"]["openAPIV3Schema"].take();
            if schema.is_null() {
                problems.push(format!("{name}: {kind} {version} has no openAPIV3Schema"));
                continue;
            }
            versions.push((
                Gvk {
                    group: group.clone(),
                    version,
                    kind: kind.clone(),
                },
                CrdVersion {
                    source: name.to_owned(),
                    served: v["served"].as_bool().unwrap_or(true),
                    schema: CrdSchema::Json(schema),
                    compiled: OnceLock::new(),
                    parsed_rules: None,
                },
            ));
        }
    }
    Parsed::Crds {
        versions,
        scopes,
        problems,
    }
}

fn parse_openapi(mut document: Value, name: &str) -> Parsed {
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return Parsed::Problem(format!("{name}: not an OpenAPI v3 document"));
    };
    let mut gvks = Vec::new();
    let mut roots = BTreeMap::new();
    for (component, s) in schemas.iter() {
        let list = s
            .get("x-kubernetes-group-version-kind")
            .and_then(Value::as_array);
        if list.is_some() || component.ends_with("meta.v1.ObjectMeta") {
            roots.insert(component.clone(), OnceLock::new());
        }
        // Only real resources: they carry `metadata`.
        let Some(list) = list.filter(|_| s.pointer("/properties/metadata").is_some()) else {
            continue;
        };
        for g in list {
            let gvk = Gvk {
                group: g["group"].as_str().unwrap_or_default().to_owned(),
                version: g["version"].as_str().unwrap_or_default().to_owned(),
                kind: g["kind"].as_str().unwrap_or_default().to_owned(),
            };
            gvks.push((gvk, component.clone()));
        }
    }
    let components: HashMap<String, LazyJson> = std::mem::take(schemas)
        .into_iter()
        .map(|(k, v)| (k, LazyJson::parsed(v)))
        .collect();
    Parsed::OpenApi {
        doc: OpenApiDoc {
            source: name.to_owned(),
            components,
            roots,
        },
        gvks,
    }
}

/// Parses `files` on all available cores; results come back in input order.
pub(crate) fn parse_all(files: &[(PathBuf, PathBuf)]) -> Vec<Parsed> {
    crate::par::map(files, |(path, rel)| {
        let name = rel.to_string_lossy().replace('\\', "/");
        parse_file(path, &name)
    })
}
