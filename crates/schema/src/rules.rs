//! Rules that relate several keys: networks, addresses, nodes, BGP, Proxmox and the AI Gateway.
//!
//! They run on the defaulted model even when some keys failed their own checks; a rule whose
//! inputs are missing or invalid stays silent (the key's own error has already been reported).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::check::parse_ipv4;
use crate::diag::{Diagnostic, Location};
use crate::model::{Cluster, Node};
use crate::names;
use crate::net::Cidr;
use crate::yaml;

/// Remembers where each value was first seen, to report duplicates against it.
#[derive(Default)]
pub(crate) struct FirstSeen<'a>(HashMap<&'a str, usize>);

impl<'a> FirstSeen<'a> {
    /// The index `value` was first seen at, or `None` (recording `index`) when it is new.
    pub(crate) fn check(&mut self, value: &'a str, index: usize) -> Option<usize> {
        match self.0.get(value) {
            Some(first) => Some(*first),
            None => {
                self.0.insert(value, index);
                None
            }
        }
    }
}

/// The two source trees, to point diagnostics at the right line.
pub struct Sources<'a> {
    pub cluster_file: &'a Path,
    pub cluster: Option<&'a yaml::Node>,
    pub nodes_file: &'a Path,
    pub nodes: Option<&'a yaml::Node>,
    /// Paths whose own check failed; rules needing them stay silent.
    pub invalid: std::collections::HashSet<String>,
}

impl Sources<'_> {
    /// Location of the value at `path` (`nodes[0].address`, `ai_gateway_mcp_servers[1].name`);
    /// falls back to the nearest existing parent.
    pub fn locate(&self, path: &str) -> Option<Location> {
        let (root, file) =
            if path == "nodes" || path.starts_with("nodes[") || path.starts_with("nodes.") {
                (self.nodes?, self.nodes_file)
            } else {
                (self.cluster?, self.cluster_file)
            };
        let mut node = root;
        for seg in segments(path) {
            let next = match seg {
                Seg::Key(k) => node.get(k),
                Seg::Index(i) => node.as_seq().and_then(|s| s.get(i)),
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        Some(node.location(file))
    }

    pub(crate) fn has_key(&self, key: &str) -> bool {
        self.cluster
            .and_then(|c| c.get(key))
            .is_some_and(|n| !n.is_null())
    }
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            out.push(Seg::Key(&rest[..i]));
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                if let Ok(n) = rest[1..end].parse() {
                    out.push(Seg::Index(n));
                }
                rest = &rest[end + 1..];
            }
        } else {
            out.push(Seg::Key(rest));
        }
    }
    out
}

pub(crate) struct Ctx<'a> {
    pub(crate) src: &'a Sources<'a>,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub(crate) fn error(
        &mut self,
        code: &str,
        path: &str,
        message: String,
        help: impl Into<Option<String>>,
    ) -> &mut Diagnostic {
        self.push(
            Diagnostic::error(format!("schema::{code}"), path, message),
            path,
            help.into(),
        )
    }

    pub(crate) fn warning(
        &mut self,
        code: &str,
        path: &str,
        message: String,
        help: impl Into<Option<String>>,
    ) -> &mut Diagnostic {
        self.push(
            Diagnostic::warning(format!("schema::{code}"), path, message),
            path,
            help.into(),
        )
    }

    fn push(&mut self, mut d: Diagnostic, path: &str, help: Option<String>) -> &mut Diagnostic {
        d.location = self.src.locate(path);
        d.help = help;
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    pub(crate) fn note_at(&mut self, text: String, path: &str) {
        let loc = self.src.locate(path);
        if let Some(d) = self.diags.last_mut() {
            d.notes.push((text, loc));
        }
    }
}

pub fn check(cluster: &Cluster, nodes: &[Node], src: &Sources<'_>) -> Vec<Diagnostic> {
    let mut cx = Ctx {
        src,
        diags: Vec::new(),
    };
    networks(&mut cx, cluster);
    addresses(&mut cx, cluster, nodes);
    bgp(&mut cx, cluster);
    node_rules(&mut cx, nodes);
    proxmox(&mut cx, cluster);
    ai_gateway(&mut cx, cluster);
    cx.diags
}

fn cidr(s: &str) -> Option<Cidr> {
    Cidr::parse(s).ok().filter(|c| c.is_canonical())
}

fn ip(s: &str) -> Option<Ipv4Addr> {
    parse_ipv4(s).ok()
}

fn networks(cx: &mut Ctx<'_>, c: &Cluster) {
    let nets = [
        ("node_cidr", &c.node_cidr),
        ("cluster_pod_cidr", &c.cluster_pod_cidr),
        ("cluster_svc_cidr", &c.cluster_svc_cidr),
    ];
    for i in 0..nets.len() {
        for j in i + 1..nets.len() {
            let (Some(a), Some(b)) = (cidr(nets[i].1), cidr(nets[j].1)) else {
                continue;
            };
            if a.overlaps(b) {
                // Point at a key the user wrote: a defaulted pod/service network is not in the file.
                let (mut at, mut other, mut at_net, mut other_net) = (nets[j].0, nets[i].0, b, a);
                if !cx.src.has_key(at) {
                    (at, other, at_net, other_net) = (other, at, other_net, at_net);
                }
                let shown = |key: &str, net: Cidr, cx: &Ctx<'_>| {
                    if cx.src.has_key(key) {
                        format!("{key} ({net})")
                    } else {
                        format!("{key} (default {net})")
                    }
                };
                let message = format!("{at_net} overlaps {}", shown(other, other_net, cx));
                cx.error("cidr_overlap", at, message, "node, pod and service networks must be disjoint; choose another range for one of them".to_owned());
                if cx.src.has_key(other) {
                    cx.note_at(format!("{other} is set here"), other);
                }
            }
        }
    }
    if let Some(svc) = cidr(&c.cluster_svc_cidr)
        && svc.nth(10).is_none()
    {
        cx.error(
            "svc_cidr_too_small",
            "cluster_svc_cidr",
            format!("{svc} has fewer than 11 addresses; CoreDNS needs its 10th address"),
            "use at least a /28, e.g. the default 10.43.0.0/16".to_owned(),
        );
    }
}

/// The name the defaulted gateway goes by among the addresses checked for uniqueness.
const IMPLICIT_GATEWAY: &str = "node_default_gateway (default)";

fn addresses(cx: &mut Ctx<'_>, c: &Cluster, nodes: &[Node]) {
    let bgp = c.cilium_bgp_router_addr.is_some()
        && c.cilium_bgp_router_asn.is_some()
        && c.cilium_bgp_node_asn.is_some();
    // (path, address, must be inside node_cidr, is a load-balancer VIP)
    let mut all: Vec<(String, Ipv4Addr, bool, bool)> = Vec::new();
    let mut add = |path: &str, value: Option<&str>, inside: bool, vip: bool| {
        if let Some(addr) = value.and_then(ip) {
            all.push((path.to_owned(), addr, inside, vip));
        }
    };
    add("cluster_api_addr", Some(&c.cluster_api_addr), true, false);
    add(
        "cluster_gateway_addr",
        Some(&c.cluster_gateway_addr),
        !bgp,
        true,
    );
    add(
        "cluster_dns_gateway_addr",
        Some(&c.cluster_dns_gateway_addr),
        !bgp,
        true,
    );
    add(
        "cloudflare_gateway_addr",
        Some(&c.cloudflare_gateway_addr),
        !bgp,
        true,
    );
    add("ai_gateway_addr", c.ai_gateway_addr.as_deref(), !bgp, true);
    add(
        "node_default_gateway",
        c.node_default_gateway.as_deref(),
        true,
        false,
    );
    add(
        "cilium_bgp_router_addr",
        c.cilium_bgp_router_addr.as_deref(),
        false,
        false,
    );
    for (i, n) in nodes.iter().enumerate() {
        add(
            &format!("nodes[{i}].address"),
            Some(&n.address),
            true,
            false,
        );
    }

    let mut seen: HashMap<Ipv4Addr, String> = HashMap::new();
    // Unset, node_default_gateway is the first host of node_cidr: an address that collides with
    // it is as wrong as one that collides with an explicit gateway (the nodes would route
    // through a VIP or through themselves).
    if let Some(implicit) = c.implicit_gateway().as_deref().and_then(ip) {
        seen.insert(implicit, IMPLICIT_GATEWAY.to_owned());
    }
    for (path, addr, _, _) in &all {
        match seen.get(addr) {
            Some(first) if first == IMPLICIT_GATEWAY => {
                cx.error(
                    "duplicate_address",
                    path,
                    format!(
                        "address {addr} is the nodes' default gateway: node_default_gateway is unset, so it defaults to the first host of node_cidr"
                    ),
                    "pick another address, or set node_default_gateway to your router's address"
                        .to_owned(),
                );
                cx.note_at(format!("node_cidr is {}", c.node_cidr), "node_cidr");
            }
            Some(first) => {
                let first = first.clone();
                cx.error(
                    "duplicate_address",
                    path,
                    format!("address {addr} is also used by {first}"),
                    "every VIP, the default gateway and every node need their own address"
                        .to_owned(),
                );
                cx.note_at(format!("{first} is set here"), &first);
            }
            None => {
                seen.insert(*addr, path.clone());
            }
        }
    }

    let Some(node_net) = cidr(&c.node_cidr) else {
        return;
    };
    for (path, addr, inside, vip) in &all {
        if !inside {
            continue;
        }
        if !node_net.contains(*addr) {
            let help = if *vip {
                format!(
                    "pick a free address in {node_net}; Cilium announces load-balancer addresses on the node network (L2) unless BGP is configured"
                )
            } else {
                format!("pick an address in {node_net}, or change node_cidr")
            };
            cx.error(
                "outside_node_cidr",
                path,
                format!("{addr} is not inside node_cidr ({node_net})"),
                help,
            );
        } else if node_net.is_reserved(*addr) {
            cx.error(
                "reserved_address",
                path,
                format!("{addr} is the network or broadcast address of {node_net}"),
                "use a host address".to_owned(),
            );
        }
    }
}

fn bgp(cx: &mut Ctx<'_>, c: &Cluster) {
    let keys = [
        (
            "cilium_bgp_router_addr",
            c.cilium_bgp_router_addr.is_some() || cx.src.has_key("cilium_bgp_router_addr"),
        ),
        (
            "cilium_bgp_router_asn",
            c.cilium_bgp_router_asn.is_some() || cx.src.has_key("cilium_bgp_router_asn"),
        ),
        (
            "cilium_bgp_node_asn",
            c.cilium_bgp_node_asn.is_some() || cx.src.has_key("cilium_bgp_node_asn"),
        ),
    ];
    let set: Vec<&str> = keys.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
    if !set.is_empty() && set.len() < keys.len() {
        let missing: Vec<&str> = keys.iter().filter(|(_, s)| !*s).map(|(k, _)| *k).collect();
        cx.error(
            "partial_bgp",
            set[0],
            format!("BGP is only partly configured: {} set, {} missing", set.join(", "), missing.join(", ")),
            "set all three cilium_bgp_* keys to enable BGP, or remove them all for L2 announcements".to_owned(),
        );
    }
    if let (Some(a), Some(b)) = (c.cilium_bgp_router_asn, c.cilium_bgp_node_asn)
        && a == b
    {
        cx.warning(
            "bgp_same_asn",
            "cilium_bgp_node_asn",
            format!("nodes and router share ASN {a}: that makes an iBGP session"),
            "this is fine if intended; for eBGP give the nodes their own private ASN (64512-65534)"
                .to_owned(),
        );
    }
}

fn node_rules(cx: &mut Ctx<'_>, nodes: &[Node]) {
    let mut names = FirstSeen::default();
    let mut macs = FirstSeen::default();
    for (i, n) in nodes.iter().enumerate() {
        if crate::spec::RESERVED_NODE_NAMES.contains(&n.name.as_str()) {
            cx.error(
                "reserved_node_name",
                &format!("nodes[{i}].name"),
                format!("`{}` is reserved: it names a Talos patch directory", n.name),
                "choose another hostname, e.g. k8s-0".to_owned(),
            );
        }
        if !n.name.is_empty()
            && let Some(first) = names.check(n.name.as_str(), i)
        {
            cx.error(
                "duplicate_node_name",
                &format!("nodes[{i}].name"),
                format!("node name `{}` is also used by nodes[{first}]", n.name),
                "node names must be unique".to_owned(),
            );
            cx.note_at(
                "first used here".to_owned(),
                &format!("nodes[{first}].name"),
            );
        }
        if !n.mac_addr.is_empty()
            && let Some(first) = macs.check(n.mac_addr.as_str(), i)
        {
            cx.error(
                "duplicate_mac",
                &format!("nodes[{i}].mac_addr"),
                format!("MAC address {} is also used by nodes[{first}]", n.mac_addr),
                "each node's interface has its own MAC address; check for a copy-paste".to_owned(),
            );
            cx.note_at(
                "first used here".to_owned(),
                &format!("nodes[{first}].mac_addr"),
            );
        }
    }
    let controllers_known =
        (0..nodes.len()).all(|i| !cx.src.invalid.contains(&format!("nodes[{i}].controller")));
    if cx.src.nodes.is_some() && !nodes.is_empty() && controllers_known {
        let controllers = nodes.iter().filter(|n| n.controller).count();
        if controllers == 0 {
            cx.error(
                "no_controller",
                "nodes",
                "no node has `controller: true`".to_owned(),
                "at least one node must run the control plane".to_owned(),
            );
        } else if controllers % 2 == 0 {
            cx.warning(
                "even_controllers",
                "nodes",
                format!(
                    "{controllers} controller nodes: etcd tolerates no more failures than with {}",
                    controllers - 1
                ),
                "use an odd number of controllers (1, 3 or 5)".to_owned(),
            );
        }
    }
}

fn proxmox(cx: &mut Ctx<'_>, c: &Cluster) {
    let pairs = [
        (
            "CSI",
            "proxmox_csi_token_id",
            &c.proxmox_csi_token_id,
            "proxmox_csi_token_secret",
            &c.proxmox_csi_token_secret,
            vec![
                ("proxmox_api_url", &c.proxmox_api_url),
                ("proxmox_region", &c.proxmox_region),
                ("proxmox_storage", &c.proxmox_storage),
            ],
        ),
        (
            "CCM",
            "proxmox_ccm_token_id",
            &c.proxmox_ccm_token_id,
            "proxmox_ccm_token_secret",
            &c.proxmox_ccm_token_secret,
            vec![
                ("proxmox_api_url", &c.proxmox_api_url),
                ("proxmox_region", &c.proxmox_region),
            ],
        ),
    ];
    let mut any_enabled = false;
    for (what, id_key, id, secret_key, secret, needs) in pairs {
        match (
            id.is_some() || cx.src.has_key(id_key),
            secret.is_some() || cx.src.has_key(secret_key),
        ) {
            (true, false) => {
                cx.error(
                    "proxmox_partial",
                    id_key,
                    format!("{id_key} is set but {secret_key} is not"),
                    format!("set both to enable Proxmox {what}, or neither"),
                );
            }
            (false, true) => {
                cx.error(
                    "proxmox_partial",
                    secret_key,
                    format!("{secret_key} is set but {id_key} is not"),
                    format!("set both to enable Proxmox {what}, or neither"),
                );
            }
            (true, true) => {
                any_enabled = true;
                let missing: Vec<&str> = needs
                    .iter()
                    .filter(|(k, v)| v.is_none() && !cx.src.has_key(k))
                    .map(|(k, _)| *k)
                    .collect();
                if !missing.is_empty() {
                    cx.error(
                        "proxmox_incomplete",
                        id_key,
                        format!(
                            "Proxmox {what} is enabled but {} {} not set",
                            missing.join(", "),
                            if missing.len() == 1 { "is" } else { "are" }
                        ),
                        format!(
                            "Proxmox {what} needs {}",
                            needs.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
            (false, false) => {}
        }
    }
    if !any_enabled {
        for key in ["proxmox_api_url", "proxmox_region", "proxmox_storage"] {
            if cx.src.has_key(key) {
                cx.warning(
                    "unused_key",
                    key,
                    format!("{key} is set but neither Proxmox CSI nor CCM is enabled"),
                    "set proxmox_csi_token_id/secret or proxmox_ccm_token_id/secret, or remove it"
                        .to_owned(),
                );
            }
        }
    }
}

fn ai_gateway(cx: &mut Ctx<'_>, c: &Cluster) {
    if !c.ai_gateway_enabled {
        let set: Vec<&str> = crate::spec::CLUSTER
            .iter()
            .map(|f| f.name)
            .filter(|k| {
                k.starts_with("ai_gateway_") && *k != "ai_gateway_enabled" && cx.src.has_key(k)
            })
            .collect();
        for key in set {
            cx.warning(
                "ai_gateway_disabled",
                key,
                format!("{key} is set but ai_gateway_enabled is not true, so it has no effect"),
                "set `ai_gateway_enabled: true` to deploy the AI Gateway, or remove the ai_gateway_* keys".to_owned(),
            );
        }
        return;
    }

    const LISTS: [&str; 4] = [
        "ai_gateway_azure_deployments",
        "ai_gateway_openai_backends",
        "ai_gateway_anthropic_backends",
        "ai_gateway_bedrock_backends",
    ];
    if crate::providers::upstreams(c).is_empty() && !LISTS.iter().any(|k| cx.src.has_key(k)) {
        cx.error(
            "ai_no_deployments",
            "ai_gateway_enabled",
            "the AI Gateway is enabled but no model backend is configured (ai_gateway_azure_deployments, ai_gateway_openai_backends, ai_gateway_anthropic_backends and ai_gateway_bedrock_backends are empty)".to_owned(),
            "add at least one Azure OpenAI deployment (name, host, api_key, models) or a backend of another provider".to_owned(),
        );
    }
    if c.ai_gateway_version != "v0.4.0" {
        cx.warning(
            "ai_version_untested",
            "ai_gateway_version",
            format!("{} is not the AI Gateway release these templates were written and verified for (v0.4.0)", c.ai_gateway_version),
            "other releases may change the CRDs; run `cargo xtask verify` with that release's schemas".to_owned(),
        );
    }

    // Names: unique, within limits, no collisions between Azure and MCP backends.
    let mut generated: HashMap<String, String> = HashMap::new();
    // One finding per owner and kind: the longest name, the first collision.
    let mut check_names = |cx: &mut Ctx<'_>, owner_path: String, list: Vec<String>| {
        if let Some(n) = list
            .iter()
            .filter(|n| n.len() > names::MAX_NAME)
            .max_by_key(|n| n.len())
        {
            let limit = n.len() - names::MAX_NAME;
            cx.error(
                "ai_name_too_long",
                &owner_path,
                format!("generated object name `{n}` is {} characters, more than the {} Kubernetes allows", n.len(), names::MAX_NAME),
                format!("shorten the name by at least {limit} characters"),
            );
        }
        let mut collided = false;
        for n in list {
            match generated.get(&n) {
                Some(first) if *first != owner_path && !collided => {
                    collided = true;
                    let first = first.clone();
                    cx.error(
                        "ai_name_collision",
                        &owner_path,
                        format!("generated object name `{n}` is also generated for {first}"),
                        "rename one of them; Azure backends are named `azure-<name>`, other providers' `openai-<name>`, `anthropic-<name>`, `bedrock-<name>`, MCP backends exactly `<name>`".to_owned(),
                    );
                    cx.note_at(format!("{first} is set here"), &first);
                }
                Some(_) => {}
                None => {
                    generated.insert(n, owner_path.clone());
                }
            }
        }
    };
    let mut dep_names = FirstSeen::default();
    for (i, d) in c.ai_gateway_azure_deployments.iter().enumerate() {
        let path = format!("ai_gateway_azure_deployments[{i}].name");
        if d.name.is_empty() {
            continue;
        }
        if let Some(first) = dep_names.check(d.name.as_str(), i) {
            cx.error(
                "ai_duplicate_deployment",
                &path,
                format!(
                    "deployment name `{}` is also used by ai_gateway_azure_deployments[{first}]",
                    d.name
                ),
                "deployment names must be unique".to_owned(),
            );
            continue;
        }
        check_names(cx, path, names::azure_names(&d.name));
        let mut models = FirstSeen::default();
        for (j, m) in d
            .models
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.name().is_empty())
        {
            if let Some(first) = models.check(m.name(), j) {
                cx.error(
                    "ai_duplicate_model",
                    &format!("ai_gateway_azure_deployments[{i}].models[{j}]"),
                    format!("model `{}` is listed twice in deployment `{}` (also at models[{first}])", m.name(), d.name),
                    "list each model once per deployment; to fail over, list it in another deployment".to_owned(),
                );
            }
        }
    }

    for (key, name, path) in crate::providers::rules::entries(c) {
        check_names(cx, path, names::provider_names(key, &name));
    }
    crate::providers::rules::check(cx, c);

    if c.ai_gateway_mcp_enabled {
        if c.ai_gateway_mcp_servers.is_empty() && !cx.src.has_key("ai_gateway_mcp_servers") {
            cx.error(
                "ai_mcp_no_servers",
                "ai_gateway_mcp_enabled",
                "the MCP gateway is enabled but ai_gateway_mcp_servers is empty".to_owned(),
                "add at least one MCP server (name, host)".to_owned(),
            );
        }
    } else if cx.src.has_key("ai_gateway_mcp_servers") && !c.ai_gateway_mcp_servers.is_empty() {
        cx.warning("ai_mcp_disabled", "ai_gateway_mcp_servers", "ai_gateway_mcp_servers is set but ai_gateway_mcp_enabled is not true, so no MCP gateway is deployed".to_owned(), "set `ai_gateway_mcp_enabled: true`".to_owned());
    }
    if c.ai_gateway_mcp_enabled && c.ai_gateway_mcp_servers.len() > names::MCP_BACKENDS_MAX {
        cx.error(
            "ai_mcp_too_many_servers",
            &format!("ai_gateway_mcp_servers[{}]", names::MCP_BACKENDS_MAX),
            format!(
                "{} MCP servers are configured; the MCPRoute at /mcp holds at most {}",
                c.ai_gateway_mcp_servers.len(),
                names::MCP_BACKENDS_MAX
            ),
            "remove servers, or put several tools behind one MCP server".to_owned(),
        );
    }
    let mut mcp_names = FirstSeen::default();
    for (i, s) in c.ai_gateway_mcp_servers.iter().enumerate() {
        let path = format!("ai_gateway_mcp_servers[{i}].name");
        if s.name.is_empty() {
            continue;
        }
        if let Some(first) = mcp_names.check(s.name.as_str(), i) {
            cx.error(
                "ai_duplicate_mcp_server",
                &path,
                format!(
                    "MCP server name `{}` is also used by ai_gateway_mcp_servers[{first}]",
                    s.name
                ),
                "MCP server names must be unique: they prefix the tool names".to_owned(),
            );
            continue;
        }
        if c.ai_gateway_mcp_enabled {
            check_names(cx, path, names::mcp_names(&s.name));
        }
        for (j, pattern) in s.tool_filter.iter().enumerate() {
            // The gateway compiles filters with Go's regexp (RE2), not Rust's regex.
            if let Err(reason) = crate::re2::check(pattern) {
                cx.error(
                    "ai_bad_tool_filter",
                    &format!("ai_gateway_mcp_servers[{i}].tool_filter[{j}]"),
                    format!("\"{pattern}\" is not a valid RE2 regular expression: {reason}"),
                    "tool filters are compiled by Envoy AI Gateway with Go's regexp (RE2 syntax), e.g. \".*issues?.*\"".to_owned(),
                );
            }
        }
    }

    if !c.ai_gateway_ratelimit_enabled && cx.src.has_key("ai_gateway_ratelimit_default_limit") {
        cx.warning("ai_ratelimit_disabled", "ai_gateway_ratelimit_default_limit", "ai_gateway_ratelimit_default_limit is set but ai_gateway_ratelimit_enabled is not true".to_owned(), "set `ai_gateway_ratelimit_enabled: true` to enforce it".to_owned());
    }

    let mut key_names = FirstSeen::default();
    let mut key_values = FirstSeen::default();
    for (i, k) in c
        .ai_gateway_client_keys
        .iter()
        .enumerate()
        .filter(|(_, k)| !k.name.is_empty())
    {
        if let Some(first) = key_names.check(k.name.as_str(), i) {
            cx.error(
                "ai_duplicate_client",
                &format!("ai_gateway_client_keys[{i}].name"),
                format!(
                    "client name `{}` is also used by ai_gateway_client_keys[{first}]",
                    k.name
                ),
                "client names must be unique: they are the identity rate limits count against"
                    .to_owned(),
            );
        }
        if k.key.is_empty() {
            continue;
        }
        if let Some(first) = key_values.check(k.key.as_str(), i) {
            cx.error(
                "ai_duplicate_client_key",
                &format!("ai_gateway_client_keys[{i}].key"),
                format!("this key is also the key of ai_gateway_client_keys[{first}]"),
                "give every client its own key".to_owned(),
            );
        }
    }
    if c.ai_gateway_external && c.ai_gateway_client_keys.is_empty() {
        cx.error(
            "ai_external_without_keys",
            "ai_gateway_external",
            "the AI Gateway is published on the Internet (ai_gateway_external: true) without client keys".to_owned(),
            "add ai_gateway_client_keys so that only your clients can spend your Azure quota".to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments() {
        let segs = segments("a[1].b[0][2].c");
        let shown: Vec<String> = segs
            .iter()
            .map(|s| match s {
                Seg::Key(k) => k.to_string(),
                Seg::Index(i) => format!("#{i}"),
            })
            .collect();
        assert_eq!(shown, ["a", "#1", "b", "#0", "#2", "c"]);
    }
}
