//! What the cluster commands need from the rendered `talos/talconfig.yaml` and
//! `talos/talenv.yaml`: the cluster name, the nodes (name, address, role, installer image) and
//! the two versions. Read through `schema::yaml` (the repository is untrusted input).

use std::path::Path;

use schema::yaml::{Limits, Node as Yaml};

pub const TALCONFIG: &str = "talos/talconfig.yaml";
pub const TALENV: &str = "talos/talenv.yaml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub hostname: String,
    pub address: String,
    pub control_plane: bool,
    /// `talosImageURL`: the installer image without its tag.
    pub image: String,
}

#[derive(Debug, Clone)]
pub struct Talos {
    pub cluster_name: String,
    pub nodes: Vec<Node>,
    pub talos_version: String,
    pub kubernetes_version: String,
}

impl Talos {
    /// Reads both files below `root`; every problem at once, as `path:line:col: message`.
    pub fn load(root: &Path) -> Result<Talos, Vec<String>> {
        let mut errors = Vec::new();
        let config = load_one(root, TALCONFIG, &mut errors);
        let env = load_one(root, TALENV, &mut errors);
        let (Some(config), Some(env)) = (config, env) else {
            return Err(errors);
        };
        let text = |doc: &Yaml, file: &str, key: &str, errors: &mut Vec<String>| -> String {
            match doc.get(key).and_then(Yaml::as_str) {
                Some(v) if safe_word(v) => v.to_owned(),
                _ => {
                    let at = doc.get(key).map_or(doc.span, |n| n.span);
                    errors.push(format!(
                        "{file}:{}:{}: `{key}` is missing or not a plain string\n  help: run `cargo xtask configure` to render it again",
                        at.line, at.col
                    ));
                    String::new()
                }
            }
        };
        let cluster_name = text(&config, TALCONFIG, "clusterName", &mut errors);
        let talos_version = text(&env, TALENV, "talosVersion", &mut errors);
        let kubernetes_version = text(&env, TALENV, "kubernetesVersion", &mut errors);
        let mut nodes = Vec::new();
        match config.get("nodes").and_then(Yaml::as_seq) {
            Some(seq) if !seq.is_empty() => {
                for item in seq {
                    let hostname = text(item, TALCONFIG, "hostname", &mut errors);
                    let address = text(item, TALCONFIG, "ipAddress", &mut errors);
                    let image = text(item, TALCONFIG, "talosImageURL", &mut errors);
                    let control_plane = matches!(
                        item.get("controlPlane").map(|n| &n.value),
                        Some(schema::yaml::Value::Bool(true))
                    );
                    nodes.push(Node {
                        hostname,
                        address,
                        control_plane,
                        image,
                    });
                }
            }
            _ => errors.push(format!(
                "{TALCONFIG}:{}:{}: no `nodes` list\n  help: run `cargo xtask configure` to render it again",
                config.span.line, config.span.col
            )),
        }
        if errors.is_empty() && !nodes.iter().any(|n| n.control_plane) {
            errors.push(format!(
                "{TALCONFIG}: no node has `controlPlane: true`\n  help: mark at least one node `controller: true` in nodes.yaml and run `cargo xtask configure`"
            ));
        }
        if errors.is_empty() {
            Ok(Talos {
                cluster_name,
                nodes,
                talos_version,
                kubernetes_version,
            })
        } else {
            Err(errors)
        }
    }

    /// The node whose hostname or address is `key`.
    pub fn node(&self, key: &str) -> Result<&Node, String> {
        self.nodes
            .iter()
            .find(|n| n.hostname == key || n.address == key)
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("{} ({})", n.hostname, n.address))
                    .collect();
                format!(
                    "no node `{key}` in {TALCONFIG}\n  help: name one of: {}",
                    known.join(", ")
                )
            })
    }

    /// The first control-plane node: where talhelper sends bootstrap, kubeconfig and upgrade-k8s.
    pub fn first_control_plane(&self) -> &Node {
        // `load` refuses a configuration without one.
        self.nodes
            .iter()
            .find(|n| n.control_plane)
            .unwrap_or(&self.nodes[0])
    }

    /// The machine configuration `talhelper genconfig` writes for `node`, relative to `talos/`.
    pub fn machine_config(&self, node: &Node) -> String {
        format!(
            "./clusterconfig/{}-{}.yaml",
            self.cluster_name, node.hostname
        )
    }
}

/// Values end up in command arguments: refuse anything but a plain word (no spaces, quotes or
/// shell syntax), so the printed plan is exactly what runs.
fn safe_word(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:/@".contains(c))
}

fn load_one(root: &Path, rel: &str, errors: &mut Vec<String>) -> Option<Yaml> {
    if !root.join(rel).exists() {
        errors.push(format!(
            "{rel}: not found under {}\n  help: run `cargo xtask configure` first (it renders talos/)",
            root.display()
        ));
        return None;
    }
    let loaded = schema::yaml::load_file_under(root, Path::new(rel), Limits::CONFIG);
    if !loaded.diagnostics.is_empty() {
        errors.extend(loaded.diagnostics.iter().map(ToString::to_string));
        return None;
    }
    match loaded.documents.into_iter().find(|d| d.as_map().is_some()) {
        Some(doc) => Some(doc),
        None => {
            errors.push(format!(
                "{rel}: not a YAML mapping\n  help: run `cargo xtask configure` to render it again"
            ));
            None
        }
    }
}
