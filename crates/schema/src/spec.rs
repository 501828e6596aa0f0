//! The declarative description of every configuration key.
//!
//! This table is the single source for: type and format checks (every constraint of the classic
//! CUE schema and of the plan's AI section), unknown-key detection with suggestions, defaults, the
//! JSON Schema for editors and the generated configuration reference. Rules that relate several
//! keys (overlapping CIDRs, unique addresses, …) live in `rules.rs`.

/// What a value must look like.
#[derive(Debug)]
pub enum Ty {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Str(Str),
    /// An IPv4 address in dotted-quad form.
    Ipv4,
    /// An IPv4 network in CIDR form (`10.0.0.0/24`).
    Cidr,
    /// A DNS name: lower-case labels of letters, digits and `-`, at least two labels.
    Fqdn,
    /// An integer, or a string holding one (YAML users write `"64513"` and `64513`).
    IntLike {
        min: i64,
        max: i64,
    },
    List {
        item: &'static Ty,
        min_items: usize,
    },
    Object(&'static [Field]),
    /// The first alternative whose shape (scalar vs mapping) matches is used.
    OneOf(&'static [Ty]),
}

#[derive(Debug)]
pub enum Str {
    /// Any string; `non_empty` rejects `""`.
    Any {
        non_empty: bool,
    },
    /// Must match `pattern` (anchored); `describe` completes the sentence "<value> …", e.g.
    /// "must end in .openai.azure.com".
    Pattern {
        pattern: &'static str,
        describe: &'static str,
        example: &'static str,
    },
    Enum(&'static [&'static str]),
}

/// The value used when a key is absent.
#[derive(Debug)]
pub enum Default {
    /// No default: the key reaches templates as an explicit null.
    Null,
    Bool(bool),
    Int(i64),
    Str(&'static str),
    StrList(&'static [&'static str]),
    EmptyList,
    /// Computed from other keys; the text says how (for docs).
    Computed(&'static str),
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub default: Default,
    pub doc: &'static str,
    pub section: Section,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Network,
    Cluster,
    Repository,
    Cloudflare,
    Cilium,
    Proxmox,
    AiGateway,
    Node,
}

impl Section {
    pub fn title(self) -> &'static str {
        match self {
            Section::Network => "Node network",
            Section::Cluster => "Cluster",
            Section::Repository => "Git repository",
            Section::Cloudflare => "Cloudflare",
            Section::Cilium => "Cilium BGP and load balancing",
            Section::Proxmox => "Proxmox CSI and CCM (optional)",
            Section::AiGateway => "Envoy AI Gateway (optional)",
            Section::Node => "Nodes",
        }
    }
}

pub(crate) const fn field(
    name: &'static str,
    ty: Ty,
    doc: &'static str,
    section: Section,
) -> Field {
    Field {
        name,
        ty,
        required: false,
        default: Default::Null,
        doc,
        section,
    }
}

pub(crate) const fn required(
    name: &'static str,
    ty: Ty,
    doc: &'static str,
    section: Section,
) -> Field {
    Field {
        name,
        ty,
        required: true,
        default: Default::Null,
        doc,
        section,
    }
}

pub(crate) const fn with_default(
    name: &'static str,
    ty: Ty,
    default: Default,
    doc: &'static str,
    section: Section,
) -> Field {
    Field {
        name,
        ty,
        required: false,
        default,
        doc,
        section,
    }
}

pub(crate) const NON_EMPTY: Ty = Ty::Str(Str::Any { non_empty: true });
const IPV4_LIST: Ty = Ty::List {
    item: &Ty::Ipv4,
    min_items: 1,
};
const ASN: Ty = Ty::IntLike {
    min: 1,
    max: 4_294_967_295,
};

/// A lower-case DNS label as used for object names (RFC 1123).
pub const NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";
/// The plan's name rule for deployments and MCP servers.
pub const PLAN_NAME_PATTERN: &str = "^[a-z0-9-]+$";
pub const PINNED_TAG_PATTERN: &str = r"^v[0-9]+\.[0-9]+\.[0-9]+$";

/// Every key of `cluster.yaml`, in the order of the sample file.
pub static CLUSTER: &[Field] = &[
    // Node network
    required(
        "node_cidr",
        Ty::Cidr,
        "Network the nodes live in; node addresses, the API address and (without BGP) the gateway addresses must be inside it.",
        Section::Network,
    ),
    with_default(
        "node_dns_servers",
        IPV4_LIST,
        Default::StrList(&["1.1.1.1", "1.0.0.1"]),
        "DNS servers the nodes use.",
        Section::Network,
    ),
    with_default(
        "node_ntp_servers",
        IPV4_LIST,
        Default::StrList(&["162.159.200.1", "162.159.200.123"]),
        "NTP servers the nodes use.",
        Section::Network,
    ),
    with_default(
        "node_default_gateway",
        Ty::Ipv4,
        Default::Computed("the first host of `node_cidr`"),
        "Default route of the nodes.",
        Section::Network,
    ),
    field(
        "node_vlan_tag",
        Ty::IntLike { min: 1, max: 4094 },
        "VLAN the node interfaces are tagged with (1-4094); leave unset for untagged ports.",
        Section::Network,
    ),
    // Cluster
    with_default(
        "cluster_pod_cidr",
        Ty::Cidr,
        Default::Str("10.42.0.0/16"),
        "Pod network; must not overlap the node or service network.",
        Section::Cluster,
    ),
    with_default(
        "cluster_svc_cidr",
        Ty::Cidr,
        Default::Str("10.43.0.0/16"),
        "Service network; must not overlap the node or pod network. CoreDNS takes its 10th address.",
        Section::Cluster,
    ),
    required(
        "cluster_api_addr",
        Ty::Ipv4,
        "Virtual IP of the Kubernetes API, shared by the controller nodes; unused by any node.",
        Section::Cluster,
    ),
    field(
        "cluster_api_tls_sans",
        Ty::List {
            item: &Ty::Fqdn,
            min_items: 0,
        },
        "Extra DNS names in the API server certificate.",
        Section::Cluster,
    ),
    required(
        "cluster_gateway_addr",
        Ty::Ipv4,
        "Load-balancer address of the internal gateway (`envoy-internal`); also serves `aiops.<domain>` when `ai_gateway_addr` is unset.",
        Section::Cluster,
    ),
    required(
        "cluster_dns_gateway_addr",
        Ty::Ipv4,
        "Load-balancer address of k8s-gateway, the DNS server for your domain inside your network.",
        Section::Cluster,
    ),
    // Repository
    required(
        "repository_name",
        Ty::Str(Str::Pattern {
            pattern: r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
            describe: "must be `owner/repository`",
            example: "onedr0p/cluster-template",
        }),
        "GitHub repository Flux syncs from.",
        Section::Repository,
    ),
    with_default(
        "repository_branch",
        NON_EMPTY,
        Default::Str("main"),
        "Branch Flux syncs from.",
        Section::Repository,
    ),
    with_default(
        "repository_visibility",
        Ty::Str(Str::Enum(&["public", "private"])),
        Default::Str("public"),
        "`private` makes Flux use the deploy key created by `cargo xtask init`.",
        Section::Repository,
    ),
    // Cloudflare
    required(
        "cloudflare_domain",
        Ty::Fqdn,
        "Your domain, managed by Cloudflare.",
        Section::Cloudflare,
    ),
    required(
        "cloudflare_token",
        NON_EMPTY,
        "Cloudflare API token with Zone:DNS:Edit and Account:Cloudflare Tunnel:Read; stored only encrypted.",
        Section::Cloudflare,
    ),
    required(
        "cloudflare_gateway_addr",
        Ty::Ipv4,
        "Load-balancer address of the external gateway (`envoy-external`) that the Cloudflare tunnel reaches.",
        Section::Cloudflare,
    ),
    // Cilium
    field(
        "cilium_bgp_router_addr",
        Ty::Ipv4,
        "Address of the BGP router; set all three BGP keys or none.",
        Section::Cilium,
    ),
    field(
        "cilium_bgp_router_asn",
        ASN,
        "ASN of the BGP router (1-4294967295).",
        Section::Cilium,
    ),
    field(
        "cilium_bgp_node_asn",
        ASN,
        "ASN of the nodes (1-4294967295).",
        Section::Cilium,
    ),
    with_default(
        "cilium_loadbalancer_mode",
        Ty::Str(Str::Enum(&["dsr", "snat"])),
        Default::Str("dsr"),
        "Cilium load-balancer mode; `snat` if your network cannot route DSR replies.",
        Section::Cilium,
    ),
    // Proxmox
    field(
        "proxmox_api_url",
        Ty::Str(Str::Pattern {
            pattern: r"^https?://[^/\s]+(:[0-9]+)?/api2/json$",
            describe: "must be an http(s) URL ending in `/api2/json`",
            example: "https://pve.example.com:8006/api2/json",
        }),
        "Proxmox VE API endpoint used by the CSI plugin and the CCM.",
        Section::Proxmox,
    ),
    with_default(
        "proxmox_insecure",
        Ty::Bool,
        Default::Bool(false),
        "Skip TLS verification of the Proxmox API (self-signed certificates).",
        Section::Proxmox,
    ),
    field(
        "proxmox_region",
        NON_EMPTY,
        "Proxmox cluster name, used as the Kubernetes topology region.",
        Section::Proxmox,
    ),
    field(
        "proxmox_storage",
        NON_EMPTY,
        "Proxmox storage the CSI plugin creates volumes on.",
        Section::Proxmox,
    ),
    field(
        "proxmox_csi_token_id",
        Ty::Str(Str::Pattern {
            pattern: r"^[^@\s]+@[^!\s]+![^\s]+$",
            describe: "must be `user@realm!token`",
            example: "kubernetes-csi@pve!csi",
        }),
        "API token of the CSI plugin; setting it enables Proxmox CSI.",
        Section::Proxmox,
    ),
    field(
        "proxmox_csi_token_secret",
        NON_EMPTY,
        "Secret of the CSI API token; stored only encrypted.",
        Section::Proxmox,
    ),
    field(
        "proxmox_ccm_token_id",
        Ty::Str(Str::Pattern {
            pattern: r"^[^@\s]+@[^!\s]+![^\s]+$",
            describe: "must be `user@realm!token`",
            example: "kubernetes-ccm@pve!ccm",
        }),
        "API token of the Proxmox cloud controller manager; setting it deploys the Proxmox CCM and runs the kubelets with an external cloud provider (without it no cloud controller manager runs, as in cluster-template).",
        Section::Proxmox,
    ),
    field(
        "proxmox_ccm_token_secret",
        NON_EMPTY,
        "Secret of the CCM API token; stored only encrypted.",
        Section::Proxmox,
    ),
    // AI Gateway
    with_default(
        "ai_gateway_enabled",
        Ty::Bool,
        Default::Bool(false),
        "Deploy Envoy AI Gateway and serve `aiops.<domain>`.",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_version",
        Ty::Str(Str::Pattern {
            pattern: PINNED_TAG_PATTERN,
            describe: "must be a pinned release tag `vX.Y.Z`",
            example: "v0.4.0",
        }),
        Default::Str("v0.4.0"),
        "Release of the AI Gateway Helm charts (CRDs and controller).",
        Section::AiGateway,
    ),
    field(
        "ai_gateway_addr",
        Ty::Ipv4,
        "Own load-balancer address for the AI gateway (plain HTTP, port 80), opened only when `ai_gateway_client_keys` is set. Unset, or without client keys: `aiops.<domain>` is served through the internal gateway at `cluster_gateway_addr`.",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_azure_deployments",
        Ty::List {
            item: &AZURE_DEPLOYMENT,
            min_items: 0,
        },
        Default::EmptyList,
        "Azure OpenAI resources; requests are routed by the `model` of the request (header `x-ai-eg-model`). A model listed in several deployments (or backends of other providers) fails over by `priority`, then in list order: Azure deployments, then `ai_gateway_openai_backends`, `ai_gateway_anthropic_backends`, `ai_gateway_bedrock_backends`.",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_openai_backends",
        Ty::List {
            item: &crate::providers::OPENAI_BACKEND,
            min_items: 0,
        },
        Default::EmptyList,
        "OpenAI and OpenAI-compatible endpoints: an external `host` (HTTPS) or an in-cluster `service` (plain HTTP, e.g. vLLM or Ollama). Failover order across lists: Azure deployments, then these, then Anthropic, then Bedrock.",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_anthropic_backends",
        Ty::List {
            item: &crate::providers::ANTHROPIC_BACKEND,
            min_items: 0,
        },
        Default::EmptyList,
        "Anthropic API accounts. Their models are served on Anthropic's Messages API at `/anthropic/v1/messages` only (v0.4.0 does not translate OpenAI chat completions to Anthropic).",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_bedrock_backends",
        Ty::List {
            item: &crate::providers::BEDROCK_BACKEND,
            min_items: 0,
        },
        Default::EmptyList,
        "AWS Bedrock regions, reached with an IAM access key pair (requests are signed with SigV4).",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_mcp_enabled",
        Ty::Bool,
        Default::Bool(false),
        "Serve an MCP gateway at `/mcp` aggregating `ai_gateway_mcp_servers`.",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_mcp_servers",
        Ty::List {
            item: &MCP_SERVER,
            min_items: 0,
        },
        Default::EmptyList,
        "Upstream MCP servers; their tools appear as `<name>__<tool>`.",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_ratelimit_enabled",
        Ty::Bool,
        Default::Bool(false),
        "Token-based rate limiting, with Redis for its counters.",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_ratelimit_default_limit",
        Ty::Int {
            min: 1,
            max: i64::MAX,
        },
        Default::Int(100_000),
        "Tokens per hour allowed to each client (`x-user-id`, or the client key's name).",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_client_keys",
        Ty::List {
            item: &CLIENT_KEY,
            min_items: 0,
        },
        Default::EmptyList,
        "API keys clients must send (`Authorization: Bearer <key>`); the key's name becomes the client's identity for rate limits.",
        Section::AiGateway,
    ),
    with_default(
        "ai_gateway_external",
        Ty::Bool,
        Default::Bool(false),
        "Also publish `aiops.<domain>` on the external gateway (the Internet, through the Cloudflare tunnel). Requires client keys.",
        Section::AiGateway,
    ),
];

static AZURE_DEPLOYMENT: Ty = Ty::Object(&[
    required(
        "name",
        Ty::Str(Str::Pattern {
            pattern: PLAN_NAME_PATTERN,
            describe: "must use only lower-case letters, digits and `-`",
            example: "primary",
        }),
        "Short name; generated objects are named after it.",
        Section::AiGateway,
    ),
    required(
        "host",
        Ty::Str(Str::Pattern {
            pattern: r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\.openai\.azure\.com$",
            describe: "must end in .openai.azure.com",
            example: "my-resource.openai.azure.com",
        }),
        "Endpoint host of the Azure OpenAI resource.",
        Section::AiGateway,
    ),
    field(
        "api_key",
        NON_EMPTY,
        "API key of the resource; stored only encrypted. Exactly one of `api_key` and `entra_id`.",
        Section::AiGateway,
    ),
    field(
        "entra_id",
        crate::providers::ENTRA_ID,
        "Microsoft Entra ID service principal instead of an API key: `{tenant_id, client_id, client_secret}`; the controller exchanges it for access tokens (`AzureCredentials`). Exactly one of `api_key` and `entra_id`.",
        Section::AiGateway,
    ),
    required(
        "models",
        Ty::List {
            item: &MODEL,
            min_items: 1,
        },
        "Models served by this resource: a model name, or `{name, deployment}` when the Azure deployment is named differently.",
        Section::AiGateway,
    ),
    with_default(
        "api_version",
        Ty::Str(Str::Pattern {
            pattern: r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$",
            describe: "must be an Azure OpenAI API version like `2025-01-01-preview`",
            example: "2025-01-01-preview",
        }),
        Default::Str("2025-01-01-preview"),
        "Azure OpenAI API version sent as `api-version`.",
        Section::AiGateway,
    ),
    crate::providers::PRIORITY,
]);

/// Model names clients send; anything printable without spaces.
pub(crate) const MODEL_NAME: Ty = Ty::Str(Str::Pattern {
    pattern: r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
    describe: "must be a model name (letters, digits, `.`, `_`, `:`, `/`, `-`)",
    example: "gpt-4o",
});

static MODEL: Ty = Ty::OneOf(&[
    MODEL_NAME,
    Ty::Object(&[
        required(
            "name",
            MODEL_NAME,
            "Model name clients send.",
            Section::AiGateway,
        ),
        required(
            "deployment",
            Ty::Str(Str::Pattern {
                pattern: r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                describe: "must be an Azure deployment name (letters, digits, `.`, `_`, `-`)",
                example: "gpt4o-prod",
            }),
            "Azure deployment serving it.",
            Section::AiGateway,
        ),
    ]),
]);

static MCP_SERVER: Ty = Ty::Object(&[
    required(
        "name",
        Ty::Str(Str::Pattern {
            pattern: PLAN_NAME_PATTERN,
            describe: "must use only lower-case letters, digits and `-`",
            example: "github",
        }),
        "Short name; prefixes the server's tools (`github__list_issues`).",
        Section::AiGateway,
    ),
    required(
        "host",
        Ty::Fqdn,
        "Host of the MCP server (reached over HTTPS on port 443).",
        Section::AiGateway,
    ),
    with_default(
        "path",
        Ty::Str(Str::Pattern {
            pattern: r"^/[^\s]*$",
            describe: "must be an absolute URL path",
            example: "/mcp",
        }),
        Default::Str("/mcp"),
        "Path of the server's streamable-HTTP endpoint.",
        Section::AiGateway,
    ),
    field(
        "api_key",
        NON_EMPTY,
        "Token sent to the server as `Authorization: Bearer`; stored only encrypted.",
        Section::AiGateway,
    ),
    with_default(
        "tool_filter",
        Ty::List {
            item: &NON_EMPTY,
            min_items: 0,
        },
        Default::EmptyList,
        "Regular expressions; only matching tools are exposed (all tools when empty).",
        Section::AiGateway,
    ),
]);

static CLIENT_KEY: Ty = Ty::Object(&[
    required(
        "name",
        Ty::Str(Str::Pattern {
            pattern: NAME_PATTERN,
            describe: "must be a lower-case DNS label",
            example: "alice",
        }),
        "Client identity; rate limits are counted per name.",
        Section::AiGateway,
    ),
    required(
        "key",
        Ty::Str(Str::Pattern {
            pattern: r"^[A-Za-z0-9._~+/=-]{16,}$",
            describe: "must be at least 16 characters of letters, digits and `._~+/=-`",
            example: "sk-3f9c0a7d5e1b24680ace",
        }),
        "The API key itself; stored only encrypted.",
        Section::AiGateway,
    ),
]);

/// `nodes.yaml` has one key.
pub static NODES_FILE: &[Field] = &[required(
    "nodes",
    Ty::List {
        item: &NODE,
        min_items: 1,
    },
    "The machines of the cluster.",
    Section::Node,
)];

pub static NODE: Ty = Ty::Object(NODE_FIELDS);

pub static NODE_FIELDS: &[Field] = &[
    required(
        "name",
        Ty::Str(Str::Pattern {
            pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
            describe: "must be a lower-case DNS label of at most 63 characters",
            example: "k8s-0",
        }),
        "Hostname of the node.",
        Section::Node,
    ),
    required(
        "address",
        Ty::Ipv4,
        "Static address of the node, inside `node_cidr`.",
        Section::Node,
    ),
    required(
        "controller",
        Ty::Bool,
        "Whether the node runs the control plane.",
        Section::Node,
    ),
    required(
        "disk",
        NON_EMPTY,
        "Install disk: a device path (`/dev/sda`) or a disk serial number.",
        Section::Node,
    ),
    required(
        "mac_addr",
        Ty::Str(Str::Pattern {
            pattern: "^([0-9a-f]{2}:){5}[0-9a-f]{2}$",
            describe: "must be a lower-case MAC address",
            example: "00:11:22:aa:bb:cc",
        }),
        "MAC address of the network interface to configure.",
        Section::Node,
    ),
    required(
        "schematic_id",
        Ty::Str(Str::Pattern {
            pattern: "^[a-z0-9]{64}$",
            describe: "must be a 64-character Talos Image Factory schematic id",
            example: "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba",
        }),
        "Talos Image Factory schematic of the node's image.",
        Section::Node,
    ),
    with_default(
        "mtu",
        Ty::Int {
            min: 1450,
            max: 9000,
        },
        Default::Int(1500),
        "MTU of the interface (1450-9000).",
        Section::Node,
    ),
    with_default(
        "secureboot",
        Ty::Bool,
        Default::Bool(false),
        "Install the SecureBoot image.",
        Section::Node,
    ),
    with_default(
        "encrypt_disk",
        Ty::Bool,
        Default::Bool(false),
        "Encrypt the state and ephemeral partitions with the TPM.",
        Section::Node,
    ),
    with_default(
        "kernel_modules",
        Ty::List {
            item: &NON_EMPTY,
            min_items: 0,
        },
        Default::EmptyList,
        "Extra kernel modules to load.",
        Section::Node,
    ),
];

/// Node names that would collide with Talos patch directories.
pub const RESERVED_NODE_NAMES: &[&str] = &["global", "controller", "worker"];
