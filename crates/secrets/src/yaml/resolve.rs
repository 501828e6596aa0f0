//! The yaml.v3 resolver for plain scalars (sops-format.md §4.1), and the encoder's quoting
//! decision (`canUsePlain`) that depends on it.

use crate::time::parse_yaml_timestamp;

/// What a plain scalar means to yaml.v3.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    /// Fits uint64 but not int64: sops refuses it (`unknown type`).
    BigUint,
    Float(f64),
    /// The RFC3339Nano text of the timestamp.
    Time(String),
    Str,
}

/// Go's `strconv.ParseInt(s, 0, 64)` after yaml.v3 removed `_`; `None` on syntax error,
/// `Some(Err(()))` on overflow.
fn go_parse_int(s: &str) -> Option<Result<i64, ()>> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = go_parse_uint(body)?;
    let value = match magnitude {
        Ok(m) => m,
        Err(()) => return Some(Err(())),
    };
    if neg {
        if value <= 1u64 << 63 {
            Some(Ok((value as i64).wrapping_neg()))
        } else {
            Some(Err(()))
        }
    } else if value <= i64::MAX as u64 {
        Some(Ok(value as i64))
    } else {
        Some(Err(()))
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` (base prefixes `0x`, `0o`, `0b`, legacy `0`).
fn go_parse_uint(s: &str) -> Option<Result<u64, ()>> {
    if s.is_empty() {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_owned())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_owned())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_owned())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_owned())
    } else {
        (10, lower)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some(u64::from_str_radix(&digits, radix).map_err(|_| ()))
}

/// yaml.v3's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    if int_digits == 0 {
        if i >= b.len() || b[i] != b'.' {
            return false;
        }
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == frac_start {
            return false;
        }
    } else if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseFloat(s, 64)` restricted to the decimal forms yaml.v3 hands it;
/// out-of-range values are errors in Go, so they stay strings.
fn go_parse_float(s: &str) -> Option<f64> {
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Resolves a plain scalar the way yaml.v3 does when decoding into `interface{}`.
pub(crate) fn resolve_plain(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match s.as_bytes()[0] {
        b'.' => match go_parse_float(s) {
            Some(v) if is_yaml_style_float(s) => Resolved::Float(v),
            _ => Resolved::Str,
        },
        b'0'..=b'9' | b'-' | b'+' => {
            if let Some(t) = parse_yaml_timestamp(s) {
                return Resolved::Time(t.rfc3339_nano());
            }
            let plain = s.replace('_', "");
            match go_parse_int(&plain) {
                Some(Ok(v)) => return Resolved::Int(v),
                Some(Err(())) => {
                    let body = plain.strip_prefix('+').unwrap_or(&plain);
                    if !plain.starts_with('-') && matches!(go_parse_uint(body), Some(Ok(_))) {
                        return Resolved::BigUint;
                    }
                }
                None => {}
            }
            if let Some(v) = go_parse_float(&plain).filter(|_| is_yaml_style_float(&plain)) {
                return Resolved::Float(v);
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

/// yaml.v3's `isOldBool`: YAML 1.1 booleans that v3 reads as strings but still quotes.
fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// yaml.v3's `isBase60Float`: `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0] == b'-' || b[0] == b'+' || b[0].is_ascii_digit()) || !s.contains(':')
    {
        return false;
    }
    let mut i = usize::from(b[0] == b'-' || b[0] == b'+');
    if i >= b.len() || !b[i].is_ascii_digit() {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while i < b.len() && b[i] == b':' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 2 {
            i += 1;
        }
        let n = i - start;
        if n == 0 || (n == 2 && b[start] > b'5') {
            // `[0-5]?[0-9]`: a two-digit group must start with 0-5.
            if n == 2 && b[start] > b'5' {
                return false;
            }
            if n == 0 {
                return false;
            }
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// Whether yaml.v3's encoder may write this string as a plain scalar without changing its type.
pub(crate) fn string_can_be_plain(s: &str) -> bool {
    resolve_plain(s) == Resolved::Str && !is_base60_float(s) && !is_old_bool(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_yaml_v3() {
        assert_eq!(resolve_plain("~"), Resolved::Null);
        assert_eq!(resolve_plain("True"), Resolved::Bool(true));
        assert_eq!(resolve_plain("yes"), Resolved::Str);
        assert_eq!(resolve_plain("0x1F"), Resolved::Int(31));
        assert_eq!(resolve_plain("-0o17"), Resolved::Int(-15));
        assert_eq!(resolve_plain("017"), Resolved::Int(15));
        assert_eq!(resolve_plain("1_000"), Resolved::Int(1000));
        assert_eq!(resolve_plain("08"), Resolved::Float(8.0));
        assert_eq!(resolve_plain("1e21"), Resolved::Float(1e21));
        assert_eq!(resolve_plain(".5"), Resolved::Float(0.5));
        assert_eq!(resolve_plain("1.2.3"), Resolved::Str);
        assert_eq!(resolve_plain("1e400"), Resolved::Str);
        assert_eq!(resolve_plain("18446744073709551615"), Resolved::BigUint);
        assert_eq!(
            resolve_plain("-9223372036854775808"),
            Resolved::Int(i64::MIN)
        );
        assert_eq!(
            resolve_plain("2024-01-02"),
            Resolved::Time("2024-01-02T00:00:00Z".into())
        );
        assert_eq!(resolve_plain("3.10.2"), Resolved::Str);
    }

    #[test]
    fn quoting_decision() {
        assert!(string_can_be_plain("value"));
        assert!(!string_can_be_plain("yes"));
        assert!(!string_can_be_plain("12"));
        assert!(!string_can_be_plain("1:30"));
        assert!(!string_can_be_plain(""));
        assert!(string_can_be_plain("3.10.2"));
    }
}
