//! The typed model of `cluster.yaml` + `nodes.yaml`: loading, validation, defaults, JSON Schema.
//!
//! This crate is the first link of the chain (config → model → rendered files → encrypted files →
//! verification report). It knows nothing about templates, sops or Kubernetes objects.
//! It also owns the workspace's one [`Diagnostic`] type and the spanned YAML loader ([`yaml`]),
//! so later crates can report problems without depending back up the chain.
//!
//! **Invariant:** validation never stops at the first problem. [`load`] returns every diagnostic
//! of both files and a [`Config`] only when none of them is an error.
//!
//! ```
//! let out = schema::load_str("node_cidr: 10.0.0.0/33\n", "cluster.yaml".as_ref(), "nodes: []\n", "nodes.yaml".as_ref());
//! assert!(out.config.is_none());
//! assert!(out.diagnostics.iter().any(|d| d.path == "node_cidr"));
//! ```

mod check;
mod diag;
mod docs;
mod exposure;
mod jsonschema;
mod model;
mod names;
mod net;
pub mod providers;
mod re2;
pub mod repofile;
mod rules;
mod spec;
pub mod writefile;
pub mod yaml;

use std::path::Path;

pub use check::SECRET_FIELDS;
pub use diag::{
    Diagnostic, Location, SNIPPET_SOURCE_MAX, Severity, Source, counts, is_key_file, terminal_safe,
};
pub use docs::configuration_reference;
pub use jsonschema::{cluster_json_schema, nodes_json_schema};
pub use model::{
    AnthropicBackend, AzureDeployment, BedrockBackend, ClientKey, Cluster, Config, EntraId,
    McpServer, Model, Node, OpenAiBackend, ProviderModel, ServiceRef,
};
pub use names::{AI_GATEWAY, AI_HOSTNAME_PREFIX, AI_NAMESPACE, ROUTE_RULES_MAX};
pub use net::Cidr;

/// Top-level keys of a `*.sops.*` document that may stay in plaintext: what Kubernetes and Flux
/// need to route the object without decrypting it, and sops' own metadata. One list for the
/// sealing check (`secrets`) and the tree check (`verify`).
pub const SOPS_IDENTITY_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "type",
    "immutable",
    "sops",
];

/// The result of loading both files.
#[derive(Debug)]
pub struct Outcome {
    /// Present only when no diagnostic is an error.
    pub config: Option<Config>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads, checks and defaults `cluster.yaml` and `nodes.yaml` from disk. Paths are shown in
/// diagnostics exactly as given.
pub fn load(cluster_path: &Path, nodes_path: &Path) -> Outcome {
    let cluster = yaml::load_file(cluster_path, cluster_path, yaml::Limits::CONFIG);
    let nodes = yaml::load_file(nodes_path, nodes_path, yaml::Limits::CONFIG);
    finish(cluster, cluster_path, nodes, nodes_path)
}

/// Like [`load`], from text.
pub fn load_str(
    cluster_text: &str,
    cluster_name: &Path,
    nodes_text: &str,
    nodes_name: &Path,
) -> Outcome {
    let cluster = yaml::load(cluster_text, cluster_name, yaml::Limits::CONFIG);
    let nodes = yaml::load(nodes_text, nodes_name, yaml::Limits::CONFIG);
    finish(cluster, cluster_name, nodes, nodes_name)
}

fn finish(
    cluster: yaml::Loaded,
    cluster_file: &Path,
    nodes: yaml::Loaded,
    nodes_file: &Path,
) -> Outcome {
    let mut diagnostics = Vec::new();
    let cluster_broken = fatal(&cluster.diagnostics);
    let nodes_broken = fatal(&nodes.diagnostics);
    diagnostics.extend(cluster.diagnostics);
    diagnostics.extend(nodes.diagnostics);
    let cluster_doc = single_document(
        cluster.documents,
        cluster_broken,
        cluster_file,
        &mut diagnostics,
    );
    let nodes_doc = single_document(nodes.documents, nodes_broken, nodes_file, &mut diagnostics);

    let mut checker = check::Checker::new(cluster_file);
    let mut cluster_json = cluster_doc
        .as_ref()
        .and_then(|d| checker.object(d, spec::CLUSTER, ""))
        .unwrap_or_default();
    diagnostics.append(&mut checker.diags);
    let mut checker = check::Checker::new(nodes_file);
    let mut nodes_json = nodes_doc
        .as_ref()
        .and_then(|d| checker.object(d, spec::NODES_FILE, ""))
        .unwrap_or_default();
    diagnostics.append(&mut checker.diags);

    model::apply_defaults(&mut cluster_json, spec::CLUSTER);
    model::apply_defaults(&mut nodes_json, spec::NODES_FILE);
    let cluster_model: Cluster =
        serde_json::from_value(serde_json::Value::Object(cluster_json)).unwrap_or_default();
    let nodes_model: Vec<Node> = nodes_json
        .remove("nodes")
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();

    let sources = rules::Sources {
        cluster_file,
        cluster: cluster_doc.as_ref(),
        nodes_file,
        nodes: nodes_doc.as_ref(),
        invalid: diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.path.clone())
            .collect(),
    };
    diagnostics.extend(rules::check(&cluster_model, &nodes_model, &sources));
    // What a valid configuration will expose once deployed; said only when it will deploy.
    if !diagnostics.iter().any(Diagnostic::is_error) {
        diagnostics.extend(exposure::check(&cluster_model, &sources));
    }

    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    Outcome {
        config: ok.then_some(Config {
            cluster: cluster_model,
            nodes: nodes_model,
        }),
        diagnostics,
    }
}

/// Whether loading failed badly enough that the tree is incomplete. Duplicate keys keep the
/// first value and do not stop the checks.
fn fatal(diags: &[Diagnostic]) -> bool {
    diags.iter().any(|d| d.code != "yaml::duplicate_key")
}

/// The one document of a configuration file. A file whose YAML did not load is not checked
/// further: its syntax error is the one thing worth reading.
fn single_document(
    mut docs: Vec<yaml::Node>,
    broken: bool,
    file: &Path,
    diags: &mut Vec<Diagnostic>,
) -> Option<yaml::Node> {
    if broken {
        return None;
    }
    if docs.len() > 1 {
        let extra = &docs[1];
        diags.push(
            Diagnostic::error(
                "schema::multiple_documents",
                "",
                format!("expected one YAML document, found {}", docs.len()),
            )
            .at(Some(extra.location(file)))
            .with_help("remove the `---` separators; all keys belong in one document"),
        );
    }
    if docs.is_empty() {
        // An empty file checks as an empty mapping, which reports every missing required key.
        return Some(yaml::Node::new(
            yaml::Value::Map(Vec::new()),
            yaml::Span {
                line: 1,
                col: 1,
                len: 1,
            },
        ));
    }
    Some(docs.swap_remove(0))
}
