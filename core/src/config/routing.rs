//! Validation of `[upstreams.NAME]` and `[[routes]]`: addresses, names, hosts, prefixes and references.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use toml::Spanned;

use super::error::{line_of, ConfigError};
use super::raw::{RawRoute, RawUpstream};
use super::validate::Ctx;
use super::{
    HealthCheck, HostServer, PrefixMatch, Route, Upstream, DEFAULT_POOL_SIZE, DEFAULT_QUEUE,
};
use crate::health::Ejection;

/// Builds the upstream list, sorted by name (the map is already ordered).
pub fn upstreams(
    raw: &BTreeMap<Spanned<String>, RawUpstream>,
    cx: &Ctx,
) -> Result<Vec<Upstream>, ConfigError> {
    raw.iter().map(|(name, u)| upstream(name, u, cx)).collect()
}

fn upstream(name: &Spanned<String>, raw: &RawUpstream, cx: &Ctx) -> Result<Upstream, ConfigError> {
    let n = name.get_ref();
    if !is_plain_name(n) {
        return Err(cx.err(
            &name.span(),
            format!("upstream name {n:?} is not a plain name"),
            "use only letters, digits, '-' and '_', e.g. [upstreams.api]",
        ));
    }
    let servers_v = &raw.servers;
    if servers_v.get_ref().is_empty() {
        return Err(cx.err(
            &servers_v.span(),
            format!("upstreams.{n}.servers is empty"),
            "list at least one \"IP:PORT\" or \"HOST:PORT\", e.g. servers = [\"127.0.0.1:9000\"]",
        ));
    }
    let key = format!("upstreams.{n}.servers");
    let mut servers = Vec::with_capacity(servers_v.get_ref().len());
    let mut hosts: Vec<HostServer> = Vec::new();
    for s in servers_v.get_ref() {
        let (port, place) = match host_port(s.get_ref().trim()) {
            Some((host, port)) => (port, Err(host)),
            None => {
                let addr = cx.socket(&key, s)?;
                (addr.port(), Ok(addr))
            }
        };
        if port == 0 {
            return Err(cx.err(
                &s.span(),
                format!("{key} {:?} has port 0", s.get_ref()),
                "give the port the server listens on",
            ));
        }
        let twice = match &place {
            Ok(addr) => servers.contains(addr),
            Err(host) => hosts.iter().any(|h| h.host == *host && h.port == port),
        };
        if twice {
            return Err(cx.err(
                &s.span(),
                format!("{key} lists {:?} twice", s.get_ref()),
                "remove the duplicate",
            ));
        }
        match place {
            Ok(addr) => servers.push(addr),
            Err(host) => hosts.push(HostServer {
                host,
                port,
                addrs: Vec::new(),
            }),
        }
    }
    let mut u = Upstream::new(n, servers);
    u.hosts = hosts;
    if let Some(q) = &raw.resolve_interval {
        let key = format!("upstreams.{n}.resolve_interval");
        u.resolve_interval = cx.duration(&key, q)?;
    }
    if let Some(p) = &raw.pool_size {
        u.pool_size = *p.get_ref();
        if u.pool_size == 0 {
            return Err(cx.err(
                &p.span(),
                format!("upstreams.{n}.pool_size is 0"),
                format!("set it to at least 1 (default {DEFAULT_POOL_SIZE})"),
            ));
        }
    }
    u.queue = raw.queue.unwrap_or(DEFAULT_QUEUE);
    if let Some(q) = &raw.connect_timeout {
        u.connect_timeout = Some(cx.duration(&format!("upstreams.{n}.connect_timeout"), q)?);
    }
    if let Some(q) = &raw.response_timeout {
        u.response_timeout = Some(cx.duration(&format!("upstreams.{n}.response_timeout"), q)?);
    }
    ejection(&mut u.ejection, raw, n, cx)?;
    u.health_check = health_check(raw, n, cx)?;
    Ok(u)
}

/// `health_check_path` turns checks on; `_interval` and `_timeout` need it.
fn health_check(raw: &RawUpstream, n: &str, cx: &Ctx) -> Result<Option<HealthCheck>, ConfigError> {
    let Some(path) = &raw.health_check_path else {
        if let Some(q) = raw
            .health_check_interval
            .as_ref()
            .or(raw.health_check_timeout.as_ref())
        {
            return Err(cx.err(
                &q.span(),
                format!("upstreams.{n} sets a health check interval or timeout but no health_check_path"),
                "add health_check_path = \"/healthz\" (the path to GET), or drop the setting",
            ));
        }
        return Ok(None);
    };
    let p = path.get_ref();
    if !p.starts_with('/') || p.len() > 1024 || !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(cx.err(
            &path.span(),
            format!("upstreams.{n}.health_check_path {p:?} is not a path"),
            "write an absolute path of visible ASCII, e.g. \"/healthz\"",
        ));
    }
    let mut check = HealthCheck {
        path: p.clone(),
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
    };
    if let Some(q) = &raw.health_check_interval {
        check.interval = cx.duration(&format!("upstreams.{n}.health_check_interval"), q)?;
    }
    if let Some(q) = &raw.health_check_timeout {
        check.timeout = cx.duration(&format!("upstreams.{n}.health_check_timeout"), q)?;
    }
    Ok(Some(check))
}

/// `eject_after_failures` (0 = never), `eject_after_5xx` (0 = never, the default),
/// `eject_backoff` and `eject_max_backoff` (at least the backoff).
fn ejection(e: &mut Ejection, raw: &RawUpstream, n: &str, cx: &Ctx) -> Result<(), ConfigError> {
    if let Some(f) = raw.eject_after_failures {
        e.max_fails = f;
    }
    if let Some(f) = raw.eject_after_5xx {
        e.max_5xx = f;
    }
    if let Some(q) = &raw.eject_backoff {
        e.backoff_ms = cx
            .duration(&format!("upstreams.{n}.eject_backoff"), q)?
            .as_millis() as u64;
    }
    if let Some(q) = &raw.eject_max_backoff {
        let d = cx.duration(&format!("upstreams.{n}.eject_max_backoff"), q)?;
        e.max_backoff_ms = d.as_millis() as u64;
        if e.max_backoff_ms < e.backoff_ms {
            return Err(cx.err(
                &q.span(),
                format!(
                    "upstreams.{n}.eject_max_backoff ({d:?}) is shorter than eject_backoff ({:?})",
                    Duration::from_millis(e.backoff_ms)
                ),
                "make it at least eject_backoff, or drop it (default 30s)",
            ));
        }
    } else {
        e.max_backoff_ms = e.max_backoff_ms.max(e.backoff_ms);
    }
    Ok(())
}

/// Builds the routes in file order, checking references against `ups` (sorted by name)
/// and body overrides against `max_body` (`limits.max_body_bytes`, which caps them).
pub fn routes(
    raw: &[RawRoute],
    ups: &[Upstream],
    max_body: u64,
    cx: &Ctx,
) -> Result<Vec<Route>, ConfigError> {
    let mut seen: HashMap<(Option<String>, String), usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for r in raw {
        let route = route(r, ups, max_body, cx)?;
        let line = line_of(cx.text, r.path_prefix.span().start);
        let at = (route.host.clone(), route.path_prefix.clone());
        if let Some(first) = seen.insert(at, line) {
            return Err(cx.err(
                &r.path_prefix.span(),
                format!(
                    "route {} is defined twice (same host and path_prefix; first at line {first})",
                    route.label()
                ),
                "remove one, or change its path_prefix or host",
            ));
        }
        out.push(route);
    }
    Ok(out)
}

/// Why a prefix can never match a judged path (paths are normalised before routing: no `;`
/// parameters, no `//`, no dot segments, no backslash, unreserved characters decoded).
fn unmatchable_prefix(prefix: &str) -> Option<&'static str> {
    let b = prefix.as_bytes();
    if b.contains(&b';') {
        return Some("contains ';' (path parameters are judged without it)");
    }
    if b.contains(&b'\\') {
        return Some("contains a backslash");
    }
    if prefix.contains("//") {
        return Some("contains '//' (merged to '/' before routing)");
    }
    if prefix
        .split('/')
        .skip(1)
        .enumerate()
        .any(|(i, seg)| (seg == "." || seg == "..") && (i > 0 || !seg.is_empty()))
    {
        return Some("contains a dot segment");
    }
    let unreserved_escape = b.windows(3).any(|w| {
        w[0] == b'%'
            && std::str::from_utf8(&w[1..])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .is_some_and(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
    });
    if unreserved_escape {
        return Some("percent-encodes an unreserved character (decoded before routing)");
    }
    None
}

fn route(raw: &RawRoute, ups: &[Upstream], max_body: u64, cx: &Ctx) -> Result<Route, ConfigError> {
    let prefix = raw.path_prefix.get_ref();
    let pspan = raw.path_prefix.span();
    if !prefix.starts_with('/') {
        return Err(cx.err(
            &pspan,
            format!("route path_prefix {prefix:?} does not start with '/'"),
            "write e.g. \"/v1/\"",
        ));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '?' || *c == '#')
    {
        return Err(cx.err(
            &pspan,
            format!("route path_prefix {prefix:?} contains {c:?}"),
            "a prefix is matched against the path only: no spaces, query or fragment",
        ));
    }
    if let Some(why) = unmatchable_prefix(prefix) {
        return Err(cx.err(
            &pspan,
            format!("route path_prefix {prefix:?} {why}, so no request could ever match it"),
            "write the prefix as the gateway judges paths (docs/policy.md, path handling)",
        ));
    }
    let mut route = Route::new(prefix, raw.upstream.get_ref());
    if let Some(h) = &raw.host {
        route.host = Some(host(h.get_ref()).ok_or_else(|| {
            cx.err(
                &h.span(),
                format!("route {prefix} host {:?} is not a host name", h.get_ref()),
                "write a name such as \"api.example.com\" (a port is allowed and ignored)",
            )
        })?);
    }
    let label = route.label();
    // `field` is None for `upstream`, or e.g. "by_plan.pro"
    let check_ref = |field: Option<&str>, v: &Spanned<String>| -> Result<(), ConfigError> {
        let name = v.get_ref();
        if ups.binary_search_by(|u| u.name.as_str().cmp(name)).is_ok() {
            return Ok(());
        }
        let fix = if is_plain_name(name) {
            format!("add [upstreams.{name}] or fix the name")
        } else {
            "fix the name to one of the [upstreams.NAME] tables".to_owned()
        };
        let whose = field.map_or(format!("route {label}"), |f| format!("route {label} {f}"));
        Err(cx.err(
            &v.span(),
            format!("{whose} names upstream {name:?}, which is not defined"),
            fix,
        ))
    };
    check_ref(None, &raw.upstream)?;
    route.public = raw.public.unwrap_or(false);
    route.allow_upgrade = raw.allow_upgrade.unwrap_or(false);
    route.cost = raw.cost.unwrap_or(1);
    route.allow_path_params = raw.allow_path_params.unwrap_or(false);
    let timeout = |field: &str, q: &Option<Spanned<_>>| {
        q.as_ref()
            .map(|q| cx.duration(&format!("route {label} {field}"), q))
            .transpose()
    };
    route.connect_timeout = timeout("connect_timeout", &raw.connect_timeout)?;
    route.response_timeout = timeout("response_timeout", &raw.response_timeout)?;
    route.idle_timeout = timeout("idle_timeout", &raw.idle_timeout)?;
    if let Some(m) = &raw.prefix_match {
        route.prefix_match = match m.get_ref().as_str() {
            "segment" => PrefixMatch::Segment,
            "raw" => PrefixMatch::Raw,
            other => {
                return Err(cx.err(
                    &m.span(),
                    format!("route {label} prefix_match {other:?} is not \"segment\" or \"raw\""),
                    "write prefix_match = \"segment\" (whole segments, the default) or \"raw\" (any path starting with the prefix)",
                ))
            }
        };
    }
    if let Some(q) = &raw.max_body_bytes {
        let n = cx.size(&format!("route {label} max_body_bytes"), q)?;
        if n > max_body {
            return Err(cx.err(
                &q.span(),
                format!("route {label} max_body_bytes ({n}) is larger than limits.max_body_bytes ({max_body}), which caps every route"),
                "lower it, or raise limits.max_body_bytes",
            ));
        }
        route.max_body_bytes = Some(n);
    }
    for (table, map, out) in [
        ("by_plan", &raw.by_plan, &mut route.by_plan),
        ("by_tenant", &raw.by_tenant, &mut route.by_tenant),
    ] {
        for (k, v) in map {
            if k.trim().is_empty() {
                return Err(cx.err(
                    &v.span(),
                    format!("route {label} {table} has an empty name"),
                    "write e.g. pro = \"api\"",
                ));
            }
            check_ref(Some(&format!("{table}.{k}")), v)?;
            out.insert(k.clone(), v.get_ref().clone());
        }
    }
    if let Some(q) = &raw.key_in_query {
        let name = q.get_ref();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err(cx.err(
                &q.span(),
                format!("route {label} key_in_query {name:?} is not a plain query parameter name"),
                "use letters, digits, '-', '.', '_' or '~', e.g. \"api_key\"",
            ));
        }
        route.key_in_query = Some(name.clone());
    }
    if route.public {
        let keyed_only = [
            ("key_in_query", raw.key_in_query.as_ref().map(Spanned::span)),
            ("by_plan", raw.by_plan.values().next().map(Spanned::span)),
            (
                "by_tenant",
                raw.by_tenant.values().next().map(Spanned::span),
            ),
        ];
        if let Some((what, Some(span))) = keyed_only.into_iter().find(|(_, s)| s.is_some()) {
            return Err(cx.err(
                &span,
                format!("route {label} is public, so {what} would never apply"),
                format!("remove {what}, or set public = false"),
            ));
        }
    }
    Ok(route)
}

/// A name usable as a bare TOML key: letters, digits, '-' and '_'.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Lower-cases a Host value and strips its port; `None` if it is not a plausible host.
/// IPv6 literals keep their brackets (`[::1]:80` → `[::1]`), as in a Host header.
fn host(text: &str) -> Option<String> {
    let h = text.trim().to_ascii_lowercase();
    let (name, port) = if let Some(rest) = h.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        (
            format!("[{inner}]"),
            after
                .strip_prefix(':')
                .or((!after.is_empty()).then_some("x")),
        )
    } else {
        match h.split_once(':') {
            Some((n, p)) => (n.to_owned(), Some(p)),
            None => (h.clone(), None),
        }
    };
    if let Some(p) = port {
        p.parse::<u16>().ok()?;
    }
    let name = name.strip_suffix('.').map(str::to_owned).unwrap_or(name);
    if name.starts_with('[') {
        return Some(name);
    }
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(name)
}

/// `HOST:PORT` with a DNS name for HOST (lower-cased): labels of letters, digits and '-'
/// (not at either end), at most 63 bytes each and 253 in all, the last not all digits (so
/// an IPv4 address is never taken for a name). `None` for anything else (an IP address is
/// parsed as one).
pub fn host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return None;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let labels: Vec<&str> = host.split('.').collect();
    if !labels.iter().all(|l| label_ok(l)) {
        return None;
    }
    if labels.last()?.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host("API.Example.com").as_deref(), Some("api.example.com"));
        assert_eq!(
            host("api.example.com:8443").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(host("example.com.").as_deref(), Some("example.com"));
        assert_eq!(host("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(host("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(host("[::1]").as_deref(), Some("[::1]"));
        for bad in [
            "",
            ":80",
            "a b",
            "a..b",
            "-a.com",
            "a.com:http",
            "a.com:99999",
            "[::1",
            "[zz]",
            "[::1]x",
            "*.a.com",
            "a/b",
        ] {
            assert_eq!(host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn host_ports() {
        assert_eq!(
            host_port("API.example.com:443"),
            Some(("api.example.com".into(), 443))
        );
        assert_eq!(host_port("localhost:80"), Some(("localhost".into(), 80)));
        assert_eq!(
            host_port("db-1.internal.:5432"),
            Some(("db-1.internal".into(), 5432))
        );
        for bad in [
            "127.0.0.1:80",
            "10.0.0.1:80",
            "[::1]:80",
            "::1:80",
            "api:",
            "api:x",
            "api:70000",
            ":80",
            "-api:80",
            "api-:80",
            "a..b:80",
            "a_b:80",
            "api",
            "a b:80",
        ] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
        let long = format!("{}:80", "a".repeat(64));
        assert_eq!(host_port(&long), None);
    }

    #[test]
    fn plain_names() {
        assert!(is_plain_name("api"));
        assert!(is_plain_name("api-v2_b"));
        assert!(!is_plain_name(""));
        assert!(!is_plain_name("a b"));
        assert!(!is_plain_name("a.b"));
    }
}
