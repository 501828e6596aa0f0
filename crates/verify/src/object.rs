//! Validation of one object against the schema set (no files, no graph): what the API server
//! would say if the object were applied on its own.

use serde_json::{Map, Value};

use crate::cel::{CelEnv, CelStats, evaluate};
use crate::field::{FieldError, FieldErrorKind, quote};
use crate::schemaset::{Gvk, Lookup, SchemaSet, compiled_crd, compiled_openapi};
use crate::validate::{Checker, Flavor, is_unknown};

/// Which schema an object was checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaUse {
    /// A CRD version (`<folder>/<file>` in the schema set).
    Crd { source: String },
    /// A built-in kind from a Kubernetes OpenAPI document.
    BuiltIn { source: String },
    /// The kind exists, but not at the object's version; the served versions are listed.
    NotServed { served: Vec<String> },
    /// The schema set knows nothing about this kind.
    Missing,
    /// The object has no `apiVersion`/`kind` strings.
    NotAnObject,
}

/// The outcome of [`validate_object`].
#[derive(Clone, Debug)]
pub struct ObjectReport {
    pub schema: SchemaUse,
    /// What the API server would reject, in its words.
    pub errors: Vec<FieldError>,
    /// Rules that could not be decided offline (a `${VAR}` or `ENC[…]` inside, a CEL feature
    /// this implementation lacks, or an earlier type error).
    pub warnings: Vec<FieldError>,
    /// The object after defaulting (what the CEL rules saw).
    pub defaulted: Value,
}

impl ObjectReport {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Validates one object the way the API server would on create: strict fields, defaults,
/// OpenAPI checks, then the CRD's CEL rules.
pub fn validate_object(schemas: &SchemaSet, object: &Value) -> ObjectReport {
    let env = CelEnv::new();
    let mut stats = CelStats::default();
    check_object(schemas, &env, object, &mut stats)
}

pub(crate) fn check_object(
    schemas: &SchemaSet,
    env: &CelEnv,
    object: &Value,
    stats: &mut CelStats,
) -> ObjectReport {
    let mut report = ObjectReport {
        schema: SchemaUse::NotAnObject,
        errors: Vec::new(),
        warnings: Vec::new(),
        // Set below; a copy of the object only when it has no apiVersion/kind.
        defaulted: Value::Null,
    };
    let (Some(api_version), Some(kind)) = (
        object.get("apiVersion").and_then(Value::as_str),
        object.get("kind").and_then(Value::as_str),
    ) else {
        for key in ["apiVersion", "kind"] {
            if object.get(key).and_then(Value::as_str).is_none() {
                report.errors.push(FieldError::new(
                    key,
                    FieldErrorKind::Required,
                    String::new(),
                    "",
                ));
            }
        }
        report.defaulted = object.clone();
        return report;
    };
    let gvk = Gvk::from_api_version(api_version, kind);
    let mut value = object.clone();
    let mut metadata = Value::Null;
    if let Some(map) = value.as_object_mut() {
        // Flux decrypts sops files and drops their metadata before applying; `status` is not
        // part of a create.
        map.remove("sops");
        map.remove("status");
        if let Some(m) = map.remove("metadata") {
            metadata = m;
        }
    }
    let mut errors = Vec::new();
    check_metadata(schemas, &metadata, &mut errors);

    match schemas.lookup(&gvk) {
        Lookup::Crd(crd) => {
            report.schema = SchemaUse::Crd {
                source: crd.source.clone(),
            };
            let compiled = compiled_crd(crd);
            if let Some(map) = value.as_object_mut() {
                map.insert("metadata".to_owned(), Value::Object(Map::new()));
            }
            let mut checker = Checker::new(&compiled.graph, Flavor::Structural);
            checker.check(compiled.root, &mut value, "");
            errors.extend(checker.errors);
            if let Some(map) = value.as_object_mut() {
                map.insert("metadata".to_owned(), std::mem::take(&mut metadata));
            }
            if errors.iter().any(FieldError::is_blocking) {
                report.warnings.push(FieldError::new(
                    "",
                    FieldErrorKind::Unevaluated,
                    String::new(),
                    "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
                ));
            } else {
                evaluate(
                    env,
                    &compiled.graph,
                    compiled.root,
                    &value,
                    "",
                    &mut errors,
                    stats,
                );
            }
        }
        Lookup::BuiltIn(doc, component) => {
            report.schema = SchemaUse::BuiltIn {
                source: doc.source.clone(),
            };
            if let Some(c) = compiled_openapi(doc, component) {
                let mut checker = Checker::new(&c.graph, Flavor::BuiltIn);
                checker.check(c.root, &mut value, "");
                errors.extend(checker.errors);
            }
            if let Some(map) = value.as_object_mut() {
                map.insert("metadata".to_owned(), std::mem::take(&mut metadata));
            }
        }
        Lookup::NotServed(served) => {
            errors.push(FieldError::new(
                "apiVersion",
                FieldErrorKind::Unsupported,
                quote(api_version),
                format!(
                    "{kind} is not served at this version; served versions: {}",
                    served.join(", ")
                ),
            ));
            report.schema = SchemaUse::NotServed { served };
        }
        Lookup::Missing => report.schema = SchemaUse::Missing,
    }
    for e in errors {
        if e.kind == FieldErrorKind::Unevaluated {
            report.warnings.push(e);
        } else {
            report.errors.push(e);
        }
    }
    report.defaulted = value;
    report
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn check_metadata(schemas: &SchemaSet, metadata: &Value, errors: &mut Vec<FieldError>) {
    let Some(meta) = metadata.as_object() else {
        errors.push(FieldError::new(
            "metadata.name",
            FieldErrorKind::Required,
            String::new(),
            "name or generateName is required",
        ));
        return;
    };
    match meta.get("name") {
        Some(Value::String(name)) if !is_unknown(&Value::String(name.clone())) => {
            if !is_subdomain(name) {
                errors.push(FieldError::new(
                    "metadata.name",
                    FieldErrorKind::Invalid,
                    quote(name),
                    SUBDOMAIN_MSG,
                ));
            }
        }
        Some(_) => {}
        None if meta.contains_key("generateName") => {}
        None => errors.push(FieldError::new(
            "metadata.name",
            FieldErrorKind::Required,
            String::new(),
            "name or generateName is required",
        )),
    }
    if let Some(Value::String(ns)) = meta.get("namespace")
        && !is_unknown(&Value::String(ns.clone()))
        && !is_label(ns)
    {
        errors.push(FieldError::new(
            "metadata.namespace",
            FieldErrorKind::Invalid,
            quote(ns),
            LABEL_MSG,
        ));
    }
    if let Some((graph, id)) = schemas.object_meta() {
        let mut copy = metadata.clone();
        let mut checker = Checker::new(graph, Flavor::BuiltIn);
        checker.check(id, &mut copy, "metadata");
        errors.extend(checker.errors);
    }
}

pub(crate) fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}
