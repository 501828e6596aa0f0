//! End-to-end test harness for the optional Envoy AI Gateway.
//!
//! Two halves:
//! - **Offline** (tested on any machine): mock upstreams ([`mock`]: Azure OpenAI, an MCP server,
//!   an OCI registry serving the rendered tree to Flux), the clients that talk to them through the
//!   gateway ([`client`]), the reading of the rendered tree ([`rendered`]), the check logic as
//!   pure functions over object JSON and recorded responses ([`checks`], [`traffic`]), tool
//!   preflight ([`preflight`]) and the step plan ([`plan`]).
//! - **Live** (needs a container engine and a cluster): [`live`] runs the checks against a
//!   kubeconfig (`cargo xtask ai-gateway status`), [`harness`] builds the kind cluster, installs
//!   what `configure` rendered, and runs everything (`cargo xtask e2e`).
//!
//! Invariants: the live half only orchestrates; every verdict comes from a pure function in
//! [`checks`] or [`traffic`] that has unit tests. Nothing here is linked by `xtask`, which
//! shells out to this crate's `e2e` binary.

pub mod checks;
pub mod client;
pub mod digest;
pub mod extension;
pub mod gateway;
pub mod hardening;
#[cfg(feature = "live")]
pub mod hardening_live;
#[cfg(feature = "live")]
pub mod harness;
pub mod http;
pub mod image;
#[cfg(feature = "live")]
pub mod live;
pub mod mock;
pub mod plan;
pub mod preflight;
pub mod providers;
pub mod rendered;
pub mod tls;
pub mod traffic;
