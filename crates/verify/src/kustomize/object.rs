//! One object as a build produced it, and the id kustomize registers it under.

use std::path::PathBuf;

use serde_json::Value;

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
    pub(super) fn res_id(&self) -> ResId {
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

pub(super) type ResId = (String, String, String, String);
