//! How long `verify` takes: on the fixture tree, on generated trees of growing size (the time
//! must grow linearly with the number of objects), and how long loading the pinned schema set
//! takes.
//!
//! Run: `cargo bench -p verify` (or `cargo bench -p verify -- generated` for the scaling group
//! only). The schema directory comes from `CLUSTER_SHARED_DIR` (default `<workspace>/../shared`)
//! + `/schemas`.
//!
//! The generated trees are the fixture tree (`tests/fixtures/good`) with the shape
//! `cargo xtask bench` renders from N Azure OpenAI deployments × 5 models and N/5 MCP servers:
//! per deployment a Backend, a BackendTLSPolicy, an AIServiceBackend, a BackendSecurityPolicy
//! and a Secret; one AIGatewayRoute rule per model with a five-deployment failover chain; per
//! MCP server a Backend, a BackendTLSPolicy, an MCPRoute backendRef and a Secret. AIGatewayRoutes
//! hold 15 rules, as configure renders them (their generated HTTPRoutes must fit Gateway API's 16
//! rules), MCPRoutes 100 backendRefs (the CRD allows 256). The Secrets only look
//! encrypted, like the fixture's: verify never decrypts, it checks the sops structure.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use verify::{SchemaSet, VerifyConfig};

fn schemas_dir() -> PathBuf {
    let shared = std::env::var_os("CLUSTER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    shared.join("schemas")
}

/// The small tree to verify; point it at the rendered public example once render produces one.
const TREE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/good");

/// Deployment counts of the generated trees (as `cargo xtask bench --sizes`).
const SIZES: &[usize] = &[125, 250, 500, 1000];

/// Where the AI Gateway apps of the fixture tree live.
const AI: &str = "kubernetes/apps/envoy-ai-gateway-system";

const ENC: &str = "ENC[AES256_GCM,data:Zm9vYmFy,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]";

const SOPS: &str = "sops:
  age:
    - recipient: age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq
      enc: |
        -----BEGIN AGE ENCRYPTED FILE-----
        bm90IGEgcmVhbCBhZ2Ugc3RhbnphLCBqdXN0IGEgZml4dHVyZQ==
        -----END AGE ENCRYPTED FILE-----
  lastmodified: \"2026-01-01T00:00:00Z\"
  mac: ENC[AES256_GCM,data:bWFj,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]
  encrypted_regex: ^(data|stringData)$
  mac_only_encrypted: true
  version: 3.10.2
";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Appends YAML documents to a file of the tree.
fn append(root: &Path, file: &str, docs: &str) {
    let path = root.join(AI).join(file);
    let mut text = std::fs::read_to_string(&path).expect("fixture file");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(docs);
    std::fs::write(&path, text).expect("write");
}

fn secret(name: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\nstringData:\n  apiKey: {ENC}\n{SOPS}"
    )
}

/// The fixture tree grown to `deployments` Azure deployments × 5 models and `deployments / 5`
/// MCP servers, in `root`.
fn generate(root: &Path, deployments: usize) {
    copy_dir(Path::new(TREE), root);
    let (mut backends, mut secrets) = (String::new(), String::new());
    for i in 0..deployments {
        let d = format!("azure-d{i:04}");
        let host = format!("d{i:04}.openai.azure.com");
        let _ = write!(
            backends,
            "---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: {d}
spec:
  endpoints:
    - fqdn:
        hostname: {host}
        port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: {d}-tls
spec:
  targetRefs:
    - group: gateway.envoyproxy.io
      kind: Backend
      name: {d}
  validation:
    wellKnownCACertificates: System
    hostname: {host}
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: {d}
spec:
  schema:
    name: AzureOpenAI
    version: 2025-01-01-preview
  backendRef:
    group: gateway.envoyproxy.io
    kind: Backend
    name: {d}
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata:
  name: {d}-apikey
spec:
  targetRefs:
    - group: aigateway.envoyproxy.io
      kind: AIServiceBackend
      name: {d}
  type: AzureAPIKey
  azureAPIKey:
    secretRef:
      name: {d}-apikey
"
        );
        secrets.push_str(&secret(&format!("{d}-apikey")));
    }
    append(root, "ai-backends/app/azure-primary.yaml", &backends);
    append(root, "ai-backends/app/secret.sops.yaml", &secrets);

    // Deployment i serves models m<i % groups>-0..4, so each model has up to five deployments.
    let groups = deployments.div_ceil(5).max(1);
    let models: Vec<(String, Vec<usize>)> = (0..groups)
        .flat_map(|g| (0..5).map(move |j| (g, j)))
        .map(|(g, j)| {
            let serving = (0..deployments).filter(|i| i % groups == g).collect();
            (format!("m{g:04}-{j}"), serving)
        })
        .collect();
    let mut routes = String::new();
    for (r, chunk) in models.chunks(15).enumerate() {
        let _ = write!(
            routes,
            "---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: models-{r}
spec:
  parentRefs:
    - name: envoy-ai
      namespace: network
      kind: Gateway
      group: gateway.networking.k8s.io
  llmRequestCosts:
    - metadataKey: llm_total_token
      type: TotalToken
  rules:
"
        );
        for (model, serving) in chunk {
            let _ = write!(
                routes,
                "    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: {model}
      timeouts:
        request: 300s
      backendRefs:
"
            );
            for (priority, i) in serving.iter().enumerate() {
                let _ = writeln!(
                    routes,
                    "        - name: azure-d{i:04}\n          priority: {priority}"
                );
            }
        }
    }
    append(root, "ai-routes/app/aigatewayroute.yaml", &routes);

    let (mut mcp_backends, mut mcp_routes, mut mcp_secrets) =
        (String::new(), String::new(), String::new());
    let servers: Vec<usize> = (0..deployments / 5).collect();
    for i in &servers {
        let _ = write!(
            mcp_backends,
            "---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: mcp{i:03}
spec:
  endpoints:
    - fqdn:
        hostname: mcp{i:03}.example.com
        port: 443
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: mcp{i:03}-tls
spec:
  targetRefs:
    - group: gateway.envoyproxy.io
      kind: Backend
      name: mcp{i:03}
  validation:
    wellKnownCACertificates: System
    hostname: mcp{i:03}.example.com
"
        );
        mcp_secrets.push_str(&secret(&format!("mcp{i:03}-token")));
    }
    for (r, chunk) in servers.chunks(100).enumerate() {
        let _ = write!(
            mcp_routes,
            "---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: MCPRoute
metadata:
  name: mcp-{r}
spec:
  parentRefs:
    - name: envoy-ai
      namespace: network
      kind: Gateway
      group: gateway.networking.k8s.io
  path: /mcp-{r}
  backendRefs:
"
        );
        for i in chunk {
            let _ = write!(
                mcp_routes,
                "    - name: mcp{i:03}
      kind: Backend
      group: gateway.envoyproxy.io
      path: /mcp
      toolSelector:
        includeRegex:
          - .*
      securityPolicy:
        apiKey:
          secretRef:
            name: mcp{i:03}-token
"
            );
        }
    }
    append(root, "ai-mcp/app/github.yaml", &mcp_backends);
    append(root, "ai-mcp/app/mcproute.yaml", &mcp_routes);
    append(root, "ai-mcp/app/secret.sops.yaml", &mcp_secrets);
}

fn bench(c: &mut Criterion) {
    let dir = schemas_dir();
    let schemas = SchemaSet::load(&dir).expect("schema set (set CLUSTER_SHARED_DIR)");
    let config = VerifyConfig::cluster_template();
    let root = PathBuf::from(TREE);
    let first = verify::verify(&root, &schemas, &config);
    assert!(
        !first.has_errors(),
        "the benchmarked tree must verify clean"
    );
    c.bench_function("verify fixture tree (schemas loaded and compiled)", |b| {
        b.iter(|| verify::verify(&root, &schemas, &config))
    });
    c.bench_function("load schema set", |b| b.iter(|| SchemaSet::load(&dir)));
    c.bench_function("load schema set + verify fixture tree (cold)", |b| {
        b.iter(|| {
            let s = SchemaSet::load(&dir).expect("schemas");
            verify::verify(&root, &s, &config)
        })
    });

    // Scaling: time per object must stay flat as the tree grows.
    let scratch = tempfile::tempdir().expect("temp dir");
    let none = SchemaSet::empty();
    let mut group = c.benchmark_group("verify generated tree");
    group.sample_size(10);
    for &n in SIZES {
        let tree = scratch.path().join(format!("n{n}"));
        generate(&tree, n);
        let report = verify::verify(&tree, &schemas, &config);
        assert!(
            !report.has_errors(),
            "the generated tree ({n} deployments) must verify clean: {:#?}",
            report.diagnostics
        );
        group.throughput(Throughput::Elements(report.stats.objects as u64));
        group.bench_with_input(BenchmarkId::new("schemas", n), &tree, |b, tree| {
            b.iter(|| verify::verify(tree, &schemas, &config))
        });
        group.bench_with_input(BenchmarkId::new("no schemas", n), &tree, |b, tree| {
            b.iter(|| verify::verify(tree, &none, &config))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
