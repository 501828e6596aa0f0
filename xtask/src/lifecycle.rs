//! `cargo xtask reset` and `cargo xtask tidy`: the two commands that take things away.
//!
//! Both show what they will do and ask first (`--yes` for scripts), and neither ever touches a
//! path it does not own:
//! - `reset` removes exactly the files the render manifest lists with their recorded bytes (what
//!   `configure` wrote and nobody edited since), the directories that leaves empty, and the
//!   manifest. A listed file edited by hand is kept with a warning. Files not in the manifest
//!   are never looked at.
//! - `tidy` (once a repository is configured) moves the template machinery — templates, the
//!   samples and your `cluster.yaml`/`nodes.yaml`, the template's own CI and docs — into
//!   `.private/tidy-<time>/` (git-ignored), keeping what Flux, the bootstrap and the day-2
//!   commands need: the Rust workspace stays, so `cargo xtask talos|bootstrap|verify|secrets`
//!   and `ai-gateway status` (which runs the e2e crate's binary) keep working.
//!   Nothing is deleted: moving the folder's contents back undoes it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::{report, util};

pub const RESET_HELP: &str = "\
cargo xtask reset [--root DIR] [--yes]

Removes what `cargo xtask configure` rendered: exactly the files listed in .render-manifest.json
whose contents are still the ones configure wrote, the directories that leaves empty, and the
manifest. A listed file you edited is kept (with a warning); anything not listed is never
touched. Shows the list and asks before removing anything.

Options:
  --root DIR   the repository (default: its root, found from any subdirectory)
  --yes        do not ask
";

pub const TIDY_HELP: &str = "\
cargo xtask tidy [--root DIR] [--yes]

For a configured repository: moves the template machinery (templates/, the samples,
cluster.yaml/nodes.yaml, the template's CI, tests and developer docs) into .private/tidy-<time>/,
which git ignores. The Rust workspace stays, for the cluster commands (talos, bootstrap, verify,
secrets, ai-gateway status); `configure` needs the templates back. Nothing is deleted; move the
folder's contents back to undo it. Shows the list and asks first.
Renovate then bumps the rendered files instead of the templates: tidy rewrites the
`ignorePaths` line of .renovaterc.json5 (the original is kept in the same folder).

Options:
  --root DIR   the repository (default: its root, found from any subdirectory)
  --yes        do not ask
";

/// Paths `tidy` moves away when present, relative to the repository root. The Rust workspace
/// (`Cargo.*`, `rust-toolchain.toml`, `.cargo`, `crates`, `xtask`, `e2e`, `target`) and
/// `tools.toml` stay: the day-2 commands (`talos`, `bootstrap`, `verify`, `secrets`,
/// `ai-gateway status`) run from them, and the workspace does not load with a member missing.
pub const MACHINERY: &[&str] = &[
    "templates",
    ".ci",
    ".schemas",
    "cluster.sample.yaml",
    "nodes.sample.yaml",
    "cluster.yaml",
    "nodes.yaml",
    ".github/tests",
    ".github/workflows/ci.yaml",
    ".github/workflows/e2e.yaml",
    ".github/workflows/release.yaml",
    "docs/ARCHITECTURE.md",
    "docs/e2e.md",
    "docs/verify.md",
    "docs/secrets.md",
    "CHANGELOG.md",
    "dist",
];

struct Flags {
    root: PathBuf,
    yes: bool,
}

fn flags(args: &mut lexopt::Parser, help: &str) -> Result<Option<Flags>> {
    let mut f = Flags {
        root: util::root_or_cwd(),
        yes: false,
    };
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("root") => f.root = args.value()?.into(),
            lexopt::Arg::Long("yes") | lexopt::Arg::Short('y') => f.yes = true,
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                print!("{help}");
                return Ok(None);
            }
            other => return Err(util::unexpected(&other, help)),
        }
    }
    Ok(Some(f))
}

pub fn run_reset(args: &mut lexopt::Parser) -> Result<ExitCode> {
    let Some(f) = flags(args, RESET_HELP)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut stdin = std::io::stdin().lock();
    reset(&f.root, f.yes, &mut stdin, std::io::stdin().is_terminal())
}

pub fn run_tidy(args: &mut lexopt::Parser) -> Result<ExitCode> {
    let Some(f) = flags(args, TIDY_HELP)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let mut stdin = std::io::stdin().lock();
    tidy(
        &f.root,
        f.yes,
        &mut stdin,
        std::io::stdin().is_terminal(),
        unix_time(),
    )
}

/// The whole of `reset`; `answers` stands for the terminal in tests.
pub fn reset(
    root: &Path,
    yes: bool,
    answers: &mut dyn BufRead,
    interactive: bool,
) -> Result<ExitCode> {
    if !root.join(render::MANIFEST_FILE).is_file() {
        bail!(
            "{} has no {}: nothing was rendered there by `cargo xtask configure`, so there is nothing to reset",
            root.display(),
            render::MANIFEST_FILE
        );
    }
    // Planning an empty render turns every manifest entry into "no longer rendered": removed when
    // unchanged and some template could have written it, kept otherwise. No secret is sealed, so
    // no key is needed. The templates say which paths are removable at all.
    let templates = render::template_outputs(&root.join("templates")).map_err(|diags| {
        report::print(&diags, root);
        anyhow::anyhow!(
            "cannot reset: reset removes only files a template could have written, and it needs templates/ to know which"
        )
    })?;
    let _lock = render::lock(root).map_err(|d| anyhow::anyhow!("{}", d.headline()))?;
    let plan = render::plan(
        root,
        templates,
        &NoSealer,
        &render::PlanOptions { force: false },
    )
    .map_err(|diags| {
        report::print(&diags, root);
        anyhow::anyhow!("cannot reset: the render manifest or a listed path is not usable")
    })?;
    let remove: Vec<&str> = plan
        .files()
        .iter()
        .filter(|f| f.action == render::Action::Remove)
        .map(|f| f.path.as_str())
        .collect();
    report::print(plan.warnings(), root);
    if remove.is_empty() {
        eprintln!(
            "nothing to remove: no file listed in {} is left with the bytes configure wrote",
            render::MANIFEST_FILE
        );
    } else {
        eprintln!(
            "reset removes {} file(s) rendered by configure, and {}:",
            remove.len(),
            render::MANIFEST_FILE
        );
        for p in &remove {
            eprintln!("  {}", schema::terminal_safe(p));
        }
        if !confirm(yes, answers, interactive)? {
            eprintln!("nothing removed");
            return Ok(ExitCode::from(1));
        }
    }
    render::apply(&plan, &render::ApplyOptions { crash_after: None }).map_err(|e| match e {
        render::ApplyError::Io(d) => anyhow::anyhow!("{}", d.headline()),
        other => anyhow::anyhow!("{other:?}"),
    })?;
    // Every entry is gone or handed over to the user; the manifest has nothing left to say.
    let manifest = root.join(render::MANIFEST_FILE);
    std::fs::remove_file(&manifest)
        .with_context(|| format!("cannot remove {}", manifest.display()))?;
    eprintln!(
        "reset: removed {} file(s), kept {}",
        remove.len(),
        plan.warnings().len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The whole of `tidy`.
pub fn tidy(
    root: &Path,
    yes: bool,
    answers: &mut dyn BufRead,
    interactive: bool,
    now: u64,
) -> Result<ExitCode> {
    if !root.join(render::MANIFEST_FILE).is_file() {
        bail!(
            "{} is not configured yet (no {})\n  help: run `cargo xtask configure` first; tidy removes the tools configure needs",
            root.display(),
            render::MANIFEST_FILE
        );
    }
    // A path reached through a symlinked folder (`.github -> elsewhere`) is not ours to move.
    let present: Vec<&str> = MACHINERY
        .iter()
        .copied()
        .filter(|p| schema::repofile::check_no_symlink_under(root, Path::new(p)).is_ok())
        .filter(|p| std::fs::symlink_metadata(root.join(p)).is_ok())
        .collect();
    if present.is_empty() {
        eprintln!("nothing to tidy: the template machinery is already gone");
        return Ok(ExitCode::SUCCESS);
    }
    // `.private` may be committed as a symlink (a pull request): moving the machinery through it
    // would put the templates wherever it points.
    if schema::repofile::kind_of(&root.join(".private")).is_some_and(|k| k != "directory") {
        bail!(
            "{} is not a directory (a symlink?); tidy moves files only into a real .private/ folder\n  help: remove it and run tidy again",
            root.join(".private").display()
        );
    }
    let dest = root.join(".private").join(format!("tidy-{now}"));
    if dest.exists() {
        bail!(
            "{} already exists; run tidy again in a second",
            dest.display()
        );
    }
    eprintln!(
        "tidy moves the template machinery into {} (git-ignored; nothing is deleted):",
        rel(root, &dest)
    );
    for p in &present {
        eprintln!("  {p}");
    }
    // Renovate bumps the templates until now; afterwards the rendered files (see renovate.rs).
    let renovate = crate::renovate::plan(root);
    if let Some(line) = crate::renovate::describe(&renovate) {
        eprintln!("and {line}");
    }
    eprintln!(
        "afterwards `cargo xtask configure` needs the templates back; the cluster commands (talos, bootstrap, verify, secrets, ai-gateway status) stay. Keep .private/ to undo it"
    );
    if !confirm(yes, answers, interactive)? {
        eprintln!("nothing moved");
        return Ok(ExitCode::from(1));
    }
    for p in &present {
        let from = root.join(p);
        let to = dest.join(p);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::rename(&from, &to)
            .with_context(|| format!("cannot move {p} to {}", to.display()))?;
    }
    crate::renovate::apply(root, &dest, &renovate)?;
    // `.github/workflows` or `.github` may now be empty; remove empty parents we emptied.
    for p in &present {
        let mut dir = Path::new(p).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            let abs = root.join(d);
            if std::fs::read_dir(&abs).is_ok_and(|mut e| e.next().is_none()) {
                let _ = std::fs::remove_dir(&abs);
            }
            dir = d.parent();
        }
    }
    eprintln!(
        "tidy: moved {} path(s) to {}",
        present.len(),
        rel(root, &dest)
    );
    Ok(ExitCode::SUCCESS)
}

fn confirm(yes: bool, answers: &mut dyn BufRead, interactive: bool) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !interactive {
        bail!(
            "refusing to go on without confirmation: stdin is not a terminal\n  help: pass --yes to confirm non-interactively"
        );
    }
    eprint!("go on? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    answers.read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reset renders nothing, so nothing is ever sealed.
struct NoSealer;

impl render::Sealer for NoSealer {
    fn seal(&self, path: &str, _: &[u8], _: Option<&[u8]>) -> Result<Vec<u8>, String> {
        Err(format!("{path}: reset never encrypts"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Repo {
        root: PathBuf,
    }

    impl Repo {
        fn new(name: &str) -> Repo {
            let root =
                std::env::temp_dir().join(format!("xtask-lifecycle-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            Repo { root }
        }

        fn write(&self, rel: &str, text: &str) {
            let p = self.root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }

        fn exists(&self, rel: &str) -> bool {
            self.root.join(rel).exists()
        }

        fn read(&self, rel: &str) -> String {
            std::fs::read_to_string(self.root.join(rel)).unwrap()
        }

        /// Renders two plain files through the real output stage, so the manifest is genuine.
        fn configure(&self) {
            let mut files = std::collections::BTreeMap::new();
            for t in [
                "templates/config/kubernetes/apps/default/echo/ks.yaml.j2",
                "templates/config/talos/talenv.yaml.j2",
            ] {
                self.write(t, "x: 1\n");
            }
            let templates = render::template_outputs(&self.root.join("templates")).unwrap();
            for (path, text) in [
                (
                    "kubernetes/apps/default/echo/ks.yaml",
                    "kind: Kustomization\n",
                ),
                ("talos/talenv.yaml", "talosVersion: v1\n"),
            ] {
                files.insert(
                    path.to_owned(),
                    render::Output {
                        contents: text.as_bytes().to_vec(),
                        source: PathBuf::from(format!("templates/config/{path}.j2")),
                        executable: false,
                    },
                );
            }
            let plan = render::plan(
                &self.root,
                render::Rendered { files, ..templates },
                &NoSealer,
                &render::PlanOptions { force: false },
            )
            .unwrap();
            render::apply(&plan, &render::ApplyOptions { crash_after: None }).unwrap();
        }
    }

    impl Drop for Repo {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    fn no_input() -> std::io::Cursor<Vec<u8>> {
        std::io::Cursor::new(Vec::new())
    }

    #[test]
    fn reset_removes_exactly_the_manifest_and_keeps_user_files() {
        let repo = Repo::new("reset");
        repo.configure();
        repo.write("kubernetes/apps/default/echo/mine.yaml", "user: file\n");
        repo.write("notes.txt", "mine\n");
        // An edited rendered file is the user's now.
        repo.write("talos/talenv.yaml", "talosVersion: edited\n");
        let code = reset(&repo.root, true, &mut no_input(), false).unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        assert!(!repo.exists("kubernetes/apps/default/echo/ks.yaml"));
        assert!(
            repo.exists("kubernetes/apps/default/echo/mine.yaml"),
            "a user file beside rendered files must survive"
        );
        assert_eq!(repo.read("talos/talenv.yaml"), "talosVersion: edited\n");
        assert!(repo.exists("notes.txt"));
        assert!(!repo.exists(render::MANIFEST_FILE));
    }

    #[test]
    fn tidy_never_moves_through_a_symlinked_private_folder() {
        let repo = Repo::new("tidy-link");
        repo.configure();
        repo.write("xtask/Cargo.toml", "[package]\n");
        let elsewhere = Repo::new("tidy-elsewhere");
        std::os::unix::fs::symlink(&elsewhere.root, repo.root.join(".private")).unwrap();
        assert!(tidy(&repo.root, true, &mut no_input(), false, 1).is_err());
        assert!(repo.exists("xtask/Cargo.toml"));
        assert!(std::fs::read_dir(&elsewhere.root).unwrap().next().is_none());
    }

    #[test]
    fn tidy_never_moves_through_a_symlinked_folder() {
        let repo = Repo::new("tidy-through");
        repo.configure();
        let outside = Repo::new("tidy-outside");
        outside.write("workflows/ci.yaml", "on: push\n");
        outside.write("tests/keep.txt", "keep\n");
        std::os::unix::fs::symlink(&outside.root, repo.root.join(".github")).unwrap();
        let _ = tidy(&repo.root, true, &mut no_input(), false, 2);
        assert!(outside.exists("workflows/ci.yaml") && outside.exists("tests/keep.txt"));
    }

    #[test]
    fn reset_removes_emptied_directories_only() {
        let repo = Repo::new("reset-dirs");
        repo.configure();
        reset(&repo.root, true, &mut no_input(), false).unwrap();
        assert!(
            !repo.exists("kubernetes"),
            "directories left empty by reset go too"
        );
        assert!(repo.root.exists());
    }

    #[test]
    fn reset_asks_and_a_no_changes_nothing() {
        let repo = Repo::new("reset-ask");
        repo.configure();
        let mut answer = std::io::Cursor::new(b"n\n".to_vec());
        assert_eq!(
            reset(&repo.root, false, &mut answer, true).unwrap(),
            ExitCode::from(1)
        );
        assert!(repo.exists("talos/talenv.yaml") && repo.exists(render::MANIFEST_FILE));
        // Without a terminal and without --yes it refuses.
        assert!(reset(&repo.root, false, &mut no_input(), false).is_err());
        assert!(repo.exists("talos/talenv.yaml"));
    }

    #[test]
    fn reset_without_manifest_refuses() {
        let repo = Repo::new("reset-none");
        repo.write("kubernetes/x.yaml", "a: 1\n");
        assert!(reset(&repo.root, true, &mut no_input(), false).is_err());
        assert!(repo.exists("kubernetes/x.yaml"));
    }

    #[test]
    fn tidy_moves_machinery_keeps_flux_and_user_files() {
        let repo = Repo::new("tidy");
        repo.configure();
        for p in [
            "templates/config/a.yaml.j2",
            "Cargo.toml",
            "xtask/src/main.rs",
            "cluster.yaml",
            ".github/workflows/ci.yaml",
            ".github/tests/public.yaml",
        ] {
            repo.write(p, "x\n");
        }
        repo.write(".github/workflows/mine.yaml", "user workflow\n");
        repo.write(
            crate::renovate::CONFIG,
            include_str!("../../.renovaterc.json5"),
        );
        repo.write("kubernetes/apps/default/echo/mine.yaml", "user: file\n");
        let code = tidy(&repo.root, true, &mut no_input(), false, 42).unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        for p in [
            "templates",
            "cluster.yaml",
            ".github/workflows/ci.yaml",
            ".github/tests",
        ] {
            assert!(!repo.exists(p), "{p} should have moved");
            assert!(
                repo.exists(&format!(".private/tidy-42/{p}")),
                "{p} must be kept under .private"
            );
        }
        assert_eq!(repo.read(".private/tidy-42/cluster.yaml"), "x\n");
        // The workspace stays: `cargo xtask talos|bootstrap|ai-gateway status` still run.
        assert_eq!(repo.read("Cargo.toml"), "x\n");
        assert!(repo.exists("xtask/src/main.rs"));
        // Renovate now bumps the rendered files; the shipped config is kept to undo it.
        let renovate = repo.read(crate::renovate::CONFIG);
        assert!(renovate.contains(crate::renovate::AFTER_TIDY));
        assert!(!renovate.contains(crate::renovate::BEFORE_TIDY));
        assert!(
            repo.read(&format!(".private/tidy-42/{}", crate::renovate::CONFIG))
                .contains(crate::renovate::BEFORE_TIDY)
        );
        assert!(repo.exists(".github/workflows/mine.yaml"));
        assert!(repo.exists("kubernetes/apps/default/echo/ks.yaml"));
        assert!(repo.exists("kubernetes/apps/default/echo/mine.yaml"));
        assert!(repo.exists("talos/talenv.yaml"));
        assert!(repo.exists(render::MANIFEST_FILE));
    }

    #[test]
    fn tidy_needs_a_configured_repo_and_confirmation() {
        let repo = Repo::new("tidy-refuse");
        repo.write("templates/config/a.yaml.j2", "x\n");
        assert!(tidy(&repo.root, true, &mut no_input(), false, 1).is_err());
        repo.configure();
        let mut answer = std::io::Cursor::new(b"no\n".to_vec());
        assert_eq!(
            tidy(&repo.root, false, &mut answer, true, 1).unwrap(),
            ExitCode::from(1)
        );
        assert!(repo.exists("templates/config/a.yaml.j2"));
    }
}
