//! Printing diagnostics for people: one block per finding, grouped by file, then a summary.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::io::Write;
use std::path::Path;

use schema::{Diagnostic, Severity, Source};

/// Diagnostics printed in full, at most; the rest are counted (a hostile file can produce
/// millions, and printing them all would take minutes while saying nothing more).
pub const MAX_PRINTED: usize = 500;

/// Prints every diagnostic to stderr, errors first within each file, with source snippets read
/// from disk relative to `base` (each file read once, through `schema::repofile`, so a symlink,
/// a special file or an oversized file is never quoted). Returns (errors, warnings).
pub fn print(diags: &[Diagnostic], base: &Path) -> (usize, usize) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut by_file: BTreeMap<Option<&Path>, Vec<&Diagnostic>> = BTreeMap::new();
    for d in diags {
        by_file
            .entry(d.location.as_ref().map(|l| l.file.as_path()))
            .or_default()
            .push(d);
    }
    let mut printed = 0;
    let mut out = std::io::stderr().lock();
    for (file, mut list) in by_file {
        if printed >= MAX_PRINTED {
            break;
        }
        list.sort_by_key(|d| (d.severity, d.location.as_ref().map(|l| (l.line, l.col))));
        let source = file.and_then(|f| Source::read(base, f));
        for d in list.into_iter().take(MAX_PRINTED - printed) {
            let text = d.render_with(source.as_ref());
            // A closed or full stderr is not a reason to panic; the exit code still tells.
            let _ = writeln!(out, "{}", paint(&text, d.severity, color));
            printed += 1;
        }
    }
    if diags.len() > printed {
        let _ = writeln!(
            out,
            "... and {} more not shown (the summary counts them all); fix the ones above and run again\n",
            diags.len() - printed
        );
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
