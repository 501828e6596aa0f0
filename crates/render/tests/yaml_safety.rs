//! Every user-supplied string survives the real templates unchanged.
//!
//! Hostile values (quotes, newlines, `#`, `: `, `{{`, `${`, YAML keywords, control characters,
//! unicode line separators, …) go into every free-form field of the configuration, and into
//! pattern-checked fields with every hostile character their pattern allows. The real templates
//! render them; every rendered YAML document (secrets included, as plaintext before sealing)
//! must parse, and every place the value was put must hold it exactly.
//!
//! "Where it was put" is found by a differential render: the configuration is first rendered
//! with a unique marker in each field, every scalar (or mapping key, or base64 `data` value)
//! holding a marker is recorded, and in the hostile render the same place must hold the same
//! text with each marker replaced by its hostile value. The test covers whatever templates exist
//! and grows stronger as they land; it prints which fields reached which files.
//!
//! `a_template_without_the_yaml_filter_is_caught` proves the check can fail: an override that
//! drops `| yaml` on a user string is rejected.

#![allow(clippy::print_stderr)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// Where a user string goes, and which characters its schema pattern lets through.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A non-blank string that reaches the cluster only encrypted: anything goes.
    Any,
    /// A non-blank string in plain manifests: anything but the characters kustomize cannot
    /// carry, which the schema refuses (`schema::unsafe_char`).
    Text,
    /// `user@realm!token` (`^[^@\s]+@[^!\s]+![^\s]+$`).
    TokenId,
    /// `https://<host>/api2/json` with `[^/\s]+` as host.
    ProxmoxUrl,
    /// An absolute URL path, `^/[^\s]*$`.
    UrlPath,
    /// `^[A-Za-z0-9][A-Za-z0-9._:/-]*$`, distinct within a deployment.
    ModelName,
    /// `^[A-Za-z0-9._~+/=-]{16,}$`.
    ClientKey,
    /// A regular expression matching the hostile text literally.
    Regex,
    /// A disk given as a device path: `/dev/` then anything (templates tell device paths from
    /// serial numbers by the leading `/`).
    DevicePath,
    /// A disk serial number: anything not starting with `/`.
    Serial,
}

/// Every user-controlled string field that can carry hostile characters, as a JSON pointer
/// into `cluster.yaml` (or `nodes.yaml` for `/nodes/…`). Names, hosts, domains and addresses are
/// patterns of plain letters, digits and `-`/`.`, so nothing hostile can reach them.
const FIELDS: &[(&str, Kind)] = &[
    ("/cloudflare_token", Kind::Any),
    ("/repository_branch", Kind::Text),
    ("/proxmox_api_url", Kind::ProxmoxUrl),
    ("/proxmox_region", Kind::Text),
    ("/proxmox_storage", Kind::Text),
    ("/proxmox_csi_token_id", Kind::TokenId),
    ("/proxmox_csi_token_secret", Kind::Any),
    ("/proxmox_ccm_token_id", Kind::TokenId),
    ("/proxmox_ccm_token_secret", Kind::Any),
    ("/ai_gateway_azure_deployments/0/api_key", Kind::Any),
    ("/ai_gateway_azure_deployments/0/models/0", Kind::ModelName),
    ("/ai_gateway_azure_deployments/1/api_key", Kind::Any),
    ("/ai_gateway_azure_deployments/1/models/0", Kind::ModelName),
    ("/ai_gateway_mcp_servers/0/api_key", Kind::Any),
    ("/ai_gateway_mcp_servers/0/path", Kind::UrlPath),
    ("/ai_gateway_mcp_servers/0/tool_filter/0", Kind::Regex),
    ("/ai_gateway_client_keys/0/key", Kind::ClientKey),
    ("/ai_gateway_client_keys/1/key", Kind::ClientKey),
    ("/nodes/0/disk", Kind::DevicePath),
    ("/nodes/1/disk", Kind::Serial),
    ("/nodes/1/kernel_modules/0", Kind::Text),
];

/// A benign value unique to field `i`, valid for its kind, in mixed case so that a template
/// transforming it (`| lower`) does not count as carrying it.
fn marker(i: usize, kind: Kind) -> String {
    let stem = format!("Qz{i:02}Mk");
    match kind {
        Kind::Any | Kind::Text | Kind::ModelName | Kind::Regex | Kind::Serial => {
            format!("{stem}Val")
        }
        Kind::DevicePath => format!("/dev/{stem}Val"),
        Kind::TokenId => format!("{stem}User@Realm!Tok"),
        Kind::ProxmoxUrl => format!("https://{stem}Host/api2/json"),
        Kind::UrlPath => format!("/{stem}Path"),
        Kind::ClientKey => format!("{stem}KeyAbcdefghij"),
    }
}

/// Strings that break naive YAML or templating.
const NASTY: &[&str] = &[
    "a: b",
    "a #b",
    "#",
    "- x",
    "? x",
    "[a]",
    "{a: b}",
    "&anchor",
    "*alias",
    "!tag",
    "|",
    ">-",
    "'",
    "\"",
    "\\",
    "\\n",
    "{{ .Values.x }}",
    "${SECRET_DOMAIN}",
    "${VAR/./-}",
    "#{ x }#",
    "#% if x %#",
    "#| c |#",
    "true",
    "no",
    "null",
    "~",
    "0x1f",
    "1e3",
    "0777",
    ".inf",
    "---",
    "...",
    "%YAML 1.2",
    "line1\nline2",
    "cr\r\nlf",
    "tab\there",
    "trailing ",
    " leading",
    "nul\u{0}byte",
    "bell\u{7}",
    "\u{1b}[31mred",
    "del\u{7f}",
    "nel\u{85}",
    "c1\u{9f}",
    "nbsp\u{a0}",
    "ls\u{2028}ps\u{2029}",
    "bom\u{feff}",
    "nonchar\u{fffe}\u{ffff}",
    "🦀 émoji",
    "\u{202e}rtl",
    "@x",
    "`x`",
    "%x",
    "a,b",
    "a]",
    "a}",
    "key: [1, {2: 3}]",
    "\"quoted\": 'mixed'",
];

fn hostile_any() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        proptest::sample::select(NASTY).prop_map(str::to_owned),
        "\\PC{1,12}",
        "[\\x00-\\x{ff}]{1,8}",
        "[ #:{}$'\"\\\\\\n\\t|>&*!%@`,\\[\\]?-]{1,8}",
        "[\\x{2028}\\x{2029}\\x{85}\\x{feff}\\x{fffe}\\x{ffff}\\x{10ffff}a]{1,4}",
    ];
    proptest::collection::vec(piece, 1..4)
        .prop_map(|parts| parts.concat())
        .prop_filter("the schema rejects blank values", |s| !s.trim().is_empty())
}

/// Hostile text without the characters in `banned` or any whitespace.
fn hostile_word(banned: &'static [char]) -> impl Strategy<Value = String> {
    hostile_any()
        .prop_map(move |s| {
            s.chars()
                .filter(|c| !c.is_whitespace() && !banned.contains(c) && !schema_unportable(*c))
                .collect::<String>()
        })
        .prop_map(no_flux_variables)
        .prop_filter("empty after filtering", |s| !s.is_empty())
}

/// `s` without what the schema refuses outside secrets: unportable characters, and `${`
/// (Flux would substitute it on the cluster).
fn portable(s: &str) -> String {
    no_flux_variables(s.chars().filter(|c| !schema_unportable(*c)).collect())
}

fn no_flux_variables(mut s: String) -> String {
    while s.contains("${") {
        s = s.replace("${", "$");
    }
    s
}

fn schema_unportable(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
}

fn hostile_for(kind: Kind, i: usize) -> BoxedStrategy<String> {
    match kind {
        Kind::Any => hostile_any().boxed(),
        Kind::Text => hostile_any()
            .prop_map(|s| portable(&s))
            .prop_filter("blank once portable", |s| !s.trim().is_empty())
            .boxed(),
        Kind::TokenId => (
            hostile_word(&['@']),
            hostile_word(&['!']),
            hostile_word(&[]),
        )
            .prop_map(|(u, r, t)| format!("{u}@{r}!{t}"))
            .boxed(),
        Kind::ProxmoxUrl => hostile_word(&['/'])
            .prop_map(|h| format!("https://{h}/api2/json"))
            .boxed(),
        Kind::UrlPath => hostile_word(&[]).prop_map(|p| format!("/{p}")).boxed(),
        Kind::ModelName => prop_oneof![
            proptest::sample::select(
                &[
                    "true",
                    "null",
                    "1e3",
                    "0x1f",
                    "0o17",
                    "1:30",
                    "a:b",
                    "a/b-c.d_e",
                    "No",
                    "NULL",
                    "2024-01-01"
                ][..]
            )
            .prop_map(str::to_owned),
            "[A-Za-z0-9][A-Za-z0-9._:/-]{0,15}",
        ]
        // The two deployments must not end up serving the same model: that changes routing
        // (a failover policy appears), not quoting. The first keeps bare keywords like `true`.
        .prop_map(move |m| {
            if i == field_index("/ai_gateway_azure_deployments/0/models/0") {
                m
            } else {
                format!("{m}-{i}")
            }
        })
        .boxed(),
        Kind::ClientKey => prop_oneof![
            proptest::sample::select(
                &[
                    "1234567890123456",
                    "0x11111111111111",
                    "true============",
                    "~~~~~~~~~~~~~~~~",
                    "----------------",
                    "=/=/=/=/=/=/=/=/"
                ][..]
            )
            .prop_map(str::to_owned),
            "[A-Za-z0-9._~+/=-]{16,24}",
        ]
        // Client keys must differ from each other.
        .prop_map(move |k| format!("{k}{i}"))
        .boxed(),
        Kind::Regex => hostile_any()
            .prop_map(|s| regex_escape(&format!("x{}", portable(&s))))
            .boxed(),
        Kind::DevicePath => hostile_any()
            .prop_map(|s| format!("/dev/{}", portable(&s)))
            .boxed(),
        Kind::Serial => hostile_any()
            .prop_map(|s| {
                let s = portable(&s);
                if s.starts_with('/') || s.trim().is_empty() {
                    format!("x{s}")
                } else {
                    s
                }
            })
            .boxed(),
    }
}

/// Escapes the regex meta characters so the pattern matches `s` literally (and is valid).
fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn repo_file_json(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(common::repo_root().join(path)).unwrap();
    let loaded = schema::yaml::load(&text, Path::new(path), schema::yaml::Limits::CONFIG);
    loaded.documents[0].to_json()
}

/// The public test configuration with two client keys added and `values` placed.
fn configuration(values: &[String]) -> (serde_json::Value, serde_json::Value) {
    let mut cluster = repo_file_json(".github/tests/public.yaml");
    let mut nodes = repo_file_json(".github/tests/nodes.yaml");
    cluster["ai_gateway_client_keys"] = serde_json::json!([
        {"name": "alice", "key": "placeholder-placeholder"},
        {"name": "bob", "key": "placeholder-placeholder"},
    ]);
    for ((pointer, _), value) in FIELDS.iter().zip(values) {
        let doc = if pointer.starts_with("/nodes/") {
            &mut nodes
        } else {
            &mut cluster
        };
        *doc.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer} missing from the test configuration")) =
            serde_json::Value::String(value.clone());
    }
    (cluster, nodes)
}

/// YAML flow text of a JSON value, strings quoted by the function under test's twin.
fn to_yaml(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => render::yaml_quote(s),
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(to_yaml).collect::<Vec<_>>().join(", ")
            )
        }
        serde_json::Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", render::yaml_quote(k), to_yaml(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Loads the configuration through the real schema and renders `templates_root`. The values
/// must reach the model unchanged (a check of the way in, not of the templates).
fn render_config(templates_root: &Path, values: &[String]) -> Result<render::Rendered, String> {
    let (cluster, nodes) = configuration(values);
    let out = schema::load_str(
        &to_yaml(&cluster),
        Path::new("cluster.yaml"),
        &to_yaml(&nodes),
        Path::new("nodes.yaml"),
    );
    let Some(config) = out.config else {
        panic!(
            "the generated configuration is invalid (a generator bug):\n{}",
            out.diagnostics
                .iter()
                .map(|d| d.render(None))
                .collect::<String>()
        );
    };
    let context = config.context();
    for ((pointer, _), value) in FIELDS.iter().zip(values) {
        assert_eq!(
            context.pointer(pointer).and_then(|v| v.as_str()),
            Some(value.as_str()),
            "{pointer} did not reach the model unchanged"
        );
    }
    render::render_templates(templates_root, &context, &common::fake_inputs()).map_err(|diags| {
        format!(
            "rendering failed:\n{}",
            diags.iter().map(|d| d.render(None)).collect::<String>()
        )
    })
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Key(String),
    Index(usize),
    /// The string here is itself a YAML document (a config file inside a Secret, a Talos patch
    /// in talconfig): the path continues inside it.
    Embedded,
}

/// A place in a rendered document that holds a marker.
#[derive(Clone, Debug)]
struct Place {
    file: String,
    doc: usize,
    path: Vec<Seg>,
    /// The marker is in the mapping key at the end of `path`, not in its value.
    in_key: bool,
    /// The value is base64 of the text (a Secret's `data`).
    base64: bool,
    /// The baseline text there.
    text: String,
}

/// Every YAML document of every rendered `.yaml`/`.yml` file; an error names the file that does
/// not parse and shows it.
fn parse_all(r: &render::Rendered) -> Result<BTreeMap<String, Vec<serde_json::Value>>, String> {
    let mut out = BTreeMap::new();
    for (path, file) in &r.files {
        if !(path.ends_with(".yaml") || path.ends_with(".yml")) {
            continue;
        }
        let text =
            String::from_utf8(file.contents.clone()).map_err(|_| format!("{path} is not UTF-8"))?;
        let loaded = schema::yaml::load(&text, Path::new(path), schema::yaml::Limits::MANIFESTS);
        if !loaded.diagnostics.is_empty() {
            return Err(format!(
                "{path} (from {}) does not parse:\n{}\n--- rendered ---\n{text}",
                file.source.display(),
                loaded
                    .diagnostics
                    .iter()
                    .map(|d| d.render(Some(&text)))
                    .collect::<String>()
            ));
        }
        out.insert(
            path.clone(),
            loaded.documents.iter().map(|d| d.to_json()).collect(),
        );
    }
    Ok(out)
}

fn find_places(docs: &BTreeMap<String, Vec<serde_json::Value>>, markers: &[String]) -> Vec<Place> {
    fn walk(
        v: &serde_json::Value,
        path: &mut Vec<Seg>,
        at: &(String, usize),
        markers: &[String],
        out: &mut Vec<Place>,
    ) {
        let record =
            |out: &mut Vec<Place>, text: &str, in_key: bool, base64: bool, path: &[Seg]| {
                if markers.iter().any(|m| text.contains(m.as_str())) {
                    out.push(Place {
                        file: at.0.clone(),
                        doc: at.1,
                        path: path.to_vec(),
                        in_key,
                        base64,
                        text: text.to_owned(),
                    });
                }
            };
        match v {
            serde_json::Value::String(s) => {
                if markers.iter().any(|m| s.contains(m.as_str()))
                    && let Some(inner) = embedded_document(s)
                {
                    path.push(Seg::Embedded);
                    walk(&inner, path, at, markers, out);
                    path.pop();
                    return;
                }
                record(out, s, false, false, path);
                // Short strings decode by accident too often to be worth following.
                if let Some(decoded) = base64_decode(s).filter(|_| s.len() >= 12) {
                    record(out, &decoded, false, true, path);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    walk(item, path, at, markers, out);
                    path.pop();
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    path.push(Seg::Key(k.clone()));
                    record(out, k, true, false, path);
                    walk(item, path, at, markers, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (file, list) in docs {
        for (i, doc) in list.iter().enumerate() {
            walk(doc, &mut Vec::new(), &(file.clone(), i), markers, &mut out);
        }
    }
    out
}

/// A multi-line string that is a YAML mapping or sequence, as JSON.
fn embedded_document(s: &str) -> Option<serde_json::Value> {
    if !s.contains('\n') {
        return None;
    }
    let loaded = schema::yaml::load(s, Path::new("embedded"), schema::yaml::Limits::MANIFESTS);
    match (loaded.diagnostics.is_empty(), loaded.documents.as_slice()) {
        (true, [doc]) => {
            let json = doc.to_json();
            (json.is_object() || json.is_array()).then_some(json)
        }
        _ => None,
    }
}

/// Standard base64 with padding, decoding to UTF-8; `None` for anything else.
fn base64_decode(s: &str) -> Option<String> {
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { val(c)? };
            n = (n << 6) | v;
        }
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..3 - pad]);
    }
    String::from_utf8(out).ok()
}

fn substitute(text: &str, markers: &[String], values: &[String]) -> String {
    let mut out = text.to_owned();
    for (m, v) in markers.iter().zip(values) {
        out = out.replace(m.as_str(), v);
    }
    out
}

/// What the baseline render says about where each field goes.
struct Baseline {
    markers: Vec<String>,
    places: Vec<Place>,
    files: BTreeSet<String>,
}

fn baseline(templates_root: &Path) -> Baseline {
    let markers: Vec<String> = FIELDS
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| marker(i, *kind))
        .collect();
    let rendered = render_config(templates_root, &markers).unwrap();
    let docs = parse_all(&rendered).unwrap();
    let places = find_places(&docs, &markers);
    Baseline {
        markers,
        places,
        files: rendered.files.keys().cloned().collect(),
    }
}

/// Renders `values` and checks every document parses and every place holds its value.
fn check(templates_root: &Path, base: &Baseline, values: &[String]) -> Result<(), String> {
    let rendered = render_config(templates_root, values)?;
    let files: BTreeSet<String> = rendered.files.keys().cloned().collect();
    if files != base.files {
        return Err(format!(
            "hostile values changed the set of rendered files: {:?}",
            files.symmetric_difference(&base.files).collect::<Vec<_>>()
        ));
    }
    let docs = parse_all(&rendered)?;
    for place in &base.places {
        let expected = substitute(&place.text, &base.markers, values);
        let doc = docs
            .get(&place.file)
            .and_then(|d| d.get(place.doc))
            .ok_or_else(|| format!("{}: document {} vanished", place.file, place.doc))?;
        // Keys along the path carry the hostile values too; embedded documents are parsed.
        let (last, parents) = place
            .path
            .split_last()
            .map_or((None, &[][..]), |(l, p)| (Some(l), p));
        let mut node: serde_json::Value = doc.clone();
        for seg in parents {
            let next = if *seg == Seg::Embedded {
                let text = node.as_str().unwrap_or_default();
                let loaded = schema::yaml::load(
                    text,
                    Path::new("embedded"),
                    schema::yaml::Limits::MANIFESTS,
                );
                if !loaded.diagnostics.is_empty() || loaded.documents.len() != 1 {
                    return Err(format!(
                        "{}: the YAML document embedded at {:?} does not parse:\n{text}",
                        place.file, place.path
                    ));
                }
                Some(loaded.documents[0].to_json())
            } else {
                lookup(&node, seg, &base.markers, values).cloned()
            };
            node = next.ok_or_else(|| {
                format!(
                    "{}: path {:?} is gone in the hostile render",
                    place.file, place.path
                )
            })?;
        }
        let node = &node;
        let lookup = |node, seg| lookup(node, seg, &base.markers, values);
        let got = if place.in_key {
            let keys: Vec<&String> = node
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            if keys.iter().any(|k| **k == expected) {
                continue;
            }
            format!("keys {keys:?}")
        } else {
            let value = match last {
                Some(seg) => lookup(node, seg),
                None => Some(node),
            };
            match value {
                Some(serde_json::Value::String(s)) if place.base64 => {
                    base64_decode(s).unwrap_or_else(|| format!("(not base64) {s:?}"))
                }
                Some(serde_json::Value::String(s)) => s.clone(),
                other => format!("{other:?}"),
            }
        };
        if got != expected {
            return Err(format!(
                "{} (document {}, at {:?}): expected {expected:?}, found {got}",
                place.file, place.doc, place.path
            ));
        }
    }
    Ok(())
}

fn lookup<'a>(
    node: &'a serde_json::Value,
    seg: &Seg,
    markers: &[String],
    values: &[String],
) -> Option<&'a serde_json::Value> {
    match seg {
        Seg::Index(i) => node.get(*i),
        Seg::Key(k) => node.get(substitute(k, markers, values)),
        Seg::Embedded => None,
    }
}

fn field_index(pointer: &str) -> usize {
    FIELDS.iter().position(|(p, _)| *p == pointer).unwrap()
}

fn coverage(base: &Baseline) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for place in &base.places {
        for (i, m) in base.markers.iter().enumerate() {
            if place.text.contains(m.as_str()) {
                out.entry(FIELDS[i].0)
                    .or_default()
                    .insert(place.file.clone());
            }
        }
    }
    out
}

fn real_templates() -> std::path::PathBuf {
    common::repo_root().join("templates")
}

#[test]
fn hostile_values_survive_the_real_templates() {
    let root = real_templates();
    let base = baseline(&root);
    let cov = coverage(&base);
    eprintln!(
        "{} rendered files; {} of {} user string fields reach them:",
        base.files.len(),
        cov.len(),
        FIELDS.len()
    );
    for (field, files) in &cov {
        eprintln!(
            "  {field}: {}",
            files.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let strategies: Vec<BoxedStrategy<String>> = FIELDS
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| hostile_for(*kind, i))
        .collect();
    // 256 cases × every field at once: thousands of hostile values through the real templates.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&strategies, |values| {
        check(&root, &base, &values).map_err(TestCaseError::fail)
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[test]
fn every_nasty_string_in_every_field() {
    let root = real_templates();
    let base = baseline(&root);
    for nasty in NASTY.iter().filter(|s| !s.trim().is_empty()) {
        let values: Vec<String> = FIELDS
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| fit(nasty, *kind, i))
            .collect();
        if let Err(err) = check(&root, &base, &values) {
            panic!("with {nasty:?}: {err}");
        }
    }
}

/// `nasty` bent to fit a field's pattern.
fn fit(nasty: &str, kind: Kind, i: usize) -> String {
    let word = |banned: &[char]| -> String {
        let w: String = nasty
            .chars()
            .filter(|c| !c.is_whitespace() && !banned.contains(c) && !schema_unportable(*c))
            .collect();
        let w = no_flux_variables(w);
        if w.is_empty() { "x".to_owned() } else { w }
    };
    match kind {
        Kind::Any => nasty.to_owned(),
        Kind::Text if portable(nasty).trim().is_empty() => format!("x{}", portable(nasty)),
        Kind::Text => portable(nasty),
        Kind::TokenId => format!("{}@{}!{}", word(&['@']), word(&['!']), word(&[])),
        Kind::ProxmoxUrl => format!("https://{}/api2/json", word(&['/'])),
        Kind::UrlPath => format!("/{}", word(&[])),
        Kind::ModelName | Kind::ClientKey => marker(i, kind),
        Kind::Regex => regex_escape(&format!("x{}", portable(nasty))),
        Kind::DevicePath => format!("/dev/{}", portable(nasty)),
        Kind::Serial if portable(nasty).trim().is_empty() || nasty.starts_with('/') => {
            format!("x{}", portable(nasty))
        }
        Kind::Serial => portable(nasty),
    }
}

/// A template that prints a user string without `| yaml` must fail the check — otherwise the
/// tests above would prove nothing.
#[test]
fn a_template_without_the_yaml_filter_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&real_templates().join("config"), &dir.path().join("config"));
    // A `*.sops.*` output: only those may use secret values (a plain one may not, see
    // crates/render/src/walk.rs).
    let probe = dir
        .path()
        .join("overrides/kubernetes/zz-probe.sops.yaml.j2");
    std::fs::create_dir_all(probe.parent().unwrap()).unwrap();

    // With the filter: the probe is found and passes.
    std::fs::write(
        &probe,
        "token: #{ cloudflare_token | yaml }#\nlist:\n  - #{ nodes[0].disk | yaml }#\n\
         data:\n  secret: #{ proxmox_csi_token_secret | b64encode | yaml }#\n\
         #{ ai_gateway_mcp_servers[0].api_key | yaml }#: key\n\
         url: #{ ('https://' ~ proxmox_region ~ '/x') | yaml }#\n",
    )
    .unwrap();
    let base = baseline(dir.path());
    let cov = coverage(&base);
    for field in [
        "/cloudflare_token",
        "/nodes/0/disk",
        "/proxmox_csi_token_secret",
        "/ai_gateway_mcp_servers/0/api_key",
        "/proxmox_region",
    ] {
        assert!(
            cov[field].contains("kubernetes/zz-probe.sops.yaml"),
            "{field} not found"
        );
    }
    let mut values = base.markers.clone();
    for nasty in [
        "a: b",
        "x # y",
        "'q",
        "true",
        " lead",
        "{{ x }}",
        "l1\nl2",
        "\u{2028}x",
    ] {
        for field in [
            "/cloudflare_token",
            "/nodes/0/disk",
            "/proxmox_csi_token_secret",
            "/ai_gateway_mcp_servers/0/api_key",
            "/proxmox_region",
        ] {
            let i = field_index(field);
            values[i] = fit(nasty, FIELDS[i].1, i);
        }
        check(dir.path(), &base, &values).unwrap_or_else(|e| panic!("{nasty:?}: {e}"));
    }

    // Without it: every one of these values is caught, as a parse error or a changed value.
    std::fs::write(
        &probe,
        "token: #{ cloudflare_token }#\nlist:\n  - #{ nodes[0].disk | yaml }#\n",
    )
    .unwrap();
    let base = baseline(dir.path());
    let mut values = base.markers.clone();
    for nasty in [
        "a: b", "x # y", "'q", "true", " lead", "{{ x }}", "l1\nl2", "[1]",
    ] {
        values[field_index("/cloudflare_token")] = nasty.to_owned();
        assert!(
            check(dir.path(), &base, &values).is_err(),
            "{nasty:?} got through a template without `| yaml`"
        );
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let Ok(entries) = std::fs::read_dir(from) else {
        return;
    };
    for e in entries.flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// The values the oracle tests push through: every nasty string and 500 generated ones.
fn oracle_values() -> Vec<String> {
    let mut values: Vec<String> = NASTY.iter().map(|s| (*s).to_owned()).collect();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = hostile_any();
    for _ in 0..500 {
        values.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    values
}

/// `k<i>: <value | yaml>` lines, as a template would write them.
fn quoted_lines(values: &[String], indent: &str) -> String {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{indent}k{i}: {}\n", render::yaml_quote(v)))
        .collect()
}

/// Whether `program` can run; otherwise skip (or fail under `REQUIRE_ORACLES=1`).
fn oracle_present(program: &str, args: &[&str], what: &str) -> bool {
    let ok = std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("REQUIRE_ORACLES").is_none(),
            "{what} is required (REQUIRE_ORACLES=1)"
        );
        eprintln!("skipping: {what} not found");
    }
    ok
}

/// PyYAML (a YAML 1.1 implementation) reads what the filter writes as the same strings.
/// Install: `python3 -m pip install pyyaml==6.0.3`.
#[test]
fn pyyaml_reads_the_filter_output_identically() {
    if !oracle_present("python3", &["-c", "import yaml"], "python3 with PyYAML") {
        return;
    }
    let values = oracle_values();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, quoted_lines(&values, "")).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1], encoding='utf-8'))))")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyYAML rejected the file:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(
            parsed[format!("k{i}")].as_str(),
            Some(v.as_str()),
            "value {i}: {v:?}"
        );
    }
}

/// go-yaml, through `kubectl kustomize` (what Flux's kustomize-controller runs), reads what the
/// filter writes as the same strings.
#[test]
fn kustomize_reads_the_filter_output_identically() {
    if !oracle_present(
        "kubectl",
        &["version", "--client"],
        "kubectl (kubectl kustomize)",
    ) {
        return;
    }
    let mut values = oracle_values();
    // kustomize reads every value, but then writes its output through go-yaml, which cannot
    // carry some characters: it refuses DEL, C1 controls, the BOM and U+FFFE/U+FFFF ("yaml:
    // control characters are not allowed"), and writes NEL, U+2028 and U+2029 raw as YAML 1.1
    // line breaks, so they come out as spaces or with indentation added. No quoting on our side
    // can change that; those values are left out here (and cannot reach a cluster through Flux
    // unchanged whatever the templates do).
    values.retain(|s| {
        !s.chars().any(|c| {
            matches!(
                c,
                '\u{7f}'
                    ..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
            )
        })
    });
    assert!(values.len() > 250, "too few values left: {}", values.len());
    let dir = tempfile::tempdir().unwrap();
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n{}",
        quoted_lines(&values, "  ")
    );
    std::fs::write(dir.path().join("cm.yaml"), &cm).unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources:\n  - cm.yaml\n",
    )
    .unwrap();
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize rejected the file:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let loaded = schema::yaml::load(
        &text,
        Path::new("out.yaml"),
        schema::yaml::Limits::MANIFESTS,
    );
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let doc = loaded.documents[0].to_json();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(
            doc["data"][format!("k{i}")].as_str(),
            Some(v.as_str()),
            "value {i}: {v:?}"
        );
    }
}
