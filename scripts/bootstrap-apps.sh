#!/usr/bin/env bash
# Installs what Flux needs before it can take over a fresh Talos cluster:
#   1. waits until every node has registered (they stay NotReady until Cilium runs);
#   2. creates the namespaces of kubernetes/apps/*;
#   3. applies the bootstrap secrets (sops-age key, deploy key, cluster-secrets, and the Proxmox
#      CCM config when enabled), decrypted with sops straight into kubectl, never onto disk;
#   4. applies the CRDs extracted from bootstrap/helmfile.d/00-crds.yaml;
#   5. `helmfile sync` of bootstrap/helmfile.d/01-apps.yaml: Cilium, CoreDNS, (Proxmox CCM),
#      (Spegel), cert-manager, flux-operator, flux-instance — same charts, versions and values
#      as the Flux HelmReleases, which adopt them afterwards.
# Safe to run again: unchanged objects are left alone.
set -Eeuo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT_DIR}"

log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$1" "${*:2}" >&2; }
die() { log error "$@"; exit 1; }

for var in KUBECONFIG; do
    [[ -n "${!var:-}" ]] || die "environment variable ${var} is not set"
done
for cli in helmfile kubectl sops yq; do
    command -v "${cli}" >/dev/null || die "${cli} is not installed"
done
[[ -f bootstrap/helmfile.d/01-apps.yaml ]] || die "no rendered tree here; run 'cargo xtask configure' first"

wait_for_nodes() {
    if kubectl wait nodes --for=condition=Ready=True --all --timeout=10s >/dev/null 2>&1; then
        log info "nodes are ready"
        return
    fi
    # Without a CNI the nodes report Ready=False; that is what we wait for.
    until kubectl wait nodes --for=condition=Ready=False --all --timeout=10s >/dev/null 2>&1; do
        log info "waiting for the nodes to register"
        sleep 10
    done
    log info "nodes registered"
}

apply_namespaces() {
    local dir ns
    for dir in kubernetes/apps/*/; do
        [[ -f "${dir}namespace.yaml" && -f "${dir}kustomization.yaml" ]] || continue
        # The namespace is the one the directory's kustomization sets, which is not always the
        # directory's name (kubernetes/apps/ai-gateway holds envoy-ai-gateway-system).
        ns="$(awk '/^namespace:/ { gsub(/["\047]/, "", $2); print $2; exit }' "${dir}kustomization.yaml")"
        [[ -n "${ns}" ]] || ns="$(basename "${dir}")"
        if kubectl get namespace "${ns}" >/dev/null 2>&1; then
            continue
        fi
        kubectl create namespace "${ns}" --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
        log info "namespace ${ns} created"
    done
}

# apply_secret FILE NAMESPACE: decrypt into kubectl; a missing file is skipped (feature off).
apply_secret() {
    local file="$1" ns="$2"
    if [[ ! -f "${file}" ]]; then
        return
    fi
    sops --decrypt "${file}" | kubectl apply --namespace "${ns}" --server-side --field-manager bootstrap -f - >/dev/null
    log info "applied ${file} in ${ns}"
}

apply_secrets() {
    apply_secret bootstrap/sops-age.sops.yaml flux-system
    apply_secret bootstrap/github-deploy-key.sops.yaml flux-system
    apply_secret kubernetes/components/sops/cluster-secrets.sops.yaml flux-system
    # The Proxmox CCM starts before Flux and needs its API token.
    apply_secret kubernetes/apps/kube-system/proxmox-ccm/app/secret.sops.yaml kube-system
}

apply_crds() {
    helmfile --file bootstrap/helmfile.d/00-crds.yaml template --quiet \
        | yq eval-all --exit-status 'select(.kind == "CustomResourceDefinition")' \
        | kubectl apply --server-side --force-conflicts -f - >/dev/null
    log info "CRDs applied"
}

sync_apps() {
    helmfile --file bootstrap/helmfile.d/01-apps.yaml sync --hide-notes
    log info "bootstrap apps installed; Flux takes over from here"
}

wait_for_nodes
apply_namespaces
apply_secrets
apply_crds
sync_apps
