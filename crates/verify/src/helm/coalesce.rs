//! The values a chart is installed with: its `values.yaml` under the HelmRelease's `values`,
//! merged the way Helm merges them before it validates against `values.schema.json`.
//!
//! Maps merge key by key, recursively; any other value of the release replaces the chart's;
//! a `null` in the release deletes the chart's key (Helm's documented way to unset a default).

use serde_json::{Map, Value};

/// `overrides` (a HelmRelease's `spec.values`) over `defaults` (the chart's `values.yaml`).
pub(crate) fn coalesce(defaults: &Value, overrides: &Value) -> Value {
    match (defaults, overrides) {
        (Value::Object(d), Value::Object(o)) => Value::Object(merge(d, o)),
        (_, Value::Null) => Value::Null,
        (_, o) => o.clone(),
    }
}

fn merge(defaults: &Map<String, Value>, overrides: &Map<String, Value>) -> Map<String, Value> {
    let mut out = defaults.clone();
    for (key, value) in overrides {
        if value.is_null() {
            out.remove(key);
            continue;
        }
        let merged = match out.get(key) {
            Some(d) => coalesce(d, value),
            None => strip_nulls(value),
        };
        out.insert(key.clone(), merged);
    }
    out
}

/// A release value with no default under it: its own `null`s unset nothing and are dropped.
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_scalars_and_lists_replace_nulls_delete() {
        let defaults = json!({
            "replicas": 1,
            "image": {"repository": "x", "tag": "1.0"},
            "args": ["a", "b"],
            "resources": {"limits": {"cpu": "1"}}
        });
        let overrides = json!({
            "image": {"tag": "2.0"},
            "args": ["c"],
            "resources": null,
            "extra": {"keep": true, "gone": null}
        });
        assert_eq!(
            coalesce(&defaults, &overrides),
            json!({
                "replicas": 1,
                "image": {"repository": "x", "tag": "2.0"},
                "args": ["c"],
                "extra": {"keep": true}
            })
        );
    }

    #[test]
    fn a_release_without_values_gets_the_defaults() {
        let defaults = json!({"a": 1});
        assert_eq!(coalesce(&defaults, &json!({})), defaults);
    }
}
