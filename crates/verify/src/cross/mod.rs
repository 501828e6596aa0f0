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

use crate::flux::{FluxGraph, HELM_GROUP, SOURCE_GROUP, locate};
use crate::kustomize::Obj;
use crate::tree::Tree;

mod ai;
mod billing;
mod envoy_gateway;
mod exposure;
mod operations;
mod providers;
mod ratelimit;
mod routes;
mod tls;

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
    /// The Flux graph: which Kustomization applies each object, and their specs.
    graph: &'a FluxGraph,
    /// The index (in `graph.kustomizations`) of the Kustomization applying each object.
    owners: HashMap<Key<'a>, usize>,
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
    let mut owners = HashMap::new();
    let objs: Vec<&Obj> = graph
        .objects
        .iter()
        .filter(|o| {
            let o_ = &o.obj;
            let fresh = seen.insert((
                o_.group(),
                o_.kind(),
                o_.namespace().unwrap_or_default(),
                o_.name(),
            ));
            if fresh {
                owners.insert((o_.group(), o_.kind(), ns(o_), o_.name()), o.owner);
            }
            fresh
        })
        .map(|o| &o.obj)
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
        graph,
        owners,
    };
    cx.index();
    cx.find_charts();
    cx.aigw_backend_refs();
    cx.aigw_route_size();
    cx.aisb_backends();
    cx.backend_tls();
    cx.security_policies();
    // Issue 16: OpenAI, Anthropic and Bedrock backends.
    cx.provider_policies();
    cx.provider_transport();
    cx.route_mixed_api();
    cx.mcp_routes();
    cx.parent_refs();
    cx.rate_limits();
    cx.envoy_gateway_prerequisites();
    cx.httproute_backends();
    // Issue 13: nothing reaches a paid API or an MCP token unless the operator opened it.
    cx.mcp_header_forgery();
    cx.mcp_session_seed();
    cx.open_on_lan();
    cx.ratelimit_image();
    cx.retry_billing();
    cx.azure_authorization_forwarded();
    cx.redis_exposed();
    cx.metrics_unscraped();
    cx.removal_order();
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

/// `targetRefs` and the older single `targetRef` of a policy.
fn targets(policy: &Obj) -> Vec<&Value> {
    let mut out: Vec<&Value> = arr(&policy.value, "/spec/targetRefs").iter().collect();
    if let Some(t) = policy.value.pointer("/spec/targetRef") {
        out.push(t);
    }
    out
}

/// Every `matchLabels` entry is among `labels` (an absent or empty selector matches all).
fn labels_match(match_labels: Option<&Value>, labels: Option<&Value>) -> bool {
    let Some(want) = match_labels.and_then(Value::as_object) else {
        return true;
    };
    want.iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// A policy in the Gateway's namespace that applies to the whole Gateway: by `targetRefs` (no
/// `sectionName`) or by a `targetSelectors` entry for Gateways whose labels match.
fn policy_selects_gateway(policy: &Obj, gw: &Obj) -> bool {
    if ns(policy) != ns(gw) {
        return false;
    }
    let by_ref = targets(policy).iter().any(|t| {
        s(t, "/kind") == Some("Gateway")
            && s(t, "/name") == Some(gw.name())
            && t.get("sectionName").is_none()
    });
    let by_selector = arr(&policy.value, "/spec/targetSelectors").iter().any(|t| {
        s(t, "/kind") == Some("Gateway")
            && labels_match(t.get("matchLabels"), gw.value.pointer("/metadata/labels"))
    });
    by_ref || by_selector
}

/// A policy in the route's namespace naming this route (kind `kind`) in its `targetRefs`.
fn policy_targets_route(policy: &Obj, kind: &str, route_ns: &str, route_name: &str) -> bool {
    ns(policy) == route_ns
        && targets(policy)
            .iter()
            .any(|t| s(t, "/kind") == Some(kind) && s(t, "/name") == Some(route_name))
}

impl<'a> Ctx<'a> {
    /// The Gateways a route attaches to (parentRefs of kind Gateway that resolve).
    fn parent_gateways(&self, route: &Obj) -> Vec<&'a Obj> {
        arr(&route.value, "/spec/parentRefs")
            .iter()
            .filter(|p| {
                s(p, "/kind").unwrap_or("Gateway") == "Gateway"
                    && s(p, "/group").unwrap_or(GWAPI) == GWAPI
            })
            .filter_map(|p| {
                let gns = s(p, "/namespace").unwrap_or(ns(route));
                self.find(GWAPI, "Gateway", gns, s(p, "/name")?)
            })
            .collect()
    }

    /// The Flux Kustomization object that applies `o`, if it is one the graph found.
    fn owner_ks(&self, o: &Obj) -> Option<(usize, &'a Obj)> {
        let i = *self.owners.get(&(o.group(), o.kind(), ns(o), o.name()))?;
        let ks = self.graph.kustomizations.get(i)?;
        ks.obj.as_ref().map(|(obj, _)| (i, obj))
    }

    /// Whether the Envoy Gateway values set `pointer` (relative to `spec.values`), or may set it
    /// through `valuesFrom`, which verify does not read.
    fn eg_value(&self, pointer: &str) -> Option<&Value> {
        self.eg.as_ref().and_then(|c| c.values.pointer(pointer))
    }
}
