//! Issue 13, money: token budgets that are really enforced, and completions billed once.
//!
//! - `ratelimit_image`: `global.imageRegistry` rewrites the rate-limit service's image to a
//!   registry that may not have it; with the service down, budgets are not enforced.
//! - `ratelimit_fail_open` (warning): global rate limits let traffic through when the rate-limit
//!   service cannot answer.
//! - `aigw_retry_billing`: a route in front of an AI gateway retried by an outer gateway's policy:
//!   a reset after the request was sent repeats a completion already billed and counted.
//! - `ratelimit_redis_exposed`: the rate-limit Redis (no password) open to every pod.
//! - `ratelimit_redis_order` (warning): Envoy Gateway, whose rate-limit service needs Redis, is
//!   not ordered after it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    AIGW, Ctx, EG, GWAPI, arr, labels_match, ns, policy_selects_gateway, policy_targets_route, s,
};
use crate::flux::KS_GROUP;
use crate::kustomize::Obj;

impl<'a> Ctx<'a> {
    /// The first BackendTrafficPolicy with global rate-limit rules.
    fn global_rate_limit(&self) -> Option<&'a Obj> {
        self.all(EG, "BackendTrafficPolicy")
            .into_iter()
            .find(|p| !arr(&p.value, "/spec/rateLimit/global/rules").is_empty())
    }

    pub(super) fn ratelimit_image(&mut self) {
        let Some(btp) = self.global_rate_limit() else {
            return;
        };
        let Some(eg) = &self.eg else { return };
        let release = eg.release;
        let values_from = self.eg_values_from();
        let registry = self
            .eg_value("/global/imageRegistry")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let explicit = self
            .eg_value(
                "/config/envoyGateway/provider/kubernetes/rateLimitDeployment/container/image",
            )
            .and_then(Value::as_str)
            .map(str::to_owned);
        let fail_closed = self
            .eg_value("/config/envoyGateway/rateLimit/failClosed")
            .and_then(Value::as_bool);
        if !registry.is_empty() && explicit.is_none() && !values_from {
            self.error(
                "ratelimit_image",
                release,
                "spec.values.global.imageRegistry",
                format!(
                    "`global.imageRegistry: {registry}` also applies to the rate-limit service BackendTrafficPolicy {}/{} needs: its image becomes `{registry}/envoyproxy/ratelimit:<commit>`, which pulls only if that registry has it; otherwise envoy-ratelimit never starts and the token budgets are not enforced",
                    ns(btp),
                    btp.name()
                ),
                "name the image in full from its own registry: `config.envoyGateway.provider.kubernetes.rateLimitDeployment.container.image: docker.io/envoyproxy/ratelimit:<the tag of your Envoy Gateway release>` (with a Renovate comment)",
            );
        }
        if fail_closed != Some(true) && !values_from {
            self.warning(
                "ratelimit_fail_open",
                release,
                "spec.values.config.envoyGateway",
                format!(
                    "global rate limits (BackendTrafficPolicy {}/{}) fail open: while the rate-limit service or Redis is unreachable, every request passes and no budget is enforced",
                    ns(btp),
                    btp.name()
                ),
                "set `config.envoyGateway.rateLimit.failClosed: true` to answer 500 instead (it applies to every global rate limit of this Envoy Gateway), or accept unenforced budgets during outages",
            );
        }
    }

    /// Gateways with AIGatewayRoutes attached: their Envoy Services are "AI gateways".
    fn ai_gateway_services(&self) -> BTreeSet<(String, String)> {
        let ai_gateways: Vec<String> = self
            .all(AIGW, "AIGatewayRoute")
            .iter()
            .flat_map(|r| self.parent_gateways(r))
            .map(|g| format!("{}/{}", ns(g), g.name()))
            .collect();
        self.envoy_services()
            .into_iter()
            .filter(|e| ai_gateways.contains(&e.gateway))
            .map(|e| (e.namespace, e.name))
            .collect()
    }

    pub(super) fn retry_billing(&mut self) {
        let ai_services = self.ai_gateway_services();
        if ai_services.is_empty() {
            return;
        }
        let btps = self.all(EG, "BackendTrafficPolicy");
        for route in self.all(GWAPI, "HTTPRoute") {
            let to_ai = arr(&route.value, "/spec/rules").iter().any(|rule| {
                arr(rule, "/backendRefs").iter().any(|b| {
                    s(b, "/group").unwrap_or("").is_empty()
                        && s(b, "/kind").unwrap_or("Service") == "Service"
                        && ai_services.contains(&(
                            s(b, "/namespace").unwrap_or(ns(route)).to_owned(),
                            s(b, "/name").unwrap_or_default().to_owned(),
                        ))
                })
            });
            if !to_ai {
                continue;
            }
            // A policy on the route replaces the Gateway's, unless it asks to be merged.
            let own = btps
                .iter()
                .find(|p| policy_targets_route(p, "HTTPRoute", ns(route), route.name()));
            let own_retry = own.and_then(|p| p.value.pointer("/spec/retry"));
            let merged = own.is_some_and(|p| p.value.pointer("/spec/mergeType").is_some());
            let mut retried: Vec<(&'a Obj, String)> = Vec::new();
            let mut judge = |policy: &'a Obj, retry: &Value| {
                let n = retry.get("numRetries").and_then(Value::as_i64).unwrap_or(2); // Envoy Gateway's default
                if n > 0 {
                    let on: Vec<&str> = arr(retry, "/retryOn/triggers")
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    let why = if on.is_empty() {
                        format!("{n} retries")
                    } else {
                        format!("{n} retries on {}", on.join(", "))
                    };
                    retried.push((policy, why));
                }
            };
            match (own, own_retry) {
                (Some(p), Some(r)) => judge(p, r),
                (Some(_), None) if !merged => {}
                _ => {
                    for gw in self.parent_gateways(route) {
                        if let Some(p) = btps.iter().find(|p| policy_selects_gateway(p, gw))
                            && let Some(r) = p.value.pointer("/spec/retry")
                        {
                            judge(p, r);
                        }
                    }
                }
            }
            for (policy, why) in retried {
                self.error(
                    "aigw_retry_billing",
                    route,
                    "metadata.name",
                    format!(
                        "HTTPRoute {}/{} forwards to an AI gateway and BackendTrafficPolicy {}/{} retries it ({why}): a retried completion is sent again after the provider may have billed it and the token budget counted it",
                        ns(route),
                        route.name(),
                        ns(policy),
                        policy.name()
                    ),
                    &format!(
                        "add a BackendTrafficPolicy in `{}` targeting HTTPRoute {} with `retry: {{numRetries: 0}}` (a policy on the route replaces the Gateway's), and leave retrying to the AI gateway's priority failover",
                        ns(route),
                        route.name()
                    ),
                );
            }
        }
    }

    /// The Redis Service the Envoy Gateway rate-limit backend URL names, if the tree has it.
    fn ratelimit_redis_service(&self) -> Option<&'a Obj> {
        let url = self
            .eg_value("/config/envoyGateway/rateLimit/backend/redis/url")
            .and_then(Value::as_str)?;
        let host = url.rsplit_once(':').map_or(url, |(h, _)| h);
        let parts: Vec<&str> = host.split('.').collect();
        if parts.len() >= 3 && parts[2] == "svc" {
            self.find("", "Service", parts[1], parts[0])
        } else {
            None
        }
    }

    pub(super) fn redis_exposed(&mut self) {
        if self.global_rate_limit().is_none() {
            return;
        }
        let Some(svc) = self.ratelimit_redis_service() else {
            return;
        };
        let selector = svc.value.pointer("/spec/selector").cloned();
        let restricted = self.all("networking.k8s.io", "NetworkPolicy").iter().any(|np| {
            ns(np) == ns(svc)
                && labels_match(
                    np.value.pointer("/spec/podSelector/matchLabels"),
                    selector.as_ref(),
                )
                && {
                    let types: Vec<&str> = arr(&np.value, "/spec/policyTypes")
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    types.contains(&"Ingress") || (types.is_empty() && np.value.pointer("/spec/ingress").is_some())
                }
                // An ingress rule without `from` admits every source.
                && arr(&np.value, "/spec/ingress")
                    .iter()
                    .all(|rule| !arr(rule, "/from").is_empty())
        });
        if !restricted {
            self.error(
                "ratelimit_redis_exposed",
                svc,
                "metadata.name",
                format!(
                    "Redis {}/{} holds every token budget, has no password, and no NetworkPolicy limits who connects: any pod in the cluster can reset (FLUSHALL) or exhaust every client's budget",
                    ns(svc),
                    svc.name()
                ),
                "add a NetworkPolicy selecting the Redis pods with an ingress rule from Envoy Gateway's rate-limit pods only (namespace of Envoy Gateway, labels app.kubernetes.io/name: envoy-ratelimit) on port 6379",
            );
        }
        self.redis_order(svc);
    }

    /// Envoy Gateway starts `envoy-ratelimit` as soon as its values name a Redis; the Flux
    /// Kustomization installing it should wait for the one that deploys Redis.
    fn redis_order(&mut self, svc: &'a Obj) {
        let Some(release) = self.eg.as_ref().map(|c| c.release) else {
            return;
        };
        let (Some((eg_ks, eg_ks_obj)), Some((redis_ks, redis_ks_obj))) =
            (self.owner_ks(release), self.owner_ks(svc))
        else {
            return;
        };
        if eg_ks == redis_ks {
            return;
        }
        // dependsOn, transitively, by (namespace, name).
        let by_id = |ns_: &str, name: &str| {
            self.graph.kustomizations.iter().find_map(|k| {
                k.obj
                    .as_ref()
                    .filter(|_| k.namespace == ns_ && k.name == name)
                    .map(|(o, _)| o)
            })
        };
        let target = (ns(redis_ks_obj).to_owned(), redis_ks_obj.name().to_owned());
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        let mut stack = vec![eg_ks_obj];
        let mut found = false;
        while let Some(k) = stack.pop() {
            for d in arr(&k.value, "/spec/dependsOn") {
                let id = (
                    s(d, "/namespace").unwrap_or(ns(k)).to_owned(),
                    s(d, "/name").unwrap_or_default().to_owned(),
                );
                if id == target {
                    found = true;
                }
                if seen.insert(id.clone())
                    && let Some(next) = by_id(&id.0, &id.1)
                {
                    stack.push(next);
                }
            }
        }
        if !found && eg_ks_obj.group() == KS_GROUP {
            self.warning(
                "ratelimit_redis_order",
                eg_ks_obj,
                "spec",
                format!(
                    "Kustomization {}/{} installs Envoy Gateway, whose rate-limit service needs Redis {}/{}, but does not dependsOn Kustomization {}/{} that deploys it: envoy-ratelimit crash-loops until Redis answers",
                    ns(eg_ks_obj),
                    eg_ks_obj.name(),
                    ns(svc),
                    svc.name(),
                    target.0,
                    target.1
                ),
                &format!(
                    "add `dependsOn: [{{name: {}, namespace: {}}}]`",
                    target.1, target.0
                ),
            );
        }
    }
}
