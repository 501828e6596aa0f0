//! Issue 13, credentials: where the AI Gateway injects a credential (an Azure key, an MCP token),
//! nobody may reach it without having been let in on purpose.
//!
//! - `aigw_mcp_header_forgery`: with Envoy Gateway's extension hooks failing open, the AI Gateway
//!   controller's per-server MCP routes (matched on `x-ai-eg-mcp-backend` and
//!   `x-ai-eg-mcp-route`, the upstream token injected by Envoy Gateway) stay on the public
//!   listener whenever the controller is unreachable. The Gateway must strip both headers before
//!   routing.
//! - `aigw_mcp_session_seed`: the v0.4.0 chart never passes its seed value; the controller then
//!   encrypts MCP session IDs with its public default.
//! - `aigw_open_lan`: a LoadBalancer Envoy Service with a plain-HTTP listener serving routes that
//!   inject credentials, and no client authentication on them.
//! - `azure_authorization_forwarded`: a client's `Authorization` header travels on to Azure.

use serde_json::Value;

use super::{AIGW, Ctx, EG, GWAPI, arr, ns, policy_selects_gateway, policy_targets_route, s};
use crate::kustomize::Obj;

/// The headers the v0.4.0 controller's per-backend MCP routes match (internal/internalapi).
const MCP_ROUTING_HEADERS: [&str; 2] = ["x-ai-eg-mcp-backend", "x-ai-eg-mcp-route"];
/// The controller's flag default and the chart's (unused) default value at v0.4.0.
const DEFAULT_SEEDS: [&str; 2] = ["seed", "default-insecure-seed"];
/// Envoy Gateway SecurityPolicy fields that make a client prove who it is.
const CLIENT_AUTH: [&str; 6] = [
    "apiKeyAuth",
    "basicAuth",
    "jwt",
    "oidc",
    "extAuth",
    "authorization",
];

impl<'a> Ctx<'a> {
    pub(super) fn mcp_header_forgery(&mut self) {
        let fail_open = self
            .eg_value("/config/envoyGateway/extensionManager/failOpen")
            .and_then(Value::as_bool);
        if fail_open != Some(true) {
            return; // Fail closed (the default): the untransformed translation is never served.
        }
        let policies = self.all(EG, "ClientTrafficPolicy");
        for route in self.all(AIGW, "MCPRoute") {
            for gw in self.parent_gateways(route) {
                let stripped: Vec<String> = policies
                    .iter()
                    .filter(|p| policy_selects_gateway(p, gw))
                    .flat_map(|p| arr(&p.value, "/spec/headers/earlyRequestHeaders/remove"))
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .collect();
                let missing: Vec<&str> = MCP_ROUTING_HEADERS
                    .iter()
                    .copied()
                    .filter(|h| !stripped.iter().any(|x| x == h))
                    .collect();
                if missing.is_empty() {
                    continue;
                }
                let release = self.eg.as_ref().map(|c| c.release);
                let Some(release) = release else { continue };
                self.error(
                    "aigw_mcp_header_forgery",
                    release,
                    "spec.values.config.envoyGateway.extensionManager.failOpen",
                    format!(
                        "Envoy Gateway's extension hooks fail open, and Gateway {}/{} serves MCPRoute {}/{} without removing {} from client requests: while the AI Gateway controller is unreachable, its per-server MCP routes stay on the public listener and anyone sending those headers reaches the MCP servers with their tokens, past the tool filter and client keys",
                        ns(gw),
                        gw.name(),
                        ns(route),
                        route.name(),
                        missing.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(" and ")
                    ),
                    &format!(
                        "add `headers: {{earlyRequestHeaders: {{remove: [x-ai-eg-mcp-backend, x-ai-eg-mcp-route]}}}}` to a ClientTrafficPolicy targeting Gateway {}/{} (the controller's MCP proxy sets them on an internal listener the policy does not touch), or set `failOpen: false` (then every gateway's configuration freezes while the controller is down)",
                        ns(gw),
                        gw.name()
                    ),
                );
            }
        }
    }

    pub(super) fn mcp_session_seed(&mut self) {
        if self.all(AIGW, "MCPRoute").is_empty() {
            return;
        }
        let Some(aigw) = &self.aigw else { return };
        let release = aigw.release;
        let chart_ns = aigw.namespace.clone();
        let values = aigw.values.clone();
        // The flag as a post-renderer adds it (JSON patch value or strategic-merge args).
        let mut flag: Option<String> = None;
        for r in arr(&release.value, "/spec/postRenderers") {
            for p in arr(r, "/kustomize/patches") {
                let text = s(p, "/patch").unwrap_or_default();
                if let Some(at) = text.find("mcpSessionEncryptionSeed=") {
                    let rest = &text[at + "mcpSessionEncryptionSeed=".len()..];
                    let value: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
                        .collect();
                    flag = Some(value);
                }
            }
        }
        // Charts after v0.4.0 pass `controller.mcp.sessionEncryption.seed` themselves.
        let chart_tag = self.chart_tag(release);
        let later_chart = chart_tag
            .as_deref()
            .is_some_and(|t| !t.trim_start_matches('v').starts_with("0.4"));
        let chart_value = s(&values, "/controller/mcp/sessionEncryption/seed");
        if flag.is_none()
            && later_chart
            && chart_value.is_some_and(|v| !DEFAULT_SEEDS.contains(&v) && !v.is_empty())
        {
            return;
        }
        let Some(value) = flag else {
            let ignored = values
                .pointer("/controller/mcpSessionEncryptionSeed")
                .is_some();
            self.error(
                "aigw_mcp_session_seed",
                release,
                "spec.postRenderers",
                format!(
                    "the AI Gateway controller runs with its built-in MCP session seed (\"seed\"): the ai-gateway-helm v0.4.0 chart never passes {}, so MCP session IDs (route, client identity, upstream session) can be decrypted and forged by anyone",
                    if ignored {
                        "`controller.mcpSessionEncryptionSeed` (set here, but ignored)"
                    } else {
                        "a seed"
                    }
                ),
                "keep a generated seed in a sops-encrypted Secret, expose it through `controller.extraEnvVars` (valueFrom.secretKeyRef) and add `--mcpSessionEncryptionSeed=$(VAR)` to the controller's args with a post-renderer patch (charts after v0.4.0 take `controller.mcp.sessionEncryption.seed` instead)",
            );
            return;
        };
        if DEFAULT_SEEDS.contains(&value.as_str()) || value.is_empty() {
            self.error(
                "aigw_mcp_session_seed",
                release,
                "spec.postRenderers",
                format!("the MCP session seed is the public default `{value}`"),
                "use a generated seed from a sops-encrypted Secret",
            );
            return;
        }
        // `$(VAR)`: the variable must come from a Secret that exists with that key.
        let Some(var) = value.strip_prefix("$(").and_then(|v| v.strip_suffix(')')) else {
            self.error(
                "aigw_mcp_session_seed",
                release,
                "spec.postRenderers",
                "the MCP session seed is written in plaintext into the HelmRelease".to_owned(),
                "read it from a sops-encrypted Secret: `--mcpSessionEncryptionSeed=$(VAR)` with VAR in `controller.extraEnvVars` (valueFrom.secretKeyRef)",
            );
            return;
        };
        let env = arr(&values, "/controller/extraEnvVars")
            .iter()
            .find(|e| s(e, "/name") == Some(var))
            .cloned();
        let secret_ref = env
            .as_ref()
            .and_then(|e| e.pointer("/valueFrom/secretKeyRef"))
            .map(|r| {
                (
                    s(r, "/name").unwrap_or_default().to_owned(),
                    s(r, "/key").unwrap_or_default().to_owned(),
                )
            });
        let Some((name, key)) = secret_ref else {
            self.error(
                "aigw_mcp_session_seed",
                release,
                "spec.values.controller",
                format!("the controller's args read the MCP session seed from `$({var})`, which `controller.extraEnvVars` does not take from a Secret"),
                &format!("add `{{name: {var}, valueFrom: {{secretKeyRef: {{name: <secret>, key: seed}}}}}}` to `controller.extraEnvVars`"),
            );
            return;
        };
        let has_key = self.find("", "Secret", &chart_ns, &name).map(|sec| {
            ["/data", "/stringData"].iter().any(|p| {
                sec.value
                    .pointer(p)
                    .and_then(Value::as_object)
                    .is_some_and(|m| m.contains_key(&key))
            })
        });
        if has_key != Some(true) && self.judgeable(&chart_ns) {
            self.error(
                "aigw_mcp_session_seed",
                release,
                "spec.values.controller.extraEnvVars",
                format!(
                    "the MCP session seed comes from Secret {chart_ns}/{name}, key `{key}`, which {}",
                    if has_key.is_none() { "does not exist" } else { "the Secret does not have" }
                ),
                &format!("render a sops-encrypted Secret `{name}` with key `{key}` in namespace `{chart_ns}`"),
            );
        }
    }

    /// The chart version a HelmRelease installs (its OCIRepository's `ref.tag`), if known.
    fn chart_tag(&self, hr: &Obj) -> Option<String> {
        let r = hr.value.pointer("/spec/chartRef")?;
        let rns = s(r, "/namespace").unwrap_or(ns(hr));
        let repo = self.find(
            crate::flux::SOURCE_GROUP,
            "OCIRepository",
            rns,
            s(r, "/name")?,
        )?;
        s(&repo.value, "/spec/ref/tag").map(str::to_owned)
    }

    pub(super) fn open_on_lan(&mut self) {
        let secured_policies = self.all(EG, "SecurityPolicy");
        let has_client_auth = |p: &&Obj| {
            CLIENT_AUTH
                .iter()
                .any(|f| p.value.pointer(&format!("/spec/{f}")).is_some())
        };
        let bsps = self.all(AIGW, "BackendSecurityPolicy");
        for gw in self.all(GWAPI, "Gateway") {
            let service_type = self
                .envoy_proxy_for(gw)
                .and_then(|ep| s(&ep.value, "/spec/provider/kubernetes/envoyService/type"))
                .unwrap_or("LoadBalancer"); // Envoy Gateway's default
            if service_type == "ClusterIP" {
                continue;
            }
            let plain: Vec<String> = arr(&gw.value, "/spec/listeners")
                .iter()
                .filter(|l| s(l, "/protocol") == Some("HTTP"))
                .map(|l| {
                    format!(
                        "`{}` (port {})",
                        s(l, "/name").unwrap_or("?"),
                        l.get("port").and_then(Value::as_i64).unwrap_or(0)
                    )
                })
                .collect();
            if plain.is_empty() {
                continue;
            }
            let gateway_auth = secured_policies
                .iter()
                .any(|p| policy_selects_gateway(p, gw) && has_client_auth(p));
            if gateway_auth {
                continue;
            }
            let mut open: Vec<(&'a Obj, &'static str)> = Vec::new();
            for route in self.all(AIGW, "AIGatewayRoute") {
                if !self
                    .parent_gateways(route)
                    .iter()
                    .any(|g| std::ptr::eq(*g, gw))
                {
                    continue;
                }
                let injects = arr(&route.value, "/spec/rules").iter().any(|rule| {
                    arr(rule, "/backendRefs").iter().any(|b| {
                        let name = s(b, "/name").unwrap_or_default();
                        bsps.iter().any(|p| {
                            ns(p) == ns(route)
                                && arr(&p.value, "/spec/targetRefs").iter().any(|t| {
                                    s(t, "/kind") == Some("AIServiceBackend")
                                        && s(t, "/name") == Some(name)
                                })
                        })
                    })
                });
                // The controller generates an HTTPRoute of the same name: policies target that.
                let authed = secured_policies.iter().any(|p| {
                    policy_targets_route(p, "HTTPRoute", ns(route), route.name())
                        && has_client_auth(p)
                });
                if injects && !authed {
                    open.push((route, "provider keys"));
                }
            }
            for route in self.all(AIGW, "MCPRoute") {
                if !self
                    .parent_gateways(route)
                    .iter()
                    .any(|g| std::ptr::eq(*g, gw))
                {
                    continue;
                }
                let injects = arr(&route.value, "/spec/backendRefs")
                    .iter()
                    .any(|b| b.pointer("/securityPolicy/apiKey").is_some());
                let authed = ["apiKeyAuth", "oauth", "extAuth", "authorization"]
                    .iter()
                    .any(|f| {
                        route
                            .value
                            .pointer(&format!("/spec/securityPolicy/{f}"))
                            .is_some()
                    });
                if injects && !authed {
                    open.push((route, "MCP tokens"));
                }
            }
            for (route, what) in open {
                self.error(
                    "aigw_open_lan",
                    route,
                    "metadata.name",
                    format!(
                        "{} {}/{} injects {what} and is served by Gateway {}/{}, whose Envoy Service is a {service_type} with plain-HTTP listener {}, and nothing asks clients for a credential: anyone who can reach that address uses them",
                        route.kind(),
                        ns(route),
                        route.name(),
                        ns(gw),
                        gw.name(),
                        plain.join(", ")
                    ),
                    "require client keys (an Envoy Gateway SecurityPolicy with `apiKeyAuth` on the generated HTTPRoute, `spec.securityPolicy.apiKeyAuth` on an MCPRoute; configure renders both from `ai_gateway_client_keys`), or keep the Envoy Service `type: ClusterIP` and reach it through an HTTPS gateway",
                );
            }
        }
    }

    pub(super) fn azure_authorization_forwarded(&mut self) {
        for sb in self.all(AIGW, "AIServiceBackend") {
            if !self.is_azure(sb) {
                continue;
            }
            let api_key = self
                .bsp_targeting
                .get(&(ns(sb), sb.name()))
                .and_then(|ps| ps.first())
                .is_some_and(|p| s(&p.value, "/spec/type") == Some("AzureAPIKey"));
            if !api_key {
                continue; // azure_auth reports it; Entra credentials replace Authorization.
            }
            let removed: Vec<&str> = arr(&sb.value, "/spec/headerMutation/remove")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            if removed.contains(&"authorization") {
                continue;
            }
            let (path, message) = match removed
                .iter()
                .position(|h| h.eq_ignore_ascii_case("authorization"))
            {
                Some(i) => (
                    format!("spec.headerMutation.remove[{i}]"),
                    format!(
                        "AIServiceBackend {}/{} removes `{}`, but the AI Gateway v0.4.0 external processor looks header names up exactly as Envoy stores them (lower case), so the client's Authorization header still reaches Azure",
                        ns(sb),
                        sb.name(),
                        removed[i]
                    ),
                ),
                None => (
                    "spec".to_owned(),
                    format!(
                        "AIServiceBackend {}/{} sends the client's `Authorization` header on to Azure OpenAI beside the injected `api-key` (OpenAI SDKs always send one; without client keys nothing removes it)",
                        ns(sb),
                        sb.name()
                    ),
                ),
            };
            self.error(
                "azure_authorization_forwarded",
                sb,
                &path,
                message,
                "add `headerMutation: {remove: [authorization]}` (lower case) to the AIServiceBackend",
            );
        }
    }
}
