//! A compiled CRD schema (`openapi::Graph`) as the schema digest keeps it, so that a run reads
//! the nodes the validator walks instead of parsing the version's JSON schema and compiling it
//! again (about half of a `verify` run's CPU time before this form existed).
//!
//! Written from the graph `openapi::Compiler` builds from the pinned source, read back into the
//! same nodes; patterns and CEL programs stay lazy (CEL trees come from the file's `celcode`
//! table). The encoding uses `celcode`'s primitives; enum values and defaults are compact JSON.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::celcode::{self, PREALLOCATE, Reader, Writer};
use crate::openapi::{Additional, Format, Graph, ListType, NodeId, Pattern, Rule, SchemaNode, Ty};

/// Appends `graph` (rooted at `root`) to `out`.
pub(crate) fn encode(graph: &Graph, root: NodeId, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    w.uint(root as u64);
    w.uint(graph.rule_count as u64);
    w.uint(graph.compile_errors.len() as u64);
    for e in &graph.compile_errors {
        w.str(e);
    }
    w.uint(graph.nodes.len() as u64);
    for n in &graph.nodes {
        node(&mut w, n);
    }
}

fn node(w: &mut Writer<'_>, n: &SchemaNode) {
    w.byte(match n.ty {
        None => 0,
        Some(Ty::Object) => 1,
        Some(Ty::Array) => 2,
        Some(Ty::String) => 3,
        Some(Ty::Integer) => 4,
        Some(Ty::Number) => 5,
        Some(Ty::Boolean) => 6,
    });
    w.byte(match n.format {
        Format::None => 0,
        Format::DateTime => 1,
        Format::Duration => 2,
        Format::Byte => 3,
        Format::Uri => 4,
        Format::Ipv4 => 5,
        Format::Ipv6 => 6,
    });
    let flags = [
        n.nullable,
        n.int_or_string,
        n.preserve_unknown,
        n.embedded,
        n.exclusive_minimum,
        n.exclusive_maximum,
        n.unique_items,
        n.rules_below,
    ];
    w.byte(flags.iter().rev().fold(0, |acc, &f| acc << 1 | u8::from(f)));
    json_list(w, &n.enumeration);
    opt_str(w, n.pattern.as_ref().map(|p| p.text.as_str()));
    for v in [
        n.min_length,
        n.max_length,
        n.min_items,
        n.max_items,
        n.min_properties,
        n.max_properties,
    ] {
        match v {
            Some(v) => {
                w.byte(1);
                w.uint(v);
            }
            None => w.byte(0),
        }
    }
    for v in [n.minimum, n.maximum, n.multiple_of] {
        match v {
            Some(v) => {
                w.byte(1);
                w.0.extend_from_slice(&v.to_bits().to_le_bytes());
            }
            None => w.byte(0),
        }
    }
    strs(w, &n.required);
    w.uint(n.properties.len() as u64);
    for (name, &id) in &n.properties {
        w.str(name);
        w.uint(id as u64);
    }
    match n.additional {
        Additional::Absent => w.byte(0),
        Additional::Bool(false) => w.byte(1),
        Additional::Bool(true) => w.byte(2),
        Additional::Schema(id) => {
            w.byte(3);
            w.uint(id as u64);
        }
    }
    opt_id(w, n.items);
    for list in [&n.all_of, &n.any_of, &n.one_of] {
        w.uint(list.len() as u64);
        for &id in list {
            w.uint(id as u64);
        }
    }
    opt_id(w, n.not);
    match &n.default {
        Some(v) => {
            w.byte(1);
            w.str(&v.to_string());
        }
        None => w.byte(0),
    }
    w.byte(match n.list_type {
        ListType::Atomic => 0,
        ListType::Set => 1,
        ListType::Map => 2,
    });
    strs(w, &n.list_map_keys);
    w.uint(n.rules.len() as u64);
    for r in &n.rules {
        w.str(&r.rule);
        opt_str(w, r.message.as_deref());
        opt_str(w, r.message_expression_text());
        opt_str(w, r.reason.as_deref());
        opt_str(w, r.field_path.as_deref());
        w.byte(u8::from(r.optional_old_self));
    }
}

fn opt_str(w: &mut Writer<'_>, s: Option<&str>) {
    match s {
        Some(s) => {
            w.byte(1);
            w.str(s);
        }
        None => w.byte(0),
    }
}

fn opt_id(w: &mut Writer<'_>, id: Option<NodeId>) {
    match id {
        Some(id) => {
            w.byte(1);
            w.uint(id as u64);
        }
        None => w.byte(0),
    }
}

fn strs(w: &mut Writer<'_>, list: &[String]) {
    w.uint(list.len() as u64);
    for s in list {
        w.str(s);
    }
}

fn json_list(w: &mut Writer<'_>, list: &[Value]) {
    w.uint(list.len() as u64);
    for v in list {
        w.str(&v.to_string());
    }
}

/// Reads a graph written by [`encode`]; its rules read their programs from `parsed`. `None` if
/// the bytes are not one (a node id out of range included).
pub(crate) fn decode(bytes: &[u8], parsed: Option<Arc<celcode::Table>>) -> Option<(Graph, NodeId)> {
    let mut r = Reader::new(bytes);
    let root = id(&mut r)?;
    let rule_count = usize::try_from(r.uint()?).ok()?;
    let n = r.len()?;
    let mut compile_errors = Vec::with_capacity(n.min(PREALLOCATE));
    for _ in 0..n {
        compile_errors.push(r.string()?);
    }
    let count = r.len()?;
    let mut nodes = Vec::with_capacity(count.min(PREALLOCATE));
    for _ in 0..count {
        nodes.push(read_node(&mut r, &parsed)?);
    }
    let in_range = |id: NodeId| id < count;
    let ids_ok = root < count
        && nodes.iter().all(|n| {
            n.properties.values().all(|&i| in_range(i))
                && n.items.is_none_or(in_range)
                && n.not.is_none_or(in_range)
                && !matches!(n.additional, Additional::Schema(i) if !in_range(i))
                && n.all_of
                    .iter()
                    .chain(&n.any_of)
                    .chain(&n.one_of)
                    .all(|&i| in_range(i))
        });
    (ids_ok && r.at_end()).then_some((
        Graph {
            nodes,
            rule_count,
            compile_errors,
        },
        root,
    ))
}

fn id(r: &mut Reader<'_>) -> Option<NodeId> {
    usize::try_from(r.uint()?).ok()
}

fn read_node(r: &mut Reader<'_>, parsed: &Option<Arc<celcode::Table>>) -> Option<SchemaNode> {
    let mut n = SchemaNode::empty();
    n.ty = match r.byte()? {
        0 => None,
        1 => Some(Ty::Object),
        2 => Some(Ty::Array),
        3 => Some(Ty::String),
        4 => Some(Ty::Integer),
        5 => Some(Ty::Number),
        6 => Some(Ty::Boolean),
        _ => return None,
    };
    n.format = match r.byte()? {
        0 => Format::None,
        1 => Format::DateTime,
        2 => Format::Duration,
        3 => Format::Byte,
        4 => Format::Uri,
        5 => Format::Ipv4,
        6 => Format::Ipv6,
        _ => return None,
    };
    let flags = r.byte()?;
    let bit = |i: u8| flags >> i & 1 == 1;
    n.nullable = bit(0);
    n.int_or_string = bit(1);
    n.preserve_unknown = bit(2);
    n.embedded = bit(3);
    n.exclusive_minimum = bit(4);
    n.exclusive_maximum = bit(5);
    n.unique_items = bit(6);
    n.rules_below = bit(7);
    n.enumeration = read_json_list(r)?;
    n.pattern = read_opt_str(r)?.map(Pattern::new);
    let mut uints = [None; 6];
    for slot in &mut uints {
        *slot = if r.flag()? { Some(r.uint()?) } else { None };
    }
    [
        n.min_length,
        n.max_length,
        n.min_items,
        n.max_items,
        n.min_properties,
        n.max_properties,
    ] = uints;
    let mut floats = [None; 3];
    for slot in &mut floats {
        *slot = if r.flag()? {
            Some(f64::from_bits(u64::from_le_bytes(r.fixed8()?)))
        } else {
            None
        };
    }
    [n.minimum, n.maximum, n.multiple_of] = floats;
    n.required = read_strs(r)?;
    let props = r.len()?;
    let mut properties = BTreeMap::new();
    for _ in 0..props {
        let name = r.string()?;
        properties.insert(name, id(r)?);
    }
    n.properties = properties;
    n.additional = match r.byte()? {
        0 => Additional::Absent,
        1 => Additional::Bool(false),
        2 => Additional::Bool(true),
        3 => Additional::Schema(id(r)?),
        _ => return None,
    };
    n.items = read_opt_id(r)?;
    for list in [&mut n.all_of, &mut n.any_of, &mut n.one_of] {
        let len = r.len()?;
        for _ in 0..len {
            list.push(id(r)?);
        }
    }
    n.not = read_opt_id(r)?;
    n.default = match r.flag()? {
        true => Some(serde_json::from_str(&r.string()?).ok()?),
        false => None,
    };
    n.list_type = match r.byte()? {
        0 => ListType::Atomic,
        1 => ListType::Set,
        2 => ListType::Map,
        _ => return None,
    };
    n.list_map_keys = read_strs(r)?;
    let rules = r.len()?;
    for _ in 0..rules {
        let rule = r.string()?;
        let message = read_opt_str(r)?;
        let message_expression = read_opt_str(r)?;
        let reason = read_opt_str(r)?;
        let field_path = read_opt_str(r)?;
        let optional_old_self = r.flag()?;
        n.rules.push(Rule::new(
            rule,
            message,
            message_expression,
            reason,
            field_path,
            optional_old_self,
            parsed.clone(),
        ));
    }
    Some(n)
}

/// `Some(None)` for an absent string, `None` for bytes that are not an optional string.
fn read_opt_str(r: &mut Reader<'_>) -> Option<Option<String>> {
    Some(if r.flag()? { Some(r.string()?) } else { None })
}

fn read_opt_id(r: &mut Reader<'_>) -> Option<Option<NodeId>> {
    Some(if r.flag()? { Some(id(r)?) } else { None })
}

fn read_strs(r: &mut Reader<'_>) -> Option<Vec<String>> {
    let n = r.len()?;
    let mut out = Vec::with_capacity(n.min(PREALLOCATE));
    for _ in 0..n {
        out.push(r.string()?);
    }
    Some(out)
}

fn read_json_list(r: &mut Reader<'_>) -> Option<Vec<Value>> {
    let n = r.len()?;
    let mut out = Vec::with_capacity(n.min(PREALLOCATE));
    for _ in 0..n {
        out.push(serde_json::from_str(&r.string()?).ok()?);
    }
    Some(out)
}
