//! YAML as sops' YAML store sees it: a tree of mappings, sequences, typed scalars and comments,
//! read with granit-parser plus the yaml.v3 resolver, and written in yaml.v3's style.

mod emit;
mod parse;
mod resolve;

pub(crate) use emit::{emit_documents, format_float};
pub(crate) use parse::parse_documents;

/// One YAML node as the sops tree knows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A timestamp, held as Go's RFC3339Nano text.
    Time(String),
    Map(Vec<MapItem>),
    /// Items; `Node::Comment` appears only here.
    Seq(Vec<Node>),
    /// A comment's text after `#` (only as a sequence item).
    Comment(String),
}

/// One item of a mapping: a key and its value, or a comment line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MapItem {
    Pair(String, Node),
    Comment(String),
}

impl Node {
    /// The value for `key` in a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(items) => items.iter().find_map(|item| match item {
                MapItem::Pair(k, v) if k == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// A short name of the node's type for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "boolean",
            Node::Int(_) => "integer",
            Node::Float(_) => "float",
            Node::Str(_) => "string",
            Node::Time(_) => "timestamp",
            Node::Map(_) => "mapping",
            Node::Seq(_) => "sequence",
            Node::Comment(_) => "comment",
        }
    }
}
