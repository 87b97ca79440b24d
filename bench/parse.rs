//! Request-head parsing: httparse plus keyway's strictness checks, for a typical 10-header
//! API request, against httparse alone (the floor) on the same bytes.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use keyway::http::{HeadLimits, KnownHeaders, RequestHead};

const TYPICAL: &[u8] = b"GET /v1/orders/12345?expand=items&limit=20 HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: example-sdk/2.3.1 (linux; x86_64)\r\n\
Accept: application/json\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
x-api-key: kw_live_3Fh8sK2LmQ9xR7vT1bN5cY4dW6gJ0aE2pZ\r\n\
x-request-id: 7d1f0c3a-5b2e-4c8d-9a6f-1e2b3c4d5e6f\r\n\
Connection: keep-alive\r\n\
Cache-Control: no-cache\r\n\
Cookie: session=abc123; theme=dark\r\n\r\n";

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(TYPICAL.len() as u64));
    let limits = HeadLimits::default();
    let known = KnownHeaders::default();
    let mut head = RequestHead::default();
    g.bench_function("keyway_strict_10_headers", |b| {
        b.iter(|| {
            let done = head.parse(black_box(TYPICAL), &limits, &known).unwrap();
            black_box((done, head.framing, head.api_key_header));
        })
    });
    g.bench_function("httparse_only_10_headers", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 100];
            let mut req = httparse::Request::new(&mut headers);
            black_box(req.parse(black_box(TYPICAL)).unwrap());
        })
    });
    g.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
