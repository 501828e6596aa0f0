//! Every rule fires: each test breaks one thing in a copy of the correct tree and expects the
//! rule's code (and only the codes that follow from it).

mod common;

use common::tree::{self, doc};
use serde_json::{Value, json};
use verify::Report;

const AI: &str = "kubernetes/apps/envoy-ai-gateway-system";
const BACKENDS: &str = "kubernetes/apps/envoy-ai-gateway-system/ai-backends/app/azure-primary.yaml";
const ROUTE: &str = "kubernetes/apps/envoy-ai-gateway-system/ai-routes/app/aigatewayroute.yaml";
const HTTPROUTE: &str = "kubernetes/apps/envoy-ai-gateway-system/ai-routes/app/httproute.yaml";
const MCP: &str = "kubernetes/apps/envoy-ai-gateway-system/ai-mcp/app/mcproute.yaml";
const GITHUB: &str = "kubernetes/apps/envoy-ai-gateway-system/ai-mcp/app/github.yaml";
const EG_HR: &str = "kubernetes/apps/network/envoy-gateway/app/helmrelease.yaml";
const ENVOY: &str = "kubernetes/apps/network/envoy-gateway/app/envoy.yaml";
const AIGW_HR: &str = "kubernetes/apps/envoy-ai-gateway-system/ai-gateway/app/helmrelease.yaml";

/// Asserts that `code` fires, and that every error has one of `codes` (the first is `code`).
fn expect(report: &Report, codes: &[&str]) {
    let found = report.with_code(codes[0]);
    assert!(
        !found.is_empty(),
        "expected {} to fire:\n{}",
        codes[0],
        tree::dump(report)
    );
    for d in report.diagnostics.iter().filter(|d| d.is_error()) {
        assert!(
            codes.contains(&d.code.as_str()),
            "unexpected {} besides {codes:?}:\n{}",
            d.code,
            tree::dump(report)
        );
    }
}

fn first<'a>(report: &'a Report, code: &str) -> &'a schema::Diagnostic {
    report.with_code(code)[0]
}

fn eg_config(docs: &mut [Value]) -> &mut Value {
    &mut doc(docs, "HelmRelease", "envoy-gateway")["spec"]["values"]["config"]["envoyGateway"]
}

// ---- loading -------------------------------------------------------------------------------

#[test]
fn sops_file_with_a_plaintext_value() {
    let t = tree::base();
    let path = format!("{AI}/ai-backends/app/secret.sops.yaml");
    t.mutate(&path, |d| {
        d[0]["stringData"]["apiKey"] = json!("sk-plaintext")
    });
    let r = t.verify();
    expect(&r, &["verify::sops_plaintext"]);
    assert_eq!(
        first(&r, "verify::sops_plaintext").path,
        "stringData.apiKey"
    );
}

#[test]
fn sops_file_that_was_never_encrypted() {
    let t = tree::base();
    let path = format!("{AI}/ai-backends/app/secret.sops.yaml");
    t.mutate(&path, |d| {
        d[0].as_object_mut().unwrap().remove("sops");
        d[0]["stringData"]["apiKey"] = json!("sk-plaintext");
    });
    let r = t.verify();
    expect(&r, &["verify::sops_plaintext"]);
}

#[test]
fn yaml_that_does_not_parse() {
    let t = tree::base();
    t.write(
        &format!("{AI}/redis/app/redis.yaml"),
        "apiVersion: v1\nkind: [Service\n",
    );
    let r = t.verify();
    assert!(
        !r.with_code("yaml::syntax").is_empty(),
        "{}",
        tree::dump(&r)
    );
}

// ---- kustomize graph -----------------------------------------------------------------------

#[test]
fn kustomization_lists_a_missing_resource() {
    let t = tree::base();
    t.remove(&format!("{AI}/redis/app/redis.yaml"));
    let r = t.verify();
    expect(
        &r,
        &["verify::kustomize_missing", "verify::ratelimit_redis"],
    );
    let d = first(&r, "verify::kustomize_missing");
    assert!(d.message.contains("redis.yaml"), "{d}");
    assert!(
        d.location
            .as_ref()
            .unwrap()
            .file
            .ends_with("redis/app/kustomization.yaml")
    );
}

#[test]
fn kustomization_lists_a_missing_component() {
    let t = tree::base();
    t.write(
        &format!("{AI}/kustomization.yaml"),
        &std::fs::read_to_string(t.path().join(AI).join("kustomization.yaml"))
            .unwrap()
            .replace("../../components/sops", "../../components/sopz"),
    );
    let r = t.verify();
    assert!(
        !r.with_code("verify::kustomize_missing").is_empty(),
        "{}",
        tree::dump(&r)
    );
}

#[test]
fn kustomization_with_an_unknown_field() {
    let t = tree::base();
    t.mutate(&format!("{AI}/redis/app/kustomization.yaml"), |d| {
        let res = d[0]["resources"].take();
        d[0]["resource"] = res;
    });
    let r = t.verify();
    assert!(
        !r.with_code("verify::kustomize_invalid").is_empty(),
        "{}",
        tree::dump(&r)
    );
    assert_eq!(first(&r, "verify::kustomize_invalid").path, "resource");
}

#[test]
fn kustomization_lists_a_file_twice() {
    let t = tree::base();
    t.mutate(&format!("{AI}/redis/app/kustomization.yaml"), |d| {
        d[0]["resources"] = json!(["./redis.yaml", "redis.yaml"]);
    });
    let r = t.verify();
    assert!(
        !r.with_code("verify::kustomize_duplicate").is_empty(),
        "{}",
        tree::dump(&r)
    );
}

#[test]
fn kustomizations_that_include_each_other() {
    let t = tree::base();
    t.mutate(&format!("{AI}/redis/app/kustomization.yaml"), |d| {
        d[0]["resources"]
            .as_array_mut()
            .unwrap()
            .push(json!("../../redis/app"));
    });
    let r = t.verify();
    assert!(
        !r.with_code("verify::kustomize_cycle").is_empty(),
        "{}",
        tree::dump(&r)
    );
}

#[test]
fn component_that_includes_itself() {
    let t = tree::base();
    t.mutate("kubernetes/components/sops/kustomization.yaml", |d| {
        d[0]["components"] = json!(["../sops"]);
    });
    let r = t.verify();
    assert!(
        !r.with_code("verify::kustomize_cycle").is_empty(),
        "{}",
        tree::dump(&r)
    );
}

#[test]
fn patch_without_target_that_matches_nothing() {
    let t = tree::base();
    t.mutate(&format!("{AI}/redis/app/kustomization.yaml"), |d| {
        d[0]["patches"] = json!([{"patch": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: valkey\nspec:\n  replicas: 2\n"}]);
    });
    let r = t.verify();
    expect(&r, &["verify::kustomize_patch"]);
}

#[test]
fn patches_are_applied_before_validation() {
    // A patch that breaks the schema is caught on the patched object, at the patched file.
    let t = tree::base();
    t.mutate(&format!("{AI}/redis/app/kustomization.yaml"), |d| {
        d[0]["patches"] = json!([{
            "target": {"kind": "Deployment", "name": "redis"},
            "patch": "- op: replace\n  path: /spec/replicas\n  value: many\n"
        }]);
    });
    let r = t.verify();
    expect(&r, &["verify::schema"]);
    let d = first(&r, "verify::schema");
    assert_eq!(d.path, "spec.replicas");
    assert!(
        d.location
            .as_ref()
            .unwrap()
            .file
            .ends_with("redis/app/redis.yaml")
    );
}

// ---- Flux graph ----------------------------------------------------------------------------

#[test]
fn flux_kustomization_path_does_not_exist() {
    let t = tree::base();
    t.mutate(&format!("{AI}/redis/ks.yaml"), |d| {
        d[0]["spec"]["path"] = json!("./kubernetes/apps/envoy-ai-gateway-system/redis/apps");
    });
    let r = t.verify();
    // Its objects are then applied by nobody: the files are not applied and Redis is missing.
    expect(
        &r,
        &[
            "verify::flux_path_missing",
            "verify::not_applied",
            "verify::ratelimit_redis",
        ],
    );
    assert_eq!(first(&r, "verify::flux_path_missing").path, "spec.path");
}

#[test]
fn depends_on_in_the_wrong_namespace() {
    // The plan's §11: `dependsOn: envoy-gateway` from another namespace.
    let t = tree::base();
    t.mutate(&format!("{AI}/ai-gateway/ks.yaml"), |d| {
        d[0]["spec"]["dependsOn"][1] = json!({"name": "envoy-gateway"});
    });
    let r = t.verify();
    expect(&r, &["verify::depends_on_missing"]);
    let d = first(&r, "verify::depends_on_missing");
    assert_eq!(d.path, "spec.dependsOn[1]");
    assert!(d.help.as_deref().unwrap().contains("`network`"), "{d:?}");
}

#[test]
fn depends_on_cycle() {
    let t = tree::base();
    t.mutate(&format!("{AI}/ai-gateway-crds/ks.yaml"), |d| {
        d[0]["spec"]["dependsOn"] = json!([{"name": "ai-gateway"}]);
    });
    let r = t.verify();
    expect(&r, &["verify::depends_on_cycle"]);
    assert!(
        first(&r, "verify::depends_on_cycle")
            .message
            .contains("ai-gateway-crds")
    );
}

#[test]
fn second_kustomization_double_applies_a_directory() {
    // The plan's §11: an extra Kustomization over a directory cluster-apps already applies.
    let t = tree::base();
    t.write(
        "kubernetes/flux/cluster/ai-gateway.yaml",
        "---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: ai-gateway\n  namespace: flux-system\nspec:\n  interval: 1h\n  path: ./kubernetes/apps/envoy-ai-gateway-system\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n",
    );
    let r = t.verify();
    // The second owner prunes the controller together with everything else when it goes, and
    // it is not orphaned like the cluster-apps child is: issue 13's removal-order rule says so.
    expect(&r, &["verify::double_apply", "verify::aigw_removal_order"]);
    assert!(
        first(&r, "verify::double_apply")
            .message
            .contains("flux-system/ai-gateway")
    );
}

#[test]
fn object_file_that_nothing_applies() {
    let t = tree::base();
    t.write(
        &format!("{AI}/redis/app/pdb.yaml"),
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: redis\nspec:\n  maxUnavailable: 1\n",
    );
    let r = t.verify();
    expect(&r, &["verify::not_applied"]);
}

#[test]
fn kustomization_from_another_source_is_not_followed() {
    let t = tree::base();
    t.mutate(&format!("{AI}/redis/ks.yaml"), |d| {
        d[0]["spec"]["sourceRef"] = json!({"kind": "OCIRepository", "name": "redis-manifests"});
    });
    let r = t.verify();
    // Nothing in this repository builds redis/app any more.
    expect(&r, &["verify::not_applied", "verify::ratelimit_redis"]);
    assert_eq!(r.with_code("verify::flux_source_external").len(), 1);
}

#[test]
fn helmrelease_chart_source_is_missing() {
    let t = tree::base();
    t.mutate(AIGW_HR, |d| {
        d[0]["spec"]["chartRef"]["name"] = json!("ai-gateway-helm")
    });
    let r = t.verify();
    // Without its chart source the controller chart is not recognised either.
    expect(
        &r,
        &[
            "verify::chart_ref_missing",
            "verify::aigw_controller_missing",
        ],
    );
}

#[test]
fn namespaced_object_without_namespace() {
    let t = tree::base();
    t.mutate(&format!("{AI}/redis/ks.yaml"), |d| {
        d[0]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("targetNamespace");
    });
    let r = t.verify();
    expect(
        &r,
        &["verify::namespace_missing", "verify::ratelimit_redis"],
    );
}

// ---- schemas and CEL -----------------------------------------------------------------------

#[test]
fn lesson_1_backend_ref_with_group_and_kind() {
    let t = tree::base();
    t.mutate(ROUTE, |d| {
        d[0]["spec"]["rules"][0]["backendRefs"][0] =
            json!({"name": "azure-primary", "kind": "AIServiceBackend", "group": "aigateway.envoyproxy.io"});
    });
    let r = t.verify();
    expect(&r, &["verify::cel_rule"]);
    let d = first(&r, "verify::cel_rule");
    assert_eq!(
        d.to_string()
            .split_once(": ")
            .map(|x| x.1)
            .unwrap_or_default(),
        format!(
            "{}:{}:{}: spec.rules[0].backendRefs[0]: Invalid value: \"object\": only InferencePool from inference.networking.k8s.io group is supported",
            d.location.as_ref().unwrap().file.display(),
            d.location.as_ref().unwrap().line,
            d.location.as_ref().unwrap().col
        )
    );
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("omit `group` and `kind`")
    );
}

#[test]
fn unknown_field_is_an_error() {
    let t = tree::base();
    t.mutate(ROUTE, |d| {
        d[0]["spec"]["rules"][0]["backendRefs"][0]["bodyMutation"] = json!({"set": []});
    });
    let r = t.verify();
    expect(&r, &["verify::schema"]);
    assert_eq!(
        first(&r, "verify::schema").message,
        "unknown field \"spec.rules[0].backendRefs[0].bodyMutation\""
    );
}

#[test]
fn enum_violation_blocks_cel_like_the_api_server() {
    let t = tree::base();
    t.mutate(BACKENDS, |d| {
        doc(d, "BackendSecurityPolicy", "azure-primary-apikey")["spec"]["type"] = json!("AzureKey")
    });
    let r = t.verify();
    expect(&r, &["verify::schema", "verify::azure_auth"]);
    assert!(
        first(&r, "verify::schema")
            .message
            .starts_with("Unsupported value: \"AzureKey\"")
    );
    assert!(!r.with_code("verify::cel_unevaluated").is_empty());
}

#[test]
fn api_version_that_is_not_served() {
    let t = tree::base();
    t.mutate(GITHUB, |d| {
        doc(d, "BackendTLSPolicy", "github-tls")["apiVersion"] =
            json!("gateway.networking.k8s.io/v1alpha2")
    });
    let r = t.verify();
    expect(&r, &["verify::schema"]);
    assert_eq!(first(&r, "verify::schema").path, "apiVersion");
}

#[test]
fn built_in_kinds_are_checked_against_the_kubernetes_openapi() {
    let t = tree::base();
    t.mutate(&format!("{AI}/redis/app/redis.yaml"), |d| {
        doc(d, "Deployment", "redis")["spec"]["replicas"] = json!("one");
        doc(d, "Service", "redis")["spec"]["ports"][0]["portt"] = json!(1);
    });
    let r = t.verify();
    expect(&r, &["verify::schema"]);
    let paths: Vec<&str> = r
        .with_code("verify::schema")
        .iter()
        .map(|d| d.path.as_str())
        .collect();
    assert!(paths.contains(&"spec.replicas"), "{paths:?}");
    assert!(paths.contains(&"spec.ports[0].portt"), "{paths:?}");
}

#[test]
fn kinds_without_schema_are_listed_once() {
    let t = tree::base();
    t.write(
        &format!("{AI}/redis/app/pool.yaml"),
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata:\n  name: pool\nspec: {}\n",
    );
    t.mutate(&format!("{AI}/redis/app/kustomization.yaml"), |d| {
        d[0]["resources"]
            .as_array_mut()
            .unwrap()
            .push(json!("./pool.yaml"));
    });
    let r = t.verify();
    assert_eq!(r.errors(), 0, "{}", tree::dump(&r));
    let w = r.with_code("verify::schema_missing");
    assert_eq!(w.len(), 1);
    assert!(
        w[0].message
            .contains("cilium.io/v2alpha1 CiliumLoadBalancerIPPool")
    );
}

// ---- cross-resource rules ------------------------------------------------------------------

#[test]
fn route_backend_ref_to_a_missing_ai_service_backend() {
    let t = tree::base();
    t.mutate(ROUTE, |d| {
        d[0]["spec"]["rules"][0]["backendRefs"][0]["name"] = json!("azure-primry")
    });
    let r = t.verify();
    expect(&r, &["verify::aigw_backend_missing"]);
    assert_eq!(
        first(&r, "verify::aigw_backend_missing").path,
        "spec.rules[0].backendRefs[0]"
    );
}

#[test]
fn ai_service_backend_to_a_missing_backend() {
    let t = tree::base();
    t.mutate(BACKENDS, |d| {
        doc(d, "AIServiceBackend", "azure-primary")["spec"]["backendRef"]["name"] = json!("azure")
    });
    let r = t.verify();
    expect(&r, &["verify::aisb_backend_missing"]);
}

#[test]
fn lesson_3_tls_backend_without_backend_tls_policy() {
    let t = tree::base();
    t.mutate(BACKENDS, |d| d.retain(|o| o["kind"] != "BackendTLSPolicy"));
    let r = t.verify();
    expect(&r, &["verify::backend_tls_missing"]);
    assert!(
        first(&r, "verify::backend_tls_missing")
            .help
            .as_deref()
            .unwrap()
            .contains("hostname: test-resource.openai.azure.com")
    );
}

#[test]
fn backend_tls_policy_for_another_hostname() {
    let t = tree::base();
    t.mutate_object("BackendTLSPolicy", "azure-primary-tls", |p| {
        p["spec"]["validation"]["hostname"] = json!("test-resource.cognitiveservices.azure.com");
    });
    let r = t.verify();
    expect(&r, &["verify::backend_tls_hostname"]);
}

#[test]
fn lesson_2_azure_with_an_api_key_policy() {
    let t = tree::base();
    t.mutate(BACKENDS, |d| {
        let bsp = doc(d, "BackendSecurityPolicy", "azure-primary-apikey");
        bsp["spec"]["type"] = json!("APIKey");
        let r = bsp["spec"]
            .as_object_mut()
            .unwrap()
            .remove("azureAPIKey")
            .unwrap();
        bsp["spec"]["apiKey"] = r;
    });
    let r = t.verify();
    expect(&r, &["verify::azure_auth"]);
    let d = first(&r, "verify::azure_auth");
    assert_eq!(d.path, "spec.type");
    assert!(d.message.contains("api-key"));
}

#[test]
fn azure_backend_without_any_policy() {
    let t = tree::base();
    t.mutate(BACKENDS, |d| {
        d.retain(|o| o["kind"] != "BackendSecurityPolicy")
    });
    let r = t.verify();
    expect(&r, &["verify::azure_auth"]);
}

#[test]
fn policy_targets_a_missing_backend() {
    let t = tree::base();
    t.mutate(BACKENDS, |d| {
        doc(d, "BackendSecurityPolicy", "azure-primary-apikey")["spec"]["targetRefs"][0]["name"] =
            json!("azure");
    });
    let r = t.verify();
    expect(&r, &["verify::bsp_target_missing", "verify::azure_auth"]);
}

#[test]
fn two_policies_on_one_backend() {
    let t = tree::base();
    t.mutate(BACKENDS, |d| {
        let mut second = doc(d, "BackendSecurityPolicy", "azure-primary-apikey").clone();
        second["metadata"]["name"] = json!("azure-primary-apikey-2");
        d.push(second);
    });
    let r = t.verify();
    expect(&r, &["verify::bsp_multiple"]);
}

#[test]
fn policy_secret_is_missing() {
    let t = tree::base();
    t.mutate(BACKENDS, |d| {
        doc(d, "BackendSecurityPolicy", "azure-primary-apikey")["spec"]["azureAPIKey"]["secretRef"]
            ["name"] = json!("azure-key");
    });
    let r = t.verify();
    expect(&r, &["verify::secret_missing"]);
}

#[test]
fn policy_secret_lacks_the_api_key_key() {
    let t = tree::base();
    let path = format!("{AI}/ai-backends/app/secret.sops.yaml");
    t.mutate(&path, |d| {
        let v = d[0]["stringData"]
            .as_object_mut()
            .unwrap()
            .remove("apiKey")
            .unwrap();
        d[0]["stringData"]["api-key"] = v;
    });
    let r = t.verify();
    expect(&r, &["verify::secret_key_missing"]);
}

#[test]
fn policy_secret_namespace_is_ignored() {
    let t = tree::base();
    t.mutate(BACKENDS, |d| {
        doc(d, "BackendSecurityPolicy", "azure-primary-apikey")["spec"]["azureAPIKey"]["secretRef"]
            ["namespace"] = json!("default");
    });
    let r = t.verify();
    assert_eq!(r.errors(), 0, "{}", tree::dump(&r));
    assert_eq!(r.with_code("verify::secret_namespace_ignored").len(), 1);
}

#[test]
fn mcp_api_key_secret_is_missing() {
    let t = tree::base();
    t.mutate(MCP, |d| {
        d[0]["spec"]["backendRefs"][0]["securityPolicy"]["apiKey"]["secretRef"]["name"] =
            json!("github-token");
    });
    let r = t.verify();
    expect(&r, &["verify::secret_missing"]);
}

#[test]
fn mcp_backend_is_missing() {
    let t = tree::base();
    t.mutate(MCP, |d| {
        d[0]["spec"]["backendRefs"][0]["name"] = json!("gh")
    });
    let r = t.verify();
    expect(&r, &["verify::mcp_backend_missing"]);
}

#[test]
fn external_mcp_backend_without_tls_policy() {
    let t = tree::base();
    t.mutate(GITHUB, |d| {
        d.retain(|o| o["kind"] != "BackendTLSPolicy");
        doc(d, "Backend", "github")["spec"]["endpoints"][0]["fqdn"]["port"] = json!(8443);
    });
    let r = t.verify();
    expect(&r, &["verify::mcp_backend_tls"]);
}

#[test]
fn route_attaches_to_a_gateway_in_another_namespace_without_saying_so() {
    let t = tree::base();
    t.mutate(ROUTE, |d| {
        d[0]["spec"]["parentRefs"][0]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
    });
    let r = t.verify();
    // Detached from the AI gateway, the route no longer feeds its token rate limit either.
    expect(
        &r,
        &["verify::parent_ref_missing", "verify::ratelimit_cost_key"],
    );
    assert!(
        first(&r, "verify::parent_ref_missing")
            .help
            .as_deref()
            .unwrap()
            .contains("`network`")
    );
}

#[test]
fn lesson_4_rate_limit_key_nobody_computes() {
    let t = tree::base();
    t.mutate(ROUTE, |d| {
        d[0]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("llmRequestCosts");
    });
    let r = t.verify();
    expect(&r, &["verify::ratelimit_cost_key"]);
    assert!(
        first(&r, "verify::ratelimit_cost_key")
            .message
            .contains("llm_total_token")
    );
}

#[test]
fn lesson_4_rate_limit_without_redis() {
    let t = tree::base();
    t.mutate(EG_HR, |d| {
        eg_config(d).as_object_mut().unwrap().remove("rateLimit");
    });
    let r = t.verify();
    expect(&r, &["verify::ratelimit_redis"]);
}

#[test]
fn rate_limit_redis_url_with_the_wrong_port() {
    let t = tree::base();
    t.mutate(EG_HR, |d| {
        eg_config(d)["rateLimit"]["backend"]["redis"]["url"] =
            json!("redis.envoy-ai-gateway-system.svc.cluster.local:6380");
    });
    let r = t.verify();
    expect(&r, &["verify::ratelimit_redis"]);
}

#[test]
fn envoy_gateway_without_backend_api() {
    let t = tree::base();
    t.mutate(EG_HR, |d| {
        eg_config(d)["extensionApis"]["enableBackend"] = json!(false)
    });
    let r = t.verify();
    expect(&r, &["verify::eg_backend_api"]);
}

#[test]
fn envoy_gateway_without_extension_hooks() {
    let t = tree::base();
    t.mutate(EG_HR, |d| {
        eg_config(d)["extensionManager"]
            .as_object_mut()
            .unwrap()
            .remove("hooks");
    });
    let r = t.verify();
    expect(&r, &["verify::eg_extension_hooks"]);
}

#[test]
fn envoy_gateway_calls_the_wrong_extension_service() {
    let t = tree::base();
    t.mutate(EG_HR, |d| {
        eg_config(d)["extensionManager"]["service"]["fqdn"]["hostname"] =
            json!("ai-gateway-controller.ai-gateway.svc.cluster.local");
    });
    let r = t.verify();
    expect(&r, &["verify::eg_extension_service"]);
}

#[test]
fn ai_gateway_chart_points_at_the_wrong_envoy_gateway_namespace() {
    let t = tree::base();
    t.mutate(AIGW_HR, |d| {
        d[0]["spec"]["values"]
            .as_object_mut()
            .unwrap()
            .remove("envoyGateway");
    });
    let r = t.verify();
    expect(&r, &["verify::aigw_eg_namespace"]);
}

#[test]
fn ai_resources_without_envoy_gateway() {
    let t = tree::base();
    t.mutate(
        "kubernetes/apps/network/envoy-gateway/app/ocirepository.yaml",
        |d| {
            d[0]["spec"]["url"] = json!("oci://example.com/charts/something-else");
        },
    );
    let r = t.verify();
    expect(&r, &["verify::eg_missing", "verify::httproute_backend"]);
}

#[test]
fn ai_resources_without_the_controller() {
    let t = tree::base();
    t.mutate(&format!("{AI}/ai-gateway/app/ocirepository.yaml"), |d| {
        d[0]["spec"]["url"] = json!("oci://example.com/charts/something-else");
    });
    let r = t.verify();
    expect(&r, &["verify::aigw_controller_missing"]);
}

#[test]
fn lesson_5_httproute_to_a_made_up_envoy_service() {
    let t = tree::base();
    t.mutate(HTTPROUTE, |d| {
        d[0]["spec"]["rules"][0]["backendRefs"][0]["name"] = json!("envoy-ai-gateway");
    });
    let r = t.verify();
    expect(
        &r,
        &["verify::httproute_backend", "verify::reference_grant"],
    );
    let d = first(&r, "verify::httproute_backend");
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("Gateway network/envoy-ai → Service network/envoy-ai"),
        "{d:?}"
    );
}

#[test]
fn lesson_5_controller_namespace_mode_uses_hashed_names() {
    // Without GatewayNamespace mode the Envoy Service is not named after the Gateway.
    let t = tree::base();
    t.mutate(EG_HR, |d| {
        eg_config(d)["provider"]["kubernetes"]
            .as_object_mut()
            .unwrap()
            .remove("deploy");
    });
    let r = t.verify();
    expect(&r, &["verify::httproute_backend"]);
    let d = first(&r, "verify::httproute_backend");
    assert!(
        d.help
            .as_deref()
            .unwrap()
            .contains("Service network/envoy-network-envoy-ai-"),
        "{d:?}"
    );
}

#[test]
fn httproute_to_a_port_the_service_does_not_have() {
    let t = tree::base();
    t.mutate(HTTPROUTE, |d| {
        d[0]["spec"]["rules"][0]["backendRefs"][0]["port"] = json!(8080)
    });
    let r = t.verify();
    expect(&r, &["verify::httproute_backend"]);
    assert!(
        first(&r, "verify::httproute_backend")
            .path
            .ends_with(".port")
    );
}

#[test]
fn cross_namespace_reference_without_grant() {
    let t = tree::base();
    t.mutate(
        "kubernetes/apps/network/envoy-gateway/app/referencegrant.yaml",
        |d| {
            d[0]["spec"]["from"][0]["namespace"] = json!("default");
        },
    );
    let r = t.verify();
    expect(&r, &["verify::reference_grant"]);
}

#[test]
fn httproute_listener_that_does_not_exist() {
    let t = tree::base();
    t.mutate(ENVOY, |d| {
        doc(d, "Gateway", "envoy-external")["spec"]["listeners"][1]["name"] = json!("websecure")
    });
    let r = t.verify();
    expect(&r, &["verify::parent_ref_missing"]);
}

// ---- without schemas -----------------------------------------------------------------------

#[test]
fn without_schemas_graph_and_cross_rules_still_run() {
    let t = tree::base();
    t.mutate(BACKENDS, |d| d.retain(|o| o["kind"] != "BackendTLSPolicy"));
    let r = verify::verify(
        t.path(),
        &verify::SchemaSet::empty(),
        &verify::VerifyConfig::cluster_template(),
    );
    expect(&r, &["verify::backend_tls_missing"]);
    assert_eq!(r.with_code("verify::schemas_unavailable").len(), 1);
    assert!(!r.stats.schemas_available);
}

#[test]
fn mcp_session_seed_set_where_the_v0_4_0_chart_ignores_it() {
    let t = tree::base();
    t.mutate(AIGW_HR, |d| {
        let spec = d[0]["spec"].as_object_mut().unwrap();
        spec.remove("postRenderers");
        spec["values"]["controller"] = json!({"mcpSessionEncryptionSeed": "0123456789abcdef"});
    });
    let r = t.verify();
    expect(&r, &["verify::aigw_mcp_session_seed"]);
    assert!(
        first(&r, "verify::aigw_mcp_session_seed")
            .message
            .contains("(set here, but ignored)")
    );
}

#[test]
fn mcp_session_seed_through_the_value_of_a_later_chart() {
    let t = tree::base();
    t.mutate(AIGW_HR, |d| {
        let spec = d[0]["spec"].as_object_mut().unwrap();
        spec.remove("postRenderers");
        spec["values"]["controller"] =
            json!({"mcp": {"sessionEncryption": {"seed": "0123456789abcdef"}}});
    });
    t.mutate(&format!("{AI}/ai-gateway/app/ocirepository.yaml"), |d| {
        d[0]["spec"]["ref"]["tag"] = json!("v0.5.0");
    });
    let r = t.verify();
    assert!(
        r.with_code("verify::aigw_mcp_session_seed").is_empty(),
        "{}",
        tree::dump(&r)
    );
}
