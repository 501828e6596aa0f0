//! A set of schemas laid out like `../shared/schemas`: one folder per upstream source, CRD YAML
//! files (single or multi-document) and Kubernetes OpenAPI v3 JSON documents.
//!
//! Loading reads and indexes every file; compiling a schema (regexes, CEL programs) happens the
//! first time an object of that kind is validated and is then cached, so `verify` pays only for
//! the kinds it meets.

pub(crate) mod celcode;
mod digest;
mod graphcode;
mod parse;
pub(crate) mod pinned;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::cel::CelEnv;
use crate::openapi::{Compiler, Components, Graph, NodeId};

use parse::Parsed;
pub use pinned::{PinnedLoad, PinnedState};

/// Group, version, kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Gvk {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) kind: String,
}

impl Gvk {
    pub(crate) fn from_api_version(api_version: &str, kind: &str) -> Gvk {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        Gvk {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{} {}", self.version, self.kind)
        } else {
            write!(f, "{}/{} {}", self.group, self.version, self.kind)
        }
    }
}

/// Why a schema set could not be loaded at all.
#[derive(Debug)]
pub enum SchemaSetError {
    /// The directory does not exist or cannot be listed.
    Unreadable { dir: PathBuf, error: std::io::Error },
    /// The directory holds no CRD or OpenAPI file.
    NoSchemas { dir: PathBuf },
}

impl fmt::Display for SchemaSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaSetError::Unreadable { dir, error } => {
                write!(f, "cannot read schema directory {}: {error}", dir.display())
            }
            SchemaSetError::NoSchemas { dir } => {
                write!(f, "no CRD or OpenAPI schema files under {}", dir.display())
            }
        }
    }
}

impl std::error::Error for SchemaSetError {}

pub(crate) struct Compiled {
    pub(crate) graph: Graph,
    pub(crate) root: NodeId,
}

/// One schema document: parsed already (read from a source file), or a range of a verified
/// digest, parsed the first time it is needed.
pub(crate) struct LazyJson {
    raw: Option<(Arc<Vec<u8>>, Range<usize>)>,
    value: OnceLock<Value>,
}

impl LazyJson {
    pub(crate) fn parsed(value: Value) -> LazyJson {
        LazyJson {
            raw: None,
            value: OnceLock::from(value),
        }
    }

    /// `bytes[range]` is JSON written by [`digest::encode`] and checked against its pinned hash
    /// before this is built, so it parses; `null` (a schema that allows anything) is never reached
    /// unless the digest encoder itself is wrong, which the digest tests would show.
    pub(crate) fn from_digest(bytes: Arc<Vec<u8>>, range: Range<usize>) -> LazyJson {
        LazyJson {
            raw: Some((bytes, range)),
            value: OnceLock::new(),
        }
    }

    pub(crate) fn get(&self) -> &Value {
        self.value.get_or_init(|| {
            self.raw
                .as_ref()
                .and_then(|(b, r)| b.get(r.clone()))
                .and_then(|slice| serde_json::from_slice(slice).ok())
                .unwrap_or(Value::Null)
        })
    }
}

/// Where a CRD version's schema comes from.
pub(crate) enum CrdSchema {
    /// Its `openAPIV3Schema`, parsed from the source file.
    Json(Value),
    /// Its compiled graph in a verified digest: `bytes[range]`, read back on first use.
    Digest(Arc<Vec<u8>>, Range<usize>),
}

pub(crate) struct CrdVersion {
    /// `<folder>/<file>` inside the schema set.
    pub(crate) source: String,
    pub(crate) served: bool,
    pub(crate) schema: CrdSchema,
    pub(crate) compiled: OnceLock<Compiled>,
    /// The file's rules, parsed when its digest was written (`None` when read from the source).
    pub(crate) parsed_rules: Option<Arc<celcode::Table>>,
}

/// A Kubernetes OpenAPI v3 document, kept as its `components.schemas`, each parsed and compiled
/// only when an object (or `ObjectMeta`) needs it.
pub(crate) struct OpenApiDoc {
    pub(crate) source: String,
    pub(crate) components: HashMap<String, LazyJson>,
    /// Components that are entry points (kinds with a group/version/kind, and `ObjectMeta`), each
    /// compiled on its own the first time it is used.
    pub(crate) roots: BTreeMap<String, OnceLock<Compiled>>,
}

impl Components for HashMap<String, LazyJson> {
    fn component(&self, name: &str) -> Option<&Value> {
        self.get(name).map(LazyJson::get)
    }
}

/// What the set knows about one apiVersion + kind.
pub(crate) enum Lookup<'a> {
    Crd(&'a CrdVersion),
    /// A built-in kind: the OpenAPI document and the component name.
    BuiltIn(&'a OpenApiDoc, &'a str),
    /// The group and kind exist, but not at this version (or it is not served).
    NotServed(Vec<String>),
    Missing,
}

/// Upstream CRD and Kubernetes OpenAPI schemas, indexed by group/version/kind.
pub struct SchemaSet {
    dir: Option<PathBuf>,
    crds: HashMap<Gvk, CrdVersion>,
    builtins: Vec<OpenApiDoc>,
    builtin_index: HashMap<Gvk, (usize, String)>,
    /// (group, kind) → namespaced?
    scopes: HashMap<(String, String), bool>,
    problems: Vec<String>,
}

/// Totals from [`SchemaSet::compile_all`].
#[derive(Clone, Debug, Default)]
pub struct CompileSummary {
    /// CRD versions compiled.
    pub crd_versions: usize,
    /// Built-in kinds compiled.
    pub builtin_kinds: usize,
    /// `x-kubernetes-validations` rules seen.
    pub rules: usize,
    /// Rules, message expressions or patterns that failed to compile.
    pub errors: Vec<String>,
    /// Rules that call a function the Kubernetes CEL library here does not provide.
    pub unavailable: Vec<String>,
}

impl SchemaSet {
    /// A set with no schemas: `verify` then runs only graph and cross-resource checks.
    pub fn empty() -> SchemaSet {
        SchemaSet {
            dir: None,
            crds: HashMap::new(),
            builtins: Vec::new(),
            builtin_index: HashMap::new(),
            scopes: HashMap::new(),
            problems: Vec::new(),
        }
    }

    /// Reads every `*.yaml`/`*.yml` (CRDs) and `*.json` (Kubernetes OpenAPI v3) file in the
    /// folders of `dir`. Files that do not parse are listed in [`SchemaSet::problems`].
    pub fn load(dir: &Path) -> Result<SchemaSet, SchemaSetError> {
        let mut set = SchemaSet::empty();
        set.dir = Some(dir.to_path_buf());
        let mut files = Vec::new();
        collect_files(dir, dir, &mut files).map_err(|error| SchemaSetError::Unreadable {
            dir: dir.to_path_buf(),
            error,
        })?;
        files.sort();
        for parsed in parse::parse_all(&files) {
            set.add(parsed);
        }
        if set.crds.is_empty() && set.builtins.is_empty() {
            return Err(SchemaSetError::NoSchemas {
                dir: dir.to_path_buf(),
            });
        }
        Ok(set)
    }

    /// Where the set was loaded from (`None` for [`SchemaSet::empty`]).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.crds.is_empty() && self.builtins.is_empty()
    }

    /// Number of group/version/kind entries (CRD versions plus built-in kinds).
    pub fn len(&self) -> usize {
        self.crds.len() + self.builtin_index.len()
    }

    /// Files that were skipped because they did not parse.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Compiles every schema now (normally this happens on first use) and counts the rules.
    pub fn compile_all(&self) -> CompileSummary {
        let mut s = CompileSummary::default();
        let env = CelEnv::new();
        let mut probed = HashMap::new();
        let mut check_functions = |graph: &Graph, source: &str, s: &mut CompileSummary| {
            for node in &graph.nodes {
                for rule in &node.rules {
                    let message = rule.message_expression().and_then(Result::ok);
                    let programs = rule.program().ok().into_iter().chain(message);
                    for p in programs {
                        for f in env.missing_functions(p, &mut probed) {
                            s.unavailable
                                .push(format!("{source}: `{f}` in rule {:?}", rule.rule));
                        }
                    }
                }
            }
        };
        let mut gvks: Vec<&Gvk> = self.crds.keys().collect();
        gvks.sort();
        for gvk in gvks {
            let crd = &self.crds[gvk];
            let c = compiled_crd(crd);
            s.crd_versions += 1;
            s.rules += c.graph.rule_count;
            s.errors.extend(
                c.graph
                    .compile_everything()
                    .iter()
                    .map(|e| format!("{} ({gvk}): {e}", crd.source)),
            );
            check_functions(&c.graph, &crd.source, &mut s);
        }
        for doc in &self.builtins {
            // All roots of a document in one graph, as a summary (verify compiles each root on
            // its own, when an object needs it).
            let mut c = Compiler::new(Some(&doc.components));
            for name in doc.roots.keys() {
                c.add_component(name);
            }
            let graph = c.finish();
            s.builtin_kinds += doc.roots.len();
            s.rules += graph.rule_count;
            s.errors.extend(
                graph
                    .compile_everything()
                    .iter()
                    .map(|e| format!("{}: {e}", doc.source)),
            );
            check_functions(&graph, &doc.source, &mut s);
        }
        s
    }

    /// (group, kind) → namespaced, for every CRD in the set.
    pub(crate) fn scopes(&self) -> impl Iterator<Item = (&(String, String), &bool)> {
        self.scopes.iter()
    }

    /// Whether objects of this group and kind live in a namespace; `None` if unknown.
    pub fn is_namespaced(&self, group: &str, kind: &str) -> Option<bool> {
        self.scopes
            .get(&(group.to_owned(), kind.to_owned()))
            .copied()
    }

    pub(crate) fn lookup(&self, gvk: &Gvk) -> Lookup<'_> {
        if let Some(crd) = self.crds.get(gvk)
            && crd.served
        {
            return Lookup::Crd(crd);
        }
        if let Some((doc, name)) = self.builtin_index.get(gvk) {
            return Lookup::BuiltIn(&self.builtins[*doc], name);
        }
        let mut served: Vec<String> = self
            .crds
            .iter()
            .filter(|(k, v)| k.group == gvk.group && k.kind == gvk.kind && v.served)
            .map(|(k, _)| k.version.clone())
            .chain(
                self.builtin_index
                    .keys()
                    .filter(|k| k.group == gvk.group && k.kind == gvk.kind)
                    .map(|k| k.version.clone()),
            )
            .collect();
        served.sort();
        if served.is_empty() {
            Lookup::Missing
        } else {
            Lookup::NotServed(served)
        }
    }

    /// The compiled `ObjectMeta` schema, if a Kubernetes OpenAPI document provides it.
    pub(crate) fn object_meta(&self) -> Option<(&Graph, NodeId)> {
        const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
        self.builtins
            .iter()
            .find_map(|doc| compiled_openapi(doc, META))
            .map(|c| (&c.graph, c.root))
    }

    fn add(&mut self, parsed: Parsed) {
        match parsed {
            Parsed::Crds {
                versions,
                scopes,
                problems,
            } => {
                self.problems.extend(problems);
                self.scopes.extend(scopes);
                self.crds.extend(versions);
            }
            Parsed::OpenApi { doc, gvks } => {
                let idx = self.builtins.len();
                for (gvk, component) in gvks {
                    self.builtin_index.entry(gvk).or_insert((idx, component));
                }
                self.builtins.push(doc);
            }
            Parsed::Problem(p) => self.problems.push(p),
            Parsed::Nothing => {}
        }
    }
}

pub(crate) fn compiled_crd(crd: &CrdVersion) -> &Compiled {
    crd.compiled.get_or_init(|| match &crd.schema {
        CrdSchema::Json(schema) => {
            let mut c = Compiler::new(None).with_parsed_rules(crd.parsed_rules.clone());
            let root = c.add(schema, "");
            Compiled {
                graph: c.finish(),
                root,
            }
        }
        CrdSchema::Digest(bytes, range) => bytes
            .get(range.clone())
            .and_then(|b| graphcode::decode(b, crd.parsed_rules.clone()))
            .map(|(graph, root)| Compiled { graph, root })
            // The digest hashed to its pinned value, so this is an encoder bug (the digest tests
            // decode every pinned file): said as a compile error, never a silent pass.
            .unwrap_or_else(|| {
                let mut graph = Graph::default();
                graph.nodes.push(crate::openapi::SchemaNode::empty());
                graph
                    .compile_errors
                    .push(format!("{}: its schema digest does not decode", crd.source));
                Compiled { graph, root: 0 }
            }),
    })
}

/// The compiled root `component` of `doc` (a kind, or `ObjectMeta`), compiled on first use.
pub(crate) fn compiled_openapi<'a>(doc: &'a OpenApiDoc, component: &str) -> Option<&'a Compiled> {
    let slot = doc.roots.get(component)?;
    Some(slot.get_or_init(|| {
        let mut c = Compiler::new(Some(&doc.components));
        let root = c.add_component(component);
        Compiled {
            graph: c.finish(),
            root,
        }
    }))
}

fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(PathBuf, PathBuf)>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.push((path, rel));
        }
    }
    Ok(())
}
