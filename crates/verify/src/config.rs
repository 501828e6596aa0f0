//! What `verify` needs to know about the repository layout.

use std::path::PathBuf;

/// Where things are in the rendered repository. There is no `Default`: the caller knows the
/// layout; [`VerifyConfig::cluster_template`] is the layout this project renders.
#[derive(Clone, Debug)]
pub struct VerifyConfig {
    /// Directories (relative to the root) whose YAML files are loaded and whose `*.sops.*`
    /// files must be encrypted.
    pub scan: Vec<PathBuf>,
    /// The directory Flux applies from. A Kubernetes object in a YAML file under it that no
    /// Flux Kustomization applies is reported.
    pub manifests: PathBuf,
    /// The Flux Kustomization that starts it all (created by the Flux operator from the
    /// flux-instance `sync` settings, so it is not itself a file in the tree).
    pub entry: FluxEntry,
    /// The JSON schemas of Helm values and talconfig.yaml (see the `helm` module).
    pub value_schemas: ValueSchemas,
}

/// Which chart values schemas and talhelper schema verify knows, and where their files are.
#[derive(Clone, Debug)]
pub struct ValueSchemas {
    pub charts: Vec<crate::helm::ChartPin>,
    pub talconfig: Option<crate::pins::PinnedFile>,
    /// The directory holding them; `None`: the schema set's directory (where `schemas fetch`
    /// stores them beside the CRDs).
    pub dir: Option<PathBuf>,
}

impl ValueSchemas {
    /// The pinned ones: [`crate::CHART_PINS`] and [`crate::TALCONFIG_SCHEMA`].
    pub fn pinned() -> ValueSchemas {
        ValueSchemas {
            charts: crate::helm::CHART_PINS.to_vec(),
            talconfig: Some(crate::helm::TALCONFIG_SCHEMA),
            dir: None,
        }
    }
}

/// The root Flux Kustomization and the Git source every in-repository Kustomization uses.
#[derive(Clone, Debug)]
pub struct FluxEntry {
    pub name: String,
    pub namespace: String,
    /// Relative to the repository root, like Flux's `spec.path`.
    pub path: PathBuf,
    /// `spec.sourceRef` of Kustomizations that build from this repository.
    pub source_kind: String,
    pub source_name: String,
    pub source_namespace: String,
}

impl VerifyConfig {
    /// The onedr0p/cluster-template layout: `kubernetes/`, `bootstrap/`, `talos/`; Flux syncs
    /// `kubernetes/flux/cluster` as `flux-system/flux-system` from `GitRepository/flux-system`.
    pub fn cluster_template() -> VerifyConfig {
        VerifyConfig {
            scan: vec!["kubernetes".into(), "bootstrap".into(), "talos".into()],
            manifests: "kubernetes".into(),
            entry: FluxEntry {
                name: "flux-system".into(),
                namespace: "flux-system".into(),
                path: "kubernetes/flux/cluster".into(),
                source_kind: "GitRepository".into(),
                source_name: "flux-system".into(),
                source_namespace: "flux-system".into(),
            },
            value_schemas: ValueSchemas::pinned(),
        }
    }
}
