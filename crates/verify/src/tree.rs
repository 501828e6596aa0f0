//! The rendered tree on disk: every YAML document with its file and line, loaded once.
//!
//! Nothing is decrypted. `*.sops.*` files are only checked to be encrypted: each document must
//! carry sops metadata with a MAC and a version, and every value the file's own selection rule
//! (`encrypted_regex`, `unencrypted_suffix`, …) says is encrypted must be an `ENC[…]` string.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use regex::Regex;
use schema::Diagnostic;
use schema::yaml::{self, Limits, Node, Value as YValue};

/// One loaded file.
pub(crate) struct SourceFile {
    pub(crate) docs: Vec<Node>,
}

/// All YAML files under the scanned directories, keyed by path relative to the root.
pub(crate) struct Tree {
    pub(crate) root: PathBuf,
    pub(crate) files: BTreeMap<PathBuf, SourceFile>,
    pub(crate) diagnostics: Vec<Diagnostic>,
    /// Every `*.sops.*` file that was checked.
    pub(crate) sops_files: usize,
}

impl Tree {
    /// Loads every `*.yaml`/`*.yml` below `root/<dir>` for each of `dirs` (hidden entries are
    /// skipped) and checks every `*.sops.*` file there.
    pub(crate) fn load(root: &Path, dirs: &[PathBuf]) -> Tree {
        let mut tree = Tree {
            root: root.to_path_buf(),
            files: BTreeMap::new(),
            diagnostics: Vec::new(),
            sops_files: 0,
        };
        let mut paths = Vec::new();
        for dir in dirs {
            let abs = root.join(dir);
            if abs.is_dir() {
                walk(root, &abs, &mut paths);
            }
        }
        paths.sort();
        let name = |rel: &Path| {
            rel.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let is_yaml = |name: &str| name.ends_with(".yaml") || name.ends_with(".yml");
        // Parsing is most of the work and each file is independent: parse them in parallel,
        // then take the results in path order, as a sequential load would.
        let parsed = crate::par::map(&paths, |rel| {
            is_yaml(&name(rel)).then(|| yaml::load_file(&root.join(rel), rel, Limits::MANIFESTS))
        });
        for (rel, loaded) in paths.into_iter().zip(parsed) {
            let name = name(&rel);
            let is_yaml = is_yaml(&name);
            if let Some(loaded) = loaded {
                tree.insert(&rel, loaded);
            }
            if name.contains(".sops.") {
                tree.sops_files += 1;
                tree.check_sops(&rel, is_yaml || name.ends_with(".json"));
            }
        }
        tree
    }

    /// The file at `rel`, loading it on first use (kustomize may reach outside the scanned
    /// directories). `None` if it does not exist or is not a file.
    pub(crate) fn file(&mut self, rel: &Path) -> Option<&SourceFile> {
        if !self.files.contains_key(rel) {
            if !self.root.join(rel).is_file() {
                return None;
            }
            self.load_file(rel);
        }
        self.files.get(rel)
    }

    pub(crate) fn is_dir(&self, rel: &Path) -> bool {
        self.root.join(rel).is_dir()
    }

    pub(crate) fn exists(&self, rel: &Path) -> bool {
        self.root.join(rel).exists()
    }

    /// Entries of a directory, relative to the root, sorted.
    pub(crate) fn list(&self, rel: &Path) -> Vec<(PathBuf, bool)> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.root.join(rel)) {
            for e in entries.flatten() {
                let name = e.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue;
                }
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                out.push((rel.join(name), is_dir));
            }
        }
        out.sort();
        out
    }

    fn load_file(&mut self, rel: &Path) {
        let loaded = yaml::load_file(&self.root.join(rel), rel, Limits::MANIFESTS);
        self.insert(rel, loaded);
    }

    fn insert(&mut self, rel: &Path, loaded: yaml::Loaded) {
        self.diagnostics.extend(loaded.diagnostics);
        self.files.insert(
            rel.to_path_buf(),
            SourceFile {
                docs: loaded.documents,
            },
        );
    }

    fn check_sops(&mut self, rel: &Path, structured: bool) {
        let plaintext = |msg: String| {
            Diagnostic::error("verify::sops_plaintext", "", msg)
                .at(Some(schema::Location::new(rel, 1, 1, 1)))
                .with_help(
                    "`*.sops.*` files are committed encrypted: run `cargo xtask configure`, which encrypts every secret it renders; never commit a plaintext secret",
                )
        };
        if !structured {
            let text = std::fs::read_to_string(self.root.join(rel)).unwrap_or_default();
            let encrypted = text.contains("sops_mac=ENC[AES256_GCM,")
                || (text.contains("[sops]")
                    && text.contains("mac")
                    && text.contains("ENC[AES256_GCM,"));
            if !encrypted {
                self.diagnostics.push(plaintext(format!(
                    "{} is named like a sops file but carries no sops MAC",
                    rel.display()
                )));
            }
            return;
        }
        let Some(file) = self.file(rel) else { return };
        let mut found = Vec::new();
        let docs: Vec<&Node> = file.docs.iter().filter(|d| !d.is_null()).collect();
        if docs.is_empty() {
            found.push(plaintext(format!(
                "{} is empty, not a sops file",
                rel.display()
            )));
        }
        // The documents of one file share their selection rule: compile its regex once.
        let mut regexes = Regexes::new();
        for doc in docs {
            let by_rule = check_sops_doc_with(rel, doc, &mut regexes);
            let exposed = crate::sops::check_exposed(rel, doc, &by_rule);
            found.extend(by_rule.into_iter().chain(exposed));
        }
        self.diagnostics.extend(found);
    }
}

/// Compiled selection-rule regexes by pattern (`None`: the pattern does not compile).
type Regexes = HashMap<String, Option<Regex>>;

/// Problems that make one document of a `*.sops.*` file not (fully) encrypted.
#[cfg(test)]
fn check_sops_doc(rel: &Path, doc: &Node) -> Vec<Diagnostic> {
    check_sops_doc_with(rel, doc, &mut Regexes::new())
}

fn check_sops_doc_with(rel: &Path, doc: &Node, regexes: &mut Regexes) -> Vec<Diagnostic> {
    let at = |n: &Node| Some(n.location(rel));
    let help = "`*.sops.*` files are committed encrypted: run `cargo xtask configure`, which encrypts every secret it renders; never commit a plaintext secret";
    let err = |path: &str, msg: String, n: &Node| {
        Diagnostic::error("verify::sops_plaintext", path, msg)
            .at(at(n))
            .with_help(help)
    };
    let Some(meta) = doc.get("sops") else {
        return vec![err(
            "",
            "document is not encrypted: it has no `sops` metadata".to_owned(),
            doc,
        )];
    };
    let mut out = Vec::new();
    let mac = meta.get("mac").and_then(Node::as_str).unwrap_or_default();
    if !mac.starts_with("ENC[AES256_GCM,") {
        out.push(err(
            "sops.mac",
            "sops metadata has no encrypted MAC; the file was never encrypted or was edited by hand".to_owned(),
            meta,
        ));
    }
    if meta
        .get("version")
        .and_then(Node::as_str)
        .is_none_or(str::is_empty)
    {
        out.push(err(
            "sops.version",
            "sops metadata has no `version`; the sops CLI refuses such files".to_owned(),
            meta,
        ));
    }
    let rule = SelectionRule::from_metadata(meta, regexes);
    let mut leaves = Vec::new();
    if let Some(map) = doc.as_map() {
        for (k, v) in map {
            if k.as_str() == Some("sops") {
                continue;
            }
            collect_leaves(v, vec![k.scalar_text()], &mut leaves);
        }
    }
    for (keys, node) in leaves {
        if !rule.encrypts(&keys) {
            continue;
        }
        let plain = match &node.value {
            YValue::Str(s) => !s.is_empty() && !s.starts_with("ENC[AES256_GCM,"),
            YValue::Null => false,
            _ => true,
        };
        if plain {
            out.push(err(
                &keys.join("."),
                format!("`{}` is not encrypted", keys.join(".")),
                node,
            ));
        }
    }
    out
}

fn collect_leaves<'a>(n: &'a Node, keys: Vec<String>, out: &mut Vec<(Vec<String>, &'a Node)>) {
    match &n.value {
        YValue::Map(entries) => {
            for (k, v) in entries {
                let mut next = keys.clone();
                next.push(k.scalar_text());
                collect_leaves(v, next, out);
            }
        }
        YValue::Seq(items) => {
            for item in items {
                collect_leaves(item, keys.clone(), out);
            }
        }
        _ => out.push((keys, n)),
    }
}

/// sops' rule for which leaves are encrypted, read from the file's own metadata.
enum SelectionRule {
    EncryptedRegex(Regex),
    UnencryptedRegex(Regex),
    EncryptedSuffix(String),
    UnencryptedSuffix(String),
}

impl SelectionRule {
    fn from_metadata(meta: &Node, regexes: &mut Regexes) -> SelectionRule {
        let text = |k: &str| meta.get(k).and_then(Node::as_str).map(str::to_owned);
        let mut compile = |r: String| {
            regexes
                .entry(r)
                .or_insert_with_key(|r| Regex::new(r).ok())
                .clone()
        };
        if let Some(re) = text("encrypted_regex").and_then(&mut compile) {
            return SelectionRule::EncryptedRegex(re);
        }
        if let Some(re) = text("unencrypted_regex").and_then(&mut compile) {
            return SelectionRule::UnencryptedRegex(re);
        }
        if let Some(s) = text("encrypted_suffix") {
            return SelectionRule::EncryptedSuffix(s);
        }
        SelectionRule::UnencryptedSuffix(
            text("unencrypted_suffix").unwrap_or_else(|| "_unencrypted".to_owned()),
        )
    }

    fn encrypts(&self, keys: &[String]) -> bool {
        match self {
            SelectionRule::EncryptedRegex(re) => keys.iter().any(|k| re.is_match(k)),
            SelectionRule::UnencryptedRegex(re) => !keys.iter().any(|k| re.is_match(k)),
            SelectionRule::EncryptedSuffix(s) => keys.iter().any(|k| k.ends_with(s.as_str())),
            SelectionRule::UnencryptedSuffix(s) => !keys.iter().any(|k| k.ends_with(s.as_str())),
        }
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(root, &path, out),
            Ok(t) if t.is_file() => {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_path_buf());
                }
            }
            _ => {}
        }
    }
}

/// Joins `rel` onto directory `base` (both relative to the root) and normalises `.`/`..`;
/// `None` if the result would leave the root.
pub(crate) fn join_rel(base: &Path, rel: &str) -> Option<PathBuf> {
    let mut out: Vec<String> = Vec::new();
    let start = if rel.starts_with('/') {
        Path::new("")
    } else {
        base
    };
    for c in start.components().chain(Path::new(rel).components()) {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out.iter().collect())
}

/// The node at a field path (`spec.rules[0].backendRefs[1]`, map keys as `[key]`), or the
/// deepest existing ancestor.
pub(crate) fn node_at<'a>(doc: &'a Node, path: &str) -> &'a Node {
    let mut cur = doc;
    for seg in segments(path) {
        let next = match seg {
            Seg::Key(k) => cur.get(k),
            Seg::Index(i) => cur.as_seq().and_then(|s| s.get(i)),
        };
        match next {
            Some(n) => cur = n,
            None => {
                // An unknown field: point at its key if the parent map has it.
                if let Seg::Key(k) = seg
                    && let Some((key, _)) = cur.entry(k)
                {
                    return key;
                }
                break;
            }
        }
    }
    cur
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            let inner = &r[..end];
            out.push(match inner.parse::<usize>() {
                Ok(i) => Seg::Index(i),
                Err(_) => Seg::Key(inner),
            });
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let r = rest.strip_prefix('.').unwrap_or(rest);
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                out.push(Seg::Key(&r[..end]));
            }
            rest = &r[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_relative_paths_inside_the_root() {
        assert_eq!(
            join_rel(
                Path::new("kubernetes/apps/network"),
                "../../components/sops"
            ),
            Some(PathBuf::from("kubernetes/components/sops"))
        );
        assert_eq!(
            join_rel(Path::new("a"), "./b/./c.yaml"),
            Some(PathBuf::from("a/b/c.yaml"))
        );
        assert_eq!(join_rel(Path::new("a"), "../../x"), None);
    }

    #[test]
    fn finds_nodes_by_field_path() {
        let l = yaml::load(
            "spec:\n  rules:\n    - backendRefs:\n        - name: a\n          typo: 1\n",
            Path::new("f.yaml"),
            Limits::MANIFESTS,
        );
        let doc = &l.documents[0];
        assert_eq!(node_at(doc, "spec.rules[0].backendRefs[0]").span.line, 4);
        assert_eq!(
            node_at(doc, "spec.rules[0].backendRefs[0].typo").span.line,
            5
        );
        assert_eq!(node_at(doc, "spec.rules[0].backendRefs[7]").span.line, 4);
    }

    #[test]
    fn sops_documents_must_be_encrypted_per_their_rule() {
        let encrypted = "apiVersion: v1\nkind: Secret\nstringData:\n  apiKey: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\nsops:\n  mac: ENC[AES256_GCM,data:m,iv:i,tag:t,type:str]\n  encrypted_regex: ^(data|stringData)$\n  version: 3.10.2\n";
        let l = yaml::load(encrypted, Path::new("s.sops.yaml"), Limits::MANIFESTS);
        assert!(check_sops_doc(Path::new("s.sops.yaml"), &l.documents[0]).is_empty());
        let leaked = encrypted.replace("ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]", "hunter2");
        let l = yaml::load(&leaked, Path::new("s.sops.yaml"), Limits::MANIFESTS);
        let d = check_sops_doc(Path::new("s.sops.yaml"), &l.documents[0]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "stringData.apiKey");
        let plain = "apiVersion: v1\nkind: Secret\nstringData:\n  apiKey: hunter2\n";
        let l = yaml::load(plain, Path::new("s.sops.yaml"), Limits::MANIFESTS);
        assert_eq!(
            check_sops_doc(Path::new("s.sops.yaml"), &l.documents[0]).len(),
            1
        );
    }
}
