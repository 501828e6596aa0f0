//! Keys of the provider lists and of Entra ID (see `crate::spec` for the table's types).

use crate::spec::{
    Default, MODEL_NAME, NAME_PATTERN, NON_EMPTY, PLAN_NAME_PATTERN, Section, Str, Ty, field,
    required, with_default,
};

const GUID: Ty = Ty::Str(Str::Pattern {
    pattern: r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    describe: "must be a GUID like `00000000-0000-0000-0000-000000000000`",
    example: "72f988bf-86f1-41af-91ab-2d7cd011db47",
});

/// `entra_id` of an Azure deployment: a service principal with a client secret.
pub(crate) const ENTRA_ID: Ty = Ty::Object(&[
    required(
        "tenant_id",
        GUID,
        "Directory (tenant) ID of the app registration.",
        Section::AiGateway,
    ),
    required(
        "client_id",
        GUID,
        "Application (client) ID of the app registration; it needs the `Cognitive Services OpenAI User` role on the resource.",
        Section::AiGateway,
    ),
    required(
        "client_secret",
        NON_EMPTY,
        "Client secret of the app registration; stored only encrypted.",
        Section::AiGateway,
    ),
]);

const BACKEND_NAME: Ty = Ty::Str(Str::Pattern {
    pattern: PLAN_NAME_PATTERN,
    describe: "must use only lower-case letters, digits and `-`",
    example: "primary",
});

/// A model as written in a provider list: `gpt-4o`, or `{name: fast, model: gpt-4o-mini}` when
/// the provider's model id differs from the name clients send.
const PROVIDER_MODEL: Ty = Ty::OneOf(&[
    MODEL_NAME,
    Ty::Object(&[
        required(
            "name",
            MODEL_NAME,
            "Model name clients send.",
            Section::AiGateway,
        ),
        required(
            "model",
            MODEL_NAME,
            "The provider's model id, sent upstream instead (`modelNameOverride`).",
            Section::AiGateway,
        ),
    ]),
]);

const MODELS: Field = required(
    "models",
    Ty::List {
        item: &PROVIDER_MODEL,
        min_items: 1,
    },
    "Models served: a model name, or `{name, model}` when the provider's model id differs from the name clients send.",
    Section::AiGateway,
);

use crate::spec::Field;

/// The failover rank shared by every provider list (and Azure deployments).
pub(crate) const PRIORITY: Field = with_default(
    "priority",
    Ty::Int { min: 0, max: 1000 },
    Default::Int(0),
    "Failover rank of this backend for models it shares with others: lower is tried first. Equal ranks keep the order Azure deployments, OpenAI, Anthropic, Bedrock backends, then list order.",
    Section::AiGateway,
);

const SERVICE: Ty = Ty::Object(&[
    required(
        "name",
        Ty::Str(Str::Pattern {
            pattern: NAME_PATTERN,
            describe: "must be a lower-case DNS label",
            example: "ollama",
        }),
        "Name of the Service.",
        Section::AiGateway,
    ),
    required(
        "namespace",
        Ty::Str(Str::Pattern {
            pattern: NAME_PATTERN,
            describe: "must be a lower-case DNS label",
            example: "ai",
        }),
        "Namespace of the Service.",
        Section::AiGateway,
    ),
    required(
        "port",
        Ty::Int { min: 1, max: 65535 },
        "Port of the Service, spoken in plain HTTP.",
        Section::AiGateway,
    ),
]);

pub(crate) static OPENAI_BACKEND: Ty = Ty::Object(&[
    required(
        "name",
        BACKEND_NAME,
        "Short name; generated objects are named `openai-<name>`.",
        Section::AiGateway,
    ),
    field(
        "host",
        Ty::Fqdn,
        "External endpoint host, reached over HTTPS on 443 with the system CAs (`api.openai.com`). Exactly one of `host` and `service`.",
        Section::AiGateway,
    ),
    field(
        "service",
        SERVICE,
        "In-cluster Service `{name, namespace, port}`, reached in plain HTTP without a BackendTLSPolicy (vLLM, Ollama). Exactly one of `host` and `service`.",
        Section::AiGateway,
    ),
    field(
        "api_key",
        NON_EMPTY,
        "Key sent as `Authorization: Bearer`; stored only encrypted. Required with `host`; optional with `service`.",
        Section::AiGateway,
    ),
    with_default(
        "api_prefix",
        Ty::Str(Str::Pattern {
            pattern: r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$",
            describe: "must be a URL path prefix without leading or trailing `/`",
            example: "v1",
        }),
        Default::Str("v1"),
        "Path prefix of the OpenAI API on this endpoint (the schema's `version`): requests go to `/<api_prefix>/chat/completions`.",
        Section::AiGateway,
    ),
    MODELS,
    PRIORITY,
]);

pub(crate) static ANTHROPIC_BACKEND: Ty = Ty::Object(&[
    required(
        "name",
        BACKEND_NAME,
        "Short name; generated objects are named `anthropic-<name>`.",
        Section::AiGateway,
    ),
    required(
        "api_key",
        NON_EMPTY,
        "Anthropic API key, sent as `x-api-key` to api.anthropic.com; stored only encrypted.",
        Section::AiGateway,
    ),
    MODELS,
    PRIORITY,
]);

pub(crate) static BEDROCK_BACKEND: Ty = Ty::Object(&[
    required(
        "name",
        BACKEND_NAME,
        "Short name; generated objects are named `bedrock-<name>`.",
        Section::AiGateway,
    ),
    required(
        "region",
        Ty::Str(Str::Pattern {
            pattern: r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$",
            describe: "must be an AWS region like `us-east-1`",
            example: "us-east-1",
        }),
        "AWS region; the endpoint is `bedrock-runtime.<region>.amazonaws.com` and requests are signed for it.",
        Section::AiGateway,
    ),
    required(
        "access_key_id",
        Ty::Str(Str::Pattern {
            pattern: r"^AKIA[A-Z0-9]{16}$",
            describe: "must be a long-term IAM access key id (`AKIA` and 16 more upper-case letters or digits); temporary `ASIA` keys expire and a credentials file cannot renew them",
            example: "AKIAIOSFODNN7EXAMPLE",
        }),
        "IAM access key id; stored only encrypted.",
        Section::AiGateway,
    ),
    required(
        "secret_access_key",
        Ty::Str(Str::Pattern {
            pattern: r"^[A-Za-z0-9/+=]{40}$",
            describe: "must be a 40-character IAM secret access key",
            example: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        }),
        "IAM secret access key; stored only encrypted.",
        Section::AiGateway,
    ),
    MODELS,
    PRIORITY,
]);
