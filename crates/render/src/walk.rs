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
    /// Whether the template is executable; the output then is too (mode 0755, else 0644), as
    /// makejinja copies the template's mode.
    pub executable: bool,
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
    /// Index of its input folder in [`INPUT_DIRS`]: lower wins.
    priority: usize,
}

/// Renders every template under `templates_root` with `context`. All template errors are
/// reported together; on any error nothing is returned, so nothing can be written.
pub fn render_templates(
    templates_root: &Path,
    context: &serde_json::Value,
    inputs: &Inputs,
) -> Result<Rendered, Vec<Diagnostic>> {
    render_selected(templates_root, context, inputs, |_| true)
}

/// Renders only the template that produces `output` (e.g. `.sops.yaml`), with every other
/// template available for `include`. `Ok(None)` when no template produces it or it rendered to
/// whitespace only.
pub fn render_template(
    templates_root: &Path,
    output: &str,
    context: &serde_json::Value,
    inputs: &Inputs,
) -> Result<Option<Output>, Vec<Diagnostic>> {
    let mut rendered = render_selected(templates_root, context, inputs, |target| target == output)?;
    Ok(rendered.files.remove(output))
}

/// Talos patch templates per patch directory, for the `talos_patches(dir)` function: every
/// `talos/patches/<dir>/*.yaml.j2` under `overrides/` and `config/`, as paths relative to `talos/`
/// (`patches/global/machine-network.yaml.j2`, so `| basename` gives the output name), sorted.
pub fn talos_patches(templates_root: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for dir in INPUT_DIRS {
        let base = templates_root.join(dir).join("talos/patches");
        let Ok(groups) = std::fs::read_dir(&base) else {
            continue;
        };
        for group in groups.flatten() {
            let Ok(files) = std::fs::read_dir(group.path()) else {
                continue;
            };
            let name = group.file_name().to_string_lossy().into_owned();
            for file in files.flatten() {
                let file_name = file.file_name().to_string_lossy().into_owned();
                if file_name.ends_with(".yaml.j2") && !is_partial(&file_name) {
                    out.entry(name.clone())
                        .or_default()
                        .insert(format!("patches/{name}/{file_name}"));
                }
            }
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

fn render_selected(
    templates_root: &Path,
    context: &serde_json::Value,
    inputs: &Inputs,
    wanted: impl Fn(&str) -> bool,
) -> Result<Rendered, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let shown_root = templates_root
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("templates"));
    // Highest priority first; the first occurrence of a relative path wins.
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    for (priority, dir) in INPUT_DIRS.into_iter().enumerate() {
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
                priority,
                rel,
            });
        }
    }

    // The first input folder producing an output path wins (makejinja walks `overrides/` first,
    // each folder sorted, so `x.yaml` beats `x.yaml.j2` in the same folder).
    let mut producer: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for src in sources.values() {
        if is_partial(&src.rel) {
            continue;
        }
        let candidate = (src.priority, src.rel.as_str());
        producer
            .entry(target_path(&src.rel))
            .and_modify(|best| *best = (*best).min(candidate))
            .or_insert(candidate);
    }
    let produces = |src: &Source| {
        !is_partial(&src.rel)
            && producer.get(target_path(&src.rel)) == Some(&(src.priority, src.rel.as_str()))
    };

    let mut env = engine::environment(inputs);
    let mut texts: Vec<(&Source, String)> = Vec::new();
    let mut copies: Vec<(&Source, Vec<u8>, bool)> = Vec::new();
    for src in sources.values() {
        let target = target_path(&src.rel);
        if crate::output::is_reserved(target) {
            diags.push(
                Diagnostic::error(
                    "render::reserved_name",
                    "",
                    format!("`{target}` is a name the output stage reserves for itself"),
                )
                .at(Some(Location::new(&src.shown, 1, 1, 1)))
                .with_help("rename the template"),
            );
            continue;
        }
        // Included templates must be loaded even when only one output is wanted.
        let needed = src.rel.ends_with(".j2") || (produces(src) && wanted(target));
        if !needed {
            continue;
        }
        match std::fs::read(&src.abs) {
            Ok(bytes) if src.rel.ends_with(".j2") => match String::from_utf8(bytes) {
                Ok(text) => texts.push((src, text)),
                Err(_) => diags.push(
                    Diagnostic::error("render::encoding", "", "template is not UTF-8")
                        .at(Some(Location::new(&src.shown, 1, 1, 1))),
                ),
            },
            Ok(bytes) => copies.push((src, bytes, is_executable(&src.abs))),
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
        let target = target_path(&src.rel);
        if !produces(src) || !wanted(target) {
            continue;
        }
        let rendered = env.get_template(&src.rel).and_then(|t| t.render(&ctx));
        match rendered {
            Ok(text) if text.trim().is_empty() => out.skipped.push(target.to_owned()),
            Ok(text) => {
                out.files.insert(
                    target.to_owned(),
                    Output {
                        contents: text.into_bytes(),
                        source: src.shown.clone(),
                        executable: is_executable(&src.abs),
                    },
                );
            }
            Err(err) => diags.push(template_error(&err, src)),
        }
    }
    for (src, bytes, executable) in copies {
        out.files.insert(
            src.rel.clone(),
            Output {
                contents: bytes,
                source: src.shown.clone(),
                executable,
            },
        );
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// The output path of a template: its path minus one trailing `.j2`.
fn target_path(rel: &str) -> &str {
    rel.strip_suffix(".j2").unwrap_or(rel)
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    false
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
