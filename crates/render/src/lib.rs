//! Renders the template tree in memory with makejinja's semantics, and writes it safely.
//!
//! Second link of the chain: it takes the model's context (from `schema`) and produces files.
//! It knows nothing about sops or age: secrets are outputs named `*.sops.*` that a caller-supplied
//! [`Sealer`] encrypts before anything reaches the disk.
//!
//! - [`render_templates`]: the whole tree in memory (`templates/overrides/` shadows
//!   `templates/config/`, `.j2` stripped, whitespace-only renders skipped).
//! - [`plan`]: compares the render with the output directory and its render manifest, sealing
//!   every secret; [`Plan::diff`] shows it, [`apply`] writes it.
//!
//! **Invariants:** nothing is written unless the whole tree rendered and every secret sealed;
//! plaintext of a secret never reaches the disk, not even in a temporary file; every file is
//! replaced atomically; files are removed only when the render manifest lists them with their
//! current bytes, and nothing the manifest does not list is ever touched. See `output/mod.rs` for
//! the manifest format and the crash-safety argument.

mod derive;
mod engine;
mod inputs;
mod output;
mod walk;

pub use inputs::{
    AGE_KEY_FILE, CloudflareTunnel, DEPLOY_KEY_FILE, Inputs, PUSH_TOKEN_FILE, TUNNEL_FILE,
    parse_age_key_file,
};
pub use output::{
    Action, ApplyError, ApplyOptions, Counts, LOCK_FILE, MANIFEST_FILE, MANIFEST_MAX_BYTES,
    OutputLock, Plan, PlanOptions, Planned, Sealer, apply, is_secret, lock, may_remove, plan,
};
pub use walk::{
    Output, Rendered, render_template, render_templates, talos_patches, template_outputs,
};

/// `s` as a double-quoted YAML scalar that every YAML parser reads back as exactly `s`: what
/// the templates' `| yaml` filter writes for a string.
pub fn yaml_quote(s: &str) -> String {
    let mut out = String::new();
    engine::write_yaml_string(s, &mut out);
    out
}

/// A context with no values, for templates that need none (`cargo xtask init` renders
/// `.sops.yaml` before `cluster.yaml` is filled in).
pub fn empty_context() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

pub(crate) fn engine_b64(s: &str) -> String {
    engine::b64(s)
}
