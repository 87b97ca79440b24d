//! Criterion bench of the audit step's per-request cost: formatting one record (a keyed,
//! proxied request) as a JSON line into the shard's reused batch buffer.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keyway::audit::{write_line, Record};

fn format(c: &mut Criterion) {
    let record = Record {
        ts_ms: 1_795_825_193_123,
        request_id: b"7f3a9c0e12d4b5a6",
        key_id: b"key_4f9a8b7c6d5e",
        tenant: b"acme",
        plan: b"pro",
        method: b"GET",
        path: b"/v1/orders/12345",
        route: b"/v1/",
        upstream: b"orders",
        status: 200,
        outcome: "proxied",
        bytes_in: 0,
        bytes_out: 1_234,
        duration_us: 412,
        upstream_us: Some(301),
        client_ip: Some("10.1.2.3".parse().unwrap()),
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    c.bench_function("audit_format_one_record", |b| {
        b.iter(|| {
            if buf.len() > 60 * 1024 {
                buf.clear();
            }
            write_line(black_box(&record), &mut buf);
        })
    });
}

criterion_group!(benches, format);
criterion_main!(benches);
