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
    /// Nodes and bytes of text all loaded files created so far, against [`TREE_BUDGET`].
    used: (usize, usize),
    budget: (usize, usize),
    /// Set once a file was not loaded for lack of budget (reported once).
    over_budget: bool,
    /// Symlinks found (and reported) by the walk: never loaded, never reported twice.
    links: std::collections::BTreeSet<PathBuf>,
}

/// What the whole tree may create when loaded: nodes and bytes of text, aliases included. Each
/// file is bounded by `Limits::MANIFESTS`; this bounds their sum, so many files at their limit
/// cannot exhaust memory together (about 400 MB at most; the 1,000-deployment benchmark tree
/// uses well under 1% of it).
pub(crate) const TREE_BUDGET: (usize, usize) = (4_000_000, 128 << 20);

impl Tree {
    /// Loads every `*.yaml`/`*.yml` below `root/<dir>` for each of `dirs` (hidden entries are
    /// skipped) and checks every `*.sops.*` file there.
    pub(crate) fn load(root: &Path, dirs: &[PathBuf]) -> Tree {
        Tree::load_within(root, dirs, TREE_BUDGET)
    }

    /// [`Tree::load`] with another budget (tests).
    pub(crate) fn load_within(root: &Path, dirs: &[PathBuf], budget: (usize, usize)) -> Tree {
        let mut tree = Tree {
            root: root.to_path_buf(),
            files: BTreeMap::new(),
            diagnostics: Vec::new(),
            sops_files: 0,
            used: (0, 0),
            budget,
            over_budget: false,
            links: Default::default(),
        };
        let mut paths = Vec::new();
        let mut links = Vec::new();
        for dir in dirs {
            let abs = root.join(dir);
            match schema::repofile::kind_of(&abs) {
                Some("directory") => walk(root, &abs, &mut paths, &mut links),
                Some("symlink") => links.push(dir.clone()),
                _ => {}
            }
        }
        for link in links {
            tree.diagnostics.push(symlink_diagnostic(&link));
            tree.links.insert(link);
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
        // The budget is shared by the threads: once spent, no further file is parsed.
        let used_nodes = std::sync::atomic::AtomicUsize::new(0);
        let used_text = std::sync::atomic::AtomicUsize::new(0);
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let parsed = crate::par::map(&paths, |rel| {
            if !is_yaml(&name(rel)) {
                return None;
            }
            if used_nodes.load(relaxed) > budget.0 || used_text.load(relaxed) > budget.1 {
                return Some(None);
            }
            let loaded = yaml::load_file_under(root, rel, Limits::MANIFESTS);
            used_nodes.fetch_add(loaded.nodes, relaxed);
            used_text.fetch_add(loaded.text_bytes, relaxed);
            Some(Some(loaded))
        });
        for (rel, loaded) in paths.into_iter().zip(parsed) {
            let name = name(&rel);
            let is_yaml = is_yaml(&name);
            match loaded {
                Some(Some(loaded)) => tree.insert(&rel, loaded),
                Some(None) => tree.refuse_over_budget(&rel),
                None => {}
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
        if self.links.contains(rel) {
            return None;
        }
        if !self.files.contains_key(rel) {
            match schema::repofile::kind_of(&self.root.join(rel)) {
                // A symlink (or a path through a symlinked folder) is reported by the load
                // and never followed.
                Some("file" | "symlink") => {}
                _ if schema::repofile::check_no_symlink_under(&self.root, rel).is_err() => {}
                _ => return None,
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
        if schema::is_key_file(rel) {
            // A kustomization listing `../../github-push-token.txt` must not get the token
            // parsed (and quoted in a syntax error).
            let mut loaded = yaml::Loaded::default();
            loaded.diagnostics.push(
                Diagnostic::error(
                    "verify::key_file",
                    "",
                    format!("{} is a key file; verify never reads it", rel.display()),
                )
                .at(Some(schema::Location::new(rel, 1, 1, 1)))
                .with_help(
                    "a kustomization or Flux path must not reach key files; remove the reference",
                ),
            );
            self.insert(rel, loaded);
            return;
        }
        if self.used.0 > self.budget.0 || self.used.1 > self.budget.1 {
            self.refuse_over_budget(rel);
            return;
        }
        let loaded = yaml::load_file_under(&self.root, rel, Limits::MANIFESTS);
        self.insert(rel, loaded);
    }

    /// A file left unread because the tree's budget is spent: an empty entry, reported once.
    fn refuse_over_budget(&mut self, rel: &Path) {
        if !self.over_budget {
            self.over_budget = true;
            self.diagnostics.push(
                Diagnostic::error(
                    "verify::tree_too_large",
                    "",
                    format!(
                        "the tree's YAML expands to more than {} nodes or {} bytes of text; {} and any file after it were not read",
                        self.budget.0,
                        self.budget.1,
                        rel.display()
                    ),
                )
                .at(Some(schema::Location::new(rel, 1, 1, 1)))
                .with_help("a rendered tree is far smaller; look for huge files or YAML aliases that expand many times"),
            );
        }
        self.files
            .insert(rel.to_path_buf(), SourceFile { docs: Vec::new() });
    }

    fn insert(&mut self, rel: &Path, loaded: yaml::Loaded) {
        self.used.0 += loaded.nodes;
        self.used.1 += loaded.text_bytes;
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
            let text = schema::repofile::read_text_under(
                &self.root,
                rel,
                Limits::MANIFESTS.max_bytes as u64,
            )
            .unwrap_or_default();
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

/// Files below `dir`, relative to `root`; symlinks are collected in `links`, never followed.
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>, links: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(root, &path, out, links),
            Ok(t) if t.is_file() => out.push(rel.to_path_buf()),
            Ok(t) if t.is_symlink() => links.push(rel.to_path_buf()),
            _ => {}
        }
    }
}

/// A symlink in the tree: not read (it could point at a key file), and so not checked.
fn symlink_diagnostic(rel: &Path) -> Diagnostic {
    Diagnostic::error(
        "verify::symlink",
        "",
        format!("{} is a symlink; verify never follows symlinks, so it is not checked", rel.display()),
    )
    .at(Some(schema::Location::new(rel, 1, 1, 1)))
    .with_help("commit the file itself: a symlink in a GitOps tree can point outside it (at a key file), and Flux refuses links that leave the repository")
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

/// One step of a field path.
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// `spec.rules[0][app.kubernetes.io/name]` → `spec`, `rules`, 0, `app.kubernetes.io/name`.
pub(crate) fn segments(path: &str) -> Vec<Seg<'_>> {
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
    fn the_whole_tree_is_bounded_not_only_each_file() {
        let dir = std::env::temp_dir().join(format!("verify-budget-{}", std::process::id()));
        let k = dir.join("kubernetes");
        std::fs::create_dir_all(&k).unwrap();
        // Ten files of ~1,000 nodes each: each within its own limits, together over a budget
        // of 3,000 nodes.
        let body: String = (0..1000).map(|i| format!("k{i}: v\n")).collect();
        for i in 0..10 {
            std::fs::write(k.join(format!("f{i}.yaml")), &body).unwrap();
        }
        let tree = Tree::load_within(&dir, &[PathBuf::from("kubernetes")], (3_000, 1 << 20));
        let over: Vec<_> = tree
            .diagnostics
            .iter()
            .filter(|d| d.code == "verify::tree_too_large")
            .collect();
        assert_eq!(over.len(), 1, "{:?}", tree.diagnostics);
        let loaded = tree.files.values().filter(|f| !f.docs.is_empty()).count();
        assert!(loaded < 10, "{loaded} files loaded");
        let full = Tree::load(&dir, &[PathBuf::from("kubernetes")]);
        assert!(full.diagnostics.is_empty(), "{:?}", full.diagnostics);
        let _ = std::fs::remove_dir_all(&dir);
    }

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
