//! Patch `target` selectors: group, version, kind, name and namespace patterns, label and
//! annotation selectors.

use regex::Regex;
use serde_json::Value;

use super::object::Obj;

/// Whether a patch `target` selector picks `o`.
#[cfg(test)]
fn selects(target: &Value, o: &Obj) -> bool {
    Selector::new(target).matches(o)
}

/// A patch `target`, its name and namespace patterns compiled once per patch (not per object).
pub(super) struct Selector<'v> {
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
    pub(super) fn new(target: &'v Value) -> Selector<'v> {
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

    pub(super) fn matches(&self, o: &Obj) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

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
