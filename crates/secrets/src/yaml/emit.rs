//! Writes [`Node`] trees the way sops' YAML store does through yaml.v3's encoder: block style,
//! `indent` spaces per level (sequences indented under their key), no line folding, and
//! libyaml's scalar style rules (plain when unambiguous, else single or double quotes,
//! literal blocks for multi-line strings).

use super::resolve::string_can_be_plain;
use super::{MapItem, Node};

/// Writes documents separated by `---` (none before the first), each ending in a newline.
pub(crate) fn emit_documents(docs: &[Node], indent: usize) -> String {
    let mut e = Emitter {
        out: String::new(),
        best: indent.clamp(2, 9),
    };
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            e.out.push_str("---\n");
        }
        match doc {
            Node::Map(items) if has_pairs(items) => e.map(items, 0, false),
            Node::Seq(items) if has_values(items) => e.seq(items, 0, false),
            other => {
                e.scalar_or_empty(other, 0, false);
                e.out.push('\n');
            }
        }
    }
    e.out
}

fn has_pairs(items: &[MapItem]) -> bool {
    items.iter().any(|i| matches!(i, MapItem::Pair(..)))
}

fn has_values(items: &[Node]) -> bool {
    items.iter().any(|i| !matches!(i, Node::Comment(_)))
}

struct Emitter {
    out: String,
    best: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

impl Emitter {
    /// yaml.v3: "everything else aligns to the chosen indentation".
    fn aligned(&self, indent: usize) -> usize {
        self.best * ((indent + self.best) / self.best)
    }

    fn pad(&mut self, n: usize) {
        self.out.extend(std::iter::repeat_n(' ', n));
    }

    fn comment(&mut self, text: &str, indent: usize, inline: bool) {
        if !inline {
            self.pad(indent);
        }
        self.out.push('#');
        self.out.push_str(text);
        self.out.push('\n');
    }

    /// A block mapping whose items sit at `indent`; with `inline` the first item continues the
    /// current line (after `- `).
    fn map(&mut self, items: &[MapItem], indent: usize, mut inline: bool) {
        for item in items {
            match item {
                MapItem::Comment(text) => self.comment(text, indent, inline),
                MapItem::Pair(key, value) => {
                    if !inline {
                        self.pad(indent);
                    }
                    self.string(key, indent, true);
                    self.out.push(':');
                    self.value(value, indent, false);
                }
            }
            inline = false;
        }
    }

    /// A block sequence whose dashes sit at `indent`.
    fn seq(&mut self, items: &[Node], indent: usize, mut inline: bool) {
        for item in items {
            if let Node::Comment(text) = item {
                self.comment(text, indent, inline);
            } else {
                if !inline {
                    self.pad(indent);
                }
                self.out.push('-');
                self.value(item, indent, true);
            }
            inline = false;
        }
    }

    /// Writes the value after `key:` (in a mapping at `indent`) or after `-` (in a sequence
    /// whose dashes are at `indent`), ending the line.
    fn value(&mut self, node: &Node, indent: usize, in_seq: bool) {
        let child = if in_seq {
            indent + 2
        } else {
            self.aligned(indent)
        };
        match node {
            Node::Map(items) if has_pairs(items) => {
                if in_seq {
                    self.out.push(' ');
                    self.map(items, child, true);
                } else {
                    self.out.push('\n');
                    self.map(items, child, false);
                }
            }
            Node::Seq(items) if has_values(items) => {
                if in_seq {
                    self.out.push(' ');
                    self.seq(items, child, true);
                } else {
                    self.out.push('\n');
                    self.seq(items, child, false);
                }
            }
            other => {
                self.out.push(' ');
                self.scalar_or_empty(other, child, false);
                self.out.push('\n');
            }
        }
    }

    fn scalar_or_empty(&mut self, node: &Node, content_indent: usize, simple_key: bool) {
        match node {
            Node::Null => self.out.push_str("null"),
            Node::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Node::Int(i) => self.out.push_str(&i.to_string()),
            Node::Float(f) => self.out.push_str(&format_float(*f)),
            Node::Time(t) => self.out.push_str(t),
            Node::Str(s) => self.string(s, content_indent, simple_key),
            Node::Map(_) => self.out.push_str("{}"),
            Node::Seq(_) => self.out.push_str("[]"),
            // A lone comment is never a value; write it as an empty string rather than lose text.
            Node::Comment(c) => self.string(c, content_indent, simple_key),
        }
    }

    fn string(&mut self, s: &str, content_indent: usize, simple_key: bool) {
        match select_style(s, simple_key) {
            Style::Plain => self.out.push_str(s),
            Style::Single => {
                self.out.push('\'');
                self.out.push_str(&s.replace('\'', "''"));
                self.out.push('\'');
            }
            Style::Double => write_double(&mut self.out, s),
            Style::Literal => self.literal(s, content_indent),
        }
    }

    fn literal(&mut self, s: &str, indent: usize) {
        self.out.push('|');
        if s.starts_with(' ') || starts_with_break(s) {
            self.out.push_str(&self.best.to_string());
        }
        let mut chars = s.chars().rev();
        match (chars.next(), chars.next()) {
            (Some(last), _) if !is_break(last) => self.out.push('-'),
            (Some(_), None) => self.out.push('+'),
            (Some(_), Some(prev)) if is_break(prev) => self.out.push('+'),
            _ => {}
        }
        self.out.push('\n');
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            if !line.is_empty() {
                self.pad(indent);
                self.out.push_str(line);
            }
            self.out.push('\n');
        }
        // The caller ends the line after a scalar; the literal already did.
        self.out.pop();
    }
}

fn starts_with_break(s: &str) -> bool {
    s.chars().next().is_some_and(is_break)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's `is_printable` (tabs and characters outside the BMP are not).
fn is_printable(c: char) -> bool {
    let c = c as u32;
    c == 0x0A
        || (0x20..=0x7E).contains(&c)
        || (0xA0..=0xD7FF).contains(&c)
        || ((0xE000..=0xFFFD).contains(&c) && c != 0xFEFF)
}

struct Analysis {
    multiline: bool,
    block_plain: bool,
    single: bool,
    block: bool,
}

/// libyaml's `yaml_emitter_analyze_scalar` (block context, unicode output).
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            multiline: false,
            block_plain: true,
            single: true,
            block: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break, mut previous_space, mut previous_break) =
        (false, false, false, false);
    let (mut line_breaks, mut special) = (false, false);
    let blankz =
        |i: usize| i >= chars.len() || matches!(chars[i], ' ' | '\t') || is_break(chars[i]);
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = blankz(i + 1);
        let last = i + 1 == chars.len();
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' if followed_by_whitespace => block_indicators = true,
                '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= i == 0;
            trailing_break |= last;
            space_break |= previous_space;
            previous_break = true;
            previous_space = false;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = matches!(c, ' ' | '\t') || is_break(c);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain: true,
        single: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.block_plain = false;
        a.single = false;
    }
    if space_break || special {
        a.block_plain = false;
        a.single = false;
        a.block = false;
    }
    if line_breaks || block_indicators {
        a.block_plain = false;
    }
    a
}

/// yaml.v3's `stringv` request followed by libyaml's `yaml_emitter_select_scalar_style`.
fn select_style(s: &str, simple_key: bool) -> Style {
    let requested = if s.contains('\n') {
        Style::Literal
    } else if string_can_be_plain(s) {
        Style::Plain
    } else {
        Style::Double
    };
    let a = analyze(s);
    let mut style = requested;
    if simple_key && a.multiline {
        return Style::Double;
    }
    if style == Style::Plain && (!a.block_plain || (s.is_empty() && simple_key)) {
        style = Style::Single;
    }
    if style == Style::Single && !a.single {
        style = Style::Double;
    }
    if style == Style::Literal && (!a.block || simple_key) {
        style = Style::Double;
    }
    style
}

fn write_double(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
            out.push('\\');
            match c {
                '\0' => out.push('0'),
                '\u{7}' => out.push('a'),
                '\u{8}' => out.push('b'),
                '\t' => out.push('t'),
                '\n' => out.push('n'),
                '\u{B}' => out.push('v'),
                '\u{C}' => out.push('f'),
                '\r' => out.push('r'),
                '\u{1B}' => out.push('e'),
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                '\u{85}' => out.push('N'),
                '\u{A0}' => out.push('_'),
                '\u{2028}' => out.push('L'),
                '\u{2029}' => out.push('P'),
                c if (c as u32) <= 0xFF => out.push_str(&format!("x{:02X}", c as u32)),
                c if (c as u32) <= 0xFFFF => out.push_str(&format!("u{:04X}", c as u32)),
                c => out.push_str(&format!("U{:08X}", c as u32)),
            }
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` with yaml.v3's names for infinities and NaN.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format!("{f}");
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    fn roundtrip(text: &str, indent: usize) -> String {
        emit_documents(&parse_documents(text).unwrap(), indent)
    }

    #[test]
    fn sops_metadata_layout_with_indent_2_and_4() {
        let text = "sops:\n  age:\n    - recipient: age1x\n      enc: |\n        -----BEGIN\n        -----END\n  lastmodified: \"2024-11-12T13:33:42Z\"\n  version: 3.10.2\n";
        assert_eq!(roundtrip(text, 2), text);
        let four = "sops:\n    age:\n        - recipient: age1x\n          enc: |\n            -----BEGIN\n            -----END\n    lastmodified: \"2024-11-12T13:33:42Z\"\n    version: 3.10.2\n";
        assert_eq!(roundtrip(text, 4), four);
    }

    #[test]
    fn scalar_styles() {
        let cases = [
            ("plain", "plain"),
            ("", "\"\""),
            ("yes", "\"yes\""),
            ("123", "\"123\""),
            ("a: b", "'a: b'"),
            ("it's", "it's"),
            ("#x", "'#x'"),
            (" lead", "' lead'"),
            ("tab\there", "\"tab\\there\""),
            ("emoji 😀", "\"emoji \\U0001F600\""),
            ("ünïcödé", "ünïcödé"),
            ("- x", "'- x'"),
            ("2024-01-02", "\"2024-01-02\""),
        ];
        for (input, want) in cases {
            let doc = Node::Map(vec![MapItem::Pair("k".into(), Node::Str(input.into()))]);
            assert_eq!(
                emit_documents(&[doc], 2),
                format!("k: {want}\n"),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn literal_blocks_and_chomping() {
        let doc = |s: &str| {
            emit_documents(
                &[Node::Map(vec![MapItem::Pair(
                    "k".into(),
                    Node::Str(s.into()),
                )])],
                2,
            )
        };
        assert_eq!(doc("a\nb\n"), "k: |\n  a\n  b\n");
        assert_eq!(doc("a\nb"), "k: |-\n  a\n  b\n");
        assert_eq!(doc("a\n\nb\n\n"), "k: |+\n  a\n\n  b\n\n");
        assert_eq!(doc(" a\n"), "k: |2\n   a\n");
        assert_eq!(doc("a \nb"), "k: \"a \\nb\"\n");
    }

    #[test]
    fn floats_like_go() {
        assert_eq!(format_float(1234.56789), "1234.56789");
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(1e6), "1e+06");
        assert_eq!(format_float(1e21), "1e+21");
        assert_eq!(format_float(0.0001), "0.0001");
        assert_eq!(format_float(0.00001), "1e-05");
        assert_eq!(format_float(-2.5e-7), "-2.5e-07");
    }

    #[test]
    fn collections_comments_and_documents() {
        let text = "a:\n  - x\n  - k: v\n    j: w\n  - - z\n# c\nb: {}\nc: []\n---\nd: null\n";
        assert_eq!(roundtrip(text, 2), text);
        assert_eq!(
            roundtrip(text, 4),
            "a:\n    - x\n    - k: v\n      j: w\n    - - z\n# c\nb: {}\nc: []\n---\nd: null\n"
        );
    }
}
