//! One run: tools, the rendered tree, the plan, executing it, cleaning up.

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::plan::{self, E2eConfig, Layout};
use crate::preflight;
use crate::rendered::Tree;

use super::render::{create_private_dir, render};
use super::state::State;

pub struct Options {
    pub workspace: PathBuf,
    pub rendered: Option<PathBuf>,
    pub plan_only: bool,
    pub keep: bool,
}

/// Exit codes: 0 every check passed, 1 a check or a setup step failed, 2 could not start.
pub async fn main(options: Options) -> u8 {
    match run(options).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("e2e: error: {err:#}");
            2
        }
    }
}

async fn run(options: Options) -> anyhow::Result<u8> {
    let scratch = std::env::temp_dir().join(format!("ai-gateway-e2e-{}", std::process::id()));
    create_private_dir(&scratch)?;
    let result = run_in(&options, &scratch).await;
    // The throwaway keys and the rendered tree go with the scratch directory.
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn run_in(options: &Options, scratch: &Path) -> anyhow::Result<u8> {
    // Tools first: without them nothing is rendered, built or created.
    if !options.plan_only {
        let path = std::env::var_os("PATH").unwrap_or_default();
        if let Some(report) = preflight::problems(&preflight::check(preflight::TOOLS, &path)) {
            eprint!("{report}");
            eprintln!(
                "e2e: not run. This is not a pass: the end-to-end checks need a container engine (see docs/e2e.md)."
            );
            return Ok(2);
        }
    }
    let rendered = match &options.rendered {
        Some(dir) => dir.clone(),
        None => {
            let dir = scratch.join("repo");
            render(&options.workspace, &dir)?;
            dir
        }
    };
    let tree = Tree::load(&rendered)?;
    let config =
        E2eConfig::load(&options.workspace.join("e2e/cluster.yaml")).map_err(anyhow::Error::msg)?;
    let layout = Layout {
        workspace: options.workspace.clone(),
        rendered: rendered.clone(),
        scratch: scratch.to_path_buf(),
        age_key: rendered.join("age.key"),
    };
    let plan = plan::build(&layout, &tree, &config).map_err(anyhow::Error::msg)?;
    if options.plan_only {
        print!("{plan}");
        return Ok(0);
    }

    if !layout.age_key.is_file() {
        bail!(
            "{}: the age key that encrypted the rendered secrets is needed for Flux to decrypt them",
            layout.age_key.display()
        );
    }

    let mut state = State::new(layout, config, plan.clone())?;
    let result = state.execute(&plan).await;
    let code = match result {
        Ok(0) => {
            println!("e2e: all checks passed");
            0
        }
        Ok(failed) => {
            println!("e2e: {failed} check(s) failed");
            1
        }
        Err(err) => {
            eprintln!("e2e: a step failed: {err:#}");
            1
        }
    };
    state.cleanup(options.keep).await;
    Ok(code)
}
