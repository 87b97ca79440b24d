//! Route choice: longest path-prefix match, host-specific routes before host-less ones.
//!
//! Prefixes match the path once it has passed [`check_path`] (no dot-segment or encoded
//! slash can make a request match one prefix here and mean another path at the upstream),
//! on segment boundaries: `/health` matches `/health`, `/health/` and
//! `/health/x`, not `/healthz`. A prefix ending in `/` is its own boundary. A route with
//! [`PrefixMatch::Raw`] matches any path that starts with its bytes.

pub use crate::config::PrefixMatch;
use crate::error::Problem;
use crate::http::HeadError;

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

/// Refuses paths whose meaning could differ between us and the upstream: dot-segments
/// (`/../`, `/./`, also percent-encoded), encoded slashes or backslashes, and backslashes.
/// Without this, `/public/../admin` would match a public route here and reach `/admin` there.
pub fn check_path(path: &[u8]) -> Result<(), HeadError> {
    let bad = |detail| {
        Err(HeadError {
            problem: Problem::BadRequest,
            detail,
        })
    };
    if path.contains(&b'\\') {
        return bad("backslash in the path");
    }
    for segment in path.split(|&b| b == b'/') {
        if is_dot_segment(segment) {
            return bad("dot-segment ('.' or '..') in the path");
        }
    }
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'%', &path[i..]) {
        let at = i + p;
        match path.get(at + 1..at + 3) {
            Some([b'2', b'f' | b'F']) | Some([b'5', b'c' | b'C']) => {
                return bad("encoded '/' or '\\' in the path")
            }
            Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {}
            _ => return bad("malformed percent-encoding in the path"),
        }
        i = at + 1;
    }
    Ok(())
}

fn is_dot_segment(segment: &[u8]) -> bool {
    // Decode only `%2e`: a segment is a dot-segment if it is one or two dots once decoded.
    let mut dots = 0;
    let mut i = 0;
    while i < segment.len() {
        match segment[i] {
            b'.' => i += 1,
            b'%' if segment
                .get(i + 1..i + 3)
                .is_some_and(|h| h.eq_ignore_ascii_case(b"2e")) =>
            {
                i += 3
            }
            _ => return false,
        }
        dots += 1;
    }
    dots == 1 || dots == 2
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

    #[test]
    fn ambiguous_paths_are_refused() {
        for p in [
            &b"/public/../admin"[..],
            b"/a/./b",
            b"/a/..",
            b"/a/%2e%2e/b",
            b"/a/.%2E/b",
            b"/a%2fb",
            b"/a%5Cb",
            b"/a\\b",
            b"/a%zz",
            b"/a%2",
        ] {
            assert!(check_path(p).is_err(), "{}", String::from_utf8_lossy(p));
        }
        for p in [
            &b"/"[..],
            b"/a/b.c",
            b"/a/...",
            b"/a/.hidden",
            b"/a%20b",
            b"/v1/x..y",
        ] {
            assert!(check_path(p).is_ok(), "{}", String::from_utf8_lossy(p));
        }
    }
}
