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
    let expanded = expand_quotes(pattern)?;
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

/// Rewrites RE2's `\Q…\E` (everything between is literal; `\E` may be omitted at the end) into
/// escaped literals, which both syntaxes read the same way.
fn expand_quotes(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(i) = find_unescaped(rest, "\\Q") {
        out.push_str(&rest[..i]);
        let quoted = &rest[i + 2..];
        let (literal, after) = match quoted.find("\\E") {
            Some(end) => (&quoted[..end], &quoted[end + 2..]),
            None => (quoted, ""),
        };
        out.push_str(&regex_syntax::escape(literal));
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// The byte offset of `needle` (which starts with a backslash) where that backslash is not
/// itself escaped, outside a bracketed class.
fn find_unescaped(text: &str, needle: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                if !in_class && text[i..].starts_with(needle) {
                    return Some(i);
                }
                i += 2;
                continue;
            }
            b'[' => in_class = true,
            b']' => in_class = false,
            _ => {}
        }
        i += 1;
    }
    None
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
            "\\x{1F600}",
            "\\bword\\B",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_go_rejects_or_reads_differently() {
        for bad in [
            "[a-z&&[^aeiou]]",
            "[a[b]]",
            "(?x) a b",
            "(?u)x",
            "(?R)x",
            "\\p{Letter}",
            "\\p{Emoji}",
            "\\p{gc=Lu}",
            "\\<word\\>",
            "\\b{start}x",
            "a{1001}",
            "a{,3}",
            "\\u0041",
            "(?P<a.b>x)",
            "(unclosed",
            "a**",
        ] {
            assert!(check(bad).is_err(), "{bad} should be refused");
        }
    }
}
