//! [`check_specs`]: the verification checks and the objects the rendered tree promises.

use crate::checks::Expected;
use crate::gateway::GatewayView;
use crate::rendered::{FluxKustomization, Tree};

use super::CheckSpec;

fn expected_of(tree: &Tree, kind: &str) -> Vec<Expected> {
    let mut out: Vec<Expected> = tree
        .of_kind(kind)
        .map(|doc| {
            Expected::new(
                kind,
                &tree.effective_namespace(doc).unwrap_or_default(),
                doc.name(),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The plan's verification commands, with the objects the rendered tree promises.
pub fn check_specs(
    tree: &Tree,
    view: &GatewayView,
    kustomizations: &[FluxKustomization],
) -> Vec<CheckSpec> {
    let ns = view.namespace.clone();
    let ks_expected: Vec<Expected> = kustomizations
        .iter()
        .filter(|ks| ks.namespace == ns)
        .map(|ks| Expected::new("Kustomization", &ks.namespace, &ks.name))
        .collect();
    let ai = |check, kind: &'static str| CheckSpec {
        check,
        api_version: "aigateway.envoyproxy.io/v1alpha1",
        kind,
        namespace: ns.clone(),
        expected: expected_of(tree, kind),
    };
    let mut specs = vec![
        CheckSpec {
            check: "Kustomizations Ready",
            api_version: "kustomize.toolkit.fluxcd.io/v1",
            kind: "Kustomization",
            namespace: ns.clone(),
            expected: ks_expected,
        },
        ai("AI resources Accepted", "AIGatewayRoute"),
        ai("AI resources Accepted", "AIServiceBackend"),
        ai("AI resources Accepted", "BackendSecurityPolicy"),
    ];
    if !view.mcp.is_empty() {
        specs.push(ai("AI resources Accepted", "MCPRoute"));
    }
    specs.push(CheckSpec {
        check: "Gateway Programmed",
        api_version: "gateway.networking.k8s.io/v1",
        kind: "Gateway",
        namespace: ns.clone(),
        expected: expected_of(tree, "Gateway")
            .into_iter()
            .filter(|e| e.namespace == ns)
            .collect(),
    });
    specs.push(CheckSpec {
        check: "Pods Running",
        api_version: "v1",
        kind: "Pod",
        namespace: ns.clone(),
        expected: Vec::new(),
    });
    specs.push(CheckSpec {
        check: "BackendTLSPolicies present",
        api_version: "gateway.networking.k8s.io/v1",
        kind: "BackendTLSPolicy",
        namespace: ns.clone(),
        expected: expected_of(tree, "BackendTLSPolicy"),
    });
    // Envoy Gateway policies of the AI namespace (client keys, token budget, failover, buffer
    // size): each must have attached to its target. A policy on the HTTPRoute the controller
    // generates stays unattached if that route never appears.
    for kind in [
        "ClientTrafficPolicy",
        "BackendTrafficPolicy",
        "SecurityPolicy",
    ] {
        let expected: Vec<Expected> = expected_of(tree, kind)
            .into_iter()
            .filter(|e| e.namespace == ns)
            .collect();
        if !expected.is_empty() {
            specs.push(CheckSpec {
                check: "Policies Accepted",
                api_version: "gateway.envoyproxy.io/v1alpha1",
                kind,
                namespace: ns.clone(),
                expected,
            });
        }
    }
    specs
}
