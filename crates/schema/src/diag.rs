//! One diagnostic shape for the whole workspace.
//!
//! Every crate down the chain (render, secrets, verify) reports problems as [`Diagnostic`]s so
//! that `xtask` prints them one way: `severity[code]: file:line:col: path: message`, the source
//! line with a caret, and an optional `help:` line. Diagnostics are data: producing one never
//! prints anything and never stops the run.

use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A place in a file. `line` and `col` are 1-based; `len` is the number of characters to
/// underline on that line (at least 1 when rendered).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: u32, col: u32, len: u32) -> Location {
        Location {
            file: file.into(),
            line,
            col,
            len,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One finding: what is wrong, where, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier, `<crate>::<rule>`, e.g. `schema::cidr_overlap`.
    pub code: String,
    /// Dotted key path inside the document (`ai_gateway_azure_deployments[1].host`), or empty.
    pub path: String,
    /// Lower-case, no final period, stands on its own.
    pub message: String,
    pub location: Option<Location>,
    /// How to fix it; only present when there is something useful to say.
    pub help: Option<String>,
    /// Secondary places that explain the finding ("first defined here").
    pub notes: Vec<(String, Option<Location>)>,
}

impl Diagnostic {
    pub fn error(
        code: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(Severity::Error, code, path, message)
    }

    pub fn warning(
        code: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(Severity::Warning, code, path, message)
    }

    fn new(
        severity: Severity,
        code: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            code: code.into(),
            path: path.into(),
            message: message.into(),
            location: None,
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn at(mut self, location: Option<Location>) -> Diagnostic {
        self.location = location;
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>, location: Option<Location>) -> Diagnostic {
        self.notes.push((note.into(), location));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The one-line headline: `error[code]: file:line:col: path: message`.
    pub fn headline(&self) -> String {
        let mut out = format!("{}[{}]: ", self.severity, self.code);
        if let Some(loc) = &self.location {
            out.push_str(&format!("{loc}: "));
        }
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }

    /// Full text for a terminal: headline, the source line with a caret (when `source` holds
    /// the text of the file the location points into), notes and help.
    pub fn render(&self, source: Option<&str>) -> String {
        let line = match (&self.location, source) {
            (Some(loc), Some(text)) => text.lines().nth(loc.line.saturating_sub(1) as usize),
            _ => None,
        };
        self.render_line(line)
    }

    /// Like [`Diagnostic::render`] with the source of a whole file indexed once ([`Source`]),
    /// so that many diagnostics in one large file cost one pass over it, not one each.
    pub fn render_with(&self, source: Option<&Source>) -> String {
        let line = match (&self.location, source) {
            (Some(loc), Some(src)) => src.line(loc.line),
            _ => None,
        };
        self.render_line(line)
    }

    /// Renders with `line`, the text of the line the location points at.
    fn render_line(&self, line: Option<&str>) -> String {
        let mut out = self.headline();
        out.push('\n');
        if let (Some(loc), Some(line)) = (&self.location, line) {
            if looks_like_key_material(line) || self.quotes_a_secret(line) {
                // Whatever led here (a misplaced key file, a broken symlink defence), a snippet
                // never quotes a secret key.
                out.push_str("   | (line not shown: it holds a secret)\n");
            } else {
                out.push_str(&snippet(line, loc));
            }
        }
        for (note, loc) in &self.notes {
            match loc {
                Some(loc) => out.push_str(&format!("   = note: {note} ({loc})\n")),
                None => out.push_str(&format!("   = note: {note}\n")),
            }
        }
        if let Some(help) = &self.help {
            for (i, line) in help.lines().enumerate() {
                let lead = if i == 0 { "   = help: " } else { "           " };
                out.push_str(lead);
                out.push_str(line);
                out.push('\n');
            }
        }
        terminal_safe(&out)
    }

    /// Whether `line` is the line of a secret key (`…api_key`, `cloudflare_token`) the finding
    /// is about: it is not quoted, so the value never reaches a terminal or a CI log. (A list
    /// item such as a client `key` sits on its own line too.)
    fn quotes_a_secret(&self, line: &str) -> bool {
        // A missing key points at the document's start, which holds no value of it.
        let about_its_value = self.code != "schema::missing_key";
        (about_its_value && crate::check::is_secret_path(&self.path)) || has_secret_key(line)
    }

    /// Renders with the source read from disk (relative paths against `base`), falling back to
    /// no snippet when the file cannot be read. The file is read like any repository file
    /// ([`crate::repofile`]): never through a symlink, never a special file, never more than
    /// [`SNIPPET_SOURCE_MAX`] bytes.
    pub fn render_from_disk(&self, base: &Path) -> String {
        let source = self
            .location
            .as_ref()
            .and_then(|loc| Source::read(base, &loc.file));
        self.render_with(source.as_ref())
    }
}

/// The largest file a snippet is shown from. Every input the tool accepts is smaller; a larger
/// file was already refused and is not read a second time just to quote it.
pub const SNIPPET_SOURCE_MAX: u64 = 32 << 20;

/// The text of a file with the start of each line, for quoting lines in snippets.
#[derive(Debug)]
pub struct Source {
    text: String,
    starts: Vec<usize>,
}

impl Source {
    pub fn new(text: String) -> Source {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source { text, starts }
    }

    /// Reads `file` (relative to `base` unless absolute) for snippets, through
    /// [`crate::repofile`]; `None` when it is missing, a symlink, special, too large or not
    /// UTF-8, and then the diagnostic is printed without a snippet.
    pub fn read(base: &Path, file: &Path) -> Option<Source> {
        if is_key_file(file) {
            return None;
        }
        let leaves = file
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
        // A path with `..` was given on the command line (`--config ../cluster.yaml`); paths
        // of repository files are normalised and read strictly below `base`.
        let bytes = if file.is_absolute() || leaves {
            crate::repofile::read(file, SNIPPET_SOURCE_MAX)
        } else {
            crate::repofile::read_under(base, file, SNIPPET_SOURCE_MAX)
        };
        let text = crate::repofile::into_text(bytes.ok()?).ok()?;
        Some(Source::new(text))
    }

    /// Line `n` (1-based) without its line break.
    pub fn line(&self, n: u32) -> Option<&str> {
        let i = (n as usize).checked_sub(1)?;
        let start = *self.starts.get(i)?;
        let end = self.starts.get(i + 1).map_or(self.text.len(), |e| e - 1);
        if start > self.text.len() || (start == self.text.len() && i > 0) {
            return None;
        }
        let line = &self.text[start..end.max(start)];
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&terminal_safe(&self.headline()))
    }
}

/// Replaces what a terminal would act on instead of print: control characters other than
/// newline and tab (ESC sequences can rewrite the screen or the window title), and the bidi
/// overrides that make a line read differently from what it contains. Each becomes `\u{…}`.
pub fn terminal_safe(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            out.push_str(&escape(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `line` holds a secret key with its value (`api_key: …`, `{…, cloudflare_token: …}`),
/// whatever the finding on that line is about (a syntax error, a duplicate key, a neighbour).
fn has_secret_key(line: &str) -> bool {
    crate::check::SECRET_FIELDS.iter().any(|field| {
        line.match_indices(field).any(|(i, _)| {
            let before = line[..i].chars().next_back();
            let after = line[i + field.len()..].trim_start_matches(['"', '\'']);
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
                && after.trim_start().starts_with(':')
        })
    })
}

/// File names of the key files next to `cluster.yaml` and of age and SSH keys anywhere: never
/// quoted, whatever points a diagnostic at them (a kustomization listing `../github-push-token.txt`).
pub fn is_key_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        name.as_str(),
        "age.key" | "github-push-token.txt" | "cloudflare-tunnel.json" | "keys.txt"
    ) || name.ends_with(".key")
        || name.ends_with(".agekey")
        || name.starts_with("id_")
        || name.starts_with("github-deploy.key")
}

fn looks_like_key_material(line: &str) -> bool {
    let upper = line.to_ascii_uppercase();
    upper.contains("AGE-SECRET-KEY-") || upper.contains("PRIVATE KEY")
}

fn escape(c: char) -> String {
    format!("\\u{{{:x}}}", c as u32)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// `   |\n23 |     host: "x"\n   |           ^^^\n`
fn snippet(line: &str, loc: &Location) -> String {
    // Very long lines (minified input) are cut so the caret stays readable.
    let line: String = line.chars().take(200).collect();
    let number = loc.line.to_string();
    let gutter = " ".repeat(number.len());
    let col = loc.col.max(1) as usize;
    let width = line.chars().count();
    let len = (loc.len.max(1) as usize).min(width.saturating_sub(col - 1).max(1));
    let pad: String = line
        .chars()
        .take(col - 1)
        .map(|c| match c {
            '\t' => "\t".to_owned(),
            // Keeps the caret under the right character once the line is escaped.
            c if needs_escape(c) => " ".repeat(escape(c).len()),
            _ => " ".to_owned(),
        })
        .collect();
    format!(
        "{gutter} |\n{number} | {line}\n{gutter} | {pad}{}\n",
        "^".repeat(len),
        line = line.trim_end()
    )
}

/// Counts errors and warnings in a list of diagnostics.
pub fn counts(diags: &[Diagnostic]) -> (usize, usize) {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    (errors, diags.len() - errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_headline_snippet_and_help() {
        let d = Diagnostic::error(
            "schema::azure_host",
            "ai_gateway_azure_deployments[1].host",
            "\"foo.azure.com\" must end in .openai.azure.com",
        )
        .at(Some(Location::new("cluster.yaml", 2, 11, 15)))
        .with_help("use the endpoint host of the Azure OpenAI resource");
        let src = "a: 1\n    host: \"foo.azure.com\"\n";
        let text = d.render(Some(src));
        assert_eq!(
            text,
            "error[schema::azure_host]: cluster.yaml:2:11: ai_gateway_azure_deployments[1].host: \"foo.azure.com\" must end in .openai.azure.com\n  |\n2 |     host: \"foo.azure.com\"\n  |           ^^^^^^^^^^^^^^^\n   = help: use the endpoint host of the Azure OpenAI resource\n"
        );
    }

    #[test]
    fn terminal_escapes_in_sources_and_messages_are_shown_not_obeyed() {
        let d = Diagnostic::error("x::y", "k", "bad \u{1b}]0;owned\u{7}value")
            .at(Some(Location::new("f", 1, 8, 1)));
        let text = d.render(Some("k: \u{1b}[2Jx\u{202e}y\n"));
        assert!(!text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{202e}'));
        assert!(
            text.contains("\\u{1b}[2J") && text.contains("\\u{202e}"),
            "{text}"
        );
        // The caret still points under `x`, past the escaped sequence.
        let lines: Vec<&str> = text.lines().collect();
        let code = lines.iter().find(|l| l.starts_with("1 |")).unwrap();
        let caret = lines.iter().find(|l| l.contains('^')).unwrap();
        assert_eq!(code.find('x'), caret.find('^'), "{text}");
    }

    #[test]
    fn key_material_is_never_quoted() {
        let d = Diagnostic::error("x::y", "", "m").at(Some(Location::new("f", 2, 1, 3)));
        let text = d.render(Some("# created\nAGE-SECRET-KEY-1ABCDEF\n"));
        assert!(!text.contains("AGE-SECRET-KEY-1ABCDEF"), "{text}");
        assert!(text.contains("not shown"));
        let d = Diagnostic::error(
            "x::y",
            "ai_gateway_azure_deployments[0].api_key",
            "too short",
        )
        .at(Some(Location::new("f", 1, 10, 3)));
        let text = d.render(Some("api_key: sk-live-123\n"));
        assert!(!text.contains("sk-live-123"), "{text}");
        for line in [
            "    api_key: \"S3CRET\" ; bogus: 1",
            "  - {name: \"BAD NAME!\", api_key: \"S3CRET\"}",
            "cloudflare_token: \"S3CRET\"",
            "  'key' : S3CRET",
        ] {
            let d =
                Diagnostic::error("yaml::syntax", "", "m").at(Some(Location::new("f", 1, 1, 1)));
            assert!(!d.render(Some(line)).contains("S3CRET"), "{line}");
        }
        let d = Diagnostic::error("x::y", "", "m").at(Some(Location::new("f", 1, 1, 1)));
        assert!(d.render(Some("monkey: 1")).contains("monkey"));
        assert!(Source::read(Path::new("/"), Path::new("repo/github-push-token.txt")).is_none());
    }

    #[test]
    fn source_lines_index_once() {
        let src = Source::new("a\r\nb\n\nlast".to_owned());
        assert_eq!(src.line(1), Some("a"));
        assert_eq!(src.line(2), Some("b"));
        assert_eq!(src.line(3), Some(""));
        assert_eq!(src.line(4), Some("last"));
        assert_eq!(src.line(5), None);
        assert_eq!(src.line(0), None);
        let src = Source::new("one\n".to_owned());
        assert_eq!(src.line(2), None);
    }

    #[test]
    fn snippet_survives_out_of_range_locations() {
        let d = Diagnostic::warning("x::y", "", "m").at(Some(Location::new("f", 99, 500, 3)));
        assert_eq!(d.render(Some("one line\n")), "warning[x::y]: f:99:500: m\n");
        let d = Diagnostic::warning("x::y", "", "m").at(Some(Location::new("f", 1, 500, 3)));
        assert!(d.render(Some("one line\n")).contains("^"));
    }
}
