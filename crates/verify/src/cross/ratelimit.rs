//! Token rate limits: costs read keys the routes write, and Envoy Gateway has a Redis
//! backend that exists (lesson 4).

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::{AIGW, Ctx, EG, arr, ns, s, unknown};
use crate::kustomize::Obj;

impl Ctx<'_> {
    /// Lesson 4: rate-limit costs read `io.envoy.ai_gateway` metadata keys that some attached
    /// AIGatewayRoute computes, and Envoy Gateway has a Redis rate-limit backend.
    pub(super) fn rate_limits(&mut self) {
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
