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
    /// Total bytes of scalar text created, counting every byte an alias copies: a 500 KB string
    /// aliased 100,000 times is 50 GB of memory, however few nodes it takes.
    pub max_expanded_bytes: usize,
}

impl Limits {
    /// Limits for hand-written configuration files (`cluster.yaml`, `nodes.yaml`).
    pub const CONFIG: Limits = Limits {
        max_bytes: 1 << 20,
        max_depth: 64,
        max_nodes: 200_000,
        max_expanded_bytes: 8 << 20,
    };
    /// Limits for generated manifests and CRD schemas (the largest upstream CRD is ~2 MB and
    /// about 100,000 nodes). A node costs about 100 bytes of memory, so one file at these limits
    /// takes about 130 MB; verify also bounds the whole tree (`verify::tree_too_large`).
    pub const MANIFESTS: Limits = Limits {
        max_bytes: 16 << 20,
        max_depth: 256,
        max_nodes: 1_000_000,
        max_expanded_bytes: 32 << 20,
    };
}

/// The result of loading a file: the documents that parsed, and everything that went wrong.
#[derive(Debug, Default)]
pub struct Loaded {
    pub documents: Vec<Node>,
    pub diagnostics: Vec<Diagnostic>,
    /// Nodes created, aliases included: what the documents cost in memory, roughly.
    pub nodes: usize,
    /// Bytes of scalar text created, aliases included.
    pub text_bytes: usize,
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
        self.value.scalar_text()
    }
}

impl Value {
    /// See [`Node::scalar_text`]. Distinct floats give distinct texts (shortest round-trip
    /// form), which duplicate-key detection relies on.
    pub fn scalar_text(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s.clone(),
            Value::Seq(_) | Value::Map(_) => String::new(),
        }
    }

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
        bytes: 0,
        anchors: HashMap::new(),
        diags: Vec::new(),
        duplicates: 0,
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
                Some(&(_, count, bytes)) => {
                    // Charge before copying: the copy is what the budget protects against.
                    if !builder.charge(count, bytes, span) {
                        break;
                    }
                    let mut node = builder.anchors[&id].0.clone();
                    node.span = span;
                    Some((node, 0))
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
                if !builder.charge(1, text.len(), span) {
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
                if !builder.charge(1, 0, span) {
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
                    first_byte: builder.bytes,
                    kind: if is_map {
                        FrameKind::Map(Vec::new(), None, HashMap::new())
                    } else {
                        FrameKind::Seq(Vec::new())
                    },
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else { continue };
                let count = builder.nodes - frame.first_node + 1;
                let bytes = builder.bytes - frame.first_byte;
                let value = match frame.kind {
                    FrameKind::Seq(items) => Value::Seq(items),
                    FrameKind::Map(entries, _, _) => Value::Map(entries),
                };
                let mut node = Node::new(value, frame.span);
                // Collections underline just their first character.
                node.span.len = 1;
                if frame.anchor != 0 {
                    builder
                        .anchors
                        .insert(frame.anchor, (node.clone(), count, bytes));
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
            let bytes = scalar_bytes(&node.value);
            builder.anchors.insert(anchor, (node.clone(), 1, bytes));
        }
        match stack.last_mut() {
            None => out.documents.push(node),
            Some(frame) => match &mut frame.kind {
                FrameKind::Seq(items) => items.push(node),
                FrameKind::Map(entries, pending, seen) => match pending.take() {
                    None => *pending = Some(node),
                    Some(key) => {
                        // A hash of the keys seen so far: a linear scan per key made a 1 MB
                        // file with 95,000 keys take 18 s.
                        let first = key_identity(&key.value).and_then(|id| match seen.entry(id) {
                            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                            std::collections::hash_map::Entry::Vacant(e) => {
                                e.insert(entries.len());
                                None
                            }
                        });
                        match first {
                            Some(i) => {
                                let first_loc = entries[i].0.location(&builder.file);
                                builder.duplicate(&key, first_loc);
                            }
                            None => entries.push((key, node)),
                        }
                    }
                },
            },
        }
    }
    if builder.duplicates > MAX_DUPLICATE_REPORTS {
        let hidden = builder.duplicates - MAX_DUPLICATE_REPORTS;
        builder.diags.push(
            Diagnostic::error(
                "yaml::duplicate_key",
                "",
                format!("{hidden} more duplicate keys are not listed"),
            )
            .at(Some(Location::new(file, 1, 1, 1)))
            .with_help("the file repeats keys many times over; fix the ones listed and run again"),
        );
    }
    out.diagnostics.extend(builder.diags);
    out.nodes = builder.nodes;
    out.text_bytes = builder.bytes;
    out
}

/// Duplicate keys listed one by one, at most; the rest are counted in one diagnostic.
const MAX_DUPLICATE_REPORTS: usize = 100;

/// What makes two scalar keys the same key (`1` and `"1"` are different keys); `None` for
/// collection keys, which are never compared.
fn key_identity(v: &Value) -> Option<(u8, String)> {
    let tag = match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) => 2,
        Value::Float(f) if f.is_nan() => return None,
        Value::Float(_) => 3,
        Value::Str(_) => 4,
        Value::Seq(_) | Value::Map(_) => return None,
    };
    let text = match v {
        // -0.0 == 0.0 as keys, like the comparison this replaces.
        Value::Float(f) if *f == 0.0 => "0".to_owned(),
        _ => v.scalar_text(),
    };
    Some((tag, text))
}

fn scalar_bytes(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len(),
        _ => 8,
    }
}

/// Reads and loads a file; an unreadable, non-UTF-8, oversized or non-regular file, or a symlink,
/// is a diagnostic, not a panic (see [`crate::repofile`]).
pub fn load_file(path: &Path, display: &Path, limits: Limits) -> Loaded {
    loaded_from(
        crate::repofile::read(path, limits.max_bytes as u64),
        display,
        limits,
    )
}

/// Like [`load_file`] for `rel` below `root`: a symlink anywhere below the root is refused.
pub fn load_file_under(root: &Path, rel: &Path, limits: Limits) -> Loaded {
    loaded_from(
        crate::repofile::read_under(root, rel, limits.max_bytes as u64),
        rel,
        limits,
    )
}

fn loaded_from(
    read: Result<Vec<u8>, crate::repofile::ReadError>,
    display: &Path,
    limits: Limits,
) -> Loaded {
    match read.and_then(crate::repofile::into_text) {
        Ok(text) => load(&text, display, limits),
        Err(err) => Loaded::default().with_error(read_error(&err, display)),
    }
}

/// A file that could not be read, as a diagnostic at its first line.
pub fn read_error(err: &crate::repofile::ReadError, display: &Path) -> Diagnostic {
    let code = match err {
        crate::repofile::ReadError::NotFound => "read",
        other => other.code(),
    };
    Diagnostic::error(
        format!("yaml::{code}"),
        "",
        format!("{} {err}", display.display()),
    )
    .at(Some(Location::new(display, 1, 1, 1)))
    .with_help(err.help())
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
    bytes: usize,
    /// anchor id -> (node, number of nodes in it, bytes of scalar text in it)
    anchors: HashMap<usize, (Node, usize, usize)>,
    diags: Vec<Diagnostic>,
    duplicates: usize,
}

impl Builder {
    /// Accounts for `n` more nodes holding `bytes` of text; false (with a diagnostic) once over
    /// either budget.
    fn charge(&mut self, n: usize, bytes: usize, span: Span) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.limits.max_expanded_bytes {
            self.error(
                "yaml::too_many_bytes",
                &format!(
                    "document expands to more than {} bytes of text (aliases included)",
                    self.limits.max_expanded_bytes
                ),
                span,
                None,
            );
            return false;
        }
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

    fn duplicate(&mut self, key: &Node, first: Location) {
        self.duplicates += 1;
        if self.duplicates <= MAX_DUPLICATE_REPORTS {
            self.error(
                "yaml::duplicate_key",
                &format!("duplicate key `{}`", key.scalar_text()),
                key.span,
                Some(("first defined here".to_owned(), first)),
            );
        }
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
    first_byte: usize,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    /// Entries so far, a key waiting for its value, and the index of each scalar key.
    Map(
        Vec<(Node, Node)>,
        Option<Node>,
        HashMap<(u8, String), usize>,
    ),
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
    fn string_alias_bombs_stop_at_the_byte_budget() {
        // 200 KB of text aliased 1,000 times: few nodes, 200 MB once expanded.
        let big = "x".repeat(200_000);
        let mut s = format!("a: &big \"{big}\"\nb: [");
        s.push_str(&vec!["*big"; 1000].join(", "));
        s.push_str("]\n");
        assert!(s.len() < Limits::CONFIG.max_bytes);
        let l = load_str(&s);
        assert!(
            l.diagnostics
                .iter()
                .any(|d| d.code == "yaml::too_many_bytes"),
            "{:?}",
            l.diagnostics.iter().map(|d| &d.code).collect::<Vec<_>>()
        );
        // Collections holding the string are charged by their contents too.
        let mut s = format!("a: &big [\"{big}\", \"{big}\"]\nb: [");
        s.push_str(&vec!["*big"; 100].join(", "));
        s.push_str("]\n");
        let l = load_str(&s);
        assert!(
            l.diagnostics
                .iter()
                .any(|d| d.code == "yaml::too_many_bytes")
        );
    }

    #[test]
    fn many_duplicate_keys_are_found_in_linear_time_and_listed_briefly() {
        // 95,000 distinct keys then 20,000 repeats of one: a scan per key was quadratic.
        let mut s = String::new();
        for i in 0..95_000 {
            s.push_str(&format!("k{i}: 1\n"));
        }
        for _ in 0..20_000 {
            s.push_str("k7: 2\n");
        }
        let l = load(&s, Path::new("t.yaml"), Limits::MANIFESTS);
        let dups: Vec<_> = l
            .diagnostics
            .iter()
            .filter(|d| d.code == "yaml::duplicate_key")
            .collect();
        assert_eq!(dups.len(), MAX_DUPLICATE_REPORTS + 1);
        assert!(dups.last().unwrap().message.starts_with("19900 more"));
        assert_eq!(l.documents[0].as_map().unwrap().len(), 95_000);
    }

    #[test]
    fn distinct_scalar_types_are_distinct_keys() {
        let l = load_str("1: a\n\"1\": b\ntrue: c\n\"true\": d\n1.0: e\n");
        assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
        let l = load_str("1.0: a\n1.00: b\n");
        assert_eq!(l.diagnostics.len(), 1);
    }

    #[test]
    fn load_file_refuses_symlinks_and_special_files() {
        let dir = std::env::temp_dir().join(format!("yaml-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("age.key"), "AGE-SECRET-KEY-1QQQ\n").unwrap();
        let link = dir.join("cluster.yaml");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(dir.join("age.key"), &link).unwrap();
        let l = load_file(&link, Path::new("cluster.yaml"), Limits::CONFIG);
        assert_eq!(l.diagnostics[0].code, "yaml::symlink");
        assert!(!format!("{:?}", l.diagnostics).contains("AGE-SECRET"));
        let l = load_file(
            Path::new("/dev/zero"),
            Path::new("zero.yaml"),
            Limits::CONFIG,
        );
        assert_eq!(l.diagnostics[0].code, "yaml::not_regular");
        let _ = std::fs::remove_dir_all(&dir);
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
