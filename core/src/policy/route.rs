//! Route choice: longest path-prefix match, host-specific routes before host-less ones.
//!
//! Prefixes match the path as [`super::path::judge`] left it (no dot-segment, encoded
//! slash or `;` parameter can make a request match one prefix here and mean another path at
//! the upstream), on segment boundaries: `/health` matches `/health`, `/health/` and
//! `/health/x`, not `/healthz`. A prefix ending in `/` is its own boundary. A route with
//! [`PrefixMatch::Raw`] matches any path that starts with its bytes.

pub use crate::config::PrefixMatch;

/// Index of a route in the configuration's `[[routes]]` order.
pub type RouteId = usize;

#[derive(Clone, Debug)]
struct Entry {
    prefix: Box<[u8]>,
    host: Option<Box<[u8]>>,
    id: RouteId,
    /// The path must go on with '/' (or end) after the prefix.
    segment: bool,
}

/// All routes, ordered so that the first match is the best one.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    entries: Vec<Entry>,
}

impl RouteTable {
    /// `routes`: `(path_prefix, host, prefix_match)` in configuration order; ids are their
    /// positions.
    pub fn new<'a>(
        routes: impl IntoIterator<Item = (&'a str, Option<&'a str>, PrefixMatch)>,
    ) -> RouteTable {
        let mut entries: Vec<Entry> = routes
            .into_iter()
            .enumerate()
            .map(|(id, (prefix, host, how))| Entry {
                prefix: prefix.as_bytes().into(),
                host: host.map(|h| h.to_ascii_lowercase().into_bytes().into()),
                id,
                segment: how == PrefixMatch::Segment && !prefix.ends_with('/'),
            })
            .collect();
        // Longest prefix first; at equal length a host-specific route first.
        entries.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(b.host.is_some().cmp(&a.host.is_some()))
                .then(a.id.cmp(&b.id))
        });
        RouteTable { entries }
    }

    /// The route for `path` (judged, without the query) on `host` (the Host header value, any
    /// case, port allowed).
    pub fn find(&self, host: Option<&[u8]>, path: &[u8]) -> Option<RouteId> {
        let host = host.map(strip_port);
        self.entries
            .iter()
            .find(|e| {
                path.starts_with(&e.prefix)
                    && (!e.segment || matches!(path.get(e.prefix.len()), None | Some(b'/')))
                    && match (&e.host, host) {
                        (None, _) => true,
                        (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                        (Some(_), None) => false,
                    }
            })
            .map(|e| e.id)
    }
}

fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match memchr::memchr(b']', host) {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match memchr::memrchr(b':', host) {
        Some(i) => &host[..i],
        None => host,
    }
}

/// A configuration's routes compiled for the request path: the table that finds a route and,
/// per `[[routes]]` index, its policy (body limits, upstream, by_tenant/by_plan). The gateway
/// and `keyway keys check` build the same thing, so the explanation is the decision.
pub struct CompiledRoutes {
    pub table: RouteTable,
    pub policies: Vec<crate::policy::RoutePolicy>,
}

impl CompiledRoutes {
    pub fn compile(config: &crate::config::Config) -> CompiledRoutes {
        use crate::policy::{RoutePolicy, UpstreamMap};
        let table = RouteTable::new(
            config
                .routes
                .iter()
                .map(|r| (r.path_prefix.as_str(), r.host.as_deref(), r.prefix_match)),
        );
        let index = |name: &str| config.upstream_index(name).unwrap_or(0);
        let policies = config
            .routes
            .iter()
            .map(|r| RoutePolicy {
                max_body: r.max_body_bytes,
                global_max_body: config.limits.max_body_bytes,
                upstream: index(&r.upstream),
                by_tenant: UpstreamMap::new(
                    r.by_tenant.iter().map(|(t, u)| (t.as_str(), index(u))),
                ),
                by_plan: UpstreamMap::new(r.by_plan.iter().map(|(p, u)| (p.as_str(), index(u)))),
            })
            .collect();
        CompiledRoutes { table, policies }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, Option<&str>)]) -> RouteTable {
        RouteTable::new(routes.iter().map(|&(p, h)| (p, h, PrefixMatch::Segment)))
    }

    #[test]
    fn prefixes_match_on_segment_boundaries_unless_raw() {
        let t = table(&[("/", None), ("/health", None), ("/v1/", None)]);
        for (path, want) in [
            (&b"/health"[..], Some(1)),
            (b"/health/", Some(1)),
            (b"/health/x", Some(1)),
            (b"/healthz-internal", Some(0)),
            (b"/healthz", Some(0)),
            (b"/v1/x", Some(2)),
            (b"/v1", Some(0)),
        ] {
            assert_eq!(
                t.find(None, path),
                want,
                "{}",
                String::from_utf8_lossy(path)
            );
        }
        let t = table(&[("/health", None)]);
        assert_eq!(t.find(None, b"/healthz-internal"), None);
        let raw = RouteTable::new([("/health", None, PrefixMatch::Raw)]);
        assert_eq!(raw.find(None, b"/healthz-internal"), Some(0));
        assert_eq!(raw.find(None, b"/health/x"), Some(0));
        assert_eq!(raw.find(None, b"/heal"), None);
    }

    #[test]
    fn longest_prefix_wins_and_host_routes_first() {
        let t = table(&[
            ("/", None),
            ("/v1/", None),
            ("/v1/admin/", None),
            ("/v1/", Some("API.example")),
        ]);
        assert_eq!(t.find(Some(b"x"), b"/v1/items"), Some(1));
        assert_eq!(t.find(Some(b"api.example:8080"), b"/v1/items"), Some(3));
        assert_eq!(t.find(Some(b"api.example"), b"/v1/admin/x"), Some(2));
        assert_eq!(t.find(None, b"/other"), Some(0));
        let t = table(&[("/v1/", None)]);
        assert_eq!(t.find(None, b"/v2"), None);
        assert_eq!(t.find(None, b"/v1"), None);
    }

    #[test]
    fn host_ports_are_ignored() {
        assert_eq!(strip_port(b"a.b:80"), b"a.b");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
        assert_eq!(strip_port(b"a.b"), b"a.b");
    }
}
