//! `cargo xtask configure`: cluster.yaml + nodes.yaml → the GitOps tree, safely.
//!
//! validate → render (in memory) → encrypt (every `*.sops.*` output, no churn) → write (atomic,
//! render manifest, prune) → verify. Nothing is written unless every earlier step succeeded;
//! no secret reaches the disk unencrypted. `--diff` stops before writing and shows the plan.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{report, util, validate};

pub const HELP: &str = "\
cargo xtask configure [--config FILE] [--nodes FILE] [--out DIR] [--diff] [--force]
cargo xtask configure --example [--out DIR]

Validates cluster.yaml and nodes.yaml, renders templates/ in memory, encrypts every *.sops.*
output with age.key (an unchanged secret keeps its exact bytes), writes the tree atomically and
verifies it. Files it wrote before and no longer renders are removed; files edited by hand are
never overwritten or removed without --force; nothing else is ever touched. What it wrote is
listed in .render-manifest.json at the output root (commit it).

The key files are read from the directory of cluster.yaml: age.key, github-deploy.key,
github-push-token.txt (all made by `cargo xtask init`) and cloudflare-tunnel.json (made by
`cloudflared tunnel create`).

Options:
  --config FILE     cluster configuration (default: cluster.yaml at the repository root, found
                    from any subdirectory)
  --nodes FILE      nodes configuration (default: nodes.yaml at the repository root)
  --out DIR         output root (default: the directory of cluster.yaml, i.e. the repository)
  --templates DIR   templates root (default: templates/ of this repository)
  --diff            show what would change (a unified diff; secrets only by name) and write nothing
  --force           overwrite files that were edited by hand or not written by configure
  --schemas DIR     schema set for the verify step (default: the cache of `cargo xtask schemas
                    fetch`, or $CLUSTER_SCHEMAS_DIR; without one, schema checks are skipped)
  --no-verify       skip the verify step
  --example         run the whole pipeline on .github/tests/public.yaml with a throwaway age key
                    and fake credentials, into target/example/ (or --out DIR)
";

/// One configure run, fully resolved.
pub struct Job {
    pub config: PathBuf,
    pub nodes: PathBuf,
    /// Where age.key and the other key files are.
    pub key_dir: PathBuf,
    pub out: PathBuf,
    pub templates: PathBuf,
    pub diff: bool,
    pub force: bool,
    /// Where verify takes its schemas from; `None` skips the verify step.
    pub verify: Option<crate::verify::SchemaSource>,
}

pub fn run(args: &mut lexopt::Parser) -> Result<ExitCode> {
    let mut config: Option<PathBuf> = None;
    let mut nodes: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    let mut templates: Option<PathBuf> = None;
    let (mut diff, mut force, mut example) = (false, false, false);
    let mut verify = Some(crate::verify::SchemaSource::Cache);
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("config") => config = Some(args.value()?.into()),
            lexopt::Arg::Long("nodes") => nodes = Some(args.value()?.into()),
            lexopt::Arg::Long("out") => out = Some(args.value()?.into()),
            lexopt::Arg::Long("templates") => templates = Some(args.value()?.into()),
            lexopt::Arg::Long("diff") => diff = true,
            lexopt::Arg::Long("force") => force = true,
            lexopt::Arg::Long("example") => example = true,
            lexopt::Arg::Long("schemas") => {
                verify = Some(crate::verify::SchemaSource::Dir(args.value()?.into()))
            }
            lexopt::Arg::Long("no-verify") => verify = None,
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(util::unexpected(&other, HELP)),
        }
    }
    let root = util::project_root();
    let templates = templates.unwrap_or_else(|| root.join("templates"));
    if example {
        if config.is_some() || nodes.is_some() {
            bail!(
                "--example uses .github/tests/public.yaml and nodes.yaml; it takes no --config/--nodes"
            );
        }
        let scratch = out.unwrap_or_else(|| root.join("target/example"));
        return run_example(&root, &scratch, templates, diff, force, verify);
    }
    let config = config.unwrap_or_else(|| util::at_root("cluster.yaml"));
    let nodes = nodes.unwrap_or_else(|| util::at_root("nodes.yaml"));
    let key_dir = dir_of(&config);
    let job = Job {
        out: out.unwrap_or_else(|| key_dir.clone()),
        config,
        nodes,
        key_dir,
        templates,
        diff,
        force,
        verify,
    };
    configure(&job)
}

/// The directory a file is in (`.` for a bare file name).
fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The whole pipeline with one progress line per step and a summary. Exit code 0 when done
/// (or nothing to do), 1 on findings (invalid config, template error, conflicts), 2 when it
/// could not run.
pub fn configure(job: &Job) -> Result<ExitCode> {
    let started = Instant::now();
    let cwd = std::env::current_dir()?;

    // 1. validate
    let t = Instant::now();
    let mut verify_warnings = 0;
    let (config, code, validation_warnings) = validate::load(&validate::Inputs {
        config: job.config.clone(),
        nodes: job.nodes.clone(),
    })?;
    let Some(config) = config else {
        step(
            "validate",
            t.elapsed(),
            "failed; nothing was rendered or written",
        );
        return Ok(code);
    };
    step(
        "validate",
        t.elapsed(),
        &format!(
            "{} and {} are valid ({})",
            job.config.display(),
            job.nodes.display(),
            n(config.nodes.len(), "node")
        ),
    );

    // 2. render, after the prerequisites
    let t = Instant::now();
    let inputs = match load_inputs(&job.key_dir, &job.templates) {
        Ok(inputs) => inputs,
        Err(diags) => {
            report::print(&diags, &cwd);
            step(
                "render",
                t.elapsed(),
                "missing or broken key files; nothing was rendered or written",
            );
            return Ok(ExitCode::from(1));
        }
    };
    let rendered = match render::render_templates(&job.templates, &config.context(), &inputs) {
        Ok(r) => r,
        Err(diags) => {
            // Template locations are shown relative to the templates root's parent.
            report::print(&diags, job.templates.parent().unwrap_or(Path::new(".")));
            step(
                "render",
                t.elapsed(),
                &format!("{}; nothing was written", n(diags.len(), "template error")),
            );
            return Ok(ExitCode::from(1));
        }
    };
    let n_secrets = rendered
        .files
        .keys()
        .filter(|p| render::is_secret(p))
        .count();
    step(
        "render",
        t.elapsed(),
        &format!(
            "{} in memory ({}), {} toggled off",
            n(rendered.files.len(), "file"),
            n(n_secrets, "secret"),
            n(rendered.skipped.len(), "template")
        ),
    );

    // 3. encrypt (and compare with the tree on disk), holding the output root's lock until the
    // tree is written: two runs never plan against or write one tree at once.
    let t = Instant::now();
    // `--diff` writes nothing (not even the lock file) and needs no lock.
    let _lock = if job.diff {
        None
    } else {
        match render::lock(&job.out) {
            Ok(lock) => Some(lock),
            Err(d) => {
                report::print(&[*d], &cwd);
                step("encrypt", t.elapsed(), "not started; nothing was written");
                return Ok(ExitCode::from(2));
            }
        }
    };
    let sealer = match crypto::sealer(
        rendered
            .files
            .get(".sops.yaml")
            .map(|o| o.contents.as_slice()),
        &job.key_dir.join(render::AGE_KEY_FILE),
    ) {
        Ok(sealer) => sealer,
        Err(e) => {
            eprintln!("error: {e:#}");
            step("encrypt", t.elapsed(), "refused; nothing was written");
            return Ok(ExitCode::from(1));
        }
    };
    let plan = match render::plan(
        &job.out,
        rendered,
        sealer.as_ref(),
        &render::PlanOptions { force: job.force },
    ) {
        Ok(plan) => plan,
        Err(diags) => {
            report::print(&diags, &cwd);
            step("encrypt", t.elapsed(), "failed; nothing was written");
            return Ok(ExitCode::from(1));
        }
    };
    let counts = plan.counts();
    step(
        "encrypt",
        t.elapsed(),
        &format!(
            "{}: {} encrypted, {} unchanged (previous bytes kept)",
            n(counts.secrets_changed + counts.secrets_unchanged, "secret"),
            counts.secrets_changed,
            counts.secrets_unchanged
        ),
    );

    report::print(plan.warnings(), &cwd);
    if job.diff {
        // File names and contents come from the repository: escape what a terminal would obey.
        print!("{}", schema::terminal_safe(&plan.diff()));
        report::print(plan.conflicts(), &cwd);
        eprintln!(
            "diff: {} to create, {} to update, {} to remove, {} unchanged, {} kept, {}; nothing was written",
            counts.created,
            counts.updated,
            counts.removed,
            counts.unchanged,
            counts.kept,
            n(counts.conflicts, "conflict")
        );
        return Ok(if counts.conflicts > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }

    // 4. write
    let t = Instant::now();
    match render::apply(&plan, &render::ApplyOptions { crash_after: None }) {
        Ok(()) => {}
        Err(render::ApplyError::Conflicts) => {
            report::print(plan.conflicts(), &cwd);
            step(
                "write",
                t.elapsed(),
                &format!(
                    "{}; nothing was written",
                    n(plan.conflicts().len(), "conflict")
                ),
            );
            return Ok(ExitCode::from(1));
        }
        Err(render::ApplyError::Io(d)) => {
            report::print(&[*d], &cwd);
            bail!("writing stopped; the tree is consistent and the next run finishes the job");
        }
        Err(render::ApplyError::Crashed) => bail!("interrupted"),
    }
    for f in plan.files().iter().filter(|f| f.removes_file()) {
        eprintln!(
            "  removed {}",
            schema::terminal_safe(&format!("{} (rendered from {})", f.path, f.source))
        );
    }
    step(
        "write",
        t.elapsed(),
        &format!(
            "{}: {} written, {} unchanged, {} removed, {} kept",
            job.out.display(),
            counts.created + counts.updated,
            counts.unchanged,
            counts.removed,
            counts.kept
        ),
    );

    if let Some(note) = crate::ai_gateway::removal_note(&plan) {
        eprint!("{note}");
    }

    // 5. verify
    let t = Instant::now();
    let verified = match &job.verify {
        _ if !job.out.join("kubernetes").is_dir() => {
            step(
                "verify",
                t.elapsed(),
                "skipped: nothing rendered under kubernetes/",
            );
            ExitCode::SUCCESS
        }
        None => {
            step("verify", t.elapsed(), "skipped (--no-verify)");
            ExitCode::SUCCESS
        }
        Some(schemas) => {
            let outcome = crate::verify::run_verify(&job.out, schemas)?;
            let code = outcome.code;
            verify_warnings = outcome.warnings;
            let verdict = if code != ExitCode::SUCCESS {
                "found problems in the written tree (listed above); fix the configuration or templates and run configure again".to_owned()
            } else if verify_warnings > 0 {
                format!(
                    "no errors; {} (listed above)",
                    n(verify_warnings, "warning")
                )
            } else {
                "no errors".to_owned()
            };
            step("verify", t.elapsed(), &verdict);
            code
        }
    };

    eprintln!(
        "configure: done in {} — {} written, {} unchanged, {} removed, {} kept; secrets {} encrypted, {} unchanged; {}",
        ms(started.elapsed()),
        n(counts.created + counts.updated, "file"),
        counts.unchanged,
        counts.removed,
        counts.kept,
        counts.secrets_changed,
        counts.secrets_unchanged,
        n(
            validation_warnings + plan.warnings().len() + verify_warnings,
            "warning"
        )
    );
    Ok(verified)
}

/// Reads the key files next to cluster.yaml. `age.key` is required (every run encrypts);
/// the others only when a template asks for them, which the template functions report.
pub fn load_inputs(
    key_dir: &Path,
    templates: &Path,
) -> std::result::Result<render::Inputs, Vec<schema::Diagnostic>> {
    let (mut inputs, mut diags) = render::Inputs::load(key_dir);
    if inputs.age_public_key.is_none()
        && !diags
            .iter()
            .any(|d| d.message.starts_with(render::AGE_KEY_FILE))
    {
        diags.push(
            schema::Diagnostic::error(
                "configure::missing_age_key",
                "",
                format!(
                    "{} not found: secrets cannot be encrypted",
                    key_dir.join(render::AGE_KEY_FILE).display()
                ),
            )
            .with_help("run `cargo xtask init` to create it (or copy your existing age.key there)"),
        );
    }
    if let Err(d) = crypto::bind_age_key(&mut inputs, key_dir) {
        diags.push(*d);
    }
    inputs.talos_patches = render::talos_patches(templates);
    if diags.iter().any(schema::Diagnostic::is_error) {
        return Err(diags);
    }
    Ok(inputs)
}

fn step(name: &str, elapsed: Duration, detail: &str) {
    eprintln!("{name:<9}{:>9}  {detail}", ms(elapsed));
}

/// "1 file", "2 files".
fn n(count: usize, word: &str) -> String {
    format!("{count} {word}{}", if count == 1 { "" } else { "s" })
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// `--example`: the README's main-job command, on a fresh clone.
fn run_example(
    root: &Path,
    scratch: &Path,
    templates: PathBuf,
    diff: bool,
    force: bool,
    verify: Option<crate::verify::SchemaSource>,
) -> Result<ExitCode> {
    write_throwaway_keys(scratch)?;
    eprintln!(
        "example: .github/tests/public.yaml with a throwaway age key and fake credentials in {}",
        scratch.display()
    );
    let job = Job {
        config: root.join(".github/tests/public.yaml"),
        nodes: root.join(".github/tests/nodes.yaml"),
        key_dir: scratch.to_owned(),
        out: scratch.to_owned(),
        templates,
        diff,
        force,
        verify,
    };
    let code = configure(&job)?;
    if code == ExitCode::SUCCESS && !diff {
        eprintln!(
            "example: the rendered repository is in {}",
            scratch.display()
        );
    }
    Ok(code)
}

/// A throwaway age key (mode 0600) and fake deploy key, push token and tunnel credentials in
/// `dir`, each only if absent: kept between runs, so a second run shows that nothing churns.
pub fn write_throwaway_keys(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let age_key = dir.join(render::AGE_KEY_FILE);
    if !age_key.exists() {
        crypto::new_age_key_file(&age_key)?;
    }
    let fakes = [
        (
            render::DEPLOY_KEY_FILE,
            "-----BEGIN OPENSSH PRIVATE KEY-----\nexample placeholder, not a key\n-----END OPENSSH PRIVATE KEY-----\n",
        ),
        (
            render::PUSH_TOKEN_FILE,
            "0123456789abcdef0123456789abcdef\n",
        ),
        (
            render::TUNNEL_FILE,
            "{\"AccountTag\":\"example-account\",\"TunnelSecret\":\"ZXhhbXBsZS1zZWNyZXQ=\",\"TunnelID\":\"00000000-0000-4000-8000-000000000000\"}\n",
        ),
    ];
    for (name, text) in fakes {
        let path = dir.join(name);
        if !path.exists() {
            crate::init::write_new_private(&path, text.as_bytes())?;
        }
    }
    Ok(())
}

/// Keys and encryption, from `crates/secrets`.
pub mod crypto {
    use std::path::Path;

    use anyhow::{Context, Result};

    /// Creates an age key file (mode 0600); never overwrites an existing one.
    pub fn new_age_key_file(path: &Path) -> Result<()> {
        let identity = secrets::Identity::generate()?;
        let created = secrets::Clock::System.rfc3339();
        secrets::write_new_key_file(path, &secrets::KeyFile::new(&identity, &created))
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(())
    }

    /// Makes the age recipient templates see (`age_key('public')`) the one derived from the
    /// secret key of `age.key`, never its `# public key:` comment: a comment naming another
    /// key would have every secret encrypted to that key. A comment that disagrees is an error
    /// naming both public keys (the secret key is never printed).
    pub fn bind_age_key(
        inputs: &mut render::Inputs,
        key_dir: &Path,
    ) -> std::result::Result<(), Box<schema::Diagnostic>> {
        let Some(private) = inputs.age_private_key.as_deref() else {
            return Ok(());
        };
        let path = key_dir.join(render::AGE_KEY_FILE);
        let error = |message: String, help: &str| {
            Box::new(
                schema::Diagnostic::error("configure::age_key", "", message)
                    .at(Some(schema::Location::new(&path, 1, 1, 1)))
                    .with_help(help),
            )
        };
        let derived = match secrets::Identity::parse(private) {
            Ok(identity) => identity.recipient().to_string(),
            Err(e) => {
                return Err(error(
                    format!("{}: {}", render::AGE_KEY_FILE, e.message()),
                    e.help()
                        .unwrap_or("run `cargo xtask init` to create a new key file"),
                ));
            }
        };
        if let Some(comment) = inputs.age_public_key.as_deref()
            && comment != derived
        {
            return Err(error(
                format!(
                    "{}: the `# public key:` line says {comment}, but the secret key in the file belongs to {derived}; secrets would be encrypted to a key this file cannot open",
                    render::AGE_KEY_FILE
                ),
                "the public key is always derived from the secret key: correct the comment to that key, or delete the line and let `cargo xtask init` write a fresh key file",
            ));
        }
        inputs.age_public_key = Some(derived);
        Ok(())
    }

    /// Seals with sops + age, the creation rules of the rendered `.sops.yaml`, and the
    /// identities of `age_key` (to open the previous version and keep it when unchanged).
    ///
    /// The rendered `.sops.yaml` comes from templates a pull request may override: every
    /// creation rule must encrypt to exactly the recipient of `age_key`'s (first) secret key,
    /// or nothing is sealed.
    pub fn sealer(sops_yaml: Option<&[u8]>, age_key: &Path) -> Result<Box<dyn render::Sealer>> {
        let identities = secrets::load_identities_from(age_key)
            .map_err(|e| anyhow::anyhow!("{}: {e}", age_key.display()))?;
        let Some(own) = identities.first().map(secrets::Identity::recipient) else {
            anyhow::bail!("{}: has no age secret key", age_key.display());
        };
        let config = match sops_yaml {
            Some(bytes) => {
                let text =
                    std::str::from_utf8(bytes).context("the rendered .sops.yaml is not UTF-8")?;
                let config = secrets::SopsConfig::parse(text)
                    .map_err(|e| anyhow::anyhow!(".sops.yaml (rendered): {e}"))?;
                config
                    .require_recipients(&[own])
                    .map_err(|e| anyhow::anyhow!(".sops.yaml (rendered): {e}"))?;
                Some(config)
            }
            None => None,
        };
        Ok(Box::new(SopsSealer { config, identities }))
    }

    struct SopsSealer {
        config: Option<secrets::SopsConfig>,
        identities: Vec<secrets::Identity>,
    }

    impl render::Sealer for SopsSealer {
        fn seal(
            &self,
            path: &str,
            plaintext: &[u8],
            previous: Option<&[u8]>,
        ) -> std::result::Result<Vec<u8>, String> {
            let config = self.config.as_ref().ok_or(
                "no .sops.yaml was rendered, so there are no creation rules to encrypt with",
            )?;
            let text = std::str::from_utf8(plaintext)
                .map_err(|_| "the rendered secret is not UTF-8".to_owned())?;
            let previous = previous
                .and_then(|p| std::str::from_utf8(p).ok())
                .map(|text| secrets::Previous {
                    text,
                    identities: &self.identities,
                });
            let sealed =
                secrets::encrypt(path, text, config, previous).map_err(|e| e.to_string())?;
            // Whatever the creation rule says, nothing but the object's identity may stay in
            // plaintext in a `*.sops.*` file (a `stringdata:` typo, or a rule whose regex
            // matches nothing, would otherwise commit the secret in the clear).
            let exposed =
                secrets::plaintext_outside_identity(&sealed).map_err(|e| e.to_string())?;
            if !exposed.is_empty() {
                return Err(format!(
                    "{} would be written in plaintext: the creation rule of .sops.yaml does not encrypt {}; only {} may stay unencrypted in a sops file (rename the key to `data`/`stringData`, or fix `encrypted_regex`)",
                    exposed
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if exposed.len() == 1 { "it" } else { "them" },
                    secrets::IDENTITY_KEYS.join(", ")
                ));
            }
            Ok(sealed.into_bytes())
        }
    }
}
