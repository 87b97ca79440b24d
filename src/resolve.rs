//! Upstream servers given as `HOST:PORT`: resolved (A and AAAA, through the system resolver,
//! so /etc/hosts and nsswitch.conf apply) on the control side at start and on every
//! reload, and again every `resolve_interval` by a thread of their own: never on the
//! request path. A changed address set becomes a new configuration version, applied to
//! the shards like a reload. A lookup that fails keeps the addresses the name had.
//!
//! The system resolver does not say how long an answer may be kept (no TTL through
//! getaddrinfo), hence the interval; a caching resolver (systemd-resolved, nscd) in front
//! keeps the lookups cheap.

use crate::config::Config;
use std::net::{SocketAddr, ToSocketAddrs};

/// The most addresses one name contributes: each is a server with its own pool on every
/// shard, so a name answering hundreds (a wildcard, a misconfigured zone) must not multiply
/// the gateway's connections by as much.
pub const MAX_ADDRS_PER_NAME: usize = 64;

/// Looks `host:port` up with the system resolver; the addresses (sorted, at most
/// [`MAX_ADDRS_PER_NAME`]), or why not in one line.
pub fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    match (host, port).to_socket_addrs() {
        Ok(addrs) => capped(host, addrs.collect()),
        Err(e) => Err(e.to_string()),
    }
}

/// Sorts and dedups `addrs`, keeps the first [`MAX_ADDRS_PER_NAME`] (logging the cut).
fn capped(host: &str, mut addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    if addrs.is_empty() {
        return Err("no address".into());
    }
    addrs.sort();
    addrs.dedup();
    if addrs.len() > MAX_ADDRS_PER_NAME {
        tracing::warn!(
            host,
            addresses = addrs.len(),
            kept = MAX_ADDRS_PER_NAME,
            "an upstream name resolves to more addresses than one name may add; the rest are ignored"
        );
        addrs.truncate(MAX_ADDRS_PER_NAME);
    }
    Ok(addrs)
}

/// Resolves every host-name server of `config` with `lookup`. A name whose lookup fails
/// keeps the addresses it has in `known` (the running configuration), with a warning; one
/// that has none there is an error saying which and what to do.
pub fn resolve_with(
    config: &mut Config,
    known: Option<&Config>,
    mut lookup: impl FnMut(&str, u16) -> Result<Vec<SocketAddr>, String>,
) -> Result<(), String> {
    for u in &mut config.upstreams {
        if u.hosts.is_empty() {
            continue;
        }
        let mut resolved = Vec::with_capacity(u.hosts.len());
        for h in &u.hosts {
            match lookup(&h.host, h.port) {
                Ok(addrs) => resolved.push(addrs),
                Err(e) => {
                    let before = known
                        .and_then(|k| k.upstream_index(&u.name).map(|i| &k.upstreams[i]))
                        .and_then(|k| {
                            k.hosts
                                .iter()
                                .find(|k| k.host == h.host && k.port == h.port)
                        })
                        .filter(|k| !k.addrs.is_empty());
                    match before {
                        Some(k) => {
                            tracing::warn!(upstream = %u.name, server = %format!("{}:{}", h.host, h.port), error = %e,
                                "cannot resolve an upstream server; keeping the addresses it had");
                            resolved.push(k.addrs.clone());
                        }
                        None => {
                            return Err(format!(
                                "cannot resolve upstreams.{} server {}:{}: {e}; check the name, DNS or /etc/hosts, or give IP:PORT",
                                u.name, h.host, h.port
                            ))
                        }
                    }
                }
            }
        }
        u.set_resolved(resolved);
    }
    Ok(())
}

/// [`resolve_with`] the system resolver.
pub fn resolve(config: &mut Config, known: Option<&Config>) -> Result<(), String> {
    resolve_with(config, known, lookup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> Config {
        Config::parse(
            "[upstreams.api]\nservers = [\"10.0.0.1:80\", \"backend.test:8080\"]\n",
            "t.toml",
            Path::new("/tmp"),
        )
        .unwrap()
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_become_servers_and_a_failed_lookup_keeps_what_it_had() {
        let mut c = config();
        resolve_with(&mut c, None, |h, p| {
            assert_eq!((h, p), ("backend.test", 8080));
            Ok(vec![a("10.0.0.3:8080"), a("10.0.0.2:8080")])
        })
        .unwrap();
        assert_eq!(
            c.upstreams[0].servers,
            [a("10.0.0.1:80"), a("10.0.0.2:8080"), a("10.0.0.3:8080")]
        );
        let mut again = config();
        resolve_with(&mut again, Some(&c), |_, _| Err("timed out".into())).unwrap();
        assert_eq!(again.upstreams[0].servers, c.upstreams[0].servers);
        let mut fresh = config();
        let e = resolve_with(&mut fresh, None, |_, _| Err("no such host".into())).unwrap_err();
        assert_eq!(
            e,
            "cannot resolve upstreams.api server backend.test:8080: no such host; check the name, DNS or /etc/hosts, or give IP:PORT"
        );
    }

    #[test]
    fn a_name_adds_at_most_its_cap_of_addresses() {
        let many: Vec<SocketAddr> = (0..300u16)
            .map(|i| SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 80)))
            .rev()
            .chain(std::iter::once(a("10.0.0.0:80")))
            .collect();
        let kept = capped("wild.test", many).unwrap();
        assert_eq!(kept.len(), MAX_ADDRS_PER_NAME);
        assert_eq!(kept[0], a("10.0.0.0:80"), "sorted, duplicates gone");
        assert!(capped("empty.test", Vec::new()).is_err());
    }

    #[test]
    fn localhost_resolves_through_the_system() {
        let addrs = lookup("localhost", 9).unwrap();
        assert!(
            addrs.iter().all(|s| s.ip().is_loopback() && s.port() == 9),
            "{addrs:?}"
        );
        assert!(lookup("no-such-host.invalid", 9).is_err());
    }
}
