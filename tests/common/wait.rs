//! Waiting for a condition, never sleeping and hoping: bounded polls of a closure, a metric
//! or the gateway's open connections.

#![allow(dead_code)] // each test binary uses its own subset

use super::{admin_get, Client};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often `wait_until` and `poll_until` look again: often enough to add little to a
/// test's time, seldom enough not to load the 2-core machines the tests run on.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` until it holds; panics naming `what` if it still does not after `limit`.
/// Tests wait for a condition this way, never by sleeping and hoping it happened.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    poll_until(limit, what, || cond().then_some(()))
}

/// Polls `f` until it returns `Some`, and returns that; panics naming `what` after `limit`.
pub fn poll_until<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    poll_every(POLL, limit, what, f)
}

/// `poll_until` looking every `every` (for probes that cost a request through the gateway).
pub fn poll_every<T>(
    every: Duration,
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// The value of the first `/metrics` line that starts with `series` (a name, with its labels
/// if it has any) followed by a space. Shards publish every 500 ms: poll it with `wait_until`.
pub fn metric(admin: SocketAddr, series: &str) -> Option<f64> {
    let (_, body) = admin_get(admin, "/metrics");
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits (bounded) until the gateway counts at least `n` open client connections.
pub fn wait_connections(admin: SocketAddr, n: f64) {
    wait_until(
        Duration::from_secs(5),
        &format!("{n} open client connections in /metrics"),
        || metric(admin, "keyway_connections_active").is_some_and(|v| v >= n),
    );
}

/// `GET /v1/orders` with `key` (the route the live-change tests use).
pub fn request(key: &str) -> String {
    format!("GET /v1/orders HTTP/1.1\r\nHost: t\r\nx-api-key: {key}\r\n\r\n")
}

/// Sends `request(key)` on every keep-alive connection until it answers `want`; the
/// slowest time that took.
pub fn until_every(conns: &mut [Client], key: &str, want: u16) -> Duration {
    let t0 = Instant::now();
    let mut slowest = Duration::ZERO;
    for c in conns.iter_mut() {
        loop {
            c.send(request(key).as_bytes());
            let r = c.read_response("GET");
            if r.status == want {
                slowest = slowest.max(t0.elapsed());
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "no {want} after 5 s: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    slowest
}
