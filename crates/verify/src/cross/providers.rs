//! Providers beyond Azure API keys (issue 16): what AI Gateway v0.4.0 needs of an OpenAI,
//! Anthropic or AWS Bedrock backend, read from its controller and external processor at that tag.
//!
//! - the BackendSecurityPolicy type matches the AIServiceBackend's schema (each provider reads its
//!   credential from its own header, or a signature);
//! - providers that always need a credential have one;
//! - Bedrock is reached at `bedrock-runtime.<region>.amazonaws.com` of the policy's region (the
//!   signature is computed for that host);
//! - no public-CA TLS check on a cluster-internal name, and no cleartext to an external host;
//! - one route rule does not mix Anthropic's Messages API with OpenAI chat completions.
//!
//! Secret key names per policy type (`apiKey`, `client-secret`, `credentials`) are checked by
//! `ai.rs` (`secret_key_missing`).

use super::{AIGW, Ctx, EG, arr, ns, s, unknown};
use crate::kustomize::Obj;

/// The credential type each schema's backend reads, and what the wrong one does.
fn expected_policy(schema: &str) -> Option<(&'static [&'static str], &'static str)> {
    match schema {
        "OpenAI" | "Cohere" => Some((&["APIKey"], "it reads `Authorization: Bearer <key>`")),
        "Anthropic" => Some((
            &["AnthropicAPIKey"],
            "Anthropic reads the key from `x-api-key`",
        )),
        "AWSBedrock" | "AWSAnthropic" => Some((
            &["AWSCredentials"],
            "AWS only accepts requests signed with SigV4",
        )),
        "GCPVertexAI" | "GCPAnthropic" => Some((
            &["GCPCredentials"],
            "Vertex AI only accepts Google access tokens",
        )),
        // AzureOpenAI: `azure_auth` in ai.rs.
        _ => None,
    }
}

/// Schemas whose backends always need a credential.
fn needs_credential(schema: &str) -> bool {
    matches!(
        schema,
        "Anthropic" | "AWSBedrock" | "AWSAnthropic" | "GCPVertexAI" | "GCPAnthropic"
    )
}

/// Which client API a schema serves in v0.4.0: chat completions (`/v1/chat/completions`),
/// Anthropic's Messages API (`/anthropic/v1/messages`), or both.
fn client_api(schema: &str) -> Option<&'static str> {
    match schema {
        "OpenAI" | "AzureOpenAI" | "AWSBedrock" | "GCPVertexAI" => Some("OpenAI chat completions"),
        "Anthropic" => Some("Anthropic messages"),
        _ => None,
    }
}

/// A Service's cluster DNS name (`<svc>.<ns>.svc`, `….svc.cluster.local`).
pub(super) fn is_cluster_internal(host: &str) -> bool {
    host.ends_with(".svc") || host.contains(".svc.") || host.ends_with(".cluster.local")
}

impl<'a> Ctx<'a> {
    fn backend_of(&self, sb: &Obj) -> Option<&'a Obj> {
        let r = sb.value.pointer("/spec/backendRef")?;
        if s(r, "/kind") != Some("Backend") {
            return None;
        }
        let bns = s(r, "/namespace").unwrap_or(ns(sb));
        self.find(EG, "Backend", bns, s(r, "/name").unwrap_or_default())
    }

    pub(super) fn provider_policies(&mut self) {
        for sb in self.all(AIGW, "AIServiceBackend") {
            let schema = s(&sb.value, "/spec/schema/name").unwrap_or_default();
            let targeting = self
                .bsp_targeting
                .get(&(ns(sb), sb.name()))
                .cloned()
                .unwrap_or_default();
            match targeting.first() {
                None if needs_credential(schema) => self.error(
                    "provider_auth_missing",
                    sb,
                    "metadata.name",
                    format!(
                        "AIServiceBackend {}/{} uses schema {schema} but no BackendSecurityPolicy targets it; the provider refuses every request",
                        ns(sb),
                        sb.name()
                    ),
                    &format!(
                        "add a BackendSecurityPolicy of type {} targeting this AIServiceBackend",
                        expected_policy(schema).map_or("<the provider's>", |(t, _)| t[0])
                    ),
                ),
                None => {}
                Some(p) => {
                    let ty = s(&p.value, "/spec/type").unwrap_or_default();
                    let Some((want, why)) = expected_policy(schema) else {
                        continue;
                    };
                    if !want.contains(&ty) {
                        self.error(
                            "provider_auth_type",
                            p,
                            "spec.type",
                            format!(
                                "BackendSecurityPolicy {}/{} uses `type: {ty}` for {schema} backend {}; {why}, so every request is refused",
                                ns(p),
                                p.name(),
                                sb.name()
                            ),
                            &format!("use `type: {}`", want[0]),
                        );
                    }
                    if schema.starts_with("AWS") && ty == "AWSCredentials" {
                        self.bedrock_endpoint(sb, p);
                    }
                }
            }
        }
    }

    /// v0.4.0 signs for `https://bedrock-runtime.<region>.amazonaws.com<path>`: the Backend must
    /// connect exactly there, or AWS answers 403 (signature or region mismatch).
    fn bedrock_endpoint(&mut self, sb: &Obj, policy: &Obj) {
        let Some(region) = s(&policy.value, "/spec/awsCredentials/region") else {
            return; // Required by the CRD; the schema check reports it.
        };
        let Some(be) = self.backend_of(sb) else {
            return;
        };
        let want = format!("bedrock-runtime.{region}.amazonaws.com");
        for (i, e) in arr(&be.value, "/spec/endpoints").iter().enumerate() {
            let Some(host) = s(e, "/fqdn/hostname") else {
                continue;
            };
            if host == want || unknown(host) || unknown(region) {
                continue;
            }
            self.error(
                "bedrock_endpoint",
                be,
                &format!("spec.endpoints[{i}].fqdn.hostname"),
                format!(
                    "Backend {}/{} of Bedrock backend {} connects to `{host}`, but BackendSecurityPolicy {} signs requests for region `{region}` ({want}); AWS refuses the signature",
                    ns(be),
                    be.name(),
                    sb.name(),
                    policy.name()
                ),
                &format!("set the endpoint to `{want}`, or the policy's `awsCredentials.region` to the endpoint's region"),
            );
        }
    }

    /// TLS only where it can work: a public-CA check of a cluster-internal name always fails, and
    /// an external host without TLS carries credentials and prompts in cleartext.
    pub(super) fn provider_transport(&mut self) {
        for sb in self.all(AIGW, "AIServiceBackend") {
            let Some(be) = self.backend_of(sb) else {
                continue;
            };
            let policy = self.tls_policy.get(&(ns(be), be.name())).copied();
            for (i, e) in arr(&be.value, "/spec/endpoints").iter().enumerate() {
                let Some(host) = s(e, "/fqdn/hostname") else {
                    continue;
                };
                let port = e.pointer("/fqdn/port").and_then(serde_json::Value::as_i64);
                if unknown(host) {
                    continue;
                }
                match policy {
                    Some(p)
                        if is_cluster_internal(host)
                            && s(&p.value, "/spec/validation/wellKnownCACertificates")
                                == Some("System") =>
                    {
                        self.error(
                            "tls_system_ca_in_cluster",
                            p,
                            "spec.validation",
                            format!(
                                "BackendTLSPolicy {}/{} checks in-cluster Service `{host}` against the system (public) CAs, which never sign a cluster-internal name; every connection fails",
                                ns(p),
                                p.name()
                            ),
                            "an in-cluster model server spoken to in plain HTTP needs no BackendTLSPolicy: remove it (or, for a Service serving TLS, validate with `caCertificateRefs` of its own CA)",
                        );
                    }
                    None if !is_cluster_internal(host) && port != Some(443) => {
                        self.error(
                            "backend_cleartext_external",
                            be,
                            &format!("spec.endpoints[{i}]"),
                            format!(
                                "Backend {}/{} of AIServiceBackend {} reaches external host `{host}` on port {} without a BackendTLSPolicy: credentials and prompts cross the network in cleartext",
                                ns(be),
                                be.name(),
                                sb.name(),
                                port.map_or("?".to_owned(), |p| p.to_string())
                            ),
                            &format!("use port 443 with a BackendTLSPolicy (validation.hostname: {host}, wellKnownCACertificates: System); plain HTTP is for in-cluster Services (`<svc>.<ns>.svc.cluster.local`)"),
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    /// One rule's backends serve one client API: v0.4.0 translates OpenAI chat completions for
    /// OpenAI, Azure, Bedrock and Vertex backends and Anthropic messages for Anthropic ones, not
    /// one into the other, so a failover between them fails every request of one kind.
    pub(super) fn route_mixed_api(&mut self) {
        for route in self.all(AIGW, "AIGatewayRoute") {
            for (r, rule) in arr(&route.value, "/spec/rules").iter().enumerate() {
                let mut first: Option<(&str, &str)> = None;
                for (b, br) in arr(rule, "/backendRefs").iter().enumerate() {
                    if br.get("kind").is_some() {
                        continue;
                    }
                    let name = s(br, "/name").unwrap_or_default();
                    let bns = s(br, "/namespace").unwrap_or(ns(route));
                    let Some(sb) = self.find(AIGW, "AIServiceBackend", bns, name) else {
                        continue;
                    };
                    let Some(api) =
                        client_api(s(&sb.value, "/spec/schema/name").unwrap_or_default())
                    else {
                        continue;
                    };
                    match first {
                        None => first = Some((name, api)),
                        Some((other, other_api)) if other_api != api => {
                            self.error(
                                "route_mixed_api",
                                route,
                                &format!("spec.rules[{r}].backendRefs[{b}]"),
                                format!(
                                    "AIGatewayRoute {}/{} rule {r} fails over between {other} ({other_api}) and {name} ({api}); AI Gateway v0.4.0 translates neither API into the other, so the requests of one kind always fail",
                                    ns(route),
                                    route.name()
                                ),
                                "serve Anthropic models under their own model names on Anthropic backends, and fail over only between backends of the same client API",
                            );
                            break;
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
}
