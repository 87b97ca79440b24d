//! Tests of path judging: refusals, rewrites, and a property test that whatever is accepted
//! keeps its route and scope verdict under every normalisation an upstream may apply.

use super::*;
use crate::policy::route::{PrefixMatch, RouteTable};
use crate::policy::ScopeSet;
use proptest::prelude::*;

/// (judged, forwarded) for an accepted path.
fn ok(path: &str) -> (String, String) {
    let (mut j, mut f) = (Vec::new(), Vec::new());
    let r = judge(path.as_bytes(), &mut j, &mut f).unwrap_or_else(|e| panic!("{path}: {e:?}"));
    let judged = if r.judged_rewritten { j } else { path.into() };
    let forward = if r.forward_rewritten { f } else { path.into() };
    (
        String::from_utf8(judged).unwrap(),
        String::from_utf8(forward).unwrap(),
    )
}

fn refused(path: &str) -> &'static str {
    let (mut j, mut f) = (Vec::new(), Vec::new());
    match judge(path.as_bytes(), &mut j, &mut f) {
        Ok(_) => panic!("{path} was accepted"),
        Err(e) => {
            assert_eq!(e.problem, Problem::BadRequest);
            assert!(!e.detail.contains('\n') && e.detail.contains("; "));
            e.detail
        }
    }
}

#[test]
fn ambiguous_paths_are_refused() {
    for p in [
        "/public/../admin",
        "/a/./b",
        "/a/..",
        "/a/.",
        "/a/%2e%2e/b",
        "/a/.%2E/b",
        "/a%2fb",
        "/a%5Cb",
        "/a\\b",
        "/a%zz",
        "/a%2",
        "/a%",
        "/a/%g0",
        // Dot-segments with parameters are dot-segments to a servlet container.
        "/health/..;/v1/orders",
        "/v1/orders/..;/admin",
        "/v1/orders/..;x=1/admin",
        "/v1/orders/.;/admin",
        "/v1/orders/%2e%2e;/admin",
        "/v1/orders/.%2e;/admin",
        "/v1/orders/%2E%2E%3B/admin",
        "/v1/orders/..%3b/admin",
        "/v1/orders/..%3B",
        // Encoded ';' is refused everywhere; parameters on an empty segment too.
        "/v1/orders%3Bx/1",
        "/v1/;x/orders",
        "/v1/orders/;x",
    ] {
        refused(p);
    }
    assert!(refused("/a/..;/b").contains("dot-segment"));
    assert!(refused("/a%zz").contains("malformed"));
    assert!(refused("/a%3bb").contains("%3B"));
}

#[test]
fn plain_paths_are_judged_and_forwarded_as_sent_without_writing() {
    for p in [
        "/",
        "/a/b.c",
        "/a/...",
        "/a/.hidden",
        "/a%20b",
        "/v1/x..y",
        "/v1/orders/",
        "/a%3Fb%23c%25d",
        "/a%3fb",
    ] {
        let (mut j, mut f) = (Vec::new(), Vec::new());
        let r = judge(p.as_bytes(), &mut j, &mut f).unwrap();
        assert_eq!(r, Judged::default(), "{p}");
        assert!(j.is_empty() && f.is_empty() && j.capacity() == 0 && f.capacity() == 0);
    }
}

#[test]
fn unreserved_escapes_are_decoded_and_forwarded_decoded() {
    let same = |p: &str, want: &str| assert_eq!(ok(p), (want.into(), want.into()), "{p}");
    same("/v1/%6frders/1", "/v1/orders/1");
    same("/v1/%6Frders/1", "/v1/orders/1");
    same("/%41%7a%30%2D%2e%5F%7E", "/Az0-._~");
    // Reserved escapes stay as sent (hex case included) beside decoded ones.
    same("/%61%3fb%3F%25", "/a%3fb%3F%25");
    // A decoded dot that makes no dot-segment is a plain dot.
    same("/a/%2e%2e%2e", "/a/...");
    same("/a/x%2ey", "/a/x.y");
}

#[test]
fn empty_segments_merge_and_a_trailing_slash_stays() {
    let same = |p: &str, want: &str| assert_eq!(ok(p), (want.into(), want.into()), "{p}");
    same("//", "/");
    same("/v1//orders", "/v1/orders");
    same("//health", "/health");
    same("/v1/orders//", "/v1/orders/");
    same("/a///b/", "/a/b/");
}

#[test]
fn parameters_are_judged_without_and_forwarded_with() {
    let (mut j, mut f) = (Vec::new(), Vec::new());
    let r = judge(b"/files/a;v=1/b", &mut j, &mut f).unwrap();
    assert!(r.params && r.judged_rewritten && !r.forward_rewritten);
    assert_eq!(j, b"/files/a/b");
    assert_eq!(
        ok("/files/%61;v=%31/b;jsessionid=x"),
        ("/files/a/b".into(), "/files/a;v=1/b;jsessionid=x".into())
    );
    // ';' inside the parameters is part of them; '..' as a parameter is no dot-segment.
    assert_eq!(ok("/f/a;x;y=..").0, "/f/a");
}

#[test]
fn the_target_keeps_its_query_and_is_written_only_when_it_changes() {
    let (mut j, mut f) = (Vec::new(), Vec::new());
    let t = b"/v1/%6frders?x=%6f&y=..;";
    let (path, r) = judge_target(t, 12, &mut j, &mut f).unwrap();
    assert_eq!(path, b"/v1/orders");
    assert!(r.forward_rewritten);
    assert_eq!(f, b"/v1/orders?x=%6f&y=..;");
    let (mut j, mut f) = (Vec::new(), Vec::new());
    let (path, _) = judge_target(b"/v1/orders?a=1", 10, &mut j, &mut f).unwrap();
    assert_eq!(path, b"/v1/orders");
    assert!(f.is_empty() && f.capacity() == 0 && j.capacity() == 0);
}

// ---- the property: what is accepted means the same thing to every upstream -----------------

/// Routes of the property: `/` keyed and allowing path parameters, `/health` public, `/v1/`
/// keyed, `/files/` keyed and allowing path parameters, `/v1/orders-raw` matched raw.
fn table() -> (RouteTable, [bool; 5]) {
    let routes = [
        ("/", PrefixMatch::Segment, true),
        ("/health", PrefixMatch::Segment, false),
        ("/v1/", PrefixMatch::Segment, false),
        ("/files/", PrefixMatch::Segment, true),
        ("/v1/orders-raw", PrefixMatch::Raw, false),
    ];
    let t = RouteTable::new(routes.iter().map(|&(p, m, _)| (p, None, m)));
    (t, routes.map(|r| r.2))
}

fn scopes() -> ScopeSet {
    ScopeSet::compile(["GET /v1/orders/**", "GET /files/*/x"]).unwrap()
}

/// (route, scope allows GET) for `path`, matched literally.
fn verdict(t: &RouteTable, s: &ScopeSet, path: &[u8]) -> (Option<usize>, bool) {
    (t.find(None, path), s.allows(b"GET", path))
}

fn segments_map(path: &[u8], f: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, seg) in path.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend(f(seg));
    }
    out
}

/// Servlet containers: each segment's `;...` is dropped.
fn strip_params(path: &[u8]) -> Vec<u8> {
    segments_map(path, |s| s.split(|&b| b == b';').next().unwrap().to_vec())
}

fn merge_slashes(path: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    for &b in path {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    out
}

/// Every well-formed escape decoded once (a malformed one is kept).
fn decode_once(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < path.len() {
        let esc = path.get(i + 1..i + 3).and_then(|h| {
            u8::from_str_radix(std::str::from_utf8(h).ok()?, 16)
                .ok()
                .filter(|_| h.iter().all(u8::is_ascii_hexdigit))
        });
        match (path[i], esc) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// RFC 3986 §5.2.4 on a path starting with '/'.
fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut stack: Vec<&[u8]> = Vec::new();
    let segs: Vec<&[u8]> = path.split(|&b| b == b'/').skip(1).collect();
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        match *seg {
            b"." if last => stack.push(b""),
            b"." => {}
            b".." => {
                stack.pop();
                if last {
                    stack.push(b"");
                }
            }
            s => stack.push(s),
        }
    }
    let mut out = Vec::new();
    for s in stack {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Paths of up to 7 segments, each either a name the tables know (plainly or with an escape)
/// or a few atoms rich in dots, `;`, `%` and escapes, some of them torn: so attack shapes such
/// as `/health/..;/v1/orders` or `/v1/%6Frders` come up often.
fn path_strategy() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "v1",
        "v%31",
        "orders",
        "%6Frders",
        "health",
        "h%65alth",
        "files",
        "admin",
        "x",
        "orders-raw",
    ])
    .prop_map(String::from);
    let atom = prop::sample::select(vec![
        ".", "..", "%2e", "%2E", ";", ";x=1", "%3b", "%3B", "%", "2e", "3b", "%25", "%2f", "%5c",
        "%3f", "%6f", "orders", "v1", "health", "x", "",
    ]);
    let tricky = prop::collection::vec(atom, 1..4).prop_map(|a| a.concat());
    let segment = prop_oneof![3 => name, 2 => tricky];
    let sep = prop::sample::select(vec!["/", "/", "/", "/", "//"]);
    prop::collection::vec((sep, segment), 0..7).prop_map(|segs| {
        let mut p = String::new();
        for (sep, seg) in segs {
            p.push_str(sep);
            p.push_str(&seg);
        }
        if p.is_empty() {
            p.push('/');
        }
        p
    })
}

/// The attack shapes of the finding, built from the same tokens, so the generator is known
/// to reach them.
#[test]
fn the_generator_alphabet_spells_the_known_attacks() {
    for p in [
        "/health/..;/v1/orders",
        "/v1/orders/%2e%2e;/admin",
        "/v1/orders/.%2e%3b/admin",
    ] {
        refused(p);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn accepted_paths_keep_their_verdict_under_upstream_normalisations(path in path_strategy()) {
        // The fast path agrees with the general one.
        if is_plain(path.as_bytes()) {
            let (mut j, mut f) = (Vec::new(), Vec::new());
            prop_assert_eq!(judge_general(path.as_bytes(), &mut j, &mut f).ok(), Some(Judged::default()));
        }
        let (t, allows_params) = table();
        let s = scopes();
        let (mut j, mut f) = (Vec::new(), Vec::new());
        let Ok(r) = judge(path.as_bytes(), &mut j, &mut f) else { return Ok(()) };
        let judged = if r.judged_rewritten { j.clone() } else { path.clone().into_bytes() };
        let forward = if r.forward_rewritten { f.clone() } else { path.clone().into_bytes() };
        let route = t.find(None, &judged);
        if r.params && !route.is_some_and(|id| allows_params[id]) {
            return Ok(()); // refused by the pipeline
        }
        let want = verdict(&t, &s, &judged);
        // Judging is idempotent, and judging what is forwarded gives what was judged.
        let (mut j2, mut f2) = (Vec::new(), Vec::new());
        let again = judge(&judged, &mut j2, &mut f2).unwrap();
        prop_assert!(!again.judged_rewritten && !again.forward_rewritten && !again.params);
        let (mut j3, mut f3) = (Vec::new(), Vec::new());
        let fwd = judge(&forward, &mut j3, &mut f3).unwrap();
        prop_assert!(!fwd.forward_rewritten);
        prop_assert_eq!(if fwd.judged_rewritten { &j3 } else { &forward }, &judged);
        // What upstreams may do to the path they receive. On a route that allows
        // parameters the upstream is taken to drop them (that is what they are for there).
        let view = |p: Vec<u8>| if r.params { strip_params(&p) } else { p };
        let all = remove_dot_segments(&merge_slashes(&decode_once(&strip_params(&forward))));
        for (name, seen) in [
            ("as sent", view(forward.clone())),
            ("dot-segments removed", view(remove_dot_segments(&forward))),
            ("servlet parameters stripped", strip_params(&forward)),
            ("'//' merged", view(merge_slashes(&forward))),
            ("percent-decoded again", view(decode_once(&forward))),
            ("decoded, then parameters stripped", strip_params(&decode_once(&forward))),
            ("all of them, servlet order", all),
        ] {
            prop_assert_eq!(
                verdict(&t, &s, &seen),
                want,
                "{} judged as {} forwarded as {}: {} gives {}",
                path,
                String::from_utf8_lossy(&judged),
                String::from_utf8_lossy(&forward),
                name,
                String::from_utf8_lossy(&seen)
            );
        }
    }
}
