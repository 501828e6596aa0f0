//! Issue 7: "Removing a feature (e.g. going from two nodes to one) removes exactly its files on
//! the next configure."
//!
//! Each scenario runs the real `cargo xtask init` + `configure` in a scratch repository (throwaway
//! keys made by `init`), turns one feature off in `cluster.yaml` / `nodes.yaml`, puts a file of
//! the user's own next to rendered files, runs `configure` again and compares the two trees:
//!
//! - the files removed are exactly the feature's files (derived from the template directory of the
//!   feature, or from the tree before, never from the renderer's own bookkeeping);
//! - every other file is byte-identical, except a short list of files that must change, each
//!   with the reason and a check of the change itself;
//! - the user's file survives, directories left empty are gone, directories still holding a user
//!   file stay;
//! - a third run changes nothing, and (when `../shared/schemas` is there) the pruned tree passes
//!   `cargo xtask verify`: nothing left behind points at what was removed.

#![allow(clippy::print_stderr)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{Scratch, ok, repo, shared_dir, skip_or_fail, snapshot, xtask};

/// Inputs and key files, not outputs of configure.
const INPUTS: &[&str] = &["cluster.yaml", "nodes.yaml"];

const TUNNEL: &str = r#"{"AccountTag":"acc","TunnelSecret":"c2VjcmV0","TunnelID":"00000000-0000-4000-8000-000000000001"}"#;

/// A file that must change when the feature goes, why, and a check of the change.
struct MustChange {
    path: &'static str,
    why: &'static str,
    check: fn(before: &str, after: &str) -> Result<(), String>,
}

struct Scenario {
    name: &'static str,
    cluster: (String, String),
    nodes: (String, String),
    /// Expected removed files, given the tree before.
    removed: fn(before: &BTreeMap<String, Vec<u8>>) -> BTreeSet<String>,
    must_change: Vec<MustChange>,
    /// A file of the user's own, written before the second run.
    user_file: &'static str,
    /// Text the second run must print (what the removal leaves on the cluster).
    note: Option<&'static str>,
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The output paths of the templates under `templates/config/<dir>` (`.j2` stripped, partials
/// skipped): what the templates of a feature produce when it is on. Read from the template
/// directory, independently of the renderer.
fn outputs_of_template_dir(dir: &str) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(base, &path, out);
                continue;
            }
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel.ends_with(".partial.yaml.j2") {
                continue;
            }
            out.insert(rel.strip_suffix(".j2").unwrap_or(&rel).to_owned());
        }
    }
    let base = repo().join("templates/config");
    let mut out = BTreeSet::new();
    walk(&base, &base.join(dir), &mut out);
    assert!(!out.is_empty(), "no templates under templates/config/{dir}");
    out
}

/// Every line of `after` appears in `before`, in order: the change only removed lines.
fn only_lines_removed(before: &str, after: &str) -> Result<(), String> {
    let mut old = before.lines();
    for line in after.lines() {
        if !old.any(|l| l == line) {
            return Err(format!("line {line:?} is new or moved"));
        }
    }
    Ok(())
}

fn lacks(after: &str, words: &[&str]) -> Result<(), String> {
    match words.iter().find(|w| after.contains(*w)) {
        Some(w) => Err(format!("still mentions {w:?}")),
        None => Ok(()),
    }
}

/// A `replicas`-like key went from 2 to 1 (the node count), and nothing else changed.
fn replicas_two_to_one(key: &'static str) -> impl Fn(&str, &str) -> Result<(), String> {
    move |before, after| {
        let want = before.replacen(&format!("{key}: 2\n"), &format!("{key}: 1\n"), 1);
        if want == before {
            return Err(format!("no `{key}: 2` before"));
        }
        if want != after {
            return Err(format!("expected only `{key}: 2` → `{key}: 1`"));
        }
        Ok(())
    }
}

fn run(s: &Scenario) {
    let dir = Scratch::new(&format!("prune-{}", s.name));
    let root = dir.path();
    std::fs::write(root.join("cluster.yaml"), &s.cluster.0).unwrap();
    std::fs::write(root.join("nodes.yaml"), &s.nodes.0).unwrap();
    std::fs::write(root.join("cloudflare-tunnel.json"), TUNNEL).unwrap();
    ok(&["init", "--dir", "."], root);
    ok(&["configure", "--no-verify"], root);

    // The user's file, then the feature goes.
    let user_bytes = format!("# {}: mine, not rendered\n", s.name).into_bytes();
    let user_path = root.join(s.user_file);
    std::fs::create_dir_all(user_path.parent().unwrap()).unwrap();
    std::fs::write(&user_path, &user_bytes).unwrap();
    let before = snapshot(root);
    let expected_removed = (s.removed)(&before);
    for p in &expected_removed {
        assert!(
            before.contains_key(p),
            "{}: {p} was not rendered by the first run",
            s.name
        );
    }
    std::fs::write(root.join("cluster.yaml"), &s.cluster.1).unwrap();
    std::fs::write(root.join("nodes.yaml"), &s.nodes.1).unwrap();
    let log = ok(&["configure", "--no-verify"], root);
    let after = snapshot(root);
    if let Some(note) = s.note {
        assert!(
            log.contains(note),
            "{}: configure did not say {note:?}:\n{log}",
            s.name
        );
    }

    let outputs = |t: &BTreeMap<String, Vec<u8>>| -> BTreeSet<String> {
        t.keys()
            .filter(|p| !INPUTS.contains(&p.as_str()))
            .cloned()
            .collect()
    };
    let (old, new) = (outputs(&before), outputs(&after));
    let removed: BTreeSet<String> = old.difference(&new).cloned().collect();
    let added: BTreeSet<String> = new.difference(&old).cloned().collect();
    let changed: BTreeSet<String> = old
        .intersection(&new)
        .filter(|p| before[*p] != after[*p])
        .cloned()
        .collect();

    assert_eq!(
        removed, expected_removed,
        "{}: removed files differ from the feature's files",
        s.name
    );
    assert!(added.is_empty(), "{}: files appeared: {added:?}", s.name);
    assert!(
        log.contains(&format!(" {} removed,", expected_removed.len())),
        "{}: the summary does not count {} removals:\n{log}",
        s.name,
        expected_removed.len()
    );

    // Changed: exactly the listed files (and the manifest), each in the expected way.
    let mut allowed: BTreeSet<String> = s.must_change.iter().map(|m| m.path.to_owned()).collect();
    allowed.insert(".render-manifest.json".to_owned());
    assert_eq!(
        changed, allowed,
        "{}: changed files differ from the files that must change",
        s.name
    );
    for m in &s.must_change {
        let text = |t: &BTreeMap<String, Vec<u8>>| String::from_utf8(t[m.path].clone()).unwrap();
        if let Err(e) = (m.check)(&text(&before), &text(&after)) {
            panic!("{}: {} ({}): {e}", s.name, m.path, m.why);
        }
    }

    // The user's file and its directory survive; directories left empty are gone.
    assert_eq!(
        std::fs::read(&user_path).ok(),
        Some(user_bytes),
        "{}: the user's file {} did not survive",
        s.name,
        s.user_file
    );
    for p in &removed {
        let mut d = Path::new(p).parent();
        while let Some(dir) = d.filter(|d| !d.as_os_str().is_empty()) {
            let holds_files = after.keys().any(|k| Path::new(k).starts_with(dir));
            assert_eq!(
                root.join(dir).is_dir(),
                holds_files,
                "{}: directory {} {}",
                s.name,
                dir.display(),
                if holds_files {
                    "was removed with files in it"
                } else {
                    "was left empty"
                }
            );
            d = dir.parent();
        }
    }

    // Idempotent after pruning.
    let third = ok(&["configure", "--no-verify"], root);
    assert!(third.contains("0 files written"), "{}: {third}", s.name);
    assert_eq!(
        snapshot(root),
        after,
        "{}: the third run changed bytes",
        s.name
    );

    // Nothing left behind points at what was removed.
    let schemas = shared_dir().join("schemas");
    if schemas.is_dir() {
        let out = xtask(
            &["verify", ".", "--schemas", schemas.to_str().unwrap()],
            root,
        );
        assert!(
            out.status.success(),
            "{}: the pruned tree does not verify:\n{}",
            s.name,
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        skip_or_fail(&format!(
            "{}: {} not found, the pruned tree is not verified (set CLUSTER_SHARED_DIR)",
            s.name,
            schemas.display()
        ));
    }
    eprintln!(
        "{}: {} removed, {} changed as expected ({}), user file kept",
        s.name,
        removed.len(),
        s.must_change.len(),
        s.must_change
            .iter()
            .map(|m| m.path)
            .collect::<Vec<_>>()
            .join(", ")
    );
}

#[test]
fn two_nodes_to_one_removes_spegel_and_the_worker() {
    let cluster = read("crates/render/tests/configs/single-node.yaml");
    run(&Scenario {
        name: "nodes",
        cluster: (cluster.clone(), cluster),
        nodes: (
            read("crates/render/tests/configs/two-nodes.yaml"),
            read("crates/render/tests/configs/single-node-nodes.yaml"),
        ),
        // Spegel (a registry mirror between nodes) is only rendered for more than one node.
        // Talos has no file per node: the worker lives in talconfig.yaml (below).
        removed: |_| outputs_of_template_dir("kubernetes/apps/kube-system/spegel"),
        must_change: vec![
            MustChange {
                path: "kubernetes/apps/kube-system/kustomization.yaml",
                why: "lists spegel/ks.yaml",
                check: |b, a| {
                    only_lines_removed(b, a)?;
                    lacks(a, &["spegel"])
                },
            },
            MustChange {
                path: "bootstrap/helmfile.d/01-apps.yaml",
                why: "bootstraps spegel before cert-manager",
                check: |_, a| lacks(a, &["spegel"]),
            },
            MustChange {
                path: "talos/talconfig.yaml",
                why: "holds the worker node",
                check: |b, a| {
                    only_lines_removed(b, a)?;
                    lacks(a, &["worker-1", "aa:bb:cc:dd:ee:02", "192.168.1.11"])?;
                    if a.contains("hostname: \"solo\"") {
                        Ok(())
                    } else {
                        Err("the controller is gone too".into())
                    }
                },
            },
            MustChange {
                path: "kubernetes/apps/kube-system/coredns/app/helmrelease.yaml",
                why: "one replica per node",
                check: |b, a| replicas_two_to_one("replicaCount")(b, a),
            },
            MustChange {
                path: "kubernetes/apps/cert-manager/cert-manager/app/helmrelease.yaml",
                why: "one replica per node",
                check: |b, a| replicas_two_to_one("replicaCount")(b, a),
            },
            MustChange {
                path: "kubernetes/apps/network/envoy-gateway/app/envoy.yaml",
                why: "one Envoy replica per node",
                check: |b, a| replicas_two_to_one("replicas")(b, a),
            },
        ],
        // In the removed feature's own directory: the directory must stay for it.
        user_file: "kubernetes/apps/kube-system/spegel/app/NOTES.md",
        note: None,
    });
}

#[test]
fn ai_gateway_off_removes_its_tree_and_the_envoy_gateway_extension() {
    let public = read(".github/tests/public.yaml");
    let off = public.replace("ai_gateway_enabled: true", "ai_gateway_enabled: false");
    assert_ne!(off, public);
    run(&Scenario {
        name: "ai-gateway",
        cluster: (public, off),
        nodes: (
            read(".github/tests/nodes.yaml"),
            read(".github/tests/nodes.yaml"),
        ),
        removed: |before| {
            let all: BTreeSet<String> = before
                .keys()
                .filter(|p| p.starts_with("kubernetes/apps/ai-gateway/"))
                .cloned()
                .collect();
            assert!(all.len() > 20, "the AI Gateway tree is missing: {all:?}");
            all
        },
        must_change: vec![
            MustChange {
                path: "kubernetes/apps/network/envoy-gateway/ks.yaml",
                why: "waits for the AI Gateway's Redis (token rate limit)",
                check: |b, a| {
                    only_lines_removed(b, a)?;
                    lacks(a, &["dependsOn", "redis"])
                },
            },
            MustChange {
                path: "kubernetes/flux/cluster/ks.yaml",
                why: "orphans the AI Gateway controller's Kustomization on removal",
                check: |b, a| {
                    only_lines_removed(b, a)?;
                    lacks(a, &["Orphan", "AI Gateway"])
                },
            },
            MustChange {
                path: "kubernetes/apps/network/envoy-gateway/app/helmrelease.yaml",
                why: "carries the AI Gateway extension, Backend API, rate-limit values and post-renderer",
                check: |b, a| {
                    only_lines_removed(b, a)?;
                    lacks(
                        a,
                        &[
                            "extensionManager",
                            "extensionApis",
                            "rateLimit",
                            "postRenderers",
                            "ai-gateway",
                            "AI Gateway",
                        ],
                    )?;
                    if a.contains("type: GatewayNamespace") && a.contains("kind: HelmRelease") {
                        Ok(())
                    } else {
                        Err("the base Envoy Gateway values went too".into())
                    }
                },
            },
        ],
        user_file: "kubernetes/apps/network/envoy-gateway/app/NOTES.md",
        note: Some("kubectl delete namespace envoy-ai-gateway-system"),
    });
}

#[test]
fn proxmox_csi_off_removes_exactly_its_app() {
    let public = read(".github/tests/public.yaml");
    let off: String = public
        .lines()
        .filter(|l| !l.starts_with("proxmox_csi_"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(public.lines().count() - off.lines().count(), 2);
    run(&Scenario {
        name: "proxmox-csi",
        cluster: (public, off),
        nodes: (
            read(".github/tests/nodes.yaml"),
            read(".github/tests/nodes.yaml"),
        ),
        removed: |_| outputs_of_template_dir("kubernetes/apps/kube-system/proxmox-csi"),
        // talconfig.yaml keeps its Proxmox patch: the CCM (still on) owns it.
        must_change: vec![MustChange {
            path: "kubernetes/apps/kube-system/kustomization.yaml",
            why: "lists proxmox-csi/ks.yaml",
            check: |b, a| {
                only_lines_removed(b, a)?;
                lacks(a, &["proxmox-csi"])
            },
        }],
        user_file: "kubernetes/apps/kube-system/proxmox-csi/app/NOTES.md",
        note: None,
    });
}
