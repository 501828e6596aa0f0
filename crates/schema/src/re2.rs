//! Regular expressions as Envoy AI Gateway reads them: Go's `regexp` package (RE2 syntax).
//!
//! The gateway compiles `MCPRoute` tool filters with Go's `regexp.Compile`. Rust's `regex` crate
//! accepts a superset of that syntax (class set operations, more flags, long Unicode property
//! names, `\<`, …) and misses a little of it (`\Q…\E`). A pattern is accepted here only when both
//! would accept it with the same meaning: it is parsed with `regex-syntax` (the parser under
//! `regex`), every construct RE2 does not know is refused with the RE2 rule named, `\Q…\E` is
//! understood, and the result must still compile.

use regex_syntax::ast::{
    self, Assertion, AssertionKind, Ast, ClassSetBinaryOp, ClassSetItem, ClassUnicodeKind, Flag,
    FlagsItemKind, GroupKind, HexLiteralKind, LiteralKind, RepetitionKind, RepetitionRange,
    SpecialLiteralKind, Visitor,
};

/// Go's limit on a repetition count (`{n}`, `{n,m}`).
const MAX_REPEAT: u32 = 1000;

/// One- and two-letter Unicode general categories that Go's `unicode` package defines.
const GO_CATEGORIES: &[&str] = &[
    "C", "Cc", "Cf", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N",
    "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So",
    "Z", "Zl", "Zp", "Zs",
];

/// Script names that both Go's `unicode.Scripts` and `regex-syntax` know, for the scripts a tool
/// name could plausibly use. Other scripts are refused rather than guessed.
const GO_SCRIPTS: &[&str] = &[
    "Arabic",
    "Armenian",
    "Bengali",
    "Common",
    "Cyrillic",
    "Devanagari",
    "Georgian",
    "Greek",
    "Gujarati",
    "Gurmukhi",
    "Han",
    "Hangul",
    "Hebrew",
    "Hiragana",
    "Inherited",
    "Kannada",
    "Katakana",
    "Khmer",
    "Lao",
    "Latin",
    "Malayalam",
    "Myanmar",
    "Sinhala",
    "Tamil",
    "Telugu",
    "Thai",
    "Tibetan",
];

/// Checks `pattern` as Go's `regexp.Compile` would; `Err` names the rule it breaks.
pub fn check(pattern: &str) -> Result<(), String> {
    let expanded = to_rust_syntax(pattern)?;
    let parsed = ast::parse::ParserBuilder::new()
        .nest_limit(1000)
        .build()
        .parse(&expanded)
        .map_err(|e| e.kind().to_string())?;
    ast::visit(&parsed, Re2Only { source: &expanded })?;
    regex::Regex::new(&expanded).map_err(|e| {
        e.to_string()
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_owned()
    })?;
    Ok(())
}

/// Rewrites a pattern in RE2 syntax into the same regular expression in `regex-syntax`'s:
/// `\Q…\E` (literal text; `\E` may be omitted at the end) becomes escaped literals, a `{` that
/// does not start a repetition RE2 reads (`{n}`, `{n,}`, `{n,m}`, digits only) is a literal and
/// is escaped, `[` inside a class is a literal in RE2 and is escaped, and `\p{^X}` becomes
/// `\P{X}`. A `\Q` inside a class is refused, as RE2 refuses it.
fn to_rust_syntax(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let n = chars.len();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    let at = |k: usize| chars.get(k).copied();
    while i < n {
        let c = chars[i];
        if c == '\\' {
            let Some(next) = at(i + 1) else {
                out.push(c);
                break;
            };
            if next == 'Q' {
                if in_class {
                    return Err("`\\Q…\\E` inside a class is not RE2 syntax".to_owned());
                }
                let start = i + 2;
                let end = (start..n)
                    .find(|&k| chars[k] == '\\' && at(k + 1) == Some('E'))
                    .unwrap_or(n);
                let literal: String = chars[start..end].iter().collect();
                out.push_str(&regex_syntax::escape(&literal));
                i = if end == n { n } else { end + 2 };
                continue;
            }
            if matches!(next, 'p' | 'P') && at(i + 2) == Some('{') && at(i + 3) == Some('^') {
                out.push('\\');
                out.push(if next == 'p' { 'P' } else { 'p' });
                out.push('{');
                i += 4;
                continue;
            }
            if matches!(next, 'p' | 'P' | 'x') && at(i + 2) == Some('{') {
                // `\\p{Greek}`, `\\x{1F600}`: the braces belong to the escape.
                let end = (i + 3..n).find(|&k| chars[k] == '}').unwrap_or(n - 1);
                out.extend(&chars[i..=end]);
                i = end + 1;
                continue;
            }
            out.push(c);
            out.push(next);
            i += 2;
            continue;
        }
        if in_class {
            if c == '[' && at(i + 1) == Some(':') {
                // `[:alpha:]` up to its `:]`.
                let end =
                    (i + 2..n.saturating_sub(1)).find(|&k| chars[k] == ':' && chars[k + 1] == ']');
                if let Some(end) = end {
                    out.extend(&chars[i..end + 2]);
                    i = end + 2;
                    continue;
                }
            }
            match c {
                '[' => out.push_str("\\["),
                // Set operators in Rust's syntax, plain characters in RE2's.
                '&' | '~' if at(i + 1) == Some(c) => {
                    out.push('\\');
                    out.push(c);
                }
                ']' => {
                    in_class = false;
                    out.push(c);
                }
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push(c);
                i += 1;
                if at(i) == Some('^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` first in a class is a literal.
                if at(i) == Some(']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            '{' => {
                let mut k = i + 1;
                let digits = |k: &mut usize| {
                    let s = *k;
                    while at(*k).is_some_and(|c| c.is_ascii_digit()) {
                        *k += 1;
                    }
                    *k > s
                };
                let mut repeat = digits(&mut k);
                if repeat && at(k) == Some(',') {
                    k += 1;
                    digits(&mut k);
                }
                repeat &= at(k) == Some('}');
                if repeat {
                    out.extend(&chars[i..=k]);
                    i = k + 1;
                } else {
                    out.push_str("\\{");
                    i += 1;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

struct Re2Only<'a> {
    source: &'a str,
}

impl Visitor for Re2Only<'_> {
    type Output = ();
    type Err = String;

    fn finish(self) -> Result<(), String> {
        Ok(())
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), String> {
        match ast {
            Ast::Flags(set) => flags(&set.flags.items),
            Ast::Literal(lit) => literal(&lit.kind),
            Ast::Assertion(a) => assertion(a),
            Ast::ClassUnicode(c) => unicode_class(&c.kind),
            Ast::Repetition(r) => {
                if let Ast::Repetition(_) = *r.ast {
                    return Err(
                        "a repetition of a repetition (`a**`, `a+*`): RE2 refuses nested repetition operators; group it, `(a*)*`".to_owned(),
                    );
                }
                if let RepetitionKind::Range(range) = &r.op.kind {
                    let text = &self.source[r.op.span.start.offset..r.op.span.end.offset];
                    if text.starts_with("{,") {
                        return Err(format!(
                            "`{text}` is a literal in RE2, not a repetition: write `{{0,…}}`"
                        ));
                    }
                    let (RepetitionRange::Exactly(n)
                    | RepetitionRange::AtLeast(n)
                    | RepetitionRange::Bounded(_, n)) = *range;
                    if n > MAX_REPEAT {
                        return Err(format!(
                            "repetition count {n} is over RE2's limit of {MAX_REPEAT}"
                        ));
                    }
                }
                Ok(())
            }
            Ast::Group(g) => match &g.kind {
                GroupKind::CaptureName { name, .. } => {
                    if name
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        Ok(())
                    } else {
                        Err(format!(
                            "group name `{}`: RE2 allows only letters, digits and `_`",
                            name.name
                        ))
                    }
                }
                GroupKind::NonCapturing(f) => flags(&f.items),
                GroupKind::CaptureIndex(_) => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), String> {
        match item {
            ClassSetItem::Literal(lit) => literal(&lit.kind),
            ClassSetItem::Unicode(c) => unicode_class(&c.kind),
            ClassSetItem::Range(r) => {
                literal(&r.start.kind)?;
                literal(&r.end.kind)
            }
            ClassSetItem::Bracketed(_) => Err(
                "a class inside a class (`[a[b]]`): RE2 reads the inner `[` as a literal"
                    .to_owned(),
            ),
            _ => Ok(()),
        }
    }

    fn visit_class_set_binary_op_pre(&mut self, _op: &ClassSetBinaryOp) -> Result<(), String> {
        Err("class set operations (`&&`, `--`, `~~`) are not RE2 syntax".to_owned())
    }
}

fn flags(items: &[ast::FlagsItem]) -> Result<(), String> {
    for item in items {
        if let FlagsItemKind::Flag(flag) = item.kind {
            let name = match flag {
                Flag::CaseInsensitive | Flag::MultiLine | Flag::DotMatchesNewLine => continue,
                Flag::SwapGreed => continue,
                Flag::Unicode => "u",
                Flag::CRLF => "R",
                Flag::IgnoreWhitespace => "x",
            };
            return Err(format!(
                "flag `{name}` is not RE2 syntax (RE2 knows i, m, s and U)"
            ));
        }
    }
    Ok(())
}

fn literal(kind: &LiteralKind) -> Result<(), String> {
    match kind {
        LiteralKind::HexFixed(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong)
        | LiteralKind::HexBrace(HexLiteralKind::UnicodeShort | HexLiteralKind::UnicodeLong) => {
            Err("`\\u` and `\\U` escapes are not RE2 syntax: write `\\x{…}`".to_owned())
        }
        LiteralKind::Special(SpecialLiteralKind::Space) => {
            Err("an escaped space is not RE2 syntax: write the space itself".to_owned())
        }
        _ => Ok(()),
    }
}

fn assertion(a: &Assertion) -> Result<(), String> {
    match a.kind {
        AssertionKind::StartLine
        | AssertionKind::EndLine
        | AssertionKind::StartText
        | AssertionKind::EndText
        | AssertionKind::WordBoundary
        | AssertionKind::NotWordBoundary => Ok(()),
        _ => Err(
            "`\\b{…}`, `\\<` and `\\>` are not RE2 syntax: RE2 has only `\\b` and `\\B`".to_owned(),
        ),
    }
}

fn unicode_class(kind: &ClassUnicodeKind) -> Result<(), String> {
    let name = match kind {
        ClassUnicodeKind::OneLetter(c) => return one_letter(*c),
        ClassUnicodeKind::Named(name) => name.as_str(),
        ClassUnicodeKind::NamedValue { name, value, .. } => {
            return Err(format!(
                "`\\p{{{name}={value}}}` is not RE2 syntax: RE2 knows `\\p{{Name}}` with a category or script name"
            ));
        }
    };
    if name == "Any" || GO_CATEGORIES.contains(&name) || GO_SCRIPTS.contains(&name) {
        Ok(())
    } else {
        Err(format!(
            "`\\p{{{name}}}` is not a class RE2 knows: use a general category such as `L`, `Lu` or `N`, or a script such as `Latin`"
        ))
    }
}

fn one_letter(c: char) -> Result<(), String> {
    if GO_CATEGORIES.contains(&c.to_string().as_str()) {
        Ok(())
    } else {
        Err(format!("`\\p{c}` is not a category RE2 knows"))
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_the_common_re2_subset() {
        for ok in [
            ".*issues?.*",
            "^(get|list)_.*$",
            "(?i)repo",
            "(?P<name>x)|(?<other>y)",
            "[[:alpha:]_]+",
            "\\pL\\p{Greek}\\PN",
            "a{2,1000}",
            "\\Qa.b*c\\E+",
            "\\Qtrailing.*",
            "[]a]",
            "[^]a]",
            "a{",
            "x{a}",
            "a{ 2 }",
            "a{,3}",
            "[a[b]",
            "\\p{^Greek}",
            "[[:alpha:]-]",
            "[a&&b~~c]",
            // RE2 reads `{start}` after `\\b` as literal text, and so does the rewrite.
            "\\b{start}x",
            "\\x{1F600}",
            "\\bword\\B",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_go_rejects_or_reads_differently() {
        for bad in [
            "[a-z--[aeiou]]",
            "(?x) a b",
            "(?u)x",
            "(?R)x",
            "\\p{Letter}",
            "\\p{Emoji}",
            "\\p{gc=Lu}",
            "\\<word\\>",
            "a{1001}",
            "\\u0041",
            "[]\\Qa\\E]",
            "[[:alpha:]\\Qx\\E]",
            "(?P<a.b>x)",
            "(unclosed",
            "a**",
        ] {
            assert!(check(bad).is_err(), "{bad} should be refused");
        }
    }
}
