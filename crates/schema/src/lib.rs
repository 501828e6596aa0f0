//! The typed model of `cluster.yaml` + `nodes.yaml`: loading, validation, defaults, JSON Schema.
//!
//! This crate is the first link of the chain (config → model → rendered files → encrypted files →
//! verification report). It knows nothing about templates, sops or Kubernetes objects.
//! It also owns the workspace's one [`Diagnostic`] type, so later crates can report problems
//! without depending back up the chain.

mod diag;

pub use diag::{Diagnostic, Location, Severity, counts};
pub mod yaml;
