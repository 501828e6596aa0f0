//! The Envoy AI Gateway templates (`templates/config/kubernetes/apps/ai-gateway/` and the AI
//! Gateway values of the Envoy Gateway HelmRelease), rendered in memory.
//!
//! - Snapshots of the AI output for `public` (the plan's full test config), `private` (minimal),
//!   `full` (public plus every option the plan lacks: client keys, the external gateway, a model
//!   served by several deployments, mapped deployment names, an MCP server without a key) and an
//!   AI-disabled config.
//! - One test per deployment lesson (the plan's five, then MCP credentials, extension hooks,
//!   Flux ownership and secret namespaces) plus failover, model name overrides, tool prefixes,
//!   pinned versions and client keys. Each checks the rendered objects against each other and
//!   against the configuration, so it fails when the tree regresses.
//! - `kubectl kustomize` as an oracle for every rendered AI directory (skipped with a message when
//!   kubectl is missing, unless `REQUIRE_ORACLES=1`).
//! - `crates/verify` with the pinned upstream schemas of `../shared/schemas` (CRD schemas with
//!   their CEL rules, Flux graph, AI Gateway cross-resource rules) on the rendered trees, and on
//!   regressed copies to show it notices.
//!
//! Secrets here are the configs' fake values and stay in memory (or in a temporary directory for
//! kubectl); real runs encrypt them before anything is written.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use render::Rendered;
use schema::Severity;
use serde_json::Value;

const AI_DIR: &str = "kubernetes/apps/ai-gateway/";
const EG_RELEASE: &str = "kubernetes/apps/network/envoy-gateway/app/helmrelease.yaml";
const AI_NS: &str = "envoy-ai-gateway-system";
const EG_NS: &str = "network";
const CONTROLLER_FQDN: &str = "ai-gateway-controller.envoy-ai-gateway-system.svc.cluster.local";

/// Replaces the AI section of `public.yaml` for the `full` case: every option, plus values that
/// must reach the cluster unchanged (quotes, `#`, `: `, `${…}`, `{{ }}` in a key).
const FULL_AI: &str = include_str!("fixtures/ai-gateway-full.yaml");

/// Replaces the AI section of `public.yaml` for the `providers` case (issue 16): Azure with an API
/// key and with Entra ID, OpenAI, an in-cluster OpenAI-compatible Service, Anthropic and Bedrock,
/// one model failing over from Azure to OpenAI.
const PROVIDERS_AI: &str = include_str!("fixtures/ai-gateway-providers.yaml");

// ---------------------------------------------------------------------------------------------
// Rendering the cases
// ---------------------------------------------------------------------------------------------

struct Case {
    name: &'static str,
    config: schema::Config,
    rendered: Rendered,
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(common::repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `public.yaml` up to its AI section.
fn public_without_ai() -> String {
    let text = read(".github/tests/public.yaml");
    let cut = text
        .find("\n# AI Gateway")
        .expect("public.yaml has an `# AI Gateway` section");
    text[..=cut].to_owned()
}

fn render_case(name: &'static str, cluster: &str) -> Case {
    let nodes = read(".github/tests/nodes.yaml");
    let out = schema::load_str(
        cluster,
        Path::new(&format!("{name}.yaml")),
        &nodes,
        Path::new("nodes.yaml"),
    );
    let Some(config) = out.config else {
        panic!(
            "{name}: invalid config:\n{}",
            out.diagnostics
                .iter()
                .map(|d| d.render(Some(cluster)))
                .collect::<String>()
        );
    };
    let root = common::repo_root();
    let rendered = render::render_templates(
        &root.join("templates"),
        &config.context(),
        &common::fake_inputs(),
    )
    .unwrap_or_else(|d| {
        panic!(
            "{name}: {}",
            d.iter().map(|d| d.render(None)).collect::<String>()
        )
    });
    Case {
        name,
        config,
        rendered,
    }
}

fn case(name: &str) -> &'static Case {
    static PUBLIC: OnceLock<Case> = OnceLock::new();
    static PRIVATE: OnceLock<Case> = OnceLock::new();
    static FULL: OnceLock<Case> = OnceLock::new();
    static DISABLED: OnceLock<Case> = OnceLock::new();
    static PROVIDERS: OnceLock<Case> = OnceLock::new();
    match name {
        "public" => {
            PUBLIC.get_or_init(|| render_case("public", &read(".github/tests/public.yaml")))
        }
        "private" => {
            PRIVATE.get_or_init(|| render_case("private", &read(".github/tests/private.yaml")))
        }
        "full" => FULL.get_or_init(|| render_case("full", &(public_without_ai() + FULL_AI))),
        "disabled" => DISABLED.get_or_init(|| render_case("disabled", &public_without_ai())),
        "providers" => PROVIDERS
            .get_or_init(|| render_case("providers", &(public_without_ai() + PROVIDERS_AI))),
        other => panic!("no case {other}"),
    }
}

/// The cases with the AI Gateway enabled.
/// The enabled cases whose backends are all Azure deployments with API keys (the lessons that
/// count Azure objects); `providers` has its own tests below.
fn azure_only() -> [&'static Case; 3] {
    [case("public"), case("private"), case("full")]
}

fn enabled() -> [&'static Case; 4] {
    [
        case("public"),
        case("private"),
        case("full"),
        case("providers"),
    ]
}

// ---------------------------------------------------------------------------------------------
// The rendered objects, with the namespace Flux applies them in
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Obj {
    path: String,
    doc: Value,
    /// metadata.namespace, else the namespace the owning kustomization gives it.
    namespace: Option<String>,
}

impl Obj {
    fn kind(&self) -> &str {
        str_at(&self.doc, "/kind")
    }
    fn name(&self) -> &str {
        str_at(&self.doc, "/metadata/name")
    }
    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
    fn id(&self) -> String {
        format!(
            "{} {}/{} ({})",
            self.kind(),
            self.ns(),
            self.name(),
            self.path
        )
    }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> &'v str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn arr<'v>(v: &'v Value, pointer: &str) -> &'v [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A Flux Kustomization of the rendered tree.
#[derive(Debug, Clone)]
struct FluxKs {
    file: String,
    namespace: String,
    name: String,
    /// `spec.path` without `./`.
    path: String,
    target_namespace: Option<String>,
    depends_on: Vec<(String, Option<String>)>,
}

struct Tree<'a> {
    r: &'a Rendered,
    objs: Vec<Obj>,
    flux: Vec<FluxKs>,
}

impl<'a> Tree<'a> {
    fn new(r: &'a Rendered) -> Tree<'a> {
        let flux = flux_kustomizations(r);
        let mut objs = Vec::new();
        for path in r.files.keys() {
            if !(path.starts_with(AI_DIR) || path == EG_RELEASE) || !path.ends_with(".yaml") {
                continue;
            }
            for doc in common::documents(r, path) {
                if doc.is_null() {
                    continue;
                }
                let namespace = doc
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| namespace_of_file(r, &flux, path));
                objs.push(Obj {
                    path: path.clone(),
                    doc,
                    namespace,
                });
            }
        }
        Tree { r, objs, flux }
    }

    fn kind(&self, kind: &str) -> Vec<&Obj> {
        self.objs.iter().filter(|o| o.kind() == kind).collect()
    }

    fn one(&self, kind: &str, namespace: &str, name: &str) -> Option<&Obj> {
        let found: Vec<&Obj> = self
            .objs
            .iter()
            .filter(|o| o.kind() == kind && o.ns() == namespace && o.name() == name)
            .collect();
        assert!(
            found.len() <= 1,
            "{kind} {namespace}/{name} is rendered {} times",
            found.len()
        );
        found.into_iter().next()
    }

    fn eg_values(&self) -> &Value {
        let hr = self
            .objs
            .iter()
            .find(|o| o.path == EG_RELEASE && o.kind() == "HelmRelease")
            .expect("the Envoy Gateway HelmRelease is rendered");
        hr.doc.pointer("/spec/values").expect("EG values")
    }

    fn eg_release(&self) -> &Value {
        &self
            .objs
            .iter()
            .find(|o| o.path == EG_RELEASE && o.kind() == "HelmRelease")
            .expect("the Envoy Gateway HelmRelease is rendered")
            .doc
    }

    fn text(&self, path: &str) -> String {
        String::from_utf8(self.r.files[path].contents.clone()).unwrap()
    }
}

/// Reads `kustomization.yaml` of a directory (rendered path without trailing `/`).
fn kustomization(r: &Rendered, dir: &str) -> Option<Value> {
    let path = format!("{dir}/kustomization.yaml");
    r.files
        .contains_key(&path)
        .then(|| common::documents(r, &path).into_iter().next().unwrap())
}

/// Every Flux Kustomization of the tree: `kubernetes/flux/cluster/ks.yaml` (explicit namespace)
/// and the `ks.yaml` files under `kubernetes/apps/<ns-dir>/`, which take the namespace of their
/// namespace directory's kustomization.
fn flux_kustomizations(r: &Rendered) -> Vec<FluxKs> {
    let mut out = Vec::new();
    for path in r.files.keys() {
        let in_apps = path.starts_with("kubernetes/apps/") && path.ends_with("/ks.yaml");
        if !(in_apps || path == "kubernetes/flux/cluster/ks.yaml") {
            continue;
        }
        let dir_ns = path
            .strip_prefix("kubernetes/apps/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|ns_dir| kustomization(r, &format!("kubernetes/apps/{ns_dir}")))
            .and_then(|k| {
                k.get("namespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        for doc in common::documents(r, path) {
            if str_at(&doc, "/kind") != "Kustomization"
                || !str_at(&doc, "/apiVersion").starts_with("kustomize.toolkit.fluxcd.io/")
            {
                continue;
            }
            let namespace = doc
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(dir_ns.clone())
                .unwrap_or_else(|| panic!("{path}: Kustomization without a namespace"));
            out.push(FluxKs {
                file: path.clone(),
                namespace,
                name: str_at(&doc, "/metadata/name").to_owned(),
                path: str_at(&doc, "/spec/path")
                    .trim_start_matches("./")
                    .to_owned(),
                target_namespace: doc
                    .pointer("/spec/targetNamespace")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                depends_on: arr(&doc, "/spec/dependsOn")
                    .iter()
                    .map(|d| {
                        (
                            str_at(d, "/name").to_owned(),
                            d.get("namespace")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        )
                    })
                    .collect(),
            });
        }
    }
    out
}

/// The namespace a file's objects land in: the owning app Kustomization's `targetNamespace`, or
/// for namespace-level files the namespace directory's `namespace:`.
fn namespace_of_file(r: &Rendered, flux: &[FluxKs], path: &str) -> Option<String> {
    if let Some(ks) = flux
        .iter()
        .filter(|k| path.starts_with(&format!("{}/", k.path)))
        .max_by_key(|k| k.path.len())
        && ks.path != "kubernetes/apps"
    {
        return ks.target_namespace.clone();
    }
    let ns_dir = path.strip_prefix("kubernetes/apps/")?.split('/').next()?;
    kustomization(r, &format!("kubernetes/apps/{ns_dir}"))?
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The namespace of a document found by [`common::all_documents`].
fn namespace_of_doc(r: &Rendered, flux: &[FluxKs], all: &[(String, Value)], doc: &Value) -> String {
    if let Some(ns) = doc.pointer("/metadata/namespace").and_then(Value::as_str) {
        return ns.to_owned();
    }
    let path = &all
        .iter()
        .find(|(_, d)| d == doc)
        .expect("document of the tree")
        .0;
    namespace_of_file(r, flux, path).unwrap_or_default()
}

/// The files a kustomize build of `dir` applies, as Flux runs it: the directory's
/// `kustomization.yaml` (resources and components, recursively), or, without one, every YAML
/// file of the directory plus each sub-directory (Flux generates the kustomization).
fn applied_files(r: &Rendered, dir: &str, out: &mut Vec<String>) {
    let dir = dir.trim_end_matches('/');
    if let Some(k) = kustomization(r, dir) {
        for entry in arr(&k, "/resources").iter().chain(arr(&k, "/components")) {
            let target = normalize(&format!("{dir}/{}", entry.as_str().unwrap_or_default()));
            if r.files.contains_key(&target) {
                out.push(target);
            } else {
                assert!(
                    r.files.keys().any(|p| p.starts_with(&format!("{target}/"))),
                    "{dir}/kustomization.yaml lists `{}`, which is not rendered",
                    entry.as_str().unwrap_or_default()
                );
                applied_files(r, &target, out);
            }
        }
        return;
    }
    let prefix = format!("{dir}/");
    let mut subdirs = BTreeSet::new();
    for p in r.files.keys().filter(|p| p.starts_with(&prefix)) {
        let rest = &p[prefix.len()..];
        match rest.split_once('/') {
            Some((sub, _)) => {
                subdirs.insert(format!("{prefix}{sub}"));
            }
            None if rest.ends_with(".yaml") => out.push(p.clone()),
            None => {}
        }
    }
    for sub in subdirs {
        applied_files(r, &sub, out);
    }
}

/// Resolves `.` and `..` in a `/`-separated path.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn ai_files(r: &Rendered) -> Vec<&String> {
    r.files.keys().filter(|p| p.starts_with(AI_DIR)).collect()
}

/// The AI output as one text for snapshots: the AI subtree and the Envoy Gateway HelmRelease.
fn ai_text(r: &Rendered) -> String {
    let mut out = String::new();
    for (path, file) in &r.files {
        if path.starts_with(AI_DIR) || path == EG_RELEASE {
            out.push_str(&format!("=== {path} ===\n"));
            out.push_str(&String::from_utf8_lossy(&file.contents));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

#[test]
fn snapshot_public() {
    insta::assert_snapshot!("public", ai_text(&case("public").rendered));
}

#[test]
fn snapshot_private() {
    insta::assert_snapshot!("private", ai_text(&case("private").rendered));
}

#[test]
fn snapshot_full() {
    insta::assert_snapshot!("full", ai_text(&case("full").rendered));
}

#[test]
fn snapshot_providers() {
    insta::assert_snapshot!("providers", ai_text(&case("providers").rendered));
}

#[test]
fn snapshot_disabled_has_no_ai_output() {
    let c = case("disabled");
    assert!(!c.config.cluster.ai_gateway_enabled);
    let r = &c.rendered;
    assert_eq!(
        ai_files(r),
        Vec::<&String>::new(),
        "AI files rendered while disabled"
    );
    // Nothing anywhere mentions the AI Gateway: no values, no annotations, no dependsOn.
    for (path, file) in &r.files {
        let text = String::from_utf8_lossy(&file.contents);
        for needle in [
            "ai-gateway",
            "envoy-ai-gateway-system",
            "extensionManager",
            "extensionApis",
            "rateLimit",
            "aigateway.envoyproxy.io",
        ] {
            assert!(
                !text.contains(needle),
                "{path} mentions `{needle}` while the AI Gateway is disabled"
            );
        }
    }
    let tree = Tree::new(r);
    let values = tree.eg_values();
    assert!(
        values
            .pointer("/config/envoyGateway/extensionManager")
            .is_none()
    );
    assert!(
        values
            .pointer("/config/envoyGateway/extensionApis")
            .is_none()
    );
    assert!(values.pointer("/config/envoyGateway/rateLimit").is_none());
    assert!(tree.eg_release().pointer("/spec/postRenderers").is_none());
    insta::assert_snapshot!("disabled", ai_text(r));
}

/// The AI keys gate their parts: MCP and rate limiting render nothing when off.
#[test]
fn optional_parts_follow_their_switches() {
    let private = &case("private").rendered;
    assert!(!case("private").config.cluster.ai_gateway_mcp_enabled);
    assert!(!case("private").config.cluster.ai_gateway_ratelimit_enabled);
    for p in ai_files(private) {
        for part in [
            "/mcp/",
            "/redis/",
            "ratelimit",
            "securitypolicy",
            "failover",
            "gateway/app/secret",
        ] {
            assert!(!p.contains(part), "{p} rendered for the minimal config");
        }
    }
    let tree = Tree::new(private);
    assert!(
        tree.eg_values()
            .pointer("/config/envoyGateway/rateLimit")
            .is_none()
    );
    // Switched on, they are there.
    let full = &case("full").rendered;
    for p in [
        "kubernetes/apps/ai-gateway/mcp/app/mcproute.yaml",
        "kubernetes/apps/ai-gateway/redis/app/deployment.yaml",
        "kubernetes/apps/ai-gateway/routes/app/ratelimit-policy.yaml",
        "kubernetes/apps/ai-gateway/routes/app/securitypolicy.yaml",
        "kubernetes/apps/ai-gateway/routes/app/failover-policy.yaml",
        "kubernetes/apps/ai-gateway/gateway/app/secret.sops.yaml",
    ] {
        assert!(
            full.files.contains_key(p),
            "{p} missing for the full config"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Lesson 1: AIGatewayRoute backendRefs by name only
// ---------------------------------------------------------------------------------------------

#[test]
fn lesson1_backend_refs_by_name_only() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let routes = tree.kind("AIGatewayRoute");
        assert_eq!(routes.len(), 1, "{}: one AIGatewayRoute", c.name);
        for route in routes {
            for (i, rule) in arr(&route.doc, "/spec/rules").iter().enumerate() {
                let refs = arr(rule, "/backendRefs");
                assert!(
                    !refs.is_empty(),
                    "{}: rule {i} has no backendRefs",
                    route.id()
                );
                for br in refs {
                    assert!(
                        br.get("kind").is_none() && br.get("group").is_none(),
                        "{}: rule {i} backendRef {br} sets kind/group; v0.4.0 then accepts only InferencePool",
                        route.id()
                    );
                    assert!(
                        br.get("namespace").is_none(),
                        "{}: cross-namespace backendRef {br}",
                        route.id()
                    );
                    let name = str_at(br, "/name");
                    assert!(
                        tree.one("AIServiceBackend", route.ns(), name).is_some(),
                        "{}: backendRef `{name}` names no AIServiceBackend in {}",
                        route.id(),
                        route.ns()
                    );
                }
            }
            for p in arr(&route.doc, "/spec/parentRefs") {
                assert_eq!(str_at(p, "/kind"), "Gateway");
                assert!(
                    tree.one("Gateway", route.ns(), str_at(p, "/name"))
                        .is_some()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lesson 2: Azure keys with type AzureAPIKey
// ---------------------------------------------------------------------------------------------

#[test]
fn lesson2_azure_api_key_type() {
    for c in azure_only() {
        let tree = Tree::new(&c.rendered);
        let backends = tree.kind("AIServiceBackend");
        assert_eq!(
            backends.len(),
            c.config.cluster.ai_gateway_azure_deployments.len()
        );
        for sb in &backends {
            assert_eq!(
                str_at(&sb.doc, "/spec/schema/name"),
                "AzureOpenAI",
                "{}",
                sb.id()
            );
            let br = sb.doc.pointer("/spec/backendRef").unwrap();
            assert_eq!(
                str_at(br, "/kind"),
                "Backend",
                "{}: kind must be explicit",
                sb.id()
            );
            assert_eq!(str_at(br, "/group"), "gateway.envoyproxy.io", "{}", sb.id());
            assert!(
                tree.one("Backend", sb.ns(), str_at(br, "/name")).is_some(),
                "{}: no Backend",
                sb.id()
            );
            // Exactly one BackendSecurityPolicy per AIServiceBackend, of type AzureAPIKey.
            let bsps: Vec<&Obj> = tree
                .kind("BackendSecurityPolicy")
                .into_iter()
                .filter(|p| {
                    p.ns() == sb.ns()
                        && arr(&p.doc, "/spec/targetRefs")
                            .iter()
                            .any(|t| str_at(t, "/name") == sb.name())
                })
                .collect();
            assert_eq!(
                bsps.len(),
                1,
                "{}: {} BackendSecurityPolicies",
                sb.id(),
                bsps.len()
            );
            let bsp = bsps[0];
            assert_eq!(
                str_at(&bsp.doc, "/spec/type"),
                "AzureAPIKey",
                "{}: Azure needs the api-key header",
                bsp.id()
            );
            assert!(bsp.doc.pointer("/spec/apiKey").is_none(), "{}", bsp.id());
            assert!(
                bsp.doc
                    .pointer("/spec/azureAPIKey/secretRef/name")
                    .is_some(),
                "{}",
                bsp.id()
            );
        }
        // Every configured deployment reaches Azure with its own key and API version.
        for d in &c.config.cluster.ai_gateway_azure_deployments {
            let be = tree
                .kind("Backend")
                .into_iter()
                .find(|b| {
                    arr(&b.doc, "/spec/endpoints")
                        .iter()
                        .any(|e| str_at(e, "/fqdn/hostname") == d.host)
                })
                .unwrap_or_else(|| panic!("{}: no Backend for {}", c.name, d.host));
            let sb = tree
                .one("AIServiceBackend", be.ns(), be.name())
                .expect("AIServiceBackend named like its Backend");
            assert_eq!(str_at(&sb.doc, "/spec/schema/version"), d.api_version);
            let bsp = tree
                .kind("BackendSecurityPolicy")
                .into_iter()
                .find(|p| {
                    arr(&p.doc, "/spec/targetRefs")
                        .iter()
                        .any(|t| str_at(t, "/name") == sb.name())
                })
                .unwrap();
            let secret = tree
                .one(
                    "Secret",
                    bsp.ns(),
                    str_at(&bsp.doc, "/spec/azureAPIKey/secretRef/name"),
                )
                .unwrap_or_else(|| panic!("{}: Secret of {} missing", c.name, bsp.id()));
            assert_eq!(
                Some(str_at(&secret.doc, "/stringData/apiKey")),
                d.api_key.as_deref(),
                "{}",
                secret.id()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lesson 3: a BackendTLSPolicy for every Backend
// ---------------------------------------------------------------------------------------------

#[test]
fn lesson3_every_backend_has_a_tls_policy() {
    for c in azure_only() {
        let tree = Tree::new(&c.rendered);
        let backends = tree.kind("Backend");
        let expected = c.config.cluster.ai_gateway_azure_deployments.len()
            + if c.config.cluster.ai_gateway_mcp_enabled {
                c.config.cluster.ai_gateway_mcp_servers.len()
            } else {
                0
            };
        assert_eq!(backends.len(), expected, "{}: Backends", c.name);
        for be in backends {
            let endpoints = arr(&be.doc, "/spec/endpoints");
            assert_eq!(endpoints.len(), 1, "{}", be.id());
            let host = str_at(&endpoints[0], "/fqdn/hostname");
            assert_eq!(
                endpoints[0].pointer("/fqdn/port"),
                Some(&Value::from(443)),
                "{}",
                be.id()
            );
            let policies: Vec<&Obj> = tree
                .kind("BackendTLSPolicy")
                .into_iter()
                .filter(|p| {
                    p.ns() == be.ns()
                        && arr(&p.doc, "/spec/targetRefs").iter().any(|t| {
                            str_at(t, "/name") == be.name()
                                && str_at(t, "/kind") == "Backend"
                                && str_at(t, "/group") == "gateway.envoyproxy.io"
                        })
                })
                .collect();
            assert_eq!(
                policies.len(),
                1,
                "{}: {} BackendTLSPolicies",
                be.id(),
                policies.len()
            );
            let p = policies[0];
            assert_eq!(
                str_at(&p.doc, "/apiVersion"),
                "gateway.networking.k8s.io/v1",
                "{}",
                p.id()
            );
            assert_eq!(
                str_at(&p.doc, "/spec/validation/hostname"),
                host,
                "{}: SNI/hostname",
                p.id()
            );
            assert_eq!(
                str_at(&p.doc, "/spec/validation/wellKnownCACertificates"),
                "System",
                "{}",
                p.id()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lesson 4: token rate limiting (llmRequestCosts, Redis backend, matching keys)
// ---------------------------------------------------------------------------------------------

#[test]
fn lesson4_token_rate_limit_is_wired() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let route = tree.kind("AIGatewayRoute")[0];
        let costs: BTreeMap<&str, &str> = arr(&route.doc, "/spec/llmRequestCosts")
            .iter()
            .map(|c| (str_at(c, "/metadataKey"), str_at(c, "/type")))
            .collect();
        for t in ["InputToken", "OutputToken", "TotalToken"] {
            assert!(
                costs.values().any(|v| *v == t),
                "{}: llmRequestCosts lacks {t}",
                c.name
            );
        }
        let policies: Vec<&Obj> = tree
            .kind("BackendTrafficPolicy")
            .into_iter()
            .filter(|p| p.doc.pointer("/spec/rateLimit").is_some())
            .collect();
        let redis_url = tree
            .eg_values()
            .pointer("/config/envoyGateway/rateLimit/backend")
            .cloned();
        if !c.config.cluster.ai_gateway_ratelimit_enabled {
            assert!(
                policies.is_empty(),
                "{}: rate limit without the switch",
                c.name
            );
            assert!(
                redis_url.is_none(),
                "{}: Redis backend without the switch",
                c.name
            );
            assert!(tree.kind("Deployment").is_empty());
            continue;
        }
        assert_eq!(policies.len(), 1, "{}", c.name);
        let btp = policies[0];
        // On the ai-gateway Gateway, per distinct x-user-id, charged from the response.
        let targets = arr(&btp.doc, "/spec/targetRefs");
        assert_eq!(targets.len(), 1);
        assert_eq!(str_at(&targets[0], "/kind"), "Gateway");
        assert!(
            tree.one("Gateway", btp.ns(), str_at(&targets[0], "/name"))
                .is_some()
        );
        let rules = arr(&btp.doc, "/spec/rateLimit/global/rules");
        assert!(!rules.is_empty());
        for rule in rules {
            let headers = arr(rule, "/clientSelectors/0/headers");
            assert_eq!(str_at(&headers[0], "/name"), "x-user-id");
            assert_eq!(str_at(&headers[0], "/type"), "Distinct");
            assert_eq!(
                rule.pointer("/limit/requests").and_then(Value::as_i64),
                Some(c.config.cluster.ai_gateway_ratelimit_default_limit)
            );
            assert_eq!(str_at(rule, "/limit/unit"), "Hour");
            assert_eq!(str_at(rule, "/cost/request/from"), "Number");
            assert_eq!(rule.pointer("/cost/request/number"), Some(&Value::from(0)));
            assert_eq!(str_at(rule, "/cost/response/from"), "Metadata");
            assert_eq!(
                str_at(rule, "/cost/response/metadata/namespace"),
                "io.envoy.ai_gateway"
            );
            let key = str_at(rule, "/cost/response/metadata/key");
            assert!(
                costs.contains_key(key),
                "{}: the limit charges `{key}`, which llmRequestCosts never writes ({costs:?})",
                c.name
            );
            // One budget per client across all models, not one per model.
            assert_eq!(rule.get("shared"), Some(&Value::Bool(true)));
        }
        // Envoy Gateway keeps the counters in the Redis this tree deploys.
        let backend = redis_url.expect("EG values: rateLimit.backend");
        assert_eq!(str_at(&backend, "/type"), "Redis");
        let url = str_at(&backend, "/redis/url");
        let (host, port) = url.rsplit_once(':').expect("host:port");
        let labels: Vec<&str> = host.split('.').collect();
        assert_eq!(&labels[2..], ["svc", "cluster", "local"], "{url}");
        let svc = tree
            .one("Service", labels[1], labels[0])
            .unwrap_or_else(|| panic!("{}: {url} names no rendered Service", c.name));
        assert!(
            arr(&svc.doc, "/spec/ports")
                .iter()
                .any(|p| p.get("port").and_then(Value::as_i64) == port.parse().ok()),
            "{}: Service {} has no port {port}",
            c.name,
            svc.id()
        );
        // The Service selects the Redis pods.
        let deploy = tree
            .one("Deployment", svc.ns(), "redis")
            .expect("Redis Deployment");
        let selector = svc
            .doc
            .pointer("/spec/selector")
            .unwrap()
            .as_object()
            .unwrap();
        let labels = deploy
            .doc
            .pointer("/spec/template/metadata/labels")
            .unwrap();
        for (k, v) in selector {
            assert_eq!(
                labels.get(k),
                Some(v),
                "Service selector {k} does not match the pods"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lesson 5: the HTTPRoute forwards to Service `ai-gateway` port 80 in the Gateway's namespace
// ---------------------------------------------------------------------------------------------

#[test]
fn lesson5_httproute_reaches_the_ai_gateway_service() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let gw = tree
            .one("Gateway", AI_NS, "ai-gateway")
            .expect("Gateway ai-gateway");
        let listener_ports: Vec<i64> = arr(&gw.doc, "/spec/listeners")
            .iter()
            .filter_map(|l| l.get("port").and_then(Value::as_i64))
            .collect();
        // The EnvoyProxy the Gateway uses pins the Service name (GatewayNamespace mode gives the
        // same name; the pin makes it independent of the deploy mode).
        let pref = gw
            .doc
            .pointer("/spec/infrastructure/parametersRef")
            .expect("parametersRef");
        assert_eq!(str_at(pref, "/kind"), "EnvoyProxy");
        let proxy = tree
            .one("EnvoyProxy", gw.ns(), str_at(pref, "/name"))
            .expect("EnvoyProxy");
        let service = str_at(&proxy.doc, "/spec/provider/kubernetes/envoyService/name");
        assert_eq!(service, gw.name());

        let routes: Vec<&Obj> = tree
            .kind("HTTPRoute")
            .into_iter()
            .filter(|r| {
                arr(&r.doc, "/spec/hostnames")
                    .iter()
                    .any(|h| h.as_str() == Some("aiops.${SECRET_DOMAIN}"))
            })
            .collect();
        assert_eq!(
            routes.len(),
            1,
            "{}: one HTTPRoute for aiops.<domain>",
            c.name
        );
        let route = routes[0];
        for rule in arr(&route.doc, "/spec/rules") {
            for br in arr(rule, "/backendRefs") {
                assert_eq!(str_at(br, "/kind"), "Service");
                assert_eq!(
                    str_at(br, "/name"),
                    service,
                    "{}: HTTPRoute → wrong Service",
                    c.name
                );
                let ns = br
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(route.ns());
                assert_eq!(
                    ns,
                    gw.ns(),
                    "{}: the Envoy Service lives in the Gateway's namespace",
                    c.name
                );
                let port = br.get("port").and_then(Value::as_i64).unwrap();
                assert_eq!(port, 80);
                assert!(
                    listener_ports.contains(&port),
                    "{}: no listener on {port}",
                    c.name
                );
            }
        }
        // Attached over HTTPS to the internal gateway; to the external one only when asked.
        let parents: BTreeSet<(&str, &str, &str)> = arr(&route.doc, "/spec/parentRefs")
            .iter()
            .map(|p| {
                (
                    str_at(p, "/name"),
                    str_at(p, "/namespace"),
                    str_at(p, "/sectionName"),
                )
            })
            .collect();
        let mut want = BTreeSet::from([("envoy-internal", EG_NS, "https")]);
        if c.config.cluster.ai_gateway_external {
            want.insert(("envoy-external", EG_NS, "https"));
        }
        assert_eq!(parents, want, "{}", c.name);
        // Those parents exist in the base tree: Gateways in `network` whose `https` listener
        // admits routes from other namespaces, and the GatewayClass the AI Gateway reuses.
        let all = common::all_documents(&c.rendered);
        let find = |kind: &str, ns: Option<&str>, name: &str| {
            all.iter()
                .map(|(_, d)| d)
                .find(|d| {
                    str_at(d, "/kind") == kind
                        && str_at(d, "/metadata/name") == name
                        && ns.is_none_or(|ns| {
                            namespace_of_doc(&c.rendered, &tree.flux, &all, d) == ns
                        })
                })
                .cloned()
        };
        for (name, ns, section) in &want {
            let parent = find("Gateway", Some(ns), name).unwrap_or_else(|| {
                panic!("{}: parent Gateway {ns}/{name} is not rendered", c.name)
            });
            let listener = arr(&parent, "/spec/listeners")
                .iter()
                .find(|l| str_at(l, "/name") == *section)
                .unwrap_or_else(|| panic!("{}: {ns}/{name} has no listener {section}", c.name));
            assert_eq!(
                str_at(listener, "/allowedRoutes/namespaces/from"),
                "All",
                "{}: {name}",
                c.name
            );
        }
        let class = str_at(&gw.doc, "/spec/gatewayClassName");
        assert!(
            find("GatewayClass", None, class).is_some(),
            "{}: GatewayClass {class} is not rendered",
            c.name
        );
        // The route must not collide with the HTTPRoutes the AI Gateway controller generates.
        let mut generated: Vec<String> = tree
            .kind("AIGatewayRoute")
            .iter()
            .map(|r| r.name().to_owned())
            .collect();
        for m in tree.kind("MCPRoute") {
            generated.push(format!("ai-eg-mcp-main-{}", m.name()));
            for br in arr(&m.doc, "/spec/backendRefs") {
                generated.push(format!("ai-eg-mcp-br-{}-{}", m.name(), str_at(br, "/name")));
            }
        }
        assert!(
            !generated.contains(&route.name().to_owned()),
            "{}: HTTPRoute name collides",
            c.name
        );
        // Its own address only when configured (Cilium LB IPAM) and every request needs a client
        // key (issue 13); otherwise ClusterIP.
        let svc = proxy
            .doc
            .pointer("/spec/provider/kubernetes/envoyService")
            .unwrap();
        let opened = c
            .config
            .cluster
            .ai_gateway_addr
            .as_ref()
            .filter(|_| !c.config.cluster.ai_gateway_client_keys.is_empty());
        match opened {
            Some(addr) => {
                assert_eq!(str_at(svc, "/type"), "LoadBalancer", "{}", c.name);
                assert_eq!(
                    str_at(svc, "/annotations/lbipam.cilium.io~1ips"),
                    addr,
                    "{}",
                    c.name
                );
            }
            None => {
                assert_eq!(str_at(svc, "/type"), "ClusterIP", "{}", c.name);
                assert!(
                    svc.get("annotations").is_none() && svc.get("externalTrafficPolicy").is_none()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lesson: MCP credentials on the MCPRoute, never a BackendSecurityPolicy
// ---------------------------------------------------------------------------------------------

#[test]
fn lesson_mcp_credentials_on_the_mcproute() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        // v0.4.0: a BackendSecurityPolicy may only target AIServiceBackends.
        for bsp in tree.kind("BackendSecurityPolicy") {
            for t in arr(&bsp.doc, "/spec/targetRefs") {
                assert_eq!(str_at(t, "/kind"), "AIServiceBackend", "{}", bsp.id());
                assert_eq!(
                    str_at(t, "/group"),
                    "aigateway.envoyproxy.io",
                    "{}",
                    bsp.id()
                );
            }
        }
        let routes = tree.kind("MCPRoute");
        if !c.config.cluster.ai_gateway_mcp_enabled {
            assert!(routes.is_empty(), "{}", c.name);
            continue;
        }
        assert_eq!(routes.len(), 1);
        let route = routes[0];
        assert_eq!(str_at(&route.doc, "/spec/path"), "/mcp");
        let refs = arr(&route.doc, "/spec/backendRefs");
        assert_eq!(refs.len(), c.config.cluster.ai_gateway_mcp_servers.len());
        for server in &c.config.cluster.ai_gateway_mcp_servers {
            let br = refs
                .iter()
                .find(|b| str_at(b, "/name") == server.name)
                .unwrap_or_else(|| panic!("{}: no backendRef named `{}`", c.name, server.name));
            assert_eq!(str_at(br, "/path"), server.path);
            match &server.api_key {
                Some(key) => {
                    let sp = br
                        .pointer("/securityPolicy/apiKey")
                        .expect("securityPolicy.apiKey");
                    assert!(
                        sp.get("inline").is_none(),
                        "{}: token inline in the MCPRoute",
                        c.name
                    );
                    let secret_name = str_at(sp, "/secretRef/name");
                    let secret = tree
                        .one("Secret", route.ns(), secret_name)
                        .unwrap_or_else(|| {
                            panic!("{}: Secret {secret_name} not in {}", c.name, route.ns())
                        });
                    assert_eq!(str_at(&secret.doc, "/stringData/apiKey"), key);
                    assert!(secret.path.ends_with(".sops.yaml"));
                }
                None => assert!(
                    br.get("securityPolicy").is_none(),
                    "{}: {}",
                    c.name,
                    server.name
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lesson: Envoy Gateway calls the AI Gateway controller (extension hooks, Backend API)
// ---------------------------------------------------------------------------------------------

#[test]
fn lesson_envoy_gateway_extension_hooks() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let values = tree.eg_values();
        let eg = values
            .pointer("/config/envoyGateway")
            .expect("config.envoyGateway");
        // The base values are merged into, not replaced.
        assert_eq!(
            str_at(eg, "/provider/kubernetes/deploy/type"),
            "GatewayNamespace",
            "{}",
            c.name
        );
        assert_eq!(
            eg.pointer("/extensionApis/enableBackend"),
            Some(&Value::Bool(true)),
            "{}",
            c.name
        );
        for part in ["listener", "route", "cluster", "secret"] {
            assert_eq!(
                eg.pointer(&format!(
                    "/extensionManager/hooks/xdsTranslator/translation/{part}/includeAll"
                )),
                Some(&Value::Bool(true)),
                "{}: translation.{part}",
                c.name
            );
        }
        let post: Vec<&str> = arr(eg, "/extensionManager/hooks/xdsTranslator/post")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(post, ["Translation", "Cluster", "Route"], "{}", c.name);
        assert_eq!(
            str_at(eg, "/extensionManager/service/fqdn/hostname"),
            CONTROLLER_FQDN
        );
        assert_eq!(
            eg.pointer("/extensionManager/service/fqdn/port"),
            Some(&Value::from(1063))
        );
        // Decided: fail open (see docs/ai-gateway.md).
        assert_eq!(
            eg.pointer("/extensionManager/failOpen"),
            Some(&Value::Bool(true))
        );

        // The FQDN names the controller this tree installs: chart ai-gateway-helm in AI_NS
        // (its Service is `ai-gateway-controller` unless fullnameOverride changes it).
        let hr = tree
            .one("HelmRelease", AI_NS, "ai-gateway-controller")
            .expect("controller HelmRelease");
        assert!(
            hr.doc
                .pointer("/spec/values/controller/fullnameOverride")
                .is_none()
        );
        let oci = tree
            .one(
                "OCIRepository",
                AI_NS,
                str_at(&hr.doc, "/spec/chartRef/name"),
            )
            .expect("controller OCIRepository");
        assert_eq!(
            str_at(&oci.doc, "/spec/url"),
            "oci://docker.io/envoyproxy/ai-gateway-helm"
        );
        // The chart binds Envoy Gateway's ServiceAccount in the namespace Envoy Gateway runs in.
        let eg_ks = tree
            .flux
            .iter()
            .find(|k| k.path == "kubernetes/apps/network/envoy-gateway/app")
            .expect("envoy-gateway Kustomization");
        assert_eq!(
            str_at(&hr.doc, "/spec/values/envoyGateway/namespace"),
            eg_ks.target_namespace.as_deref().unwrap()
        );

        // Envoy Gateway reads this config only at start: its pods roll when the AI part changes.
        let patch = arr(tree.eg_release(), "/spec/postRenderers/0/kustomize/patches")
            .iter()
            .find(|p| {
                str_at(p, "/target/kind") == "Deployment"
                    && str_at(p, "/target/name") == "envoy-gateway"
            })
            .expect("post-renderer patch on Deployment envoy-gateway");
        let patch_doc: Value = parse_yaml(str_at(patch, "/patch"));
        let annotation = str_at(
            &patch_doc,
            "/spec/template/metadata/annotations/ai-gateway~1envoy-gateway-config",
        );
        assert!(annotation.contains(CONTROLLER_FQDN), "{annotation}");
        let rl_on = c.config.cluster.ai_gateway_ratelimit_enabled;
        assert_eq!(
            annotation.contains("rateLimit=off"),
            !rl_on,
            "{}: {annotation}",
            c.name
        );
    }
    // The annotation differs between configurations whose AI settings differ.
    let a = |n| {
        let tree = Tree::new(&case(n).rendered);
        serde_json::to_string(tree.eg_release().pointer("/spec/postRenderers").unwrap()).unwrap()
    };
    assert_ne!(a("public"), a("private"));
}

fn parse_yaml(text: &str) -> Value {
    let loaded = schema::yaml::load(text, Path::new("patch"), schema::yaml::Limits::MANIFESTS);
    assert!(
        loaded.diagnostics.is_empty(),
        "patch does not parse: {text}"
    );
    loaded.documents[0].to_json()
}

/// The AI Gateway webhook (failurePolicy: Fail) is scoped to the AI namespace, so other
/// gateways' pods never wait for it.
#[test]
fn controller_webhook_is_scoped_to_the_ai_namespace() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let hr = tree
            .one("HelmRelease", AI_NS, "ai-gateway-controller")
            .unwrap();
        let patch = arr(&hr.doc, "/spec/postRenderers/0/kustomize/patches")
            .iter()
            .find(|p| str_at(p, "/target/kind") == "MutatingWebhookConfiguration")
            .expect("webhook patch");
        let ops = parse_yaml(str_at(patch, "/patch"));
        assert_eq!(str_at(&ops, "/0/op"), "add");
        assert_eq!(str_at(&ops, "/0/path"), "/webhooks/0/namespaceSelector");
        assert_eq!(
            str_at(&ops, "/0/value/matchLabels/kubernetes.io~1metadata.name"),
            AI_NS
        );
        // …which is where the AI gateway's Envoy pods run (GatewayNamespace mode).
        assert!(tree.one("Gateway", AI_NS, "ai-gateway").is_some());
    }
}

// ---------------------------------------------------------------------------------------------
// Lesson: one owning Flux Kustomization per object, every dependsOn resolves
// ---------------------------------------------------------------------------------------------

#[test]
fn lesson_flux_ownership_and_depends_on() {
    for c in enabled() {
        let r = &c.rendered;
        let tree = Tree::new(r);
        let flux = &tree.flux;
        // No second entry point: nothing but cluster-apps applies the namespace directory, and
        // there is no parent ks.yaml for it.
        assert!(!r.files.contains_key("kubernetes/apps/ai-gateway/ks.yaml"));
        for ks in flux {
            assert_ne!(
                ks.path, "kubernetes/apps/ai-gateway",
                "{}: {} applies the namespace dir",
                c.name, ks.file
            );
        }
        let cluster_ks: Vec<&FluxKs> = flux
            .iter()
            .filter(|k| k.file == "kubernetes/flux/cluster/ks.yaml")
            .collect();
        assert_eq!(
            cluster_ks.len(),
            1,
            "{}: kubernetes/flux/cluster/ks.yaml holds only cluster-apps",
            c.name
        );
        assert_eq!(cluster_ks[0].name, "cluster-apps");

        // Owners of every AI file.
        let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ks in flux {
            let mut files = Vec::new();
            applied_files(r, &ks.path, &mut files);
            for f in files {
                owners
                    .entry(f)
                    .or_default()
                    .push(format!("{}/{}", ks.namespace, ks.name));
            }
        }
        for path in ai_files(r) {
            if path.ends_with("/kustomization.yaml") {
                continue;
            }
            let o = owners.get(path).cloned().unwrap_or_default();
            assert_eq!(o.len(), 1, "{}: {path} is applied by {o:?}", c.name);
        }
        // Every object in an app directory ends up in the AI namespace.
        for obj in &tree.objs {
            if obj.path.starts_with(AI_DIR) && !obj.path.ends_with("kustomization.yaml") {
                assert_eq!(obj.ns(), AI_NS, "{}: {}", c.name, obj.id());
            }
        }

        // The AI Kustomizations: namespaced in AI_NS, targetNamespace AI_NS, dependsOn explicit
        // and resolvable, no cycles.
        let ai: Vec<&FluxKs> = flux.iter().filter(|k| k.file.starts_with(AI_DIR)).collect();
        let known: BTreeSet<(String, String)> = flux
            .iter()
            .map(|k| (k.namespace.clone(), k.name.clone()))
            .collect();
        let mut names = BTreeSet::new();
        for ks in &ai {
            assert!(
                names.insert(ks.name.clone()),
                "{}: duplicate Kustomization {}",
                c.name,
                ks.name
            );
            assert_eq!(ks.namespace, AI_NS, "{}: {}", c.name, ks.file);
            // cluster-template convention: named after its app directory, path `<app>/app`.
            let app_dir = ks.file.trim_end_matches("/ks.yaml");
            assert_eq!(ks.path, format!("{app_dir}/app"), "{}: {}", c.name, ks.file);
            assert_eq!(
                Some(ks.name.as_str()),
                app_dir.rsplit('/').next(),
                "{}: {}",
                c.name,
                ks.file
            );
            assert_eq!(
                ks.target_namespace.as_deref(),
                Some(AI_NS),
                "{}: {}",
                c.name,
                ks.file
            );
            assert!(
                r.files
                    .contains_key(&format!("{}/kustomization.yaml", ks.path)),
                "{}: {} path",
                c.name,
                ks.file
            );
            for (name, ns) in &ks.depends_on {
                let ns = ns.as_deref().unwrap_or_else(|| {
                    panic!(
                        "{}: {} dependsOn {name} without a namespace",
                        c.name, ks.file
                    )
                });
                assert!(
                    known.contains(&(ns.to_owned(), name.clone())),
                    "{}: {} dependsOn {ns}/{name}, which does not exist",
                    c.name,
                    ks.file
                );
            }
        }
        assert_acyclic(flux);

        // The order the lessons require.
        let deps = |name: &str| -> BTreeSet<(String, String)> {
            let ks = ai
                .iter()
                .find(|k| k.name == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            ks.depends_on
                .iter()
                .map(|(n, ns)| (ns.clone().unwrap(), n.clone()))
                .collect()
        };
        let on = |ns: &str, n: &str| (ns.to_owned(), n.to_owned());
        assert!(deps("controller").contains(&on(AI_NS, "crds")));
        for app in ["azure-openai", "routes"] {
            let d = deps(app);
            assert!(d.contains(&on(AI_NS, "controller")), "{app}");
            assert!(d.contains(&on(AI_NS, "crds")), "{app}");
            assert!(d.contains(&on(EG_NS, "envoy-gateway")), "{app}");
        }
        assert!(deps("gateway").contains(&on(EG_NS, "envoy-gateway")));
        assert!(deps("routes").contains(&on(AI_NS, "azure-openai")));
        assert!(deps("routes").contains(&on(AI_NS, "gateway")));
        if c.config.cluster.ai_gateway_ratelimit_enabled {
            assert!(deps("routes").contains(&on(AI_NS, "redis")));
        }
        if c.config.cluster.ai_gateway_mcp_enabled {
            let d = deps("mcp");
            assert!(d.contains(&on(AI_NS, "controller")) && d.contains(&on(AI_NS, "gateway")));
        }
        // Dependents that need the dependency Ready: CRDs installed, controller Available.
        for name in ["crds", "controller"] {
            let ks = tree
                .objs
                .iter()
                .find(|o| o.kind() == "Kustomization" && o.name() == name)
                .unwrap();
            assert_eq!(
                ks.doc.pointer("/spec/wait"),
                Some(&Value::Bool(true)),
                "{name}"
            );
        }
    }
}

fn assert_acyclic(flux: &[FluxKs]) {
    let key = |ns: &str, n: &str| format!("{ns}/{n}");
    let edges: BTreeMap<String, Vec<String>> = flux
        .iter()
        .map(|k| {
            (
                key(&k.namespace, &k.name),
                k.depends_on
                    .iter()
                    .map(|(n, ns)| key(ns.as_deref().unwrap_or(&k.namespace), n))
                    .collect(),
            )
        })
        .collect();
    fn visit(
        n: &str,
        edges: &BTreeMap<String, Vec<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(n) {
            return;
        }
        assert!(
            !stack.iter().any(|s| s == n),
            "dependsOn cycle: {stack:?} → {n}"
        );
        stack.push(n.to_owned());
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, stack, done);
        }
        stack.pop();
        done.insert(n.to_owned());
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        visit(n, &edges, &mut Vec::new(), &mut done);
    }
}

// ---------------------------------------------------------------------------------------------
// Lesson: secrets sit where their readers look (namespace, key `apiKey`), encrypted, untouched
// ---------------------------------------------------------------------------------------------

#[test]
fn lesson_secret_namespace_and_key() {
    for c in azure_only() {
        let tree = Tree::new(&c.rendered);
        // (reader, secret name, required key)
        let mut refs: Vec<(&Obj, String, Option<&str>)> = Vec::new();
        for bsp in tree.kind("BackendSecurityPolicy") {
            let sr = bsp.doc.pointer("/spec/azureAPIKey/secretRef").unwrap();
            // The controller ignores secretRef.namespace and reads the policy's namespace.
            assert!(
                sr.get("namespace")
                    .is_none_or(|n| n.as_str() == Some(bsp.ns())),
                "{}",
                bsp.id()
            );
            refs.push((bsp, str_at(sr, "/name").to_owned(), Some("apiKey")));
        }
        for route in tree.kind("MCPRoute") {
            for br in arr(&route.doc, "/spec/backendRefs") {
                if let Some(sr) = br.pointer("/securityPolicy/apiKey/secretRef") {
                    assert!(sr.get("namespace").is_none(), "{}", route.id());
                    refs.push((route, str_at(sr, "/name").to_owned(), Some("apiKey")));
                }
            }
            for cr in arr(&route.doc, "/spec/securityPolicy/apiKeyAuth/credentialRefs") {
                refs.push((route, str_at(cr, "/name").to_owned(), None));
            }
        }
        for sp in tree.kind("SecurityPolicy") {
            for cr in arr(&sp.doc, "/spec/apiKeyAuth/credentialRefs") {
                assert_eq!(str_at(cr, "/kind"), "Secret");
                refs.push((sp, str_at(cr, "/name").to_owned(), None));
            }
        }
        assert!(!refs.is_empty());
        for (reader, name, key) in refs {
            let secret = tree.one("Secret", reader.ns(), &name).unwrap_or_else(|| {
                panic!(
                    "{}: {} reads Secret {name}, not rendered in {}",
                    c.name,
                    reader.id(),
                    reader.ns()
                )
            });
            if let Some(key) = key {
                assert!(
                    secret.doc.pointer(&format!("/stringData/{key}")).is_some(),
                    "{}: {} has no `{key}`",
                    c.name,
                    secret.id()
                );
            }
        }
        // Every Secret: in a *.sops.yaml file (encrypted before it is written), values only under
        // stringData, and never rewritten by Flux's variable substitution.
        for secret in tree.kind("Secret") {
            assert!(secret.path.ends_with(".sops.yaml"), "{}", secret.id());
            let keys: BTreeSet<&str> = secret
                .doc
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert!(
                keys.is_subset(&BTreeSet::from([
                    "apiVersion",
                    "kind",
                    "metadata",
                    "type",
                    "stringData"
                ])),
                "{}",
                secret.id()
            );
            assert_eq!(
                str_at(
                    &secret.doc,
                    "/metadata/annotations/kustomize.toolkit.fluxcd.io~1substitute"
                ),
                "disabled",
                "{}",
                secret.id()
            );
        }
        // No key leaks outside the encrypted files.
        for d in &c.config.cluster.ai_gateway_azure_deployments {
            assert_only_in_sops(
                &c.rendered,
                d.api_key.as_deref().expect("API-key deployments"),
            );
        }
        for s in &c.config.cluster.ai_gateway_mcp_servers {
            if let Some(k) = &s.api_key {
                assert_only_in_sops(&c.rendered, k);
            }
        }
        for k in &c.config.cluster.ai_gateway_client_keys {
            assert_only_in_sops(&c.rendered, &k.key);
        }
    }
}

fn assert_only_in_sops(r: &Rendered, secret: &str) {
    // Short test values (`fake`) also occur as other fake inputs (the tunnel ID); the long ones
    // of the `full` case are unique.
    if secret.len() < 12 {
        return;
    }
    for (path, file) in &r.files {
        if path.ends_with(".sops.yaml") {
            continue;
        }
        // The YAML filter may escape it; check the raw bytes and the JSON-escaped form.
        let text = String::from_utf8_lossy(&file.contents);
        let escaped = serde_json::to_string(secret).unwrap();
        assert!(
            !text.contains(secret) && !text.contains(escaped.trim_matches('"')),
            "{path} contains a secret value"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Failover, model names, tool names, client keys
// ---------------------------------------------------------------------------------------------

/// (backend, priority, modelNameOverride) per model, over all AIGatewayRoutes.
fn route_table(tree: &Tree) -> BTreeMap<String, Vec<(String, i64, Option<String>)>> {
    let mut out = BTreeMap::new();
    let rules = tree
        .kind("AIGatewayRoute")
        .into_iter()
        .flat_map(|route| arr(&route.doc, "/spec/rules"));
    for rule in rules {
        let headers = arr(rule, "/matches/0/headers");
        assert_eq!(headers.len(), 1);
        assert_eq!(str_at(&headers[0], "/name"), "x-ai-eg-model");
        assert_eq!(str_at(&headers[0], "/type"), "Exact");
        let model = str_at(&headers[0], "/value").to_owned();
        let backends = arr(rule, "/backendRefs")
            .iter()
            .map(|b| {
                (
                    str_at(b, "/name").to_owned(),
                    b.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    b.get("modelNameOverride")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                )
            })
            .collect();
        assert!(
            out.insert(model.clone(), backends).is_none(),
            "model {model} has two rules"
        );
    }
    out
}

/// The AIServiceBackend (by name) whose Backend points at `host`.
fn backend_for_host(tree: &Tree, host: &str) -> String {
    let be = tree
        .kind("Backend")
        .into_iter()
        .find(|b| {
            arr(&b.doc, "/spec/endpoints")
                .iter()
                .any(|e| str_at(e, "/fqdn/hostname") == host)
        })
        .unwrap_or_else(|| panic!("no Backend for {host}"));
    tree.kind("AIServiceBackend")
        .into_iter()
        .find(|s| str_at(&s.doc, "/spec/backendRef/name") == be.name())
        .unwrap()
        .name()
        .to_owned()
}

#[test]
fn failover_priorities_follow_deployment_order() {
    let tree = Tree::new(&case("full").rendered);
    let table = route_table(&tree);
    let east = backend_for_host(&tree, "contoso-eastus.openai.azure.com");
    let west = backend_for_host(&tree, "contoso-westeu.openai.azure.com");
    let backup = backend_for_host(&tree, "contoso-backup.openai.azure.com");
    assert_eq!(
        table["gpt-4o"],
        vec![
            (east.clone(), 0, None),
            (west.clone(), 1, Some("gpt-4o-eu".to_owned())),
            (backup, 2, None)
        ]
    );
    assert_eq!(table["text-embedding-3-small"], vec![(west, 0, None)]);
    // Failover needs retries onto the next priority and ejection of the failing deployment,
    // without cancelling the Gateway-level rate limit.
    let route = tree.kind("AIGatewayRoute")[0];
    let btp = tree
        .one("BackendTrafficPolicy", AI_NS, "azure-openai-failover")
        .expect("failover policy");
    let t = &arr(&btp.doc, "/spec/targetRefs")[0];
    assert_eq!(
        (str_at(t, "/kind"), str_at(t, "/name")),
        ("HTTPRoute", route.name())
    );
    assert_eq!(str_at(&btp.doc, "/spec/mergeType"), "StrategicMerge");
    assert_eq!(
        btp.doc.pointer("/spec/retry/numRetries"),
        Some(&Value::from(2))
    );
    assert_eq!(
        btp.doc.pointer("/spec/retry/numAttemptsPerPriority"),
        Some(&Value::from(1))
    );
    assert!(arr(&btp.doc, "/spec/retry/retryOn/httpStatusCodes").contains(&Value::from(429)));
    assert!(btp.doc.pointer("/spec/healthCheck/passive").is_some());
    // Single-deployment models get no failover policy.
    for c in [case("public"), case("private")] {
        let tree = Tree::new(&c.rendered);
        assert!(
            route_table(&tree)
                .values()
                .all(|b| b.len() == 1 && b[0].1 == 0),
            "{}",
            c.name
        );
        // No retries anywhere, beyond the explicit 0 of `aiops-no-retry` (issue 13).
        assert!(
            tree.kind("BackendTrafficPolicy").iter().all(|p| p
                .doc
                .pointer("/spec/retry")
                .is_none_or(|r| r.get("numRetries") == Some(&Value::from(0)))),
            "{}",
            c.name
        );
    }
}

#[test]
fn model_name_override_only_where_the_deployment_differs() {
    for c in azure_only() {
        let tree = Tree::new(&c.rendered);
        let table = route_table(&tree);
        let mut expected_models = BTreeSet::new();
        for d in &c.config.cluster.ai_gateway_azure_deployments {
            let backend = backend_for_host(&tree, &d.host);
            for m in &d.models {
                expected_models.insert(m.name().to_owned());
                let entry = table[m.name()]
                    .iter()
                    .find(|(b, _, _)| *b == backend)
                    .unwrap_or_else(|| panic!("{}: {} not routed to {backend}", c.name, m.name()));
                let want = (m.deployment() != m.name()).then(|| m.deployment().to_owned());
                assert_eq!(entry.2, want, "{}: {} on {backend}", c.name, m.name());
            }
        }
        assert_eq!(
            table.keys().cloned().collect::<BTreeSet<_>>(),
            expected_models,
            "{}",
            c.name
        );
    }
    // The full config maps gpt-4 to the Azure deployment gpt4-prod.
    let table = route_table(&Tree::new(&case("full").rendered));
    assert_eq!(table["gpt-4"][0].2.as_deref(), Some("gpt4-prod"));
}

#[test]
fn mcp_tools_are_prefixed_with_the_server_name() {
    for c in enabled()
        .into_iter()
        .filter(|c| c.config.cluster.ai_gateway_mcp_enabled)
    {
        let tree = Tree::new(&c.rendered);
        let route = tree.kind("MCPRoute")[0];
        for server in &c.config.cluster.ai_gateway_mcp_servers {
            // Clients see `<backendRef name>__<tool>`: the ref and its Backend carry the bare name.
            let br = arr(&route.doc, "/spec/backendRefs")
                .iter()
                .find(|b| str_at(b, "/name") == server.name)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: tools of {} would not be `{}__*`",
                        c.name, server.name, server.name
                    )
                });
            assert_eq!(
                (str_at(br, "/kind"), str_at(br, "/group")),
                ("Backend", "gateway.envoyproxy.io")
            );
            let be = tree
                .one("Backend", route.ns(), &server.name)
                .expect("Backend named like the server");
            assert_eq!(
                str_at(&be.doc, "/spec/endpoints/0/fqdn/hostname"),
                server.host
            );
            let filters: Vec<&str> = arr(br, "/toolSelector/includeRegex")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let want: Vec<&str> = server.tool_filter.iter().map(String::as_str).collect();
            assert_eq!(filters, want, "{}: {}", c.name, server.name);
            if want.is_empty() {
                assert!(
                    br.get("toolSelector").is_none(),
                    "an empty selector would hide every tool"
                );
            }
        }
        for p in arr(&route.doc, "/spec/parentRefs") {
            assert!(
                tree.one("Gateway", route.ns(), str_at(p, "/name"))
                    .is_some()
            );
        }
    }
}

#[test]
fn client_keys_authenticate_and_set_the_rate_limit_identity() {
    let c = case("full");
    let tree = Tree::new(&c.rendered);
    let secret = tree
        .one("Secret", AI_NS, "ai-gateway-client-keys")
        .expect("client keys Secret");
    let stored: BTreeMap<&str, &str> = secret
        .doc
        .pointer("/stringData")
        .unwrap()
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    let want: BTreeMap<&str, &str> = c
        .config
        .cluster
        .ai_gateway_client_keys
        .iter()
        .map(|k| (k.name.as_str(), k.key.as_str()))
        .collect();
    assert_eq!(stored, want, "one entry per client, named after the client");

    let check = |auth: &Value, what: &str| {
        assert_eq!(
            str_at(auth, "/credentialRefs/0/name"),
            secret.name(),
            "{what}"
        );
        let headers: Vec<&str> = arr(auth, "/extractFrom/0/headers")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(headers, ["Authorization"], "{what}");
        // The client's name overwrites any x-user-id it sent: the limit's key cannot be spoofed.
        assert_eq!(
            str_at(auth, "/forwardClientIDHeader"),
            "x-user-id",
            "{what}"
        );
        // The client key never reaches Azure or an MCP server.
        assert_eq!(auth.get("sanitize"), Some(&Value::Bool(true)), "{what}");
    };
    // On the model routes: the HTTPRoute generated for the AIGatewayRoute (same name), on the AI
    // gateway itself, so every way in is covered.
    let route = tree.kind("AIGatewayRoute")[0];
    let sp = tree.kind("SecurityPolicy");
    assert_eq!(sp.len(), 1);
    let t = &arr(&sp[0].doc, "/spec/targetRefs")[0];
    assert_eq!(
        (str_at(t, "/group"), str_at(t, "/kind"), str_at(t, "/name")),
        ("gateway.networking.k8s.io", "HTTPRoute", route.name())
    );
    check(
        sp[0].doc.pointer("/spec/apiKeyAuth").unwrap(),
        "SecurityPolicy",
    );
    // …and on the MCP gateway.
    let mcp = tree.kind("MCPRoute")[0];
    check(
        mcp.doc.pointer("/spec/securityPolicy/apiKeyAuth").unwrap(),
        "MCPRoute",
    );
    // The header the limit counts is the one the policy writes.
    let btp = tree
        .one("BackendTrafficPolicy", AI_NS, "ai-gateway-token-ratelimit")
        .unwrap();
    assert_eq!(
        str_at(
            &btp.doc,
            "/spec/rateLimit/global/rules/0/clientSelectors/0/headers/0/name"
        ),
        "x-user-id"
    );
    // Without client keys: no policy, no Secret.
    for c in [case("public"), case("private")] {
        let tree = Tree::new(&c.rendered);
        assert!(tree.kind("SecurityPolicy").is_empty(), "{}", c.name);
        assert!(
            tree.one("Secret", AI_NS, "ai-gateway-client-keys")
                .is_none(),
            "{}",
            c.name
        );
        assert!(
            tree.kind("MCPRoute")
                .iter()
                .all(|m| m.doc.pointer("/spec/securityPolicy").is_none())
        );
    }
}

/// The AI gateway raises Envoy's 32 KiB buffer for LLM bodies, on its own Gateway.
#[test]
fn client_traffic_policy_raises_the_buffer_limit() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let ctp = tree.kind("ClientTrafficPolicy");
        assert_eq!(ctp.len(), 1);
        let t = &arr(&ctp[0].doc, "/spec/targetRefs")[0];
        assert_eq!(
            (str_at(t, "/kind"), str_at(t, "/name")),
            ("Gateway", "ai-gateway")
        );
        assert_eq!(str_at(&ctp[0].doc, "/spec/connection/bufferLimit"), "50Mi");
    }
}

// ---------------------------------------------------------------------------------------------
// Pinned versions
// ---------------------------------------------------------------------------------------------

#[test]
fn versions_are_pinned_with_renovate_comments() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let ocis = tree.kind("OCIRepository");
        let urls: BTreeSet<&str> = ocis.iter().map(|o| str_at(&o.doc, "/spec/url")).collect();
        assert_eq!(
            urls,
            BTreeSet::from([
                "oci://docker.io/envoyproxy/ai-gateway-crds-helm",
                "oci://docker.io/envoyproxy/ai-gateway-helm"
            ])
        );
        for oci in &ocis {
            let tag = str_at(&oci.doc, "/spec/ref/tag");
            assert_eq!(tag, "v0.4.0", "{}", oci.id());
            assert!(
                oci.doc.pointer("/spec/ref/branch").is_none()
                    && oci.doc.pointer("/spec/ref/semver").is_none()
            );
        }
        // Every container image has an explicit tag.
        for d in tree.kind("Deployment") {
            for ctr in arr(&d.doc, "/spec/template/spec/containers") {
                let image = str_at(ctr, "/image");
                let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                assert!(
                    !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                    "{}: image {image}",
                    d.id()
                );
            }
        }
        // No unpinned development build anywhere, and a Renovate comment above every version.
        for path in ai_files(&c.rendered) {
            let text = tree.text(path);
            for bad in ["v0.0.0-latest", ":latest", "tag: latest"] {
                assert!(!text.contains(bad), "{path} contains `{bad}`");
            }
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let t = line.trim_start();
                if t.starts_with("tag:") || t.starts_with("image:") {
                    assert!(
                        i > 0
                            && lines[i - 1]
                                .trim_start()
                                .starts_with("# renovate: datasource="),
                        "{path}:{}: `{t}` has no Renovate comment above it",
                        i + 1
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// User values reach the objects unchanged
// ---------------------------------------------------------------------------------------------

#[test]
fn user_values_pass_through_unchanged() {
    let c = case("full");
    let tree = Tree::new(&c.rendered);
    let hostile = c.config.cluster.ai_gateway_azure_deployments[1]
        .api_key
        .as_deref()
        .expect("an API-key deployment");
    assert!(hostile.contains("${") && hostile.contains("{{") && hostile.contains('"'));
    let secret = tree
        .kind("Secret")
        .into_iter()
        .find(|s| str_at(&s.doc, "/stringData/apiKey") == hostile)
        .expect("the key arrives unchanged");
    assert_eq!(
        str_at(
            &secret.doc,
            "/metadata/annotations/kustomize.toolkit.fluxcd.io~1substitute"
        ),
        "disabled"
    );
    let route = tree.kind("MCPRoute")[0];
    // The `odd` MCP server: path, tool filter and token full of YAML and template syntax.
    let odd = c
        .config
        .cluster
        .ai_gateway_mcp_servers
        .iter()
        .find(|s| s.name == "odd")
        .unwrap();
    // `${` itself is refused in plain values (Flux would substitute it); `$` alone is fine.
    assert!(odd.path.contains('$') && odd.path.contains("{{") && odd.path.contains('#'));
    let odd_ref = arr(&route.doc, "/spec/backendRefs")
        .iter()
        .find(|b| str_at(b, "/name") == "odd")
        .unwrap();
    assert_eq!(str_at(odd_ref, "/path"), odd.path);
    assert_eq!(
        str_at(odd_ref, "/toolSelector/includeRegex/0"),
        odd.tool_filter[0]
    );
    let odd_secret = tree
        .one(
            "Secret",
            route.ns(),
            str_at(odd_ref, "/securityPolicy/apiKey/secretRef/name"),
        )
        .unwrap();
    assert_eq!(
        Some(str_at(&odd_secret.doc, "/stringData/apiKey")),
        odd.api_key.as_deref()
    );
    let github = arr(&route.doc, "/spec/backendRefs")
        .iter()
        .find(|b| str_at(b, "/name") == "github")
        .unwrap();
    assert_eq!(str_at(github, "/path"), "/mcp/readonly");
    assert_eq!(
        str_at(
            &route.doc,
            "/metadata/annotations/kustomize.toolkit.fluxcd.io~1substitute"
        ),
        "disabled"
    );
}

// ---------------------------------------------------------------------------------------------
// Oracle: kubectl kustomize builds every rendered AI directory
// ---------------------------------------------------------------------------------------------

/// kubectl on PATH; a missing oracle skips with a message (required when `REQUIRE_ORACLES=1`).
#[allow(clippy::print_stderr)]
fn kubectl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("kubectl is required (REQUIRE_ORACLES=1)");
        }
        eprintln!("SKIP: kubectl not found; the kustomize oracle did not run");
    }
    found
}

struct TempTree(PathBuf);

impl TempTree {
    fn write(r: &Rendered, name: &str) -> TempTree {
        let dir =
            std::env::temp_dir().join(format!("render-ai-gateway-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, file) in &r.files {
            let target = dir.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(&target, &file.contents).unwrap();
        }
        TempTree(dir)
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn kubectl_kustomize_builds_every_ai_directory() {
    let Some(kubectl) = kubectl() else { return };
    for c in enabled() {
        let r = &c.rendered;
        let tmp = TempTree::write(r, c.name);
        let dirs: BTreeSet<String> = ai_files(r)
            .into_iter()
            .filter(|p| p.ends_with("/kustomization.yaml"))
            .map(|p| p.trim_end_matches("/kustomization.yaml").to_owned())
            .collect();
        assert!(dirs.contains("kubernetes/apps/ai-gateway"));
        for dir in dirs {
            let out = std::process::Command::new(&kubectl)
                .arg("kustomize")
                .arg(tmp.0.join(&dir))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: kubectl kustomize {dir} failed:\n{}",
                c.name,
                String::from_utf8_lossy(&out.stderr)
            );
            // kustomize applies exactly the objects our parser attributes to the directory.
            let built = String::from_utf8(out.stdout).unwrap();
            let loaded =
                schema::yaml::load(&built, Path::new(&dir), schema::yaml::Limits::MANIFESTS);
            assert!(loaded.diagnostics.is_empty());
            let mut got: Vec<(String, String)> = loaded
                .documents
                .iter()
                .map(|d| d.to_json())
                .map(|d| {
                    (
                        str_at(&d, "/kind").to_owned(),
                        str_at(&d, "/metadata/name").to_owned(),
                    )
                })
                .collect();
            got.sort();
            let mut files = Vec::new();
            applied_files(r, &dir, &mut files);
            let mut want: Vec<(String, String)> = files
                .iter()
                .flat_map(|f| common::documents(r, f))
                .map(|d| {
                    (
                        str_at(&d, "/kind").to_owned(),
                        str_at(&d, "/metadata/name").to_owned(),
                    )
                })
                .collect();
            want.sort();
            assert_eq!(got, want, "{}: {dir}", c.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// crates/verify with the pinned upstream schemas
// ---------------------------------------------------------------------------------------------

/// The schema set of `$CLUSTER_SHARED_DIR/schemas` (default `../shared/schemas`), loaded once;
/// `None` (with a message) when absent, unless `REQUIRE_ORACLES=1`.
#[allow(clippy::print_stderr)]
fn shared_schemas() -> Option<&'static verify::SchemaSet> {
    static SET: OnceLock<Option<verify::SchemaSet>> = OnceLock::new();
    SET.get_or_init(|| {
        let shared = std::env::var_os("CLUSTER_SHARED_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| common::repo_root().join("../shared"));
        let dir = shared.join("schemas");
        if !dir.is_dir() {
            if std::env::var("REQUIRE_ORACLES").as_deref() == Ok("1") {
                panic!("{} is missing (REQUIRE_ORACLES=1)", dir.display());
            }
            eprintln!("SKIP: {} not found; verify did not run", dir.display());
            return None;
        }
        Some(
            verify::SchemaSet::load(&dir)
                .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display())),
        )
    })
    .as_ref()
}

fn verify_tree(r: &Rendered, name: &str) -> Option<verify::Report> {
    let schemas = shared_schemas()?;
    let tmp = TempTree::write(r, name);
    Some(verify::verify(
        &tmp.0,
        schemas,
        &verify::VerifyConfig::cluster_template(),
    ))
}

fn file_of(d: &schema::Diagnostic) -> String {
    d.location
        .as_ref()
        .map(|l| l.file.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default()
}

/// Every AI object validates against its upstream schema and CEL rules, the Flux graph holds,
/// and the AI Gateway cross-resource rules find nothing. The test trees keep their fake secrets
/// in plaintext, so `verify::sops_plaintext` on `*.sops.yaml` files is the one expected finding;
/// anything else that is an error, or any finding in an AI file, fails.
#[test]
fn rendered_ai_trees_pass_verify_with_the_shared_schemas() {
    for c in enabled() {
        let Some(report) = verify_tree(&c.rendered, &format!("verify-{}", c.name)) else {
            return;
        };
        let unexpected: Vec<String> = report
            .diagnostics
            .iter()
            .filter(|d| !(d.code == "verify::sops_plaintext" && file_of(d).ends_with(".sops.yaml")))
            .filter(|d| {
                let f = file_of(d);
                d.severity == Severity::Error || f.contains(AI_DIR) || f.ends_with(EG_RELEASE)
            })
            .map(|d| d.render(None))
            .collect();
        assert!(
            unexpected.is_empty(),
            "{}: verify reports:\n{}",
            c.name,
            unexpected.join("\n")
        );
        // The checks really ran on the AI objects: every AI kind had its schema.
        let s = &report.stats;
        assert!(
            s.schemas_available && s.schema_checked > 50 && s.cel_evaluated > 100,
            "{}: {s:?}",
            c.name
        );
        for missing in &s.schema_missing {
            for group in [
                "aigateway.envoyproxy.io",
                "gateway.envoyproxy.io",
                "gateway.networking.k8s.io",
            ] {
                assert!(
                    !missing.starts_with(group),
                    "{}: no schema for {missing}",
                    c.name
                );
            }
        }
    }
}

/// The same check fails when the AI tree regresses to a lesson the plan learned on a cluster:
/// `type: APIKey` for Azure (lesson 2), kind/group on AIGatewayRoute backendRefs (lesson 1), a
/// BackendSecurityPolicy for an MCP Backend (MCP credentials).
#[test]
fn verify_notices_a_regressed_ai_tree() {
    let r = &case("public").rendered;
    for (file, from, to) in [
        (
            "kubernetes/apps/ai-gateway/backends/azure-openai/app/backend.yaml",
            "type: AzureAPIKey\n  azureAPIKey:",
            "type: APIKey\n  apiKey:",
        ),
        (
            "kubernetes/apps/ai-gateway/routes/app/aigatewayroute.yaml",
            "      backendRefs:\n        - name: ",
            "      backendRefs:\n        - kind: AIServiceBackend\n          group: aigateway.envoyproxy.io\n          name: ",
        ),
        (
            "kubernetes/apps/ai-gateway/backends/azure-openai/app/backend.yaml",
            "    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: \"azure-test-primary\"\n  type: AzureAPIKey",
            "    - group: gateway.envoyproxy.io\n      kind: Backend\n      name: \"test-github\"\n  type: AzureAPIKey",
        ),
    ] {
        let mut broken = r.clone();
        let out = broken.files.get_mut(file).unwrap();
        let text = String::from_utf8(out.contents.clone()).unwrap();
        assert!(text.contains(from), "{file}: `{from}` not found");
        out.contents = text.replacen(from, to, 1).into_bytes();
        let Some(report) = verify_tree(&broken, "verify-broken") else {
            return;
        };
        assert!(
            report
                .diagnostics
                .iter()
                .any(|d| d.severity == Severity::Error && file_of(d).ends_with(file)),
            "{file}: the regression `{to}` went unnoticed"
        );
    }
}

/// More than 15 models: Gateway API allows an HTTPRoute 16 rules and the v0.4.0 controller adds a
/// catch-all rule to the HTTPRoute it generates from an AIGatewayRoute, so the models are spread
/// over several AIGatewayRoutes of at most 15 rules, and the policies that target the generated
/// HTTPRoutes target every one of them.
#[test]
fn more_than_fifteen_models_spread_over_routes() {
    let models = |range: std::ops::Range<usize>| {
        range
            .map(|i| format!("\"m{i:02}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cluster = format!(
        "{}ai_gateway_enabled: true
ai_gateway_azure_deployments:
  - name: \"east\"
    host: \"east.openai.azure.com\"
    api_key: \"fake-east\"
    models: [{}]
  - name: \"west\"
    host: \"west.openai.azure.com\"
    api_key: \"fake-west\"
    models: [{}]
ai_gateway_client_keys:
  - name: \"alice\"
    key: \"fake-alice-key-0123456789\"
",
        public_without_ai(),
        models(0..20),
        models(15..37)
    );
    let c = render_case("many-models", &cluster);
    let tree = Tree::new(&c.rendered);
    let routes = tree.kind("AIGatewayRoute");
    let shape: Vec<(&str, usize)> = routes
        .iter()
        .map(|r| (r.name(), arr(&r.doc, "/spec/rules").len()))
        .collect();
    assert_eq!(
        shape,
        vec![
            ("azure-openai", 15),
            ("azure-openai-2", 15),
            ("azure-openai-3", 7)
        ]
    );
    // Every model routed exactly once (route_table panics on a model with two rules).
    let table = route_table(&tree);
    assert_eq!(table.len(), 37);
    assert_eq!(
        table["m15"].len(),
        2,
        "m15..m19 fail over from east to west"
    );
    for route in &routes {
        assert_eq!(
            arr(&route.doc, "/spec/llmRequestCosts").len(),
            3,
            "{}: every route computes the token costs the rate limit reads",
            route.name()
        );
    }
    let targets = |kind: &str, name: &str| -> Vec<String> {
        let policy = tree
            .one(kind, AI_NS, name)
            .unwrap_or_else(|| panic!("{kind} {name}"));
        arr(&policy.doc, "/spec/targetRefs")
            .iter()
            .map(|t| format!("{}/{}", str_at(t, "/kind"), str_at(t, "/name")))
            .collect()
    };
    assert_eq!(
        targets("SecurityPolicy", "azure-openai-client-keys"),
        vec![
            "HTTPRoute/azure-openai",
            "HTTPRoute/azure-openai-2",
            "HTTPRoute/azure-openai-3"
        ]
    );
    // Only the second route (m15..m29) has models served by two deployments; retries on the
    // others would only hit the same deployment again.
    assert_eq!(
        targets("BackendTrafficPolicy", "azure-openai-failover"),
        vec!["HTTPRoute/azure-openai-2"]
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 13: no path to a paid API or an MCP token that the operator did not open on purpose
// ---------------------------------------------------------------------------------------------

fn docs_of(r: &Rendered, path: &str) -> Vec<Value> {
    common::documents(r, path)
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn strings(v: &Value, pointer: &str) -> Vec<String> {
    arr(v, pointer)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// Envoy Gateway's extension hooks fail open; the per-server MCP routes the controller generates
/// then sit on the public listener, matched on two client-settable headers. The AI gateway must
/// strip both before routing.
#[test]
fn issue13_mcp_routing_headers_are_stripped_at_the_ai_gateway() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let fail_open = tree
            .eg_values()
            .pointer("/config/envoyGateway/extensionManager/failOpen");
        assert_eq!(fail_open, Some(&Value::Bool(true)), "{}", c.name);
        let ctp = tree
            .one("ClientTrafficPolicy", AI_NS, "ai-gateway")
            .unwrap_or_else(|| panic!("{}: no ClientTrafficPolicy", c.name));
        assert_eq!(
            strings(&ctp.doc, "/spec/headers/earlyRequestHeaders/remove"),
            ["x-ai-eg-mcp-backend", "x-ai-eg-mcp-route"],
            "{}",
            c.name
        );
        assert_eq!(
            str_at(&ctp.doc, "/spec/targetRefs/0/name"),
            "ai-gateway",
            "{}",
            c.name
        );
    }
    // The old comment claimed no credential is ever injected meanwhile; MCP tokens are.
    let text = case("public").rendered.files[EG_RELEASE].contents.clone();
    let text = String::from_utf8(text).unwrap();
    assert!(!text.contains("no credentials are injected"), "{text}");
    assert!(text.contains("x-ai-eg-mcp-backend"), "{text}");
}

/// The v0.4.0 chart never passes its seed value: configure generates one (stable, derived from
/// the age key), keeps it in a sops Secret and hands it to the controller as a flag.
#[test]
fn issue13_mcp_session_seed_is_generated_and_passed() {
    const SECRET: &str = "kubernetes/apps/ai-gateway/controller/app/secret.sops.yaml";
    const HR: &str = "kubernetes/apps/ai-gateway/controller/app/helmrelease.yaml";
    let seed_of = |r: &Rendered| {
        let docs = docs_of(r, SECRET);
        assert_eq!(str_at(&docs[0], "/metadata/name"), "ai-gateway-mcp-session");
        str_at(&docs[0], "/stringData/seed").to_owned()
    };
    let public = seed_of(&case("public").rendered);
    assert_eq!(public.len(), 64, "{public}");
    assert!(public.chars().all(|c| c.is_ascii_hexdigit()), "{public}");
    assert!(!["seed", "default-insecure-seed"].contains(&public.as_str()));
    // The same on every run with the same age key; another age key, another seed.
    let again = render_case("public", &read(".github/tests/public.yaml"));
    assert_eq!(seed_of(&again.rendered), public);
    let mut other_key = common::fake_inputs();
    other_key.age_private_key = Some(
        "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSOTHER".to_owned(),
    );
    let other = render::render_templates(
        &common::repo_root().join("templates"),
        &case("public").config.context(),
        &other_key,
    )
    .unwrap_or_else(|_| panic!("render with another key"));
    assert_ne!(seed_of(&other), public);

    for c in enabled() {
        let hr = &docs_of(&c.rendered, HR)[0];
        let env = &arr(hr, "/spec/values/controller/extraEnvVars")[0];
        assert_eq!(
            str_at(env, "/name"),
            "MCP_SESSION_ENCRYPTION_SEED",
            "{}",
            c.name
        );
        assert_eq!(
            str_at(env, "/valueFrom/secretKeyRef/name"),
            "ai-gateway-mcp-session"
        );
        assert_eq!(str_at(env, "/valueFrom/secretKeyRef/key"), "seed");
        let patches: Vec<&str> = arr(hr, "/spec/postRenderers/0/kustomize/patches")
            .iter()
            .map(|p| str_at(p, "/patch"))
            .collect();
        assert!(
            patches.iter().any(|p| p
                .contains("value: --mcpSessionEncryptionSeed=$(MCP_SESSION_ENCRYPTION_SEED)")
                && p.contains("/spec/template/spec/containers/0/args/-")),
            "{}: {patches:?}",
            c.name
        );
        let kust = kustomization(&c.rendered, "kubernetes/apps/ai-gateway/controller/app").unwrap();
        assert!(
            strings(&kust, "/resources").contains(&"./secret.sops.yaml".to_owned()),
            "{}",
            c.name
        );
        assert_only_in_sops(&c.rendered, &seed_of(&c.rendered));
    }
}

/// `ai_gateway_addr` opens a plain-HTTP LoadBalancer on the LAN only when every request needs a
/// client key; without keys configure says loudly what is open.
#[test]
fn issue13_own_address_only_with_client_keys() {
    let service_type = |c: &Case| {
        let tree = Tree::new(&c.rendered);
        let ep = tree.one("EnvoyProxy", AI_NS, "ai-gateway").unwrap();
        (
            str_at(&ep.doc, "/spec/provider/kubernetes/envoyService/type").to_owned(),
            str_at(
                &ep.doc,
                "/spec/provider/kubernetes/envoyService/annotations/lbipam.cilium.io~1ips",
            )
            .to_owned(),
        )
    };
    // public.yaml: ai_gateway_addr, no client keys.
    assert!(case("public").config.cluster.ai_gateway_addr.is_some());
    assert_eq!(
        service_type(case("public")),
        ("ClusterIP".into(), String::new())
    );
    // full: ai_gateway_addr and client keys.
    assert_eq!(
        service_type(case("full")),
        ("LoadBalancer".into(), "10.10.10.250".into())
    );

    let warned = |text: &str| {
        let nodes = read(".github/tests/nodes.yaml");
        schema::load_str(text, Path::new("c.yaml"), &nodes, Path::new("nodes.yaml"))
            .diagnostics
            .into_iter()
            .filter(|d| d.code == "schema::ai_gateway_open")
            .collect::<Vec<_>>()
    };
    let public = warned(&read(".github/tests/public.yaml"));
    assert_eq!(public.len(), 1, "{public:?}");
    assert_eq!(public[0].severity, Severity::Warning);
    assert!(
        public[0]
            .message
            .contains("MCP servers (the gateway adds their tokens)")
    );
    assert!(
        public[0]
            .message
            .contains("`x-user-id`, a header the caller chooses")
    );
    assert!(public[0].message.contains("ai_gateway_addr stays closed"));
    assert!(
        public[0]
            .help
            .as_deref()
            .unwrap()
            .contains("ai_gateway_client_keys")
    );
    assert_eq!(public[0].location.as_ref().map(|l| l.line), Some(33));
    let private = warned(&read(".github/tests/private.yaml"));
    assert_eq!(private.len(), 1, "{private:?}");
    assert!(!private[0].message.contains("ai_gateway_addr"));
    assert!(warned(&(public_without_ai() + FULL_AI)).is_empty());
    assert!(warned(&public_without_ai()).is_empty());
}

/// The rate-limit image comes from its own registry, budgets fail closed, and the deprecated
/// `rateLimit.type` is gone.
#[test]
fn issue13_ratelimit_image_pinned_and_failing_closed() {
    let tree = Tree::new(&case("public").rendered);
    let values = tree.eg_values();
    assert_eq!(str_at(values, "/global/imageRegistry"), "mirror.gcr.io");
    assert_eq!(
        str_at(
            values,
            "/config/envoyGateway/provider/kubernetes/rateLimitDeployment/container/image"
        ),
        "docker.io/envoyproxy/ratelimit:05c08d03"
    );
    assert_eq!(
        values.pointer("/config/envoyGateway/rateLimit/failClosed"),
        Some(&Value::Bool(true))
    );
    let text = tree.text(EG_RELEASE);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("image: docker.io/envoyproxy/ratelimit:"))
        .unwrap();
    assert_eq!(
        lines[at - 1].trim(),
        "# renovate: datasource=docker depName=docker.io/envoyproxy/ratelimit versioning=loose"
    );
    // The deploy type stays beside it (the include lands under provider.kubernetes).
    assert_eq!(
        str_at(
            values,
            "/config/envoyGateway/provider/kubernetes/deploy/type"
        ),
        "GatewayNamespace"
    );
    let btp = tree
        .one("BackendTrafficPolicy", AI_NS, "ai-gateway-token-ratelimit")
        .unwrap();
    assert!(btp.doc.pointer("/spec/rateLimit/type").is_none());
    assert!(btp.doc.pointer("/spec/rateLimit/global/rules/0").is_some());
    // Without the rate limit, nothing of it.
    let private = Tree::new(&case("private").rendered);
    let v = private.eg_values();
    assert!(
        v.pointer("/config/envoyGateway/provider/kubernetes/rateLimitDeployment")
            .is_none()
    );
    assert!(v.pointer("/config/envoyGateway/rateLimit").is_none());
}

/// Nothing in front of the AI gateway retries a completion: the aiops route has its own policy
/// without retries (it replaces the Gateway's), and failover never retries on `reset`.
#[test]
fn issue13_completions_are_not_retried() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let btp = tree
            .one("BackendTrafficPolicy", AI_NS, "aiops-no-retry")
            .unwrap_or_else(|| panic!("{}: no aiops-no-retry", c.name));
        assert_eq!(str_at(&btp.doc, "/spec/targetRefs/0/kind"), "HTTPRoute");
        assert_eq!(str_at(&btp.doc, "/spec/targetRefs/0/name"), "aiops");
        assert_eq!(
            btp.doc.pointer("/spec/retry/numRetries"),
            Some(&Value::from(0))
        );
        assert!(btp.doc.pointer("/spec/mergeType").is_none(), "{}", c.name);
        assert!(tree.one("HTTPRoute", AI_NS, "aiops").is_some());
        for f in tree.kind("BackendTrafficPolicy") {
            assert!(
                !strings(&f.doc, "/spec/retry/retryOn/triggers").contains(&"reset".to_owned()),
                "{}: {} retries on reset",
                c.name,
                f.id()
            );
        }
    }
    // The case with a failover policy still fails over on connect failures.
    let full = Tree::new(&case("full").rendered);
    let failover = full
        .one("BackendTrafficPolicy", AI_NS, "azure-openai-failover")
        .unwrap();
    assert_eq!(
        strings(&failover.doc, "/spec/retry/retryOn/triggers"),
        ["connect-failure", "retriable-status-codes"]
    );
}

/// OpenAI SDKs always send `Authorization`; Azure gets only its `api-key`.
#[test]
fn issue13_authorization_never_reaches_azure() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let backends = tree.kind("AIServiceBackend");
        assert!(!backends.is_empty());
        for sb in backends {
            assert_eq!(
                strings(&sb.doc, "/spec/headerMutation/remove"),
                ["authorization"],
                "{}: {}",
                c.name,
                sb.id()
            );
        }
    }
}

/// Redis answers only Envoy Gateway's rate-limit service, and Envoy Gateway starts after it.
#[test]
fn issue13_redis_only_for_the_rate_limit_service() {
    let r = &case("public").rendered;
    let tree = Tree::new(r);
    let np = tree.one("NetworkPolicy", AI_NS, "redis").unwrap();
    let deploy = tree.one("Deployment", AI_NS, "redis").unwrap();
    assert_eq!(
        np.doc.pointer("/spec/podSelector/matchLabels"),
        deploy.doc.pointer("/spec/selector/matchLabels")
    );
    assert_eq!(strings(&np.doc, "/spec/policyTypes"), ["Ingress"]);
    let from = &arr(&np.doc, "/spec/ingress")[0];
    assert_eq!(arr(from, "/from").len(), 1);
    assert_eq!(
        str_at(
            from,
            "/from/0/namespaceSelector/matchLabels/kubernetes.io~1metadata.name"
        ),
        EG_NS
    );
    assert_eq!(
        str_at(
            from,
            "/from/0/podSelector/matchLabels/app.kubernetes.io~1name"
        ),
        "envoy-ratelimit"
    );
    assert_eq!(from.pointer("/ports/0/port"), Some(&Value::from(6379)));
    let eg_ks = tree
        .flux
        .iter()
        .find(|k| k.namespace == EG_NS && k.name == "envoy-gateway")
        .unwrap();
    assert!(
        eg_ks
            .depends_on
            .contains(&("redis".to_owned(), Some(AI_NS.to_owned()))),
        "{eg_ks:?}"
    );
    // No rate limit, no Redis, no dependency.
    let private = Tree::new(&case("private").rendered);
    let eg_ks = private
        .flux
        .iter()
        .find(|k| k.namespace == EG_NS && k.name == "envoy-gateway")
        .unwrap();
    assert!(eg_ks.depends_on.is_empty(), "{eg_ks:?}");
}

/// The AI gateway's Envoy, its external processor and the controller are scraped.
#[test]
fn issue13_ai_gateway_metrics_are_scraped() {
    for c in enabled() {
        let tree = Tree::new(&c.rendered);
        let pm = tree.one("PodMonitor", AI_NS, "ai-gateway").unwrap();
        let ports: Vec<(&str, &str)> = arr(&pm.doc, "/spec/podMetricsEndpoints")
            .iter()
            .map(|e| (str_at(e, "/port"), str_at(e, "/path")))
            .collect();
        assert_eq!(
            ports,
            [
                ("metrics", "/stats/prometheus"),
                ("aigw-metrics", "/metrics")
            ]
        );
        assert_eq!(
            str_at(
                &pm.doc,
                "/spec/selector/matchLabels/gateway.envoyproxy.io~1owning-gateway-name"
            ),
            "ai-gateway"
        );
        let sm = tree
            .one("ServiceMonitor", AI_NS, "ai-gateway-controller")
            .unwrap();
        assert_eq!(str_at(&sm.doc, "/spec/endpoints/0/port"), "http-metrics");
        assert_eq!(
            str_at(
                &sm.doc,
                "/spec/selector/matchLabels/app.kubernetes.io~1instance"
            ),
            "ai-gateway-controller"
        );
    }
}

/// Removing the AI Gateway must not delete the controller before the objects it finalizes.
#[test]
fn issue13_controller_is_orphaned_on_removal() {
    const CLUSTER_KS: &str = "kubernetes/flux/cluster/ks.yaml";
    for c in enabled() {
        let ks = &docs_of(&c.rendered, CLUSTER_KS)[0];
        let patches = arr(ks, "/spec/patches");
        let all = patches
            .iter()
            .position(|p| p.pointer("/target/name").is_none())
            .unwrap();
        let orphan = patches
            .iter()
            .position(|p| str_at(p, "/target/name") == "controller")
            .unwrap_or_else(|| panic!("{}: no patch for the controller", c.name));
        assert!(orphan > all, "{}: the Orphan patch must come last", c.name);
        assert_eq!(str_at(&patches[orphan], "/target/namespace"), AI_NS);
        let patch = parse_yaml(str_at(&patches[orphan], "/patch"));
        assert_eq!(str_at(&patch, "/spec/deletionPolicy"), "Orphan");
        assert!(
            str_at(&patches[all], "/patch").contains("deletionPolicy: WaitForTermination"),
            "{}",
            c.name
        );
    }
    let disabled = &docs_of(&case("disabled").rendered, CLUSTER_KS)[0];
    assert_eq!(arr(disabled, "/spec/patches").len(), 1);
}
