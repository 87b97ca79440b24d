//! Client addresses: per-key/per-plan CIDR allowlists (IPv4 and IPv6; an IPv4-mapped IPv6
//! address is its IPv4 address) and the client address behind trusted proxies
//! (`x-forwarded-for`, walked from the right). No allocation per request.

use std::fmt;
use std::net::IpAddr;

use crate::config::cidr::{mask128, mask32};
use crate::config::Cidr;

/// Compiled CIDR allowlist, masks precomputed. Empty = any address.
#[derive(Clone, Debug, Default)]
pub struct IpAllowlist {
    /// `(network, mask)` pairs.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// An allowlist entry that is not a canonical CIDR: one line naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpError {
    pub entry: String,
    pub why: String,
}

impl fmt::Display for IpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad allowlist entry {:?}: {}", self.entry, self.why)
    }
}

impl std::error::Error for IpError {}

impl IpAllowlist {
    /// An empty list: allows any address.
    pub const fn any() -> IpAllowlist {
        IpAllowlist {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }

    /// Compiles CIDRs (`10.0.0.0/8`, `2001:db8::/32`, or a bare address). A block inside
    /// `::ffff:0:0/96` is stored as the IPv4 block it maps to.
    pub fn compile<'a>(cidrs: impl IntoIterator<Item = &'a str>) -> Result<IpAllowlist, IpError> {
        let mut list = IpAllowlist::any();
        for text in cidrs {
            let c = Cidr::parse(text).map_err(|e| IpError {
                entry: text.to_owned(),
                why: e.to_string(),
            })?;
            match (c.addr, c.addr.to_canonical()) {
                (IpAddr::V4(a), _) => list.v4.push(net32(u32::from(a), c.prefix_len)),
                (IpAddr::V6(_), IpAddr::V4(a)) => list
                    .v4
                    .push(net32(u32::from(a), c.prefix_len.saturating_sub(96))),
                (IpAddr::V6(a), _) => list.v6.push(net128(u128::from(a), c.prefix_len)),
            }
        }
        Ok(list)
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// True when the list is empty or some block contains `ip` (IPv4-mapped IPv6 addresses
    /// are checked against the IPv4 blocks).
    #[inline]
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.is_empty() {
            return true;
        }
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(net, mask)| a & mask == net)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(net, mask)| a & mask == net)
            }
        }
    }

    /// The blocks, for explanations.
    pub fn blocks(&self) -> impl Iterator<Item = String> + '_ {
        let v4 = self
            .v4
            .iter()
            .map(|&(n, m)| format!("{}/{}", std::net::Ipv4Addr::from(n), m.count_ones()));
        let v6 = self
            .v6
            .iter()
            .map(|&(n, m)| format!("{}/{}", std::net::Ipv6Addr::from(n), m.count_ones()));
        v4.chain(v6)
    }
}

fn net32(addr: u32, len: u8) -> (u32, u32) {
    let mask = mask32(len);
    (addr & mask, mask)
}

fn net128(addr: u128, len: u8) -> (u128, u128) {
    let mask = mask128(len);
    (addr & mask, mask)
}

/// The client's address: `peer` unless `peer` is a trusted proxy; then `x-forwarded-for`
/// (the whole, comma-joined value) walked from the right, skipping trusted hops, and the
/// first untrusted one is the client. Entries left of it (which the client wrote itself and
/// may have spoofed) are never read. An empty or malformed entry stops the walk: the last
/// address known good (the nearest trusted hop) is returned. If every entry is trusted, the
/// leftmost is returned. The result is canonical (`::ffff:a.b.c.d` becomes `a.b.c.d`).
pub fn client_ip(peer: IpAddr, x_forwarded_for: Option<&[u8]>, trusted: &[Cidr]) -> IpAddr {
    let lines = x_forwarded_for.into_iter();
    client_ip_lines(peer, lines, trusted)
}

/// Like [`client_ip`] for a request with several `x-forwarded-for` header lines, given in
/// the order they arrived (they are one list, in that order).
pub fn client_ip_lines<'a, I>(peer: IpAddr, lines: I, trusted: &[Cidr]) -> IpAddr
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: DoubleEndedIterator,
{
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let mut current = peer.to_canonical();
    if !is_trusted(current) {
        return current;
    }
    for line in lines.into_iter().rev() {
        for entry in line.rsplit(|&b| b == b',') {
            match parse_entry(entry) {
                Some(ip) => {
                    current = ip;
                    if !is_trusted(ip) {
                        return ip;
                    }
                }
                None => return current,
            }
        }
    }
    current
}

/// One `x-forwarded-for` entry: an address, optionally with surrounding spaces, IPv6 in
/// brackets, or with a `:port` (IPv4 or bracketed IPv6). Anything else is `None`.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let e = entry.trim_ascii();
    let text = std::str::from_utf8(e).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let host = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        if !(after.is_empty() || is_port(after.strip_prefix(':')?)) {
            return None;
        }
        h.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)?
    } else {
        let (h, port) = text.rsplit_once(':')?;
        if !is_port(port) {
            return None;
        }
        h.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)?
    };
    Some(host.to_canonical())
}

fn is_port(p: &str) -> bool {
    p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn list(c: &[&str]) -> IpAllowlist {
        IpAllowlist::compile(c.iter().copied()).unwrap()
    }

    #[test]
    fn empty_list_allows_any() {
        let l = list(&[]);
        assert!(l.is_empty());
        assert!(l.allows(ip("1.2.3.4")) && l.allows(ip("::1")));
    }

    #[test]
    fn ipv4_blocks() {
        let l = list(&["10.0.0.0/8", "192.0.2.7"]);
        assert!(l.allows(ip("10.255.1.2")));
        assert!(l.allows(ip("192.0.2.7")));
        assert!(!l.allows(ip("192.0.2.8")));
        assert!(!l.allows(ip("11.0.0.1")));
        assert!(!l.allows(ip("::1")));
        assert!(list(&["0.0.0.0/0"]).allows(ip("203.0.113.9")));
    }

    #[test]
    fn ipv6_blocks() {
        let l = list(&["2001:db8::/32", "::1"]);
        assert!(l.allows(ip("2001:db8:ffff::1")));
        assert!(l.allows(ip("::1")));
        assert!(!l.allows(ip("2001:db9::1")));
        assert!(!l.allows(ip("10.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_blocks() {
        let l = list(&["10.0.0.0/8"]);
        assert!(l.allows(ip("::ffff:10.1.2.3")));
        assert!(!l.allows(ip("::ffff:11.1.2.3")));
        // a block written in mapped form is an IPv4 block
        let m = list(&["::ffff:192.0.2.0/120"]);
        assert!(m.allows(ip("192.0.2.200")));
        assert!(m.allows(ip("::ffff:192.0.2.1")));
        assert!(!m.allows(ip("192.0.3.1")));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["10.1.2.3/8", "ten", "10.0.0.0/33", ""] {
            let e = IpAllowlist::compile(["10.0.0.0/8", bad]).unwrap_err();
            assert_eq!(e.entry, bad);
            assert!(!e.to_string().contains('\n'));
        }
    }

    fn trusted() -> Vec<Cidr> {
        ["10.0.0.0/8", "fd00::/8"]
            .iter()
            .map(|s| Cidr::parse(s).unwrap())
            .collect()
    }

    fn client(peer: &str, xff: Option<&str>) -> IpAddr {
        client_ip(ip(peer), xff.map(str::as_bytes), &trusted())
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_xff_says() {
        assert_eq!(client("203.0.113.5", Some("1.1.1.1")), ip("203.0.113.5"));
        assert_eq!(client("203.0.113.5", None), ip("203.0.113.5"));
        assert_eq!(client("::ffff:203.0.113.5", None), ip("203.0.113.5"));
    }

    #[test]
    fn xff_is_walked_from_the_right_past_trusted_hops() {
        assert_eq!(client("10.0.0.1", Some("198.51.100.1")), ip("198.51.100.1"));
        // spoofed leftmost entries are ignored
        assert_eq!(
            client("10.0.0.1", Some("6.6.6.6, 7.7.7.7, 198.51.100.1, 10.0.0.2")),
            ip("198.51.100.1")
        );
        assert_eq!(
            client("fd00::1", Some("2001:db8::9,fd00::2")),
            ip("2001:db8::9")
        );
        // every hop trusted: the leftmost
        assert_eq!(
            client("10.0.0.1", Some("10.0.0.3, 10.0.0.2")),
            ip("10.0.0.3")
        );
        // no header: the peer
        assert_eq!(client("10.0.0.1", None), ip("10.0.0.1"));
        // ports and brackets
        assert_eq!(
            client("10.0.0.1", Some("198.51.100.1:443")),
            ip("198.51.100.1")
        );
        assert_eq!(
            client("10.0.0.1", Some("[2001:db8::1]:80")),
            ip("2001:db8::1")
        );
        assert_eq!(client("10.0.0.1", Some("[2001:db8::1]")), ip("2001:db8::1"));
    }

    #[test]
    fn malformed_xff_stops_at_the_last_good_hop() {
        assert_eq!(client("10.0.0.1", Some("")), ip("10.0.0.1"));
        assert_eq!(client("10.0.0.1", Some("garbage")), ip("10.0.0.1"));
        assert_eq!(
            client("10.0.0.1", Some("1.2.3.4, garbage, 10.0.0.2")),
            ip("10.0.0.2")
        );
        assert_eq!(client("10.0.0.1", Some("1.2.3.4,,")), ip("10.0.0.1"));
        assert_eq!(client("10.0.0.1", Some("1.2.3.4:99999")), ip("10.0.0.1"));
        assert_eq!(client("10.0.0.1", Some("[::1]x")), ip("10.0.0.1"));
        assert_eq!(client("10.0.0.1", Some("unknown")), ip("10.0.0.1"));
        let bad = [0xffu8, 0xfe];
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some(&bad), &trusted()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let lines: [&[u8]; 2] = [b"6.6.6.6, 198.51.100.1", b"10.0.0.5"];
        assert_eq!(
            client_ip_lines(ip("10.0.0.1"), lines, &trusted()),
            ip("198.51.100.1")
        );
    }
}
