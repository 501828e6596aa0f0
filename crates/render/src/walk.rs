//! Finds the templates and renders all of them in memory.
//!
//! `templates/overrides/` shadows `templates/config/` path by path (also for `include`), `.j2`
//! is stripped from output names, other files are copied, `*.partial.yaml.j2` files are only
//! includable, and a render that is only whitespace produces no file (feature toggles wrap a
//! whole template in `#% if … %#`).

use std::collections::{BTreeMap, BTreeSet};
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
    /// Every output path some template could produce (rendered now or not) under a top-level
    /// directory that `config/` produces files in: the only paths the output stage may ever
    /// remove (see `output::may_remove`).
    pub producible: BTreeSet<String>,
}

/// Largest template or copied file read: far above any real template.
pub const TEMPLATE_MAX_BYTES: u64 = 4 << 20;

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

/// Talos patches per patch directory, for the `talos_patches(dir)` function: the output of every
/// `talos/patches/<dir>/*.yaml.j2` under `overrides/` and `config/`, as paths relative to `talos/`
/// (`patches/global/machine-network.yaml`, what talconfig.yaml references as `@./…`), sorted.
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
                if let Some(output) = file_name.strip_suffix(".j2")
                    && output.ends_with(".yaml")
                    && !is_partial(&file_name)
                {
                    out.entry(name.clone())
                        .or_default()
                        .insert(format!("patches/{name}/{output}"));
                }
            }
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect()
}

/// Lists every template without rendering any: a [`Rendered`] with no files, whose
/// [`Rendered::producible`] says what configure may remove (`reset` uses it).
pub fn template_outputs(templates_root: &Path) -> Result<Rendered, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let (_, producible) = find_sources(templates_root, &mut diags);
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Rendered {
        producible,
        ..Rendered::default()
    })
}

/// Every template under the input folders, highest priority first per relative path. Refuses
/// (with diagnostics) a missing or empty `config/` folder, symlinked folders or templates, and
/// templates whose output would land in `.git`.
/// Output paths of the templates this repository ships (`config/`, trusted), whether or not an
/// override shadows them: the only paths configure may remove. An override is repository content
/// like the manifest, so it cannot make a path removable (an empty override at the path of the
/// user's own file, plus a forged manifest entry, would delete that file); a file only an override
/// produced is kept, with a warning, once no longer rendered.
fn producible(config_files: &[String]) -> BTreeSet<String> {
    config_files
        .iter()
        .filter(|rel| !is_partial(rel))
        .map(|rel| target_path(rel).to_owned())
        .collect()
}

fn find_sources(
    templates_root: &Path,
    diags: &mut Vec<Diagnostic>,
) -> (BTreeMap<String, Source>, BTreeSet<String>) {
    let shown_root = templates_root
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("templates"));
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    let config = templates_root.join(INPUT_DIRS[1]);
    match schema::repofile::kind_of(&config) {
        Some("directory") => {}
        found => {
            // Rendering nothing would make every rendered file stale: refuse instead of pruning
            // the whole tree (a typo in --templates once did exactly that).
            let what = found.map_or("does not exist".to_owned(), |k| format!("is a {k}"));
            diags.push(
                Diagnostic::error(
                    "render::no_templates",
                    "",
                    format!("{} {what}: no templates to render", config.display()),
                )
                .with_help("check --templates: it names the folder holding config/ (and optionally overrides/); nothing was written or removed"),
            );
            return (sources, BTreeSet::new());
        }
    }
    if let Some("symlink") = schema::repofile::kind_of(templates_root) {
        diags.push(symlink_error(templates_root));
        return (sources, BTreeSet::new());
    }
    let mut removable = BTreeSet::new();
    for (priority, dir) in INPUT_DIRS.into_iter().enumerate() {
        let base = templates_root.join(dir);
        if let Some("symlink") = schema::repofile::kind_of(&base) {
            diags.push(symlink_error(&base));
            continue;
        }
        let mut files = Vec::new();
        let mut links = Vec::new();
        if let Err(err) = list_files(&base, &base, &mut files, &mut links) {
            diags.push(Diagnostic::error(
                "render::read",
                "",
                format!("cannot read {}: {err}", base.display()),
            ));
            continue;
        }
        for link in links {
            diags.push(symlink_error(&shown_root.join(dir).join(link)));
        }
        if priority == 1 {
            removable = producible(&files);
        }
        for rel in files {
            if crate::output::is_inside_git(&rel) {
                diags.push(
                    Diagnostic::error(
                        "render::reserved_name",
                        "",
                        format!("`{rel}`: templates never write into `.git`"),
                    )
                    .at(Some(Location::new(shown_root.join(dir).join(&rel), 1, 1, 1)))
                    .with_help("remove this template: a file under .git (a hook) would run code on the next git command"),
                );
                continue;
            }
            sources.entry(rel.clone()).or_insert_with(|| Source {
                abs: base.join(&rel),
                shown: shown_root.join(dir).join(&rel),
                priority,
                rel,
            });
        }
    }
    if diags.is_empty() && !sources.values().any(|s| s.priority == 1) {
        diags.push(
            Diagnostic::error(
                "render::no_templates",
                "",
                format!("{} holds no templates", config.display()),
            )
            .with_help("check --templates; nothing was written or removed"),
        );
    }
    (sources, removable)
}

fn symlink_error(path: &Path) -> Diagnostic {
    Diagnostic::error(
        "render::symlink",
        "",
        format!("{} is a symlink; templates are never read through symlinks", path.display()),
    )
    .with_help("a symlinked template could copy any file it points at (a key) into the rendered tree; replace it with a regular file or folder")
}

fn render_selected(
    templates_root: &Path,
    context: &serde_json::Value,
    inputs: &Inputs,
    wanted: impl Fn(&str) -> bool,
) -> Result<Rendered, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    // Highest priority first; the first occurrence of a relative path wins.
    let (sources, producible) = find_sources(templates_root, &mut diags);
    if !diags.is_empty() {
        return Err(diags);
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

    let scope = engine::SecretScope::default();
    let mut env = engine::environment(inputs, &scope);
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
        match schema::repofile::read(&src.abs, TEMPLATE_MAX_BYTES) {
            Ok(bytes) if src.rel.ends_with(".j2") => match String::from_utf8(bytes) {
                Ok(text) => texts.push((src, text)),
                Err(_) => diags.push(
                    Diagnostic::error("render::encoding", "", "template is not UTF-8")
                        .at(Some(Location::new(&src.shown, 1, 1, 1))),
                ),
            },
            Ok(bytes) => copies.push((src, bytes, is_executable(&src.abs))),
            Err(err) => diags.push(
                Diagnostic::error("render::read", "", format!("{} {err}", src.shown.display()))
                    .with_help(err.help()),
            ),
        }
    }
    for (src, text) in &texts {
        if let Err(err) = env.add_template_owned(src.rel.clone(), text.clone()) {
            diags.push(template_error(&err, src, false));
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }

    // Secret values of the configuration reach only the templates of `*.sops.*` outputs; every
    // other template sees the context without them (using one is an undefined-value error).
    let secret_ctx = Value::from(minijinja::value::Serde(context));
    let plain_ctx = Value::from(minijinja::value::Serde(&without_secrets(context)));
    let mut secret_failed = false;
    let mut out = Rendered {
        producible,
        ..Rendered::default()
    };
    for (src, _) in &texts {
        let target = target_path(&src.rel);
        if !produces(src) || !wanted(target) {
            continue;
        }
        let secret = crate::output::is_secret(target);
        scope.set(secret);
        let ctx = if secret { &secret_ctx } else { &plain_ctx };
        let rendered = env.get_template(&src.rel).and_then(|t| t.render(ctx));
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
            Err(_) if secret && secret_failed => {}
            Err(err) => {
                secret_failed |= secret;
                let mut d = template_error(&err, src, secret);
                if !secret && err.kind() == minijinja::ErrorKind::UndefinedError {
                    d = d.with_note(
                        format!(
                            "secret values ({}) are only available to templates of `*.sops.*` outputs",
                            schema::SECRET_FIELDS.join(", ")
                        ),
                        None,
                    );
                }
                diags.push(d);
            }
        }
    }
    scope.set(false);
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

/// `context` without the values of secret keys (at any depth), for templates of plain outputs.
fn without_secrets(context: &serde_json::Value) -> serde_json::Value {
    match context {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .filter(|(k, _)| !schema::SECRET_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), without_secrets(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(without_secrets).collect())
        }
        other => other.clone(),
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
/// With `secret` (a template of a `*.sops.*` output, which sees secret values), only the file is
/// named: minijinja's details quote the values involved, and a hostile template could provoke an
/// error, or choose its line or kind, to print a key a few bits at a time. The caller reports at
/// most one such error per run.
fn template_error(err: &minijinja::Error, src: &Source, secret: bool) -> Diagnostic {
    // The error may come from an included template; point there when it does.
    let file = match err.name() {
        Some(name) if name != src.rel => {
            PathBuf::from(format!("{}", src.shown.display()).replace(&src.rel, name))
        }
        _ => src.shown.clone(),
    };
    if secret {
        return Diagnostic::error(
            "render::template",
            "",
            "this template renders a secret and failed; details are withheld",
        )
        .at(Some(Location::new(&src.shown, 1, 1, 1)))
        .with_help("its error could quote the secret values it reads; check the template by hand (an undefined key or function is the usual cause), or render it once with the secret values replaced by placeholders");
    }
    let line = err.line().unwrap_or(1) as u32;
    let message = match err.detail() {
        Some(detail) => detail.to_owned(),
        None => err.kind().to_string(),
    };
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
/// directory is empty (a repository may have no overrides). Symlinks are collected apart in
/// `links` and never followed; other special files are ignored.
fn list_files(
    base: &Path,
    dir: &Path,
    out: &mut Vec<String>,
    links: &mut Vec<String>,
) -> std::io::Result<()> {
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
        let rel = || {
            let rel = path.strip_prefix(base).unwrap_or(&path);
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<String>>()
                .join("/")
        };
        if meta.is_dir() {
            list_files(base, &path, out, links)?;
        } else if meta.is_file() {
            out.push(rel());
        } else if meta.file_type().is_symlink() {
            links.push(rel());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A templates root with the given files (`config/…`, `overrides/…`).
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let abs = dir.path().join(path);
            std::fs::create_dir_all(abs.parent().unwrap()).unwrap();
            std::fs::write(abs, text).unwrap();
        }
        dir
    }

    fn render(files: &[(&str, &str)]) -> Result<Rendered, Vec<Diagnostic>> {
        let dir = tree(files);
        render_templates(
            dir.path(),
            &serde_json::json!({"on": false, "name": "x"}),
            &Inputs::default(),
        )
    }

    fn text(r: &Rendered, path: &str) -> String {
        String::from_utf8(r.files[path].contents.clone()).unwrap()
    }

    #[test]
    fn overrides_shadow_config_per_path_and_for_includes() {
        let r = render(&[
            (
                "config/a.yaml.j2",
                "a: #{ name }#\n#% include 'part.partial.yaml.j2' %#",
            ),
            ("config/part.partial.yaml.j2", "part: config\n"),
            ("overrides/part.partial.yaml.j2", "part: override\n"),
            ("config/b.yaml.j2", "b: config\n"),
            ("overrides/b.yaml.j2", "b: override\n"),
        ])
        .unwrap();
        assert_eq!(text(&r, "a.yaml"), "a: x\npart: override\n");
        assert_eq!(text(&r, "b.yaml"), "b: override\n");
        assert!(r.files["b.yaml"].source.ends_with("overrides/b.yaml.j2"));
        // Partials are never outputs.
        assert_eq!(r.files.keys().collect::<Vec<_>>(), ["a.yaml", "b.yaml"]);
    }

    #[test]
    fn suffix_copies_dotfiles_and_feature_toggles() {
        let r = render(&[
            ("config/.sops.yaml.j2", "rules: #{ name }#\n"),
            (
                "config/dir/plain.txt",
                "{{ .Values }} ${VAR} #{ untouched }#\n",
            ),
            ("config/x.yaml.j2.j2", "x: 1\n"),
            ("config/off.yaml.j2", "#% if on %#\noff: 1\n#% endif %#\n"),
            ("config/blank.yaml.j2", "  \n\n"),
        ])
        .unwrap();
        assert_eq!(text(&r, ".sops.yaml"), "rules: x\n");
        // Non-.j2 files are copied byte for byte, delimiters and all.
        assert_eq!(
            text(&r, "dir/plain.txt"),
            "{{ .Values }} ${VAR} #{ untouched }#\n"
        );
        // Only the last `.j2` is stripped.
        assert!(r.files.contains_key("x.yaml.j2"));
        assert!(!r.files.contains_key("off.yaml") && !r.files.contains_key("blank.yaml"));
        let mut skipped = r.skipped.clone();
        skipped.sort();
        assert_eq!(skipped, ["blank.yaml", "off.yaml"]);
    }

    #[test]
    fn first_producer_of_an_output_path_wins() {
        let r = render(&[
            ("config/a.yaml", "copied\n"),
            ("config/a.yaml.j2", "rendered\n"),
            ("config/b.yaml.j2", "config template\n"),
            ("overrides/b.yaml", "override copy\n"),
        ])
        .unwrap();
        assert_eq!(text(&r, "a.yaml"), "copied\n");
        assert_eq!(text(&r, "b.yaml"), "override copy\n");
    }

    #[test]
    fn errors_are_reported_together_and_nothing_is_returned() {
        let errs = render(&[
            ("config/a.yaml.j2", "a: #{ missing }#\n"),
            ("config/b.yaml.j2", "b: #% if %#\n"),
            ("config/c.yaml.j2", "c: fine\n"),
        ])
        .unwrap_err();
        assert_eq!(
            errs.len(),
            1,
            "syntax errors stop before rendering: {errs:?}"
        );
        assert!(
            errs[0]
                .location
                .as_ref()
                .unwrap()
                .file
                .ends_with("config/b.yaml.j2")
        );
        let errs = render(&[
            ("config/a.yaml.j2", "a: #{ missing }#\n"),
            ("config/b.yaml.j2", "b: #{ also_missing }#\n"),
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs.iter().all(|d| d.code == "render::template"));
    }

    #[test]
    fn symlinked_templates_and_folders_are_refused_not_followed() {
        let secret = tempfile::tempdir().unwrap();
        std::fs::write(secret.path().join("id"), "AGE-SECRET-KEY-1XYZ\n").unwrap();
        let dir = tree(&[("config/a.yaml.j2", "a: 1\n")]);
        std::fs::create_dir_all(dir.path().join("overrides/kubernetes")).unwrap();
        std::os::unix::fs::symlink(
            secret.path().join("id"),
            dir.path().join("overrides/kubernetes/leak.yaml"),
        )
        .unwrap();
        let errs =
            render_templates(dir.path(), &serde_json::json!({}), &Inputs::default()).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].code, "render::symlink");
        assert!(!format!("{errs:?}").contains("AGE-SECRET"));
        // A symlinked input folder too.
        let dir = tree(&[("config/a.yaml.j2", "a: 1\n")]);
        std::os::unix::fs::symlink(secret.path(), dir.path().join("overrides")).unwrap();
        let errs =
            render_templates(dir.path(), &serde_json::json!({}), &Inputs::default()).unwrap_err();
        assert_eq!(errs[0].code, "render::symlink");
    }

    #[test]
    fn key_material_and_secret_values_reach_only_sops_outputs() {
        let inputs = Inputs {
            age_private_key: Some("AGE-SECRET-KEY-1PRIVATE".into()),
            push_token: Some("tok".into()),
            ..Inputs::default()
        };
        let ctx = serde_json::json!({"cloudflare_token": "cf-secret", "d": [{"api_key": "az", "name": "n"}]});
        let render_one = |files: &[(&str, &str)]| {
            let dir = tree(files);
            render_templates(dir.path(), &ctx, &inputs)
        };
        // In a secret output: allowed.
        let r = render_one(&[(
            "config/s.sops.yaml.j2",
            "k: #{ age_key('private') }# #{ github_push_token() }# #{ cloudflare_token }# #{ d[0].api_key }#\n",
        )])
        .unwrap();
        assert_eq!(
            text(&r, "s.sops.yaml"),
            "k: AGE-SECRET-KEY-1PRIVATE tok cf-secret az\n"
        );
        // In a plain output (an override could add one): refused, whatever the route to it.
        for body in [
            "k: #{ age_key('private') }#\n",
            "k: #{ github_push_token() | b64encode }#\n",
            "k: #{ derived_secret('mcp-session') }#\n",
            "k: #{ cloudflare_token }#\n",
            "k: #{ d[0].api_key }#\n",
            "#% include 'p.partial.yaml.j2' %#",
        ] {
            let errs = render_one(&[
                ("config/plain.yaml.j2", body),
                ("config/p.partial.yaml.j2", "k: #{ age_key('private') }#\n"),
            ])
            .unwrap_err();
            assert!(!format!("{errs:?}").contains("PRIVATE"), "{body}");
            assert_eq!(errs[0].code, "render::template", "{body}");
        }
        // Non-secret values and the public key stay available everywhere.
        let r = render_one(&[("config/plain.yaml.j2", "n: #{ d[0].name }#\n")]).unwrap();
        assert_eq!(text(&r, "plain.yaml"), "n: n\n");
    }

    #[test]
    fn errors_in_secret_templates_never_quote_values() {
        let inputs = Inputs {
            age_private_key: Some("AGE-SECRET-KEY-1PRIVATE".into()),
            ..Inputs::default()
        };
        for body in [
            "k: #{ age_key('private') | int }#\n",
            "k: #{ range(age_key('private')) }#\n",
            "k: #{ {}[age_key('private')].x }#\n",
            // Our own function quotes its bad argument: the detail would print the key.
            "k: #{ age_key(age_key('private')) }#\n",
        ] {
            let dir = tree(&[("config/s.sops.yaml.j2", body)]);
            let errs = render_templates(dir.path(), &serde_json::json!({}), &inputs).unwrap_err();
            let text: String = errs.iter().map(|d| d.render(None)).collect();
            assert!(!text.contains("PRIVATE"), "{body}: {text}");
            assert!(text.contains("s.sops.yaml.j2:1:1"), "{text}");
        }
        // Neither the line nor the kind of error, nor which of many secret templates failed
        // after the first, can carry bits of a secret.
        let mut files = Vec::new();
        for i in 0..4 {
            files.push((
                format!("config/s{i}.sops.yaml.j2"),
                "#% if age_key('private')[0] == 'A' %#\n\n#{ x() }#\n#% else %#\n#{ y }#\n#% endif %#\n"
                    .to_owned(),
            ));
        }
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let dir = tree(&refs);
        let errs = render_templates(dir.path(), &serde_json::json!({}), &inputs).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        let text = errs[0].render(None);
        assert!(
            text.contains(":1:1:") && !text.contains("unknown function"),
            "{text}"
        );
    }

    #[test]
    fn templates_never_write_into_git() {
        for path in ["overrides/.git/hooks/pre-commit.j2", "config/x/.GIT/config"] {
            let errs =
                render(&[("config/a.yaml.j2", "a: 1\n"), (path, "echo owned\n")]).unwrap_err();
            assert_eq!(errs[0].code, "render::reserved_name", "{path}");
        }
    }

    #[test]
    fn a_missing_or_empty_config_folder_is_an_error_not_an_empty_render() {
        let dir = tempfile::tempdir().unwrap();
        for root in [
            dir.path().join("nope"),
            dir.path().to_owned(),
            PathBuf::new(),
        ] {
            let errs =
                render_templates(&root, &serde_json::json!({}), &Inputs::default()).unwrap_err();
            assert_eq!(errs[0].code, "render::no_templates", "{}", root.display());
        }
        std::fs::create_dir(dir.path().join("config")).unwrap();
        let errs =
            render_templates(dir.path(), &serde_json::json!({}), &Inputs::default()).unwrap_err();
        assert_eq!(errs[0].code, "render::no_templates");
    }

    #[test]
    fn producible_paths_are_the_outputs_of_the_shipped_templates() {
        let r = render(&[
            ("config/kubernetes/a.yaml.j2", "a: 1\n"),
            (
                "config/kubernetes/off.yaml.j2",
                "#% if on %#x: 1#% endif %#",
            ),
            ("config/kubernetes/p.partial.yaml.j2", "p: 1\n"),
            ("overrides/kubernetes/extra.yaml.j2", "e: 1\n"),
            ("overrides/elsewhere/new.yaml.j2", "n: 1\n"),
        ])
        .unwrap();
        // Overrides add no removable path: `kubernetes/extra.yaml` stays once it is gone.
        let want: BTreeSet<String> = ["kubernetes/a.yaml", "kubernetes/off.yaml"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(r.producible, want);
        assert!(r.files.contains_key("elsewhere/new.yaml"));
    }

    #[test]
    fn reserved_output_names_are_refused() {
        let errs = render(&[("config/.render-manifest.json.j2", "{}\n")]).unwrap_err();
        assert_eq!(errs[0].code, "render::reserved_name");
        let errs = render(&[("config/x/.a.render-tmp", "")]).unwrap_err();
        assert_eq!(errs[0].code, "render::reserved_name");
    }

    #[test]
    fn one_template_with_includes() {
        let dir = tree(&[
            ("config/.sops.yaml.j2", "#% include 'k.partial.yaml.j2' %#"),
            ("config/k.partial.yaml.j2", "key: #{ age_key('public') }#\n"),
            // Would fail (undefined), but is not rendered.
            ("config/other.yaml.j2", "#{ nope }#"),
        ]);
        let inputs = Inputs {
            age_public_key: Some("age1x".into()),
            ..Inputs::default()
        };
        let out = render_template(dir.path(), ".sops.yaml", &serde_json::json!({}), &inputs)
            .unwrap()
            .unwrap();
        assert_eq!(out.contents, b"key: age1x\n");
        assert!(
            render_template(dir.path(), "absent", &serde_json::json!({}), &inputs)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn talos_patch_lists() {
        let dir = tree(&[
            ("config/talos/patches/global/b.yaml.j2", ""),
            ("config/talos/patches/global/a.yaml.j2", ""),
            ("overrides/talos/patches/global/c.yaml.j2", ""),
            ("config/talos/patches/controller/x.yaml.j2", ""),
            ("config/talos/patches/controller/notes.md", ""),
        ]);
        let p = talos_patches(dir.path());
        assert_eq!(
            p["global"],
            [
                "patches/global/a.yaml",
                "patches/global/b.yaml",
                "patches/global/c.yaml"
            ]
        );
        assert_eq!(p["controller"], ["patches/controller/x.yaml"]);
        assert!(!p.contains_key("worker"));
    }

    #[cfg(unix)]
    #[test]
    fn executable_templates_give_executable_outputs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tree(&[
            ("config/run.sh.j2", "echo #{ name }#\n"),
            ("config/a.txt", "a"),
        ]);
        let script = dir.path().join("config/run.sh.j2");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let r = render_templates(
            dir.path(),
            &serde_json::json!({"name": "x"}),
            &Inputs::default(),
        )
        .unwrap();
        assert!(r.files["run.sh"].executable);
        assert!(!r.files["a.txt"].executable);
    }
}
