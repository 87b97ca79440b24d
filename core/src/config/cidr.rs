//! CIDR blocks for `server.trusted_proxies`: parsing, canonical form and membership.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// An IP network such as `10.0.0.0/8` or `::1/128`. Host bits are always zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `ADDR/LEN`, or a bare address as a single host (`/32` or `/128`). The address
    /// is read by std (which refuses octal-looking `010.0.0.1`, unlike ipnet's own parser);
    /// ipnet checks the length and finds the network.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let (addr_text, len_text) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            CidrError::new(
                format!("{text:?} is not a CIDR block"),
                "write e.g. \"10.0.0.0/8\", \"::1/128\" or a single IP".to_owned(),
            )
        })?;
        let net = match len_text {
            None => IpNet::from(addr),
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|_| !l.starts_with('+'))
                .and_then(|n| IpNet::new(addr, n).ok())
                .ok_or_else(|| {
                    let max = if addr.is_ipv4() { 32 } else { 128 };
                    CidrError::new(
                        format!("{text:?} has a bad prefix length"),
                        format!("write a number from 0 to {max} after the '/'"),
                    )
                })?,
        };
        if net.trunc() != net {
            return Err(CidrError::new(
                format!("{text:?} has host bits set"),
                format!("did you mean \"{}\"?", net.trunc()),
            ));
        }
        Ok(Cidr {
            addr,
            prefix_len: net.prefix_len(),
        })
    }

    /// True when `ip` lies in this block. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) matches the IPv4 block it maps to.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let addr = self.addr.to_canonical();
        match (addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let len = if self.addr.is_ipv6() {
                    // a /N over ::ffff:0:0/96 is a /(N-96) over IPv4
                    self.prefix_len.saturating_sub(96)
                } else {
                    self.prefix_len
                };
                let mask = mask32(len);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix_len);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a string is not a CIDR block: what is wrong, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError {
    pub what: String,
    pub fix: String,
}

impl CidrError {
    fn new(what: String, fix: String) -> CidrError {
        CidrError { what, fix }
    }
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.what, self.fix)
    }
}

impl std::error::Error for CidrError {}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// The netmask of an IPv4 block of `len` bits (a length over 32 counts as 32).
pub(crate) fn mask32(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

/// The netmask of an IPv6 block of `len` bits (a length over 128 counts as 128).
pub(crate) fn mask128(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            Cidr::parse("127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(Cidr::parse("::1").unwrap().to_string(), "::1/128");
        assert_eq!(Cidr::parse("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
    }

    #[test]
    fn rejects() {
        let err = |s: &str| Cidr::parse(s).unwrap_err().to_string();
        assert!(err("10.0.0.0/33").contains("from 0 to 32"));
        assert!(err("::/129").contains("from 0 to 128"));
        assert!(err("10.0.0.0/").contains("prefix length"));
        assert!(err("10.0.0.0/+8").contains("prefix length"));
        assert!(err("10.0.0.0/x").contains("from 0 to 32"));
        assert!(
            err("010.0.0.0/8").contains("not a CIDR block"),
            "octal-looking"
        );
        assert!(err("::ffff:10.1.0.0/104").contains("\"::ffff:10.0.0.0/104\""));
        assert!(err("ten/8").contains("not a CIDR block"));
        assert!(err("").contains("not a CIDR block"));
        assert_eq!(
            err("10.1.2.3/8"),
            "\"10.1.2.3/8\" has host bits set; did you mean \"10.0.0.0/8\"?"
        );
    }

    #[test]
    fn contains() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.255.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")));
        assert!(!net.contains(ip("::1")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert!(host.contains(ip("127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
    }
}
