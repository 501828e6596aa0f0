//! Issue 5: "For each cross-resource rule, a test mutates a correct rendered tree to break it and
//! sees the rule fire" — on the REAL rendered tree, not a hand-made fixture.
//!
//! The public example (`.github/tests/public.yaml`, every feature on) is rendered once by the real
//! binary (`xtask configure --example --out DIR --no-verify`, throwaway age key), and
//! `verify::verify` with the pinned schema set of `../shared/schemas` must report no error on it.
//! Then every case of the table below copies that tree, breaks one thing the way a person or a
//! template change would (editing the YAML text of the rendered files, or re-encrypting a
//! `*.sops.yaml` file with other contents), runs verify, and checks that:
//! - the rule's code fires, at the expected file and field path where the case says so;
//! - no other error fires, except the ones listed in the case (each follows from the mutation,
//!   the comment says why);
//! - a mutation that no longer applies (the template changed) fails the case, it is never
//!   silently skipped.
//!
//! `every_verify_rule_has_a_case` reads the rule codes from `crates/verify/src` and
//! `docs/verify.md` and fails when a rule has no case here (or a case names no rule).
//!
//! Without `../shared/schemas` (`$CLUSTER_SHARED_DIR`) the test is skipped with a message, or
//! fails when `REQUIRE_ORACLES=1`.

#![allow(clippy::print_stderr)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{Scratch, copy_dir, ok, repo, shared_dir, skip_or_fail};
use schema::Diagnostic;
use verify::{Report, SchemaSet, VerifyConfig};

const AI: &str = "kubernetes/apps/ai-gateway";
const BACKENDS: &str = "kubernetes/apps/ai-gateway/backends/azure-openai/app/backend.yaml";
const BACKENDS_SECRET: &str =
    "kubernetes/apps/ai-gateway/backends/azure-openai/app/secret.sops.yaml";
const ROUTE: &str = "kubernetes/apps/ai-gateway/routes/app/aigatewayroute.yaml";
const HTTPROUTE: &str = "kubernetes/apps/ai-gateway/routes/app/httproute.yaml";
const RATELIMIT: &str = "kubernetes/apps/ai-gateway/routes/app/ratelimit-policy.yaml";
const ROUTES_KUST: &str = "kubernetes/apps/ai-gateway/routes/app/kustomization.yaml";
const ROUTES_KS: &str = "kubernetes/apps/ai-gateway/routes/ks.yaml";
const MCP: &str = "kubernetes/apps/ai-gateway/mcp/app/mcproute.yaml";
const MCP_BACKEND: &str = "kubernetes/apps/ai-gateway/mcp/app/backend.yaml";
const MCP_SECRET: &str = "kubernetes/apps/ai-gateway/mcp/app/secret.sops.yaml";
const REDIS_KUST: &str = "kubernetes/apps/ai-gateway/redis/app/kustomization.yaml";
const REDIS_DEPLOY: &str = "kubernetes/apps/ai-gateway/redis/app/deployment.yaml";
const AIGW_HR: &str = "kubernetes/apps/ai-gateway/controller/app/helmrelease.yaml";
const AIGW_OCI: &str = "kubernetes/apps/ai-gateway/controller/app/ocirepository.yaml";
const CRDS_KS: &str = "kubernetes/apps/ai-gateway/crds/ks.yaml";
const EG_HR: &str = "kubernetes/apps/network/envoy-gateway/app/helmrelease.yaml";
const EG_OCI: &str = "kubernetes/apps/network/envoy-gateway/app/ocirepository.yaml";
const EG_KS: &str = "kubernetes/apps/network/envoy-gateway/ks.yaml";
const GATEWAY: &str = "kubernetes/apps/ai-gateway/gateway/app/gateway.yaml";
const CONTROLLER_KS: &str = "kubernetes/apps/ai-gateway/controller/ks.yaml";
const CONTROLLER_KUST: &str = "kubernetes/apps/ai-gateway/controller/app/kustomization.yaml";
const REDIS_SVC: &str = "kubernetes/apps/ai-gateway/redis/app/service.yaml";
const CLUSTER_KS: &str = "kubernetes/flux/cluster/ks.yaml";
const ECHO_KS: &str = "kubernetes/apps/default/echo/ks.yaml";
const ECHO_HR: &str = "kubernetes/apps/default/echo/app/helmrelease.yaml";

// ---- a mutable copy of the rendered tree ----------------------------------------------------

type Edit = Result<(), String>;

/// A further check of the findings of a case's rule.
type Check = fn(&[&Diagnostic]) -> Result<(), String>;

/// A copy of the rendered example, edited as text.
struct Tree {
    dir: Scratch,
}

impl Tree {
    fn copy_of(base: &Path) -> Tree {
        let dir = Scratch::new("verify-rules-case");
        copy_dir(base, dir.path());
        Tree { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn read(&self, file: &str) -> Result<String, String> {
        std::fs::read_to_string(self.root().join(file)).map_err(|e| format!("{file}: {e}"))
    }

    fn write(&self, file: &str, text: &str) -> Edit {
        let path = self.root().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{file}: {e}"))
    }

    fn remove(&self, file: &str) -> Edit {
        std::fs::remove_file(self.root().join(file)).map_err(|e| format!("{file}: {e}"))
    }

    /// Replaces `from`, which must occur exactly once.
    fn replace(&self, file: &str, from: &str, to: &str) -> Edit {
        let text = self.read(file)?;
        match text.matches(from).count() {
            1 => self.write(file, &text.replacen(from, to, 1)),
            n => Err(format!("{file}: {from:?} occurs {n} times, expected once")),
        }
    }

    /// Replaces the first occurrence of `from`.
    fn replace_first(&self, file: &str, from: &str, to: &str) -> Edit {
        let text = self.read(file)?;
        if !text.contains(from) {
            return Err(format!("{file}: {from:?} not found"));
        }
        self.write(file, &text.replacen(from, to, 1))
    }

    /// Replaces the first line starting with `prefix` by `line` (for lines whose tail differs
    /// between renderings, such as a ciphertext).
    fn replace_line_starting(&self, file: &str, prefix: &str, line: &str) -> Edit {
        let text = self.read(file)?;
        let old = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .ok_or_else(|| format!("{file}: no line starts with {prefix:?}"))?;
        self.write(file, &text.replacen(old, line, 1))
    }

    /// Removes the one line equal to `line` (ignoring indentation) and every following line
    /// indented deeper (its YAML block), blank lines inside included.
    fn remove_block(&self, file: &str, line: &str) -> Edit {
        let text = self.read(file)?;
        let lines: Vec<&str> = text.lines().collect();
        let hits: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].trim() == line.trim())
            .collect();
        let [at] = hits[..] else {
            return Err(format!(
                "{file}: line {line:?} occurs {} times, expected once",
                hits.len()
            ));
        };
        let indent = |l: &str| l.len() - l.trim_start().len();
        let own = indent(lines[at]);
        let mut end = at + 1;
        while end < lines.len() && (lines[end].trim().is_empty() || indent(lines[end]) > own) {
            end += 1;
        }
        let kept: Vec<&str> = lines[..at].iter().chain(&lines[end..]).copied().collect();
        self.write(file, &(kept.join("\n") + "\n"))
    }

    /// The documents of a file (`---` separated), as text.
    fn docs(&self, file: &str) -> Result<Vec<String>, String> {
        let text = self.read(file)?;
        let mut docs = vec![String::new()];
        for line in text.lines() {
            if line == "---" {
                docs.push(String::new());
            } else {
                let last = docs.last_mut().unwrap();
                last.push_str(line);
                last.push('\n');
            }
        }
        Ok(docs)
    }

    fn write_docs(&self, file: &str, docs: &[String]) -> Edit {
        let mut text = docs[0].clone();
        for d in &docs[1..] {
            text.push_str("---\n");
            text.push_str(d);
        }
        self.write(file, &text)
    }

    /// Index of the document of `kind` named `name`.
    fn doc_index(docs: &[String], file: &str, kind: &str, name: &str) -> Result<usize, String> {
        docs.iter()
            .position(|d| {
                d.lines().any(|l| l == format!("kind: {kind}"))
                    && doc_name(d).as_deref() == Some(name)
            })
            .ok_or_else(|| format!("{file}: no {kind} {name}"))
    }

    fn remove_doc(&self, file: &str, kind: &str, name: &str) -> Edit {
        let mut docs = self.docs(file)?;
        let i = Self::doc_index(&docs, file, kind, name)?;
        docs.remove(i);
        self.write_docs(file, &docs)
    }

    /// Appends a copy of a document under another name.
    fn copy_doc(&self, file: &str, kind: &str, name: &str, new_name: &str) -> Edit {
        let mut docs = self.docs(file)?;
        let i = Self::doc_index(&docs, file, kind, name)?;
        let copy = docs[i]
            .replacen(
                &format!("  name: \"{name}\"\n"),
                &format!("  name: \"{new_name}\"\n"),
                1,
            )
            .replacen(
                &format!("  name: {name}\n"),
                &format!("  name: {new_name}\n"),
                1,
            );
        docs.push(copy);
        self.write_docs(file, &docs)
    }

    /// Decrypts a `*.sops.yaml` file in memory with the tree's throwaway key, edits the
    /// plaintext and encrypts it again by the tree's `.sops.yaml`: another valid encrypted file.
    fn edit_secret(&self, file: &str, edit: impl FnOnce(&str) -> Result<String, String>) -> Edit {
        let ids = secrets::load_identities_from(&self.root().join("age.key"))
            .map_err(|e| e.to_string())?;
        let plain = secrets::decrypt(&self.read(file)?, &ids)
            .map_err(|e| format!("{file}: {e}"))?
            .to_yaml(2);
        let changed = edit(&plain)?;
        let config = secrets::SopsConfig::load(&self.root().join(".sops.yaml"))
            .map_err(|e| e.to_string())?;
        let text =
            secrets::encrypt(file, &changed, &config, None).map_err(|e| format!("{file}: {e}"))?;
        self.write(file, &text)
    }
}

/// `metadata.name` of a YAML document, read from its text.
fn doc_name(doc: &str) -> Option<String> {
    let mut in_meta = false;
    for line in doc.lines() {
        if line == "metadata:" {
            in_meta = true;
        } else if in_meta && let Some(v) = line.strip_prefix("  name: ") {
            return Some(v.trim_matches('"').to_owned());
        } else if in_meta && !line.starts_with(' ') && !line.starts_with('#') {
            in_meta = false;
        }
    }
    None
}

/// Replaces text in a plaintext string (for secrets), once.
fn swap(text: &str, from: &str, to: &str) -> Result<String, String> {
    match text.matches(from).count() {
        1 => Ok(text.replacen(from, to, 1)),
        n => Err(format!(
            "{from:?} occurs {n} times in the plaintext, expected once"
        )),
    }
}

// ---- the cases -------------------------------------------------------------------------------

/// One mutation and what verify must say about it.
struct Case {
    name: &'static str,
    /// The rule under test (its full code).
    code: &'static str,
    mutate: fn(&Tree) -> Edit,
    /// Other error codes that follow from the same mutation (the case says why).
    also: &'static [&'static str],
    /// Warnings that must fire too.
    warns: &'static [&'static str],
    /// A finding of `code` at this file (relative) and field path.
    at: Option<(&'static str, &'static str)>,
    /// ... on the first line of the mutated file that contains this text (only for scalars and
    /// list items: a finding about a mapping is located at its first entry, the line below its
    /// key).
    line_with: Option<&'static str>,
    /// Further checks of the findings of `code`.
    check: Option<Check>,
    /// Verify without any schema set.
    no_schemas: bool,
}

fn case(name: &'static str, code: &'static str, mutate: fn(&Tree) -> Edit) -> Case {
    Case {
        name,
        code,
        mutate,
        also: &[],
        warns: &[],
        at: None,
        line_with: None,
        check: None,
        no_schemas: false,
    }
}

impl Case {
    fn also(mut self, codes: &'static [&'static str]) -> Case {
        self.also = codes;
        self
    }
    fn warns(mut self, codes: &'static [&'static str]) -> Case {
        self.warns = codes;
        self
    }
    fn at(mut self, file: &'static str, path: &'static str) -> Case {
        self.at = Some((file, path));
        self
    }
    fn line(mut self, text: &'static str) -> Case {
        self.line_with = Some(text);
        self
    }
    fn check(mut self, f: Check) -> Case {
        self.check = Some(f);
        self
    }
    fn no_schemas(mut self) -> Case {
        self.no_schemas = true;
        self
    }
}

fn help_contains(ds: &[&Diagnostic], want: &str) -> Result<(), String> {
    if ds
        .iter()
        .any(|d| d.help.as_deref().is_some_and(|h| h.contains(want)))
    {
        Ok(())
    } else {
        Err(format!("no hint mentions {want:?}"))
    }
}

fn message_contains(ds: &[&Diagnostic], want: &str) -> Result<(), String> {
    if ds.iter().any(|d| d.message.contains(want)) {
        Ok(())
    } else {
        Err(format!("no message mentions {want:?}"))
    }
}

const PRIMARY_TLS_HOST: &str =
    "    hostname: \"test-resource.openai.azure.com\"\n    wellKnownCACertificates";

const CERT_MANAGER_HR: &str = "kubernetes/apps/cert-manager/cert-manager/app/helmrelease.yaml";
const TALCONFIG: &str = "talos/talconfig.yaml";

fn cases() -> Vec<Case> {
    vec![
        case(
            "a Helm value of the wrong type for the chart's values.schema.json",
            "verify::helm_values",
            |t| t.replace(CERT_MANAGER_HR, "    replicaCount: 2\n", "    replicaCount: two\n"),
        )
        .at(CERT_MANAGER_HR, "spec.values.replicaCount")
        .line("replicaCount: two")
        .check(|ds| message_contains(ds, "expected integer, got string \"two\"")),
        case(
            "a talconfig.yaml field of the wrong type for talhelper's schema",
            "verify::talconfig_schema",
            |t| t.replace(TALCONFIG, "clusterName: kubernetes\n", "clusterName: 5\n"),
        )
        .at(TALCONFIG, "clusterName")
        .line("clusterName: 5")
        .check(|ds| message_contains(ds, "talhelper genconfig refuses")),
        // ---- loading ----------------------------------------------------------------------
        case(
            "a sops file replaced by a plaintext one",
            "verify::sops_plaintext",
            |t| {
                let plain = |name: &str| {
                    format!(
                        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\nstringData:\n  apiKey: sk-not-encrypted\n"
                    )
                };
                t.write(
                    BACKENDS_SECRET,
                    &format!(
                        "---\n{}---\n{}",
                        plain("azure-test-primary-apikey"),
                        plain("azure-test-secondary-apikey")
                    ),
                )
            },
        )
        .at(BACKENDS_SECRET, ""),
        case(
            "a key pasted in plaintext into an encrypted file",
            "verify::sops_plaintext",
            |t| {
                t.replace_line_starting(BACKENDS_SECRET, "  apiKey: ENC[", "  apiKey: sk-pasted-by-hand")
            },
        )
        .at(BACKENDS_SECRET, "stringData.apiKey")
        .line("sk-pasted-by-hand"),
        case(
            "a committed symlink to the age key under kubernetes/",
            "verify::symlink",
            |t| {
                std::os::unix::fs::symlink(
                    t.root().join("age.key"),
                    t.root().join("kubernetes/apps/notes.yaml"),
                )
                .map_err(|e| e.to_string())
            },
        )
        .at("kubernetes/apps/notes.yaml", ""),
        case(
            "a kustomization listing the push token as a resource",
            "verify::key_file",
            |t| {
                t.replace(
                    REDIS_KUST,
                    "resources:\n",
                    "resources:\n  - ../../../../../github-push-token.txt\n",
                )
            },
        )
        .check(|ds| {
            if ds.iter().any(|d| d.location.as_ref().is_some_and(|l| l.file.ends_with("github-push-token.txt"))) {
                Ok(())
            } else {
                Err("not located at the key file".to_owned())
            }
        }),
        case(
            "kustomizations that include each other ten times over, six levels deep",
            "verify::kustomize_too_large",
            |t| {
                let base = "kubernetes/apps/fan";
                t.write(
                    &format!("{base}/l6/kustomization.yaml"),
                    "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ./cm.yaml\n",
                )?;
                t.write(
                    &format!("{base}/l6/cm.yaml"),
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leaf\n  namespace: default\n",
                )?;
                for d in 0..6 {
                    let mut list = String::new();
                    for k in 0..10 {
                        list.push_str(&format!("  - ./w{k}\n"));
                        t.write(
                            &format!("{base}/l{d}/w{k}/kustomization.yaml"),
                            &format!(
                                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamePrefix: w{k}-\nresources:\n  - ../../l{}\n",
                                d + 1
                            ),
                        )?;
                    }
                    t.write(
                        &format!("{base}/l{d}/kustomization.yaml"),
                        &format!(
                            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{list}"
                        ),
                    )?;
                }
                Ok(())
            },
        )
        .no_schemas(),
        case(
            "a plaintext value outside the keys the file's own rule encrypts",
            "verify::sops_exposed",
            |t| {
                // What an overridden .sops.yaml whose regex misses the key produces: the rule
                // check trusts the rule and is silent, this one is not.
                t.replace_first(
                    BACKENDS_SECRET,
                    "encrypted_regex: ^(data|stringData)$",
                    "encrypted_regex: ^(data)$",
                )?;
                t.replace_line_starting(BACKENDS_SECRET, "  apiKey: ENC[", "  apiKey: sk-outside-the-rule")
            },
        )
        .at(BACKENDS_SECRET, "stringData.apiKey")
        .line("sk-outside-the-rule"),
        case("a file that does not parse", "yaml::syntax", |t| {
            t.replace(RATELIMIT, "kind: BackendTrafficPolicy", "kind: [BackendTrafficPolicy")
        })
        .at(RATELIMIT, ""),
        // ---- kustomize graph --------------------------------------------------------------
        case(
            "a kustomization lists a file that is gone",
            "verify::kustomize_missing",
            |t| t.remove(RATELIMIT),
        )
        .at(ROUTES_KUST, "")
        .line("- ./ratelimit-policy.yaml")
        .check(|ds| message_contains(ds, "ratelimit-policy.yaml")),
        case(
            "a kustomization names a component that does not exist",
            "verify::kustomize_missing",
            |t| {
                t.replace(
                    &format!("{AI}/kustomization.yaml"),
                    "../../components/sops",
                    "../../components/sopz",
                )
            },
        )
        // One namespace directory that does not build fails `cluster-apps` (it builds every
        // directory under kubernetes/apps at once). The files beneath are not listed as
        // not_applied one by one: the one cause is reported, nothing else.
        .at("kubernetes/apps/ai-gateway/kustomization.yaml", "")
        .line("../../components/sopz"),
        case(
            "a kustomization with `resource:` for `resources:`",
            "verify::kustomize_invalid",
            |t| t.replace(ROUTES_KUST, "resources:", "resource:"),
        )
        // The directory does not build, so its objects are applied by nobody.
        .also(&["verify::not_applied"])
        .at(ROUTES_KUST, "resource")
        .line("resource:"),
        case(
            "a kustomization lists a file twice",
            "verify::kustomize_duplicate",
            |t| {
                t.replace(
                    ROUTES_KUST,
                    "  - ./httproute.yaml\n",
                    "  - ./httproute.yaml\n  - httproute.yaml\n",
                )
            },
        ),
        case(
            "a kustomization includes itself",
            "verify::kustomize_cycle",
            |t| {
                t.replace(
                    ROUTES_KUST,
                    "  - ./httproute.yaml\n",
                    "  - ./httproute.yaml\n  - ../../routes/app\n",
                )
            },
        ),
        case(
            "a patch without target that matches nothing",
            "verify::kustomize_patch",
            |t| {
                let text = t.read(REDIS_KUST)?;
                t.write(
                    REDIS_KUST,
                    &format!(
                        "{text}patches:\n  - patch: |-\n      apiVersion: apps/v1\n      kind: Deployment\n      metadata:\n        name: valkey\n      spec:\n        replicas: 2\n"
                    ),
                )
            },
        ),
        case(
            "a generator verify does not follow",
            "verify::kustomize_unmodelled",
            |t| {
                let text = t.read(REDIS_KUST)?;
                t.write(
                    REDIS_KUST,
                    &format!(
                        "{text}configMapGenerator:\n  - name: redis-extra\n    literals:\n      - maxmemory=96mb\n"
                    ),
                )
            },
        ),
        // ---- Flux graph -------------------------------------------------------------------
        case(
            "a Flux Kustomization path that does not exist",
            "verify::flux_path_missing",
            |t| {
                t.replace(
                    ROUTES_KS,
                    "path: ./kubernetes/apps/ai-gateway/routes/app",
                    "path: ./kubernetes/apps/ai-gateway/route/app",
                )
            },
        )
        // Nothing applies the route files any more.
        .also(&["verify::not_applied"])
        .at(ROUTES_KS, "spec.path")
        .line("route/app"),
        case(
            "a Flux Kustomization built from another source",
            "verify::flux_source_external",
            |t| {
                t.replace(
                    ROUTES_KS,
                    "    kind: GitRepository\n    name: flux-system",
                    "    kind: OCIRepository\n    name: ai-routes",
                )
            },
        )
        // The route files of this repository are then applied by nobody.
        .also(&["verify::not_applied"]),
        case(
            "an app without targetNamespace in a kustomization without namespace",
            "verify::namespace_missing",
            |t| t.remove_block(ECHO_KS, "targetNamespace: default"),
        ),
        case(
            "a second Flux Kustomization over a directory already applied (plan §11)",
            "verify::double_apply",
            |t| {
                t.write(
                    "kubernetes/flux/cluster/ai-routes.yaml",
                    "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: ai-routes\n  namespace: flux-system\nspec:\n  interval: 1h\n  path: ./kubernetes/apps/ai-gateway/routes/app\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n  targetNamespace: envoy-ai-gateway-system\n",
                )
            },
        )
        .check(|ds| message_contains(ds, "flux-system/ai-routes")),
        case(
            "a file no kustomization lists",
            "verify::not_applied",
            |t| {
                t.write(
                    &format!("{AI}/redis/app/pdb.yaml"),
                    "---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: redis\nspec:\n  maxUnavailable: 1\n",
                )
            },
        ),
        case(
            "talconfig.yaml referencing a patch that was not rendered",
            "verify::talos_patch_missing",
            |t| t.remove("talos/patches/global/machine-time.yaml"),
        )
        .at("talos/talconfig.yaml", "patches[4]")
        .line("machine-time.yaml"),
        case(
            "dependsOn without the namespace of its target (plan §11)",
            "verify::depends_on_missing",
            |t| {
                t.replace(
                    ROUTES_KS,
                    "    - name: envoy-gateway\n      namespace: network\n",
                    "    - name: envoy-gateway\n",
                )
            },
        )
        .at(ROUTES_KS, "spec.dependsOn[2]")
        .line("- name: envoy-gateway")
        .check(|ds| help_contains(ds, "`network`")),
        case("a dependsOn cycle", "verify::depends_on_cycle", |t| {
            t.replace(
                CRDS_KS,
                "spec:\n  interval: 1h\n",
                "spec:\n  dependsOn:\n    - name: routes\n  interval: 1h\n",
            )
        })
        .check(|ds| message_contains(ds, "routes")),
        case(
            "a HelmRelease chartRef to an OCIRepository that does not exist",
            "verify::chart_ref_missing",
            |t| t.replace(ECHO_HR, "    name: echo\n", "    name: echo-chart\n"),
        )
        .at(ECHO_HR, "spec.chartRef"),
        // ---- schemas and CEL --------------------------------------------------------------
        case(
            "lesson 1: kind and group back on an AIGatewayRoute backendRef",
            "verify::cel_rule",
            |t| {
                t.replace_first(
                    ROUTE,
                    "        - name: \"azure-test-primary\"\n          priority: 0\n",
                    "        - name: \"azure-test-primary\"\n          kind: AIServiceBackend\n          group: aigateway.envoyproxy.io\n          priority: 0\n",
                )
            },
        )
        .at(ROUTE, "spec.rules[0].backendRefs[0]")
        .line("- name: \"azure-test-primary\"")
        .check(|ds| {
            let want = "Invalid value: \"object\": only InferencePool from inference.networking.k8s.io group is supported";
            match ds.iter().find(|d| d.path == "spec.rules[0].backendRefs[0]") {
                Some(d) if d.message == want => Ok(()),
                Some(d) => Err(format!("message {:?}, want {want:?}", d.message)),
                None => Err("not at spec.rules[0].backendRefs[0]".into()),
            }
        }),
        case(
            "a misspelt field (`timeout` for `timeouts`)",
            "verify::schema",
            |t| t.replace_first(ROUTE, "      timeouts:\n", "      timeout:\n"),
        )
        .at(ROUTE, "spec.rules[0].timeout")
        .check(|ds| message_contains(ds, "unknown field \"spec.rules[0].timeout\"")),
        case(
            "a string where the Kubernetes OpenAPI wants an integer",
            "verify::schema",
            |t| t.replace(REDIS_DEPLOY, "  replicas: 1\n", "  replicas: one\n"),
        )
        .at(REDIS_DEPLOY, "spec.replicas")
        .line("replicas: one"),
        case(
            "an apiVersion that is not served",
            "verify::schema",
            |t| {
                t.replace(
                    MCP_BACKEND,
                    "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy",
                    "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: BackendTLSPolicy",
                )
            },
        )
        .at(MCP_BACKEND, "apiVersion"),
        case(
            "an enum violation blocks the CEL rules, as in the API server",
            "verify::schema",
            |t| t.replace_first(BACKENDS, "type: AzureAPIKey\n", "type: AzureKey\n"),
        )
        // The policy is not Azure's any more, which the Azure rule reports too.
        .also(&["verify::azure_auth"])
        .warns(&["verify::cel_unevaluated"])
        .at(BACKENDS, "spec.type")
        .check(|ds| message_contains(ds, "Unsupported value: \"AzureKey\"")),
        case(
            "without schemas the graph and cross-resource rules still run",
            "verify::backend_tls_missing",
            |t| t.remove_doc(BACKENDS, "BackendTLSPolicy", "azure-test-primary-tls"),
        )
        .warns(&["verify::schemas_unavailable"])
        .no_schemas(),
        // ---- cross-resource: AI Gateway objects -------------------------------------------
        case(
            "an AIGatewayRoute backendRef to an AIServiceBackend that does not exist",
            "verify::aigw_backend_missing",
            |t| {
                t.replace_first(
                    ROUTE,
                    "        - name: \"azure-test-primary\"\n",
                    "        - name: \"azure-test-primry\"\n",
                )
            },
        )
        .at(ROUTE, "spec.rules[0].backendRefs[0]")
        .line("azure-test-primry"),
        case(
            "an AIGatewayRoute with 16 rules: its generated HTTPRoute would have 17",
            "verify::aigw_route_too_many_rules",
            |t| {
                let text = t.read(ROUTE)?;
                let have = text.matches("name: x-ai-eg-model").count();
                let extra: String = (have..16)
                    .map(|i| {
                        format!(
                            "    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: \"extra-{i}\"\n      backendRefs:\n        - name: \"azure-test-primary\"\n          priority: 0\n"
                        )
                    })
                    .collect();
                t.replace(ROUTE, "  rules:\n", &format!("  rules:\n{extra}"))
            },
        )
        .at(ROUTE, "spec.rules"),
        case(
            "an AIServiceBackend to a Backend that does not exist",
            "verify::aisb_backend_missing",
            |t| {
                t.replace(
                    BACKENDS,
                    "  backendRef:\n    name: \"azure-test-primary\"\n",
                    "  backendRef:\n    name: \"azure-primary\"\n",
                )
            },
        )
        .at(BACKENDS, "spec.backendRef"),
        case(
            "lesson 3: a 443 Backend without BackendTLSPolicy",
            "verify::backend_tls_missing",
            |t| t.remove_doc(BACKENDS, "BackendTLSPolicy", "azure-test-primary-tls"),
        )
        .at(BACKENDS, "spec.endpoints")
        .check(|ds| help_contains(ds, "hostname: test-resource.openai.azure.com")),
        case(
            "lesson 3: an MCP server Backend on 443 without BackendTLSPolicy",
            "verify::backend_tls_missing",
            |t| t.remove_doc(MCP_BACKEND, "BackendTLSPolicy", "test-github-tls"),
        )
        .at(MCP_BACKEND, "spec.endpoints"),
        case(
            "a BackendTLSPolicy validating another hostname than the Backend's",
            "verify::backend_tls_hostname",
            |t| {
                t.replace(
                    BACKENDS,
                    PRIMARY_TLS_HOST,
                    "    hostname: \"test-resource.cognitiveservices.azure.com\"\n    wellKnownCACertificates",
                )
            },
        )
        .at(BACKENDS, "spec.validation.hostname")
        .line("cognitiveservices"),
        case(
            "lesson 2: an *.openai.azure.com backend with an APIKey policy",
            "verify::azure_auth",
            |t| {
                t.replace_first(
                    BACKENDS,
                    "  type: AzureAPIKey\n  azureAPIKey:\n",
                    "  type: APIKey\n  apiKey:\n",
                )
            },
        )
        .at(BACKENDS, "spec.type")
        .check(|ds| message_contains(ds, "api-key")),
        case(
            "lesson 2: an *.openai.azure.com backend without any policy",
            "verify::azure_auth",
            |t| {
                t.remove_doc(
                    BACKENDS,
                    "BackendSecurityPolicy",
                    "azure-test-primary-apikey",
                )
            },
        )
        .at(BACKENDS, "metadata.name"),
        case(
            "a BackendSecurityPolicy targeting a backend that does not exist",
            "verify::bsp_target_missing",
            |t| {
                t.replace(
                    BACKENDS,
                    "      kind: AIServiceBackend\n      name: \"azure-test-primary\"\n",
                    "      kind: AIServiceBackend\n      name: \"azure-test-primry\"\n",
                )
            },
        )
        // The real backend is then left without a policy.
        .also(&["verify::azure_auth"])
        .at(BACKENDS, "spec.targetRefs[0]"),
        case(
            "two BackendSecurityPolicies on one backend",
            "verify::bsp_multiple",
            |t| {
                t.copy_doc(
                    BACKENDS,
                    "BackendSecurityPolicy",
                    "azure-test-primary-apikey",
                    "azure-test-primary-apikey-2",
                )
            },
        ),
        case(
            "a policy Secret that is not in the namespace",
            "verify::secret_missing",
            |t| {
                t.replace(
                    BACKENDS,
                    "      name: \"azure-test-primary-apikey\"\n",
                    "      name: \"azure-test-primary-key\"\n",
                )
            },
        )
        .at(BACKENDS, "spec.azureAPIKey.secretRef"),
        case(
            "a policy Secret without the key `apiKey` (re-encrypted)",
            "verify::secret_key_missing",
            |t| {
                t.edit_secret(BACKENDS_SECRET, |plain| {
                    let first = plain.find("  apiKey: ").ok_or("no apiKey in the plaintext")?;
                    let mut out = plain.to_owned();
                    out.replace_range(first..first + "  apiKey: ".len(), "  api-key: ");
                    Ok(out)
                })
            },
        )
        .at(BACKENDS_SECRET, "stringData"),
        case(
            "a policy secretRef with a namespace AI Gateway ignores",
            "verify::secret_namespace_ignored",
            |t| {
                t.replace(
                    BACKENDS,
                    "      name: \"azure-test-primary-apikey\"\n",
                    "      name: \"azure-test-primary-apikey\"\n      namespace: default\n",
                )
            },
        )
        .at(BACKENDS, "spec.azureAPIKey.secretRef.namespace")
        .line("namespace: default"),
        // ---- cross-resource: MCP ----------------------------------------------------------
        case(
            "an MCPRoute backend that does not exist",
            "verify::mcp_backend_missing",
            |t| {
                t.replace(
                    MCP,
                    "    - name: \"test-github\"\n",
                    "    - name: \"test-gitlab\"\n",
                )
            },
        )
        .at(MCP, "spec.backendRefs[0]")
        .line("test-gitlab"),
        case(
            "an external MCP server off 443 without BackendTLSPolicy",
            "verify::mcp_backend_tls",
            |t| {
                t.remove_doc(MCP_BACKEND, "BackendTLSPolicy", "test-github-tls")?;
                t.replace(MCP_BACKEND, "        port: 443\n", "        port: 8443\n")
            },
        )
        .at(MCP_BACKEND, "spec.endpoints"),
        case(
            "an MCPRoute API key Secret that does not exist",
            "verify::secret_missing",
            |t| {
                t.replace(
                    MCP,
                    "name: \"mcp-test-github-apikey\"",
                    "name: \"mcp-test-github-token\"",
                )
            },
        )
        .at(MCP, "spec.backendRefs[0].securityPolicy.apiKey.secretRef"),
        case(
            "an MCPRoute API key Secret without `apiKey` (re-encrypted)",
            "verify::secret_key_missing",
            |t| t.edit_secret(MCP_SECRET, |plain| swap(plain, "  apiKey: ", "  token: ")),
        )
        .at(MCP_SECRET, "stringData"),
        // ---- cross-resource: routes and gateways ------------------------------------------
        case(
            "lesson 5: an HTTPRoute to a made-up Envoy Service name",
            "verify::httproute_backend",
            |t| {
                t.replace(
                    HTTPROUTE,
                    "          name: \"ai-gateway\"\n",
                    "          name: \"envoy-ai-gateway\"\n",
                )
            },
        )
        .at(HTTPROUTE, "spec.rules[0].backendRefs[0]")
        .check(|ds| {
            help_contains(
                ds,
                "Gateway envoy-ai-gateway-system/ai-gateway → Service envoy-ai-gateway-system/ai-gateway",
            )
        }),
        case(
            "lesson 5: an HTTPRoute to a port the Envoy Service does not have",
            "verify::httproute_backend",
            |t| t.replace(HTTPROUTE, "          port: 80\n", "          port: 8080\n"),
        )
        .at(HTTPROUTE, "spec.rules[0].backendRefs[0].port")
        .line("port: 8080"),
        case(
            "lesson 5: ControllerNamespace mode puts the Envoy Service elsewhere",
            "verify::httproute_backend",
            |t| t.remove_block(EG_HR, "deploy:"),
        )
        // The AI gateway's Envoy pods move to `network` too, where the AI PodMonitor does not
        // look: its GenAI metrics are no longer scraped.
        .also(&["verify::aigw_metrics_unscraped"])
        .at(HTTPROUTE, "spec.rules[0].backendRefs[0]")
        .check(|ds| help_contains(ds, "ControllerNamespace mode")),
        case(
            "an HTTPRoute parentRef without the Gateway's namespace",
            "verify::parent_ref_missing",
            |t| {
                t.replace(
                    HTTPROUTE,
                    "    - name: envoy-internal\n      namespace: network\n",
                    "    - name: envoy-internal\n",
                )
            },
        )
        .at(HTTPROUTE, "spec.parentRefs[0]")
        .check(|ds| help_contains(ds, "`network`")),
        case(
            "an HTTPRoute on a listener the Gateway does not have",
            "verify::parent_ref_missing",
            |t| t.replace(HTTPROUTE, "sectionName: https", "sectionName: websecure"),
        )
        .at(HTTPROUTE, "spec.parentRefs[0].sectionName")
        .line("websecure"),
        case(
            "a cross-namespace backendRef without ReferenceGrant",
            "verify::reference_grant",
            |t| {
                t.replace(
                    HTTPROUTE,
                    "          name: \"ai-gateway\"\n          namespace: \"envoy-ai-gateway-system\"\n",
                    "          name: \"envoy-internal\"\n          namespace: \"network\"\n",
                )
            },
        )
        .at(HTTPROUTE, "spec.rules[0].backendRefs[0]"),
        // ---- cross-resource: rate limits (lesson 4) ---------------------------------------
        case(
            "lesson 4: a rate-limit cost key no AIGatewayRoute computes",
            "verify::ratelimit_cost_key",
            |t| t.replace(RATELIMIT, "key: llm_total_token\n", "key: llm_total_tokens\n"),
        )
        .at(
            RATELIMIT,
            "spec.rateLimit.global.rules[0].cost.response.metadata.key",
        )
        .line("llm_total_tokens"),
        case(
            "lesson 4: the AIGatewayRoute stops computing token costs",
            "verify::ratelimit_cost_key",
            |t| t.remove_block(ROUTE, "llmRequestCosts:"),
        )
        .check(|ds| help_contains(ds, "llmRequestCosts")),
        case(
            "lesson 4: a global rate limit without Redis in the Envoy Gateway values",
            "verify::ratelimit_redis",
            |t| t.remove_block(EG_HR, "rateLimit:"),
        )
        .at(EG_HR, "spec.values.config.envoyGateway"),
        case(
            "lesson 4: a Redis URL with a port the Service does not have",
            "verify::ratelimit_redis",
            |t| {
                t.replace(
                    EG_HR,
                    "url: \"redis.envoy-ai-gateway-system.svc.cluster.local:6379\"",
                    "url: \"redis.envoy-ai-gateway-system.svc.cluster.local:6380\"",
                )
            },
        )
        .at(
            EG_HR,
            "spec.values.config.envoyGateway.rateLimit.backend.redis.url",
        )
        .line("url: "),
        case(
            "lesson 4: a Redis URL naming a Service that does not exist",
            "verify::ratelimit_redis",
            |t| {
                t.replace(
                    EG_HR,
                    "url: \"redis.envoy-ai-gateway-system.svc.cluster.local:6379\"",
                    "url: \"valkey.envoy-ai-gateway-system.svc.cluster.local:6379\"",
                )
            },
        )
        .at(
            EG_HR,
            "spec.values.config.envoyGateway.rateLimit.backend.redis.url",
        )
        .line("url: "),
        // ---- cross-resource: Envoy Gateway prerequisites ----------------------------------
        case(
            "AI Gateway objects without the Envoy Gateway chart",
            "verify::eg_missing",
            |t| {
                t.replace(
                    EG_OCI,
                    "url: oci://mirror.gcr.io/envoyproxy/gateway-helm",
                    "url: oci://mirror.gcr.io/envoyproxy/some-other-chart",
                )
            },
        )
        // Without Envoy Gateway nothing creates the AI gateway's Envoy Service either.
        .also(&["verify::httproute_backend"]),
        case(
            "AI Gateway objects without the AI Gateway controller chart",
            "verify::aigw_controller_missing",
            |t| {
                t.replace(
                    AIGW_OCI,
                    "url: oci://docker.io/envoyproxy/ai-gateway-helm",
                    "url: oci://docker.io/envoyproxy/some-other-chart",
                )
            },
        ),
        case(
            "Envoy Gateway without the Backend API",
            "verify::eg_backend_api",
            |t| t.replace(EG_HR, "enableBackend: true", "enableBackend: false"),
        )
        .at(EG_HR, "spec.values.config.envoyGateway.extensionApis"),
        case(
            "Envoy Gateway without the Route post-translation hook",
            "verify::eg_extension_hooks",
            |t| t.remove_block(EG_HR, "- Route"),
        )
        .at(EG_HR, "spec.values.config.envoyGateway.extensionManager")
        .check(|ds| message_contains(ds, "post: Route")),
        case(
            "Envoy Gateway without the secret translation hook",
            "verify::eg_extension_hooks",
            |t| t.remove_block(EG_HR, "secret:"),
        )
        .check(|ds| message_contains(ds, "translation.secret.includeAll: true")),
        case(
            "Envoy Gateway calling the extension server on the wrong port",
            "verify::eg_extension_service",
            |t| t.replace(EG_HR, "port: 1063\n", "port: 1064\n"),
        )
        .at(
            EG_HR,
            "spec.values.config.envoyGateway.extensionManager.service.fqdn",
        ),
        case(
            "Envoy Gateway values from valuesFrom",
            "verify::eg_values_unchecked",
            |t| {
                t.remove_block(EG_HR, "config:")?;
                t.replace(
                    EG_HR,
                    "  interval: 1h\n",
                    "  interval: 1h\n  valuesFrom:\n    - kind: ConfigMap\n      name: envoy-gateway-values\n",
                )
            },
        )
        // Only this warning: the rules that read Envoy Gateway values (prerequisites, Redis
        // rate-limit backend, the Envoy Service names of the deploy mode) do not judge what the
        // ConfigMap may set, so no error may fire.
        .at(EG_HR, "spec.valuesFrom"),
        case(
            "the AI Gateway chart pointed at the default Envoy Gateway namespace",
            "verify::aigw_eg_namespace",
            |t| {
                t.replace(
                    AIGW_HR,
                    "      namespace: network\n",
                    "      namespace: envoy-gateway-system\n",
                )
            },
        )
        .at(AIGW_HR, "spec.values.envoyGateway.namespace")
        .line("namespace: envoy-gateway-system"),
        // ---- issue 13: each case puts back what the templates rendered before it ----------
        case(
            "MCP routing headers not stripped while the extension fails open",
            "verify::aigw_mcp_header_forgery",
            |t| t.remove_block(GATEWAY, "  headers:"),
        )
        .at(
            EG_HR,
            "spec.values.config.envoyGateway.extensionManager.failOpen",
        )
        .line("failOpen: true")
        .check(|ds| message_contains(ds, "`x-ai-eg-mcp-backend` and `x-ai-eg-mcp-route`")),
        case(
            "only one of the two MCP routing headers stripped",
            "verify::aigw_mcp_header_forgery",
            |t| t.replace(GATEWAY, "        - x-ai-eg-mcp-route\n", ""),
        )
        .check(|ds| message_contains(ds, "without removing `x-ai-eg-mcp-route`")),
        case(
            "the controller gets no MCP session seed",
            "verify::aigw_mcp_session_seed",
            |t| {
                t.replace(
                    AIGW_HR,
                    "--mcpSessionEncryptionSeed=$(MCP_SESSION_ENCRYPTION_SEED)",
                    "--extProcLogLevel=info",
                )
            },
        )
        .at(AIGW_HR, "spec.postRenderers")
        .check(|ds| message_contains(ds, "built-in MCP session seed")),
        case(
            "the MCP session seed is the controller's default",
            "verify::aigw_mcp_session_seed",
            |t| {
                t.replace(
                    AIGW_HR,
                    "--mcpSessionEncryptionSeed=$(MCP_SESSION_ENCRYPTION_SEED)",
                    "--mcpSessionEncryptionSeed=seed",
                )
            },
        )
        .check(|ds| message_contains(ds, "public default `seed`")),
        case(
            "the MCP session seed Secret is not applied",
            "verify::aigw_mcp_session_seed",
            |t| {
                t.replace(CONTROLLER_KUST, "  - ./secret.sops.yaml\n", "")?;
                t.remove("kubernetes/apps/ai-gateway/controller/app/secret.sops.yaml")
            },
        )
        .at(AIGW_HR, "spec.values.controller.extraEnvVars")
        .check(|ds| message_contains(ds, "ai-gateway-mcp-session, key `seed`, which does not exist")),
        case(
            "the AI gateway's own address opened without client keys",
            "verify::aigw_open_lan",
            |t| t.replace(GATEWAY, "        type: ClusterIP\n", "        type: LoadBalancer\n"),
        )
        .at(ROUTE, "metadata.name")
        .check(|ds| {
            message_contains(ds, "MCPRoute envoy-ai-gateway-system/mcp injects MCP tokens")?;
            message_contains(ds, "plain-HTTP listener `http` (port 80)")
        }),
        case(
            "the client's Authorization reaches Azure",
            "verify::azure_authorization_forwarded",
            |t| {
                let text = t.read(BACKENDS)?;
                let from = "  headerMutation:\n    remove:\n      - authorization\n";
                if text.matches(from).count() != 2 {
                    return Err(format!("{BACKENDS}: expected two headerMutation blocks"));
                }
                t.write(BACKENDS, &text.replace(from, ""))
            },
        )
        .at(BACKENDS, "spec"),
        case(
            "Authorization removed in the wrong case",
            "verify::azure_authorization_forwarded",
            |t| t.replace_first(BACKENDS, "      - authorization\n", "      - Authorization\n"),
        )
        .at(BACKENDS, "spec.headerMutation.remove[0]")
        .line("- Authorization")
        .check(|ds| message_contains(ds, "lower case")),
        case(
            "the rate-limit image left to global.imageRegistry",
            "verify::ratelimit_image",
            |t| t.remove_block(EG_HR, "rateLimitDeployment:"),
        )
        .at(EG_HR, "spec.values.global.imageRegistry")
        .line("imageRegistry: mirror.gcr.io"),
        case(
            "token budgets fail open",
            "verify::ratelimit_fail_open",
            |t| t.remove_block(EG_HR, "failClosed: true"),
        )
        .at(EG_HR, "spec.values.config.envoyGateway"),
        case(
            "aiops retried by the internal gateway's policy",
            "verify::aigw_retry_billing",
            |t| {
                t.replace(ROUTES_KUST, "  - ./no-retry-policy.yaml\n", "")?;
                t.remove("kubernetes/apps/ai-gateway/routes/app/no-retry-policy.yaml")
            },
        )
        .at(HTTPROUTE, "metadata.name")
        .check(|ds| message_contains(ds, "BackendTrafficPolicy network/envoy retries it (2 retries on reset)")),
        case(
            "aiops's own policy merges the internal gateway's retries back in",
            "verify::aigw_retry_billing",
            |t| {
                t.replace(
                    "kubernetes/apps/ai-gateway/routes/app/no-retry-policy.yaml",
                    "  retry:\n    numRetries: 0\n",
                    "  mergeType: StrategicMerge\n",
                )
            },
        )
        .at(HTTPROUTE, "metadata.name"),
        case(
            "Redis open to every pod",
            "verify::ratelimit_redis_exposed",
            |t| {
                t.replace(REDIS_KUST, "  - ./networkpolicy.yaml\n", "")?;
                t.remove("kubernetes/apps/ai-gateway/redis/app/networkpolicy.yaml")
            },
        )
        .at(REDIS_SVC, "metadata.name"),
        case(
            "a Redis NetworkPolicy that admits every source",
            "verify::ratelimit_redis_exposed",
            |t| {
                t.remove_block(
                    "kubernetes/apps/ai-gateway/redis/app/networkpolicy.yaml",
                    "- from:",
                )?;
                t.replace(
                    "kubernetes/apps/ai-gateway/redis/app/networkpolicy.yaml",
                    "  ingress:\n",
                    "  ingress:\n    - ports:\n        - port: 6379\n",
                )
            },
        ),
        case(
            "Envoy Gateway not ordered after its Redis",
            "verify::ratelimit_redis_order",
            |t| t.remove_block(EG_KS, "  dependsOn:"),
        )
        .at(EG_KS, "spec"),
        case(
            "the AI gateway's Envoy pods not scraped",
            "verify::aigw_metrics_unscraped",
            |t| t.remove_doc(GATEWAY, "PodMonitor", "ai-gateway"),
        )
        .at(GATEWAY, "metadata.name")
        .check(|ds| message_contains(ds, "Envoy's /stats/prometheus or the external processor's GenAI metrics")),
        case(
            "the AI Gateway controller not scraped",
            "verify::aigw_metrics_unscraped",
            |t| {
                t.replace(CONTROLLER_KUST, "  - ./servicemonitor.yaml\n", "")?;
                t.remove("kubernetes/apps/ai-gateway/controller/app/servicemonitor.yaml")
            },
        )
        .at(AIGW_HR, "metadata.name"),
        case(
            "the controller deleted together with the objects it finalizes",
            "verify::aigw_removal_order",
            |t| {
                t.remove_block(
                    CLUSTER_KS,
                    "    - # The AI Gateway controller outlives the rest of the AI Gateway. Disabling it removes every",
                )
            },
        )
        .at(CONTROLLER_KS, "metadata.name")
        .check(|ds| message_contains(ds, "hang in Terminating")),
    ]
    .into_iter()
    .chain(provider_cases())
    .collect()
}

// ---- issue 16: providers beyond Azure API keys ----------------------------------------------
//
// The example renders Azure deployments only, so these cases add one provider backend the way
// the templates of `backends/{openai,anthropic,bedrock}` write it, to the Azure backends' file
// (already applied by a Flux Kustomization), with one thing wrong.

/// Appends a provider backend `name`: Backend (`host:port`), a BackendTLSPolicy (System CAs)
/// when `tls`, the AIServiceBackend of `schema`, and `policy` (type and body, or none).
fn add_provider(
    t: &Tree,
    name: &str,
    schema: &str,
    endpoint: (&str, u16),
    tls: bool,
    policy: Option<&str>,
) -> Edit {
    let (host, port) = endpoint;
    let mut text = t.read(BACKENDS)?;
    text.push_str(&format!(
        "---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: {name}\nspec:\n  endpoints:\n    - fqdn:\n        hostname: {host}\n        port: {port}\n"
    ));
    if tls {
        text.push_str(&format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata:\n  name: {name}-tls\nspec:\n  targetRefs:\n    - group: gateway.envoyproxy.io\n      kind: Backend\n      name: {name}\n  validation:\n    hostname: {host}\n    wellKnownCACertificates: System\n"
        ));
    }
    text.push_str(&format!(
        "---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\nmetadata:\n  name: {name}\nspec:\n  schema: {{name: {schema}}}\n  backendRef:\n    name: {name}\n    kind: Backend\n    group: gateway.envoyproxy.io\n  headerMutation:\n    remove:\n      - authorization\n"
    ));
    if let Some(policy) = policy {
        text.push_str(&format!(
            "---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: {name}-auth\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: {name}\n{policy}"
        ));
    }
    t.write(BACKENDS, &text)
}

/// An `AnthropicAPIKey` policy reading the example's first Azure key Secret (it has `apiKey`).
const ANTHROPIC_POLICY: &str = "  type: AnthropicAPIKey\n  anthropicAPIKey:\n    secretRef:\n      name: azure-test-primary-apikey\n";

fn provider_cases() -> Vec<Case> {
    vec![
        case(
            "an Anthropic backend with an APIKey policy (a Bearer token; Anthropic reads x-api-key)",
            "verify::provider_auth_type",
            |t| {
                add_provider(
                    t,
                    "anthropic-test",
                    "Anthropic",
                    ("api.anthropic.com", 443),
                    true,
                    Some("  type: APIKey\n  apiKey:\n    secretRef:\n      name: azure-test-primary-apikey\n"),
                )
            },
        )
        .at(BACKENDS, "spec.type")
        .check(|ds| message_contains(ds, "x-api-key")),
        case(
            "an Anthropic backend without any policy",
            "verify::provider_auth_missing",
            |t| {
                add_provider(
                    t,
                    "anthropic-test",
                    "Anthropic",
                    ("api.anthropic.com", 443),
                    true,
                    None,
                )
            },
        )
        .at(BACKENDS, "metadata.name")
        .check(|ds| help_contains(ds, "AnthropicAPIKey")),
        case(
            "a Bedrock backend connecting to another region than its policy signs for",
            "verify::bedrock_endpoint",
            |t| {
                add_provider(
                    t,
                    "bedrock-test",
                    "AWSBedrock",
                    ("bedrock-runtime.us-west-2.amazonaws.com", 443),
                    true,
                    Some("  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n"),
                )
            },
        )
        .at(BACKENDS, "spec.endpoints[0].fqdn.hostname")
        .line("bedrock-runtime.us-west-2.amazonaws.com")
        .check(|ds| help_contains(ds, "bedrock-runtime.us-east-1.amazonaws.com")),
        case(
            "a public-CA BackendTLSPolicy on a plain-HTTP in-cluster model server",
            "verify::tls_system_ca_in_cluster",
            |t| {
                add_provider(
                    t,
                    "openai-vllm",
                    "OpenAI",
                    ("vllm.ai.svc.cluster.local", 8000),
                    true,
                    None,
                )
            },
        )
        .at(BACKENDS, "spec.validation"),
        case(
            "an external OpenAI host on port 80 without TLS",
            "verify::backend_cleartext_external",
            |t| {
                add_provider(
                    t,
                    "openai-test",
                    "OpenAI",
                    ("api.openai.com", 80),
                    false,
                    Some("  type: APIKey\n  apiKey:\n    secretRef:\n      name: azure-test-primary-apikey\n"),
                )
            },
        )
        .at(BACKENDS, "spec.endpoints[0]"),
        case(
            "a model failing over from Azure (chat completions) to Anthropic (messages)",
            "verify::route_mixed_api",
            |t| {
                add_provider(
                    t,
                    "anthropic-test",
                    "Anthropic",
                    ("api.anthropic.com", 443),
                    true,
                    Some(ANTHROPIC_POLICY),
                )?;
                // The first rule (gpt-4) gets Anthropic as its second backend.
                t.replace_first(
                    ROUTE,
                    "        - name: \"azure-test-primary\"\n          priority: 0\n",
                    "        - name: \"azure-test-primary\"\n          priority: 0\n        - name: anthropic-test\n          priority: 1\n",
                )
            },
        )
        .at(ROUTE, "spec.rules[0].backendRefs[1]"),
        case(
            "an Entra ID policy whose Secret has `apiKey` instead of `client-secret`",
            "verify::secret_key_missing",
            |t| {
                t.replace_first(
                    BACKENDS,
                    "  type: AzureAPIKey\n  azureAPIKey:\n    secretRef:\n      name: \"azure-test-primary-apikey\"\n",
                    "  type: AzureCredentials\n  azureCredentials:\n    tenantID: 72f988bf-86f1-41af-91ab-2d7cd011db47\n    clientID: 0b5e1d2c-3f4a-4b6c-8d9e-a1b2c3d4e5f6\n    clientSecretRef:\n      name: \"azure-test-primary-apikey\"\n",
                )
            },
        )
        .check(|ds| message_contains(ds, "client-secret")),
    ]
}

/// The files of the public example that issue 13 changed, as the templates rendered them before
/// (xtask/tests/fixtures/issue13-before), laid over a fresh rendering; the files issue 13 added
/// are removed. Every issue-13 rule must fire: each guards a way in that the old tree had.
fn overlay_issue13_before(t: &Tree) -> Edit {
    let fixtures = repo().join("xtask/tests/fixtures/issue13-before");
    let mut stack = vec![fixtures.clone()];
    let mut n = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "yaml") {
                let rel = path
                    .strip_prefix(&fixtures)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                t.read(&rel)?; // only files the current tree still has
                t.write(&rel, &text)?;
                n += 1;
            }
        }
    }
    if n < 10 {
        return Err(format!("only {n} fixture files"));
    }
    for added in [
        "kubernetes/apps/ai-gateway/controller/app/secret.sops.yaml",
        "kubernetes/apps/ai-gateway/controller/app/servicemonitor.yaml",
        "kubernetes/apps/ai-gateway/redis/app/networkpolicy.yaml",
        "kubernetes/apps/ai-gateway/routes/app/no-retry-policy.yaml",
    ] {
        t.remove(added)?;
    }
    Ok(())
}

/// The rules of issue 13, each with the file it must point at in the old rendering.
const ISSUE13_RULES: &[(&str, &str)] = &[
    ("verify::aigw_mcp_header_forgery", EG_HR),
    ("verify::aigw_mcp_session_seed", AIGW_HR),
    ("verify::aigw_open_lan", ROUTE),
    ("verify::azure_authorization_forwarded", BACKENDS),
    ("verify::ratelimit_image", EG_HR),
    ("verify::ratelimit_fail_open", EG_HR),
    ("verify::aigw_retry_billing", HTTPROUTE),
    ("verify::ratelimit_redis_exposed", REDIS_SVC),
    ("verify::ratelimit_redis_order", EG_KS),
    ("verify::aigw_metrics_unscraped", GATEWAY),
    ("verify::aigw_removal_order", CONTROLLER_KS),
];

// ---- running --------------------------------------------------------------------------------

/// Verifies `root` with the cluster-template layout and the value schemas of
/// [`test_value_schemas`].
fn run_verify(root: &Path, schemas: &SchemaSet) -> Report {
    let mut config = VerifyConfig::cluster_template();
    config.value_schemas = test_value_schemas().clone();
    verify::verify(root, schemas, &config)
}

/// Chart values schemas and a talconfig schema for the runs. `../shared` holds none (users get
/// upstream's from `schemas fetch`, which the tests cannot reach), so two small schemas of our
/// own stand in, for the cert-manager chart the templates pin and for talconfig.yaml, pinned by
/// their git blob ids exactly as the real ones are: the same code path, from the release's
/// chart ref to the finding.
fn test_value_schemas() -> &'static verify::ValueSchemas {
    static SCHEMAS: std::sync::OnceLock<verify::ValueSchemas> = std::sync::OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("verify-rules-values-{}", std::process::id()));
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let write = |folder: &'static str, file: &'static str, text: &str| {
            let path = dir.join(folder).join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            verify::pins::PinnedFile {
                folder,
                file,
                repo: "test/test",
                tag: "test",
                commit: "0000000000000000000000000000000000000000",
                path: file,
                blob: leak(verify::pins::git_blob_sha1(text.as_bytes())),
            }
        };
        let pinned = verify::CHART_PINS
            .iter()
            .find(|c| c.chart == "cert-manager")
            .expect("cert-manager is pinned");
        let chart = verify::ChartPin {
            chart: pinned.chart,
            version: pinned.version,
            schema: write(
                pinned.schema.folder,
                "values.schema.json",
                r#"{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                    "required": ["replicaCount"],
                    "properties": {"replicaCount": {"type": "integer", "minimum": 1},
                                   "crds": {"type": "object", "additionalProperties": false,
                                            "properties": {"enabled": {"type": "boolean"}, "keep": {"type": "boolean"}}}}}"#,
            ),
            values: write(pinned.values.folder, "values.yaml", "replicaCount: 1\ncrds:\n  enabled: false\n  keep: true\n"),
        };
        let talconfig = write(
            "talhelper-test",
            "talconfig.json",
            r##"{"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "#/$defs/Config",
                "$defs": {"Config": {"type": "object", "required": ["clusterName", "nodes"],
                  "properties": {"clusterName": {"type": "string"},
                                 "nodes": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Node"}}}},
                  "Node": {"type": "object", "required": ["hostname", "ipAddress"]}}}"##,
        );
        verify::ValueSchemas {
            charts: vec![chart],
            talconfig: Some(talconfig),
            dir: Some(dir),
        }
    })
}

fn dump(report: &Report) -> String {
    report
        .diagnostics
        .iter()
        .map(|d| format!("  {d}\n"))
        .collect()
}

fn judge(c: &Case, tree: &Tree, report: &Report) -> Result<(), String> {
    let found = report.with_code(c.code);
    if found.is_empty() {
        return Err(format!("{} did not fire", c.code));
    }
    let wanted_severity = if c.code.starts_with("verify::") && is_warning_code(c.code) {
        "warning"
    } else {
        "error"
    };
    if found
        .iter()
        .any(|d| d.is_error() != (wanted_severity == "error"))
    {
        return Err(format!("{} fired, but not as {wanted_severity}", c.code));
    }
    for w in c.warns {
        if report.with_code(w).is_empty() {
            return Err(format!("warning {w} did not fire"));
        }
    }
    let unexpected: BTreeSet<&str> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && d.code != c.code && !c.also.contains(&d.code.as_str()))
        .map(|d| d.code.as_str())
        .collect();
    if !unexpected.is_empty() {
        return Err(format!(
            "unexpected errors besides {}: {unexpected:?}",
            c.code
        ));
    }
    for a in c.also {
        if report.with_code(a).is_empty() {
            return Err(format!(
                "{a} is listed as a consequence but did not fire (tighten the case)"
            ));
        }
    }
    if let Some((file, path)) = c.at {
        let line = match c.line_with {
            Some(text) => Some(
                tree.read(file)?
                    .lines()
                    .position(|l| l.contains(text))
                    .ok_or_else(|| format!("{file}: no line with {text:?}"))?
                    + 1,
            ),
            None => None,
        };
        let here = found.iter().any(|d| {
            d.path == path
                && d.location.as_ref().is_some_and(|l| {
                    l.file.ends_with(Path::new(file)) && line.is_none_or(|n| l.line as usize == n)
                })
        });
        if !here {
            let places: Vec<String> = found
                .iter()
                .map(|d| {
                    format!(
                        "{}:{}",
                        d.location.as_ref().map_or(String::new(), |l| format!(
                            "{}:{}",
                            l.file.display(),
                            l.line
                        )),
                        d.path
                    )
                })
                .collect();
            return Err(format!(
                "{} fired, but not at {file}:{}{path} (at {places:?})",
                c.code,
                line.map_or(String::new(), |n| format!("{n}:"))
            ));
        }
    }
    if let Some(check) = c.check {
        check(&found)?;
    }
    Ok(())
}

/// Codes documented as warnings in docs/verify.md (rows marked `(w)`).
fn is_warning_code(code: &str) -> bool {
    let docs = std::fs::read_to_string(repo().join("docs/verify.md")).unwrap();
    docs.lines().any(|l| {
        l.starts_with('|')
            && l.contains(&format!("`{code}`"))
            && l.split('|').nth(1).is_some_and(|c| c.contains("(w)"))
    })
}

fn schemas_dir() -> Option<PathBuf> {
    let dir = shared_dir().join("schemas");
    if dir.is_dir() {
        Some(dir)
    } else {
        skip_or_fail(&format!(
            "the pinned schema set {} is not there (set CLUSTER_SHARED_DIR)",
            dir.display()
        ));
        None
    }
}

/// Copies the base, mutates, verifies and judges one case.
fn run_case(c: &Case, base: &Path, schemas: &SchemaSet) -> Result<(), String> {
    let tree = Tree::copy_of(base);
    (c.mutate)(&tree).map_err(|e| {
        format!(
            "{}: the mutation does not apply to the rendered tree: {e}",
            c.name
        )
    })?;
    let report = if c.no_schemas {
        run_verify(tree.root(), &SchemaSet::empty())
    } else {
        run_verify(tree.root(), schemas)
    };
    judge(c, &tree, &report).map_err(|e| format!("{}: {e}\n{}", c.name, dump(&report)))
}

#[test]
fn every_rule_fires_on_the_rendered_public_example() {
    let Some(schemas_dir) = schemas_dir() else {
        return;
    };
    let schemas =
        SchemaSet::load(&schemas_dir).unwrap_or_else(|e| panic!("{}: {e}", schemas_dir.display()));

    // Render once: the real binary, the public example, a throwaway key.
    let rendered = Scratch::new("verify-rules-base");
    let base = rendered.path().join("repo");
    ok(
        &[
            "configure",
            "--example",
            "--out",
            base.to_str().unwrap(),
            "--no-verify",
        ],
        &repo(),
    );

    // The base is clean.
    let report = run_verify(&base, &schemas);
    assert_eq!(
        report.errors(),
        0,
        "the rendered public example has verify errors:\n{}",
        dump(&report)
    );
    assert!(
        report.stats.schemas_available && report.stats.schema_checked > 50,
        "{:?}",
        report.stats
    );
    // The stand-in value schemas were found, verified against their pins and applied.
    assert_eq!(
        report.stats.helm.releases_checked, 1,
        "{:?}",
        report.stats.helm
    );
    assert!(
        report.stats.helm.talconfig_checked,
        "{:?}",
        report.stats.helm
    );
    assert!(
        report
            .stats
            .helm
            .unchecked
            .iter()
            .any(|l| l.starts_with("app-template ")),
        "{:?}",
        report.stats.helm
    );
    let base_warnings: BTreeSet<&str> =
        report.diagnostics.iter().map(|d| d.code.as_str()).collect();
    eprintln!(
        "base: {} files, {} objects, {} checked against schemas, {} CEL rules; warnings: {base_warnings:?}",
        report.stats.files,
        report.stats.objects,
        report.stats.schema_checked,
        report.stats.cel_evaluated
    );

    let cases = cases();
    let started = std::time::Instant::now();
    // Cases are independent copies: run them on a few threads (the schema set is shared).
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let outcomes: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                let (cases, base, schemas) = (&cases, &base, &schemas);
                scope.spawn(move || {
                    cases
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % threads == w)
                        .map(|(i, c)| (i, run_case(c, base, schemas)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(usize, Result<(), String>)> = workers
            .into_iter()
            .flat_map(|h| h.join().expect("a case panicked"))
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, r)| r).collect()
    });
    let mut failures: Vec<String> = outcomes.iter().filter_map(|r| r.clone().err()).collect();
    if let Err(e) = old_rendering_fails_every_issue13_rule(&base, &schemas) {
        failures.push(format!("old_rendering_fails_every_issue13_rule: {e}"));
    }
    let fired: BTreeSet<&str> = cases
        .iter()
        .zip(&outcomes)
        .filter(|(_, r)| r.is_ok())
        .map(|(c, _)| c.code)
        .collect();
    eprintln!(
        "verify rules on the rendered public example: {} of {} cases passed, {} distinct codes fired as expected ({:.1?})",
        cases.len() - failures.len(),
        cases.len(),
        fired.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Issue 13's "done when": each new rule fails on the tree the old templates rendered (the
/// fixture files over a fresh rendering) and passes on the current one (the clean base above).
fn old_rendering_fails_every_issue13_rule(base: &Path, schemas: &SchemaSet) -> Result<(), String> {
    let tree = Tree::copy_of(base);
    overlay_issue13_before(&tree)?;
    let report = run_verify(tree.root(), schemas);
    let mut missing = Vec::new();
    for (code, file) in ISSUE13_RULES {
        let here = report.with_code(code).iter().any(|d| {
            d.location
                .as_ref()
                .is_some_and(|l| l.file.ends_with(Path::new(file)))
        });
        if !here {
            missing.push(format!("{code} at {file}"));
        }
    }
    let expected: BTreeSet<&str> = ISSUE13_RULES.iter().map(|(c, _)| *c).collect();
    let others: BTreeSet<&str> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error() && !expected.contains(d.code.as_str()))
        .map(|d| d.code.as_str())
        .collect();
    if missing.is_empty() && others.is_empty() {
        eprintln!(
            "the pre-issue-13 rendering fails all {} issue-13 rules",
            ISSUE13_RULES.len()
        );
        Ok(())
    } else {
        Err(format!(
            "did not fire: {missing:?}; other errors: {others:?}\n{}",
            dump(&report)
        ))
    }
}

/// Rule codes verify can report: `"verify::…"` literals in its sources, the codes its
/// cross-resource module builds from `"<rule>"` literals, and the codes docs/verify.md lists.
fn verify_codes() -> BTreeSet<String> {
    let src = repo().join("crates/verify/src");
    let mut codes = BTreeSet::new();
    let cross_dir = src.join("cross");
    // Every module, in folders too (`cross/`, `helm/`, …).
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for path in files {
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // The cross-resource rules pass bare rule names; verify prefixes them.
        let is_cross = path.starts_with(&cross_dir);
        for lit in text.split('"').skip(1).step_by(2) {
            if let Some(rule) = lit.strip_prefix("verify::") {
                if is_rule_name(rule) {
                    codes.insert(lit.to_owned());
                }
            } else if is_cross && is_rule_name(lit) && lit.contains('_') {
                codes.insert(format!("verify::{lit}"));
            }
        }
    }
    let docs = std::fs::read_to_string(repo().join("docs/verify.md")).unwrap();
    for tick in docs.split('`').skip(1).step_by(2) {
        if let Some(rule) = tick.strip_prefix("verify::")
            && is_rule_name(rule)
        {
            codes.insert(tick.to_owned());
        }
    }
    codes
}

fn is_rule_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

#[test]
fn every_verify_rule_has_a_case() {
    // Codes that no mutation of a correct tree can produce, with the reason.
    const NO_CASE: &[(&str, &str)] = &[
        (
            "verify::tree_too_large",
            "needs hundreds of megabytes of YAML to reach; crates/verify/src/tree.rs tests it with a lowered budget",
        ),
        (
            "verify::schema_missing",
            "a warning the unmodified example already carries (Cilium and PodMonitor kinds are not in the pinned schema set); the base check prints it",
        ),
    ];
    let codes = verify_codes();
    assert!(codes.len() > 30, "found only {codes:?}");
    let cases = cases();
    let covered: BTreeSet<String> = cases
        .iter()
        .flat_map(|c| std::iter::once(c.code).chain(c.warns.iter().copied()))
        .filter(|c| c.starts_with("verify::"))
        .map(str::to_owned)
        .collect();
    let exempt: BTreeSet<String> = NO_CASE.iter().map(|(c, _)| (*c).to_owned()).collect();
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| !covered.contains(*c) && !exempt.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "rules without a case in verify_rules.rs: {missing:?}"
    );
    let unknown: Vec<&String> = covered.iter().filter(|c| !codes.contains(*c)).collect();
    assert!(
        unknown.is_empty(),
        "cases for codes verify does not have: {unknown:?}"
    );
    eprintln!(
        "{} rule codes, {} with cases ({} cases), {} without (reasoned)",
        codes.len(),
        covered.len(),
        cases.len(),
        exempt.len()
    );
}
