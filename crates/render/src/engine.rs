//! The template engine: minijinja configured with makejinja's syntax and whitespace rules.
//!
//! - blocks `#% … %#`, variables `#{ … }#`, comments `#| … |#`;
//! - `trim_blocks`, `lstrip_blocks`, `keep_trailing_newline` on; no auto-escaping;
//! - anything else passes through untouched, notably Helm/helmfile `{{ … }}` and Flux `${VAR}`;
//! - an undefined variable is an error (the model hands optional keys over as explicit nulls, so
//!   `#% if x %#` still works).

use std::net::Ipv4Addr;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::inputs::Inputs;

/// Whether the template being rendered produces a `*.sops.*` output: only those may ask for key
/// material. Set by the caller before each render (renders are sequential).
#[derive(Clone, Default)]
pub struct SecretScope(Arc<AtomicBool>);

impl SecretScope {
    pub fn set(&self, secret_output: bool) {
        self.0.store(secret_output, Ordering::SeqCst);
    }

    fn check(&self, what: &str) -> Result<(), Error> {
        if self.0.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "{what} is only available to templates of `*.sops.*` outputs: this output is written unencrypted, so the secret would reach the disk and git in plaintext"
                ),
            ))
        }
    }
}

/// Builds the environment. Templates are added by the caller. Functions that return key
/// material fail unless `scope` says a `*.sops.*` output is being rendered.
pub fn environment(inputs: &Inputs, scope: &SecretScope) -> Environment<'static> {
    let mut env = Environment::new();
    let syntax = SyntaxConfig::builder()
        .block_delimiters("#%", "%#")
        .variable_delimiters("#{", "}#")
        .comment_delimiters("#|", "|#")
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .expect("the delimiters are distinct constants");
    env.set_syntax(syntax);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // `.split()`, `.startswith()` … as makejinja's Python templates use them.
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("nthhost", nthhost);
    env.add_filter("basename", basename);
    env.add_filter("yaml", yaml_scalar);
    env.add_filter("b64encode", b64encode);
    env.add_filter("indent_block", indent_block);

    let files = inputs.clone();
    let sc = scope.clone();
    env.add_function(
        "age_key",
        move |kind: &str, kwargs: Kwargs| -> Result<String, Error> {
            kwargs.assert_all_used()?;
            match kind {
                "public" => files
                    .age_public_key
                    .clone()
                    .ok_or_else(|| missing("age public key", "age.key")),
                "private" => sc.check("age_key('private')").and_then(|()| {
                    files
                        .age_private_key
                        .clone()
                        .ok_or_else(|| missing("age private key", "age.key"))
                }),
                other => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("age_key() takes 'public' or 'private', not '{other}'"),
                )),
            }
        },
    );
    let files = inputs.clone();
    env.add_function("cloudflare_tunnel_id", move || -> Result<String, Error> {
        files
            .cloudflare_tunnel
            .as_ref()
            .map(|t| t.tunnel_id.clone())
            .ok_or_else(|| missing("Cloudflare tunnel credentials", TUNNEL_FILE))
    });
    let files = inputs.clone();
    let sc = scope.clone();
    env.add_function(
        "cloudflare_tunnel_secret",
        move || -> Result<String, Error> {
            sc.check("cloudflare_tunnel_secret()")?;
            files
                .cloudflare_tunnel
                .as_ref()
                .map(|t| t.token())
                .ok_or_else(|| missing("Cloudflare tunnel credentials", TUNNEL_FILE))
        },
    );
    let files = inputs.clone();
    let sc = scope.clone();
    env.add_function("github_deploy_key", move || -> Result<String, Error> {
        sc.check("github_deploy_key()")?;
        files
            .deploy_key
            .clone()
            .ok_or_else(|| missing("GitHub deploy key", "github-deploy.key"))
    });
    let files = inputs.clone();
    let sc = scope.clone();
    env.add_function("github_push_token", move || -> Result<String, Error> {
        sc.check("github_push_token()")?;
        files
            .push_token
            .clone()
            .ok_or_else(|| missing("GitHub push token", "github-push-token.txt"))
    });
    let files = inputs.clone();
    let sc = scope.clone();
    env.add_function(
        "derived_secret",
        move |purpose: &str| -> Result<String, Error> {
            sc.check("derived_secret()")?;
            files
                .age_private_key
                .as_deref()
                .map(|key| crate::derive::derived_secret(key, purpose))
                .ok_or_else(|| missing("age private key", "age.key"))
        },
    );
    let patches = inputs.talos_patches.clone();
    env.add_function("talos_patches", move |dir: &str| -> Value {
        Value::from(minijinja::value::Serde(
            patches.get(dir).cloned().unwrap_or_default(),
        ))
    });
    env
}

fn missing(what: &str, file: &str) -> Error {
    let fix = if file == TUNNEL_FILE {
        "create it with `cloudflared tunnel login` and then `cloudflared tunnel create --credentials-file cloudflare-tunnel.json kubernetes` next to cluster.yaml (`cargo xtask init` cannot create it)"
    } else {
        "run `cargo xtask init` to create it"
    };
    Error::new(
        ErrorKind::InvalidOperation,
        format!("the {what} ({file}) is needed by this template but was not found; {fix}"),
    )
}

const TUNNEL_FILE: &str = "cloudflare-tunnel.json";

/// `cidr | nthhost(n)`: the `n`th address of the network, or `false` when out of range or invalid
/// (as cluster-template's plugin does).
fn nthhost(cidr: &str, n: u32) -> Value {
    match schema::Cidr::parse(cidr) {
        Ok(c) => c
            .nth(n)
            .map(|ip: Ipv4Addr| Value::from(ip.to_string()))
            .unwrap_or(Value::from(false)),
        Err(_) => Value::from(false),
    }
}

/// `path | basename`: the file name without its last extension (`x.yaml.j2` → `x.yaml`).
fn basename(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(i) if i > 0 => name[..i].to_owned(),
        _ => name.to_owned(),
    }
}

/// `value | yaml`: a YAML flow scalar (or flow collection) that parses back to exactly `value`,
/// whatever it contains — quotes, newlines, `#`, `: `, `{{`, `${`, unicode. Every user-supplied
/// string in a template goes through this filter.
///
/// Strings become double-quoted scalars. Everything YAML does not allow raw inside double quotes
/// is escaped: `"` and `\`, C0 controls, DEL, C1 controls, and the non-characters U+FFFE/U+FFFF.
/// NEL, U+2028, U+2029 (line breaks to YAML 1.1 parsers such as go-yaml v2) and the BOM are
/// escaped too, so every YAML parser reads the same string. Sequences and mappings become flow
/// collections of the same, numbers and booleans their plain form, none `null`.
pub fn yaml_scalar(value: Value) -> Result<String, Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "yaml filter applied to an undefined value",
        ));
    }
    let json: serde_json::Value = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write_yaml_flow(&json, &mut out);
    Ok(out)
}

fn write_yaml_flow(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value as J;
    match value {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // JSON numbers (integers, `1.5`, `1e+30`) are YAML 1.2 core-schema numbers.
        J::Number(n) => out.push_str(&n.to_string()),
        J::String(s) => write_yaml_string(s, out),
        J::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_yaml_flow(item, out);
            }
            out.push(']');
        }
        J::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_yaml_string(k, out);
                out.push_str(": ");
                write_yaml_flow(v, out);
            }
            out.push('}');
        }
    }
}

/// A double-quoted YAML scalar holding exactly `s`.
pub(crate) fn write_yaml_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}' => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `value | b64encode`: standard base64 of the UTF-8 bytes.
pub(crate) fn b64(value: &str) -> String {
    b64encode(value)
}

fn b64encode(value: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `text | indent_block(n)`: indents every line but the first by `n` spaces, for multi-line
/// values placed in YAML block scalars (`key: |` then the value on the next lines).
fn indent_block(text: &str, width: usize) -> String {
    let pad = " ".repeat(width);
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, ctx: serde_json::Value) -> Result<String, Error> {
        let env = environment(&Inputs::default(), &SecretScope::default());
        env.render_str(src, Value::from(minijinja::value::Serde(&ctx)))
    }

    #[test]
    fn makejinja_syntax_and_whitespace() {
        let src = "a:\n  #% if on %#\n  b: #{ x }#\n  #% endif %#\n#| a comment |#\nc: {{ .Release.Name }} ${SECRET_DOMAIN}\n";
        let out = render(src, serde_json::json!({"on": true, "x": 1})).unwrap();
        assert_eq!(out, "a:\n  b: 1\nc: {{ .Release.Name }} ${SECRET_DOMAIN}\n");
    }

    #[test]
    fn undefined_variables_are_errors() {
        let err = render("#{ missing }#", serde_json::json!({})).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UndefinedError);
        // Explicit nulls are fine and falsy.
        assert_eq!(
            render("#% if x %#y#% endif %#n", serde_json::json!({"x": null})).unwrap(),
            "n"
        );
    }

    #[test]
    fn python_string_methods() {
        let out = render(
            "#{ 'a/b'.split('/')[1] }# #{ 'abc'.startswith('a') }#",
            serde_json::json!({}),
        )
        .unwrap();
        // Booleans print Python-style; templates write them through `| yaml` to get `true`.
        assert_eq!(out, "b True");
        assert_eq!(
            render("#{ x | yaml }#", serde_json::json!({"x": true})).unwrap(),
            "true"
        );
    }

    #[test]
    fn filters() {
        assert_eq!(nthhost("10.43.0.0/16", 10).to_string(), "10.43.0.10");
        assert!(!nthhost("10.0.0.0/30", 9).is_true());
        assert!(!nthhost("nonsense", 1).is_true());
        assert_eq!(basename("a/x.yaml.j2"), "x.yaml");
        assert_eq!(b64encode(""), "");
        assert_eq!(b64encode("f"), "Zg==");
        assert_eq!(b64encode("foob"), "Zm9vYg==");
        assert_eq!(b64encode("foobar"), "Zm9vYmFy");
        assert_eq!(
            yaml_scalar(Value::from("a: b # c\n\"d\"")).unwrap(),
            r#""a: b # c\n\"d\"""#
        );
        assert_eq!(yaml_scalar(Value::from(5)).unwrap(), "5");
        assert_eq!(indent_block("a\nb\n\nc", 2), "a\n  b\n\n  c");
    }

    fn parse(text: &str) -> Vec<serde_json::Value> {
        let loaded = schema::yaml::load(
            text,
            std::path::Path::new("t.yaml"),
            schema::yaml::Limits::MANIFESTS,
        );
        assert!(
            loaded.diagnostics.is_empty(),
            "does not parse: {text:?}: {:?}",
            loaded.diagnostics
        );
        loaded.documents.iter().map(|d| d.to_json()).collect()
    }

    /// Strings no YAML scalar may hold raw, or that a plain scalar would misread.
    const HOSTILE: &[&str] = &[
        "",
        " ",
        "a: b",
        "a #b",
        "#",
        "- x",
        "? x",
        "[a]",
        "{a: b}",
        "&a",
        "*a",
        "!tag",
        "|",
        ">",
        "'",
        "\"",
        "\\",
        "\\n",
        "{{ .Values.x }}",
        "${VAR}",
        "${VAR/./-}",
        "#{ x }#",
        "#% if %#",
        "true",
        "no",
        "null",
        "~",
        "0x1f",
        "1e3",
        "0777",
        "1_000",
        ".inf",
        "---",
        "...",
        "%YAML 1.2",
        "line1\nline2",
        "\r\n",
        "\t",
        "trailing ",
        " leading",
        "\u{0}",
        "\u{7}",
        "\u{1b}[31m",
        "\u{7f}",
        "\u{85}",
        "\u{9f}",
        "\u{a0}",
        "\u{2028}",
        "\u{2029}",
        "\u{feff}",
        "\u{fffe}",
        "\u{ffff}",
        "\u{10ffff}",
        "émoji 🦀",
        "ﬁ",
        "ℌ",
        "\u{202e}rtl",
        "@x",
        "`x`",
        "%x",
        "a,b",
        "a]",
        "a}",
    ];

    #[test]
    fn yaml_filter_round_trips_hostile_strings_in_every_position() {
        for s in HOSTILE {
            let ctx = serde_json::json!({ "v": s, "l": [s, s], "m": { *s: s } });
            let src = "k: #{ v | yaml }#\nlist:\n  - #{ v | yaml }#\n#{ v | yaml }#: 1\nflow: #{ l | yaml }#\nmap: #{ m | yaml }#\n";
            let out = render(src, ctx).unwrap();
            let docs = parse(&out);
            let doc = &docs[0];
            assert_eq!(doc["k"], serde_json::json!(s), "{out}");
            assert_eq!(doc["list"][0], serde_json::json!(s), "{out}");
            assert_eq!(doc[*s], serde_json::json!(1), "{out}");
            assert_eq!(doc["flow"], serde_json::json!([s, s]), "{out}");
            assert_eq!(doc["map"][*s], serde_json::json!(s), "{out}");
        }
    }

    #[test]
    fn yaml_filter_keeps_other_types() {
        let ctx =
            serde_json::json!({"i": 42, "f": 1.5, "b": false, "n": null, "big": 4294967295u64});
        let out = render(
            "[#{ i | yaml }#, #{ f | yaml }#, #{ b | yaml }#, #{ n | yaml }#, #{ big | yaml }#]",
            ctx,
        )
        .unwrap();
        assert_eq!(out, "[42, 1.5, false, null, 4294967295]");
        assert_eq!(
            parse(&out)[0],
            serde_json::json!([42, 1.5, false, null, 4294967295u64])
        );
        assert!(render("#{ nope | yaml }#", serde_json::json!({})).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn yaml_quote_round_trips_any_string(s in "\\PC*|.*|[\\x00-\\x{ff}]*|[#:{}$ '\"\\\\\n-]*") {
            let out = render("k: #{ v | yaml }#\n", serde_json::json!({ "v": s })).unwrap();
            let docs = parse(&out);
            proptest::prop_assert_eq!(&docs[0]["k"], &serde_json::json!(s));
        }
    }
}
