//! `cargo xtask`: the only entry point of this repository.
fn main() {}
