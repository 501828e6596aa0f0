//! A YAML tree that remembers where every node came from.
//!
//! Built on the event parser `granit-parser` (the parser under serde-saphyr). We do not
//! deserialize straight into structs: a reviewer-grade validator must see every key (to report
//! all problems in one run, unknown keys included) and point at each one by line and column.
//!
//! Loading is bounded: input size, nesting depth and the number of nodes — aliases included, so an
//! alias bomb stops at the node budget instead of exhausting memory. Duplicate keys are errors.
//! Plain scalars are typed with the YAML 1.2 core schema (`true`, `42`, `0x1f`, `1.5`, `~`);
//! quoted and block scalars are always strings.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use granit_parser::{Event, Parser, ScalarStyle, Span as GSpan};

use crate::diag::{Diagnostic, Location};

/// Where a node sits in its source file. Lines and columns are 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub line: u32,
    pub col: u32,
    /// Characters to underline on `line`.
    pub len: u32,
}

/// One YAML node with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys keep their own spans; order is the source order. Keys are unique (duplicates are
    /// reported and the first occurrence is kept).
    Map(Vec<(Node, Node)>),
}

/// Resource limits for one load.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    /// Total nodes created, counting every node an alias copies.
    pub max_nodes: usize,
}

impl Limits {
    /// Limits for hand-written configuration files (`cluster.yaml`, `nodes.yaml`).
    pub const CONFIG: Limits = Limits {
        max_bytes: 1 << 20,
        max_depth: 64,
        max_nodes: 200_000,
    };
    /// Limits for generated manifests and CRD schemas (the largest upstream CRD is ~2 MB).
    pub const MANIFESTS: Limits = Limits {
        max_bytes: 32 << 20,
        max_depth: 256,
        max_nodes: 5_000_000,
    };
}

/// The result of loading a file: the documents that parsed, and everything that went wrong.
#[derive(Debug, Default)]
pub struct Loaded {
    pub documents: Vec<Node>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Node {
    pub fn new(value: Value, span: Span) -> Node {
        Node { value, span }
    }

    /// The value under `key` if this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node under `key` if this node is a mapping.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// A short name of the node's type for messages: "a string", "a list", …
    pub fn kind(&self) -> &'static str {
        self.value.kind()
    }

    pub fn location(&self, file: &Path) -> Location {
        Location::new(file, self.span.line, self.span.col, self.span.len)
    }

    /// Converts to JSON (keys stringified; floats that JSON cannot hold become null).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The text of a scalar as a key or in a message (`true`, `42`, `foo`); collections give "".
    pub fn scalar_text(&self) -> String {
        match &self.value {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s.clone(),
            Value::Seq(_) | Value::Map(_) => String::new(),
        }
    }
}

impl Value {
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Loads every document of `text`. `file` is only used for locations in diagnostics.
pub fn load(text: &str, file: &Path, limits: Limits) -> Loaded {
    let mut out = Loaded::default();
    if text.len() > limits.max_bytes {
        out.diagnostics.push(
            Diagnostic::error(
                "yaml::too_large",
                "",
                format!(
                    "file is {} bytes, more than the {} bytes allowed",
                    text.len(),
                    limits.max_bytes
                ),
            )
            .at(Some(Location::new(file, 1, 1, 1)))
            .with_help(
                "this file is far larger than any valid input; check that the right file was given",
            ),
        );
        return out;
    }
    let mut builder = Builder {
        file: file.to_path_buf(),
        limits,
        nodes: 0,
        anchors: HashMap::new(),
        diags: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let (event, gspan) = match parser.next() {
            None => break,
            Some(Ok(ev)) => ev,
            Some(Err(err)) => {
                let m = err.marker();
                builder.diags.push(
                    Diagnostic::error("yaml::syntax", "", format!("invalid YAML: {}", err.info()))
                        .at(Some(Location::new(file, m.line() as u32, m.col() as u32 + 1, 1)))
                        .with_help("fix the YAML syntax at this position (indentation, a missing `:` or an unclosed quote are the usual causes)"),
                );
                break;
            }
        };
        let span = to_span(&gspan, text);
        let finished: Option<(Node, usize)> = match event {
            Event::Alias(id) => match builder.anchors.get(&id) {
                Some((node, count)) => {
                    let (node, count) = (node.clone(), *count);
                    if builder.charge(count, span) {
                        let mut node = node;
                        node.span = span;
                        Some((node, 0))
                    } else {
                        break;
                    }
                }
                None => {
                    builder.error(
                        "yaml::alias",
                        "alias refers to an unknown anchor",
                        span,
                        None,
                    );
                    Some((Node::new(Value::Null, span), 0))
                }
            },
            Event::UnresolvedAlias(_) => Some((Node::new(Value::Null, span), 0)),
            Event::Scalar(text, style, anchor, tag) => {
                if !builder.charge(1, span) {
                    break;
                }
                let is_str_tag = tag
                    .as_ref()
                    .is_some_and(|t| t.is_yaml_core_schema_tag("str"));
                let value = if style == ScalarStyle::Plain && !is_str_tag {
                    resolve_plain(&text)
                } else {
                    Value::Str(text.into_owned())
                };
                Some((Node::new(value, span), anchor))
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                if !builder.charge(1, span) {
                    break;
                }
                if stack.len() >= limits.max_depth {
                    builder.error(
                        "yaml::too_deep",
                        &format!("nesting deeper than {} levels", limits.max_depth),
                        span,
                        None,
                    );
                    break;
                }
                let is_map = matches!(event, Event::MappingStart(..));
                stack.push(Frame {
                    span,
                    anchor,
                    first_node: builder.nodes,
                    kind: if is_map {
                        FrameKind::Map(Vec::new(), None)
                    } else {
                        FrameKind::Seq(Vec::new())
                    },
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else { continue };
                let count = builder.nodes - frame.first_node + 1;
                let value = match frame.kind {
                    FrameKind::Seq(items) => Value::Seq(items),
                    FrameKind::Map(entries, _) => Value::Map(entries),
                };
                let mut node = Node::new(value, frame.span);
                // Collections underline just their first character.
                node.span.len = 1;
                if frame.anchor != 0 {
                    builder.anchors.insert(frame.anchor, (node.clone(), count));
                }
                Some((node, 0))
            }
            // Stream/document markers, anchor metadata and comments carry no data.
            _ => None,
        };
        let Some((node, anchor)) = finished else {
            continue;
        };
        if anchor != 0 {
            builder.anchors.insert(anchor, (node.clone(), 1));
        }
        match stack.last_mut() {
            None => out.documents.push(node),
            Some(frame) => match &mut frame.kind {
                FrameKind::Seq(items) => items.push(node),
                FrameKind::Map(entries, pending) => match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => {
                        if let Some((first, _)) = entries
                            .iter()
                            .find(|(k, _)| k.value == key.value && is_scalar(&k.value))
                        {
                            let first_loc = first.location(&builder.file);
                            builder.error(
                                "yaml::duplicate_key",
                                &format!("duplicate key `{}`", key.scalar_text()),
                                key.span,
                                Some(("first defined here".to_owned(), first_loc)),
                            );
                        } else {
                            entries.push((key, node));
                        }
                    }
                },
            },
        }
    }
    out.diagnostics.extend(builder.diags);
    out
}

/// Reads and loads a file; an unreadable or non-UTF-8 file is a diagnostic, not a panic.
pub fn load_file(path: &Path, display: &Path, limits: Limits) -> Loaded {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() as usize > limits.max_bytes => {
            return Loaded::default().with_error(
                Diagnostic::error(
                    "yaml::too_large",
                    "",
                    format!(
                        "file is {} bytes, more than the {} bytes allowed",
                        meta.len(),
                        limits.max_bytes
                    ),
                )
                .at(Some(Location::new(display, 1, 1, 1))),
            );
        }
        _ => {}
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => load(&text, display, limits),
            Err(err) => Loaded::default().with_error(
                Diagnostic::error(
                    "yaml::encoding",
                    "",
                    format!(
                        "file is not UTF-8 (invalid byte at offset {})",
                        err.utf8_error().valid_up_to()
                    ),
                )
                .at(Some(Location::new(display, 1, 1, 1))),
            ),
        },
        Err(err) => Loaded::default().with_error(Diagnostic::error(
            "yaml::read",
            "",
            format!("cannot read {}: {err}", display.display()),
        )),
    }
}

impl Loaded {
    fn with_error(mut self, d: Diagnostic) -> Loaded {
        self.diagnostics.push(d);
        self
    }
}

struct Builder {
    file: PathBuf,
    limits: Limits,
    nodes: usize,
    /// anchor id -> (node, number of nodes in it)
    anchors: HashMap<usize, (Node, usize)>,
    diags: Vec<Diagnostic>,
}

impl Builder {
    /// Accounts for `n` more nodes; false (with a diagnostic) once over budget.
    fn charge(&mut self, n: usize, span: Span) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            self.error(
                "yaml::too_many_nodes",
                &format!(
                    "document expands to more than {} nodes (aliases included)",
                    self.limits.max_nodes
                ),
                span,
                None,
            );
            return false;
        }
        true
    }

    fn error(&mut self, code: &str, message: &str, span: Span, note: Option<(String, Location)>) {
        let mut d = Diagnostic::error(code, "", message).at(Some(Location::new(
            &self.file, span.line, span.col, span.len,
        )));
        if let Some((text, loc)) = note {
            d = d.with_note(text, Some(loc));
        }
        self.diags.push(d);
    }
}

struct Frame {
    span: Span,
    anchor: usize,
    first_node: usize,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    /// Entries so far and a key waiting for its value.
    Map(Vec<(Node, Node)>, Option<Node>),
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Seq(_) | Value::Map(_))
}

fn to_span(span: &GSpan, text: &str) -> Span {
    let line = span.start.line() as u32;
    let col = span.start.col() as u32 + 1;
    let len = if span.end.line() == span.start.line() {
        span.end.col().saturating_sub(span.start.col()) as u32
    } else {
        // Multi-line node: underline to the end of its first line.
        span.byte_range()
            .and_then(|r| text.get(r.start..))
            .map(|rest| rest.lines().next().unwrap_or("").chars().count() as u32)
            .unwrap_or(1)
    };
    Span {
        line,
        col,
        len: len.max(1),
    }
}

/// YAML 1.2 core schema resolution of a plain scalar (plus the `0o`/`0x` forms and `_` separators
/// are NOT accepted: `1_000` stays a string, as in YAML 1.2).
pub fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = s.strip_prefix("0x") {
        if !hex.is_empty()
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && let Ok(i) = i64::from_str_radix(hex, 16)
        {
            return Value::Int(i);
        }
        return Value::Str(s.to_owned());
    }
    if let Some(oct) = s.strip_prefix("0o") {
        if !oct.is_empty()
            && oct.bytes().all(|b| (b'0'..=b'7').contains(&b))
            && let Ok(i) = i64::from_str_radix(oct, 8)
        {
            return Value::Int(i);
        }
        return Value::Str(s.to_owned());
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<i64>() {
            Ok(i) => Value::Int(i),
            // Too large for i64: keep it as a float like YAML libraries do.
            Err(_) => s
                .parse::<f64>()
                .map(Value::Float)
                .unwrap_or_else(|_| Value::Str(s.to_owned())),
        };
    }
    if is_float(digits)
        && let Ok(f) = s.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(s.to_owned())
}

/// `[0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)?` with at least one digit before the exponent.
fn is_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (mantissa, None),
    };
    let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(int) || !frac.is_none_or(digits_ok) {
        return false;
    }
    if int.is_empty() && frac.is_none_or(str::is_empty) {
        return false;
    }
    if frac.is_none() && exponent.is_none() {
        return false;
    }
    match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits_ok(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(s: &str) -> Loaded {
        load(s, Path::new("t.yaml"), Limits::CONFIG)
    }

    #[test]
    fn types_plain_scalars_like_yaml_1_2() {
        let cases = [
            ("~", Value::Null),
            ("true", Value::Bool(true)),
            ("yes", Value::Str("yes".into())),
            ("42", Value::Int(42)),
            ("-7", Value::Int(-7)),
            ("0x1f", Value::Int(31)),
            ("0o17", Value::Int(15)),
            ("1.5", Value::Float(1.5)),
            ("1e3", Value::Float(1000.0)),
            (".5", Value::Float(0.5)),
            ("1_000", Value::Str("1_000".into())),
            ("10.10.10.0/24", Value::Str("10.10.10.0/24".into())),
            ("1.2.3", Value::Str("1.2.3".into())),
            ("v0.4.0", Value::Str("v0.4.0".into())),
        ];
        for (input, want) in cases {
            assert_eq!(resolve_plain(input), want, "{input}");
        }
    }

    #[test]
    fn quoted_scalars_are_strings_and_spans_point_at_values() {
        let l = load_str("a: \"42\"\nb:\n  - x\n  - 'y'\n");
        assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
        let doc = &l.documents[0];
        assert_eq!(doc.get("a").unwrap().value, Value::Str("42".into()));
        assert_eq!(
            doc.get("a").unwrap().span,
            Span {
                line: 1,
                col: 4,
                len: 4
            }
        );
        let b = doc.get("b").unwrap().as_seq().unwrap();
        assert_eq!(b[1].span.line, 4);
        assert_eq!(b[1].span.col, 5);
        assert_eq!(
            doc.entry("b").unwrap().0.span,
            Span {
                line: 2,
                col: 1,
                len: 1
            }
        );
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_places() {
        let l = load_str("a: 1\nb: 2\na: 3\n");
        assert_eq!(l.diagnostics.len(), 1);
        let d = &l.diagnostics[0];
        assert_eq!(d.code, "yaml::duplicate_key");
        assert_eq!(d.location.as_ref().unwrap().line, 3);
        assert_eq!(d.notes[0].1.as_ref().unwrap().line, 1);
        assert_eq!(l.documents[0].get("a").unwrap().value, Value::Int(1));
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let l = load_str("a: 1\nb: [1, 2\nc: 3\n");
        assert_eq!(l.diagnostics.len(), 1);
        assert_eq!(l.diagnostics[0].code, "yaml::syntax");
        assert!(l.diagnostics[0].location.is_some());
    }

    #[test]
    fn alias_bombs_stop_at_the_node_budget() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..30 {
            let p = i - 1;
            s.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let l = load_str(&s);
        assert!(
            l.diagnostics
                .iter()
                .any(|d| d.code == "yaml::too_many_nodes"),
            "{:?}",
            l.diagnostics
        );
    }

    #[test]
    fn aliases_within_budget_are_expanded() {
        let l = load_str("a: &x {k: v}\nb: *x\n");
        assert!(l.diagnostics.is_empty());
        assert_eq!(
            l.documents[0].get("b").unwrap().get("k").unwrap().as_str(),
            Some("v")
        );
        assert_eq!(l.documents[0].get("b").unwrap().span.line, 2);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let s = "[".repeat(100) + &"]".repeat(100);
        let l = load_str(&s);
        assert!(!l.diagnostics.is_empty());
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let s = "a: b\n".repeat(300_000);
        let l = load_str(&s);
        assert_eq!(l.diagnostics[0].code, "yaml::too_large");
        assert!(l.documents.is_empty());
    }

    #[test]
    fn multiple_documents() {
        let l = load(
            "---\na: 1\n---\nb: 2\n",
            Path::new("m.yaml"),
            Limits::MANIFESTS,
        );
        assert_eq!(l.documents.len(), 2);
        assert_eq!(l.documents[1].span.line, 4);
    }
}
