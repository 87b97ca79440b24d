//! The per-request authorization decision for an authenticated key on a route: client IP
//! allowlist, then scopes, then declared body size, then the upstream. Pure and
//! allocation-free; [`explain`] is the same decision in words, for `keyway keys check`.

use crate::error::Problem;
use std::net::IpAddr;

use super::ip::IpAllowlist;
use super::scope::{word, ScopeSet};

/// Everything the decision needs about one key, compiled. Scopes and allowlist are the key's
/// own when it has them, else its plan's (see `PolicyIndex::for_key`).
#[derive(Clone, Copy, Debug)]
pub struct KeyPolicy<'a> {
    pub scopes: &'a ScopeSet,
    pub allow: &'a IpAllowlist,
    /// The smaller of the key's and the plan's `max_body_bytes`, if either is set.
    pub max_body: Option<u64>,
    pub tenant: &'a str,
    pub plan: &'a str,
    /// The plan's default upstream (an index into the configuration's upstreams).
    pub plan_upstream: Option<usize>,
}

/// A name -> upstream index map (`by_tenant`, `by_plan`). Names live in one buffer; each
/// entry keeps its length and first 16 bytes packed in two words; a bit set of lengths ends
/// most misses in one test. Up to 8 entries are scanned, more are binary-searched.
#[derive(Clone, Debug, Default)]
pub struct UpstreamMap {
    /// Sorted by name.
    entries: Vec<MapEntry>,
    names: Vec<u8>,
    /// Bit `len % 64` set for every name length: most misses end on this one test.
    lens: u64,
}

#[derive(Clone, Copy, Debug)]
struct MapEntry {
    /// The name's bytes 0..8 and 8..16, packed (exact for names up to 16 bytes).
    w: (u64, u64),
    len: u32,
    off: u32,
    upstream: usize,
}

/// Above this many entries lookups binary-search instead of scanning.
const SCAN_MAX: usize = 8;

impl UpstreamMap {
    /// `pairs`: (name, upstream index). A repeated name keeps its first index; names over
    /// 4 GiB in total are dropped (they cannot come from a config file).
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, usize)>) -> UpstreamMap {
        let mut pairs: Vec<(&str, usize)> = pairs.into_iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        let mut map = UpstreamMap::default();
        for (name, upstream) in pairs {
            let (Ok(off), Ok(len)) = (u32::try_from(map.names.len()), u32::try_from(name.len()))
            else {
                break;
            };
            map.names.extend_from_slice(name.as_bytes());
            map.lens |= 1 << (name.len() % 64);
            map.entries.push(MapEntry {
                w: words16(name.as_bytes()),
                len,
                off,
                upstream,
            });
        }
        map
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn name(&self, e: &MapEntry) -> &[u8] {
        let off = e.off as usize;
        self.names
            .get(off..off.saturating_add(e.len as usize))
            .unwrap_or(&[])
    }

    #[inline]
    pub fn get(&self, name: &str) -> Option<usize> {
        let name = name.as_bytes();
        // Most misses (and empty maps) end on this one test, inlined where `get` is called.
        if self.lens & (1 << (name.len() % 64)) == 0 {
            return None;
        }
        self.find(name)
    }

    /// A small map of short names is scanned comparing packed words; the rest is `search`.
    #[inline]
    fn find(&self, name: &[u8]) -> Option<usize> {
        if self.entries.len() > SCAN_MAX || name.len() > 16 {
            return self.search(name);
        }
        let w = words16(name);
        self.entries
            .iter()
            .find(|e| e.w == w && e.len as usize == name.len())
            .map(|e| e.upstream)
    }

    /// [`UpstreamMap::get`] for names over 16 bytes or maps over `SCAN_MAX` entries.
    fn search(&self, name: &[u8]) -> Option<usize> {
        if self.entries.len() <= SCAN_MAX {
            return self
                .entries
                .iter()
                .find(|e| e.len as usize == name.len() && self.name(e) == name)
                .map(|e| e.upstream);
        }
        self.entries
            .binary_search_by(|e| self.name(e).cmp(name))
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|e| e.upstream)
    }
}

fn words16(b: &[u8]) -> (u64, u64) {
    (word(b), b.get(8..).map_or(0, word))
}

/// What the decision needs about the route (upstreams as indices into the configuration's
/// upstream list).
#[derive(Clone, Debug, Default)]
pub struct RoutePolicy {
    /// The route's own `max_body_bytes`.
    pub max_body: Option<u64>,
    /// `[limits] max_body_bytes`: caps every other limit.
    pub global_max_body: u64,
    /// The route's `upstream`.
    pub upstream: usize,
    /// Tenant -> upstream; wins over `by_plan`.
    pub by_tenant: UpstreamMap,
    /// Plan name -> upstream.
    pub by_plan: UpstreamMap,
}

impl RoutePolicy {
    /// The route's body limit before any key is known (its own, capped by the global one).
    #[inline]
    pub fn route_body_limit(&self) -> u64 {
        self.max_body.unwrap_or(u64::MAX).min(self.global_max_body)
    }
}

/// Why a request is refused. Status and code: [`Denial::status`], [`Denial::code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// 403 `insufficient_scope`: no scope allows this method and path.
    InsufficientScope,
    /// 403 `ip_not_allowed`: the client address is outside the allowlist.
    IpNotAllowed,
    /// 413: the declared `Content-Length` is over `limit`; refuse before reading the body.
    BodyTooLarge { limit: u64 },
}

impl Denial {
    /// The problem the client gets.
    pub fn problem(&self) -> Problem {
        match self {
            Denial::InsufficientScope => Problem::InsufficientScope,
            Denial::IpNotAllowed => Problem::IpNotAllowed,
            Denial::BodyTooLarge { .. } => Problem::BodyTooLarge,
        }
    }

    pub fn status(&self) -> u16 {
        self.problem().status()
    }

    /// The problem code sent to the client.
    pub fn code(&self) -> &'static str {
        self.problem().code()
    }
}

impl Denial {
    /// The client-facing detail: names what was refused, never the key's scopes or
    /// allowlist. E.g. `GET /v1/admin is not within this key's scopes`.
    pub fn detail(&self, method: &[u8], path: &[u8]) -> String {
        let (m, p) = (
            String::from_utf8_lossy(method),
            String::from_utf8_lossy(path),
        );
        match self {
            Denial::InsufficientScope => format!("{m} {p} is not within this key's scopes"),
            Denial::IpNotAllowed => "this key may not be used from this address".to_owned(),
            Denial::BodyTooLarge { limit } => {
                format!("the declared body is larger than the limit of {limit} bytes")
            }
        }
    }
}

/// The request may go on: to `upstream`, reading at most `max_body` body bytes (also the
/// cap for chunked bodies, which declare no length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub upstream: usize,
    pub max_body: u64,
}

/// The smallest of the key's (already min'd with its plan's), the route's and the global
/// body limit.
pub fn body_limit(key: &KeyPolicy<'_>, route: &RoutePolicy) -> u64 {
    let key_max = key.max_body.unwrap_or(u64::MAX);
    let route_max = route.max_body.unwrap_or(u64::MAX);
    route.global_max_body.min(key_max).min(route_max)
}

/// Tenant map, then plan map, then the plan's default upstream, then the route's.
pub fn upstream_for(key: &KeyPolicy<'_>, route: &RoutePolicy) -> usize {
    // (an empty map answers from its length bit set, without a scan)
    route
        .by_tenant
        .get(key.tenant)
        .or_else(|| route.by_plan.get(key.plan))
        .unwrap_or(key.plan_upstream.unwrap_or(route.upstream))
}

/// The whole decision. Order: IP (so a client outside the allowlist learns nothing about
/// scopes), scopes, declared length, upstream. `path` is the judged path, without query
/// ([`super::path::judge`]); `client` comes from [`super::ip::client_ip`].
pub fn decide(
    key: &KeyPolicy<'_>,
    route: &RoutePolicy,
    method: &[u8],
    path: &[u8],
    client: IpAddr,
    declared_len: Option<u64>,
) -> Result<Decision, Denial> {
    if !key.allow.allows(client) {
        return Err(Denial::IpNotAllowed);
    }
    if !key.scopes.allows(method, path) {
        return Err(Denial::InsufficientScope);
    }
    let max_body = body_limit(key, route);
    if declared_len.is_some_and(|n| n > max_body) {
        return Err(Denial::BodyTooLarge { limit: max_body });
    }
    Ok(Decision {
        upstream: upstream_for(key, route),
        max_body,
    })
}

/// [`decide`], step by step in words (upstreams by index; the caller may name them). The
/// last line is the verdict.
pub fn explain(
    key: &KeyPolicy<'_>,
    route: &RoutePolicy,
    method: &str,
    path: &str,
    client: IpAddr,
    declared_len: Option<u64>,
) -> Vec<String> {
    let mut out = Vec::new();
    let path_only = path.split_once('?').map_or(path, |(p, _)| p);
    if key.allow.is_empty() {
        out.push(format!("ip: no allowlist, {client} allowed"));
    } else {
        let blocks: Vec<String> = key.allow.blocks().collect();
        let ok = key.allow.allows(client);
        out.push(format!(
            "ip: {client} {} allowlist [{}]",
            if ok { "is in" } else { "is NOT in" },
            blocks.join(", ")
        ));
    }
    if key.scopes.is_empty() {
        out.push("scopes: none (key and plan have none): nothing is allowed".to_owned());
    } else {
        let ok = key.scopes.allows(method.as_bytes(), path_only.as_bytes());
        let n = key.scopes.len();
        out.push(if ok {
            format!("scopes: one of {n} scope(s) allows {method} {path_only}")
        } else {
            format!("scopes: none of {n} scope(s) allows {method} {path_only}")
        });
    }
    let limit = body_limit(key, route);
    out.push(format!(
        "body: limit {limit} bytes (smallest of key/plan {}, route {}, global {}){}",
        opt(key.max_body),
        opt(route.max_body),
        route.global_max_body,
        match declared_len {
            Some(n) if n > limit => format!("; declared {n} is over it"),
            Some(n) => format!("; declared {n} fits"),
            None => String::new(),
        }
    ));
    let up = upstream_for(key, route);
    let why = if route.by_tenant.get(key.tenant).is_some() {
        format!("route by_tenant[{:?}]", key.tenant)
    } else if route.by_plan.get(key.plan).is_some() {
        format!("route by_plan[{:?}]", key.plan)
    } else if key.plan_upstream.is_some() {
        format!("plan {:?} default upstream", key.plan)
    } else {
        "route upstream".to_owned()
    };
    out.push(format!("upstream: #{up} ({why})"));
    out.push(
        match decide(
            key,
            route,
            method.as_bytes(),
            path_only.as_bytes(),
            client,
            declared_len,
        ) {
            Ok(d) => format!(
                "allowed: upstream #{}, body limit {}",
                d.upstream, d.max_body
            ),
            Err(d) => format!("refused: {} {}", d.status(), d.code()),
        },
    );
    out
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |n| n.to_string())
}
