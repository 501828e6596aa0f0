//! Route attachment and forwarding: parentRefs resolve, and HTTPRoute backendRefs reach a
//! Service that exists — including the Envoy Services Envoy Gateway names by its deploy mode
//! (lesson 5).

use std::collections::HashMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AIGW, Ctx, EG, GWAPI, arr, ns, s, unknown};
use crate::kustomize::Obj;

impl<'a> Ctx<'a> {
    /// Route parentRefs name Gateways (and listeners) that exist.
    pub(super) fn parent_refs(&mut self) {
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

    /// Lesson 5: HTTPRoute backendRefs to Services resolve — including the Services Envoy
    /// Gateway creates for Gateways, named by its deploy mode.
    pub(super) fn httproute_backends(&mut self) {
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

    /// The Envoy Service of every Gateway, as Envoy Gateway names it.
    pub(super) fn envoy_services(&self) -> Vec<EnvoyService> {
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
    pub(super) fn envoy_proxy_for(&self, gw: &Obj) -> Option<&'a Obj> {
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
}

pub(super) struct EnvoyService {
    /// `namespace/name` of the Gateway.
    pub(super) gateway: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) ports: Vec<i64>,
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
