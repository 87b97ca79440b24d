//! Tests of the whole decision and of `PolicyIndex` over a real snapshot.

use std::net::IpAddr;

use super::*;
use crate::keys::{build, digest, KeySpec, PlanSpec, Snapshot};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn route() -> RoutePolicy {
    RoutePolicy {
        max_body: None,
        global_max_body: 1000,
        upstream: 0,
        by_tenant: UpstreamMap::new([("acme", 1)]),
        by_plan: UpstreamMap::new([("enterprise", 2)]),
    }
}

fn key<'a>(scopes: &'a ScopeSet, allow: &'a IpAllowlist) -> KeyPolicy<'a> {
    KeyPolicy {
        scopes,
        allow,
        max_body: None,
        tenant: "t",
        plan: "free",
        plan_upstream: None,
    }
}

#[test]
fn allowed_request_gets_upstream_and_limit() {
    let s = ScopeSet::compile(["GET /v1/**"]).unwrap();
    let a = IpAllowlist::any();
    let d = decide(
        &key(&s, &a),
        &route(),
        b"GET",
        b"/v1/x",
        ip("1.2.3.4"),
        Some(10),
    );
    assert_eq!(
        d,
        Ok(Decision {
            upstream: 0,
            max_body: 1000
        })
    );
}

#[test]
fn deny_by_default() {
    let s = ScopeSet::empty();
    let a = IpAllowlist::any();
    let d = decide(&key(&s, &a), &route(), b"GET", b"/", ip("1.2.3.4"), None);
    assert_eq!(d, Err(Denial::InsufficientScope));
    assert_eq!(Denial::InsufficientScope.status(), 403);
    assert_eq!(Denial::InsufficientScope.code(), "insufficient_scope");
    let detail = Denial::InsufficientScope.detail(b"GET", b"/v1/admin");
    assert!(detail.contains("GET /v1/admin"), "{detail}");
}

#[test]
fn ip_is_checked_first() {
    let s = ScopeSet::empty();
    let a = IpAllowlist::compile(["10.0.0.0/8"]).unwrap();
    let k = key(&s, &a);
    let d = decide(&k, &route(), b"GET", b"/", ip("11.0.0.1"), None);
    assert_eq!(d, Err(Denial::IpNotAllowed));
    assert_eq!(Denial::IpNotAllowed.code(), "ip_not_allowed");
    let d = decide(&k, &route(), b"GET", b"/", ip("::ffff:10.0.0.1"), None);
    assert_eq!(d, Err(Denial::InsufficientScope));
}

#[test]
fn smallest_body_limit_applies_and_global_caps() {
    let s = ScopeSet::compile(["POST /**"]).unwrap();
    let a = IpAllowlist::any();
    let mut k = key(&s, &a);
    let mut r = route();
    let lim = |k: &KeyPolicy<'_>, r: &RoutePolicy, n| decide(k, r, b"POST", b"/", ip("1.1.1.1"), n);
    assert_eq!(lim(&k, &r, Some(1000)).unwrap().max_body, 1000);
    assert_eq!(
        lim(&k, &r, Some(1001)),
        Err(Denial::BodyTooLarge { limit: 1000 })
    );
    r.max_body = Some(500);
    assert_eq!(lim(&k, &r, None).unwrap().max_body, 500);
    k.max_body = Some(200);
    assert_eq!(
        lim(&k, &r, Some(201)),
        Err(Denial::BodyTooLarge { limit: 200 })
    );
    k.max_body = Some(5000);
    assert_eq!(lim(&k, &r, None).unwrap().max_body, 500);
    r.max_body = None;
    assert_eq!(lim(&k, &r, None).unwrap().max_body, 1000, "global caps");
    assert_eq!(Denial::BodyTooLarge { limit: 1 }.status(), 413);
}

#[test]
fn tenant_wins_over_plan_then_plan_default_then_route() {
    let s = ScopeSet::compile(["GET /**"]).unwrap();
    let a = IpAllowlist::any();
    let up = |tenant, plan, plan_upstream| {
        let k = KeyPolicy {
            tenant,
            plan,
            plan_upstream,
            ..key(&s, &a)
        };
        decide(&k, &route(), b"GET", b"/", ip("1.1.1.1"), None)
            .unwrap()
            .upstream
    };
    assert_eq!(up("acme", "enterprise", Some(7)), 1);
    assert_eq!(up("other", "enterprise", Some(7)), 2);
    assert_eq!(up("other", "free", Some(7)), 7);
    assert_eq!(up("other", "free", None), 0);
    assert_eq!(up("acm", "enterprisE", None), 0);
}

#[test]
fn large_upstream_maps_binary_search() {
    let names: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
    let m = UpstreamMap::new(names.iter().enumerate().map(|(i, n)| (n.as_str(), i)));
    for (i, n) in names.iter().enumerate() {
        assert_eq!(m.get(n), Some(i));
    }
    assert_eq!(m.get("t50"), None);
    let long = "x".repeat(70);
    let m = UpstreamMap::new([(long.as_str(), 9), ("abcdef", 3)]);
    assert_eq!(m.get(&long), Some(9));
    assert_eq!(m.get(&"x".repeat(6)), None);
    assert_eq!(m.get("abcdef"), Some(3));
    assert_eq!(m.get(&"x".repeat(134)), None);
    let m = UpstreamMap::new([("abcdefghijklmnop", 1), ("abcdefghijklmnoq", 2), ("a", 3)]);
    assert_eq!(m.get("abcdefghijklmnop"), Some(1));
    assert_eq!(m.get("abcdefghijklmnoq"), Some(2));
    assert_eq!(m.get("abcdefghijklmnor"), None);
    assert_eq!(m.get("a"), Some(3));
    assert_eq!(m.get("b"), None);
    assert_eq!(m.get(""), None);
}

#[test]
fn explain_walks_every_step() {
    let s = ScopeSet::compile(["GET /v1/*"]).unwrap();
    let a = IpAllowlist::compile(["10.0.0.0/8"]).unwrap();
    let k = key(&s, &a);
    let lines = explain(&k, &route(), "GET", "/v1/x?q=1", ip("10.1.1.1"), Some(5));
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[0].contains("is in allowlist [10.0.0.0/8]"),
        "{lines:#?}"
    );
    assert!(lines[1].contains("one of 1"), "{lines:#?}");
    assert!(lines[4].starts_with("allowed: upstream #0"), "{lines:#?}");
    let lines = explain(&k, &route(), "DELETE", "/v1/x", ip("10.1.1.1"), None);
    assert_eq!(lines[4], "refused: 403 insufficient_scope");
}

fn plan(
    name: &str,
    scopes: &[&str],
    ips: &[&str],
    body: Option<u64>,
    up: Option<&str>,
) -> PlanSpec {
    PlanSpec {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        allow_ips: ips.iter().map(|s| s.to_string()).collect(),
        max_body_bytes: body,
        upstream: up.map(Into::into),
        ..PlanSpec::default()
    }
}

fn spec(i: usize, plan: &str, scopes: &[&str], ips: &[&str], body: Option<u64>) -> KeySpec {
    KeySpec {
        id: format!("key_{i:016}"),
        digest: digest(format!("secret-{i}").as_bytes()),
        tenant: format!("tenant{i}"),
        plan: plan.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        allow_ips: ips.iter().map(|s| s.to_string()).collect(),
        max_body_bytes: body,
        enabled: true,
        ..KeySpec::default()
    }
}

fn snapshot(plans: &[PlanSpec], keys: &[KeySpec]) -> Snapshot {
    Snapshot::from_bytes(&build(1, 0, plans, keys).unwrap()).unwrap()
}

fn upstreams(name: &str) -> Option<usize> {
    ["api", "dedicated"].iter().position(|&u| u == name)
}

#[test]
fn index_key_lists_replace_plan_lists() {
    let plans = [
        plan("free", &["GET /v1/**"], &["10.0.0.0/8"], Some(100), None),
        plan("enterprise", &[], &[], None, Some("dedicated")),
    ];
    let keys = [
        spec(0, "free", &[], &[], None),
        spec(1, "free", &["POST /v2/*"], &[], Some(50)),
        spec(2, "free", &[], &["2001:db8::/32"], Some(500)),
        spec(3, "enterprise", &[], &[], None),
        spec(4, "free", &["POST /v2/*"], &[], None),
    ];
    let snap = snapshot(&plans, &keys);
    let idx = PolicyIndex::build(&snap, upstreams).unwrap();
    let views: Vec<_> = snap.keys().collect();
    let p = |i: usize| idx.for_key(views[i]);
    let (get, post) = (b"GET".as_slice(), b"POST".as_slice());
    // key 0: plan's everything
    assert!(p(0).scopes.allows(get, b"/v1/a") && !p(0).scopes.allows(post, b"/v2/a"));
    assert!(p(0).allow.allows(ip("10.1.1.1")) && !p(0).allow.allows(ip("11.1.1.1")));
    assert_eq!(p(0).max_body, Some(100));
    assert_eq!(
        (p(0).tenant, p(0).plan, p(0).plan_upstream),
        ("tenant0", "free", None)
    );
    // key 1: own scopes replace the plan's; plan's allowlist still applies; smaller body
    assert!(!p(1).scopes.allows(get, b"/v1/a") && p(1).scopes.allows(post, b"/v2/a"));
    assert!(!p(1).allow.allows(ip("11.1.1.1")));
    assert_eq!(p(1).max_body, Some(50));
    // key 2: own allowlist replaces the plan's; plan's scopes; plan's smaller body
    assert!(p(2).allow.allows(ip("2001:db8::1")) && !p(2).allow.allows(ip("10.1.1.1")));
    assert!(p(2).scopes.allows(get, b"/v1/a"));
    assert_eq!(p(2).max_body, Some(100));
    // key 3: plan without scopes denies everything; plan upstream resolved
    assert!(p(3).scopes.is_empty() && p(3).allow.is_empty());
    assert_eq!(p(3).plan_upstream, Some(1));
    // keys 1 and 4 share one compiled set
    assert!(std::ptr::eq(p(1).scopes, p(4).scopes));
    let (scope_sets, allow_sets, own) = idx.stats();
    assert_eq!((scope_sets, allow_sets, own), (3, 3, 3));
    // grace secrets and lookups find the same entry
    let found = snap.lookup(&digest(b"secret-1")).unwrap();
    assert!(std::ptr::eq(idx.for_key(found).scopes, p(1).scopes));
}

#[test]
fn index_refuses_unknown_plan_upstream_and_bad_lists() {
    let snap = snapshot(&[plan("p", &[], &[], None, Some("nowhere"))], &[]);
    let e = PolicyIndex::build(&snap, upstreams)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"nowhere\"") && e.contains("plan \"p\""), "{e}");
    let snap = snapshot(
        &[plan("p", &[], &[], None, None)],
        &[spec(0, "p", &["get /x"], &[], None)],
    );
    let e = PolicyIndex::build(&snap, upstreams)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("key key_0000000000000000: bad scope \"get /x\""),
        "{e}"
    );
    let snap = snapshot(&[plan("p", &["GET /"], &["10.1.0.0/8"], None, None)], &[]);
    let e = PolicyIndex::build(&snap, upstreams)
        .unwrap_err()
        .to_string();
    assert!(e.contains("plan \"p\"") && e.contains("10.1.0.0/8"), "{e}");
}

#[test]
fn route_body_limit_before_any_key() {
    let mut r = route();
    assert_eq!(
        r.route_body_limit(),
        1000,
        "the global limit without a route limit"
    );
    r.max_body = Some(300);
    assert_eq!(r.route_body_limit(), 300);
    r.max_body = Some(5000);
    assert_eq!(
        r.route_body_limit(),
        1000,
        "the global limit caps the route's"
    );
}
