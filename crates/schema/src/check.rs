//! Checks a YAML tree against the field table and produces normalized JSON.
//!
//! Every problem is collected; a field that fails its check is left out of the output, so the
//! semantic rules that follow can still run on everything that is valid.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value as Json};

use crate::diag::Diagnostic;
use crate::net::Cidr;
use crate::spec::{Field, Str, Ty};
use crate::yaml::{Node, Value};

pub struct Checker<'a> {
    pub file: &'a Path,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    pub fn new(file: &'a Path) -> Checker<'a> {
        Checker {
            file,
            diags: Vec::new(),
        }
    }

    fn error(
        &mut self,
        code: &str,
        path: &str,
        node: &Node,
        message: String,
        help: Option<String>,
    ) {
        // A message about a secret key never quotes its value (it would reach a CI log).
        let text = node.scalar_text();
        let message = if is_secret_path(path) && !text.is_empty() {
            message.replace(&text, "(value not shown)")
        } else {
            message
        };
        let mut d = Diagnostic::error(format!("schema::{code}"), path, message)
            .at(Some(node.location(self.file)));
        if let Some(help) = help {
            d = d.with_help(help);
        }
        self.diags.push(d);
    }

    /// Checks a mapping against `fields`. `path` is the dotted prefix ("" at the top level).
    pub fn object(
        &mut self,
        node: &Node,
        fields: &[Field],
        path: &str,
    ) -> Option<Map<String, Json>> {
        let Some(entries) = node.as_map() else {
            let what = if path.is_empty() {
                "the file".to_owned()
            } else {
                format!("`{path}`")
            };
            self.error(
                "type",
                path,
                node,
                format!(
                    "{what} must be a mapping of keys to values, found {}",
                    node.kind()
                ),
                None,
            );
            return None;
        };
        let mut out = Map::new();
        for (key, value) in entries {
            let Some(name) = key.as_str() else {
                self.error(
                    "unknown_key",
                    path,
                    key,
                    format!("key `{}` is not a string", key.scalar_text()),
                    None,
                );
                continue;
            };
            let child_path = join(path, name);
            let Some(field) = fields.iter().find(|f| f.name == name) else {
                let mut help = None;
                if let Some(similar) = suggest(name, fields.iter().map(|f| f.name)) {
                    help = Some(format!("there is a key with a similar name: `{similar}`"));
                } else if path.is_empty() {
                    help = Some(
                        "remove it; every supported key is listed in docs/configuration.md"
                            .to_owned(),
                    );
                }
                self.error(
                    "unknown_key",
                    &child_path,
                    key,
                    format!("unknown key `{name}`"),
                    help,
                );
                continue;
            };
            if value.is_null() {
                // `key:` with no value means "not set", like leaving the key out.
                continue;
            }
            if let Some(v) = self.value(value, &field.ty, &child_path) {
                out.insert(name.to_owned(), v);
            }
        }
        for field in fields.iter().filter(|f| f.required) {
            let present = entries.iter().find(|(k, _)| k.as_str() == Some(field.name));
            match present {
                None => self.error(
                    "missing_key",
                    &join(path, field.name),
                    node,
                    format!("missing required key `{}`", field.name),
                    Some(format!(
                        "add `{}:` ({})",
                        field.name,
                        first_sentence(field.doc)
                    )),
                ),
                Some((k, v)) if v.is_null() => self.error(
                    "missing_key",
                    &join(path, field.name),
                    k,
                    format!("required key `{}` has no value", field.name),
                    Some(first_sentence(field.doc)),
                ),
                Some(_) => {}
            }
        }
        Some(out)
    }

    fn value(&mut self, node: &Node, ty: &Ty, path: &str) -> Option<Json> {
        // `""` is the sample's placeholder: say it is empty rather than badly formatted.
        if node.as_str().is_some_and(|s| s.trim().is_empty()) {
            let example = match ty {
                Ty::Ipv4 => Some(Some("192.168.1.100")),
                Ty::Cidr => Some(Some("192.168.1.0/24")),
                Ty::Fqdn => Some(Some("example.com")),
                Ty::IntLike { .. } => Some(None),
                Ty::Str(Str::Pattern { example, .. }) => Some(Some(*example)),
                Ty::Str(Str::Any { non_empty: true } | Str::Enum(_)) => Some(None),
                _ => None,
            };
            if let Some(example) = example {
                let help = match example {
                    Some(e) => {
                        format!("set a value, e.g. {e}, or remove the key if it is optional")
                    }
                    None => "set a value, or remove the key if it is optional".to_owned(),
                };
                self.error(
                    "empty",
                    path,
                    node,
                    "must not be empty".to_owned(),
                    Some(help),
                );
                return None;
            }
        }
        match ty {
            Ty::Bool => match node.value {
                Value::Bool(b) => Some(Json::Bool(b)),
                _ => {
                    let help = match node.as_str() {
                        Some("yes" | "no" | "on" | "off" | "true" | "false") => {
                            Some("write `true` or `false` without quotes".to_owned())
                        }
                        _ => None,
                    };
                    self.type_error(node, path, "a boolean (`true` or `false`)", help);
                    None
                }
            },
            Ty::Int { min, max } => match node.value {
                Value::Int(i) if (*min..=*max).contains(&i) => Some(Json::from(i)),
                Value::Int(i) => {
                    self.error(
                        "range",
                        path,
                        node,
                        format!("{i} is out of range ({})", range_text(*min, *max)),
                        None,
                    );
                    None
                }
                _ => {
                    let help = node
                        .as_str()
                        .filter(|s| s.trim().parse::<i64>().is_ok())
                        .map(|_| "write the number without quotes".to_owned());
                    self.type_error(node, path, "an integer", help);
                    None
                }
            },
            Ty::IntLike { min, max } => {
                let parsed = match &node.value {
                    Value::Int(i) => Some(*i),
                    Value::Str(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                match parsed {
                    Some(i) if (*min..=*max).contains(&i) => Some(Json::from(i)),
                    Some(i) => {
                        self.error(
                            "range",
                            path,
                            node,
                            format!("{i} is out of range ({})", range_text(*min, *max)),
                            None,
                        );
                        None
                    }
                    None => {
                        self.type_error(
                            node,
                            path,
                            &format!("an integer ({})", range_text(*min, *max)),
                            None,
                        );
                        None
                    }
                }
            }
            Ty::Str(rule) => {
                let s = self.string(node, path)?;
                self.string_rule(node, path, s, rule)
                    .then(|| Json::String(s.to_owned()))
            }
            Ty::Ipv4 => {
                let s = self.string(node, path)?;
                match parse_ipv4(s) {
                    Ok(_) => Some(Json::String(s.to_owned())),
                    Err(why) => {
                        self.error("ipv4", path, node, format!("\"{s}\" is not an IPv4 address: {why}"), Some("write four decimal numbers 0-255 separated by dots, e.g. 10.10.10.254".to_owned()));
                        None
                    }
                }
            }
            Ty::Cidr => {
                let s = self.string(node, path)?;
                match Cidr::parse(s) {
                    Ok(c) if c.is_canonical() => Some(Json::String(s.to_owned())),
                    Ok(c) => {
                        let canonical = c.canonical();
                        self.error(
                            "cidr_host_bits",
                            path,
                            node,
                            format!("\"{s}\" has host bits set"),
                            Some(format!("use the network address: {canonical}")),
                        );
                        None
                    }
                    Err(why) => {
                        self.error(
                            "cidr",
                            path,
                            node,
                            format!("\"{s}\" is not an IPv4 network in CIDR form: {why}"),
                            Some(
                                "write an address and a prefix length, e.g. 10.10.10.0/24"
                                    .to_owned(),
                            ),
                        );
                        None
                    }
                }
            }
            Ty::Fqdn => {
                let s = self.string(node, path)?;
                match check_fqdn(s) {
                    Ok(()) => Some(Json::String(s.to_owned())),
                    Err(why) => {
                        self.error("fqdn", path, node, format!("\"{s}\" is not a valid domain name: {why}"), Some("use lower-case labels of letters, digits and `-` separated by dots, e.g. example.com".to_owned()));
                        None
                    }
                }
            }
            Ty::List { item, min_items } => {
                let Some(items) = node.as_seq() else {
                    let help = node
                        .as_str()
                        .map(|s| format!("write a YAML list, e.g. [\"{s}\"]"));
                    self.type_error(node, path, "a list", help);
                    return None;
                };
                if items.len() < *min_items {
                    self.error(
                        "min_items",
                        path,
                        node,
                        format!(
                            "must have at least {min_items} item{}",
                            if *min_items == 1 { "" } else { "s" }
                        ),
                        Some("remove the key to use its default, or add an item".to_owned()),
                    );
                    return None;
                }
                // Invalid items are left out; mappings keep their valid keys, so rules on the
                // rest of an item (and item indexes of lists of mappings) still work.
                let out = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, it)| self.value(it, item, &format!("{path}[{i}]")))
                    .collect();
                Some(Json::Array(out))
            }
            Ty::Object(fields) => self.object(node, fields, path).map(Json::Object),
            Ty::OneOf(alternatives) => {
                let want_map = node.as_map().is_some();
                let alt = alternatives
                    .iter()
                    .find(|t| matches!(t, Ty::Object(_)) == want_map);
                match alt {
                    Some(t) => self.value(node, t, path),
                    None => {
                        self.type_error(node, path, "a string or a mapping", None);
                        None
                    }
                }
            }
        }
    }

    fn string<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n str> {
        match &node.value {
            Value::Str(s) => {
                // Secret values reach the cluster encrypted, past kustomize; everything else
                // goes through kustomize (go-yaml), which refuses or rewrites these characters.
                let secret = is_secret_path(path);
                if !secret && let Some(c) = s.chars().find(|c| is_unportable(*c)) {
                    self.error(
                        "unsafe_char",
                        path,
                        node,
                        format!("contains the character U+{:04X}, which kustomize and Flux cannot carry unchanged", c as u32),
                        Some("remove it; it is usually an invisible leftover of copy and paste".to_owned()),
                    );
                    return None;
                }
                if secret && is_placeholder(s) {
                    let d = Diagnostic::warning(
                        "schema::placeholder_secret",
                        path,
                        "looks like a placeholder from the sample, not a real credential".to_owned(),
                    )
                    .at(Some(node.location(self.file)))
                    .with_help("replace it with the real value; the cluster would start with it and every request using it would be refused (401)".to_owned());
                    self.diags.push(d);
                }
                if !secret && s.contains("${") {
                    self.error(
                        "flux_substitution",
                        path,
                        node,
                        "contains `${`, which Flux's variable substitution would replace on the cluster".to_owned(),
                        Some("Flux substitutes `${NAME}` in every manifest it applies (postBuild.substituteFrom), so the cluster would see a different value than this file says; remove the `${`".to_owned()),
                    );
                    return None;
                }
                Some(s)
            }
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                let text = node.scalar_text();
                self.type_error(
                    node,
                    path,
                    "a string",
                    Some(format!("quote it: \"{text}\"")),
                );
                None
            }
            _ => {
                self.type_error(node, path, "a string", None);
                None
            }
        }
    }

    fn string_rule(&mut self, node: &Node, path: &str, s: &str, rule: &Str) -> bool {
        match rule {
            Str::Any { non_empty } => {
                if *non_empty && s.trim().is_empty() {
                    self.error(
                        "empty",
                        path,
                        node,
                        "must not be empty".to_owned(),
                        Some("set a value, or remove the key if it is optional".to_owned()),
                    );
                    return false;
                }
                true
            }
            Str::Pattern {
                pattern,
                describe,
                example,
            } => {
                if !regex_for(pattern).is_match(s) {
                    self.error(
                        "pattern",
                        path,
                        node,
                        format!("\"{s}\" {describe}"),
                        Some(format!("for example: {example}")),
                    );
                    return false;
                }
                true
            }
            Str::Enum(options) => {
                if options.contains(&s) {
                    return true;
                }
                let list = options
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let help = suggest(s, options.iter().copied())
                    .map(|o| format!("there is a value with a similar name: `{o}`"));
                self.error(
                    "enum",
                    path,
                    node,
                    format!("\"{s}\" is not one of {list}"),
                    help,
                );
                false
            }
        }
    }

    fn type_error(&mut self, node: &Node, path: &str, expected: &str, help: Option<String>) {
        let found = match &node.value {
            Value::Seq(_) | Value::Map(_) => node.kind().to_owned(),
            _ => format!("{} (`{}`)", node.kind(), node.scalar_text()),
        };
        self.error(
            "type",
            path,
            node,
            format!("must be {expected}, found {found}"),
            help,
        );
    }
}

/// Keys whose values only reach the cluster inside encrypted Secrets.
pub const SECRET_FIELDS: &[&str] = &[
    "cloudflare_token",
    "proxmox_csi_token_secret",
    "proxmox_ccm_token_secret",
    "api_key",
    "key",
    "client_secret",
    "access_key_id",
    "secret_access_key",
];

/// Whether the dotted key path (`ai_gateway_azure_deployments[1].api_key`) ends in a secret key.
pub fn is_secret_path(path: &str) -> bool {
    let field = path.rsplit('.').next().unwrap_or(path);
    let field = field.split('[').next().unwrap_or(field);
    SECRET_FIELDS.contains(&field)
}

/// Whether a secret value is one of the sample's stand-ins (`your-api-key-here`, `ghp_xxxxx`,
/// `a-long-random-string`) or shaped like one: a `your-…`/`<…>` phrase, a run of five `x`, or a
/// word that only names what belongs there. Never true of a random token in practice.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "a-long-random-string",
        "changeme",
        "change-me",
        "placeholder",
        "replace-me",
        "replaceme",
        "todo",
        "tbd",
        "secret",
        "password",
        "token",
        "api-key",
        "apikey",
    ];
    WORDS.contains(&v.as_str())
        || v.starts_with("your-")
        || v.starts_with("your_")
        || (v.starts_with('<') && v.ends_with('>'))
        || v.contains("xxxxx")
}

/// Characters go-yaml (in kustomize, hence Flux) refuses (DEL, C1 controls, the byte-order mark,
/// noncharacters U+FFFE/U+FFFF) or rewrites as line breaks (NEL, U+2028, U+2029).
pub fn is_unportable(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn range_text(min: i64, max: i64) -> String {
    if max == i64::MAX {
        format!("at least {min}")
    } else {
        format!("{min}-{max}")
    }
}

fn first_sentence(doc: &str) -> String {
    let s = doc.split(". ").next().unwrap_or(doc).trim_end_matches('.');
    // Lowercase the first letter so the sentence reads on after "expected …: ", but not in an
    // acronym or a proper noun ("API key", "MAC address", "Azure"): only when the second
    // character is lowercase too.
    let acronym = s.chars().nth(1).is_some_and(char::is_uppercase);
    if acronym || PROPER_NOUNS.iter().any(|p| s.starts_with(p)) {
        return s.to_owned();
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Words a field's description may start with that keep their capital.
const PROPER_NOUNS: &[&str] = &[
    "Azure",
    "Cloudflare",
    "Cilium",
    "GitHub",
    "Proxmox",
    "Talos",
    "Flux",
    "Envoy",
    "Redis",
    "Kubernetes",
    "OpenAI",
    "Anthropic",
    "Bedrock",
    "Entra",
    "AWS",
    "MCP",
];

/// The closest candidate, if it is close enough to be a likely typo.
pub fn suggest<'c>(name: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn regex_for(pattern: &'static str) -> Regex {
    static CACHE: LazyLock<std::sync::Mutex<Vec<(&'static str, Regex)>>> =
        LazyLock::new(Default::default);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, re)) = cache.iter().find(|(p, _)| *p == pattern) {
        return re.clone();
    }
    // The patterns are constants of this crate, covered by tests; a bad one is a bug here.
    let re =
        Regex::new(pattern).unwrap_or_else(|e| panic!("invalid built-in pattern {pattern}: {e}"));
    cache.push((pattern, re.clone()));
    re
}

/// Strict dotted-quad parsing with a reason on failure.
pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, String> {
    if s.contains('/') {
        return Err("a single address has no `/prefix`".to_owned());
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return Err(format!(
            "expected 4 numbers separated by dots, found {}",
            parts.len()
        ));
    }
    for p in &parts {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{p}` is not a number"));
        }
        if p.len() > 1 && p.starts_with('0') {
            return Err(format!("`{p}` has a leading zero"));
        }
        match p.parse::<u16>() {
            Ok(n) if n <= 255 => {}
            _ => return Err(format!("{p} is larger than 255")),
        }
    }
    s.parse::<Ipv4Addr>().map_err(|e| e.to_string())
}

pub fn check_fqdn(s: &str) -> Result<(), String> {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() {
        return Err("it is empty".to_owned());
    }
    if s.len() > 253 {
        return Err("longer than 253 characters".to_owned());
    }
    let labels: Vec<&str> = s.split('.').collect();
    if labels.len() < 2 {
        return Err("it needs at least two labels (name.tld)".to_owned());
    }
    for label in labels {
        if label.is_empty() {
            return Err("it has an empty label (`..`)".to_owned());
        }
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "label `{label}` has characters other than lower-case letters, digits and `-`"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` starts or ends with `-`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec;

    #[test]
    fn every_builtin_pattern_compiles() {
        fn walk(ty: &Ty) {
            match ty {
                Ty::Str(Str::Pattern {
                    pattern, example, ..
                }) => {
                    let re = regex_for(pattern);
                    assert!(
                        re.is_match(example),
                        "example {example} does not match {pattern}"
                    );
                }
                Ty::List { item, .. } => walk(item),
                Ty::Object(fields) => fields.iter().for_each(|f| walk(&f.ty)),
                Ty::OneOf(alts) => alts.iter().for_each(walk),
                _ => {}
            }
        }
        spec::CLUSTER
            .iter()
            .chain(spec::NODES_FILE)
            .for_each(|f| walk(&f.ty));
    }

    #[test]
    fn the_samples_placeholders_are_recognised_and_real_tokens_are_not() {
        for p in [
            "your-api-key-here",
            "ghp_xxxxx",
            "a-long-random-string",
            "<token>",
            "YOUR_TOKEN",
            " changeme ",
        ] {
            assert!(is_placeholder(p), "{p}");
        }
        for real in [
            "3b8f0c1e9d2a4f6b8c0d2e4f6a8b0c2d",
            "ghp_4fJ9kQ2mX7pL0sV3nB8wR1tY6uH5zC2eD9aG",
            "sk-proj-abcDEF123",
            "fake",
            "tokenized-value-1234",
        ] {
            assert!(!is_placeholder(real), "{real}");
        }
    }

    #[test]
    fn first_sentences_keep_acronyms_and_proper_nouns() {
        assert_eq!(
            first_sentence("API key of the deployment. More."),
            "API key of the deployment"
        );
        assert_eq!(
            first_sentence("MAC address of the NIC."),
            "MAC address of the NIC"
        );
        assert_eq!(first_sentence("Azure OpenAI host"), "Azure OpenAI host");
        assert_eq!(first_sentence("The node's disk. More"), "the node's disk");
        assert_eq!(first_sentence("A"), "a");
    }

    #[test]
    fn ipv4_reasons() {
        assert!(parse_ipv4("10.0.0.1").is_ok());
        assert_eq!(
            parse_ipv4("10.0.0.256").unwrap_err(),
            "256 is larger than 255"
        );
        assert_eq!(
            parse_ipv4("10.0.0").unwrap_err(),
            "expected 4 numbers separated by dots, found 3"
        );
        assert_eq!(
            parse_ipv4("10.0.0.01").unwrap_err(),
            "`01` has a leading zero"
        );
        assert!(parse_ipv4("10.0.0.0/24").is_err());
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let names = ["ai_gateway_enabled", "ai_gateway_addr", "node_cidr"];
        assert_eq!(
            suggest("ai_gateway_enable", names.iter().copied()),
            Some("ai_gateway_enabled")
        );
        assert_eq!(
            suggest("nodecidr", names.iter().copied()),
            Some("node_cidr")
        );
        assert_eq!(suggest("completely_different", names.iter().copied()), None);
    }
}
