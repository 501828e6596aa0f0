//! Renders the template tree in memory with makejinja's semantics.
//!
//! Second link of the chain: it takes the model's context (from `schema`) and produces files in
//! memory. It knows nothing about sops or age: secrets are just outputs named `*.sops.*` that the
//! caller must encrypt before they reach the disk.

mod engine;
mod inputs;
mod walk;

pub use inputs::{CloudflareTunnel, Inputs};
pub use walk::{Output, Rendered, render_templates};

pub(crate) fn engine_b64(s: &str) -> String {
    engine::b64(s)
}
