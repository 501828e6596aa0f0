//! Builds [`Node`] trees from granit-parser events: aliases expanded, duplicate keys rejected,
//! comments kept in the collection where the next item (or the end) of that collection is.

use std::collections::{HashMap, HashSet};

use granit_parser::{Event, Parser, ScalarStyle, Span};
use schema::yaml::Limits;

use super::resolve::{Resolved, resolve_plain};
use super::{MapItem, Node};
use crate::error::Error;

/// The budget of one parse: the workspace's budget for generated manifests (nodes, depth, and
/// bytes of text with every alias charged by what it expands to), with the input capped at the
/// size of the largest sops file this crate reads ([`crate::MAX_FILE_BYTES`]).
pub(crate) const LIMITS: Limits = Limits {
    max_bytes: crate::MAX_FILE_BYTES as usize,
    ..Limits::MANIFESTS
};

enum Frame {
    Map {
        items: Vec<MapItem>,
        /// The keys so far, so that a duplicate is found without scanning `items` (a scan per
        /// key made a mapping with n keys cost n² comparisons).
        keys: HashSet<String>,
        key: Option<String>,
        col: Option<usize>,
        anchor: usize,
        cost: Cost,
    },
    Seq {
        items: Vec<Node>,
        col: usize,
        anchor: usize,
        cost: Cost,
    },
}

/// Nodes and bytes of scalar text created so far, aliases counted by what they copy.
#[derive(Clone, Copy, Default)]
struct Cost {
    nodes: usize,
    bytes: usize,
}

struct PendingComment {
    text: String,
    col: usize,
}

struct Builder {
    stack: Vec<Frame>,
    pending: Vec<PendingComment>,
    /// anchor id -> (node, what copying it costs)
    anchors: HashMap<usize, (Node, Cost)>,
    docs: Vec<Node>,
    limits: Limits,
    spent: Cost,
}

fn err_at(span: &Span, message: impl Into<String>) -> Error {
    Error::yaml(span.start.line(), span.start.col() + 1, message)
}

impl Builder {
    /// Accounts for `n` more nodes holding `bytes` of text, before they are created; an error
    /// once over either budget (a 500 KB string aliased 100,000 times would be 50 GB).
    fn charge(&mut self, n: usize, bytes: usize, span: &Span) -> Result<(), Error> {
        self.spent.nodes = self.spent.nodes.saturating_add(n);
        self.spent.bytes = self.spent.bytes.saturating_add(bytes);
        let what = if self.spent.bytes > self.limits.max_expanded_bytes {
            format!("{} bytes of text", self.limits.max_expanded_bytes)
        } else if self.spent.nodes > self.limits.max_nodes {
            format!("{} nodes", self.limits.max_nodes)
        } else {
            return Ok(());
        };
        Err(err_at(span, format!("the YAML expands to more than {what} (aliases counted by what they copy)"))
            .with_help("no real secret is that large; an alias repeated many times (`*name`) multiplies the size of what it refers to"))
    }

    /// Starts a collection, refusing nesting deeper than the budget allows.
    fn push(&mut self, frame: Frame, span: &Span) -> Result<(), Error> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(err_at(
                span,
                format!(
                    "the YAML is nested more than {} levels deep",
                    self.limits.max_depth
                ),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Moves pending comments into the innermost collection, before its next item.
    fn flush_into_top(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        match self.stack.last_mut() {
            Some(Frame::Map { items, .. }) => {
                items.extend(pending.into_iter().map(|c| MapItem::Comment(c.text)))
            }
            Some(Frame::Seq { items, .. }) => {
                items.extend(pending.into_iter().map(|c| Node::Comment(c.text)))
            }
            // Comments outside any collection (e.g. before the root) are dropped, as yaml.v3's
            // document-level comments are not part of sops' tree either.
            None => {}
        }
    }

    /// Before a collection closes, takes the pending comments indented at least as deep as its
    /// items; shallower ones belong to an enclosing collection.
    fn flush_at_end(&mut self, col: usize) -> Vec<PendingComment> {
        let (inner, outer): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|c| c.col >= col);
        self.pending = outer;
        inner
    }

    /// Called when a node event starts in the innermost collection.
    fn before_item(&mut self, span: &Span) {
        let at_item = match self.stack.last_mut() {
            Some(Frame::Map { key, col, .. }) => {
                if key.is_none() && col.is_none() {
                    *col = Some(span.start.col());
                }
                key.is_none()
            }
            Some(Frame::Seq { .. }) => true,
            None => false,
        };
        if at_item {
            self.flush_into_top();
        }
    }

    fn complete(&mut self, node: Node, span: &Span) -> Result<(), Error> {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                items, keys, key, ..
            }) => match key.take() {
                None => {
                    let Node::Str(k) = node else {
                        return Err(err_at(
                            span,
                            format!(
                                "mapping key is a {}, sops needs string keys",
                                node.type_name()
                            ),
                        )
                        .with_help("quote the key"));
                    };
                    if !keys.insert(k.clone()) {
                        return Err(err_at(span, format!("duplicate key `{k}`")));
                    }
                    *key = Some(k);
                }
                Some(k) => items.push(MapItem::Pair(k, node)),
            },
        }
        Ok(())
    }
}

fn scalar_node(
    value: &str,
    style: ScalarStyle,
    tag: Option<&granit_parser::Tag>,
    span: &Span,
) -> Result<Node, Error> {
    let empty_plain = span.start.index() == span.end.index();
    if let Some(tag) = tag {
        return match tag.core_suffix() {
            Some("str") => Ok(Node::Str(value.to_owned())),
            Some("null") => Ok(Node::Null),
            Some("bool" | "int" | "float") => match resolve_plain(value) {
                Resolved::Bool(b) if tag.is_yaml_core_schema_tag("bool") => Ok(Node::Bool(b)),
                Resolved::Int(i) if tag.is_yaml_core_schema_tag("int") => Ok(Node::Int(i)),
                Resolved::Int(i) if tag.is_yaml_core_schema_tag("float") => Ok(Node::Float(i as f64)),
                Resolved::Float(f) if tag.is_yaml_core_schema_tag("float") => Ok(Node::Float(f)),
                _ => Err(err_at(span, format!("cannot read `{value}` as {}", tag.original()))),
            },
            _ => Err(err_at(span, format!("unsupported YAML tag `{}`", tag.original()))
                .with_help("sops' YAML store supports plain values and the core tags `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`")),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Node::Str(value.to_owned()));
    }
    if empty_plain {
        return Ok(Node::Null);
    }
    Ok(match resolve_plain(value) {
        Resolved::Null => Node::Null,
        Resolved::Bool(b) => Node::Bool(b),
        Resolved::Int(i) => Node::Int(i),
        Resolved::Float(f) => Node::Float(f),
        Resolved::Time(t) => Node::Time(t),
        Resolved::Str => Node::Str(value.to_owned()),
        Resolved::BigUint => {
            return Err(err_at(
                span,
                format!("integer `{value}` does not fit in 64 bits, sops cannot store it"),
            )
            .with_help("quote it to store it as a string"));
        }
    })
}

/// Parses every document of `text`. Documents without content are skipped; roots are returned
/// as they are (callers check that they are mappings).
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Node>, Error> {
    parse_documents_with(text, LIMITS)
}

/// [`parse_documents`] with explicit limits (tests use small ones).
pub(crate) fn parse_documents_with(text: &str, limits: Limits) -> Result<Vec<Node>, Error> {
    if text.len() > limits.max_bytes {
        return Err(Error::new(
            crate::error::ErrorKind::Yaml,
            format!(
                "the YAML is {} bytes, more than the {} bytes allowed",
                text.len(),
                limits.max_bytes
            ),
        )
        .with_help("no real secret is that large; check that the right file was given"));
    }
    let mut b = Builder {
        stack: Vec::new(),
        pending: Vec::new(),
        anchors: HashMap::new(),
        docs: Vec::new(),
        limits,
        spent: Cost::default(),
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            Error::yaml(m.line(), m.col() + 1, e.info())
        })?;
        match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(..) => {}
            // Only produced with options this parser does not enable.
            Event::Anchor(..) => {}
            Event::UnresolvedAlias(_) => return Err(err_at(&span, "alias to an undefined anchor")),
            Event::DocumentEnd => {
                b.pending.clear();
                b.anchors.clear();
            }
            Event::Comment(text, _) => b.pending.push(PendingComment {
                text: text.into_owned(),
                col: span.start.col(),
            }),
            Event::Alias(id) => {
                b.before_item(&span);
                let cost = b
                    .anchors
                    .get(&id)
                    .map(|(_, cost)| *cost)
                    .ok_or_else(|| err_at(&span, "alias to an unknown anchor"))?;
                // Charged before copying: the copy is what the budget protects against.
                b.charge(cost.nodes, cost.bytes, &span)?;
                let node = b.anchors[&id].0.clone();
                b.complete(node, &span)?;
            }
            Event::Scalar(value, style, anchor, tag) => {
                b.before_item(&span);
                b.charge(1, value.len(), &span)?;
                let node = scalar_node(&value, style, tag.as_deref(), &span)?;
                if anchor != 0 {
                    let cost = Cost {
                        nodes: 1,
                        bytes: value.len(),
                    };
                    b.anchors.insert(anchor, (node.clone(), cost));
                }
                b.complete(node, &span)?;
            }
            Event::MappingStart(_, anchor, _) => {
                b.before_item(&span);
                b.charge(1, 0, &span)?;
                let frame = Frame::Map {
                    items: Vec::new(),
                    keys: HashSet::new(),
                    key: None,
                    col: None,
                    anchor,
                    cost: b.spent,
                };
                b.push(frame, &span)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                b.before_item(&span);
                b.charge(1, 0, &span)?;
                let frame = Frame::Seq {
                    items: Vec::new(),
                    col: span.start.col(),
                    anchor,
                    cost: b.spent,
                };
                b.push(frame, &span)?;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let col = match b.stack.last() {
                    Some(Frame::Map { col, .. }) => col.unwrap_or(0),
                    Some(Frame::Seq { col, .. }) => *col,
                    None => return Err(err_at(&span, "unbalanced collection end")),
                };
                let inner = b.flush_at_end(col);
                let (node, anchor, start) = match b.stack.pop() {
                    Some(Frame::Map {
                        mut items,
                        anchor,
                        cost,
                        ..
                    }) => {
                        items.extend(inner.into_iter().map(|c| MapItem::Comment(c.text)));
                        (Node::Map(items), anchor, cost)
                    }
                    Some(Frame::Seq {
                        mut items,
                        anchor,
                        cost,
                        ..
                    }) => {
                        items.extend(inner.into_iter().map(|c| Node::Comment(c.text)));
                        (Node::Seq(items), anchor, cost)
                    }
                    None => return Err(err_at(&span, "unbalanced collection end")),
                };
                if anchor != 0 {
                    // The collection itself (charged at its start) and everything created in it.
                    let cost = Cost {
                        nodes: b.spent.nodes - start.nodes + 1,
                        bytes: b.spent.bytes - start.bytes,
                    };
                    b.anchors.insert(anchor, (node.clone(), cost));
                }
                b.complete(node, &span)?;
            }
            // `Event` is non-exhaustive; later additions are presentation details.
            _ => {}
        }
    }
    Ok(b.docs.into_iter().filter(|d| *d != Node::Null).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_land_in_their_collections() {
        let text = "# top\na: 1 # right a\ndata:\n  # inside\n  k: v\n  l:\n    - x\n    # in list\n    - y\n# before b\nb: &x\n  c: \"q\"\nd: *x\nf:\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 1);
        let Node::Map(items) = &docs[0] else { panic!() };
        let shape: Vec<String> = items
            .iter()
            .map(|i| match i {
                MapItem::Pair(k, _) => k.clone(),
                MapItem::Comment(c) => format!("#{c}"),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "# top",
                "a",
                "# right a",
                "data",
                "# before b",
                "b",
                "d",
                "f"
            ]
        );
        let data = docs[0].get("data").unwrap();
        assert!(
            matches!(data, Node::Map(i) if matches!(&i[0], MapItem::Comment(c) if c == " inside"))
        );
        assert_eq!(
            data.get("l"),
            Some(&Node::Seq(vec![
                Node::Str("x".into()),
                Node::Comment(" in list".into()),
                Node::Str("y".into())
            ]))
        );
        assert_eq!(docs[0].get("d"), docs[0].get("b"));
        assert_eq!(docs[0].get("f"), Some(&Node::Null));
    }

    #[test]
    fn rejects_duplicates_and_non_string_keys() {
        assert!(
            parse_documents("a: 1\na: 2\n")
                .unwrap_err()
                .to_string()
                .contains("duplicate key `a`")
        );
        assert!(
            parse_documents("1: x\n")
                .unwrap_err()
                .to_string()
                .contains("string keys")
        );
        let err = parse_documents("a: [\n").unwrap_err();
        assert!(
            err.to_string().starts_with("2:") || err.to_string().starts_with("1:"),
            "{err}"
        );
    }

    #[test]
    fn types_and_multi_documents() {
        let docs = parse_documents("a: '1'\nb: 1\nc: !!str 2\nd: \"\"\n---\ne: ~\n---\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].get("a"), Some(&Node::Str("1".into())));
        assert_eq!(docs[0].get("b"), Some(&Node::Int(1)));
        assert_eq!(docs[0].get("c"), Some(&Node::Str("2".into())));
        assert_eq!(docs[0].get("d"), Some(&Node::Str(String::new())));
        assert_eq!(docs[1].get("e"), Some(&Node::Null));
    }

    /// The bomb at a smaller scale: a string anchored once and aliased many times is
    /// charged by what the aliases copy, so it is refused before the copies exist.
    #[test]
    fn string_alias_bomb_is_refused_by_the_expanded_bytes_budget() {
        let big = "x".repeat(500_000);
        let mut text = format!("a: &s {big}\nl:\n");
        for _ in 0..250 {
            text.push_str("  - *s\n");
        }
        // 250 copies of 500 KB = 125 MB, more than the manifests budget.
        assert!(text.len() < 1 << 20);
        const { assert!(250 * 500_000 > LIMITS.max_expanded_bytes) };
        // Not `unwrap_err`: on failure its message would print the whole tree.
        let Err(err) = parse_documents(&text) else {
            panic!("the alias bomb was expanded")
        };
        assert!(
            err.to_string().contains(&format!(
                "expands to more than {} bytes of text",
                LIMITS.max_expanded_bytes
            )),
            "{err}"
        );
        // Collections are charged by their contents too.
        let small = Limits {
            max_expanded_bytes: 100,
            ..LIMITS
        };
        let nested = "a: &m {k: [xxxxxxxxxx, yyyyyyyyyy]}\nb: [*m, *m, *m, *m, *m]\n";
        let err = parse_documents_with(nested, small).unwrap_err();
        assert!(err.to_string().starts_with("2:"), "{err}");
        let nodes = Limits {
            max_nodes: 10,
            ..LIMITS
        };
        let err = parse_documents_with(nested, nodes).unwrap_err();
        assert!(err.to_string().contains("more than 10 nodes"), "{err}");
    }

    #[test]
    fn input_size_and_depth_are_capped() {
        let tiny = Limits {
            max_bytes: 10,
            ..LIMITS
        };
        let err = parse_documents_with("a: 0123456789\n", tiny).unwrap_err();
        assert!(
            err.to_string().contains("more than the 10 bytes allowed"),
            "{err}"
        );
        let shallow = Limits {
            max_depth: 100,
            ..LIMITS
        };
        let deep = format!("{}1{}", "[".repeat(150), "]".repeat(150));
        let err = parse_documents_with(&deep, shallow).unwrap_err();
        assert!(err.to_string().contains("more than 100 levels"), "{err}");
        assert_eq!(LIMITS.max_bytes, 8 << 20);
    }

    /// A mapping with many keys parses in linear time (the duplicate check was a scan of the
    /// keys so far: 200,000 keys took minutes).
    #[test]
    fn many_keys_parse_in_linear_time() {
        let mut text = String::new();
        for i in 0..200_000 {
            text.push_str(&format!("k{i}: v\n"));
        }
        let started = std::time::Instant::now();
        let docs = parse_documents(&text).unwrap();
        assert!(matches!(&docs[0], Node::Map(items) if items.len() == 200_000));
        // Generous for a debug build on a busy machine; the quadratic version takes minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        text.push_str("k7: again\n");
        assert!(
            parse_documents(&text)
                .unwrap_err()
                .to_string()
                .contains("duplicate key `k7`")
        );
    }
}
