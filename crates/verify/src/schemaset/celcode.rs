//! CEL programs as the schema digest keeps them: every `x-kubernetes-validations` rule and
//! `messageExpression` of a schema file, parsed once by the CEL parser when the digest is written
//! and stored as its syntax tree, so that `verify` does not run the parser again on every run.
//!
//! The parser is `cel`'s own (ANTLR-generated): it is the only one, and a tree read back here is
//! the value it produced, field for field (the tests compare them with `==`). Parsing costs
//! about 0.2 ms per new rule shape; reading a tree back costs microseconds.
//!
//! Encoding: unsigned LEB128 integers, length-prefixed strings and byte strings, one tag byte per
//! node. The table of a file is a count, then per entry: the source text, a flag (parsed or not),
//! and the tree (length-prefixed) or the parser's error message. Entries are sorted by text, without duplicates.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use kube_cel::cel;
use kube_cel::cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedEntryExpr, IdedExpr, ListExpr, LiteralValue,
    MapEntryExpr, MapExpr, SelectExpr, StructExpr, StructFieldExpr,
};
use serde_json::Value;

/// A parsed rule, or the parser's message for why it does not parse.
pub(crate) type Parsed = Result<IdedExpr, String>;

/// Parses `text` with the CEL parser.
pub(crate) fn parse(text: &str) -> Parsed {
    cel::Program::compile(text)
        .map(|p| p.expression().clone())
        .map_err(|e| e.to_string())
}

/// Every rule and message expression in `schema` (an `openAPIV3Schema`), sorted, once each.
pub(crate) fn rule_texts(schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                for r in rules {
                    for key in ["rule", "messageExpression"] {
                        if let Some(t) = r.get(key).and_then(Value::as_str) {
                            out.insert(t.to_owned());
                        }
                    }
                }
            }
            for v in map.values() {
                rule_texts(v, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                rule_texts(v, out);
            }
        }
        _ => {}
    }
}

/// The table of `texts`, each parsed now.
pub(crate) fn encode_table(texts: &BTreeSet<String>, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    w.uint(texts.len() as u64);
    for text in texts {
        w.str(text);
        match parse(text) {
            Ok(expr) => {
                w.byte(1);
                // Length-prefixed, so that the index steps over a tree without reading it.
                let mut tree = Vec::new();
                Writer(&mut tree).expr(&expr);
                w.bytes(&tree);
            }
            Err(message) => {
                w.byte(0);
                w.str(&message);
            }
        }
    }
}

/// The parsed rules of one schema file, read from its digest on demand.
pub(crate) struct Table {
    bytes: Arc<Vec<u8>>,
    range: Range<usize>,
    /// Text → where its entry's flag byte starts; built on the first lookup.
    index: OnceLock<HashMap<Box<str>, usize>>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} bytes)", self.range.len())
    }
}

impl Table {
    /// `bytes[range]` holds a table written by [`encode_table`].
    pub(crate) fn new(bytes: Arc<Vec<u8>>, range: Range<usize>) -> Table {
        Table {
            bytes,
            range,
            index: OnceLock::new(),
        }
    }

    fn slice(&self) -> &[u8] {
        self.bytes.get(self.range.clone()).unwrap_or_default()
    }

    /// The stored result for `text`; `None` if the table does not have it (or is unreadable,
    /// which the pinned digest hash rules out): the caller then parses the text itself.
    pub(crate) fn get(&self, text: &str) -> Option<Parsed> {
        let index = self
            .index
            .get_or_init(|| index(self.slice()).unwrap_or_default());
        let &at = index.get(text)?;
        let mut r = Reader {
            bytes: self.slice(),
            at,
            depth: 0,
        };
        match r.byte()? {
            1 => {
                let mut tree = Reader::new(r.raw()?);
                let expr = tree.expr()?;
                tree.at_end().then_some(Ok(expr))
            }
            0 => r.string().map(Err),
            _ => None,
        }
    }
}

/// Text → offset of the entry's flag byte, stepping over each tree by its length.
fn index(bytes: &[u8]) -> Option<HashMap<Box<str>, usize>> {
    let mut r = Reader {
        bytes,
        at: 0,
        depth: 0,
    };
    let count = r.uint()?;
    let mut out = HashMap::with_capacity(usize::try_from(count).ok()?.min(1 << 16));
    for _ in 0..count {
        let text = r.str()?;
        out.insert(Box::from(text), r.at);
        match r.byte()? {
            1 => {
                r.raw()?;
            }
            0 => {
                r.str()?;
            }
            _ => return None,
        }
    }
    Some(out)
}

pub(super) struct Writer<'a>(pub(super) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(super) fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    pub(super) fn uint(&mut self, mut v: u64) {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(low);
                return;
            }
            self.0.push(low | 0x80);
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.uint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    pub(super) fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn expr(&mut self, e: &IdedExpr) {
        self.uint(e.id);
        match &e.expr {
            Expr::Unspecified => self.byte(0),
            Expr::Call(c) => {
                self.byte(1);
                self.str(&c.func_name);
                match &c.target {
                    Some(t) => {
                        self.byte(1);
                        self.expr(t);
                    }
                    None => self.byte(0),
                }
                self.exprs(&c.args);
            }
            Expr::Comprehension(c) => {
                self.byte(2);
                self.expr(&c.iter_range);
                self.str(&c.iter_var);
                match &c.iter_var2 {
                    Some(v) => {
                        self.byte(1);
                        self.str(v);
                    }
                    None => self.byte(0),
                }
                self.str(&c.accu_var);
                self.expr(&c.accu_init);
                self.expr(&c.loop_cond);
                self.expr(&c.loop_step);
                self.expr(&c.result);
            }
            Expr::Ident(name) => {
                self.byte(3);
                self.str(name);
            }
            Expr::List(l) => {
                self.byte(4);
                self.exprs(&l.elements);
                self.uint(l.optional_indices.len() as u64);
                for &i in &l.optional_indices {
                    self.uint(i as u64);
                }
            }
            Expr::Literal(lit) => {
                self.byte(5);
                self.literal(lit);
            }
            Expr::Map(m) => {
                self.byte(6);
                self.entries(&m.entries);
            }
            Expr::Select(s) => {
                self.byte(7);
                self.expr(&s.operand);
                self.str(&s.field);
                self.byte(u8::from(s.test));
            }
            Expr::Struct(s) => {
                self.byte(8);
                self.str(&s.type_name);
                self.entries(&s.entries);
            }
        }
    }

    fn exprs(&mut self, list: &[IdedExpr]) {
        self.uint(list.len() as u64);
        for e in list {
            self.expr(e);
        }
    }

    fn literal(&mut self, lit: &LiteralValue) {
        match lit {
            LiteralValue::Boolean(b) => {
                self.byte(0);
                self.byte(u8::from(*b.inner()));
            }
            LiteralValue::Bytes(b) => {
                self.byte(1);
                self.bytes(b.inner());
            }
            LiteralValue::Double(d) => {
                self.byte(2);
                self.0.extend_from_slice(&d.inner().to_bits().to_le_bytes());
            }
            LiteralValue::Int(i) => {
                self.byte(3);
                self.0.extend_from_slice(&i.inner().to_le_bytes());
            }
            LiteralValue::Null => self.byte(4),
            LiteralValue::String(s) => {
                self.byte(5);
                self.str(s.inner());
            }
            LiteralValue::UInt(u) => {
                self.byte(6);
                self.uint(*u.inner());
            }
        }
    }

    fn entries(&mut self, entries: &[IdedEntryExpr]) {
        self.uint(entries.len() as u64);
        for e in entries {
            self.uint(e.id);
            match &e.expr {
                EntryExpr::StructField(f) => {
                    self.byte(0);
                    self.str(&f.field);
                    self.expr(&f.value);
                    self.byte(u8::from(f.optional));
                }
                EntryExpr::MapEntry(m) => {
                    self.byte(1);
                    self.expr(&m.key);
                    self.expr(&m.value);
                    self.byte(u8::from(m.optional));
                }
            }
        }
    }
}

/// At most this many elements are reserved ahead of reading them: a count is bounded by the
/// bytes left, but an element in memory is far larger than its smallest encoding (a schema node
/// is about 500 bytes), so a count alone could ask for gigabytes.
pub(super) const PREALLOCATE: usize = 1024;

/// Trees nest at most this deep (the CEL parser itself refuses far shallower ones).
const MAX_DEPTH: usize = 512;

pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            bytes,
            at: 0,
            depth: 0,
        }
    }

    /// Whether every byte was read.
    pub(super) fn at_end(&self) -> bool {
        self.at == self.bytes.len()
    }

    pub(super) fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    pub(super) fn flag(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    pub(super) fn uint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub(super) fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.uint()?).ok()?;
        // A count can never exceed the bytes left: each element takes at least one.
        (n <= self.bytes.len() - self.at).then_some(n)
    }

    fn raw(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        let s = self.bytes.get(self.at..self.at + n)?;
        self.at += n;
        Some(s)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.raw()?).ok()
    }

    pub(super) fn string(&mut self) -> Option<String> {
        self.str().map(str::to_owned)
    }

    pub(super) fn fixed8(&mut self) -> Option<[u8; 8]> {
        let s = self.bytes.get(self.at..self.at + 8)?;
        self.at += 8;
        s.try_into().ok()
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn expr(&mut self) -> Option<IdedExpr> {
        self.nested(|r| {
            let id = r.uint()?;
            let expr = match r.byte()? {
                0 => Expr::Unspecified,
                1 => {
                    let func_name = r.string()?;
                    let target = if r.flag()? {
                        Some(Box::new(r.expr()?))
                    } else {
                        None
                    };
                    Expr::Call(CallExpr {
                        func_name,
                        target,
                        args: r.exprs()?,
                    })
                }
                2 => {
                    let iter_range = r.expr()?;
                    let iter_var = r.string()?;
                    let iter_var2 = if r.flag()? { Some(r.string()?) } else { None };
                    Expr::Comprehension(Box::new(ComprehensionExpr {
                        iter_range,
                        iter_var,
                        iter_var2,
                        accu_var: r.string()?,
                        accu_init: r.expr()?,
                        loop_cond: r.expr()?,
                        loop_step: r.expr()?,
                        result: r.expr()?,
                    }))
                }
                3 => Expr::Ident(r.string()?),
                4 => {
                    let elements = r.exprs()?;
                    let n = r.len()?;
                    let mut optional_indices = Vec::with_capacity(n.min(PREALLOCATE));
                    for _ in 0..n {
                        optional_indices.push(usize::try_from(r.uint()?).ok()?);
                    }
                    Expr::List(ListExpr::new_with_optionals(elements, optional_indices))
                }
                5 => Expr::Literal(r.literal()?),
                6 => Expr::Map(MapExpr {
                    entries: r.entries()?,
                }),
                7 => Expr::Select(SelectExpr {
                    operand: Box::new(r.expr()?),
                    field: r.string()?,
                    test: r.flag()?,
                }),
                8 => Expr::Struct(StructExpr {
                    type_name: r.string()?,
                    entries: r.entries()?,
                }),
                _ => return None,
            };
            Some(IdedExpr { id, expr })
        })
    }

    fn exprs(&mut self) -> Option<Vec<IdedExpr>> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(PREALLOCATE));
        for _ in 0..n {
            out.push(self.expr()?);
        }
        Some(out)
    }

    fn literal(&mut self) -> Option<LiteralValue> {
        Some(match self.byte()? {
            0 => LiteralValue::Boolean(self.flag()?.into()),
            1 => LiteralValue::Bytes(self.raw()?.to_vec().into()),
            2 => LiteralValue::Double(f64::from_bits(u64::from_le_bytes(self.fixed8()?)).into()),
            3 => LiteralValue::Int(i64::from_le_bytes(self.fixed8()?).into()),
            4 => LiteralValue::Null,
            5 => LiteralValue::String(self.string()?.into()),
            6 => LiteralValue::UInt(self.uint()?.into()),
            _ => return None,
        })
    }

    fn entries(&mut self) -> Option<Vec<IdedEntryExpr>> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(PREALLOCATE));
        for _ in 0..n {
            let id = self.uint()?;
            let expr = match self.byte()? {
                0 => EntryExpr::StructField(StructFieldExpr {
                    field: self.string()?,
                    value: self.expr()?,
                    optional: self.flag()?,
                }),
                1 => EntryExpr::MapEntry(MapEntryExpr {
                    key: self.expr()?,
                    value: self.expr()?,
                    optional: self.flag()?,
                }),
                _ => return None,
            };
            out.push(IdedEntryExpr { id, expr });
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(texts: &[&str]) -> (Table, Vec<Parsed>) {
        let set: BTreeSet<String> = texts.iter().map(|t| (*t).to_owned()).collect();
        let mut bytes = Vec::new();
        encode_table(&set, &mut bytes);
        let len = bytes.len();
        let table = Table::new(Arc::new(bytes), 0..len);
        let expected = texts.iter().map(|t| parse(t)).collect();
        (table, expected)
    }

    #[test]
    fn every_node_kind_reads_back_as_the_parser_made_it() {
        let texts = [
            "self.all(f, f.name != 'x') && self.exists_one(x, x > 1u)",
            "has(self.a) ? self.a.size() <= 16 : !(self.b in [1, 2.5, -3])",
            "self.map(k, v, {k: v}).filter(e, e != null) == {'a': b'\\x00\\xff', 'c': true}",
            "oldSelf.?a.orValue('') == self.?b[?0].orValue(\"\") && optional.none() == optional.of(1)",
            "google.protobuf.Timestamp{seconds: 1}.getFullYear() > 0 || [?optional.of(1), 2].size() == 2",
            "self.matches('^[a-z]+$') && double(self.size()) / 2.0 > 1e-3 && 0x10 % 3 == 1",
            "'''multi\nline''' + r'raw\\n' != 'x'",
            "self.a ==",
        ];
        let (table, expected) = roundtrip(&texts);
        for (text, want) in texts.iter().zip(expected) {
            assert_eq!(table.get(text), Some(want), "{text}");
        }
        assert!(matches!(table.get("self.a =="), Some(Err(_))));
        assert_eq!(table.get("not in the table"), None);
    }

    #[test]
    fn a_damaged_table_answers_nothing_and_does_not_panic() {
        let set: BTreeSet<String> = ["self.x == 1".to_owned()].into();
        let mut bytes = Vec::new();
        encode_table(&set, &mut bytes);
        for cut in 0..bytes.len() {
            let t = Table::new(Arc::new(bytes[..cut].to_vec()), 0..cut);
            assert_eq!(t.get("self.x == 1"), None, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let len = flipped.len();
            let _ = Table::new(Arc::new(flipped.clone()), 0..len).get("self.x == 1");
            flipped[i] ^= 0xff;
        }
    }

    #[test]
    fn rule_texts_are_collected_once_in_order() {
        let schema = serde_json::json!({"type": "object",
            "x-kubernetes-validations": [{"rule": "b", "messageExpression": "'m'"}],
            "properties": {"spec": {"x-kubernetes-validations": [{"rule": "a"}, {"rule": "b"}]}}});
        let mut out = BTreeSet::new();
        rule_texts(&schema, &mut out);
        assert_eq!(out.into_iter().collect::<Vec<_>>(), ["'m'", "a", "b"]);
    }
}
