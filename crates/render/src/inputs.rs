//! Values from files next to `cluster.yaml` that templates may ask for.
//!
//! They are read by the caller (`xtask`) and handed over in memory; the engine itself never
//! touches the filesystem. Secret values here end up only in `*.sops.*` outputs, which are
//! encrypted before they reach the disk.

use std::collections::BTreeMap;

/// Inputs for the template functions `age_key`, `cloudflare_tunnel_id`, … Missing values make
/// the function fail with a message naming the file, when (and only when) a template needs it.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub age_public_key: Option<String>,
    pub age_private_key: Option<String>,
    pub cloudflare_tunnel: Option<CloudflareTunnel>,
    pub deploy_key: Option<String>,
    pub push_token: Option<String>,
    /// Talos patch files per patch directory (`global`, `controller`, `worker`, node names),
    /// as paths relative to `talos/`, sorted.
    pub talos_patches: BTreeMap<String, Vec<String>>,
}

/// `cloudflare-tunnel.json` as written by `cloudflared tunnel create`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudflareTunnel {
    pub account_tag: String,
    pub tunnel_id: String,
    pub tunnel_secret: String,
}

impl CloudflareTunnel {
    /// Parses the credentials file; the error says which field is missing.
    pub fn parse(text: &str) -> Result<CloudflareTunnel, String> {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let field = |name: &str| -> Result<String, String> {
            match json.get(name).and_then(|v| v.as_str()) {
                Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
                _ => Err(format!("missing or empty field `{name}`")),
            }
        };
        Ok(CloudflareTunnel {
            account_tag: field("AccountTag")?,
            tunnel_id: field("TunnelID")?,
            tunnel_secret: field("TunnelSecret")?,
        })
    }

    /// The `TUNNEL_TOKEN` cloudflared expects: base64 of compact JSON `{"a":…,"t":…,"s":…}`, in
    /// that key order.
    pub fn token(&self) -> String {
        let json = format!(
            "{{\"a\":{},\"t\":{},\"s\":{}}}",
            serde_json::Value::from(self.account_tag.as_str()),
            serde_json::Value::from(self.tunnel_id.as_str()),
            serde_json::Value::from(self.tunnel_secret.as_str())
        );
        crate::engine_b64(&json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_token_is_compact_json_in_order() {
        let t =
            CloudflareTunnel::parse(r#"{"AccountTag":"acc","TunnelSecret":"sec","TunnelID":"id"}"#)
                .unwrap();
        // base64 of {"a":"acc","t":"id","s":"sec"}
        assert_eq!(t.token(), "eyJhIjoiYWNjIiwidCI6ImlkIiwicyI6InNlYyJ9");
        assert_eq!(
            CloudflareTunnel::parse("{}").unwrap_err(),
            "missing or empty field `AccountTag`"
        );
    }
}
