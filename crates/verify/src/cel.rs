//! Evaluates `x-kubernetes-validations` rules with the Kubernetes CEL libraries.
//!
//! The function libraries (strings, lists, regex, URLs, IPs, quantities, semver, format…) come
//! from `kube-cel`. The walk is ours, because the API server's behaviour differs from
//! `kube-cel`'s own validator in ways that change verdicts and messages:
//! - a rule failure reads `<path>: Invalid value: "<schema type>": <message>` (or the
//!   `reason`'s wording), with `fieldPath` appended to the path;
//! - `null` values are not evaluated;
//! - transition rules (`oldSelf`) are skipped on create, unless `optionalOldSelf` is set, in
//!   which case `oldSelf` is `optional.none()`;
//! - rules whose `self` contains a value only the cluster knows (`${VAR}`, `ENC[…]`) cannot be
//!   decided here and are skipped (and counted).
//!
//! Values are converted the way the API server binds them: declared property names are escaped
//! (`__dash__`, `__dot__`, reserved words as `__word__`), map keys are not, `date-time` strings
//! are timestamps, `duration` strings durations, `byte` strings bytes, and an embedded resource
//! always has `apiVersion`, `kind` and `metadata`.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::{KubeCelExt, cel};
use serde_json::Value;

use crate::field::{FieldError, FieldErrorKind, quote};
use crate::openapi::{Additional, Format, Graph, NodeId, Program, Rule, Ty};
use crate::validate::{contains_unknown, join};

/// A CEL context with the Kubernetes libraries registered; build one per verification run.
pub(crate) struct CelEnv {
    ctx: cel::Context<'static>,
    /// `optional.none()`, made the first time a rule with `optionalOldSelf` runs (running the
    /// CEL parser costs more than most verify runs spend on it otherwise).
    none: OnceCell<cel::Value>,
}

impl CelEnv {
    pub(crate) fn new() -> CelEnv {
        let ctx = cel::Context::default().with_all();
        CelEnv {
            ctx,
            none: OnceCell::new(),
        }
    }

    fn none(&self) -> cel::Value {
        self.none
            .get_or_init(|| {
                cel::Program::compile("optional.none()")
                    .ok()
                    .and_then(|p| p.execute(&self.ctx).ok())
                    .unwrap_or(cel::Value::Null)
            })
            .clone()
    }

    /// Functions a program calls that this CEL implementation does not provide (operators and
    /// macros excluded). Each name is probed once by calling it with no arguments: a missing
    /// function fails with "undeclared reference", a present one with an argument error.
    pub(crate) fn missing_functions(
        &self,
        program: &Program,
        cache: &mut HashMap<String, bool>,
    ) -> Vec<String> {
        const MACROS: &[&str] = &["has", "all", "exists", "exists_one", "map", "filter"];
        let mut missing = Vec::new();
        for f in program.references().functions() {
            if f.starts_with('_') || f.starts_with('@') || MACROS.contains(&f) {
                continue;
            }
            let present =
                *cache.entry(f.to_owned()).or_insert_with(|| {
                    match cel::Program::compile(&format!("{f}()")) {
                        Ok(probe) => !matches!(
                            probe.execute(&self.ctx),
                            Err(cel::ExecutionError::UndeclaredReference(ref n)) if n.as_str() == f
                        ),
                        Err(_) => false,
                    }
                });
            if !present {
                missing.push(f.to_owned());
            }
        }
        missing.sort();
        missing
    }

    /// Executes `program` with nothing bound (for tests of the function library).
    #[cfg(test)]
    pub(crate) fn eval(&self, program: &Program) -> Result<cel::Value, cel::ExecutionError> {
        cel::Value::resolve(program, &self.ctx)
    }
}

/// Counters from one CEL walk.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CelStats {
    pub(crate) evaluated: usize,
    pub(crate) skipped_unknown: usize,
}

/// Runs every rule in `graph` under node `id` against `value` (already defaulted).
pub(crate) fn evaluate(
    env: &CelEnv,
    graph: &Graph,
    id: NodeId,
    value: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
    stats: &mut CelStats,
) {
    let n = graph.node(id);
    if !n.rules_below || value.is_null() {
        return;
    }
    if !n.rules.is_empty() {
        if contains_unknown(value) {
            stats.skipped_unknown += n.rules.len();
        } else {
            // One scope per node for all its rules: binding `self` copies the whole value into
            // the interpreter's representation, so it is done once, not once per rule. Only
            // transition rules mention `oldSelf`, so binding it for all of them changes nothing.
            let mut scope = env.ctx.new_inner_scope();
            scope.add_variable_from_value("self", to_cel(graph, Some(id), value));
            if n.rules.iter().any(|r| r.transition && r.optional_old_self) {
                scope.add_variable_from_value("oldSelf", env.none());
            }
            for rule in &n.rules {
                if let Some(e) = run_rule(&scope, rule, n.type_name(), path) {
                    errors.push(e);
                }
                stats.evaluated += 1;
            }
        }
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if let Some(&cid) = n.properties.get(key) {
                    evaluate(env, graph, cid, child, &join(path, key), errors, stats);
                } else if let Additional::Schema(a) = n.additional {
                    evaluate(
                        env,
                        graph,
                        a,
                        child,
                        &format!("{path}[{key}]"),
                        errors,
                        stats,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(it) = n.items {
                for (i, item) in items.iter().enumerate() {
                    evaluate(env, graph, it, item, &format!("{path}[{i}]"), errors, stats);
                }
            }
        }
        _ => {}
    }
    for &b in n.all_of.iter().chain(&n.any_of).chain(&n.one_of) {
        evaluate(env, graph, b, value, path, errors, stats);
    }
}

fn run_rule(
    scope: &cel::Context<'_>,
    rule: &Rule,
    type_name: &str,
    path: &str,
) -> Option<FieldError> {
    let program = match rule.program() {
        Ok(p) => p,
        Err(e) => {
            return Some(unevaluated(
                rule,
                path,
                &format!("the rule does not compile here ({e})"),
            ));
        }
    };
    if rule.transition && !rule.optional_old_self {
        // Transition rules only run on updates; a manifest is a create.
        return None;
    }
    let error_path = match rule.field_path.as_deref() {
        Some(fp) => field_path(path, fp),
        None => path.to_owned(),
    };
    match cel::Value::resolve(program, scope) {
        Ok(cel::Value::Bool(true)) => None,
        Ok(cel::Value::Bool(false)) => {
            let message = rule
                .message_expression()
                .and_then(Result::ok)
                .and_then(|m| match cel::Value::resolve(m, scope) {
                    Ok(cel::Value::String(s)) if !s.trim().is_empty() => Some((*s).clone()),
                    _ => None,
                })
                .or_else(|| rule.message.clone().filter(|m| !m.is_empty()))
                .unwrap_or_else(|| format!("failed rule: {}", rule.rule.trim()));
            let (kind, value) = match rule.reason.as_deref() {
                Some("FieldValueForbidden") => (FieldErrorKind::Forbidden, String::new()),
                Some("FieldValueRequired") => (FieldErrorKind::Required, String::new()),
                Some("FieldValueDuplicate") => (FieldErrorKind::Duplicate, quote(type_name)),
                _ => (FieldErrorKind::Invalid, quote(type_name)),
            };
            let mut e = FieldError::new(&error_path, kind, value, message);
            e.rule = Some(rule.rule.clone());
            Some(e)
        }
        Ok(other) => {
            let mut e = FieldError::new(
                &error_path,
                FieldErrorKind::Invalid,
                quote(type_name),
                format!(
                    "rule returned {} instead of a boolean: {}",
                    other.type_of(),
                    rule.rule.trim()
                ),
            );
            e.rule = Some(rule.rule.clone());
            Some(e)
        }
        Err(cel::ExecutionError::UndeclaredReference(name)) => Some(unevaluated(
            rule,
            &error_path,
            &format!("`{name}` is not available in this CEL implementation"),
        )),
        Err(err) => {
            let mut e = FieldError::new(
                &error_path,
                FieldErrorKind::Invalid,
                quote(type_name),
                format!("{err} evaluating rule: {}", rule.rule.trim()),
            );
            e.rule = Some(rule.rule.clone());
            Some(e)
        }
    }
}

fn unevaluated(rule: &Rule, path: &str, why: &str) -> FieldError {
    let mut e = FieldError::new(
        path,
        FieldErrorKind::Unevaluated,
        String::new(),
        format!("{why}: {}", rule.rule.trim()),
    );
    e.rule = Some(rule.rule.clone());
    e
}

/// Appends a rule's `fieldPath` (`.spec.x`, `.x['y']`) to the node path.
fn field_path(base: &str, fp: &str) -> String {
    let mut out = base.to_owned();
    let mut rest = fp;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            out = join(&out, &r[..end]);
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            let key = r[..end].trim_matches(['\'', '"']);
            out.push_str(&format!("[{key}]"));
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            out = join(&out, rest);
            break;
        }
    }
    out
}

/// Converts a JSON value to the CEL value the API server binds for it under schema node `id`.
pub(crate) fn to_cel(graph: &Graph, id: Option<NodeId>, v: &Value) -> cel::Value {
    let n = id.map(|i| graph.node(i));
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(num) => {
            if n.and_then(|n| n.ty) == Some(Ty::Number) {
                cel::Value::Float(num.as_f64().unwrap_or(f64::NAN))
            } else if let Some(i) = num.as_i64() {
                cel::Value::Int(i)
            } else if let Some(u) = num.as_u64() {
                cel::Value::UInt(u)
            } else {
                let f = num.as_f64().unwrap_or(f64::NAN);
                if n.is_some_and(|n| n.ty == Some(Ty::Integer) || n.int_or_string)
                    && f.fract() == 0.0
                {
                    cel::Value::Int(f as i64)
                } else {
                    cel::Value::Float(f)
                }
            }
        }
        Value::String(s) => {
            let format = n
                .filter(|n| !n.int_or_string)
                .map_or(Format::None, |n| n.format);
            match format {
                Format::DateTime => match chrono::DateTime::parse_from_rfc3339(s) {
                    Ok(t) => cel::Value::Timestamp(t),
                    Err(_) => string(s),
                },
                Format::Duration => match parse_go_duration(s) {
                    Some(d) => cel::Value::Duration(d),
                    None => string(s),
                },
                Format::Byte => {
                    use base64::Engine;
                    match base64::engine::general_purpose::STANDARD.decode(s) {
                        Ok(b) => cel::Value::Bytes(Arc::new(b)),
                        Err(_) => string(s),
                    }
                }
                _ => string(s),
            }
        }
        Value::Array(items) => {
            let item_schema = n.and_then(|n| n.items);
            cel::Value::List(Arc::new(
                items
                    .iter()
                    .map(|i| to_cel(graph, item_schema, i))
                    .collect(),
            ))
        }
        Value::Object(map) => {
            let (is_map, free) = match n {
                None => (false, true),
                Some(n) => (
                    matches!(n.additional, Additional::Schema(_) | Additional::Bool(true)),
                    n.properties.is_empty() && (n.preserve_unknown || n.ty.is_none() || n.embedded),
                ),
            };
            let mut out: HashMap<cel::objects::Key, cel::Value> = HashMap::with_capacity(map.len());
            for (k, child) in map {
                let child_schema = n.and_then(|n| {
                    n.properties.get(k).copied().or(match n.additional {
                        Additional::Schema(a) => Some(a),
                        _ => None,
                    })
                });
                let declared = n.is_some_and(|n| n.properties.contains_key(k));
                let key = if declared || !(is_map || free) {
                    match escape(k) {
                        Some(e) => e,
                        None => continue,
                    }
                } else {
                    k.clone()
                };
                out.insert(key.into(), to_cel(graph, child_schema, child));
            }
            if n.is_some_and(|n| n.embedded) {
                for (k, empty) in [
                    ("apiVersion", string("")),
                    ("kind", string("")),
                    (
                        "metadata",
                        cel::Value::Map(HashMap::<cel::objects::Key, cel::Value>::new().into()),
                    ),
                ] {
                    out.entry(k.to_owned().into()).or_insert(empty);
                }
            }
            cel::Value::Map(out.into())
        }
    }
}

fn string(s: &str) -> cel::Value {
    cel::Value::String(Arc::new(s.to_owned()))
}

const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The API server's CEL escaping of a declared property name; `None` if it is not accessible.
pub(crate) fn escape(name: &str) -> Option<String> {
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "_.-/".contains(c));
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)) {
        return None;
    }
    if !name.contains(['_', '.', '-', '/']) {
        return Some(name.to_owned());
    }
    let mut out = String::with_capacity(name.len() + 8);
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = r;
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            _ => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// Parses a Go duration (`1h30m`, `250ms`, `-1.5s`, `0`).
pub(crate) fn parse_go_duration(input: &str) -> Option<chrono::Duration> {
    let (neg, mut rest) = match input.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, input.strip_prefix('+').unwrap_or(input)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        let number: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let (unit, len) = [
            ("ns", 1.0),
            ("us", 1e3),
            ("µs", 1e3),
            ("ms", 1e6),
            ("s", 1e9),
            ("m", 60e9),
            ("h", 3600e9),
        ]
        .iter()
        .find(|(u, _)| rest.starts_with(u))
        .map(|(u, f)| (*f, u.len()))?;
        nanos += number * unit;
        rest = &rest[len..];
    }
    let nanos = nanos as i64;
    Some(chrono::Duration::nanoseconds(if neg {
        -nanos
    } else {
        nanos
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_api_server() {
        assert_eq!(escape("namespace").as_deref(), Some("__namespace__"));
        assert_eq!(escape("foo-bar").as_deref(), Some("foo__dash__bar"));
        assert_eq!(
            escape("a__b.c/d").as_deref(),
            Some("a__underscores__b__dot__c__slash__d")
        );
        assert_eq!(escape("plain").as_deref(), Some("plain"));
        assert_eq!(escape("1abc"), None);
    }

    #[test]
    fn field_paths_append() {
        assert_eq!(field_path("spec", ".a.b"), "spec.a.b");
        assert_eq!(field_path("", ".a['x.y']"), "a[x.y]");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m").unwrap().num_minutes(), 90);
        assert_eq!(parse_go_duration("250ms").unwrap().num_milliseconds(), 250);
        assert!(parse_go_duration("5x").is_none());
        assert!(parse_go_duration("").is_none());
    }

    #[test]
    fn missing_functions_are_found() {
        let env = CelEnv::new();
        let mut cache = HashMap::new();
        let p = crate::schemaset::celcode::parse(
            "self.noSuchFn(1) && self.split(',').size() > 0 && has(self.x)",
        )
        .unwrap();
        assert_eq!(env.missing_functions(&p, &mut cache), vec!["noSuchFn"]);
    }

    #[test]
    fn kubernetes_libraries_are_registered() {
        let env = CelEnv::new();
        for expr in [
            "'a,b'.split(',').size() == 2",
            "'10.0.0.1'.startsWith('10.')",
            "duration('1h') > duration('30m')",
            "isIP('10.0.0.1')",
            "quantity('1Gi').isGreaterThan(quantity('1Mi'))",
            "url('https://x.example/p').getHost() == 'x.example'",
        ] {
            let p = crate::schemaset::celcode::parse(expr).unwrap();
            assert_eq!(env.eval(&p), Ok(cel::Value::Bool(true)), "{expr}");
        }
    }
}
