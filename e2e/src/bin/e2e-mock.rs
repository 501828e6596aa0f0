//! The mock upstream process that runs in the e2e containers: `e2e-mock <config.json>`.
//! Built statically and packed into an image without a base image (see `e2e::image`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: e2e-mock <config.json>");
        return ExitCode::from(2);
    };
    let config = match e2e::mock::load_config(&path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("e2e-mock: {err}");
            return ExitCode::from(2);
        }
    };
    let running = match e2e::mock::start(config).await {
        Ok(running) => running,
        Err(err) => {
            eprintln!("e2e-mock: {err}");
            return ExitCode::from(2);
        }
    };
    // The harness waits for this line before using the container.
    println!(
        "e2e-mock ready on {} (admin {:?})",
        running.addr(),
        running.admin_addr()
    );
    running.main.wait().await;
    ExitCode::SUCCESS
}
