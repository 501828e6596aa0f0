//! Values from files next to `cluster.yaml` that templates may ask for.
//!
//! They are read by the caller (`xtask`) and handed over in memory; the engine itself never
//! touches the filesystem. Secret values here end up only in `*.sops.*` outputs, which are
//! encrypted before they reach the disk.

use std::collections::BTreeMap;
use std::path::Path;

use schema::{Diagnostic, Location};

/// The age identity file (`age-keygen` format), next to `cluster.yaml`.
pub const AGE_KEY_FILE: &str = "age.key";
/// `cloudflared tunnel create --credentials-file …` output, made by the user.
pub const TUNNEL_FILE: &str = "cloudflare-tunnel.json";
/// Private half of the GitHub deploy key (OpenSSH format); the `.pub` goes to GitHub.
pub const DEPLOY_KEY_FILE: &str = "github-deploy.key";
/// Token of the GitHub push webhook.
pub const PUSH_TOKEN_FILE: &str = "github-push-token.txt";

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

impl Inputs {
    /// Reads the key files that exist in `dir` (see the `*_FILE` constants). A missing file is
    /// left as `None`: only a template that needs it fails. An empty or malformed file is an
    /// error here, before anything is rendered (an empty token once rendered as an empty secret
    /// upstream, cluster-template #2311).
    pub fn load(dir: &Path) -> (Inputs, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let mut inputs = Inputs::default();
        if let Some(text) = read_optional(dir, AGE_KEY_FILE, &mut diags) {
            match parse_age_key_file(&text) {
                Ok((public, private)) => {
                    inputs.age_public_key = Some(public);
                    inputs.age_private_key = Some(private);
                }
                Err(msg) => diags.push(file_error(dir, AGE_KEY_FILE, msg).with_help(
                    "an age key file holds a `# public key: age1…` line and an `AGE-SECRET-KEY-1…` line; move the broken file away and run `cargo xtask init` to create a new one",
                )),
            }
        }
        if let Some(text) = read_optional(dir, TUNNEL_FILE, &mut diags) {
            match CloudflareTunnel::parse(&text) {
                Ok(t) => inputs.cloudflare_tunnel = Some(t),
                Err(msg) => diags.push(file_error(dir, TUNNEL_FILE, msg).with_help(
                    "recreate it with `cloudflared tunnel create --credentials-file cloudflare-tunnel.json kubernetes`",
                )),
            }
        }
        inputs.deploy_key = read_non_empty(dir, DEPLOY_KEY_FILE, &mut diags);
        inputs.push_token = read_non_empty(dir, PUSH_TOKEN_FILE, &mut diags);
        (inputs, diags)
    }
}

/// Finds the public and the secret key in an `age-keygen` file: the `# public key: age1…`
/// comment and the first `AGE-SECRET-KEY-…` line (post-quantum `AGE-SECRET-KEY-PQ-1…` too).
pub fn parse_age_key_file(text: &str) -> Result<(String, String), String> {
    let public = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# public key:"))
        .map(str::trim)
        .find(|k| k.starts_with("age1") && k.chars().all(|c| c.is_ascii_alphanumeric()));
    let private = text.lines().map(str::trim).find(|l| {
        l.starts_with("AGE-SECRET-KEY-") && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    });
    match (public, private) {
        (Some(p), Some(s)) => Ok((p.to_owned(), s.to_owned())),
        (None, _) => Err("no `# public key: age1…` line".to_owned()),
        (_, None) => Err("no `AGE-SECRET-KEY-…` line".to_owned()),
    }
}

/// The largest key file read: every real one is a few hundred bytes.
const KEY_FILE_MAX_BYTES: u64 = 64 << 10;

/// Key files are the user's own (git-ignored) and may be symlinks (to
/// `~/.config/sops/age/keys.txt`), but never a FIFO, a device or anything large.
fn read_optional(dir: &Path, name: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let read = schema::repofile::read_following(&dir.join(name), KEY_FILE_MAX_BYTES)
        .and_then(schema::repofile::into_text);
    match read {
        Ok(text) => Some(text),
        Err(err) if err.is_not_found() => None,
        Err(err) => {
            diags.push(file_error(dir, name, format!("{err}")).with_help(err.help()));
            None
        }
    }
}

fn read_non_empty(dir: &Path, name: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let text = read_optional(dir, name, diags)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        diags.push(
            file_error(dir, name, "is empty".to_owned())
                .with_help("delete it and run `cargo xtask init` to create it again"),
        );
        return None;
    }
    Some(trimmed.to_owned())
}

fn file_error(dir: &Path, name: &str, msg: String) -> Diagnostic {
    Diagnostic::error("render::input", "", format!("{name}: {msg}")).at(Some(Location::new(
        dir.join(name),
        1,
        1,
        1,
    )))
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

    #[test]
    fn age_key_file() {
        let text = "# created: 2024-01-01T00:00:00Z\n# public key: age1abc\nAGE-SECRET-KEY-1XYZ\n";
        assert_eq!(
            parse_age_key_file(text).unwrap(),
            ("age1abc".to_owned(), "AGE-SECRET-KEY-1XYZ".to_owned())
        );
        let pq = "# public key: age1pq1abc\nAGE-SECRET-KEY-PQ-1XYZ\n";
        assert_eq!(parse_age_key_file(pq).unwrap().1, "AGE-SECRET-KEY-PQ-1XYZ");
        assert!(parse_age_key_file("AGE-SECRET-KEY-1XYZ\n").is_err());
        assert!(parse_age_key_file("# public key: age1abc\n").is_err());
    }

    #[test]
    fn load_rejects_empty_files_and_skips_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PUSH_TOKEN_FILE), " \n").unwrap();
        std::fs::write(dir.path().join(DEPLOY_KEY_FILE), "key\n").unwrap();
        let (inputs, diags) = Inputs::load(dir.path());
        assert_eq!(inputs.deploy_key.as_deref(), Some("key"));
        assert!(inputs.push_token.is_none() && inputs.age_public_key.is_none());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("github-push-token.txt: is empty"));
    }
}
