//! The pre-digested form of one pinned schema file, kept in the schema cache so that `verify`
//! does not re-parse megabytes of YAML on every run.
//!
//! Layout: a magic line, one line of JSON index, then the payload. For a CRD file: every
//! version's schema compiled into the graph the validator walks (`graphcode`), and the table of
//! the file's CEL rules, parsed (`celcode`); for a Kubernetes OpenAPI document: every component
//! as compact JSON. The index says which kinds the file defines, their scope and served flag,
//! and where each part's bytes are. A part is read back only when an object needs it: a graph
//! when an object of its kind is validated, a rule when it is evaluated.
//!
//! **Trust.** A digest is used only if the SHA-256 of the whole file equals the value pinned in
//! the binary for its source file (`crate::digests`), so the cached form carries the same
//! guarantee as the pinned upstream file it was made from. Anything else (missing, truncated,
//! edited, a symlink, oversized, an older format) is ignored and the source file is read instead.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::parse::Parsed;
use super::{CrdSchema, CrdVersion, Gvk, LazyJson, OpenApiDoc};
use super::{celcode, graphcode};

/// First line of every digest; bump the number when the layout or the encoding changes (the
/// pinned digest hashes then change too, see `crate::digests`).
pub(crate) const MAGIC: &[u8] = b"aiops-cluster-template schema digest 4\n";

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
            let mut entries: Vec<Value> = Vec::with_capacity(versions.len());
            for (gvk, v) in versions {
                let start = payload.len();
                let c = super::compiled_crd(v);
                graphcode::encode(&c.graph, c.root, &mut payload);
                entries.push(json!({
                    "group": gvk.group, "version": gvk.version, "kind": gvk.kind,
                    "source": v.source, "served": v.served, "graph": [start, payload.len()],
                }));
            }
            let scopes: Vec<Value> = scopes
                .iter()
                .map(|((g, k), namespaced)| json!([g, k, namespaced]))
                .collect();
            let mut rules = std::collections::BTreeSet::new();
            for (_, v) in versions {
                if let CrdSchema::Json(schema) = &v.schema {
                    celcode::rule_texts(schema, &mut rules);
                }
            }
            let start = payload.len();
            celcode::encode_table(&rules, &mut payload);
            let cel = json!([start, payload.len()]);
            json!({"crds": {"versions": entries, "scopes": scopes, "problems": problems, "cel": cel}})
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
    let range = |v: &Value| -> Option<Range<usize>> {
        let start = base.checked_add(usize::try_from(v.get(0)?.as_u64()?).ok()?)?;
        let end = base.checked_add(usize::try_from(v.get(1)?.as_u64()?).ok()?)?;
        (start <= end && end <= len).then_some(start..end)
    };
    let at = |v: &Value| range(v).map(|r| LazyJson::from_digest(bytes.clone(), r));
    let text = |v: &Value| v.as_str().map(str::to_owned);
    if let Some(crds) = index.get("crds") {
        let table = Arc::new(celcode::Table::new(bytes.clone(), range(crds.get("cel")?)?));
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
                    schema: range(v.get("graph")?).map(|r| CrdSchema::Digest(bytes.clone(), r))?,
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

/// SHA-256 of `bytes`, in hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
