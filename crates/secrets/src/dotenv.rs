//! Reading sops' dotenv store: `KEY=VALUE` lines, metadata flattened into `sops_…` keys
//! (`sops_age__list_0__map_enc`), newlines in values escaped as `\n`.

use crate::error::Error;
use crate::yaml::{MapItem, Node};

fn set_path(root: &mut Node, segments: &[&str], value: Node) {
    let Some((first, rest)) = segments.split_first() else {
        *root = value;
        return;
    };
    if let Some(index) = first
        .strip_prefix("list_")
        .and_then(|n| n.parse::<usize>().ok())
    {
        if !matches!(root, Node::Seq(_)) {
            *root = Node::Seq(Vec::new());
        }
        if let Node::Seq(items) = root {
            while items.len() <= index {
                items.push(Node::Null);
            }
            set_path(&mut items[index], rest, value);
        }
        return;
    }
    let key = first.strip_prefix("map_").unwrap_or(first);
    if !matches!(root, Node::Map(_)) {
        *root = Node::Map(Vec::new());
    }
    if let Node::Map(items) = root {
        let pos = items
            .iter()
            .position(|i| matches!(i, MapItem::Pair(k, _) if k == key));
        let index = pos.unwrap_or_else(|| {
            items.push(MapItem::Pair(key.to_owned(), Node::Null));
            items.len() - 1
        });
        if let MapItem::Pair(_, child) = &mut items[index] {
            set_path(child, rest, value);
        }
    }
}

/// Builds the sops tree of a dotenv file: plain entries at the top level, `sops_…` keys
/// unflattened under `sops`.
pub(crate) fn to_tree(text: &str) -> Result<Node, Error> {
    let mut items = Vec::new();
    let mut meta = Node::Map(Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            items.push(MapItem::Comment(comment.to_owned()));
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| Error::yaml(n + 1, 1, "expected KEY=VALUE"))?;
        if let Some(meta_key) = key.strip_prefix("sops_") {
            let value = value.replace("\\n", "\n");
            let node = match value.as_str() {
                "true" => Node::Bool(true),
                "false" => Node::Bool(false),
                _ => Node::Str(value),
            };
            let segments: Vec<&str> = meta_key.split("__").collect();
            set_path(&mut meta, &segments, node);
        } else {
            items.push(MapItem::Pair(key.to_owned(), Node::Str(value.to_owned())));
        }
    }
    items.push(MapItem::Pair("sops".into(), meta));
    Ok(Node::Map(items))
}
