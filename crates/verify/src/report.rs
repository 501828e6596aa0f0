//! The outcome of a verification run: findings plus what was looked at.

use std::collections::BTreeMap;
use std::path::Path;

use schema::Diagnostic;

/// Findings and counts of one [`crate::verify`] run.
#[derive(Debug, Default)]
pub struct Report {
    /// Sorted by file, line and column; findings without a file come first.
    pub diagnostics: Vec<Diagnostic>,
    pub stats: Stats,
}

/// What a run looked at.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// YAML files loaded.
    pub files: usize,
    /// `*.sops.*` files checked to be encrypted.
    pub sops_files: usize,
    /// Directories built with the kustomize subset (each once).
    pub kustomize_dirs: usize,
    /// Flux Kustomizations, the entry point included.
    pub flux_kustomizations: usize,
    /// Objects of the desired state (everything some Flux Kustomization applies).
    pub objects: usize,
    /// Objects checked against a schema (desired state plus kustomize directories Flux does not
    /// reach).
    pub schema_checked: usize,
    /// `apiVersion kind` of objects no schema covers.
    pub schema_missing: Vec<String>,
    /// Whether a schema set was available at all.
    pub schemas_available: bool,
    /// CEL rules evaluated, and those skipped because their input is only known in the cluster
    /// (`${VAR}`, `ENC[…]`).
    pub cel_evaluated: usize,
    pub cel_skipped: usize,
    /// References not judged because an unmodelled Helm chart may create their target.
    pub unverifiable_refs: usize,
    /// HelmRelease values and talconfig.yaml against their upstream JSON schemas.
    pub helm: crate::helm::HelmStats,
}

impl Report {
    pub fn errors(&self) -> usize {
        schema::counts(&self.diagnostics).0
    }

    pub fn warnings(&self) -> usize {
        schema::counts(&self.diagnostics).1
    }

    pub fn has_errors(&self) -> bool {
        self.errors() > 0
    }

    /// Findings grouped by file (`None` for findings about the tree as a whole), in order.
    pub fn by_file(&self) -> Vec<(Option<&Path>, Vec<&Diagnostic>)> {
        let mut groups: BTreeMap<Option<&Path>, Vec<&Diagnostic>> = BTreeMap::new();
        for d in &self.diagnostics {
            groups
                .entry(d.location.as_ref().map(|l| l.file.as_path()))
                .or_default()
                .push(d);
        }
        groups.into_iter().collect()
    }

    /// Diagnostics with the given code (for tests and tools).
    pub fn with_code(&self, code: &str) -> Vec<&Diagnostic> {
        self.diagnostics.iter().filter(|d| d.code == code).collect()
    }
}
