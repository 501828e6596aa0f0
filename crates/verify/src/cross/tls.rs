//! TLS to upstreams: every Backend reached on 443 has a BackendTLSPolicy for its host (lesson 3).

use serde_json::Value;

use super::{Ctx, EG, arr, ns, s, unknown};
use crate::kustomize::Obj;

impl Ctx<'_> {
    /// Every TLS Backend (port 443) has a BackendTLSPolicy for the right hostname (lesson 3).
    pub(super) fn backend_tls(&mut self) {
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
    pub(super) fn require_tls_policy(
        &mut self,
        be: &Obj,
        hosts: &[(usize, String)],
        code: &str,
        why: &str,
    ) {
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
}
