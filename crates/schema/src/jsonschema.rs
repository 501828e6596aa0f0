//! JSON Schema (draft-07) for editors, generated from the field table.
//!
//! Editors (yaml-language-server) use it for completion and inline errors. It expresses the
//! per-key rules; rules across keys (overlaps, uniqueness) are only checked by
//! `cargo xtask validate`.

use serde_json::{Map, Value as Json, json};

use crate::spec::{self, Default as Dflt, Field, Str, Ty};

/// The JSON Schema of `cluster.yaml`, pretty-printed with a final newline.
pub fn cluster_json_schema() -> String {
    pretty(&cluster_schema())
}

/// The JSON Schema of `nodes.yaml`, pretty-printed with a final newline.
pub fn nodes_json_schema() -> String {
    pretty(&nodes_schema())
}

fn pretty(v: &Json) -> String {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .unwrap_or_default()
}

fn cluster_schema() -> Json {
    let mut schema = document(
        "cluster.yaml",
        "Cluster configuration: network, repository, Cloudflare and optional features.",
        spec::CLUSTER,
    );
    // "Exactly one of" pairs (issue 16), which the field table cannot say.
    for (list, keys) in crate::providers::EXACTLY_ONE_OF {
        if let Some(items) = schema
            .pointer_mut(&format!("/properties/{list}/items"))
            .and_then(Json::as_object_mut)
        {
            let alternatives: Vec<Json> = keys.iter().map(|k| json!({"required": [k]})).collect();
            items.insert("oneOf".into(), Json::Array(alternatives));
        }
    }
    schema
}

fn nodes_schema() -> Json {
    document(
        "nodes.yaml",
        "The machines of the cluster.",
        spec::NODES_FILE,
    )
}

fn document(title: &str, description: &str, fields: &[Field]) -> Json {
    let mut schema = object(fields);
    let m = schema.as_object_mut().expect("object() returns an object");
    m.insert(
        "$schema".into(),
        json!("http://json-schema.org/draft-07/schema#"),
    );
    m.insert("title".into(), json!(title));
    m.insert("description".into(), json!(description));
    // Put the meta keys first for readers of the file.
    let mut ordered = Map::new();
    for k in ["$schema", "title", "description"] {
        if let Some(v) = m.remove(k) {
            ordered.insert(k.into(), v);
        }
    }
    ordered.extend(std::mem::take(m));
    Json::Object(ordered)
}

fn object(fields: &[Field]) -> Json {
    let mut props = Map::new();
    for f in fields {
        let mut p = ty(&f.ty);
        let pm = p.as_object_mut().expect("ty() returns an object");
        pm.insert("description".into(), json!(f.doc));
        match &f.default {
            Dflt::Null | Dflt::Computed(_) => {}
            Dflt::Bool(b) => {
                pm.insert("default".into(), json!(b));
            }
            Dflt::Int(i) => {
                pm.insert("default".into(), json!(i));
            }
            Dflt::Str(s) => {
                pm.insert("default".into(), json!(s));
            }
            Dflt::StrList(l) => {
                pm.insert("default".into(), json!(l));
            }
            Dflt::EmptyList => {
                pm.insert("default".into(), json!([]));
            }
        }
        props.insert(f.name.into(), p);
    }
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut out = json!({"type": "object", "properties": props, "additionalProperties": false});
    if !required.is_empty() {
        out["required"] = json!(required);
    }
    out
}

fn ty(t: &Ty) -> Json {
    match t {
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Int { min, max } => {
            let mut v = json!({"type": "integer", "minimum": min});
            if *max != i64::MAX {
                v["maximum"] = json!(max);
            }
            v
        }
        Ty::IntLike { min, max } => json!({
            "oneOf": [
                {"type": "integer", "minimum": min, "maximum": max},
                {"type": "string", "pattern": "^[0-9]+$"},
            ]
        }),
        Ty::Str(Str::Any { non_empty }) => {
            if *non_empty {
                json!({"type": "string", "minLength": 1})
            } else {
                json!({"type": "string"})
            }
        }
        Ty::Str(Str::Pattern {
            pattern, example, ..
        }) => json!({"type": "string", "pattern": pattern, "examples": [example]}),
        Ty::Str(Str::Enum(options)) => json!({"type": "string", "enum": options}),
        Ty::Ipv4 => json!({"type": "string", "format": "ipv4"}),
        Ty::Cidr => json!({
            "type": "string",
            "pattern": r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/([0-9]|[12][0-9]|3[0-2])$",
        }),
        Ty::Fqdn => {
            json!({"type": "string", "format": "hostname", "pattern": r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$"})
        }
        Ty::List { item, min_items } => {
            let mut v = json!({"type": "array", "items": ty(item)});
            if *min_items > 0 {
                v["minItems"] = json!(min_items);
            }
            v
        }
        Ty::Object(fields) => object(fields),
        Ty::OneOf(alts) => json!({"oneOf": alts.iter().map(ty).collect::<Vec<_>>()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_lists_every_key_and_is_closed() {
        let s = cluster_schema();
        assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(s["additionalProperties"], false);
        let props = s["properties"].as_object().unwrap();
        assert_eq!(props.len(), spec::CLUSTER.len());
        assert_eq!(props["cluster_pod_cidr"]["default"], "10.42.0.0/16");
        let dep = &props["ai_gateway_azure_deployments"]["items"];
        assert_eq!(dep["required"], json!(["name", "host", "models"]));
        assert_eq!(
            dep["oneOf"],
            json!([{"required": ["api_key"]}, {"required": ["entra_id"]}])
        );
        let openai = &props["ai_gateway_openai_backends"]["items"];
        assert_eq!(
            openai["oneOf"],
            json!([{"required": ["host"]}, {"required": ["service"]}])
        );
        assert_eq!(
            props["ai_gateway_bedrock_backends"]["items"]["required"],
            json!([
                "name",
                "region",
                "access_key_id",
                "secret_access_key",
                "models"
            ])
        );
        assert!(dep["properties"]["models"]["items"]["oneOf"].is_array());
        let nodes = nodes_schema();
        assert_eq!(
            nodes["properties"]["nodes"]["items"]["properties"]["mtu"]["maximum"],
            9000
        );
    }

    #[test]
    fn cidr_pattern_agrees_with_the_parser() {
        let re = regex::Regex::new(ty(&Ty::Cidr)["pattern"].as_str().unwrap()).unwrap();
        for ok in [
            "10.0.0.0/8",
            "192.168.1.0/24",
            "0.0.0.0/0",
            "255.255.255.255/32",
        ] {
            assert!(re.is_match(ok), "{ok}");
            assert!(crate::net::Cidr::parse(ok).is_ok());
        }
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "256.0.0.0/8",
            "10.0.0/8",
            "010.0.0.0/8",
        ] {
            assert!(!re.is_match(bad), "{bad}");
            assert!(crate::net::Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
