//! `cargo xtask bench --bounds`: the worst inputs each command accepts, timed as a user runs
//! them.
//!
//! Every repository file is untrusted, so each reader has a bound (bytes in, nodes and text
//! created, diagnostics listed). This generates inputs at and just past those bounds, shaped to be
//! as expensive as possible (the most keys, duplicate keys, alias bombs, one huge scalar, a
//! manifest full of forged entries), runs the real `xtask` binary on each as a child process, and
//! reports wall time from start to exit and the child's own peak resident memory (`VmHWM`, which
//! the child prints at exit when `XTASK_REPORT_PEAK` is set: exact, not sampled).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::configure;
use crate::util;

/// One generated case: what it is, the command, and the size of the hostile input.
struct Case {
    name: &'static str,
    args: Vec<String>,
    cwd: std::path::PathBuf,
    input_bytes: u64,
}

pub fn run_bounds(scratch: &Path) -> Result<String> {
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let cases = generate(scratch)?;
    let mut out = String::new();
    writeln!(
        out,
        "Bounds: the worst inputs each command accepts or refuses (child process, start to exit)\n"
    )?;
    writeln!(
        out,
        "| case | input | exit | wall | peak memory |\n|---|---:|---:|---:|---:|"
    )?;
    for case in cases {
        let started = Instant::now();
        let output = Command::new(&exe)
            .args(&case.args)
            .current_dir(&case.cwd)
            .env("XTASK_REPORT_PEAK", "1")
            .output()
            .with_context(|| format!("cannot run {}", case.name))?;
        let wall = started.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let peak = stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("xtask: peak memory: "))
            .and_then(|v| v.trim_end_matches(" KiB").parse::<u64>().ok())
            .map_or("?".to_owned(), |kib| {
                format!("{:.0} MiB", kib as f64 / 1024.0)
            });
        let exit = output
            .status
            .code()
            .map_or_else(|| format!("{}", output.status), |c| c.to_string());
        writeln!(
            out,
            "| {} | {:.1} MiB | {exit} | {} | {peak} |",
            case.name,
            case.input_bytes as f64 / (1 << 20) as f64,
            configure::ms(wall),
        )?;
    }
    Ok(out)
}

fn generate(scratch: &Path) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let write = |dir: &Path, name: &str, text: &str| -> Result<u64> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(name), text)?;
        Ok(text.len() as u64)
    };
    let config_max = schema::yaml::Limits::CONFIG.max_bytes;
    // A `validate` case: `text` as cluster.yaml, an empty nodes.yaml.
    let mut validate = |name: &'static str, dir_name: &str, text: &str| -> Result<()> {
        let dir = scratch.join(dir_name);
        let n = write(&dir, "cluster.yaml", text)?;
        write(&dir, "nodes.yaml", "nodes: []\n")?;
        cases.push(Case {
            name,
            args: vec!["validate".into()],
            cwd: dir,
            input_bytes: n,
        });
        Ok(())
    };

    // cluster.yaml: as many distinct keys as fit (each an unknown-key error).
    let mut text = String::new();
    let mut i = 0;
    while text.len() + 16 < config_max {
        let _ = writeln!(text, "k{i}: 1");
        i += 1;
    }
    validate(
        "validate: cluster.yaml of 1 MiB, every line an unknown key",
        "many-keys",
        &text,
    )?;

    // cluster.yaml: one key repeated to the byte limit (duplicate keys).
    let text = "a: 1\n".repeat(config_max / 5);
    validate(
        "validate: cluster.yaml of 1 MiB, one key repeated 200,000 times",
        "duplicates",
        &text,
    )?;

    // cluster.yaml: a string alias bomb just under the byte limit.
    let mut text = format!("a: &s \"{}\"\nb: [", "x".repeat(config_max / 2));
    while text.len() + 4 < config_max {
        text.push_str("*s,");
    }
    text.push_str("*s]\n");
    validate(
        "validate: string alias bomb (512 KiB aliased ~170,000 times)",
        "string-bomb",
        &text,
    )?;

    // cluster.yaml: a node alias bomb (billion laughs).
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..40 {
        let p = i - 1;
        let refs = vec![format!("*a{p}"); 10].join(", ");
        let _ = writeln!(text, "a{i}: &a{i} [{refs}]");
    }
    validate(
        "validate: node alias bomb (10^40 nodes)",
        "node-bomb",
        &text,
    )?;

    // A rendered tree: one ConfigMap at the manifest byte limit, and one a little under it.
    let manifests_max = schema::yaml::Limits::MANIFESTS.max_bytes;
    for (name, size) in [
        (
            "verify: one ConfigMap of 1.3 MiB (one key per line)",
            1_300_000,
        ),
        (
            "verify: one ConfigMap just under the 16 MiB file limit",
            manifests_max - 4096,
        ),
    ] {
        let dir = scratch.join(format!("tree-{size}"));
        let app = dir.join("kubernetes/apps/default");
        let mut text =
            String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n");
        let mut i = 0;
        while text.len() + 40 < size {
            let _ = writeln!(text, "  k{i}: \"value value value value {i}\"");
            i += 1;
        }
        let n = write(&app, "big.yaml", &text)?;
        write(
            &app,
            "kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ./big.yaml\n",
        )?;
        cases.push(Case {
            name,
            args: vec!["verify".into(), s(&dir), "--no-schemas".into()],
            cwd: dir,
            input_bytes: n,
        });
    }

    // A rendered tree with a string alias bomb in one manifest.
    let dir = scratch.join("tree-bomb");
    let app = dir.join("kubernetes/apps/default");
    let mut text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  a: &s \"{}\"\n  b: [",
        "x".repeat(4 << 20)
    );
    for _ in 0..100_000 {
        text.push_str("*s,");
    }
    text.push_str("*s]\n");
    let n = write(&app, "bomb.yaml", &text)?;
    cases.push(Case {
        name: "verify: string alias bomb in a manifest (4 MiB aliased 100,000 times)",
        args: vec!["verify".into(), s(&dir), "--no-schemas".into()],
        cwd: dir,
        input_bytes: n,
    });

    // secrets decrypt: the largest sops file it reads (a Secret of many keys, encrypted with a
    // throwaway key), and one just over the cap.
    let dir = scratch.join("sops");
    configure::write_throwaway_keys(&dir)?;
    let ids = secrets::load_identities_from(&dir.join(render::AGE_KEY_FILE))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let recipient = ids
        .first()
        .map(|i| i.recipient().to_string())
        .context("no identity in the throwaway key")?;
    let config = secrets::SopsConfig::parse(&format!(
        "creation_rules:\n  - path_regex: .*\\.sops\\.ya?ml\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n    age: {recipient}\n"
    ))
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let max = secrets::MAX_FILE_BYTES as usize;
    let mut plain =
        String::from("apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\nstringData:\n");
    let mut i = 0;
    // Encryption makes a short value about five times longer (base64, IV, tag): stop at 15%.
    while plain.len() < max * 3 / 20 {
        let _ = writeln!(plain, "  key{i}: value-{i:08}");
        i += 1;
    }
    let sealed = secrets::encrypt("big.sops.yaml", &plain, &config, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let n = write(&dir, "big.sops.yaml", &sealed)?;
    cases.push(Case {
        name: "secrets decrypt: a sops file of many keys under the 8 MiB cap",
        args: vec![
            "secrets".into(),
            "decrypt".into(),
            "--age-key-file".into(),
            s(&dir.join(render::AGE_KEY_FILE)),
            s(&dir.join("big.sops.yaml")),
        ],
        cwd: dir.clone(),
        input_bytes: n,
    });
    let over = format!("{sealed}#{}\n", "x".repeat(max));
    let n = write(&dir, "over.sops.yaml", &over)?;
    cases.push(Case {
        name: "secrets decrypt: a sops file just over the 8 MiB cap",
        args: vec![
            "secrets".into(),
            "decrypt".into(),
            "--age-key-file".into(),
            s(&dir.join(render::AGE_KEY_FILE)),
            s(&dir.join("over.sops.yaml")),
        ],
        cwd: dir,
        input_bytes: n,
    });

    // configure over a tree whose render manifest is full of forged entries (at its bound).
    let dir = scratch.join("manifest");
    configure::write_throwaway_keys(&dir)?;
    let mut manifest = String::from("{\"version\": 1, \"files\": {\n");
    let mut i = 0;
    while manifest.len() + 200 < render::MANIFEST_MAX_BYTES as usize {
        let _ = writeln!(
            manifest,
            "\"kubernetes/apps/forged/f{i}.yaml\": {{\"sha256\": \"{}\", \"source\": \"x\"}},",
            "0".repeat(64)
        );
        i += 1;
    }
    manifest.push_str("\".sops.yaml\": {\"sha256\": \"0\", \"source\": \"x\"}}}\n");
    let n = write(&dir, render::MANIFEST_FILE, &manifest)?;
    let root = util::project_root();
    cases.push(Case {
        name: "configure: render manifest of 16 MiB, every entry forged",
        args: vec![
            "configure".into(),
            "--example".into(),
            "--out".into(),
            s(&dir),
            "--no-verify".into(),
        ],
        cwd: root,
        input_bytes: n,
    });
    Ok(cases)
}
