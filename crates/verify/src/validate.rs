//! The structural validator: what the API server does to an object before it stores it.
//!
//! Order (as in the apiextensions API server, for custom resources): strict decoding flags
//! fields the schema does not declare; non-nullable `null`s are dropped (or replaced by their
//! default); schema defaults are filled in; the OpenAPI value checks run (type, required, enum,
//! pattern, format, bounds, list types); and only if none of them found a type or enum error,
//! the CEL rules run on the defaulted object (see `cel.rs`).
//!
//! Built-in kinds are checked the way kubeconform `-strict` does (no defaulting; unknown
//! fields are errors where the schema lists properties).
//!
//! Strings that hold a Flux substitution (`${VAR}`) or a sops ciphertext (`ENC[…]`) are unknown
//! until the cluster sees them: they pass every check and CEL rules over them are skipped.

use serde_json::{Map, Value};

use crate::field::{FieldError, FieldErrorKind, quote, show};
use crate::openapi::{Additional, Format, Graph, ListType, NodeId, SchemaNode, Ty};

/// How a graph is validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// A CRD structural schema: defaults and null pruning apply, every object node is closed.
    Structural,
    /// Kubernetes OpenAPI (kubeconform `-strict`): closed where properties are listed.
    BuiltIn,
}

pub(crate) struct Checker<'g> {
    graph: &'g Graph,
    flavor: Flavor,
    /// Value-only checks (inside `allOf`/`anyOf`/`oneOf`/`not`): no defaulting, no unknown
    /// fields, no mutation of the object.
    value_only: bool,
    pub(crate) errors: Vec<FieldError>,
}

impl<'g> Checker<'g> {
    pub(crate) fn new(graph: &'g Graph, flavor: Flavor) -> Checker<'g> {
        Checker {
            graph,
            flavor,
            value_only: false,
            errors: Vec::new(),
        }
    }

    fn err(&mut self, path: &str, kind: FieldErrorKind, value: String, detail: impl Into<String>) {
        self.errors.push(FieldError::new(path, kind, value, detail));
    }

    /// Checks (and, for structural schemas, defaults) `value` against node `id`.
    pub(crate) fn check(&mut self, id: NodeId, value: &mut Value, path: &str) {
        if is_unknown(value) {
            return;
        }
        let graph = self.graph;
        let n = graph.node(id);
        if value.is_null() {
            if !n.nullable && (n.ty.is_some() || n.int_or_string) {
                let expected = n.ty.map_or("integer or string", Ty::name);
                self.type_error(path, "null", expected);
            }
            return;
        }
        if !self.type_ok(n, value) {
            let expected = if n.int_or_string {
                "integer or string"
            } else {
                n.ty.map_or("", Ty::name)
            };
            self.type_error(path, json_type(value), expected);
            return;
        }
        match value {
            Value::Object(map) => self.object(n, map, path),
            Value::Array(items) => self.array(n, items, path),
            Value::String(s) => self.string(n, s, path),
            Value::Number(num) => {
                if let Some(f) = num.as_f64() {
                    self.number(n, f, &Value::Number(num.clone()), path);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
        if !n.enumeration.is_empty() && !value.is_string() && !n.enumeration.contains(value) {
            self.unsupported(path, value, &n.enumeration);
        }
        self.combinators(n, value, path);
    }

    fn type_ok(&self, n: &SchemaNode, v: &Value) -> bool {
        if n.int_or_string {
            return v.is_string() || v.is_i64() || v.is_u64() || is_integral(v);
        }
        match n.ty {
            None => true,
            Some(Ty::Object) => v.is_object(),
            Some(Ty::Array) => v.is_array(),
            Some(Ty::String) => v.is_string(),
            Some(Ty::Boolean) => v.is_boolean(),
            Some(Ty::Number) => v.is_number(),
            Some(Ty::Integer) => v.is_i64() || v.is_u64() || is_integral(v),
        }
    }

    fn type_error(&mut self, path: &str, actual: &str, expected: &str) {
        let at = if path.is_empty() { "body" } else { path };
        self.err(
            path,
            FieldErrorKind::TypeInvalid,
            quote(actual),
            format!("{at} in body must be of type {expected}: {}", quote(actual)),
        );
    }

    fn object(&mut self, n: &SchemaNode, map: &mut Map<String, Value>, path: &str) {
        let graph = self.graph;
        let closed = match self.flavor {
            Flavor::Structural => n.ty == Some(Ty::Object),
            Flavor::BuiltIn => !n.properties.is_empty(),
        } && !n.preserve_unknown
            && n.additional == Additional::Absent
            || n.additional == Additional::Bool(false);
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            let child = n.properties.get(&key).copied().or(match n.additional {
                Additional::Schema(a) => Some(a),
                _ => None,
            });
            match child {
                Some(cid) => {
                    if map.get(&key).is_some_and(Value::is_null)
                        && !graph.node(cid).nullable
                        && !self.value_only
                    {
                        // The API server drops non-nullable nulls, then defaulting may refill them.
                        map.remove(&key);
                    }
                }
                None => {
                    let embedded_meta =
                        n.embedded && matches!(key.as_str(), "apiVersion" | "kind" | "metadata");
                    if closed && !embedded_meta && !self.value_only {
                        self.err(
                            &join(path, &key),
                            FieldErrorKind::UnknownField,
                            String::new(),
                            "",
                        );
                        map.remove(&key);
                    }
                }
            }
        }
        if self.flavor == Flavor::Structural && !self.value_only {
            for (name, &cid) in &n.properties {
                if !map.contains_key(name)
                    && let Some(default) = &graph.node(cid).default
                {
                    map.insert(name.clone(), default.clone());
                }
            }
        }
        for req in &n.required {
            if !map.contains_key(req) {
                self.err(
                    &join(path, req),
                    FieldErrorKind::Required,
                    String::new(),
                    "",
                );
            }
        }
        let count = map.len() as u64;
        if let Some(max) = n.max_properties
            && count > max
        {
            self.err(
                path,
                FieldErrorKind::TooMany,
                count.to_string(),
                format!("must have at most {max} items"),
            );
        }
        if let Some(min) = n.min_properties
            && count < min
        {
            self.err(
                path,
                FieldErrorKind::Invalid,
                count.to_string(),
                format!("{} in body should have at least {min} properties", at(path)),
            );
        }
        for (key, child) in map.iter_mut() {
            if let Some(&cid) = n.properties.get(key) {
                self.check(cid, child, &join(path, key));
            } else if let Additional::Schema(a) = n.additional {
                self.check(a, child, &format!("{path}[{key}]"));
            }
        }
    }

    fn array(&mut self, n: &SchemaNode, items: &mut [Value], path: &str) {
        let len = items.len() as u64;
        if let Some(max) = n.max_items
            && len > max
        {
            self.err(
                path,
                FieldErrorKind::TooMany,
                len.to_string(),
                format!("must have at most {max} items"),
            );
        }
        if let Some(min) = n.min_items
            && len < min
        {
            self.err(
                path,
                FieldErrorKind::Invalid,
                len.to_string(),
                format!("{} in body should have at least {min} items", at(path)),
            );
        }
        if let Some(it) = n.items {
            for (i, item) in items.iter_mut().enumerate() {
                self.check(it, item, &format!("{path}[{i}]"));
            }
        }
        match n.list_type {
            ListType::Set => {
                for i in 0..items.len() {
                    if items[..i].contains(&items[i]) && !is_unknown(&items[i]) {
                        self.err(
                            &format!("{path}[{i}]"),
                            FieldErrorKind::Duplicate,
                            show(&items[i]),
                            "",
                        );
                    }
                }
            }
            ListType::Map if !n.list_map_keys.is_empty() => {
                let key_of = |v: &Value| -> Value {
                    let mut m = Map::new();
                    for k in &n.list_map_keys {
                        if let Some(x) = v.get(k) {
                            m.insert(k.clone(), x.clone());
                        }
                    }
                    Value::Object(m)
                };
                let keys: Vec<Value> = items.iter().map(key_of).collect();
                for i in 0..keys.len() {
                    if keys[..i].contains(&keys[i]) {
                        self.err(
                            &format!("{path}[{i}]"),
                            FieldErrorKind::Duplicate,
                            keys[i].to_string(),
                            "",
                        );
                    }
                }
            }
            _ if n.unique_items => {
                for i in 0..items.len() {
                    if items[..i].contains(&items[i]) {
                        self.err(
                            &format!("{path}[{i}]"),
                            FieldErrorKind::Duplicate,
                            show(&items[i]),
                            "",
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn string(&mut self, n: &SchemaNode, s: &str, path: &str) {
        let value = Value::String(s.to_owned());
        if !n.enumeration.is_empty() && !n.enumeration.contains(&value) {
            self.unsupported(path, &value, &n.enumeration);
        }
        let chars = s.chars().count() as u64;
        if let Some(max) = n.max_length
            && chars > max
        {
            self.err(
                path,
                FieldErrorKind::TooLong,
                String::new(),
                format!("may not be more than {max} bytes"),
            );
        }
        if let Some(min) = n.min_length
            && chars < min
        {
            self.err(
                path,
                FieldErrorKind::Invalid,
                quote(s),
                format!("{} in body should be at least {min} chars long", at(path)),
            );
        }
        if let Some(pattern) = &n.pattern
            && let Ok(re) = pattern.regex()
            && !re.is_match(s)
        {
            self.err(
                path,
                FieldErrorKind::Invalid,
                quote(s),
                format!("{} in body should match '{}'", at(path), pattern.text),
            );
        }
        let format_ok = match n.format {
            Format::None => true,
            Format::DateTime => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            Format::Duration => crate::cel::parse_go_duration(s).is_some(),
            Format::Byte => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(s).is_ok()
            }
            Format::Uri => is_uri(s),
            Format::Ipv4 => s.parse::<std::net::Ipv4Addr>().is_ok(),
            Format::Ipv6 => s.parse::<std::net::Ipv6Addr>().is_ok(),
        };
        if !format_ok {
            let name = match n.format {
                Format::DateTime => "date-time",
                Format::Duration => "duration",
                Format::Byte => "byte",
                Format::Uri => "uri",
                Format::Ipv4 => "ipv4",
                Format::Ipv6 => "ipv6",
                Format::None => "",
            };
            self.err(
                path,
                FieldErrorKind::Invalid,
                quote(s),
                format!("{} in body must be of type {name}: {}", at(path), quote(s)),
            );
        }
    }

    fn number(&mut self, n: &SchemaNode, f: f64, value: &Value, path: &str) {
        if let Some(max) = n.maximum {
            let bad = if n.exclusive_maximum {
                f >= max
            } else {
                f > max
            };
            if bad {
                let rel = if n.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                self.err(
                    path,
                    FieldErrorKind::Invalid,
                    show(value),
                    format!("{} in body should be {rel} {}", at(path), num(max)),
                );
            }
        }
        if let Some(min) = n.minimum {
            let bad = if n.exclusive_minimum {
                f <= min
            } else {
                f < min
            };
            if bad {
                let rel = if n.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                self.err(
                    path,
                    FieldErrorKind::Invalid,
                    show(value),
                    format!("{} in body should be {rel} {}", at(path), num(min)),
                );
            }
        }
        if let Some(m) = n.multiple_of
            && m > 0.0
            && (f / m).fract() != 0.0
        {
            self.err(
                path,
                FieldErrorKind::Invalid,
                show(value),
                format!("{} in body should be a multiple of {}", at(path), num(m)),
            );
        }
    }

    fn unsupported(&mut self, path: &str, value: &Value, allowed: &[Value]) {
        let list: Vec<String> = allowed.iter().map(show).collect();
        self.err(
            path,
            FieldErrorKind::Unsupported,
            show(value),
            format!("supported values: {}", list.join(", ")),
        );
    }

    /// `allOf` / `anyOf` / `oneOf` / `not`: value validations on the same value.
    fn combinators(&mut self, n: &SchemaNode, value: &Value, path: &str) {
        for &b in &n.all_of {
            let errs = self.branch(b, value, path);
            self.errors.extend(errs);
        }
        if !n.any_of.is_empty() {
            let results: Vec<Vec<FieldError>> = n
                .any_of
                .iter()
                .map(|&b| self.branch(b, value, path))
                .collect();
            if results.iter().all(|r| !r.is_empty()) {
                let first = results[0].first().map(FieldError::body).unwrap_or_default();
                self.err(
                    path,
                    FieldErrorKind::Invalid,
                    show(value),
                    format!(
                        "{} in body must validate at least one schema (anyOf): {first}",
                        at(path)
                    ),
                );
            }
        }
        if !n.one_of.is_empty() {
            let passing = n
                .one_of
                .iter()
                .filter(|&&b| self.branch(b, value, path).is_empty())
                .count();
            if passing != 1 {
                self.err(
                    path,
                    FieldErrorKind::Invalid,
                    show(value),
                    format!(
                        "{} in body must validate one and only one schema (oneOf)",
                        at(path)
                    ),
                );
            }
        }
        if let Some(not) = n.not
            && self.branch(not, value, path).is_empty()
        {
            self.err(
                path,
                FieldErrorKind::Invalid,
                show(value),
                format!("{} in body must not validate the schema (not)", at(path)),
            );
        }
    }

    fn branch(&self, id: NodeId, value: &Value, path: &str) -> Vec<FieldError> {
        let mut sub = Checker {
            graph: self.graph,
            flavor: self.flavor,
            value_only: true,
            errors: Vec::new(),
        };
        let mut copy = value.clone();
        sub.check(id, &mut copy, path);
        sub.errors
    }
}

/// A string whose value is only known in the cluster: a Flux `${VAR}` substitution or a sops
/// ciphertext.
pub(crate) fn is_unknown(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.contains("${") || s.starts_with("ENC[AES256_GCM,"))
}

/// True if `v` or anything inside it is unknown (see [`is_unknown`]).
pub(crate) fn contains_unknown(v: &Value) -> bool {
    match v {
        Value::String(_) => is_unknown(v),
        Value::Array(items) => items.iter().any(contains_unknown),
        Value::Object(map) => map.values().any(contains_unknown),
        _ => false,
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() { "body" } else { path }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() && !is_integral(v) => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integral(v: &Value) -> bool {
    v.as_f64()
        .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
}

fn num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// Go's `url.ParseRequestURI` acceptance, roughly: an absolute URI with a scheme, or an
/// absolute path.
fn is_uri(s: &str) -> bool {
    if s.starts_with('/') {
        return !s.contains(char::is_whitespace);
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !s.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openapi::Compiler;
    use serde_json::json;

    fn run(schema: Value, mut obj: Value) -> (Vec<String>, Value) {
        let mut c = Compiler::new(None);
        let root = c.add(&schema, "");
        let g = c.finish();
        let mut ck = Checker::new(&g, Flavor::Structural);
        ck.check(root, &mut obj, "");
        (ck.errors.iter().map(ToString::to_string).collect(), obj)
    }

    #[test]
    fn unknown_fields_defaults_and_required() {
        let schema = json!({"type": "object", "required": ["spec"], "properties": {
            "spec": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "maxLength": 3},
                "kind": {"type": "string", "default": "Service"},
                "port": {"type": "integer", "minimum": 1}}}}});
        let (errs, obj) = run(
            schema.clone(),
            json!({"spec": {"name": "abcd", "port": 0, "typo": 1}}),
        );
        assert_eq!(
            errs,
            vec![
                "unknown field \"spec.typo\"",
                "spec.name: Too long: may not be more than 3 bytes",
                "spec.port: Invalid value: 0: spec.port in body should be greater than or equal to 1",
            ]
        );
        assert_eq!(obj["spec"]["kind"], "Service");
        let (errs, _) = run(schema, json!({"spec": {"kind": null}}));
        assert_eq!(errs, vec!["spec.name: Required value"]);
    }

    #[test]
    fn int_or_string_enum_pattern_and_unknown_values() {
        let schema = json!({"type": "object", "properties": {
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "mode": {"type": "string", "enum": ["A", "B"]},
            "host": {"type": "string", "pattern": "^[a-z.]+$"}}});
        let (errs, _) = run(
            schema.clone(),
            json!({"port": "http", "mode": "A", "host": "${SECRET_DOMAIN}"}),
        );
        assert!(errs.is_empty(), "{errs:?}");
        let (errs, _) = run(schema, json!({"port": true, "mode": "C", "host": "A"}));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("host: Invalid value: \"A\": host in body should match"));
        assert_eq!(
            errs[1],
            "mode: Unsupported value: \"C\": supported values: \"A\", \"B\""
        );
        assert!(errs[2].starts_with("port: Invalid value: \"boolean\""));
    }

    #[test]
    fn nullable_preserve_unknown_and_embedded_resources() {
        let schema = json!({"type": "object", "properties": {
            "opt": {"type": "string", "nullable": true},
            "strict": {"type": "string"},
            "defaulted": {"type": "string", "default": "d"},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "embedded": {"type": "object", "x-kubernetes-embedded-resource": true,
                         "properties": {"spec": {"type": "object"}}}}});
        let (errs, obj) = run(
            schema.clone(),
            json!({"opt": null, "strict": null, "defaulted": null,
                   "free": {"anything": {"goes": [1, 2]}},
                   "embedded": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "spec": {}}}),
        );
        assert!(errs.is_empty(), "{errs:?}");
        // A nullable null stays; a non-nullable null is dropped, or replaced by its default.
        assert_eq!(obj["opt"], Value::Null);
        assert!(obj.get("strict").is_none());
        assert_eq!(obj["defaulted"], "d");
        let (errs, _) = run(
            schema,
            json!({"embedded": {"apiVersion": "v1", "other": 1}}),
        );
        assert_eq!(errs, vec!["unknown field \"embedded.other\""]);
    }

    #[test]
    fn list_types_flag_duplicates() {
        let schema = json!({"type": "object", "properties": {
            "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "map": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}}}});
        let (errs, _) = run(
            schema,
            json!({"set": ["a", "b", "a"], "map": [{"name": "x", "v": 1}, {"name": "x", "v": 2}]}),
        );
        assert_eq!(
            errs,
            vec![
                "map[1]: Duplicate value: {\"name\":\"x\"}",
                "set[2]: Duplicate value: \"a\""
            ]
        );
    }
}
