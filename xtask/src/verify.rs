//! `cargo xtask verify [DIR]`: checks a rendered tree offline and prints the findings grouped by
//! file. Exit code 0 when clean (warnings allowed), 1 with errors, 2 when it cannot run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ::verify::{Report, SchemaSet, VerifyConfig, pins};

use crate::util;

const HELP: &str = "\
cargo xtask verify [DIR] [options]

Checks the rendered tree in DIR (default: the repository root) offline: sops files are
encrypted, kustomizations and Flux Kustomizations resolve, every object matches its upstream
schema and CEL rules, and the AI Gateway cross-resource rules hold.

Options:
  --schemas DIR    schema set to use (default: $CLUSTER_SCHEMAS_DIR, else the cache filled
                   by `cargo xtask schemas fetch`)
  --no-schemas     skip schema checks (graph and cross-resource checks still run)
  -h, --help       print this help
";

pub fn run(args: &mut lexopt::Parser) -> anyhow::Result<ExitCode> {
    use lexopt::Arg::{Long, Short, Value};
    let mut dir: Option<PathBuf> = None;
    let mut schemas: Option<PathBuf> = None;
    let mut no_schemas = false;
    while let Some(arg) = args.next()? {
        match arg {
            Long("schemas") => schemas = Some(args.value()?.into()),
            Long("no-schemas") => no_schemas = true,
            Long("help") | Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Value(v) if dir.is_none() => dir = Some(v.into()),
            other => {
                eprintln!(
                    "xtask verify: unexpected argument {}",
                    util::describe(&other)
                );
                eprint!("{HELP}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let root = dir.unwrap_or_else(|| util::repo_root().unwrap_or_else(util::project_root));
    let schemas = if no_schemas {
        SchemaSource::Skip
    } else {
        match schemas {
            Some(dir) => SchemaSource::Dir(dir),
            None => SchemaSource::Cache,
        }
    };
    Ok(run_verify(&root, &schemas)?.code)
}

/// Where `verify` takes its schemas from.
pub enum SchemaSource {
    /// This directory (it must hold a schema set).
    Dir(PathBuf),
    /// `$CLUSTER_SCHEMAS_DIR` or the fetch cache, if complete; otherwise no schema checks.
    Cache,
    /// No schema checks.
    Skip,
}

/// What a verify run ended with.
pub struct Verified {
    pub code: ExitCode,
    /// Warnings printed, counting schema checks skipped for want of a schema set.
    pub warnings: usize,
}

/// Verifies the tree at `root` and prints the report; `configure` calls this as its last step.
pub fn run_verify(root: &Path, source: &SchemaSource) -> anyhow::Result<Verified> {
    if !root.join("kubernetes").is_dir() {
        eprintln!(
            "xtask verify: {} has no rendered `kubernetes/` directory; run `cargo xtask configure` first",
            root.display()
        );
        return Ok(Verified {
            code: ExitCode::from(2),
            warnings: 0,
        });
    }
    let started = Instant::now();
    let schemas = match load_schemas(source) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xtask verify: {e:#}");
            return Ok(Verified {
                code: ExitCode::from(2),
                warnings: 0,
            });
        }
    };
    let report = ::verify::verify(root, &schemas, &VerifyConfig::cluster_template());
    print_report(root, &report, &schemas);
    println!("(verified in {:.2}s)", started.elapsed().as_secs_f64());
    let code = if report.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    // Counts `verify::schemas_unavailable` when no schema set was found: configure's summary
    // then cannot end with "0 warnings" after skipping every schema check.
    let warnings = report.warnings();
    // The process ends after this step: freeing the parsed and compiled schemas node by node
    // cost about a tenth of a verify run (callgrind), and the OS takes the memory back anyway.
    std::mem::forget(schemas);
    Ok(Verified { code, warnings })
}

fn load_schemas(source: &SchemaSource) -> anyhow::Result<SchemaSet> {
    match source {
        SchemaSource::Skip => Ok(SchemaSet::empty()),
        SchemaSource::Dir(dir) => Ok(SchemaSet::load(dir)?),
        SchemaSource::Cache => {
            let Some(dir) = pins::cache_dir() else {
                return Ok(SchemaSet::empty());
            };
            // Through the verified digests of the pinned files when the cache has them (see
            // `verify::SchemaSet::load_pinned`); the source files otherwise.
            let loaded = SchemaSet::load_pinned(&dir);
            let bad = loaded.bad();
            if bad == loaded.states.len() {
                return Ok(SchemaSet::empty());
            }
            if bad > 0 {
                eprintln!(
                    "xtask verify: the schema cache {} is incomplete or modified ({bad} of {} files); run `cargo xtask schemas fetch` to repair it. Schema checks are skipped.",
                    dir.display(),
                    loaded.states.len()
                );
                return Ok(SchemaSet::empty());
            }
            Ok(loaded.set)
        }
    }
}

/// Findings printed in full, at most, as for every other command; the rest are counted (a
/// hostile tree can produce hundreds of thousands, e.g. one resource listed 100,000 times).
use crate::report::MAX_PRINTED;

fn print_report(root: &Path, report: &Report, schemas: &SchemaSet) {
    let mut printed = 0;
    for (file, diags) in report.by_file() {
        if printed >= MAX_PRINTED {
            break;
        }
        match file {
            Some(f) => println!("{}", schema::terminal_safe(&f.display().to_string())),
            None => println!("(whole tree)"),
        }
        // Each file is read once for all its findings (through schema::repofile).
        let source = file.and_then(|f| schema::Source::read(root, f));
        for d in diags.iter().take(MAX_PRINTED - printed) {
            for line in d.render_with(source.as_ref()).lines() {
                println!("  {line}");
            }
            printed += 1;
        }
        println!();
    }
    let total = report.errors() + report.warnings();
    if total > printed {
        println!(
            "... and {} more findings not shown (the summary counts them all)\n",
            total - printed
        );
    }
    let s = &report.stats;
    let schema_part = if s.schemas_available {
        format!(
            "{} checked against {} schemas from {}, {} CEL rules evaluated ({} left to the cluster: values only it knows)",
            s.schema_checked,
            schemas.len(),
            schemas
                .dir()
                .map_or("?".into(), |d| d.display().to_string()),
            s.cel_evaluated,
            s.cel_skipped
        )
    } else {
        "schema checks SKIPPED (see the warning above; run `cargo xtask schemas fetch` once to enable them)".to_owned()
    };
    println!(
        "verify: {} files, {} sops files, {} kustomize dirs, {} Flux Kustomizations applying {} objects; {schema_part}",
        s.files, s.sops_files, s.kustomize_dirs, s.flux_kustomizations, s.objects
    );
    if s.schemas_available {
        let h = &s.helm;
        println!(
            "verify: Helm values of {} release(s) checked against their chart's values.schema.json{}",
            h.releases_checked,
            if h.talconfig_checked {
                ", talconfig.yaml against talhelper's schema"
            } else {
                ""
            }
        );
        if !h.unchecked.is_empty() {
            println!("verify: not checked against a values schema:");
            for line in &h.unchecked {
                println!("  - {}", schema::terminal_safe(line));
            }
        }
    }
    println!(
        "verify: {} error(s), {} warning(s)",
        report.errors(),
        report.warnings()
    );
}
