//! Cluster networking: the MetalLB address pool and the CoreDNS `hosts` entries for the mocks.

use anyhow::Context;
use serde_json::{Value, json};

use super::process::{command_output, kubectl_apply, run_command, strings};
use super::state::State;

impl State {
    pub(super) async fn patch_coredns(&self) -> anyhow::Result<()> {
        let current = command_output(
            "kubectl",
            &[
                "-n",
                "kube-system",
                "get",
                "configmap",
                "coredns",
                "-o",
                "json",
            ],
        )
        .await?;
        let mut configmap: Value = serde_json::from_str(&current)?;
        let corefile = configmap["data"]["Corefile"]
            .as_str()
            .context("coredns ConfigMap has no Corefile")?
            .to_owned();
        let entries: Vec<String> = self
            .mocks
            .values()
            .map(|m| format!("{} {}", m.ip, m.spec.hostname()))
            .collect();
        let patched = add_hosts(&corefile, &entries).map_err(anyhow::Error::msg)?;
        configmap["data"]["Corefile"] = Value::String(patched);
        for key in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
        ] {
            if let Some(meta) = configmap["metadata"].as_object_mut() {
                meta.remove(key);
            }
        }
        kubectl_apply(&configmap).await?;
        run_command(
            "kubectl",
            &strings(&[
                "-n",
                "kube-system",
                "rollout",
                "restart",
                "deployment/coredns",
            ]),
            &[],
            None,
        )
        .await?;
        run_command(
            "kubectl",
            &strings(&[
                "-n",
                "kube-system",
                "rollout",
                "status",
                "deployment/coredns",
                "--timeout=120s",
            ]),
            &[],
            None,
        )
        .await
    }
}

pub(super) async fn metallb_pool() -> anyhow::Result<()> {
    let subnets = command_output(
        "docker",
        &[
            "network",
            "inspect",
            "kind",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
        ],
    )
    .await?;
    let range = metallb_range(&subnets).map_err(anyhow::Error::msg)?;
    kubectl_apply(&json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "e2e", "namespace": "metallb-system"},
        "spec": {"addresses": [range]}
    }))
    .await?;
    kubectl_apply(&json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "e2e", "namespace": "metallb-system"},
        "spec": {"ipAddressPools": ["e2e"]}
    }))
    .await
}

/// `.255.200-.255.250` of the first IPv4 /16 (or larger) subnet of the kind network
/// (upstream's harness carves `.200–.250` the same way).
pub fn metallb_range(subnets: &str) -> Result<String, String> {
    for subnet in subnets.split_whitespace() {
        let Some((addr, prefix)) = subnet.split_once('/') else {
            continue;
        };
        let Ok(addr) = addr.parse::<std::net::Ipv4Addr>() else {
            continue;
        };
        let prefix: u8 = prefix.parse().map_err(|_| format!("bad subnet {subnet}"))?;
        let [a, b, c, _] = addr.octets();
        return match prefix {
            0..=16 => Ok(format!("{a}.{b}.255.200-{a}.{b}.255.250")),
            17..=24 => Ok(format!("{a}.{b}.{c}.200-{a}.{b}.{c}.250")),
            _ => Err(format!(
                "kind network {subnet} is too small for a LoadBalancer pool"
            )),
        };
    }
    Err(format!(
        "no IPv4 subnet on the kind network (got `{subnets}`)"
    ))
}

/// Add a `hosts` block (with `fallthrough`) to the main server block of a Corefile.
pub fn add_hosts(corefile: &str, entries: &[String]) -> Result<String, String> {
    let marker = ".:53 {";
    let at = corefile
        .find(marker)
        .ok_or("Corefile has no `.:53 {` server block")?;
    let insert_at = at + marker.len();
    let mut block = String::from("\n    hosts {\n");
    for entry in entries {
        block.push_str(&format!("        {entry}\n"));
    }
    block.push_str("        fallthrough\n    }");
    Ok(format!(
        "{}{block}{}",
        &corefile[..insert_at],
        &corefile[insert_at..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_from_kind_network() {
        assert_eq!(
            metallb_range("172.18.0.0/16 fc00:f853:ccd:e793::/64").unwrap(),
            "172.18.255.200-172.18.255.250"
        );
        assert_eq!(
            metallb_range("fc00::/64 10.89.0.0/24").unwrap(),
            "10.89.0.200-10.89.0.250"
        );
        assert!(metallb_range("fc00::/64").is_err());
        assert!(metallb_range("10.0.0.0/28").is_err());
    }

    #[test]
    fn corefile_hosts_block() {
        // The shape of kind's default Corefile.
        let corefile = ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n    }\n    forward . /etc/resolv.conf\n}\n";
        let patched = add_hosts(
            corefile,
            &["172.18.0.5 e2e-primary.openai.azure.com".into()],
        )
        .unwrap();
        assert!(patched.starts_with(".:53 {\n    hosts {\n        172.18.0.5 e2e-primary.openai.azure.com\n        fallthrough\n    }\n    errors\n"), "{patched}");
        assert!(patched.ends_with("forward . /etc/resolv.conf\n}\n"));
        assert!(add_hosts("example.org {\n}\n", &[]).is_err());
    }
}
