//! Rate limits end to end: 2 shards reconciling counts, 429 with the IETF headers, and
//! counters that survive a restart (SIGTERM) or lose at most about a second (SIGKILL).

mod common;

use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A config (2 shards, keyed route `/v1/`), a plan with `limits`, and one key; returns the
/// temp dir, config path and the key's secret. The snapshot is built; nothing runs yet.
fn prepare(
    upstream: std::net::SocketAddr,
    limits: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let shards = 2;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keyway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nshards = {shards}\nstate_dir = \"{}\"\n\n\
             [upstreams.api]\nservers = [\"{upstream}\"]\n\n[[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut args = vec!["plans", "set", "metered", "--scope", "* /v1/**"];
    for l in limits {
        args.extend_from_slice(&["--limit", l]);
    }
    cli_ok(&config, &args);
    let (_, secret) = create_key(&config, &["--tenant", "t", "--plan", "metered"]);
    cli_ok(&config, &["snapshot", "build"]);
    (dir, config, secret)
}

/// Tests that depend on timing (a 16-connection load, persistence deadlines) run one at a
/// time: on 2 cores they would otherwise starve each other's timers.
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn timing() -> std::sync::MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|p| p.into_inner())
}

fn start(dir: tempfile::TempDir, config: &Path) -> Gateway {
    Gateway::start_with(dir, config)
}

#[test]
fn hundred_per_second_over_two_shards_admits_the_ideal_count() {
    let _serial = timing();
    let up = Upstream::echo();
    let (dir, config, secret) = prepare(up.addr, &["100/s"]);
    let gw = start(dir, &config);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let (addr, secret, stop) = (gw.addr, secret.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let (mut ok, mut limited) = (0u64, 0u64);
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    c.send(
                        format!("GET /v1/x HTTP/1.1\r\nHost: t\r\nx-api-key: {secret}\r\n\r\n")
                            .as_bytes(),
                    );
                    let r = c.read_response("GET");
                    assert!(
                        r.header("ratelimit-policy").is_some(),
                        "no RateLimit-Policy on {}",
                        r.status
                    );
                    assert!(r.header("ratelimit").is_some());
                    match r.status {
                        200 => ok += 1,
                        429 => {
                            limited += 1;
                            let retry: u64 = r
                                .header("retry-after")
                                .expect("Retry-After")
                                .parse()
                                .unwrap();
                            assert!(retry >= 1);
                            assert_eq!(r.json()["code"], "rate_limited");
                            assert!(r.json()["detail"].as_str().unwrap().contains("100/s"));
                        }
                        s => panic!("unexpected status {s}"),
                    }
                }
                (ok, limited)
            })
        })
        .collect();
    // The sleep is the test: the load runs for 5 s of real time and the admitted count is
    // compared with 100/s over that time.
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, limited) = workers
        .into_iter()
        .map(|w| w.join().unwrap())
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let ideal = 100.0 * elapsed;
    // docs/ratelimits.md: over-admission is at most (shards - 1) per window length.
    let bound = (elapsed.ceil()) * 1.0;
    assert!(
        limited > ok,
        "the load was not far above the limit ({ok} ok, {limited} limited)"
    );
    assert!(
        (ok as f64) >= ideal * 0.97 - 100.0 && (ok as f64) <= ideal * 1.03 + bound,
        "admitted {ok} in {elapsed:.2}s, ideal {ideal:.0} (+{bound} bound), limited {limited}"
    );
}

#[test]
fn ietf_headers_on_every_keyed_answer() {
    let _serial = timing();
    let up = Upstream::echo();
    let (dir, config, secret) = prepare(up.addr, &["3/min"]);
    let gw = start(dir, &config);
    for remaining in [2, 1, 0] {
        // Requests may land on either shard: space them past the 10 ms sync interval so each
        // shard has seen the other's counts. Kept as a sleep: the exchange between shards has
        // no outside signal (metrics publish every 500 ms), and any request would spend.
        std::thread::sleep(SYNC_SPACING);
        let r = get(gw.addr, "/v1/x", &format!("x-api-key: {secret}\r\n"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-policy"), Some("\"minute\";q=3;w=60"));
        let rl = r.header("ratelimit").unwrap();
        assert!(
            rl.starts_with(&format!("\"minute\";r={remaining};t=")),
            "{rl}"
        );
        let t: u64 = rl.rsplit("t=").next().unwrap().parse().unwrap();
        // Sliding windows count in 20 sub-buckets: room comes back within 1.05 x the window
        // (docs/ratelimits.md).
        assert!(t <= 63, "t={t} beyond the 60 s window");
    }
    std::thread::sleep(SYNC_SPACING);
    let r = get(gw.addr, "/v1/x", &format!("x-api-key: {secret}\r\n"));
    assert_problem(&r, 429, "rate_limited", Some("3/min"));
    let t: u64 = r
        .header("ratelimit")
        .unwrap()
        .rsplit("t=")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= t, "Retry-After {retry} earlier than t={t}");
}

/// How long a shard's counts take, with margin, to reach the other shard (sync every 10 ms;
/// an idle shard may look only every few tens of ms). Requests on new connections land on
/// either shard, so those that must see each other's counts are spaced this far apart: the
/// exchange has no outside signal to wait for, and probing it would spend.
const SYNC_SPACING: Duration = Duration::from_millis(50);

/// Uses `n` requests of the key, spaced past the sync interval; returns how many were
/// admitted.
fn spend(addr: std::net::SocketAddr, secret: &str, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            // See SYNC_SPACING (kept at its historical 60 ms here).
            std::thread::sleep(Duration::from_millis(60));
            get(addr, "/v1/x", &format!("x-api-key: {secret}\r\n")).status == 200
        })
        .count()
}

/// The id of the (first) key in the store.
fn key_id(config: &Path) -> String {
    let list = cli_ok(config, &["keys", "list", "--json"]);
    serde_json::from_str::<serde_json::Value>(&list).unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_day_quota_continues_after_sigterm_and_restart() {
    let _serial = timing();
    let up = Upstream::echo();
    let (dir, config, secret) = prepare(up.addr, &["10/day"]);
    let mut gw = start(dir, &config);
    assert_eq!(spend(gw.addr, &secret, 4), 4);
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(10)).unwrap().success());
    // `keys show` reads the usage the gateway persisted.
    let id = key_id(&config);
    let shown = cli_ok(&config, &["keys", "show", &id]);
    assert!(shown.contains("10/day: 4 used, 6 left"), "{shown}");
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    drop(gw);
    let gw = start(dir, &config);
    assert_eq!(
        spend(gw.addr, &secret, 10),
        6,
        "the day's first 4 requests were forgotten"
    );
}

#[test]
fn sigkill_loses_at_most_about_a_second_of_counts() {
    let _serial = timing();
    let up = Upstream::echo();
    let (dir, config, secret) = prepare(up.addr, &["100/day"]);
    let mut gw = start(dir, &config);
    assert_eq!(spend(gw.addr, &secret, 20), 20);
    // Until a persist holds all 20: `keys show` reads the usage from the state file.
    let id = key_id(&config);
    wait_until(Duration::from_secs(5), "the 20 counts persisted", || {
        cli_ok(&config, &["keys", "show", &id]).contains("100/day: 20 used")
    });
    assert_eq!(spend(gw.addr, &secret, 5), 5); // may be lost
    gw.signal(libc::SIGKILL);
    gw.wait_exit(Duration::from_secs(5)).unwrap();
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    drop(gw);
    let gw = start(dir, &config);
    let left = spend(gw.addr, &secret, 100);
    assert!(
        (75..=80).contains(&left),
        "{left} left of 100 after 25 used (20 persisted)"
    );
}

#[test]
fn credits_are_spent_by_route_cost_then_quota_exhausted() {
    let _serial = timing();
    let up = Upstream::echo();
    let (dir, config, _) = prepare(up.addr, &[]);
    // A route that costs 2 credits per request, beside the default cost 1.
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[[routes]]\npath_prefix = \"/v1/expensive/\"\nupstream = \"api\"\ncost = 2\n";
    std::fs::write(&config, text).unwrap();
    let (_, secret) = create_key(
        &config,
        &["--tenant", "t", "--plan", "metered", "--credits", "5"],
    );
    cli_ok(&config, &["snapshot", "build"]);
    let gw = start(dir, &config);
    // Each request on a new connection, so on either shard: spaced past the time a shard's
    // spending takes to reach the other (2 sync intervals), the count is exact.
    // Kept as a sleep for the reason given at SYNC_SPACING.
    let call = |path: &str| {
        std::thread::sleep(Duration::from_millis(80));
        get(gw.addr, path, &format!("x-api-key: {secret}\r\n"))
    };
    let r = call("/v1/expensive/a");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body)); // 2 of 5
    assert_eq!(call("/v1/expensive/b").status, 200); // 4 of 5
    let r = call("/v1/expensive/c");
    assert_problem(&r, 429, "quota_exhausted", None); // 2 more would exceed 5
    assert_eq!(call("/v1/cheap").status, 200); // 5 of 5
    let r = call("/v1/cheap");
    assert_problem(&r, 429, "quota_exhausted", None);
}

/// The peer check's burst: 30 requests back to back on one keep-alive connection (so on one
/// shard of two) against a 5/s key. The shard's cross-shard reserve holds some of the room
/// back; those requests wait for it instead of getting 429, so the key gets exactly its 5.
#[test]
fn a_burst_on_one_connection_gets_exactly_the_limit_over_two_shards() {
    let _serial = timing();
    let up = Upstream::echo();
    let (dir, config, secret) = prepare(up.addr, &["5/s"]);
    let gw = start(dir, &config);
    let mut c = Client::connect(gw.addr);
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..30 {
        c.send(format!("GET /v1/x HTTP/1.1\r\nHost: t\r\nx-api-key: {secret}\r\n\r\n").as_bytes());
        let r = c.read_response("GET");
        if r.status == 429 {
            assert_eq!(r.json()["code"], "rate_limited");
            assert!(r.header("retry-after").is_some());
        }
        statuses.push(r.status);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "the burst took {took:?}");
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((ok, limited), (5, 25), "{statuses:?}");
    assert!(statuses[..5].iter().all(|&s| s == 200), "{statuses:?}");
    // Shards publish their metrics on a timer: poll until the waits show.
    wait_until(Duration::from_secs(5), "a rate-limit wait counted", || {
        metric(gw.admin, "keyway_ratelimit_waits_total").is_some_and(|n| n > 0.0)
    });
}
