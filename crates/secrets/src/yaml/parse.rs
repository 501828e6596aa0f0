//! Builds [`Node`] trees from granit-parser events: aliases expanded, duplicate keys rejected,
//! comments kept in the collection where the next item (or the end) of that collection is.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle, Span};

use super::resolve::{Resolved, resolve_plain};
use super::{MapItem, Node};
use crate::error::Error;

enum Frame {
    Map {
        items: Vec<MapItem>,
        key: Option<String>,
        col: Option<usize>,
        anchor: usize,
    },
    Seq {
        items: Vec<Node>,
        col: usize,
        anchor: usize,
    },
}

struct PendingComment {
    text: String,
    col: usize,
}

struct Builder {
    stack: Vec<Frame>,
    pending: Vec<PendingComment>,
    anchors: HashMap<usize, Node>,
    docs: Vec<Node>,
}

fn err_at(span: &Span, message: impl Into<String>) -> Error {
    Error::yaml(span.start.line(), span.start.col() + 1, message)
}

impl Builder {
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
            Some(Frame::Map { items, key, .. }) => match key.take() {
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
                    if items
                        .iter()
                        .any(|i| matches!(i, MapItem::Pair(existing, _) if *existing == k))
                    {
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
    let mut b = Builder {
        stack: Vec::new(),
        pending: Vec::new(),
        anchors: HashMap::new(),
        docs: Vec::new(),
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
                let node = b
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| err_at(&span, "alias to an unknown anchor"))?;
                b.complete(node, &span)?;
            }
            Event::Scalar(value, style, anchor, tag) => {
                b.before_item(&span);
                let node = scalar_node(&value, style, tag.as_deref(), &span)?;
                if anchor != 0 {
                    b.anchors.insert(anchor, node.clone());
                }
                b.complete(node, &span)?;
            }
            Event::MappingStart(_, anchor, _) => {
                b.before_item(&span);
                b.stack.push(Frame::Map {
                    items: Vec::new(),
                    key: None,
                    col: None,
                    anchor,
                });
            }
            Event::SequenceStart(_, anchor, _) => {
                b.before_item(&span);
                b.stack.push(Frame::Seq {
                    items: Vec::new(),
                    col: span.start.col(),
                    anchor,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let col = match b.stack.last() {
                    Some(Frame::Map { col, .. }) => col.unwrap_or(0),
                    Some(Frame::Seq { col, .. }) => *col,
                    None => return Err(err_at(&span, "unbalanced collection end")),
                };
                let inner = b.flush_at_end(col);
                let (node, anchor) = match b.stack.pop() {
                    Some(Frame::Map {
                        mut items, anchor, ..
                    }) => {
                        items.extend(inner.into_iter().map(|c| MapItem::Comment(c.text)));
                        (Node::Map(items), anchor)
                    }
                    Some(Frame::Seq {
                        mut items, anchor, ..
                    }) => {
                        items.extend(inner.into_iter().map(|c| Node::Comment(c.text)));
                        (Node::Seq(items), anchor)
                    }
                    None => return Err(err_at(&span, "unbalanced collection end")),
                };
                if anchor != 0 {
                    b.anchors.insert(anchor, node.clone());
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
}
