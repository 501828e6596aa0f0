//! `cargo xtask e2e`: execute the [`Plan`](crate::plan::Plan) on a kind cluster.
//!
//! This module only orchestrates (processes, containers, API calls) and prints progress; it
//! cannot run without a container engine, so its only unit tests are of the two pure helpers in
//! `network` (the MetalLB range and the CoreDNS hosts block). Everything else it decides is
//! decided by tested code: the plan ([`crate::plan`]), the check verdicts ([`crate::checks`],
//! [`crate::traffic`]), the mocks and clients.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod mocks;
mod network;
mod process;
mod render;
mod run;
mod state;
mod traffic_checks;

pub use network::{add_hosts, metallb_range};
pub use render::{prepare_render_dir, render_commands};
pub use run::{Options, main};
