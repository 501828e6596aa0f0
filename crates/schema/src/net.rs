//! IPv4 networks: just what the rules and templates need.

use std::fmt;
use std::net::Ipv4Addr;

use crate::check::parse_ipv4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let Some((addr, prefix)) = s.split_once('/') else {
            return Err("missing `/prefix`".to_owned());
        };
        let addr = parse_ipv4(addr)?;
        let prefix: u8 = match prefix.parse() {
            Ok(p) if p <= 32 && !prefix.starts_with('+') => p,
            _ => return Err(format!("prefix `/{prefix}` is not a number from 0 to 32")),
        };
        Ok(Cidr { addr, prefix })
    }

    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn network(self) -> u32 {
        u32::from(self.addr) & self.mask()
    }

    pub fn broadcast(self) -> u32 {
        self.network() | !self.mask()
    }

    pub fn is_canonical(self) -> bool {
        u32::from(self.addr) == self.network()
    }

    pub fn canonical(self) -> Cidr {
        Cidr {
            addr: Ipv4Addr::from(self.network()),
            prefix: self.prefix,
        }
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.network()
    }

    pub fn overlaps(self, other: Cidr) -> bool {
        self.network() <= other.broadcast() && other.network() <= self.broadcast()
    }

    /// The `n`th address counted from the network address, like Python's `ip_network(c)[n]`
    /// (which cluster-template's `nthhost` filter uses); `None` past the end.
    pub fn nth(self, n: u32) -> Option<Ipv4Addr> {
        let size = u64::from(self.broadcast() - self.network()) + 1;
        (u64::from(n) < size).then(|| Ipv4Addr::from(self.network() + n))
    }

    /// Whether `ip` is the network or broadcast address of this network (prefixes up to /30).
    pub fn is_reserved(self, ip: Ipv4Addr) -> bool {
        self.prefix <= 30 && (u32::from(ip) == self.network() || u32::from(ip) == self.broadcast())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn canonical_and_overlap() {
        assert!(c("10.10.10.0/24").is_canonical());
        assert!(!c("10.10.10.5/24").is_canonical());
        assert_eq!(c("10.10.10.5/24").canonical().to_string(), "10.10.10.0/24");
        assert!(c("10.0.0.0/8").overlaps(c("10.42.0.0/16")));
        assert!(!c("10.42.0.0/16").overlaps(c("10.43.0.0/16")));
        assert!(c("0.0.0.0/0").overlaps(c("1.2.3.4/32")));
    }

    #[test]
    fn nth_matches_python_indexing() {
        assert_eq!(
            c("10.43.0.0/16").nth(10),
            Some(Ipv4Addr::new(10, 43, 0, 10))
        );
        assert_eq!(
            c("10.10.10.0/24").nth(1),
            Some(Ipv4Addr::new(10, 10, 10, 1))
        );
        assert_eq!(c("10.0.0.0/29").nth(8), None);
        assert_eq!(c("10.0.0.0/29").nth(7), Some(Ipv4Addr::new(10, 0, 0, 7)));
    }

    #[test]
    fn parse_errors() {
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0/x").is_err());
    }
}
