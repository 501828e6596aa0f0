//! The output stage end to end: render → plan → apply on a real directory.
//!
//! Idempotence (a second run leaves every byte alone, secrets included), the prune rules
//! (stale files removed, hand-edited ones kept, user files never touched), conflicts, `--diff`,
//! and interruption at every filesystem operation. The tests run on a small fixture template
//! tree written here and on the real templates with `.github/tests/{public,private}.yaml` (which
//! grow stronger as templates land).
//!
//! Secrets are sealed by `TestSealer`, a stand-in with the contract of the real sealer (keeps the
//! previous bytes when the plaintext is unchanged, never emits the plaintext); the real one
//! (sops + age, `crates/secrets`) is exercised by the xtask tests that run `cargo xtask configure`.

#![allow(clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use render::{Action, ApplyError, ApplyOptions, Inputs, PlanOptions, Rendered, Sealer};
use sha2::{Digest, Sha256};

/// Seals as `SEALED:<nonce>:<hex of plaintext XOR sha256 keystream>`; reuses `previous` when it
/// opens to the same plaintext, like the real sealer.
struct TestSealer;

static NONCE: AtomicU64 = AtomicU64::new(1);

fn keystream(nonce: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter = 0u64;
    while out.len() < len {
        out.extend(Sha256::digest(format!("{nonce}:{counter}")));
        counter += 1;
    }
    out.truncate(len);
    out
}

fn open(sealed: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(sealed).ok()?;
    let rest = text.strip_prefix("SEALED:")?;
    let (nonce, hex) = rest.trim_end().split_once(':')?;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let ks = keystream(nonce, bytes.len());
    Some(bytes.iter().zip(ks).map(|(b, k)| b ^ k).collect())
}

impl Sealer for TestSealer {
    fn seal(
        &self,
        _path: &str,
        plaintext: &[u8],
        previous: Option<&[u8]>,
    ) -> Result<Vec<u8>, String> {
        if let Some(prev) = previous
            && open(prev).as_deref() == Some(plaintext)
        {
            return Ok(prev.to_vec());
        }
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            NONCE.fetch_add(1, Ordering::Relaxed)
        );
        let ks = keystream(&nonce, plaintext.len());
        let hex: String = plaintext
            .iter()
            .zip(ks)
            .map(|(b, k)| format!("{:02x}", b ^ k))
            .collect();
        Ok(format!("SEALED:{nonce}:{hex}\n").into_bytes())
    }
}

/// A sealer that must not be called.
struct NoSealer;

impl Sealer for NoSealer {
    fn seal(&self, path: &str, _: &[u8], _: Option<&[u8]>) -> Result<Vec<u8>, String> {
        Err(format!("no secrets expected, got {path}"))
    }
}

const KEEP: PlanOptions = PlanOptions { force: false };
const RUN: ApplyOptions = ApplyOptions { crash_after: None };

/// The fixture templates: plain files, a secret, a nested toggled directory, a copied file.
fn fixture_templates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files: &[(&str, &str)] = &[
        (
            "config/.sops.yaml.j2",
            "creation_rules:\n  - age: #{ 'age1fixture' | yaml }#\n",
        ),
        (
            "config/kubernetes/apps/default/kustomization.yaml.j2",
            "resources:\n  - ./app.yaml\n#% if extra %#\n  - ./extra/ks.yaml\n#% endif %#\n",
        ),
        (
            "config/kubernetes/apps/default/app.yaml.j2",
            "name: #{ name | yaml }#\n",
        ),
        (
            "config/kubernetes/apps/default/extra/ks.yaml.j2",
            "#% if extra %#\nextra: #{ name | yaml }#\n#% endif %#\n",
        ),
        (
            "config/kubernetes/apps/default/extra/deep/more.yaml.j2",
            "#% if extra %#\nmore: 1\n#% endif %#\n",
        ),
        (
            "config/kubernetes/flux/cluster-secrets.sops.yaml.j2",
            "stringData:\n  token: #{ token | yaml }#\n",
        ),
        (
            "config/kubernetes/apps/default/alt/only-b.yaml.j2",
            "#% if not extra %#\nalt: #{ name | yaml }#\n#% endif %#\n",
        ),
        (
            "config/talos/talsecret.sops.yaml.j2",
            "secret: #{ talos | yaml }#\n",
        ),
        ("config/scripts/notes.txt", "copied as is {{ }}\n"),
    ];
    for (path, text) in files {
        let abs = dir.path().join(path);
        std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
        std::fs::write(abs, text).unwrap();
    }
    dir
}

fn fixture_render(templates: &Path, ctx: serde_json::Value) -> Rendered {
    render::render_templates(templates, &ctx, &Inputs::default()).unwrap()
}

fn ctx_a() -> serde_json::Value {
    serde_json::json!({"name": "alpha", "extra": true, "token": "PLAINTEXT-TOKEN-A", "talos": "PLAINTEXT-TALOS-1"})
}

/// Changes a plain file and a secret, keeps the other secret, toggles the nested directory off
/// and another one on.
fn ctx_b() -> serde_json::Value {
    serde_json::json!({"name": "beta", "extra": false, "token": "PLAINTEXT-TOKEN-B", "talos": "PLAINTEXT-TALOS-1"})
}

const PLAINTEXTS: &[&str] = &[
    "PLAINTEXT-TOKEN-A",
    "PLAINTEXT-TOKEN-B",
    "PLAINTEXT-TALOS-1",
];

/// Every regular file under `root` (relative path → bytes).
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Every directory under `root`, relative.
fn dirs(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                out.push(
                    e.path()
                        .strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
                walk(base, &e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn assert_no_plaintext(root: &Path, secrets: &[&str]) {
    for (path, bytes) in snapshot(root) {
        let text = String::from_utf8_lossy(&bytes);
        for s in secrets {
            assert!(!text.contains(s), "plaintext secret {s:?} found in {path}");
        }
    }
}

fn configure(root: &Path, rendered: Rendered) -> render::Plan {
    let plan = render::plan(root, rendered, &TestSealer, &KEEP).unwrap();
    render::apply(&plan, &RUN).unwrap();
    plan
}

fn actions(plan: &render::Plan) -> BTreeMap<String, Action> {
    plan.files()
        .iter()
        .map(|f| (f.path.clone(), f.action))
        .collect()
}

#[test]
fn second_run_leaves_every_byte_identical_fixture() {
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    let first = configure(out.path(), fixture_render(templates.path(), ctx_a()));
    assert_eq!(first.counts().created, 8);
    assert_eq!(first.counts().secrets_changed, 2);
    let before = snapshot(out.path());
    assert!(before.contains_key(render::MANIFEST_FILE));
    let manifest_mtime = std::fs::metadata(out.path().join(render::MANIFEST_FILE))
        .unwrap()
        .modified()
        .unwrap();

    let second = render::plan(
        out.path(),
        fixture_render(templates.path(), ctx_a()),
        &TestSealer,
        &KEEP,
    )
    .unwrap();
    assert!(second.is_noop(), "{:?}", actions(&second));
    assert_eq!(second.counts().unchanged, 8);
    assert_eq!(second.counts().secrets_unchanged, 2);
    assert_eq!(second.diff(), "");
    render::apply(&second, &RUN).unwrap();
    assert_eq!(snapshot(out.path()), before);
    // Not even rewritten with the same bytes.
    let mtime = std::fs::metadata(out.path().join(render::MANIFEST_FILE))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(mtime, manifest_mtime);
}

#[test]
fn second_run_leaves_every_byte_identical_real_templates() {
    for config in ["public", "private"] {
        let out = tempfile::tempdir().unwrap();
        configure(out.path(), common::render_test_config(config));
        let before = snapshot(out.path());
        let plan = render::plan(
            out.path(),
            common::render_test_config(config),
            &TestSealer,
            &KEEP,
        )
        .unwrap();
        assert!(plan.is_noop(), "{config}: {:?}", actions(&plan));
        render::apply(&plan, &RUN).unwrap();
        assert_eq!(snapshot(out.path()), before, "{config}");
        eprintln!("{config}: {} files rendered and stable", before.len());
    }
}

#[test]
fn secrets_reach_the_disk_only_sealed() {
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    configure(out.path(), fixture_render(templates.path(), ctx_a()));
    assert_no_plaintext(out.path(), PLAINTEXTS);
    let sealed =
        std::fs::read(out.path().join("kubernetes/flux/cluster-secrets.sops.yaml")).unwrap();
    assert_eq!(
        open(&sealed).unwrap(),
        b"stringData:\n  token: \"PLAINTEXT-TOKEN-A\"\n"
    );
}

#[test]
fn changed_secret_is_resealed_and_unchanged_one_keeps_its_bytes() {
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    configure(out.path(), fixture_render(templates.path(), ctx_a()));
    let talos_before = std::fs::read(out.path().join("talos/talsecret.sops.yaml")).unwrap();
    let flux_before =
        std::fs::read(out.path().join("kubernetes/flux/cluster-secrets.sops.yaml")).unwrap();
    let plan = configure(out.path(), fixture_render(templates.path(), ctx_b()));
    let a = actions(&plan);
    assert_eq!(a["talos/talsecret.sops.yaml"], Action::Unchanged);
    assert_eq!(
        a["kubernetes/flux/cluster-secrets.sops.yaml"],
        Action::Update
    );
    assert_eq!(
        std::fs::read(out.path().join("talos/talsecret.sops.yaml")).unwrap(),
        talos_before
    );
    assert_ne!(
        std::fs::read(out.path().join("kubernetes/flux/cluster-secrets.sops.yaml")).unwrap(),
        flux_before
    );
    assert_no_plaintext(out.path(), PLAINTEXTS);
}

#[test]
fn toggled_off_outputs_are_removed_with_their_empty_directories() {
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    configure(out.path(), fixture_render(templates.path(), ctx_a()));
    assert!(
        out.path()
            .join("kubernetes/apps/default/extra/deep/more.yaml")
            .exists()
    );
    let plan = configure(out.path(), fixture_render(templates.path(), ctx_b()));
    assert_eq!(plan.counts().removed, 2);
    assert!(!out.path().join("kubernetes/apps/default/extra").exists());
    assert!(out.path().join("kubernetes/apps/default/app.yaml").exists());
    // Gone from the manifest: turning it back on creates it again.
    let again = configure(out.path(), fixture_render(templates.path(), ctx_a()));
    assert_eq!(
        actions(&again)["kubernetes/apps/default/extra/ks.yaml"],
        Action::Create
    );
}

#[test]
fn user_files_next_to_rendered_files_survive() {
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    // A user file at the root, one beside rendered files, one in a directory that will lose
    // all its rendered files, and a README the templates never render.
    let user_files = [
        ("cluster.yaml", "mine\n"),
        ("kubernetes/apps/default/my-notes.md", "mine\n"),
        ("kubernetes/apps/default/extra/deep/keep.yaml", "mine\n"),
        ("README.md", "mine\n"),
    ];
    for (p, t) in user_files {
        std::fs::create_dir_all(out.path().join(p).parent().unwrap()).unwrap();
        std::fs::write(out.path().join(p), t).unwrap();
    }
    configure(out.path(), fixture_render(templates.path(), ctx_a()));
    configure(out.path(), fixture_render(templates.path(), ctx_b()));
    for (p, t) in user_files {
        assert_eq!(
            std::fs::read_to_string(out.path().join(p)).unwrap(),
            t,
            "{p}"
        );
    }
    // The rendered file next to the user's one went, the directory holding it stayed.
    assert!(
        !out.path()
            .join("kubernetes/apps/default/extra/deep/more.yaml")
            .exists()
    );
    assert!(
        !out.path()
            .join("kubernetes/apps/default/extra/ks.yaml")
            .exists()
    );
    let manifest = std::fs::read_to_string(out.path().join(render::MANIFEST_FILE)).unwrap();
    assert!(!manifest.contains("my-notes") && !manifest.contains("cluster.yaml"));
}

#[test]
fn hand_edited_stale_file_is_kept_with_a_warning_and_then_left_alone() {
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    configure(out.path(), fixture_render(templates.path(), ctx_a()));
    let edited = out.path().join("kubernetes/apps/default/extra/ks.yaml");
    std::fs::write(&edited, "extra: edited by hand\n").unwrap();
    let plan = configure(out.path(), fixture_render(templates.path(), ctx_b()));
    assert_eq!(
        actions(&plan)["kubernetes/apps/default/extra/ks.yaml"],
        Action::Keep
    );
    assert_eq!(plan.counts().kept, 1);
    assert!(plan.warnings().iter().any(|d| {
        d.code == "render::kept"
            && d.message
                .starts_with("kubernetes/apps/default/extra/ks.yaml:")
    }));
    assert_eq!(
        std::fs::read_to_string(&edited).unwrap(),
        "extra: edited by hand\n"
    );
    // Its untouched sibling in the directory below went; the directory with the kept file stays.
    assert!(
        !out.path()
            .join("kubernetes/apps/default/extra/deep")
            .exists()
    );
    // From now on it is the user's: not in the manifest, no further warning.
    let next = configure(out.path(), fixture_render(templates.path(), ctx_b()));
    assert!(next.warnings().is_empty());
    assert!(
        next.files()
            .iter()
            .all(|f| f.path != "kubernetes/apps/default/extra/ks.yaml")
    );
    assert!(edited.exists());
    // Rendering it again would overwrite a file configure does not own: a conflict.
    let plan = render::plan(
        out.path(),
        fixture_render(templates.path(), ctx_a()),
        &TestSealer,
        &KEEP,
    )
    .unwrap();
    assert_eq!(
        actions(&plan)["kubernetes/apps/default/extra/ks.yaml"],
        Action::Conflict
    );
}

#[test]
fn hand_edited_rendered_file_is_a_conflict_and_nothing_is_written() {
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    configure(out.path(), fixture_render(templates.path(), ctx_a()));
    let app = out.path().join("kubernetes/apps/default/app.yaml");
    std::fs::write(&app, "name: mine\n").unwrap();
    let before = snapshot(out.path());
    let plan = render::plan(
        out.path(),
        fixture_render(templates.path(), ctx_b()),
        &TestSealer,
        &KEEP,
    )
    .unwrap();
    assert_eq!(plan.counts().conflicts, 1);
    assert_eq!(plan.conflicts()[0].code, "render::conflict");
    assert!(
        plan.conflicts()[0]
            .help
            .as_deref()
            .unwrap()
            .contains("/overrides/kubernetes/apps/default/app.yaml.j2")
    );
    assert!(matches!(
        render::apply(&plan, &RUN),
        Err(ApplyError::Conflicts)
    ));
    assert_eq!(
        snapshot(out.path()),
        before,
        "a refused apply writes nothing at all"
    );

    // A file that was never ours, at a rendered path, is a conflict too.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(fresh.path().join("kubernetes/apps/default")).unwrap();
    std::fs::write(fresh.path().join("kubernetes/apps/default/app.yaml"), "x\n").unwrap();
    let plan = render::plan(
        fresh.path(),
        fixture_render(templates.path(), ctx_a()),
        &TestSealer,
        &KEEP,
    )
    .unwrap();
    assert_eq!(plan.counts().conflicts, 1);

    // --force overwrites, with a warning.
    let plan = render::plan(
        out.path(),
        fixture_render(templates.path(), ctx_b()),
        &TestSealer,
        &PlanOptions { force: true },
    )
    .unwrap();
    assert!(
        plan.warnings()
            .iter()
            .any(|d| d.code == "render::overwritten")
    );
    render::apply(&plan, &RUN).unwrap();
    assert_eq!(std::fs::read_to_string(&app).unwrap(), "name: \"beta\"\n");
}

#[test]
fn identical_file_without_manifest_is_adopted() {
    // `cargo xtask init` writes `.sops.yaml` before the first configure.
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    let rendered = fixture_render(templates.path(), ctx_a());
    std::fs::write(
        out.path().join(".sops.yaml"),
        &rendered.files[".sops.yaml"].contents,
    )
    .unwrap();
    let plan = configure(out.path(), rendered);
    assert_eq!(actions(&plan)[".sops.yaml"], Action::Unchanged);
    let manifest = std::fs::read_to_string(out.path().join(render::MANIFEST_FILE)).unwrap();
    assert!(manifest.contains("\".sops.yaml\""));
}

#[test]
fn diff_shows_changes_hides_secrets_and_writes_nothing() {
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    configure(out.path(), fixture_render(templates.path(), ctx_a()));
    let before = snapshot(out.path());
    let plan = render::plan(
        out.path(),
        fixture_render(templates.path(), ctx_b()),
        &TestSealer,
        &KEEP,
    )
    .unwrap();
    let diff = plan.diff();
    assert!(
        diff.contains(
            "--- a/kubernetes/apps/default/app.yaml\n+++ b/kubernetes/apps/default/app.yaml\n@@ -1 +1 @@\n-name: \"alpha\"\n+name: \"beta\"\n"
        ),
        "{diff}"
    );
    assert!(diff.contains(
        "# kubernetes/flux/cluster-secrets.sops.yaml: secret changed (values not shown)\n"
    ));
    assert!(diff.contains(
        "# kubernetes/apps/default/extra/ks.yaml: no longer rendered; would be removed\n"
    ));
    assert!(
        !diff.contains("talsecret"),
        "unchanged files are not shown:\n{diff}"
    );
    for s in PLAINTEXTS {
        assert!(!diff.contains(s), "{s} leaked into the diff");
    }
    // Planning is read-only.
    assert_eq!(snapshot(out.path()), before);

    // On an empty directory, new files diff against /dev/null.
    let empty = tempfile::tempdir().unwrap();
    let plan = render::plan(
        empty.path(),
        fixture_render(templates.path(), ctx_a()),
        &TestSealer,
        &KEEP,
    )
    .unwrap();
    let diff = plan.diff();
    assert!(diff.contains("--- /dev/null\n+++ b/kubernetes/apps/default/app.yaml\n"));
    assert!(diff.contains("# talos/talsecret.sops.yaml: new secret (values not shown)\n"));
    assert!(snapshot(empty.path()).is_empty());
}

#[test]
fn a_failing_seal_stops_everything() {
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    let errs = render::plan(
        out.path(),
        fixture_render(templates.path(), ctx_a()),
        &NoSealer,
        &KEEP,
    )
    .unwrap_err();
    // Both secrets are reported.
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().all(|d| d.code == "render::seal"));
    assert!(snapshot(out.path()).is_empty());
}

#[test]
fn a_failing_template_renders_nothing() {
    let templates = fixture_templates();
    std::fs::write(
        templates.path().join("config/broken.yaml.j2"),
        "#{ undefined_key }#\n",
    )
    .unwrap();
    assert!(render::render_templates(templates.path(), &ctx_a(), &Inputs::default()).is_err());
}

#[cfg(unix)]
#[test]
fn never_writes_through_symlinks_or_outside_the_root() {
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), out.path().join("talos")).unwrap();
    let errs = render::plan(
        out.path(),
        fixture_render(templates.path(), ctx_a()),
        &TestSealer,
        &KEEP,
    )
    .unwrap_err();
    assert!(
        errs.iter()
            .any(|d| d.code == "render::in_the_way" && d.message.contains("symlink"))
    );
    assert!(snapshot(elsewhere.path()).is_empty());

    // A manifest (from git, edited by someone) listing paths outside the root is refused.
    let out = tempfile::tempdir().unwrap();
    std::fs::write(
        out.path().join(render::MANIFEST_FILE),
        r#"{"version":1,"files":{"../victim":{"sha256":"00","source":"x"}}}"#,
    )
    .unwrap();
    let errs = render::plan(
        out.path(),
        fixture_render(templates.path(), ctx_a()),
        &TestSealer,
        &KEEP,
    )
    .unwrap_err();
    assert_eq!(errs[0].code, "render::manifest");
}

#[cfg(unix)]
#[test]
fn modes_follow_the_templates() {
    use std::os::unix::fs::PermissionsExt;
    let templates = fixture_templates();
    let out = tempfile::tempdir().unwrap();
    configure(out.path(), fixture_render(templates.path(), ctx_a()));
    let notes = out.path().join("scripts/notes.txt");
    assert_eq!(
        std::fs::metadata(&notes).unwrap().permissions().mode() & 0o111,
        0
    );
    std::fs::set_permissions(
        templates.path().join("config/scripts/notes.txt"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let plan = configure(out.path(), fixture_render(templates.path(), ctx_a()));
    assert_eq!(actions(&plan)["scripts/notes.txt"], Action::Update);
    assert_ne!(
        std::fs::metadata(&notes).unwrap().permissions().mode() & 0o111,
        0
    );
}

/// Interrupts the A → B run after every possible number of filesystem operations. After each
/// interruption: every path holds its A or its B version (never a mix or a partial file), and no
/// plaintext secret is anywhere. Then a normal run — of B (finishing the job) or of A (the user
/// went back) — reaches exactly the tree an uninterrupted run gives, without warnings or
/// conflicts: the journal lets it recognise every file the interrupted run wrote.
#[test]
fn interrupted_at_every_operation_the_tree_stays_whole() {
    let templates = fixture_templates();
    let render_a = || fixture_render(templates.path(), ctx_a());
    let render_b = || fixture_render(templates.path(), ctx_b());
    // The references: A, and A then B, without interruption.
    let reference_a = tempfile::tempdir().unwrap();
    configure(reference_a.path(), render_a());
    let reference_b = tempfile::tempdir().unwrap();
    configure(reference_b.path(), render_a());
    configure(reference_b.path(), render_b());
    let tree_b = snapshot(reference_b.path());
    assert_ne!(
        snapshot(reference_a.path()).keys().collect::<Vec<_>>(),
        tree_b.keys().collect::<Vec<_>>()
    );

    let mut crashes = 0;
    for n in 0.. {
        let mut finished = false;
        for (recover_to, reference) in [(ctx_b(), &reference_b), (ctx_a(), &reference_a)] {
            let out = tempfile::tempdir().unwrap();
            configure(out.path(), render_a());
            let start = snapshot(out.path());
            let plan = render::plan(out.path(), render_b(), &TestSealer, &KEEP).unwrap();
            match render::apply(
                &plan,
                &ApplyOptions {
                    crash_after: Some(n),
                },
            ) {
                Ok(()) => {
                    finished = true;
                    break;
                }
                Err(ApplyError::Crashed) => crashes += 1,
                Err(other) => panic!("{other:?}"),
            }
            let now = snapshot(out.path());
            for (path, bytes) in &now {
                if path.ends_with(".render-tmp") || path == render::MANIFEST_FILE {
                    continue;
                }
                let is_a = start.get(path) == Some(bytes);
                let is_b = tree_b.contains_key(path) && same(path, bytes, &tree_b[path]);
                assert!(
                    is_a || is_b,
                    "after {n} operations {path} is neither version"
                );
            }
            for path in start.keys().filter(|p| tree_b.contains_key(*p)) {
                assert!(
                    now.contains_key(path),
                    "after {n} operations {path} is missing"
                );
            }
            assert_no_plaintext(out.path(), PLAINTEXTS);

            let next = render::plan(
                out.path(),
                fixture_render(templates.path(), recover_to.clone()),
                &TestSealer,
                &KEEP,
            )
            .unwrap();
            assert!(
                next.conflicts().is_empty(),
                "after {n}: {:?}",
                next.conflicts()
            );
            assert!(
                next.warnings().is_empty(),
                "after {n}: {:?}",
                next.warnings()
            );
            render::apply(&next, &RUN).unwrap();
            let got = snapshot(out.path());
            let want = snapshot(reference.path());
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "after {n}"
            );
            for (path, bytes) in &want {
                if path != render::MANIFEST_FILE {
                    assert!(same(path, &got[path], bytes), "after {n}: {path}");
                }
            }
            assert_eq!(dirs(out.path()), dirs(reference.path()), "after {n}");
            assert_no_plaintext(out.path(), PLAINTEXTS);
            let idle = render::plan(
                out.path(),
                fixture_render(templates.path(), recover_to),
                &TestSealer,
                &KEEP,
            )
            .unwrap();
            assert!(idle.is_noop(), "after {n}");
        }
        if finished {
            break;
        }
    }
    assert!(crashes > 30, "only {crashes} interruptions were exercised");
    eprintln!("{crashes} interruptions exercised");
}

/// Same contents: equal bytes, or for secrets (sealed with fresh nonces) equal plaintext.
fn same(path: &str, a: &[u8], b: &[u8]) -> bool {
    if render::is_secret(path) {
        open(a).is_some() && open(a) == open(b)
    } else {
        a == b
    }
}
