//! Policy benchmarks: the whole `decide` (IP allowlist, scopes, body size, upstream) for a
//! key with 10 scopes where only the last one matches, the same key denied (scope, IP), and
//! `client_ip` behind two trusted proxies. Inputs go through `black_box(&x)` (a pointer), so
//! the loop does not re-store a 17-byte `IpAddr` each iteration (a store-forwarding stall
//! that cost more than the IP check itself).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use keyway::config::Cidr;
use keyway::policy::{
    client_ip, decide, IpAllowlist, KeyPolicy, RoutePolicy, ScopeSet, UpstreamMap,
};

const SCOPES: [&str; 10] = [
    "GET /v1/products/*",
    "POST /v1/products",
    "GET /v1/customers/*/addresses",
    "PUT /v1/customers/*",
    "DELETE /v1/carts/*",
    "GET /v1/search",
    "* /v1/admin/health",
    "PATCH /v1/orders/*",
    "GET /v2/catalog/**",
    "POST /v1/orders/*/items/**",
];

fn bench(c: &mut Criterion) {
    let scopes = ScopeSet::compile(SCOPES).unwrap();
    let allow = IpAllowlist::compile(["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]).unwrap();
    let key = KeyPolicy {
        scopes: &scopes,
        allow: &allow,
        max_body: Some(1 << 20),
        tenant: "tenant-4711",
        plan: "pro",
        plan_upstream: None,
    };
    let route = RoutePolicy {
        max_body: Some(4 << 20),
        global_max_body: 10 << 20,
        upstream: 0,
        by_tenant: UpstreamMap::new([("acme", 1), ("globex", 2), ("initech", 3)]),
        by_plan: UpstreamMap::new([("enterprise", 4), ("pro", 5)]),
    };
    let client: IpAddr = "192.168.7.9".parse().unwrap();
    let outside: IpAddr = "203.0.113.9".parse().unwrap();
    let path: &[u8] = b"/v1/orders/ord_8f3a2c/items/line_2";

    let mut g = c.benchmark_group("policy");
    g.bench_function("decide_allow_last_of_10_scopes", |b| {
        b.iter(|| {
            decide(
                black_box(&key),
                black_box(&route),
                black_box(b"POST"),
                black_box(path),
                *black_box(&client),
                *black_box(&Some(512)),
            )
        })
    });
    g.bench_function("decide_deny_scope_10_scopes", |b| {
        b.iter(|| {
            decide(
                black_box(&key),
                black_box(&route),
                black_box(b"DELETE"),
                black_box(path),
                *black_box(&client),
                *black_box(&Some(512)),
            )
        })
    });
    g.bench_function("decide_deny_ip", |b| {
        b.iter(|| {
            decide(
                black_box(&key),
                black_box(&route),
                black_box(b"POST"),
                black_box(path),
                *black_box(&outside),
                *black_box(&None),
            )
        })
    });
    let trusted: Vec<Cidr> = ["10.0.0.0/8", "172.16.0.0/12"]
        .iter()
        .map(|s| Cidr::parse(s).unwrap())
        .collect();
    let peer: IpAddr = "10.0.0.1".parse().unwrap();
    let xff: &[u8] = b"6.6.6.6, 198.51.100.77, 172.16.3.4";
    g.bench_function("client_ip_two_trusted_hops", |b| {
        b.iter(|| client_ip(*black_box(&peer), black_box(Some(xff)), black_box(&trusted)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
