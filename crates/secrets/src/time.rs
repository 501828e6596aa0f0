//! Time without a time library: the injectable clock for `lastmodified`, RFC 3339 formatting,
//! and the Go `time.Parse` subset that yaml.v3 and sops use.

use std::time::{SystemTime, UNIX_EPOCH};

/// Where `lastmodified` comes from. Tests inject a fixed instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed instant, in seconds since the Unix epoch (UTC).
    Fixed(i64),
}

impl Clock {
    /// Seconds since the Unix epoch.
    pub fn now_unix(&self) -> i64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            Clock::Fixed(secs) => *secs,
        }
    }

    /// The current instant as `YYYY-MM-DDTHH:MM:SSZ`, sops' `lastmodified` format.
    pub fn rfc3339(&self) -> String {
        format_unix(self.now_unix(), 0, 0)
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Formats an instant like Go's RFC3339Nano (`offset` in seconds east of UTC; `Z` when 0).
fn format_unix(unix: i64, nanos: u32, offset: i64) -> String {
    let local = unix + offset;
    let (y, mo, d) = civil_from_days(local.div_euclid(86_400));
    let secs = local.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if offset == 0 {
        out.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.abs();
        out.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, abs / 60 % 60));
    }
    out
}

/// A parsed instant: Unix seconds, nanoseconds and the zone offset it was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Instant {
    unix: i64,
    nanos: u32,
    offset: i64,
}

impl Instant {
    /// Go's `MarshalText` / RFC3339Nano form.
    pub(crate) fn rfc3339_nano(&self) -> String {
        format_unix(self.unix, self.nanos, self.offset)
    }

    /// Go's `Format(time.RFC3339)` form (seconds precision), used for the MAC's AAD.
    pub(crate) fn rfc3339(&self) -> String {
        format_unix(self.unix, 0, self.offset)
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    /// Reads between `min` and `max` digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let start = self.i;
        while self.i < self.s.len() && self.i - start < max && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

/// Which of Go's layouts to accept.
#[derive(Clone, Copy)]
enum Layout {
    /// `2006-01-02T15:04:05Z07:00` (time.RFC3339, fixed-width fields; fraction allowed).
    Rfc3339,
    /// yaml.v3: `2006-1-2T15:4:5.999999999Z07:00` (also lower-case `t`).
    YamlZoned,
    /// yaml.v3: `2006-1-2 15:4:5.999999999`.
    YamlSpaced,
    /// yaml.v3: `2006-1-2`.
    YamlDate,
}

fn parse_layout(s: &str, layout: Layout) -> Option<Instant> {
    let fixed = matches!(layout, Layout::Rfc3339);
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    let year = c.digits(4, 4)?;
    if !c.eat(b'-') {
        return None;
    }
    let month = if fixed {
        c.digits(2, 2)?
    } else {
        c.digits(1, 2)?
    };
    if !c.eat(b'-') {
        return None;
    }
    let day = if fixed {
        c.digits(2, 2)?
    } else {
        c.digits(1, 2)?
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let (mut h, mut mi, mut sec, mut nanos, mut offset) = (0, 0, 0, 0u32, 0i64);
    if !matches!(layout, Layout::YamlDate) {
        let sep_ok = match layout {
            Layout::Rfc3339 => c.eat(b'T'),
            Layout::YamlZoned => c.eat(b'T') || c.eat(b't'),
            _ => c.eat(b' '),
        };
        if !sep_ok {
            return None;
        }
        let (lo, hi) = if fixed { (2, 2) } else { (1, 2) };
        h = c.digits(lo, hi)?;
        if !c.eat(b':') {
            return None;
        }
        mi = c.digits(lo, hi)?;
        if !c.eat(b':') {
            return None;
        }
        sec = c.digits(lo, hi)?;
        if h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        if c.eat(b'.') || c.eat(b',') {
            let start = c.i;
            let mut n: u64 = 0;
            while c.i < c.s.len() && c.s[c.i].is_ascii_digit() {
                if c.i - start < 9 {
                    n = n * 10 + u64::from(c.s[c.i] - b'0');
                }
                c.i += 1;
            }
            let len = c.i - start;
            if len == 0 {
                return None;
            }
            for _ in len..9 {
                n *= 10;
            }
            nanos = n as u32;
        }
        if matches!(layout, Layout::Rfc3339 | Layout::YamlZoned) && !c.eat(b'Z') {
            {
                let sign = if c.eat(b'+') {
                    1
                } else if c.eat(b'-') {
                    -1
                } else {
                    return None;
                };
                let oh = c.digits(2, 2)?;
                if !c.eat(b':') {
                    return None;
                }
                let om = c.digits(2, 2)?;
                if oh > 24 || om > 59 {
                    return None;
                }
                offset = sign * (oh * 3600 + om * 60);
            }
        }
    }
    if !c.done() {
        return None;
    }
    let unix = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(Instant {
        unix,
        nanos,
        offset,
    })
}

/// `time.Parse(time.RFC3339, s)`, as sops reads `lastmodified`.
pub(crate) fn parse_rfc3339(s: &str) -> Option<Instant> {
    parse_layout(s, Layout::Rfc3339)
}

/// yaml.v3's timestamp resolution of a plain scalar (`parseTimestamp`).
pub(crate) fn parse_yaml_timestamp(s: &str) -> Option<Instant> {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    [Layout::YamlZoned, Layout::YamlSpaced, Layout::YamlDate]
        .into_iter()
        .find_map(|l| parse_layout(s, l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        // 2024-11-12T13:33:42Z is 1731418422 (cross-checked with `date -u -d @1731418422`).
        assert_eq!(
            Clock::Fixed(1_731_418_422).rfc3339(),
            "2024-11-12T13:33:42Z"
        );
        assert_eq!(Clock::Fixed(0).rfc3339(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn yaml_timestamps() {
        let t = |s: &str| parse_yaml_timestamp(s).map(|i| i.rfc3339_nano());
        assert_eq!(t("2024-01-02").as_deref(), Some("2024-01-02T00:00:00Z"));
        assert_eq!(
            t("2024-1-2 3:04:05").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            t("2024-01-02T03:04:05.120+00:00").as_deref(),
            Some("2024-01-02T03:04:05.12Z")
        );
        assert_eq!(
            t("2024-01-02t03:04:05+05:30").as_deref(),
            Some("2024-01-02T03:04:05+05:30")
        );
        assert_eq!(t("2024-02-30"), None);
        assert_eq!(t("2024-01-02x"), None);
        assert_eq!(t("12024-01-02"), None);
    }

    #[test]
    fn rfc3339_normalises_offsets_for_the_mac_aad() {
        assert_eq!(
            parse_rfc3339("2024-11-12T13:33:42+00:00")
                .unwrap()
                .rfc3339(),
            "2024-11-12T13:33:42Z"
        );
        assert_eq!(
            parse_rfc3339("2024-11-12T13:33:42.5Z").unwrap().rfc3339(),
            "2024-11-12T13:33:42Z"
        );
        assert!(parse_rfc3339("2024-11-12 13:33:42Z").is_none());
    }
}
