//! Printing diagnostics for people: one block per finding, grouped by file, then a summary.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use schema::{Diagnostic, Severity};

/// Prints every diagnostic to stderr, errors first within each file, with source snippets read
/// from disk relative to `base`. Returns (errors, warnings).
pub fn print(diags: &[Diagnostic], base: &Path) -> (usize, usize) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut by_file: BTreeMap<Option<PathBuf>, Vec<&Diagnostic>> = BTreeMap::new();
    for d in diags {
        by_file
            .entry(d.location.as_ref().map(|l| l.file.clone()))
            .or_default()
            .push(d);
    }
    let mut sources: BTreeMap<PathBuf, Option<String>> = BTreeMap::new();
    for (file, mut list) in by_file {
        list.sort_by_key(|d| (d.severity, d.location.as_ref().map(|l| (l.line, l.col))));
        for d in list {
            let source = file.as_ref().and_then(|f| {
                sources
                    .entry(f.clone())
                    .or_insert_with(|| {
                        let path = if f.is_absolute() {
                            f.clone()
                        } else {
                            base.join(f)
                        };
                        std::fs::read_to_string(path).ok()
                    })
                    .clone()
            });
            let text = d.render(source.as_deref());
            eprintln!("{}", paint(&text, d.severity, color));
        }
    }
    schema::counts(diags)
}

fn paint(text: &str, severity: Severity, color: bool) -> String {
    if !color {
        return text.to_owned();
    }
    let code = match severity {
        Severity::Error => "1;31",
        Severity::Warning => "1;33",
    };
    match text.split_once('\n') {
        Some((head, rest)) => format!("\x1b[{code}m{head}\x1b[0m\n{rest}"),
        None => format!("\x1b[{code}m{text}\x1b[0m"),
    }
}

/// "2 errors, 1 warning"
pub fn summary(errors: usize, warnings: usize) -> String {
    fn plural(n: usize, word: &str) -> String {
        format!("{n} {word}{}", if n == 1 { "" } else { "s" })
    }
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}
