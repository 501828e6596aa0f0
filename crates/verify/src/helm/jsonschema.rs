//! A JSON Schema validator for Helm chart `values.schema.json` files and talhelper's
//! `talconfig.json`: drafts 4, 6, 7, 2019-09 and 2020-12 as those files use them.
//!
//! It reports only what the schema certainly forbids. Keywords it does not implement
//! (`format`, `unevaluatedProperties`, remote `$ref`s, `$dynamicRef`, …) and patterns the Rust
//! `regex` crate cannot compile (ECMA look-arounds) accept the value: a missed finding is a
//! smaller harm than a false one in front of a deploy. Errors are collected, never panicked on;
//! recursion is bounded (a `$ref` cycle in a hostile schema ends at [`MAX_DEPTH`]).
//!
//! `anyOf`/`oneOf` report the branch errors only when no branch matches, as one finding at the
//! value ("matches none of the 2 allowed shapes"), so a wrong type in a `["null","string"]`-style
//! union reads as one line.

use std::collections::HashMap;
use std::sync::Mutex;

use regex::Regex;
use serde_json::{Map, Value};

/// How deep schema and instance may nest together before the validator gives up on a branch.
const MAX_DEPTH: usize = 128;

/// One violation: the instance path (`a.b[0]`, keys that are not identifiers as `[key]`)
/// and what is wrong, in the words of a Helm install error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) path: String,
    pub(crate) message: String,
}

/// A schema document, with its compiled patterns cached.
pub(crate) struct Schema {
    root: Value,
    patterns: Mutex<HashMap<String, Option<Regex>>>,
}

impl Schema {
    pub(crate) fn new(root: Value) -> Schema {
        Schema {
            root,
            patterns: Mutex::new(HashMap::new()),
        }
    }

    /// Every violation of `instance`, in document order.
    pub(crate) fn validate(&self, instance: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        self.check(&self.root, instance, "", 0, &mut out);
        out
    }

    fn check(&self, schema: &Value, v: &Value, path: &str, depth: usize, out: &mut Vec<Violation>) {
        if depth > MAX_DEPTH {
            return;
        }
        let s = match schema {
            Value::Bool(false) => {
                out.push(violation(path, "is not allowed here".to_owned()));
                return;
            }
            Value::Object(s) => s,
            _ => return,
        };
        if let Some(Value::String(r)) = s.get("$ref") {
            if let Some(target) = self.resolve(r) {
                self.check(target, v, path, depth + 1, out);
            }
            // Draft 4–7: `$ref` makes sibling keywords ignored; 2019-09 on: they apply too.
            if !self.siblings_apply() {
                return;
            }
        }
        if let Some(t) = s.get("type")
            && !type_matches(t, v)
        {
            out.push(violation(
                path,
                format!("expected {}, got {}", type_names(t), describe(v)),
            ));
            return;
        }
        if let Some(Value::Array(allowed)) = s.get("enum")
            && !allowed.iter().any(|a| json_eq(a, v))
        {
            out.push(violation(
                path,
                format!("{} is not one of {}", describe(v), list(allowed)),
            ));
        }
        if let Some(c) = s.get("const")
            && !json_eq(c, v)
        {
            out.push(violation(path, format!("must be {c}, got {}", describe(v))));
        }
        match v {
            Value::Object(m) => self.object(s, m, path, depth, out),
            Value::Array(a) => self.array(s, a, path, depth, out),
            Value::String(text) => self.string(s, text, path, out),
            Value::Number(_) => number(s, v, path, out),
            _ => {}
        }
        self.combinators(s, v, path, depth, out);
    }

    fn combinators(
        &self,
        s: &Map<String, Value>,
        v: &Value,
        path: &str,
        depth: usize,
        out: &mut Vec<Violation>,
    ) {
        if let Some(Value::Array(all)) = s.get("allOf") {
            for branch in all {
                self.check(branch, v, path, depth + 1, out);
            }
        }
        for (key, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            let Some(Value::Array(branches)) = s.get(key) else {
                continue;
            };
            let mut first_errors: Option<Vec<Violation>> = None;
            let mut matched = 0;
            for branch in branches {
                let errs = self.errors_of(branch, v, path, depth);
                if errs.is_empty() {
                    matched += 1;
                } else if first_errors.is_none() {
                    first_errors = Some(errs);
                }
            }
            if matched == 0 && !branches.is_empty() {
                // One branch's reasons when it is the only one; otherwise the count.
                match (branches.len(), first_errors) {
                    (1, Some(errs)) => out.extend(errs),
                    _ => out.push(violation(
                        path,
                        format!(
                            "{} matches none of the {} allowed shapes ({key})",
                            describe(v),
                            branches.len()
                        ),
                    )),
                }
            } else if exactly_one && matched > 1 {
                out.push(violation(
                    path,
                    format!("matches {matched} of the shapes of a oneOf, exactly one is allowed"),
                ));
            }
        }
        if let Some(not) = s.get("not")
            && self.errors_of(not, v, path, depth).is_empty()
        {
            out.push(violation(
                path,
                "matches a shape that is not allowed (not)".to_owned(),
            ));
        }
        if let Some(cond) = s.get("if") {
            let branch = if self.errors_of(cond, v, path, depth).is_empty() {
                s.get("then")
            } else {
                s.get("else")
            };
            if let Some(b) = branch {
                self.check(b, v, path, depth + 1, out);
            }
        }
    }

    fn errors_of(&self, schema: &Value, v: &Value, path: &str, depth: usize) -> Vec<Violation> {
        let mut errs = Vec::new();
        self.check(schema, v, path, depth + 1, &mut errs);
        errs
    }

    fn object(
        &self,
        s: &Map<String, Value>,
        m: &Map<String, Value>,
        path: &str,
        depth: usize,
        out: &mut Vec<Violation>,
    ) {
        if let Some(Value::Array(required)) = s.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !m.contains_key(name) {
                    out.push(violation(
                        path,
                        format!("missing required property `{name}`"),
                    ));
                }
            }
        }
        if let Some(Value::Object(dependent)) = s.get("dependentRequired") {
            for (key, needs) in dependent {
                if m.contains_key(key) {
                    for need in needs
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        if !m.contains_key(need) {
                            out.push(violation(path, format!("`{key}` needs `{need}` beside it")));
                        }
                    }
                }
            }
        }
        count_bound(
            s,
            "minProperties",
            "maxProperties",
            m.len(),
            "properties",
            path,
            out,
        );
        let props = s.get("properties").and_then(Value::as_object);
        let pattern_props = s.get("patternProperties").and_then(Value::as_object);
        for (key, value) in m {
            let child = join(path, key);
            let mut covered = false;
            if let Some(p) = props.and_then(|p| p.get(key)) {
                covered = true;
                self.check(p, value, &child, depth + 1, out);
            }
            for (pattern, p) in pattern_props.into_iter().flatten() {
                if let Some(re) = self.regex(pattern)
                    && re.is_match(key)
                {
                    covered = true;
                    self.check(p, value, &child, depth + 1, out);
                }
            }
            if let Some(names) = s.get("propertyNames") {
                let mut errs = Vec::new();
                self.check(
                    names,
                    &Value::String(key.clone()),
                    &child,
                    depth + 1,
                    &mut errs,
                );
                if !errs.is_empty() {
                    out.push(violation(
                        &child,
                        "is not an allowed property name".to_owned(),
                    ));
                }
            }
            if !covered && let Some(extra) = s.get("additionalProperties") {
                if extra == &Value::Bool(false) {
                    out.push(violation(
                        &child,
                        format!("unknown property `{key}` (the schema allows no other keys here)"),
                    ));
                } else {
                    self.check(extra, value, &child, depth + 1, out);
                }
            }
        }
    }

    fn array(
        &self,
        s: &Map<String, Value>,
        a: &[Value],
        path: &str,
        depth: usize,
        out: &mut Vec<Violation>,
    ) {
        count_bound(s, "minItems", "maxItems", a.len(), "items", path, out);
        // 2020-12 `prefixItems` + `items`; before that `items` as an array + `additionalItems`.
        let (prefix, rest) = match (s.get("prefixItems"), s.get("items")) {
            (Some(Value::Array(p)), items) => (Some(p), items),
            (_, Some(Value::Array(p))) => (Some(p), s.get("additionalItems")),
            (_, items) => (None, items),
        };
        for (i, item) in a.iter().enumerate() {
            let child = format!("{path}[{i}]");
            match prefix.and_then(|p| p.get(i)) {
                Some(p) => self.check(p, item, &child, depth + 1, out),
                None => {
                    if let Some(r) = rest {
                        self.check(r, item, &child, depth + 1, out);
                    }
                }
            }
        }
        if s.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, item) in a.iter().enumerate() {
                if a[..i].iter().any(|b| json_eq(b, item)) {
                    out.push(violation(
                        &format!("{path}[{i}]"),
                        "duplicates an earlier item (uniqueItems)".to_owned(),
                    ));
                }
            }
        }
        if let Some(contains) = s.get("contains")
            && !a
                .iter()
                .any(|item| self.errors_of(contains, item, path, depth).is_empty())
        {
            out.push(violation(
                path,
                "has no item of the required shape (contains)".to_owned(),
            ));
        }
    }

    fn string(&self, s: &Map<String, Value>, text: &str, path: &str, out: &mut Vec<Violation>) {
        let len = text.chars().count();
        count_bound(s, "minLength", "maxLength", len, "characters", path, out);
        if let Some(Value::String(pattern)) = s.get("pattern")
            && let Some(re) = self.regex(pattern)
            && !re.is_match(text)
        {
            out.push(violation(
                path,
                format!(
                    "{} does not match the pattern `{pattern}`",
                    describe(&Value::String(text.to_owned()))
                ),
            ));
        }
    }

    fn regex(&self, pattern: &str) -> Option<Regex> {
        let mut cache = self.patterns.lock().ok()?;
        cache
            .entry(pattern.to_owned())
            .or_insert_with(|| {
                regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .ok()
            })
            .clone()
    }

    /// Resolves a local reference (`#`, `#/definitions/x`, `#/$defs/x`, JSON-pointer escapes);
    /// anything else (another file, a URL) is not followed.
    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(&self.root);
        }
        let decoded = percent_decode(pointer);
        self.root.pointer(&decoded)
    }

    fn siblings_apply(&self) -> bool {
        let draft = self
            .root
            .get("$schema")
            .and_then(Value::as_str)
            .unwrap_or_default();
        draft.contains("2019-09") || draft.contains("2020-12")
    }
}

fn number(s: &Map<String, Value>, v: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(x) = v.as_f64() else { return };
    let f = |k: &str| s.get(k).and_then(Value::as_f64);
    // Draft 4 writes exclusiveness as booleans beside minimum/maximum.
    let excl = |k: &str| s.get(k) == Some(&Value::Bool(true));
    if let Some(min) = f("minimum") {
        if excl("exclusiveMinimum") && x <= min {
            out.push(violation(path, format!("{v} must be greater than {min}")));
        } else if x < min {
            out.push(violation(
                path,
                format!("{v} is less than the minimum {min}"),
            ));
        }
    }
    if let Some(max) = f("maximum") {
        if excl("exclusiveMaximum") && x >= max {
            out.push(violation(path, format!("{v} must be less than {max}")));
        } else if x > max {
            out.push(violation(
                path,
                format!("{v} is greater than the maximum {max}"),
            ));
        }
    }
    if let Some(min) = f("exclusiveMinimum")
        && x <= min
    {
        out.push(violation(path, format!("{v} must be greater than {min}")));
    }
    if let Some(max) = f("exclusiveMaximum")
        && x >= max
    {
        out.push(violation(path, format!("{v} must be less than {max}")));
    }
    if let Some(step) = f("multipleOf")
        && step > 0.0
    {
        let q = x / step;
        if (q - q.round()).abs() > 1e-9 {
            out.push(violation(path, format!("{v} is not a multiple of {step}")));
        }
    }
}

fn count_bound(
    s: &Map<String, Value>,
    min_key: &str,
    max_key: &str,
    n: usize,
    what: &str,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let n = n as u64;
    if let Some(min) = s.get(min_key).and_then(Value::as_u64)
        && n < min
    {
        out.push(violation(
            path,
            format!("has {n} {what}, at least {min} are required"),
        ));
    }
    if let Some(max) = s.get(max_key).and_then(Value::as_u64)
        && n > max
    {
        out.push(violation(
            path,
            format!("has {n} {what}, at most {max} are allowed"),
        ));
    }
}

fn type_matches(t: &Value, v: &Value) -> bool {
    match t {
        Value::String(name) => one_type(name, v),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| one_type(name, v)),
        _ => true,
    }
}

fn one_type(name: &str, v: &Value) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        // 1.0 is an integer from draft 6 on (and Helm reads YAML numbers as floats).
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn type_names(t: &Value) -> String {
    match t {
        Value::String(s) => s.clone(),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        other => other.to_string(),
    }
}

/// Equality as JSON Schema defines it: 1 and 1.0 are equal.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_eq(p, q)))
        }
        _ => a == b,
    }
}

/// A value as a message shows it: its type, and short scalars themselves.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("string {v}"),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn list(values: &[Value]) -> String {
    let shown: Vec<String> = values.iter().take(8).map(Value::to_string).collect();
    let more = values.len().saturating_sub(8);
    if more > 0 {
        format!("{} (and {more} more)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn violation(path: &str, message: String) -> Violation {
    Violation {
        path: path.to_owned(),
        message,
    }
}

/// `a.b` for identifier-like keys, `a[some.key]` otherwise (the path form of `tree::node_at`).
pub(crate) fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key}]"),
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: Value, v: Value) -> Vec<String> {
        Schema::new(schema)
            .validate(&v)
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    }

    #[test]
    fn types_required_and_strict_objects() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "required": ["replicas"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 1},
                "image": {"type": "object", "properties": {"tag": {"type": ["null", "string"]}}}
            }
        });
        assert_eq!(
            errors(
                schema.clone(),
                json!({"replicas": 2, "image": {"tag": null}})
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            errors(schema, json!({"replica": 2, "image": {"tag": 3}})),
            vec![
                ": missing required property `replicas`",
                "image.tag: expected null or string, got number 3",
                "replica: unknown property `replica` (the schema allows no other keys here)",
            ]
        );
    }

    #[test]
    fn refs_defs_and_ref_cycles() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": "#/$defs/root",
            "$defs": {
                "root": {"type": "object", "properties": {"child": {"$ref": "#/$defs/root"}, "n": {"$ref": "#/$defs/n"}}},
                "n": {"type": "integer"},
                "loop": {"$ref": "#/$defs/loop"}
            }
        });
        assert_eq!(
            errors(schema.clone(), json!({"child": {"child": {"n": "x"}}})),
            vec!["child.child.n: expected integer, got string \"x\""]
        );
        // A cycle of refs with no instance progress ends at the depth bound, without a finding.
        let looping = json!({"$ref": "#/$defs/loop", "$defs": {"loop": {"$ref": "#/$defs/loop"}}});
        assert!(errors(looping, json!(1)).is_empty());
        // A remote reference is not followed.
        assert!(errors(json!({"$ref": "https://example.com/s.json"}), json!(1)).is_empty());
    }

    #[test]
    fn any_of_one_of_not_and_conditionals() {
        let one_of = json!({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
        assert!(errors(one_of.clone(), json!({"a": 1})).is_empty());
        assert_eq!(
            errors(one_of.clone(), json!({"a": 1, "b": 2})),
            vec![": matches 2 of the shapes of a oneOf, exactly one is allowed"]
        );
        assert_eq!(
            errors(one_of, json!({})),
            vec![": an object matches none of the 2 allowed shapes (oneOf)"]
        );
        let any_of = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
        assert!(errors(any_of, json!(3)).is_empty());
        assert_eq!(
            errors(json!({"not": {"type": "string"}}), json!("x")).len(),
            1
        );
        let cond = json!({"if": {"properties": {"mode": {"const": "a"}}}, "then": {"required": ["x"]}, "else": {"required": ["y"]}});
        assert_eq!(
            errors(cond.clone(), json!({"mode": "a"})),
            vec![": missing required property `x`"]
        );
        assert_eq!(
            errors(cond, json!({"mode": "b"})),
            vec![": missing required property `y`"]
        );
    }

    #[test]
    fn strings_arrays_numbers_and_enums() {
        let s = json!({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3});
        assert_eq!(errors(s.clone(), json!("ab")), Vec::<String>::new());
        assert_eq!(errors(s, json!("abcd")).len(), 1);
        // ECMA look-ahead: the Rust regex crate cannot compile it, so the value is accepted.
        assert!(errors(json!({"pattern": "^(?!x)"}), json!("x")).is_empty());
        let a = json!({"type": "array", "uniqueItems": true, "items": {"enum": ["a", "b"]}, "minItems": 1});
        assert_eq!(
            errors(a.clone(), json!(["a", "a", "c"])),
            vec![
                "[2]: string \"c\" is not one of \"a\", \"b\"",
                "[1]: duplicates an earlier item (uniqueItems)",
            ]
        );
        assert_eq!(
            errors(a, json!([])),
            vec![": has 0 items, at least 1 are required"]
        );
        assert!(errors(json!({"type": "integer"}), json!(3.0)).is_empty());
        assert_eq!(errors(json!({"exclusiveMinimum": 0}), json!(0)).len(), 1);
        assert_eq!(
            errors(json!({"minimum": 0, "exclusiveMinimum": true}), json!(0)).len(),
            1
        );
        assert_eq!(errors(json!({"multipleOf": 0.5}), json!(1.25)).len(), 1);
        assert!(errors(json!({"enum": [1]}), json!(1.0)).is_empty());
    }

    #[test]
    fn ref_siblings_apply_only_from_2019_09() {
        let draft7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/definitions/s", "maxLength": 1}}});
        assert!(errors(draft7, json!({"a": "long"})).is_empty());
        let d2019 = json!({"$schema": "https://json-schema.org/draft/2019-09/schema", "$defs": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/$defs/s", "maxLength": 1}}});
        assert_eq!(errors(d2019, json!({"a": "long"})).len(), 1);
    }

    /// Real oracle: the verdict (valid or not) of every schema × instance pair of a corpus
    /// agrees with Python's `jsonschema` (the reference implementation of the drafts; `.ci/run`
    /// pins it). The corpus leaves out what this validator accepts on purpose (`format`, ECMA
    /// look-arounds, remote `$ref`s).
    #[test]
    fn verdicts_agree_with_python_jsonschema() {
        let d7 = "http://json-schema.org/draft-07/schema#";
        let d4 = "http://json-schema.org/draft-04/schema#";
        let d2019 = "https://json-schema.org/draft/2019-09/schema";
        let d2020 = "https://json-schema.org/draft/2020-12/schema";
        let schemas = vec![
            json!({"$schema": d7, "type": "object", "additionalProperties": false, "required": ["a"],
                   "properties": {"a": {"type": "integer", "minimum": 1}, "b": {"type": ["null", "string"]}}}),
            json!({"$schema": d7, "definitions": {"s": {"type": "string", "maxLength": 3}},
                   "properties": {"a": {"$ref": "#/definitions/s", "minLength": 10}}}),
            json!({"$schema": d2019, "$defs": {"s": {"type": "string", "maxLength": 3}},
                   "properties": {"a": {"$ref": "#/$defs/s", "minLength": 2}}}),
            json!({"$schema": d2020, "$ref": "#/$defs/r", "$defs": {"r": {"type": "object",
                   "properties": {"a": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "string"}}]}}}}}),
            json!({"$schema": d7, "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}),
            json!({"$schema": d7, "not": {"properties": {"a": {"const": 1}}, "required": ["a"]}}),
            json!({"$schema": d7, "if": {"properties": {"a": {"const": 1}}, "required": ["a"]},
                   "then": {"required": ["b"]}, "else": {"required": ["c"]}}),
            json!({"$schema": d7, "properties": {"a": {"type": "array", "uniqueItems": true, "minItems": 1, "maxItems": 2}}}),
            json!({"$schema": d7, "properties": {"a": {"type": "array", "items": [{"type": "integer"}], "additionalItems": false}}}),
            json!({"$schema": d2020, "properties": {"a": {"type": "array", "prefixItems": [{"type": "integer"}], "items": {"type": "string"}}}}),
            json!({"$schema": d7, "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": {"type": "string"}}),
            json!({"$schema": d7, "properties": {"a": {"enum": [1, "one", null, [1]]}, "b": {"const": {"k": 1}}}}),
            json!({"$schema": d4, "properties": {"a": {"type": "number", "minimum": 1, "exclusiveMinimum": true, "multipleOf": 0.5}}}),
            json!({"$schema": d7, "properties": {"a": {"type": "number", "exclusiveMaximum": 3, "maximum": 5}}}),
            json!({"$schema": d7, "properties": {"a": {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"}}}),
            json!({"$schema": d7, "propertyNames": {"maxLength": 2}, "minProperties": 1, "maxProperties": 2}),
            json!({"$schema": d2019, "dependentRequired": {"a": ["b"]}, "properties": {"a": {"contains": {"type": "integer"}}}}),
            json!({"$schema": d7, "allOf": [{"properties": {"a": {"type": "integer"}}}, {"properties": {"a": {"maximum": 3}}}]}),
            json!({"$schema": d7, "properties": {"a": false, "b": true}}),
        ];
        let instances = vec![
            json!({}),
            json!({"a": 1}),
            json!({"a": 2.0, "b": null}),
            json!({"a": 0, "b": "x"}),
            json!({"a": "ab"}),
            json!({"a": "abcd"}),
            json!({"a": "a", "b": 1, "c": 2}),
            json!({"a": [1, 1]}),
            json!({"a": [1, "x"]}),
            json!({"a": [1, 2, 3]}),
            json!({"a": ["x"]}),
            json!({"a": 1.5}),
            json!({"a": 3}),
            json!({"a": "kebab-case"}),
            json!({"a": "Not-Kebab"}),
            json!({"x-a": 1, "y": "s"}),
            json!({"x-a": "s"}),
            json!({"a": [1], "b": {"k": 1.0}}),
            json!({"a": null}),
            json!({"b": 1}),
            json!({"abc": 1}),
            json!({"a": [1.0], "b": 2}),
            json!([1, 2]),
            json!("string"),
        ];
        let ours: Vec<bool> = schemas
            .iter()
            .flat_map(|s| {
                let schema = Schema::new(s.clone());
                instances
                    .iter()
                    .map(move |i| schema.validate(i).is_empty())
                    .collect::<Vec<_>>()
            })
            .collect();
        let corpus = json!({"schemas": schemas, "instances": instances});
        let script = r#"
import json, sys
import jsonschema
c = json.load(sys.stdin)
out = []
for s in c["schemas"]:
    v = jsonschema.validators.validator_for(s)(s)
    for i in c["instances"]:
        out.append(v.is_valid(i))
print(json.dumps(out))
"#;
        let child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            return skip_or_fail("python3 is not installed");
        };
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(corpus.to_string().as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("No module named 'jsonschema'") {
                return skip_or_fail("the Python package jsonschema is not installed");
            }
            panic!("python3 failed: {err}");
        }
        let theirs: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(theirs.len(), ours.len());
        let mut disagreements = Vec::new();
        for (n, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            if a != b {
                let (s, i) = (n / instances.len(), n % instances.len());
                disagreements.push(format!(
                    "schema {s} {} on {}: ours {a}, python {b}",
                    schemas[s], instances[i]
                ));
            }
        }
        assert!(
            disagreements.is_empty(),
            "{} of {} verdicts differ:\n{}",
            disagreements.len(),
            ours.len(),
            disagreements.join("\n")
        );
        // The corpus is not trivially one-sided.
        let valid = ours.iter().filter(|v| **v).count();
        assert!(
            valid > 50 && valid < ours.len() - 50,
            "{valid} of {}",
            ours.len()
        );
    }

    /// With `REQUIRE_ORACLES=1` (CI) a missing oracle is a failure, not a skip.
    #[allow(clippy::print_stderr)]
    fn skip_or_fail(what: &str) {
        assert!(
            std::env::var_os("REQUIRE_ORACLES").is_none(),
            "{what} (REQUIRE_ORACLES is set, so this is a failure, not a skip)"
        );
        eprintln!("skipping: {what}");
    }

    #[test]
    fn odd_keys_are_bracketed_in_paths() {
        let schema = json!({"additionalProperties": {"type": "string"}});
        assert_eq!(
            errors(schema, json!({"app.kubernetes.io/name": 1})),
            vec!["[app.kubernetes.io/name]: expected string, got number 1"]
        );
    }
}
