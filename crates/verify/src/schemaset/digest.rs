//! The pre-digested form of one pinned schema file, kept in the schema cache so that `verify`
//! does not re-parse megabytes of YAML on every run.
//!
//! Layout: a magic line, one line of JSON index, then the payload: every CRD version's
//! `openAPIV3Schema` (or every OpenAPI component) as compact JSON, back to back, and for a CRD
//! file the table of its CEL rules, parsed (`celcode`). The index says which kinds the file
//! defines, their scope and served flag, and where each schema's bytes and the rule table are; a
//! schema is parsed only when an object of its kind is validated, a rule read back only when it
//! is evaluated.
//!
//! **Trust.** A digest is used only if the SHA-256 of the whole file equals the value pinned in
//! the binary for its source file (`crate::digests`), so the cached form carries the same
//! guarantee as the pinned upstream file it was made from. Anything else (missing, truncated,
//! edited, a symlink, oversized, an older format) is ignored and the source file is read instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::celcode;
use super::parse::Parsed;
use super::{CrdVersion, Gvk, LazyJson, OpenApiDoc};

/// First line of every digest; bump the number when the layout or the encoding changes (the
/// pinned digest hashes then change too, see `crate::digests`).
pub(crate) const MAGIC: &[u8] = b"aiops-cluster-template schema digest 2\n";

/// The digest of a parsed source file. Deterministic: the same source gives the same bytes.
pub(crate) fn encode(parsed: &Parsed) -> Vec<u8> {
    let mut payload: Vec<u8> = Vec::new();
    let mut put = |v: &Value| -> Value {
        let start = payload.len();
        // Writing a Value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut payload, v);
        json!([start, payload.len()])
    };
    let index = match parsed {
        Parsed::Crds {
            versions,
            scopes,
            problems,
        } => {
            let versions: Vec<Value> = versions
                .iter()
                .map(|(gvk, v)| {
                    json!({
                        "group": gvk.group, "version": gvk.version, "kind": gvk.kind,
                        "source": v.source, "served": v.served, "at": put(v.schema.get()),
                    })
                })
                .collect();
            let scopes: Vec<Value> = scopes
                .iter()
                .map(|((g, k), namespaced)| json!([g, k, namespaced]))
                .collect();
            let mut rules = std::collections::BTreeSet::new();
            for (_, v) in versions_of(parsed) {
                celcode::rule_texts(v.schema.get(), &mut rules);
            }
            let start = payload.len();
            celcode::encode_table(&rules, &mut payload);
            let cel = json!([start, payload.len()]);
            json!({"crds": {"versions": versions, "scopes": scopes, "problems": problems, "cel": cel}})
        }
        Parsed::OpenApi { doc, gvks } => {
            let mut names: Vec<&String> = doc.components.keys().collect();
            names.sort();
            let components: Vec<Value> = names
                .into_iter()
                .map(|name| json!([name, put(doc.components[name].get())]))
                .collect();
            let gvks: Vec<Value> = gvks
                .iter()
                .map(|(g, c)| json!([g.group, g.version, g.kind, c]))
                .collect();
            json!({"openapi": {
                "source": doc.source,
                "components": components,
                "roots": doc.roots.keys().collect::<Vec<_>>(),
                "gvks": gvks,
            }})
        }
        Parsed::Problem(p) => json!({ "problem": p }),
        Parsed::Nothing => json!({}),
    };
    let mut out = MAGIC.to_vec();
    let _ = serde_json::to_writer(&mut out, &index);
    out.push(b'\n');
    out.extend_from_slice(&payload);
    out
}

/// Rebuilds the parsed form from a digest whose hash has been checked. `None` if it is not a
/// digest of this format (the caller then reads the source file).
pub(crate) fn decode(bytes: Vec<u8>) -> Option<Parsed> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let newline = rest.iter().position(|&b| b == b'\n')?;
    let index: Value = serde_json::from_slice(&rest[..newline]).ok()?;
    let base = MAGIC.len() + newline + 1;
    let len = bytes.len();
    // Shared by every lazily parsed part (an `Arc<[u8]>` would copy the whole file).
    let bytes = Arc::new(bytes);
    let at = |v: &Value| -> Option<LazyJson> {
        let start = base.checked_add(usize::try_from(v.get(0)?.as_u64()?).ok()?)?;
        let end = base.checked_add(usize::try_from(v.get(1)?.as_u64()?).ok()?)?;
        (start <= end && end <= len).then(|| LazyJson::from_digest(bytes.clone(), start..end))
    };
    let text = |v: &Value| v.as_str().map(str::to_owned);
    if let Some(crds) = index.get("crds") {
        let table = crds.get("cel")?;
        let start = base.checked_add(usize::try_from(table.get(0)?.as_u64()?).ok()?)?;
        let end = base.checked_add(usize::try_from(table.get(1)?.as_u64()?).ok()?)?;
        if start > end || end > len {
            return None;
        }
        let table = Arc::new(celcode::Table::new(bytes.clone(), start..end));
        let mut versions = Vec::new();
        for v in crds.get("versions")?.as_array()? {
            versions.push((
                Gvk {
                    group: text(v.get("group")?)?,
                    version: text(v.get("version")?)?,
                    kind: text(v.get("kind")?)?,
                },
                CrdVersion {
                    source: text(v.get("source")?)?,
                    served: v.get("served")?.as_bool()?,
                    schema: at(v.get("at")?)?,
                    compiled: OnceLock::new(),
                    parsed_rules: Some(table.clone()),
                },
            ));
        }
        let mut scopes = Vec::new();
        for s in crds.get("scopes")?.as_array()? {
            scopes.push(((text(s.get(0)?)?, text(s.get(1)?)?), s.get(2)?.as_bool()?));
        }
        let problems = crds
            .get("problems")?
            .as_array()?
            .iter()
            .map(text)
            .collect::<Option<Vec<_>>>()?;
        return Some(Parsed::Crds {
            versions,
            scopes,
            problems,
        });
    }
    if let Some(o) = index.get("openapi") {
        let mut components = HashMap::new();
        for c in o.get("components")?.as_array()? {
            components.insert(text(c.get(0)?)?, at(c.get(1)?)?);
        }
        let mut roots = BTreeMap::new();
        for r in o.get("roots")?.as_array()? {
            roots.insert(text(r)?, OnceLock::new());
        }
        let mut gvks = Vec::new();
        for g in o.get("gvks")?.as_array()? {
            let gvk = Gvk {
                group: text(g.get(0)?)?,
                version: text(g.get(1)?)?,
                kind: text(g.get(2)?)?,
            };
            gvks.push((gvk, text(g.get(3)?)?));
        }
        return Some(Parsed::OpenApi {
            doc: OpenApiDoc {
                source: text(o.get("source")?)?,
                components,
                roots,
            },
            gvks,
        });
    }
    if let Some(p) = index.get("problem") {
        return Some(Parsed::Problem(text(p)?));
    }
    index.as_object()?.is_empty().then_some(Parsed::Nothing)
}

fn versions_of(parsed: &Parsed) -> &[(Gvk, CrdVersion)] {
    match parsed {
        Parsed::Crds { versions, .. } => versions,
        _ => &[],
    }
}

/// SHA-256 of `bytes`, in hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
