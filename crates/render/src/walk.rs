//! Finds the templates and renders all of them in memory.
//!
//! `templates/overrides/` shadows `templates/config/` path by path (also for `include`), `.j2`
//! is stripped from output names, other files are copied, `*.partial.yaml.j2` files are only
//! includable, and a render that is only whitespace produces no file (feature toggles wrap a
//! whole template in `#% if … %#`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::value::Value;
use schema::{Diagnostic, Location};

use crate::engine;
use crate::inputs::Inputs;

/// Input folders under the templates root, highest priority first.
pub const INPUT_DIRS: [&str; 2] = ["overrides", "config"];

/// One output file, in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub contents: Vec<u8>,
    /// The template it came from, relative to the repository (`templates/config/…`).
    pub source: PathBuf,
}

/// Everything one render produced, keyed by output path relative to the output root, with `/`
/// separators (`kubernetes/apps/network/envoy-gateway/app/helmrelease.yaml`).
#[derive(Clone, Debug, Default)]
pub struct Rendered {
    pub files: BTreeMap<String, Output>,
    /// Templates that rendered to whitespace only (feature toggled off), by output path.
    pub skipped: Vec<String>,
}

struct Source {
    /// Path relative to its input folder, `/`-separated.
    rel: String,
    abs: PathBuf,
    /// Path shown to users: `<templates root name>/<input dir>/<rel>`.
    shown: PathBuf,
}

/// Renders every template under `templates_root` with `context`. All template errors are
/// reported together; on any error nothing is returned, so nothing can be written.
pub fn render_templates(
    templates_root: &Path,
    context: &serde_json::Value,
    inputs: &Inputs,
) -> Result<Rendered, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let shown_root = templates_root
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("templates"));
    // Highest priority first; the first occurrence of a relative path wins.
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    for dir in INPUT_DIRS {
        let base = templates_root.join(dir);
        let mut files = Vec::new();
        if let Err(err) = list_files(&base, &base, &mut files) {
            diags.push(Diagnostic::error(
                "render::read",
                "",
                format!("cannot read {}: {err}", base.display()),
            ));
            continue;
        }
        for rel in files {
            sources.entry(rel.clone()).or_insert_with(|| Source {
                abs: base.join(&rel),
                shown: shown_root.join(dir).join(&rel),
                rel,
            });
        }
    }

    let mut env = engine::environment(inputs);
    let mut texts: Vec<(&Source, String)> = Vec::new();
    let mut copies: Vec<(&Source, Vec<u8>)> = Vec::new();
    for src in sources.values() {
        match std::fs::read(&src.abs) {
            Ok(bytes) if src.rel.ends_with(".j2") => match String::from_utf8(bytes) {
                Ok(text) => texts.push((src, text)),
                Err(_) => diags.push(
                    Diagnostic::error("render::encoding", "", "template is not UTF-8")
                        .at(Some(Location::new(&src.shown, 1, 1, 1))),
                ),
            },
            Ok(bytes) => copies.push((src, bytes)),
            Err(err) => diags.push(Diagnostic::error(
                "render::read",
                "",
                format!("cannot read {}: {err}", src.abs.display()),
            )),
        }
    }
    for (src, text) in &texts {
        if let Err(err) = env.add_template_owned(src.rel.clone(), text.clone()) {
            diags.push(template_error(&err, src));
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }

    let ctx = Value::from(minijinja::value::Serde(context));
    let mut out = Rendered::default();
    for (src, _) in &texts {
        if is_partial(&src.rel) {
            continue;
        }
        let target = src.rel.strip_suffix(".j2").unwrap_or(&src.rel).to_owned();
        let rendered = env.get_template(&src.rel).and_then(|t| t.render(&ctx));
        match rendered {
            Ok(text) if text.trim().is_empty() => out.skipped.push(target),
            Ok(text) => {
                out.files.insert(
                    target,
                    Output {
                        contents: text.into_bytes(),
                        source: src.shown.clone(),
                    },
                );
            }
            Err(err) => diags.push(template_error(&err, src)),
        }
    }
    for (src, bytes) in copies {
        out.files.insert(
            src.rel.clone(),
            Output {
                contents: bytes,
                source: src.shown.clone(),
            },
        );
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

fn is_partial(rel: &str) -> bool {
    rel.ends_with(".partial.yaml.j2")
}

/// A minijinja error as a diagnostic at the template line, with the cause chain as notes.
fn template_error(err: &minijinja::Error, src: &Source) -> Diagnostic {
    // The error may come from an included template; point there when it does.
    let file = match err.name() {
        Some(name) if name != src.rel => {
            PathBuf::from(format!("{}", src.shown.display()).replace(&src.rel, name))
        }
        _ => src.shown.clone(),
    };
    let line = err.line().unwrap_or(1) as u32;
    let message = err
        .detail()
        .map(str::to_owned)
        .unwrap_or_else(|| err.kind().to_string());
    let mut d = Diagnostic::error("render::template", "", format!("{}: {message}", err.kind()))
        .at(Some(Location::new(file, line, 1, 1)));
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        d = d.with_note(format!("caused by: {c}"), None);
        cause = c.source();
    }
    if err.kind() == minijinja::ErrorKind::UndefinedError {
        d = d.with_help("the template uses a value the model does not provide; check the key name against docs/configuration.md");
    }
    d
}

/// Lists files under `dir` recursively, relative to `base`, `/`-separated, sorted. A missing
/// directory is empty (a repository may have no overrides).
fn list_files(base: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    for path in paths {
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            list_files(base, &path, out)?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(base).expect("walked under base");
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(rel.join("/"));
        }
    }
    Ok(())
}
