//! The patches themselves: strategic merge (simplified) and RFC 6902 JSON patch.

use serde_json::Value;

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
}
