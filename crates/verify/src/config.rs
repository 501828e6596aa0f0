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
        }
    }
}
