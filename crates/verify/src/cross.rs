//! Cross-resource rules: mistakes no single schema can see (the plan's lessons 2–5 and the
//! Envoy Gateway prerequisites of AI Gateway v0.4.0). They run on the desired cluster state —
//! every object some Flux Kustomization applies.
//!
//! Each rule has its own code (`verify::<rule>`), a message that says what is wrong, and a hint
//! that says what to write instead. Rules only speak about what the tree shows: a reference
//! into a namespace where a Helm chart we do not model could create the target is not judged.

use std::collections::{BTreeSet, HashMap, HashSet};

use schema::Diagnostic;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::flux::{FluxGraph, HELM_GROUP, SOURCE_GROUP, locate};
use crate::kustomize::Obj;
use crate::tree::Tree;

const AIGW: &str = "aigateway.envoyproxy.io";
const EG: &str = "gateway.envoyproxy.io";
const GWAPI: &str = "gateway.networking.k8s.io";
const AI_NS_DEFAULT: &str = "envoy-ai-gateway-system";

/// Counters the report shows.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CrossStats {
    /// References into namespaces where an unmodelled Helm chart may create the target.
    pub(crate) unverifiable: usize,
}

/// (group, kind, namespace — `default` when unset —, name).
type Key<'a> = (&'a str, &'a str, &'a str, &'a str);

struct Ctx<'a> {
    tree: &'a Tree,
    objs: Vec<&'a Obj>,
    /// The first object of each key (what a linear `find` would return).
    by_key: HashMap<Key<'a>, &'a Obj>,
    /// Objects of each (group, kind), in order.
    by_kind: HashMap<(&'a str, &'a str), Vec<&'a Obj>>,
    /// The first BackendTLSPolicy targeting each Envoy Gateway Backend (namespace, name).
    tls_policy: HashMap<(&'a str, &'a str), &'a Obj>,
    /// BackendSecurityPolicies targeting each AIServiceBackend (namespace, name), in order.
    bsp_targeting: HashMap<(&'a str, &'a str), Vec<&'a Obj>>,
    /// ReferenceGrants per namespace, in order.
    grants: HashMap<&'a str, Vec<&'a Obj>>,
    /// Namespaces of the Gateways of each name, in order.
    gateway_namespaces: HashMap<&'a str, Vec<&'a str>>,
    diags: Vec<Diagnostic>,
    stats: CrossStats,
    eg: Option<Chart<'a>>,
    aigw: Option<Chart<'a>>,
    /// Namespaces holding a HelmRelease whose chart we do not model.
    opaque_namespaces: BTreeSet<String>,
}

/// A HelmRelease of a chart the rules know about.
struct Chart<'a> {
    release: &'a Obj,
    namespace: String,
    values: Value,
}

pub(crate) fn check(tree: &Tree, graph: &FluxGraph) -> (Vec<Diagnostic>, CrossStats) {
    // One copy per object: a double apply is the ownership check's finding, not every rule's.
    let mut seen = HashSet::new();
    let objs: Vec<&Obj> = graph
        .objects
        .iter()
        .map(|o| &o.obj)
        .filter(|o| {
            seen.insert((
                o.group(),
                o.kind(),
                o.namespace().unwrap_or_default(),
                o.name(),
            ))
        })
        .collect();
    let mut cx = Ctx {
        tree,
        by_key: HashMap::new(),
        by_kind: HashMap::new(),
        tls_policy: HashMap::new(),
        bsp_targeting: HashMap::new(),
        grants: HashMap::new(),
        gateway_namespaces: HashMap::new(),
        objs,
        diags: Vec::new(),
        stats: CrossStats::default(),
        eg: None,
        aigw: None,
        opaque_namespaces: BTreeSet::new(),
    };
    cx.index();
    cx.find_charts();
    cx.aigw_backend_refs();
    cx.aigw_route_size();
    cx.aisb_backends();
    cx.backend_tls();
    cx.security_policies();
    cx.mcp_routes();
    cx.parent_refs();
    cx.rate_limits();
    cx.envoy_gateway_prerequisites();
    cx.httproute_backends();
    (cx.diags, cx.stats)
}

fn s<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn arr<'v>(v: &'v Value, pointer: &str) -> &'v [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn ns(o: &Obj) -> &str {
    o.namespace().unwrap_or("default")
}

fn unknown(s: &str) -> bool {
    s.contains("${")
}

impl<'a> Ctx<'a> {
    /// Builds every lookup the rules use, once, so that each rule is linear in the objects and
    /// references it reads.
    fn index(&mut self) {
        for &o in &self.objs {
            self.by_key
                .entry((o.group(), o.kind(), ns(o), o.name()))
                .or_insert(o);
            self.by_kind
                .entry((o.group(), o.kind()))
                .or_default()
                .push(o);
        }
        for p in self.all(GWAPI, "BackendTLSPolicy") {
            for t in arr(&p.value, "/spec/targetRefs") {
                if s(t, "/group") == Some(EG)
                    && s(t, "/kind") == Some("Backend")
                    && let Some(name) = s(t, "/name")
                {
                    self.tls_policy.entry((ns(p), name)).or_insert(p);
                }
            }
        }
        for p in self.all(AIGW, "BackendSecurityPolicy") {
            for t in arr(&p.value, "/spec/targetRefs") {
                if s(t, "/kind") != Some("AIServiceBackend") {
                    continue;
                }
                let Some(name) = s(t, "/name") else { continue };
                let list = self.bsp_targeting.entry((ns(p), name)).or_default();
                // A policy naming the backend twice still counts once.
                if !list.last().is_some_and(|l| std::ptr::eq(*l, p)) {
                    list.push(p);
                }
            }
        }
        for g in self.all(GWAPI, "ReferenceGrant") {
            self.grants.entry(ns(g)).or_default().push(g);
        }
        for g in self.all(GWAPI, "Gateway") {
            self.gateway_namespaces
                .entry(g.name())
                .or_default()
                .push(ns(g));
        }
    }

    fn find(&self, group: &str, kind: &str, namespace: &str, name: &str) -> Option<&'a Obj> {
        self.by_key.get(&(group, kind, namespace, name)).copied()
    }

    fn all(&self, group: &str, kind: &str) -> Vec<&'a Obj> {
        self.by_kind
            .get(&(group, kind))
            .cloned()
            .unwrap_or_default()
    }

    fn error(&mut self, code: &str, obj: &Obj, path: &str, message: String, help: &str) {
        let d = Diagnostic::error(format!("verify::{code}"), path, message)
            .at(locate(self.tree, obj, path))
            .with_help(help);
        self.diags.push(d);
    }

    fn warning(&mut self, code: &str, obj: &Obj, path: &str, message: String, help: &str) {
        let d = Diagnostic::warning(format!("verify::{code}"), path, message)
            .at(locate(self.tree, obj, path))
            .with_help(help);
        self.diags.push(d);
    }

    /// The chart URL or name behind a HelmRelease (through its OCIRepository / HelmChart spec).
    fn chart_of(&self, hr: &Obj) -> String {
        let hns = ns(hr);
        if let Some(r) = hr.value.pointer("/spec/chartRef") {
            let name = s(r, "/name").unwrap_or_default();
            let rns = s(r, "/namespace").unwrap_or(hns);
            if let Some(repo) = self.find(SOURCE_GROUP, "OCIRepository", rns, name) {
                return s(&repo.value, "/spec/url").unwrap_or_default().to_owned();
            }
        }
        s(&hr.value, "/spec/chart/spec/chart")
            .unwrap_or_default()
            .to_owned()
    }

    fn find_charts(&mut self) {
        for hr in self.all(HELM_GROUP, "HelmRelease") {
            let chart = self.chart_of(hr);
            let base = chart.rsplit('/').next().unwrap_or_default().to_owned();
            let install_ns = s(&hr.value, "/spec/targetNamespace")
                .unwrap_or(ns(hr))
                .to_owned();
            let found = Chart {
                release: hr,
                namespace: install_ns.clone(),
                values: hr
                    .value
                    .pointer("/spec/values")
                    .cloned()
                    .unwrap_or(Value::Null),
            };
            match base.as_str() {
                "gateway-helm" => self.eg = Some(found),
                "ai-gateway-helm" => self.aigw = Some(found),
                "ai-gateway-crds-helm" | "gateway-crds-helm" => {}
                _ => {
                    self.opaque_namespaces.insert(install_ns);
                }
            }
        }
    }

    /// A missing target in `namespace` is only a finding if no unmodelled chart could create it.
    fn judgeable(&mut self, namespace: &str) -> bool {
        if self.opaque_namespaces.contains(namespace) {
            self.stats.unverifiable += 1;
            false
        } else {
            true
        }
    }

    /// Lesson 1's other half: backendRefs without group/kind name AIServiceBackends.
    fn aigw_backend_refs(&mut self) {
        for route in self.all(AIGW, "AIGatewayRoute") {
            for (r, rule) in arr(&route.value, "/spec/rules").iter().enumerate() {
                for (b, br) in arr(rule, "/backendRefs").iter().enumerate() {
                    if br.get("group").is_some() || br.get("kind").is_some() {
                        continue; // InferencePool references: the CRD's CEL rules judge them.
                    }
                    let name = s(br, "/name").unwrap_or_default();
                    let bns = s(br, "/namespace").unwrap_or(ns(route));
                    if unknown(name) || self.find(AIGW, "AIServiceBackend", bns, name).is_some() {
                        if bns != ns(route) {
                            self.reference_grant(
                                route,
                                AIGW,
                                "AIGatewayRoute",
                                bns,
                                AIGW,
                                "AIServiceBackend",
                                name,
                                &format!("spec.rules[{r}].backendRefs[{b}]"),
                            );
                        }
                        continue;
                    }
                    self.error(
                        "aigw_backend_missing",
                        route,
                        &format!("spec.rules[{r}].backendRefs[{b}]"),
                        format!(
                            "AIGatewayRoute {}/{} routes to AIServiceBackend {bns}/{name}, which does not exist",
                            ns(route),
                            route.name()
                        ),
                        "a backendRef without `group`/`kind` names an AIServiceBackend in the route's namespace (or `namespace:`); add it or fix the name",
                    );
                }
            }
        }
    }

    /// The v0.4.0 controller copies every rule into the HTTPRoute it generates and adds a
    /// catch-all rule; Gateway API allows an HTTPRoute 16 rules. With 16 or more rules the API
    /// server refuses the generated HTTPRoute while the AIGatewayRoute still reports Accepted and
    /// traffic keeps the stale routes (envoyproxy/ai-gateway#2120).
    fn aigw_route_size(&mut self) {
        for route in self.all(AIGW, "AIGatewayRoute") {
            let rules = arr(&route.value, "/spec/rules").len();
            if rules > schema::ROUTE_RULES_MAX {
                self.error(
                    "aigw_route_too_many_rules",
                    route,
                    "spec.rules",
                    format!(
                        "AIGatewayRoute {}/{} has {rules} rules; the HTTPRoute the AI Gateway generates from it would have {} (one catch-all more), over Gateway API's limit of 16, so the API server refuses it while the AIGatewayRoute still reports Accepted",
                        ns(route),
                        route.name(),
                        rules + 1
                    ),
                    "keep at most 15 rules per AIGatewayRoute and split the models over several routes attached to the same Gateway (configure does this for ai_gateway_azure_deployments)",
                );
            }
        }
    }

    /// AIServiceBackend → an Envoy Gateway Backend that exists.
    fn aisb_backends(&mut self) {
        for sb in self.all(AIGW, "AIServiceBackend") {
            let Some(r) = sb.value.pointer("/spec/backendRef") else {
                continue;
            };
            let kind = s(r, "/kind").unwrap_or("Service");
            let group = s(r, "/group").unwrap_or("");
            if kind != "Backend" || group != EG {
                continue; // The CRD's CEL rule rejects this already.
            }
            let name = s(r, "/name").unwrap_or_default();
            let bns = s(r, "/namespace").unwrap_or(ns(sb));
            if unknown(name) || self.find(EG, "Backend", bns, name).is_some() {
                continue;
            }
            self.error(
                "aisb_backend_missing",
                sb,
                "spec.backendRef",
                format!(
                    "AIServiceBackend {}/{} points at Backend {bns}/{name}, which does not exist",
                    ns(sb),
                    sb.name()
                ),
                "add an Envoy Gateway `Backend` (gateway.envoyproxy.io/v1alpha1) with the provider's FQDN endpoint, or fix `spec.backendRef.name`",
            );
        }
    }

    /// Every TLS Backend (port 443) has a BackendTLSPolicy for the right hostname (lesson 3).
    fn backend_tls(&mut self) {
        for be in self.all(EG, "Backend") {
            let hosts: Vec<(usize, String)> = arr(&be.value, "/spec/endpoints")
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.pointer("/fqdn/port").and_then(Value::as_i64) == Some(443)
                        || e.pointer("/ip/port").and_then(Value::as_i64) == Some(443)
                })
                .map(|(i, e)| (i, s(e, "/fqdn/hostname").unwrap_or_default().to_owned()))
                .collect();
            if hosts.is_empty() {
                continue;
            }
            self.require_tls_policy(be, &hosts, "backend_tls_missing", "port 443");
        }
    }

    /// Checks that a BackendTLSPolicy targets Backend `be` and validates each FQDN host.
    fn require_tls_policy(&mut self, be: &Obj, hosts: &[(usize, String)], code: &str, why: &str) {
        let Some(&policy) = self.tls_policy.get(&(ns(be), be.name())) else {
            self.error(
                code,
                be,
                "spec.endpoints",
                format!(
                    "Backend {}/{} is reached over TLS ({why}) but no BackendTLSPolicy targets it; the TLS handshake fails",
                    ns(be),
                    be.name()
                ),
                &format!(
                    "add a BackendTLSPolicy (gateway.networking.k8s.io/v1) in namespace `{}` with targetRefs [{{group: gateway.envoyproxy.io, kind: Backend, name: {}}}], validation.wellKnownCACertificates: System and validation.hostname: {}",
                    ns(be),
                    be.name(),
                    hosts.first().map_or("<the endpoint host>", |(_, h)| h.as_str())
                ),
            );
            return;
        };
        let Some(sni) = s(&policy.value, "/spec/validation/hostname") else {
            return; // Required by the schema; the schema check reports it.
        };
        for (i, host) in hosts {
            if host.is_empty() || unknown(host) || unknown(sni) || host == sni {
                continue;
            }
            self.error(
                "backend_tls_hostname",
                policy,
                "spec.validation.hostname",
                format!(
                    "BackendTLSPolicy {}/{} validates hostname `{sni}`, but Backend {} connects to `{host}` (endpoint {i}); the certificate check fails",
                    ns(policy),
                    policy.name(),
                    be.name()
                ),
                &format!("set `validation.hostname: {host}` (the Backend's FQDN, sent as SNI)"),
            );
        }
    }

    /// BackendSecurityPolicies: targets exist, one per backend, Azure uses `AzureAPIKey`
    /// (lesson 2), and each Secret exists with the key the controller reads.
    fn security_policies(&mut self) {
        let bsps = self.all(AIGW, "BackendSecurityPolicy");
        for bsp in &bsps {
            for (t, tr) in arr(&bsp.value, "/spec/targetRefs").iter().enumerate() {
                let name = s(tr, "/name").unwrap_or_default();
                if s(tr, "/kind") != Some("AIServiceBackend") || unknown(name) {
                    continue;
                }
                if self.find(AIGW, "AIServiceBackend", ns(bsp), name).is_none() {
                    self.error(
                        "bsp_target_missing",
                        bsp,
                        &format!("spec.targetRefs[{t}]"),
                        format!(
                            "BackendSecurityPolicy {}/{} targets AIServiceBackend {}/{name}, which does not exist",
                            ns(bsp),
                            bsp.name(),
                            ns(bsp)
                        ),
                        "targetRefs are local: the AIServiceBackend must be in the policy's namespace",
                    );
                }
            }
            self.policy_secret(bsp);
        }
        for sb in self.all(AIGW, "AIServiceBackend") {
            let targeting: Vec<&Obj> = self
                .bsp_targeting
                .get(&(ns(sb), sb.name()))
                .cloned()
                .unwrap_or_default();
            if targeting.len() > 1 {
                let names: Vec<&str> = targeting.iter().map(|p| p.name()).collect();
                self.error(
                    "bsp_multiple",
                    targeting[1],
                    "spec.targetRefs",
                    format!(
                        "AIServiceBackend {}/{} is targeted by {} BackendSecurityPolicies ({}); AI Gateway rejects more than one",
                        ns(sb),
                        sb.name(),
                        targeting.len(),
                        names.join(", ")
                    ),
                    "keep exactly one BackendSecurityPolicy per AIServiceBackend",
                );
            }
            let azure = self.is_azure(sb);
            if !azure {
                continue;
            }
            match targeting.first() {
                None => self.error(
                    "azure_auth",
                    sb,
                    "metadata.name",
                    format!(
                        "AIServiceBackend {}/{} sends to Azure OpenAI but no BackendSecurityPolicy targets it; Azure answers 401",
                        ns(sb),
                        sb.name()
                    ),
                    "add a BackendSecurityPolicy with `type: AzureAPIKey` and `azureAPIKey.secretRef` targeting this AIServiceBackend",
                ),
                Some(p) => {
                    let ty = s(&p.value, "/spec/type").unwrap_or_default();
                    if !matches!(ty, "AzureAPIKey" | "AzureCredentials") {
                        self.error(
                            "azure_auth",
                            p,
                            "spec.type",
                            format!(
                                "BackendSecurityPolicy {}/{} uses `type: {ty}` for Azure OpenAI backend {}; {} so Azure answers 401",
                                ns(p),
                                p.name(),
                                sb.name(),
                                if ty == "APIKey" {
                                    "`APIKey` sends `Authorization: Bearer <key>` but Azure reads the `api-key` header,"
                                } else {
                                    "that credential type is not Azure's,"
                                }
                            ),
                            "use `type: AzureAPIKey` with `azureAPIKey.secretRef` (Secret key `apiKey`), or `AzureCredentials` for Entra ID",
                        );
                    }
                }
            }
        }
    }

    /// An AIServiceBackend whose Backend is `*.openai.azure.com` (or whose schema is AzureOpenAI).
    fn is_azure(&self, sb: &Obj) -> bool {
        if s(&sb.value, "/spec/schema/name") == Some("AzureOpenAI") {
            return true;
        }
        let Some(r) = sb.value.pointer("/spec/backendRef") else {
            return false;
        };
        let bns = s(r, "/namespace").unwrap_or(ns(sb));
        let Some(be) = self.find(EG, "Backend", bns, s(r, "/name").unwrap_or_default()) else {
            return false;
        };
        arr(&be.value, "/spec/endpoints")
            .iter()
            .any(|e| s(e, "/fqdn/hostname").is_some_and(|h| h.ends_with(".openai.azure.com")))
    }

    fn policy_secret(&mut self, bsp: &Obj) {
        let ty = s(&bsp.value, "/spec/type").unwrap_or_default();
        let (field, key) = match ty {
            "APIKey" => ("apiKey.secretRef", "apiKey"),
            "AzureAPIKey" => ("azureAPIKey.secretRef", "apiKey"),
            "AnthropicAPIKey" => ("anthropicAPIKey.secretRef", "apiKey"),
            "AzureCredentials" => ("azureCredentials.clientSecretRef", "client-secret"),
            "AWSCredentials" => ("awsCredentials.credentialsFile.secretRef", "credentials"),
            "GCPCredentials" => (
                "gcpCredentials.credentialsFile.secretRef",
                "service_account.json",
            ),
            _ => return,
        };
        let pointer = format!("/spec/{}", field.replace('.', "/"));
        let Some(r) = bsp.value.pointer(&pointer) else {
            return;
        };
        let path = format!("spec.{field}");
        self.secret_with_key(bsp, r, &path, key, "BackendSecurityPolicy");
    }

    /// The Secret named by `secret_ref` exists in `owner`'s namespace and has `key`.
    fn secret_with_key(
        &mut self,
        owner: &Obj,
        secret_ref: &Value,
        path: &str,
        key: &str,
        what: &str,
    ) {
        let name = s(secret_ref, "/name").unwrap_or_default();
        if name.is_empty() || unknown(name) {
            return;
        }
        if let Some(other) = s(secret_ref, "/namespace")
            && other != ns(owner)
        {
            self.warning(
                "secret_namespace_ignored",
                owner,
                &format!("{path}.namespace"),
                format!(
                    "`namespace: {other}` is ignored: AI Gateway reads the Secret from the {what}'s own namespace `{}`",
                    ns(owner)
                ),
                "remove `namespace:` and keep the Secret next to the policy",
            );
        }
        let Some(secret) = self.find("", "Secret", ns(owner), name) else {
            if self.judgeable(ns(owner)) {
                self.error(
                    "secret_missing",
                    owner,
                    path,
                    format!(
                        "{what} {}/{} reads Secret {}/{name}, which does not exist",
                        ns(owner),
                        owner.name(),
                        ns(owner)
                    ),
                    &format!("render a sops-encrypted Secret `{name}` with key `{key}` in namespace `{}` (the Secret must live next to the {what})", ns(owner)),
                );
            }
            return;
        };
        let has_key = ["/data", "/stringData"].iter().any(|p| {
            secret
                .value
                .pointer(p)
                .and_then(Value::as_object)
                .is_some_and(|m| m.contains_key(key))
        });
        if !has_key {
            self.error(
                "secret_key_missing",
                secret,
                "stringData",
                format!(
                    "Secret {}/{name} has no key `{key}`, which {what} {} reads (\"secret does not contain key\")",
                    ns(secret),
                    owner.name()
                ),
                &format!("put the credential under `stringData.{key}` (or `data.{key}`)"),
            );
        }
    }

    /// MCPRoute backends exist, external ones have TLS policies, API key Secrets exist.
    fn mcp_routes(&mut self) {
        for route in self.all(AIGW, "MCPRoute") {
            for (b, br) in arr(&route.value, "/spec/backendRefs").iter().enumerate() {
                let path = format!("spec.backendRefs[{b}]");
                let name = s(br, "/name").unwrap_or_default();
                let kind = s(br, "/kind").unwrap_or("Service");
                let group = s(br, "/group").unwrap_or("");
                let bns = s(br, "/namespace").unwrap_or(ns(route)).to_owned();
                if unknown(name) {
                    continue;
                }
                if kind == "Backend" && group == EG {
                    match self.find(EG, "Backend", &bns, name) {
                        None => self.error(
                            "mcp_backend_missing",
                            route,
                            &path,
                            format!(
                                "MCPRoute {}/{} uses Backend {bns}/{name}, which does not exist",
                                ns(route),
                                route.name()
                            ),
                            "add an Envoy Gateway Backend with the MCP server's FQDN; its name is the tool prefix clients see (`<name>__<tool>`)",
                        ),
                        Some(be) => {
                            let external: Vec<(usize, String)> = arr(&be.value, "/spec/endpoints")
                                .iter()
                                .enumerate()
                                .filter_map(|(i, e)| {
                                    let h = s(e, "/fqdn/hostname")?;
                                    let port = e.pointer("/fqdn/port").and_then(Value::as_i64);
                                    let internal = h.ends_with(".svc") || h.contains(".svc.") || h.ends_with(".local");
                                    (!internal && port != Some(443)).then(|| (i, h.to_owned()))
                                })
                                .collect();
                            if !external.is_empty() {
                                self.require_tls_policy(be, &external, "mcp_backend_tls", "external MCP server");
                            }
                        }
                    }
                } else if kind == "Service"
                    && group.is_empty()
                    && self.find("", "Service", &bns, name).is_none()
                    && self.judgeable(&bns)
                {
                    self.error(
                        "mcp_backend_missing",
                        route,
                        &path,
                        format!(
                            "MCPRoute {}/{} uses Service {bns}/{name}, which does not exist",
                            ns(route),
                            route.name()
                        ),
                        "point the backendRef at an existing Service (with `port`) or at an Envoy Gateway Backend",
                    );
                }
                if let Some(r) = br.pointer("/securityPolicy/apiKey/secretRef") {
                    let p = format!("{path}.securityPolicy.apiKey.secretRef");
                    self.secret_with_key(route, r, &p, "apiKey", "MCPRoute");
                }
            }
        }
    }

    /// Route parentRefs name Gateways (and listeners) that exist.
    fn parent_refs(&mut self) {
        let routes: Vec<&Obj> = [
            (AIGW, "AIGatewayRoute"),
            (AIGW, "MCPRoute"),
            (GWAPI, "HTTPRoute"),
            (GWAPI, "GRPCRoute"),
        ]
        .iter()
        .flat_map(|(g, k)| self.all(g, k))
        .collect();
        for route in routes {
            for (p, pr) in arr(&route.value, "/spec/parentRefs").iter().enumerate() {
                if s(pr, "/kind").unwrap_or("Gateway") != "Gateway"
                    || s(pr, "/group").unwrap_or(GWAPI) != GWAPI
                {
                    continue;
                }
                let name = s(pr, "/name").unwrap_or_default();
                let gns = s(pr, "/namespace").unwrap_or(ns(route)).to_owned();
                if unknown(name) {
                    continue;
                }
                let path = format!("spec.parentRefs[{p}]");
                match self.find(GWAPI, "Gateway", &gns, name) {
                    None => {
                        if self.judgeable(&gns) {
                            let elsewhere: Vec<String> = self
                                .gateway_namespaces
                                .get(name)
                                .map(Vec::as_slice)
                                .unwrap_or_default()
                                .iter()
                                .map(|gns| format!("`{gns}`"))
                                .collect();
                            let help = if elsewhere.is_empty() {
                                "attach to a Gateway the tree defines".to_owned()
                            } else {
                                format!(
                                    "Gateway `{name}` lives in namespace {}; a parentRef without `namespace:` means the route's own namespace",
                                    elsewhere.join(", ")
                                )
                            };
                            self.error(
                                "parent_ref_missing",
                                route,
                                &path,
                                format!(
                                    "{} {}/{} attaches to Gateway {gns}/{name}, which does not exist",
                                    route.kind(),
                                    ns(route),
                                    route.name()
                                ),
                                &help,
                            );
                        }
                    }
                    Some(gw) => {
                        if let Some(section) = s(pr, "/sectionName") {
                            let listeners = arr(&gw.value, "/spec/listeners");
                            if !listeners.iter().any(|l| s(l, "/name") == Some(section)) {
                                let names: Vec<&str> =
                                    listeners.iter().filter_map(|l| s(l, "/name")).collect();
                                self.error(
                                    "parent_ref_missing",
                                    route,
                                    &format!("{path}.sectionName"),
                                    format!("Gateway {gns}/{name} has no listener `{section}`",),
                                    &format!("its listeners are: {}", names.join(", ")),
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// Lesson 4: rate-limit costs read `io.envoy.ai_gateway` metadata keys that some attached
    /// AIGatewayRoute computes, and Envoy Gateway has a Redis rate-limit backend.
    fn rate_limits(&mut self) {
        let mut any_global = None;
        let costs = RouteCosts::new(&self.all(AIGW, "AIGatewayRoute"));
        for btp in self.all(EG, "BackendTrafficPolicy") {
            let rules = arr(&btp.value, "/spec/rateLimit/global/rules");
            if !rules.is_empty() && any_global.is_none() {
                any_global = Some(btp);
            }
            let policy_keys = costs.for_policy(btp);
            for (r, rule) in rules.iter().enumerate() {
                for which in ["request", "response"] {
                    let Some(meta) = rule.pointer(&format!("/cost/{which}/metadata")) else {
                        continue;
                    };
                    if s(meta, "/namespace") != Some("io.envoy.ai_gateway") {
                        continue;
                    }
                    let key = s(meta, "/key").unwrap_or_default();
                    let keys = policy_keys.clone();
                    if keys.contains(key) || unknown(key) {
                        continue;
                    }
                    let help = if keys.is_empty() {
                        format!(
                            "add `llmRequestCosts: [{{metadataKey: {key}, type: TotalToken}}]` (or InputToken/OutputToken) to the AIGatewayRoutes attached to this policy's Gateway"
                        )
                    } else {
                        format!(
                            "the attached AIGatewayRoutes compute: {}; use one of them or add `{key}` to their `llmRequestCosts`",
                            keys.into_iter().collect::<Vec<_>>().join(", ")
                        )
                    };
                    self.error(
                        "ratelimit_cost_key",
                        btp,
                        &format!("spec.rateLimit.global.rules[{r}].cost.{which}.metadata.key"),
                        format!(
                            "token rate limit reads metadata key `{key}` that no attached AIGatewayRoute writes; every request costs nothing and the limit never triggers"
                        ),
                        &help,
                    );
                }
            }
        }
        let Some(btp) = any_global else { return };
        let Some(eg) = &self.eg else {
            return; // Reported by the prerequisites rule if AI resources exist.
        };
        let backend = eg.values.pointer("/config/envoyGateway/rateLimit/backend");
        let redis_url = backend.and_then(|b| s(b, "/redis/url")).map(str::to_owned);
        let is_redis = backend.and_then(|b| s(b, "/type")) == Some("Redis");
        let eg_release = eg.release;
        if (!is_redis || redis_url.is_none()) && self.eg_values_from() {
            return; // The backend may be set in `valuesFrom`, which verify does not read.
        }
        if !is_redis || redis_url.is_none() {
            self.error(
                "ratelimit_redis",
                eg_release,
                "spec.values.config.envoyGateway",
                format!(
                    "BackendTrafficPolicy {}/{} uses a global rate limit, but the Envoy Gateway values have no Redis rate-limit backend; the limit is never enforced",
                    ns(btp),
                    btp.name()
                ),
                "set `config.envoyGateway.rateLimit.backend: {type: Redis, redis: {url: redis.<namespace>.svc.cluster.local:6379}}` in the Envoy Gateway HelmRelease values",
            );
            return;
        }
        // A Redis URL of the form <svc>.<ns>.svc[.cluster.local]:<port> must name a Service.
        let url = redis_url.unwrap_or_default();
        let (host, port) = url.rsplit_once(':').unwrap_or((&url, ""));
        let parts: Vec<&str> = host.split('.').collect();
        if parts.len() >= 3 && parts[2] == "svc" && !unknown(host) {
            let (svc, sns) = (parts[0], parts[1]);
            let port: Option<i64> = port.parse().ok();
            match self.find("", "Service", sns, svc) {
                Some(service) => {
                    let ports: Vec<i64> = arr(&service.value, "/spec/ports")
                        .iter()
                        .filter_map(|p| p.get("port").and_then(Value::as_i64))
                        .collect();
                    if let Some(p) = port
                        && !ports.contains(&p)
                    {
                        self.error(
                            "ratelimit_redis",
                            eg_release,
                            "spec.values.config.envoyGateway.rateLimit.backend.redis.url",
                            format!("Redis URL `{url}` uses port {p}, but Service {sns}/{svc} exposes {ports:?}"),
                            "use the port of the Redis Service",
                        );
                    }
                }
                None if self.judgeable(sns) => self.error(
                    "ratelimit_redis",
                    eg_release,
                    "spec.values.config.envoyGateway.rateLimit.backend.redis.url",
                    format!("Redis URL `{url}` names Service {sns}/{svc}, which does not exist; envoy-ratelimit crash-loops"),
                    "deploy Redis (Deployment + Service) in that namespace or fix the URL",
                ),
                None => {}
            }
        }
    }

    /// Issue 3 of the seed README: AI Gateway only works if Envoy Gateway calls its extension
    /// server and serves the Backend API.
    fn envoy_gateway_prerequisites(&mut self) {
        let first_ai = self.objs.iter().copied().find(|o| o.group() == AIGW);
        let ai_release = self.aigw.as_ref().map(|c| c.release);
        let Some(anchor) = first_ai.or(ai_release) else {
            return;
        };
        let ai_ns = self
            .aigw
            .as_ref()
            .map_or(AI_NS_DEFAULT.to_owned(), |c| c.namespace.clone());
        if self.aigw.is_none() {
            self.error(
                "aigw_controller_missing",
                anchor,
                "metadata.name",
                "AI Gateway resources are applied, but no HelmRelease installs the AI Gateway controller (`ai-gateway-helm`)".to_owned(),
                "add the `ai-gateway-helm` chart (v0.4.0) HelmRelease, with its CRD chart `ai-gateway-crds-helm`",
            );
        }
        let Some(eg) = &self.eg else {
            self.error(
                "eg_missing",
                anchor,
                "metadata.name",
                "AI Gateway resources are applied, but no HelmRelease installs Envoy Gateway (`gateway-helm`)".to_owned(),
                "install Envoy Gateway v1.6.7 with the AI Gateway extension values",
            );
            return;
        };
        let eg_release = eg.release;
        let eg_ns = eg.namespace.clone();
        let values = eg.values.clone();
        let base = "spec.values.config.envoyGateway";
        let cfg = values
            .pointer("/config/envoyGateway")
            .cloned()
            .unwrap_or(Value::Null);
        if self.eg_values_from() && cfg.is_null() {
            self.warning(
                "eg_values_unchecked",
                eg_release,
                "spec.valuesFrom",
                "Envoy Gateway values come from `valuesFrom`, which verify does not read; the AI Gateway prerequisites are not checked".to_owned(),
                "put the Envoy Gateway configuration in `spec.values`",
            );
            return;
        }
        if cfg.pointer("/extensionApis/enableBackend") != Some(&Value::Bool(true)) {
            self.error(
                "eg_backend_api",
                eg_release,
                &format!("{base}.extensionApis"),
                "Envoy Gateway does not enable the Backend API; every AI Gateway Backend is rejected (\"Backend is not enabled in Envoy Gateway Config\")".to_owned(),
                "set `config.envoyGateway.extensionApis.enableBackend: true` in the Envoy Gateway values",
            );
        }
        let mut missing = Vec::new();
        for part in ["listener", "route", "cluster", "secret"] {
            let p = format!("/extensionManager/hooks/xdsTranslator/translation/{part}/includeAll");
            if cfg.pointer(&p) != Some(&Value::Bool(true)) {
                missing.push(format!("translation.{part}.includeAll: true"));
            }
        }
        let post: Vec<&str> = arr(&cfg, "/extensionManager/hooks/xdsTranslator/post")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for hook in ["Translation", "Cluster", "Route"] {
            if !post.contains(&hook) {
                missing.push(format!("post: {hook}"));
            }
        }
        if !missing.is_empty() {
            self.error(
                "eg_extension_hooks",
                eg_release,
                &format!("{base}.extensionManager"),
                format!(
                    "Envoy Gateway's extensionManager hooks are incomplete (missing {}); the AI Gateway filter is never put in the chain, providers answer 401 while everything looks Accepted",
                    missing.join(", ")
                ),
                "copy the extensionManager block of AI Gateway v0.4.0's `manifests/envoy-gateway-values.yaml` (includeAll for listener/route/cluster/secret, post: [Translation, Cluster, Route])",
            );
        }
        let want_host = format!("ai-gateway-controller.{ai_ns}.svc.cluster.local");
        let host = s(&cfg, "/extensionManager/service/fqdn/hostname").unwrap_or_default();
        let port = cfg
            .pointer("/extensionManager/service/fqdn/port")
            .and_then(Value::as_i64);
        if host != want_host || port != Some(1063) {
            self.error(
                "eg_extension_service",
                eg_release,
                &format!("{base}.extensionManager.service.fqdn"),
                format!(
                    "Envoy Gateway calls its extension server at `{}:{}`, but the AI Gateway controller is `{want_host}:1063`",
                    if host.is_empty() { "<unset>" } else { host },
                    port.map_or("<unset>".to_owned(), |p| p.to_string())
                ),
                &format!("set `extensionManager.service.fqdn: {{hostname: {want_host}, port: 1063}}`"),
            );
        }
        if let Some(aigw) = &self.aigw {
            let configured =
                s(&aigw.values, "/envoyGateway/namespace").unwrap_or("envoy-gateway-system");
            if configured != eg_ns {
                let release = aigw.release;
                self.error(
                    "aigw_eg_namespace",
                    release,
                    "spec.values.envoyGateway.namespace",
                    format!(
                        "the AI Gateway chart grants InferencePool access to Envoy Gateway in namespace `{configured}`, but Envoy Gateway runs in `{eg_ns}`"
                    ),
                    &format!("set `envoyGateway.namespace: {eg_ns}` in the ai-gateway-helm values"),
                );
            }
        }
    }

    /// Lesson 5: HTTPRoute backendRefs to Services resolve — including the Services Envoy
    /// Gateway creates for Gateways, named by its deploy mode.
    fn httproute_backends(&mut self) {
        let envoy_services = self.envoy_services();
        let mut envoy_by_name: HashMap<(&str, &str), &EnvoyService> = HashMap::new();
        for e in &envoy_services {
            envoy_by_name
                .entry((e.namespace.as_str(), e.name.as_str()))
                .or_insert(e);
        }
        for route in self.all(GWAPI, "HTTPRoute") {
            for (r, rule) in arr(&route.value, "/spec/rules").iter().enumerate() {
                for (b, br) in arr(rule, "/backendRefs").iter().enumerate() {
                    if !s(br, "/group").unwrap_or("").is_empty()
                        || s(br, "/kind").unwrap_or("Service") != "Service"
                    {
                        continue;
                    }
                    let name = s(br, "/name").unwrap_or_default();
                    let sns = s(br, "/namespace").unwrap_or(ns(route)).to_owned();
                    if unknown(name) {
                        continue;
                    }
                    let path = format!("spec.rules[{r}].backendRefs[{b}]");
                    let port = br.get("port").and_then(Value::as_i64);
                    if sns != ns(route) {
                        self.reference_grant(
                            route,
                            GWAPI,
                            "HTTPRoute",
                            &sns,
                            "",
                            "Service",
                            name,
                            &path,
                        );
                    }
                    let known_ports: Option<Vec<i64>> = if let Some(svc) =
                        self.find("", "Service", &sns, name)
                    {
                        Some(
                            arr(&svc.value, "/spec/ports")
                                .iter()
                                .filter_map(|p| p.get("port").and_then(Value::as_i64))
                                .collect(),
                        )
                    } else if let Some(es) = envoy_by_name.get(&(sns.as_str(), name)) {
                        Some(es.ports.clone())
                    } else if self.chart_service(&sns, name) {
                        None
                    } else {
                        let looks_envoy = name.starts_with("envoy-")
                            || self.gateway_namespaces.contains_key(name);
                        if !looks_envoy && !self.judgeable(&sns) {
                            continue;
                        }
                        if looks_envoy && self.deploy_mode_unknown() {
                            continue; // The Envoy Service names depend on values verify cannot see.
                        }
                        let expected: Vec<String> = envoy_services
                            .iter()
                            .map(|e| {
                                format!(
                                    "Gateway {} → Service {}/{} (ports {:?})",
                                    e.gateway, e.namespace, e.name, e.ports
                                )
                            })
                            .collect();
                        let mode = self.deploy_mode();
                        let help = if expected.is_empty() {
                            "point the backendRef at a Service the tree defines".to_owned()
                        } else {
                            format!(
                                "Envoy Gateway ({mode} mode) creates these Envoy Services: {}",
                                expected.join("; ")
                            )
                        };
                        self.error(
                            "httproute_backend",
                            route,
                            &path,
                            format!(
                                "HTTPRoute {}/{} forwards to Service {sns}/{name}, which does not exist; requests get 503 \"no healthy upstream\"",
                                ns(route),
                                route.name()
                            ),
                            &help,
                        );
                        continue;
                    };
                    if let (Some(p), Some(ports)) = (port, known_ports)
                        && !ports.is_empty()
                        && !ports.contains(&p)
                    {
                        self.error(
                            "httproute_backend",
                            route,
                            &format!("{path}.port"),
                            format!("Service {sns}/{name} has no port {p} (it exposes {ports:?})"),
                            "use one of the Service's ports",
                        );
                    }
                }
            }
        }
    }

    /// The Envoy Gateway HelmRelease also takes values from `valuesFrom` (ConfigMaps or Secrets
    /// verify does not read), so a setting missing from `spec.values` may still be set.
    fn eg_values_from(&self) -> bool {
        self.eg.as_ref().is_some_and(|c| {
            c.release
                .value
                .pointer("/spec/valuesFrom")
                .is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty()))
        })
    }

    /// The deploy type is not in `spec.values` and may come from `valuesFrom`.
    fn deploy_mode_unknown(&self) -> bool {
        self.eg_values_from()
            && self.eg.as_ref().is_some_and(|c| {
                c.values
                    .pointer("/config/envoyGateway/provider/kubernetes/deploy/type")
                    .is_none()
            })
    }

    /// Services the modelled charts create.
    fn chart_service(&self, namespace: &str, name: &str) -> bool {
        let eg = self
            .eg
            .as_ref()
            .is_some_and(|c| c.namespace == namespace && name == "envoy-gateway");
        let ai = self
            .aigw
            .as_ref()
            .is_some_and(|c| c.namespace == namespace && name == "ai-gateway-controller");
        eg || ai
    }

    fn deploy_mode(&self) -> &'static str {
        let gateway_ns = self.eg.as_ref().and_then(|c| {
            s(
                &c.values,
                "/config/envoyGateway/provider/kubernetes/deploy/type",
            )
        }) == Some("GatewayNamespace");
        if gateway_ns {
            "GatewayNamespace"
        } else {
            "ControllerNamespace"
        }
    }

    /// The Envoy Service of every Gateway, as Envoy Gateway names it.
    fn envoy_services(&self) -> Vec<EnvoyService> {
        let Some(eg) = &self.eg else {
            return Vec::new();
        };
        let gateway_ns_mode = self.deploy_mode() == "GatewayNamespace";
        let mut out = Vec::new();
        for gw in self.all(GWAPI, "Gateway") {
            let ports: Vec<i64> = arr(&gw.value, "/spec/listeners")
                .iter()
                .filter_map(|l| l.get("port").and_then(Value::as_i64))
                .collect();
            let override_name = self.envoy_proxy_for(gw).and_then(|ep| {
                s(&ep.value, "/spec/provider/kubernetes/envoyService/name").map(str::to_owned)
            });
            let namespace = if gateway_ns_mode {
                ns(gw).to_owned()
            } else {
                eg.namespace.clone()
            };
            let name = match override_name {
                Some(n) => n,
                None if gateway_ns_mode => gw.name().to_owned(),
                None => hashed_envoy_name(ns(gw), gw.name()),
            };
            out.push(EnvoyService {
                gateway: format!("{}/{}", ns(gw), gw.name()),
                namespace,
                name,
                ports,
            });
        }
        out
    }

    /// The EnvoyProxy that configures a Gateway (its own `infrastructure.parametersRef`, or its
    /// GatewayClass's `parametersRef`).
    fn envoy_proxy_for(&self, gw: &Obj) -> Option<&'a Obj> {
        if let Some(p) = gw.value.pointer("/spec/infrastructure/parametersRef")
            && s(p, "/kind") == Some("EnvoyProxy")
        {
            return self.find(EG, "EnvoyProxy", ns(gw), s(p, "/name").unwrap_or_default());
        }
        let class = s(&gw.value, "/spec/gatewayClassName")?;
        let gc = self
            .by_kind
            .get(&(GWAPI, "GatewayClass"))?
            .iter()
            .find(|c| c.name() == class)?;
        let p = gc.value.pointer("/spec/parametersRef")?;
        if s(p, "/kind") != Some("EnvoyProxy") {
            return None;
        }
        self.find(
            EG,
            "EnvoyProxy",
            s(p, "/namespace").unwrap_or("default"),
            s(p, "/name")?,
        )
    }

    /// Cross-namespace references need a ReferenceGrant in the target namespace.
    #[allow(clippy::too_many_arguments)]
    fn reference_grant(
        &mut self,
        from: &Obj,
        from_group: &str,
        from_kind: &str,
        to_ns: &str,
        to_group: &str,
        to_kind: &str,
        to_name: &str,
        path: &str,
    ) {
        let grants = self
            .grants
            .get(to_ns)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let granted = grants.iter().any(|g| {
            arr(&g.value, "/spec/from").iter().any(|f| {
                s(f, "/group") == Some(from_group)
                    && s(f, "/kind") == Some(from_kind)
                    && s(f, "/namespace") == Some(ns(from))
            }) && arr(&g.value, "/spec/to").iter().any(|t| {
                s(t, "/group").unwrap_or("") == to_group
                    && s(t, "/kind") == Some(to_kind)
                    && s(t, "/name").is_none_or(|n| n == to_name)
            })
        });
        if !granted {
            self.error(
                "reference_grant",
                from,
                path,
                format!(
                    "{from_kind} {}/{} references {to_kind} {to_ns}/{to_name} across namespaces without a ReferenceGrant in `{to_ns}`; the reference is refused",
                    ns(from),
                    from.name()
                ),
                &format!(
                    "add a ReferenceGrant in `{to_ns}` from {{group: {from_group}, kind: {from_kind}, namespace: {}}} to {{group: \"{to_group}\", kind: {to_kind}, name: {to_name}}}",
                    ns(from)
                ),
            );
        }
    }
}

/// The `llmRequestCosts` metadata keys of the AIGatewayRoutes, per parent Gateway and in total,
/// so that each BackendTrafficPolicy reads its keys without scanning every route.
struct RouteCosts<'a> {
    /// Keys written by the routes attached to each Gateway (namespace, name).
    per_gateway: HashMap<(&'a str, &'a str), BTreeSet<&'a str>>,
    /// Keys written by any route.
    all: BTreeSet<&'a str>,
}

impl<'a> RouteCosts<'a> {
    fn new(routes: &[&'a Obj]) -> RouteCosts<'a> {
        let mut out = RouteCosts {
            per_gateway: HashMap::new(),
            all: BTreeSet::new(),
        };
        for &rt in routes {
            let keys: Vec<&str> = arr(&rt.value, "/spec/llmRequestCosts")
                .iter()
                .filter_map(|c| s(c, "/metadataKey"))
                .collect();
            out.all.extend(&keys);
            for p in arr(&rt.value, "/spec/parentRefs") {
                let gns = s(p, "/namespace").unwrap_or(ns(rt));
                if let Some(name) = s(p, "/name") {
                    out.per_gateway
                        .entry((gns, name))
                        .or_default()
                        .extend(&keys);
                }
            }
        }
        out
    }

    /// Keys of the AIGatewayRoutes a BackendTrafficPolicy applies to: those attached to a
    /// targeted Gateway, or (for route targets and selectors) all routes.
    fn for_policy(&self, btp: &Obj) -> BTreeSet<String> {
        let mut targets: Vec<&Value> = arr(&btp.value, "/spec/targetRefs").iter().collect();
        if let Some(t) = btp.value.pointer("/spec/targetRef") {
            targets.push(t);
        }
        let gateways: Vec<&str> = targets
            .iter()
            .filter(|t| s(t, "/kind") == Some("Gateway"))
            .filter_map(|t| s(t, "/name"))
            .collect();
        let keys: BTreeSet<&str> = if gateways.is_empty() {
            self.all.clone()
        } else {
            gateways
                .iter()
                .filter_map(|g| self.per_gateway.get(&(ns(btp), *g)))
                .flatten()
                .copied()
                .collect()
        };
        keys.into_iter().map(str::to_owned).collect()
    }
}

struct EnvoyService {
    gateway: String,
    namespace: String,
    name: String,
    ports: Vec<i64>,
}

/// Envoy Gateway's name for a Gateway's Envoy Service/Deployment in ControllerNamespace mode:
/// `envoy-<ns>-<name>` truncated to 48 characters, then `-` and the first 8 hex digits of
/// sha256("<ns>/<name>").
pub(crate) fn hashed_envoy_name(namespace: &str, name: &str) -> String {
    let joined = format!("{namespace}-{name}");
    let short: String = joined.chars().take(48).collect();
    let hash = Sha256::digest(format!("{namespace}/{name}").as_bytes());
    let hex: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("envoy-{short}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_gateway_hashed_names_match_its_docs() {
        // Examples from the reference (EG docs and the AI Gateway examples).
        assert_eq!(
            hashed_envoy_name("default", "eg"),
            "envoy-default-eg-e41e7b31"
        );
        assert_eq!(
            hashed_envoy_name("default", "envoy-ai-gateway-basic"),
            "envoy-default-envoy-ai-gateway-basic-21a9f8f8"
        );
    }
}
