//! The charts whose upstream publishes a `values.schema.json`, pinned like the CRDs: repository,
//! commit, path and git blob id of the schema and of the chart's `values.yaml` (the defaults
//! Helm merges under a release's values before it validates). `cargo xtask schemas fetch`
//! downloads them with the CRDs; verify checks a file against its pin before using it.
//!
//! Researched at the versions the templates pin (see docs/verify.md, "Helm values"): charts
//! not listed here publish no schema at that version, or one that cannot be used offline.

use crate::pins::{PinnedFile, pin};

/// A chart version with a published values schema.
#[derive(Clone, Copy, Debug)]
pub struct ChartPin {
    /// The chart's name: the last path segment of its OCI repository URL.
    pub chart: &'static str,
    /// The chart version (the OCIRepository's `ref.tag`).
    pub version: &'static str,
    pub schema: PinnedFile,
    pub values: PinnedFile,
}

/// Charts the templates install that publish no usable schema at the pinned version, and why
/// (listed by verify's summary and docs/verify.md, so nobody assumes they were checked).
pub const WITHOUT_SCHEMA: &[(&str, &str)] = &[
    (
        "gateway-helm",
        "Envoy Gateway publishes no values.schema.json",
    ),
    (
        "ai-gateway-helm",
        "Envoy AI Gateway publishes no values.schema.json",
    ),
    (
        "ai-gateway-crds-helm",
        "Envoy AI Gateway publishes no values.schema.json",
    ),
    (
        "coredns",
        "the coredns chart publishes no values.schema.json",
    ),
    ("spegel", "the spegel chart publishes no values.schema.json"),
    (
        "k8s-gateway",
        "the k8s-gateway chart publishes no values.schema.json",
    ),
    (
        "metrics-server",
        "the metrics-server chart publishes no values.schema.json",
    ),
    (
        "proxmox-csi-plugin",
        "the chart publishes no values.schema.json",
    ),
    (
        "proxmox-cloud-controller-manager",
        "the chart publishes no values.schema.json",
    ),
    (
        "app-template",
        "its schema is a remote $ref to the bjw-s common library's schema files, not checked offline",
    ),
];

macro_rules! chart {
    ($chart:expr, $version:expr, $folder:expr, $repo:expr, $tag:expr, $commit:expr, $dir:expr, $schema_blob:expr, $values_blob:expr) => {
        ChartPin {
            chart: $chart,
            version: $version,
            schema: pin!(
                $folder,
                "values.schema.json",
                $repo,
                $tag,
                $commit,
                concat!($dir, "/values.schema.json"),
                $schema_blob
            ),
            values: pin!(
                $folder,
                "values.yaml",
                $repo,
                $tag,
                $commit,
                concat!($dir, "/values.yaml"),
                $values_blob
            ),
        }
    };
}

/// Every pinned chart schema (with its defaults).
pub const CHART_PINS: &[ChartPin] = &[
    // renovate: datasource=docker depName=quay.io/cilium/charts/cilium (update commit and blobs too)
    chart!(
        "cilium",
        "1.19.3",
        "charts/cilium-1.19.3",
        "cilium/cilium",
        "v1.19.3",
        "f5eb641b18502ebeca412b40c1bec7ff3d8bf9eb",
        "install/kubernetes/cilium",
        "65c84af513774b8f61dcf60cf932cb471696b059",
        "cf69a2e31474974f55624a556a3530afd753cbaf"
    ),
    // renovate: datasource=docker depName=quay.io/jetstack/charts/cert-manager (update commit and blobs too)
    chart!(
        "cert-manager",
        "v1.20.2",
        "charts/cert-manager-v1.20.2",
        "cert-manager/cert-manager",
        "v1.20.2",
        "e5b7b18450dd2c4b993b95bcd680b1a057205b00",
        "deploy/charts/cert-manager",
        "24e8b39d842fdaa8c7550e7b63e91a4360795aed",
        "4bd3ebf5f39c058208c6502a6395e29fec41c29e"
    ),
    // renovate: datasource=docker depName=ghcr.io/home-operations/charts-mirror/external-dns (update commit and blobs too)
    chart!(
        "external-dns",
        "1.20.0",
        "charts/external-dns-1.20.0",
        "kubernetes-sigs/external-dns",
        "external-dns-helm-chart-1.20.0",
        "e951aab3d50cc348bdf1c2bd89baf951d49c573b",
        "charts/external-dns",
        "b4c5e3a42f510db9b4f80eebc852a9eadfd0777d",
        "46fbe8f7c7d6fd4b499826c7942b14f03eaf0593"
    ),
    // renovate: datasource=docker depName=ghcr.io/stakater/charts/reloader (update commit and blobs too)
    chart!(
        "reloader",
        "2.2.11",
        "charts/reloader-2.2.11",
        "stakater/Reloader",
        "chart-v2.2.11",
        "9a2e39fe67eaff14cdb4458c08b2db3b149e1265",
        "deployments/kubernetes/chart/reloader",
        "56eb678af9d0521e6800f1ed61f6926cd25aa9ba",
        "03429366a3cf8afb440b3e84383976b297182874"
    ),
    // The flux charts live in controlplaneio-fluxcd/charts, untagged: the commit that
    // published 0.48.0.
    // renovate: datasource=docker depName=ghcr.io/controlplaneio-fluxcd/charts/flux-operator (update commit and blobs too)
    chart!(
        "flux-operator",
        "0.48.0",
        "charts/flux-operator-0.48.0",
        "controlplaneio-fluxcd/charts",
        "0.48.0",
        "c653130c470f8570a0d2abc8c6393f7fe72ece80",
        "charts/flux-operator",
        "17f4f24058be043e666df826e086918c65bac7ed",
        "d10d6ea073c46e695398068a2ee30f3a10203ca6"
    ),
    chart!(
        "flux-instance",
        "0.48.0",
        "charts/flux-instance-0.48.0",
        "controlplaneio-fluxcd/charts",
        "0.48.0",
        "c653130c470f8570a0d2abc8c6393f7fe72ece80",
        "charts/flux-instance",
        "d6f6c3182a1ffbc7204a59121b2b75d22714873a",
        "84e16cb03db798f5bd7d4ac99389bc5f47aaedd5"
    ),
];

/// talhelper's JSON schema of `talconfig.yaml` (generated by `talhelper genschema`).
// renovate: datasource=github-releases depName=budimanjojo/talhelper (update commit and blob too)
pub const TALCONFIG_SCHEMA: PinnedFile = pin!(
    "talhelper-v3.1.9",
    "talconfig.json",
    "budimanjojo/talhelper",
    "v3.1.9",
    "2c0139120b9373dfd0ab119769d6805e82a0f536",
    "pkg/config/schemas/talconfig.json",
    "515bb6e8ee66b7ad2c24c2049fb58d675d976401"
);

/// Every file above, for `schemas fetch`.
pub fn pinned_files() -> impl Iterator<Item = &'static PinnedFile> {
    CHART_PINS
        .iter()
        .flat_map(|c| [&c.schema, &c.values])
        .chain(std::iter::once(&TALCONFIG_SCHEMA))
}
