//! `cargo xtask bench`: how long configure takes, step by step, as the configuration grows.
//!
//! Generates configurations with N Azure deployments × 5 models and N/5 MCP servers (the
//! largest default: 1,000 × 5 and 200), writes them to a temporary directory with a throwaway age
//! key, and measures two ways:
//! - the headline: `configure` (first run, then a no-change re-run) and `verify` as a user starts
//!   them, each a child process of this binary timed from spawn to exit, the schema set read from
//!   a schema cache on disk (median of `--runs`); with `--peer`, the peer's render + encrypt;
//! - beside it, each step in this process with `Instant` (loading the schema set is a step, so
//!   the in-process total is also everything a user waits for). Best of `--runs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lexopt::ValueExt;

use crate::configure::{self, crypto};
use crate::util;

pub const HELP: &str = "\
cargo xtask bench [--sizes N,N,…] [--runs R] [--schemas DIR | --no-schemas] [--peer DIR]
cargo xtask bench --bounds

Times configure on .github/tests/public.yaml and on generated configurations with N Azure
OpenAI deployments × 5 models and N/5 MCP servers, for each N. First table (the headline): whole
processes as a user starts them (`configure`, a no-change re-run, `verify`; the schema set read
from a cache on disk), median of R. Second table: each step inside one process (schema load,
validate, render, encrypt, write, verify), best of R. Growth should be linear.

Options:
  --sizes N,N,…   deployment counts (default: 125,250,500,1000)
  --runs R        repetitions per size (default: 3)
  --schemas DIR   schema set for the verify step (default: $CLUSTER_SCHEMAS_DIR, else
                  ../shared/schemas next to the repository if present, else no schema checks).
                  When it holds the pinned files, they are copied into a scratch schema cache
                  with its digests, as `cargo xtask schemas fetch` leaves one
  --no-schemas    verify without a schema set (graph and cross-resource checks only)
  --peer DIR      also time the peer on public.yaml: DIR is a configured cluster-template
                  checkout (makejinja.toml, cluster.yaml, nodes.yaml, age.key); needs `makejinja`
                  and `sops` on PATH, else the ratio is not printed
  --bounds        instead: the worst inputs each command accepts or refuses (largest files,
                  duplicate keys, alias bombs, a forged render manifest), each run as a child
                  process with its wall time and peak memory
";

pub fn run(args: &mut lexopt::Parser) -> Result<ExitCode> {
    let mut sizes = vec![125, 250, 500, 1000];
    let mut runs = 3usize;
    let mut schemas_dir: Option<PathBuf> = None;
    let mut no_schemas = false;
    let mut bounds = false;
    let mut peer: Option<PathBuf> = None;
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("sizes") => {
                sizes = args
                    .value()?
                    .string()?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().context("--sizes takes numbers"))
                    .collect::<Result<_>>()?;
            }
            lexopt::Arg::Long("runs") => runs = args.value()?.parse()?,
            lexopt::Arg::Long("schemas") => schemas_dir = Some(args.value()?.into()),
            lexopt::Arg::Long("no-schemas") => no_schemas = true,
            lexopt::Arg::Long("bounds") => bounds = true,
            lexopt::Arg::Long("peer") => peer = Some(args.value()?.into()),
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(util::unexpected(&other, HELP)),
        }
    }
    if runs == 0 || sizes.is_empty() {
        bail!("nothing to run");
    }
    let root = util::project_root();
    let templates = root.join("templates");
    let scratch = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    if bounds {
        let result = crate::bench_bounds::run_bounds(&scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        print!("{}", result?);
        return Ok(ExitCode::SUCCESS);
    }
    let schemas = if no_schemas {
        Schemas::None
    } else {
        prepare_schemas(&root, schemas_dir, &scratch)?
    };
    let peer = match &peer {
        Some(dir) => Some(crate::bench_process::time_peer(dir, runs)?),
        None => None,
    };
    let result = bench_all(&root, &templates, &scratch, &sizes, runs, &schemas, peer);
    let _ = std::fs::remove_dir_all(&scratch);
    let table = result?;
    print!("{table}");
    Ok(ExitCode::SUCCESS)
}

/// Times of one configure run.
#[derive(Clone, Default)]
struct Times {
    /// Loading the schema set from disk (the cache's digests, or the source files).
    schemas: Duration,
    validate: Duration,
    /// Building the template context from the model (and reading the key files).
    context: Duration,
    render: Duration,
    encrypt: Duration,
    write: Duration,
    /// The verify step on the written tree.
    verify: Duration,
    /// Errors verify reported (the generated configurations should have none).
    findings: usize,
    /// The first of those errors, as `code path: message`.
    first_finding: Option<String>,
    total: Duration,
    /// The secret that took longest to seal: time, path, plaintext size.
    slowest_secret: (Duration, String, usize),
    /// A second run over the written tree (validate + render + encrypt + compare; writes nothing).
    rerun: Duration,
}

impl Times {
    fn min(self, o: Times) -> Times {
        Times {
            schemas: self.schemas.min(o.schemas),
            validate: self.validate.min(o.validate),
            context: self.context.min(o.context),
            render: self.render.min(o.render),
            encrypt: self.encrypt.min(o.encrypt),
            write: self.write.min(o.write),
            verify: self.verify.min(o.verify),
            findings: self.findings.max(o.findings),
            first_finding: self.first_finding.or(o.first_finding),
            total: self.total.min(o.total),
            rerun: self.rerun.min(o.rerun),
            slowest_secret: self.slowest_secret.max(o.slowest_secret),
        }
    }
}

fn bench_all(
    root: &Path,
    templates: &Path,
    scratch: &Path,
    sizes: &[usize],
    runs: usize,
    schemas: &Schemas,
    peer: Option<Option<crate::bench_process::PeerTimes>>,
) -> Result<String> {
    let profile = if cfg!(debug_assertions) {
        "dev (the `cargo xtask` profile)"
    } else {
        "release"
    };
    let exe = std::env::current_exe().context("cannot find this binary to spawn it")?;
    let keys = scratch.join("keys");
    std::fs::create_dir_all(&keys)?;
    configure::write_throwaway_keys(&keys)?;
    // The bundled example first, then the generated sizes.
    let mut cases: Vec<(String, String, String, String)> = vec![(
        "public.yaml".to_owned(),
        "".to_owned(),
        std::fs::read_to_string(root.join(".github/tests/public.yaml"))?,
        std::fs::read_to_string(root.join(".github/tests/nodes.yaml"))?,
    )];
    for &n in sizes {
        let (cluster, nodes) = generate(root, n, n / 5)?;
        cases.push((n.to_string(), (n / 5).to_string(), cluster, nodes));
    }
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let mut headline = String::new();
    let mut steps = String::new();
    let mut slowest = Vec::new();
    let mut findings: Vec<String> = Vec::new();
    let mut public_rerun = None;
    for (i, (label, mcp, cluster, nodes)) in cases.into_iter().enumerate() {
        let dir = scratch.join(format!("case{i}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cluster.yaml"), cluster)?;
        std::fs::write(dir.join("nodes.yaml"), nodes)?;
        configure::write_throwaway_keys(&dir)?;

        let p = crate::bench_process::time_case(&exe, &dir, templates, schemas, runs)?;
        if let Some(f) = &p.failure {
            findings.push(format!("{label} (process): {f}"));
        }
        if i == 0 {
            public_rerun = Some(p.rerun);
        }
        writeln!(
            headline,
            "{:>11} {:>5} {:>10} {:>10} {:>8}",
            label,
            mcp,
            ms(p.first),
            ms(p.rerun),
            ms(p.verify)
        )?;

        let mut best: Option<Times> = None;
        let mut shape = (0, 0);
        for run in 0..runs {
            let out_dir = dir.join(format!("out{run}"));
            let (times, files, secrets) = once(&dir, &keys, templates, &out_dir, schemas)?;
            shape = (files, secrets);
            best = Some(match best {
                Some(b) => b.min(times),
                None => times,
            });
            let _ = std::fs::remove_dir_all(&out_dir);
        }
        let t = best.unwrap_or_default();
        slowest.push((label.clone(), t.slowest_secret.clone()));
        if t.findings > 0 {
            findings.push(format!(
                "{label}: {} errors, first: {}",
                t.findings,
                t.first_finding.as_deref().unwrap_or("?")
            ));
        }
        writeln!(
            steps,
            "{:>11} {:>5} {:>6} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            label,
            mcp,
            shape.0,
            shape.1,
            ms(t.schemas),
            ms(t.validate),
            ms(t.context),
            ms(t.render),
            ms(t.encrypt),
            ms(t.write),
            ms(t.verify),
            ms(t.total),
            ms(t.rerun)
        )?;
    }
    let mut out = String::new();
    writeln!(
        out,
        "whole process, as a user starts it ({profile} build of {}; median of {runs}; ms); {}",
        exe.display(),
        schemas.describe()
    )?;
    writeln!(
        out,
        "{:>11} {:>5} {:>10} {:>10} {:>8}",
        "deployments", "mcp", "configure", "no-change", "verify"
    )?;
    out.push_str(&headline);
    match (peer, public_rerun) {
        (Some(Some(peer)), Some(ours)) => {
            let ratio = |d: Duration| d.as_secs_f64() / ours.as_secs_f64().max(1e-9);
            match peer.as_task {
                Some(t) => writeln!(
                    out,
                    "peer (makejinja render + sops encrypt of its own public config, as its `configure` task runs them): {} ms, {:.1}× the no-change configure of public.yaml",
                    ms(t),
                    ratio(t)
                )?,
                None => writeln!(
                    out,
                    "peer as its task runs it: not timed (`jq` is not on PATH)"
                )?,
            }
            writeln!(
                out,
                "peer without its per-file `sops filestatus | jq` check (the fastest its two steps could be): {} ms, {:.1}×",
                ms(peer.encrypt_only),
                ratio(peer.encrypt_only)
            )?;
        }
        (Some(None), _) => writeln!(
            out,
            "peer: not timed (`makejinja` or `sops` is not on PATH), so no ratio is printed"
        )?,
        _ => writeln!(
            out,
            "peer: not timed (pass --peer DIR, a configured cluster-template checkout, with makejinja and sops installed)"
        )?,
    }
    writeln!(
        out,
        "\neach step inside one process (best of {runs}; ms; `total` = schemas … verify of a first run, `rerun` = a no-change run without verify)"
    )?;
    writeln!(
        out,
        "{:>11} {:>5} {:>6} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "deployments",
        "mcp",
        "files",
        "secrets",
        "schemas",
        "validate",
        "context",
        "render",
        "encrypt",
        "write",
        "verify",
        "total",
        "rerun"
    )?;
    out.push_str(&steps);
    writeln!(out, "slowest secret to encrypt (first run):")?;
    for (n, (time, path, size)) in slowest {
        writeln!(
            out,
            "{n:>11}  {:.1} ms  {path} ({size} bytes of plaintext)",
            time.as_secs_f64() * 1000.0
        )?;
    }
    if !findings.is_empty() {
        writeln!(
            out,
            "note: verify reported errors\n  {}",
            findings.join("\n  ")
        )?;
    }
    Ok(out)
}

/// Times every seal, keeping the slowest.
struct Timed {
    inner: Box<dyn render::Sealer>,
    slowest: std::sync::Mutex<(Duration, String, usize)>,
}

impl render::Sealer for Timed {
    fn seal(
        &self,
        path: &str,
        plaintext: &[u8],
        previous: Option<&[u8]>,
    ) -> std::result::Result<Vec<u8>, String> {
        let t = Instant::now();
        let sealed = self.inner.seal(path, plaintext, previous);
        let elapsed = t.elapsed();
        if let Ok(mut slowest) = self.slowest.lock()
            && elapsed > slowest.0
        {
            *slowest = (elapsed, path.to_owned(), plaintext.len());
        }
        sealed
    }
}

fn once(
    dir: &Path,
    keys: &Path,
    templates: &Path,
    out: &Path,
    schemas: &Schemas,
) -> Result<(Times, usize, usize)> {
    let mut times = Times::default();
    let started = Instant::now();
    let set = schemas.load()?;
    times.schemas = started.elapsed();
    let (plan, files, secrets) = pipeline(dir, keys, templates, out, Some(&mut times))?;
    let t = Instant::now();
    render::apply(&plan, &render::ApplyOptions { crash_after: None })
        .map_err(|e| anyhow::anyhow!("write failed: {e:?}"))?;
    times.write = t.elapsed();
    let t = Instant::now();
    let report = verify::verify(out, &set, &verify::VerifyConfig::cluster_template());
    times.verify = t.elapsed();
    times.findings = report.errors();
    times.first_finding = report
        .diagnostics
        .iter()
        .find(|d| d.severity == schema::Severity::Error)
        .map(|d| format!("{} {}: {}", d.code, d.path, d.message));
    times.total = started.elapsed();

    let t = Instant::now();
    let (plan, _, _) = pipeline(dir, keys, templates, out, None)?;
    times.rerun = t.elapsed();
    if !plan.is_noop() {
        bail!("the second run would change files: configure is not idempotent here");
    }
    Ok((times, files, secrets))
}

/// validate → render → encrypt/plan, timing each step into `times`.
fn pipeline(
    dir: &Path,
    keys: &Path,
    templates: &Path,
    out: &Path,
    mut times: Option<&mut Times>,
) -> Result<(render::Plan, usize, usize)> {
    let mut lap = |slot: fn(&mut Times) -> &mut Duration, t: Instant| {
        if let Some(times) = times.as_deref_mut() {
            *slot(times) = t.elapsed();
        }
    };
    let t = Instant::now();
    let outcome = schema::load(&dir.join("cluster.yaml"), &dir.join("nodes.yaml"));
    let Some(config) = outcome.config else {
        let text: String = outcome.diagnostics.iter().map(|d| d.render(None)).collect();
        bail!("the generated configuration is invalid:\n{text}");
    };
    lap(|t| &mut t.validate, t);

    let t = Instant::now();
    let inputs = configure::load_inputs(keys, templates).map_err(|d| anyhow::anyhow!("{:?}", d))?;
    let context = config.context();
    lap(|t| &mut t.context, t);
    let t = Instant::now();
    let rendered = render::render_templates(templates, &context, &inputs).map_err(|diags| {
        anyhow::anyhow!(
            "{}",
            diags.iter().map(|d| d.render(None)).collect::<String>()
        )
    })?;
    lap(|t| &mut t.render, t);
    let files = rendered.files.len();
    let secrets = rendered
        .files
        .keys()
        .filter(|p| render::is_secret(p))
        .count();

    let t = Instant::now();
    let sealer = Timed {
        inner: crypto::sealer(
            rendered
                .files
                .get(".sops.yaml")
                .map(|o| o.contents.as_slice()),
            &keys.join(render::AGE_KEY_FILE),
        )?,
        slowest: std::sync::Mutex::new((Duration::ZERO, String::new(), 0)),
    };
    let plan = render::plan(
        out,
        rendered,
        &sealer,
        &render::PlanOptions { force: false },
    )
    .map_err(|diags| {
        anyhow::anyhow!(
            "{}",
            diags.iter().map(|d| d.render(None)).collect::<String>()
        )
    })?;
    lap(|t| &mut t.encrypt, t);
    if let (Some(times), Ok(slowest)) = (times, sealer.slowest.lock()) {
        times.slowest_secret = slowest.clone();
    }
    Ok((plan, files, secrets))
}

/// `.github/tests/public.yaml` with `deployments` Azure deployments × 5 models (each model
/// served by 5 deployments, so every route has a failover chain) and `mcp` MCP servers.
fn generate(root: &Path, deployments: usize, mcp: usize) -> Result<(String, String)> {
    let public = std::fs::read_to_string(root.join(".github/tests/public.yaml"))
        .context("cannot read .github/tests/public.yaml")?;
    let nodes = std::fs::read_to_string(root.join(".github/tests/nodes.yaml"))
        .context("cannot read .github/tests/nodes.yaml")?;
    // Keep every line before the AI Gateway lists; they are replaced.
    let mut cluster = String::new();
    for line in public.lines() {
        if line.starts_with("ai_gateway_azure_deployments:") {
            break;
        }
        cluster.push_str(line);
        cluster.push('\n');
    }
    let model_groups = deployments.div_ceil(5).max(1);
    cluster.push_str("ai_gateway_azure_deployments:\n");
    for i in 0..deployments {
        let _ = writeln!(
            cluster,
            "  - name: \"d{i:04}\"\n    host: \"d{i:04}.openai.azure.com\"\n    api_key: \"bench-key-{i:04}-0123456789abcdef\"\n    models: [{}]",
            (0..5)
                .map(|j| format!("\"m{:04}-{j}\"", i % model_groups))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    cluster.push_str("ai_gateway_ratelimit_enabled: true\nai_gateway_mcp_enabled: true\nai_gateway_mcp_servers:\n");
    for i in 0..mcp {
        let _ = writeln!(
            cluster,
            "  - name: \"mcp{i:03}\"\n    host: \"mcp{i:03}.example.com\"\n    path: \"/mcp\"\n    api_key: \"bench-token-{i:03}\"\n    tool_filter: [\".*\"]"
        );
    }
    if mcp == 0 {
        cluster.push_str("  []\n");
    }
    Ok((cluster, nodes))
}

/// The schema set the bench verifies with.
pub(crate) enum Schemas {
    None,
    /// A scratch schema cache holding the pinned files and their digests, and how many of the
    /// pinned chart and talhelper files were in the source directory (of how many).
    Cache(PathBuf, usize, usize),
    /// A directory that is not the pinned set: read from its source files every run.
    Dir(PathBuf),
}

impl Schemas {
    /// Points a child `configure` or `verify` at this set: the cache through
    /// `$CLUSTER_SCHEMAS_DIR` (as after `cargo xtask schemas fetch`), another set with
    /// `--schemas DIR`, none through a cache that does not exist.
    pub(crate) fn apply(&self, cmd: &mut std::process::Command) {
        cmd.env_remove("CLUSTER_SCHEMAS_DIR");
        match self {
            Schemas::Cache(dir, ..) => {
                cmd.env("CLUSTER_SCHEMAS_DIR", dir);
            }
            Schemas::Dir(dir) => {
                cmd.arg("--schemas").arg(dir);
            }
            Schemas::None => {
                cmd.env("CLUSTER_SCHEMAS_DIR", "/nonexistent-schema-cache");
            }
        }
    }

    /// Loads the set as `verify` does (from disk, every time).
    fn load(&self) -> Result<verify::SchemaSet> {
        match self {
            Schemas::None => Ok(verify::SchemaSet::empty()),
            Schemas::Cache(d, ..) => {
                let loaded = verify::SchemaSet::load_pinned(d);
                if loaded.bad() > 0 {
                    bail!("{}: the scratch schema cache is incomplete", d.display());
                }
                Ok(loaded.set)
            }
            Schemas::Dir(d) => {
                verify::SchemaSet::load(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Schemas::None => {
                "no schema set (verify runs its graph and cross-resource checks only)".to_owned()
            }
            Schemas::Cache(d, values, of) => format!(
                "pinned schema set from a schema cache with its digests ({}; chart values and talconfig schemas: {values} of {of} files{})",
                d.display(),
                if values < of {
                    ", the Helm values check skips the rest"
                } else {
                    ""
                }
            ),
            Schemas::Dir(d) => format!(
                "schema set read from its source files every run ({})",
                d.display()
            ),
        }
    }
}

/// `--schemas DIR`, else `$CLUSTER_SCHEMAS_DIR`, else `../shared/schemas` beside the repository,
/// else no schema set. A directory holding every pinned file is copied into a scratch cache,
/// whose digests are written once (as `cargo xtask schemas fetch` does), so runs time what a
/// user's runs cost after a fetch.
fn prepare_schemas(root: &Path, dir: Option<PathBuf>, scratch: &Path) -> Result<Schemas> {
    let dir = dir
        .or_else(|| std::env::var_os("CLUSTER_SCHEMAS_DIR").map(PathBuf::from))
        .or_else(|| Some(root.join("../shared/schemas")).filter(|d| d.is_dir()));
    let Some(dir) = dir else {
        return Ok(Schemas::None);
    };
    let pinned = verify::pins::status(&dir)
        .iter()
        .all(|(_, s)| *s == verify::pins::FileStatus::Ok);
    if !pinned {
        // Fails early, with the reason, if it is not a schema set at all.
        verify::SchemaSet::load(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        return Ok(Schemas::Dir(dir));
    }
    let cache = scratch.join("schema-cache");
    // Read as the schema cache is everywhere: bounded, no symlink followed.
    let read = |pin: &verify::pins::PinnedFile| {
        schema::repofile::read_under(&dir, &pin.relative_path(), 16 << 20)
            .with_context(|| format!("{}", dir.join(pin.relative_path()).display()))
    };
    for pin in verify::pins::PINS {
        verify::pins::store_verified(&cache, pin, &read(pin)?)?;
    }
    // The chart values and talhelper schemas, when the directory has them (a cache after
    // `schemas fetch` does; the reference material does not).
    let (mut values, mut of) = (0, 0);
    for pin in verify::pins::all().filter(|p| !verify::pins::PINS.contains(p)) {
        of += 1;
        if let Ok(bytes) = read(pin)
            && verify::pins::store_verified(&cache, pin, &bytes).is_ok()
        {
            values += 1;
        }
    }
    let primed = verify::SchemaSet::load_pinned(&cache);
    if primed.bad() > 0 {
        bail!("{}: could not build a schema cache", cache.display());
    }
    verify::store_chart_digests(&cache);
    Ok(Schemas::Cache(cache, values, of))
}
