//! AI Gateway objects: route backends, AIServiceBackends, BackendSecurityPolicies (lessons 1
//! and 2), their Secrets, and MCPRoutes.

use serde_json::Value;

use super::{AIGW, Ctx, EG, arr, ns, s, unknown};
use crate::kustomize::Obj;

impl Ctx<'_> {
    /// Lesson 1's other half: backendRefs without group/kind name AIServiceBackends.
    pub(super) fn aigw_backend_refs(&mut self) {
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
    pub(super) fn aigw_route_size(&mut self) {
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
    pub(super) fn aisb_backends(&mut self) {
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

    /// BackendSecurityPolicies: targets exist, one per backend, Azure uses `AzureAPIKey`
    /// (lesson 2), and each Secret exists with the key the controller reads.
    pub(super) fn security_policies(&mut self) {
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
    pub(super) fn is_azure(&self, sb: &Obj) -> bool {
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

    pub(super) fn policy_secret(&mut self, bsp: &Obj) {
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
    pub(super) fn secret_with_key(
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
    pub(super) fn mcp_routes(&mut self) {
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
}
