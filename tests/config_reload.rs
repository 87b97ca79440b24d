//! Whole-configuration reload on SIGHUP (`keyway reload`): 50 reloads under load that
//! alternate a route's upstream and its body limit lose no request; a broken file, or one
//! that drops an upstream a plan needs, is refused whole and the old configuration keeps
//! serving; a changed listener is named as needing a restart; metrics follow routes by
//! name across reloads.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The configuration with route `/v1/` on `upstream` and its body limit `limit`.
fn config(a: SocketAddr, b: SocketAddr, upstream: &str, limit: &str, extra: &str) -> String {
    format!(
        "[upstreams.a]\nservers = [\"{a}\"]\n\n[upstreams.b]\nservers = [\"{b}\"]\n\n\
         [[routes]]\npath_prefix = \"/v1/\"\nupstream = \"{upstream}\"\nmax_body_bytes = \"{limit}\"\n\n\
         [[routes]]\npath_prefix = \"/public/\"\nupstream = \"a\"\npublic = true\n{extra}"
    )
}

/// Rewrites the configuration file (the `[server]` section stays ours, with 2 shards).
fn rewrite(gw: &Gateway, rest: &str) {
    write_config(gw.dir.path(), 2, rest);
}

/// SIGHUP (as systemd's reload does), then the configuration's status once the gateway has
/// taken it in.
fn sighup(gw: &Gateway) -> serde_json::Value {
    let attempts = |s: &serde_json::Value| s["config"]["attempts"].as_u64().unwrap_or(0);
    let status = || {
        let (_, body) = admin_get(gw.admin, "/snapshot");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let before = attempts(&status());
    gw.signal(libc::SIGHUP);
    poll_until(Duration::from_secs(10), "the reload attempt", || {
        let s = status();
        (attempts(&s) > before && s["rolling_out"].is_null()).then_some(s)
    })
}

/// `keyway reload`: (success, stdout + stderr).
fn reload(gw: &Gateway) -> (bool, String) {
    let out = Command::new(keyway_bin())
        .arg("--config")
        .arg(&gw.config)
        .args(["reload", "--wait", "10s"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn post(addr: SocketAddr, key: &str, body: usize) -> Response {
    let mut raw = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: t\r\nx-api-key: {key}\r\nContent-Length: {body}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    raw.extend(std::iter::repeat_n(b'x', body));
    exchange(addr, &raw)
}

/// Keyed keep-alive clients posting small bodies until `stop`; every answer that is not a
/// 200 from one of the two upstreams, and every broken connection, is a failure.
fn load(
    addr: SocketAddr,
    key: String,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut why = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        let request = format!(
            "POST /v1/orders HTTP/1.1\r\nHost: t\r\nx-api-key: {key}\r\nContent-Length: 100\r\n\r\n{}",
            "x".repeat(100)
        );
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let mut c = Client::connect(addr);
            for _ in 0..200 {
                c.send(request.as_bytes());
                match c.try_read_response("POST") {
                    Some(r) if r.status == 200 && (r.body == b"a" || r.body == b"b") => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        if why.len() < 5 {
                            why.push(format!("{other:?}"));
                        }
                        break;
                    }
                }
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
        why
    })
}

fn key_setup(gw: &Gateway) -> String {
    cli_ok(&gw.config, &["plans", "set", "free", "--scope", "* /v1/**"]);
    let (_, key) = create_key(&gw.config, &["--tenant", "acme", "--plan", "free"]);
    cli_ok(&gw.config, &["snapshot", "build"]);
    let (ok, out) = reload(gw);
    assert!(ok, "{out}");
    key
}

#[test]
fn fifty_reloads_under_load_alternating_upstream_and_limit_lose_no_request() {
    let (a, b) = (Named::start("a"), Named::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), 2, &config(a.addr, b.addr, "a", "1KiB", ""));
    let gw = Gateway::start_with(dir, &path);
    let key = key_setup(&gw);

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            load(
                gw.addr,
                key.clone(),
                stop.clone(),
                ok.clone(),
                failed.clone(),
            )
        })
        .collect();
    wait_until(Duration::from_secs(10), "load running", || {
        ok.load(Ordering::Relaxed) > 100
    });
    for i in 1..=50 {
        let (upstream, limit) = if i % 2 == 1 {
            ("b", "64KiB")
        } else {
            ("a", "1KiB")
        };
        rewrite(&gw, &config(a.addr, b.addr, upstream, limit, ""));
        let (done, out) = reload(&gw);
        assert!(done, "reload {i}: {out}");
        assert!(
            out.contains(&format!("configuration version {i} (route /v1/ changed)")),
            "reload {i}: {out}"
        );
        // Every shard serves the new file: a fresh request goes where it says...
        for _ in 0..4 {
            let r = post(gw.addr, &key, 10);
            assert_eq!(
                (r.status, r.body.as_slice()),
                (200, upstream.as_bytes()),
                "reload {i}"
            );
        }
        // ... under its limit: 2 KiB is over 1 KiB, under 64 KiB.
        let r = post(gw.addr, &key, 2048);
        let want = if limit == "1KiB" { 413 } else { 200 };
        assert_eq!(r.status, want, "reload {i}: {:?}", r.body);
    }
    stop.store(true, Ordering::SeqCst);
    let why: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("50 reloads under load: {ok} requests answered, {failed} failed");
    assert_eq!(failed, 0, "failed requests during reloads: {why:?}");
    assert!(ok > 1000, "the load barely ran: {ok}");
    // Metrics kept counting the route on its series across the reloads.
    let series = "keyway_requests_total{route=\"/v1/\",outcome=\"proxied\"}";
    wait_until(Duration::from_secs(5), "every request counted", || {
        metric(gw.admin, series).unwrap_or(0.0) >= ok as f64
    });
    assert_eq!(metric(gw.admin, "keyway_config_version"), Some(50.0));
}

#[test]
fn a_broken_configuration_is_refused_whole_and_the_old_one_keeps_serving() {
    let (a, b) = (Named::start("a"), Named::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), 2, &config(a.addr, b.addr, "a", "1KiB", ""));
    let gw = Gateway::start_with(dir, &path);
    let key = key_setup(&gw);

    // A route to an upstream that does not exist, with the valid half changing the limit.
    let broken = config(a.addr, b.addr, "nowhere", "64KiB", "");
    rewrite(&gw, &broken);
    // `keyway reload` checks the file before it signals, and says so.
    let (done, out) = reload(&gw);
    assert!(!done, "{out}");
    assert!(
        out.contains("nowhere") && out.contains("nothing was reloaded"),
        "{out}"
    );
    assert_eq!(out.trim().lines().count(), 1, "one line: {out}");
    // SIGHUP alone (systemd's ExecReload): the gateway refuses it whole.
    let status = sighup(&gw);
    assert_eq!(status["config"]["failures"], 1, "{status}");
    assert!(
        status["config"]["last_error"]
            .as_str()
            .unwrap()
            .contains("nowhere"),
        "{status}"
    );
    let r = post(gw.addr, &key, 2048);
    assert_eq!(r.status, 413, "the old limit still holds");
    assert_eq!(post(gw.addr, &key, 10).body, b"a");
    assert_eq!(
        metric(gw.admin, "keyway_config_reload_failures_total"),
        Some(1.0)
    );
    assert_eq!(metric(gw.admin, "keyway_config_version"), Some(0.0));
    assert!(
        gw.output
            .lock()
            .unwrap()
            .join("\n")
            .contains("configuration refused; the running one keeps serving"),
        "the log says it"
    );

    // Not TOML at all: refused the same way.
    std::fs::write(&gw.config, "[server\n").unwrap();
    let status = sighup(&gw);
    assert_eq!(status["config"]["failures"], 2, "{status}");
    assert_eq!(post(gw.addr, &key, 10).body, b"a");

    // A server whose name does not resolve: refused, with the name.
    rewrite(
        &gw,
        &config(a.addr, b.addr, "a", "64KiB", "").replace(
            &format!("servers = [\"{}\"]", b.addr),
            "servers = [\"no-such-host.invalid:80\"]",
        ),
    );
    let (done, out) = reload(&gw);
    assert!(!done, "{out}");
    assert!(
        out.contains("configuration refused")
            && out.contains("cannot resolve upstreams.b server no-such-host.invalid:80"),
        "{out}"
    );
    assert_eq!(post(gw.addr, &key, 2048).status, 413);

    // Fixed: applied, and the refusal is forgotten.
    rewrite(&gw, &config(a.addr, b.addr, "b", "64KiB", ""));
    let (done, out) = reload(&gw);
    assert!(done, "{out}");
    assert_eq!(post(gw.addr, &key, 2048).body, b"b");
    let (_, status) = admin_get(gw.admin, "/snapshot");
    assert!(status.contains("\"last_error\":null"), "{status}");
}

#[test]
fn a_file_that_drops_an_upstream_a_plan_needs_is_refused() {
    let (a, b) = (Named::start("a"), Named::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), 1, &config(a.addr, b.addr, "a", "1KiB", ""));
    let gw = Gateway::start_with(dir, &path);
    cli_ok(
        &gw.config,
        &[
            "plans",
            "set",
            "pro",
            "--upstream",
            "b",
            "--scope",
            "* /v1/**",
        ],
    );
    let (_, key) = create_key(&gw.config, &["--tenant", "acme", "--plan", "pro"]);
    cli_ok(&gw.config, &["snapshot", "build"]);
    assert!(reload(&gw).0);
    assert_eq!(post(gw.addr, &key, 10).body, b"b", "the plan's upstream");

    // The same file without upstream b: the key table being served cannot follow it.
    let without_b = format!(
        "[upstreams.a]\nservers = [\"{}\"]\n\n[[routes]]\npath_prefix = \"/v1/\"\nupstream = \"a\"\n",
        a.addr
    );
    write_config(gw.dir.path(), 1, &without_b);
    let (done, out) = reload(&gw);
    assert!(!done, "{out}");
    assert!(
        out.contains("configuration refused, the running one keeps serving")
            && out.contains("\"b\""),
        "{out}"
    );
    assert_eq!(
        post(gw.addr, &key, 10).body,
        b"b",
        "the old configuration serves"
    );
}

#[test]
fn a_changed_listener_needs_a_restart_and_says_so_while_the_rest_applies() {
    let (a, b) = (Named::start("a"), Named::start("b"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), 1, &config(a.addr, b.addr, "a", "1KiB", ""));
    let gw = Gateway::start_with(dir, &path);
    let key = key_setup(&gw);
    // Our [server] section, with another listen address, then a new public route.
    let text = std::fs::read_to_string(&gw.config)
        .unwrap()
        .replace("\nlisten = \"127.0.0.1:0\"", "\nlisten = \"127.0.0.1:1\"")
        + "\n[[routes]]\npath_prefix = \"/new/\"\nupstream = \"b\"\npublic = true\n";
    std::fs::write(&gw.config, text).unwrap();
    let (done, out) = reload(&gw);
    assert!(done, "{out}");
    assert!(
        out.contains("taking effect only at a restart: server.listen")
            && out.contains("route /new/ added"),
        "{out}"
    );
    // Still on the old address, with the new route.
    assert_eq!(get(gw.addr, "/new/x", "").body, b"b");
    assert_eq!(post(gw.addr, &key, 10).body, b"a");
    assert!(
        metric(
            gw.admin,
            "keyway_requests_total{route=\"/new/\",outcome=\"proxied\"}"
        )
        .is_some_and(|n| n >= 1.0)
            || {
                // Shards publish every 500 ms.
                std::thread::sleep(Duration::from_millis(700));
                metric(
                    gw.admin,
                    "keyway_requests_total{route=\"/new/\",outcome=\"proxied\"}",
                ) == Some(1.0)
            }
    );
}

#[test]
fn requests_in_flight_finish_on_the_configuration_they_began_with() {
    // A slow upstream holds a request while a reload moves the route elsewhere.
    let slow = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_addr = slow.local_addr().unwrap();
    let b = Named::start("b");
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), 1, &config(slow_addr, b.addr, "a", "1KiB", ""));
    let gw = Gateway::start_with(dir, &path);
    key_setup(&gw);
    let server = std::thread::spawn(move || {
        let (mut s, _) = slow.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        // Answer only after the reload below has been applied.
        std::thread::sleep(Duration::from_millis(1500));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
    });
    let addr = gw.addr;
    let in_flight = std::thread::spawn(move || get(addr, "/public/x", ""));
    std::thread::sleep(Duration::from_millis(300));
    write_config(
        gw.dir.path(),
        1,
        &config(slow_addr, b.addr, "a", "1KiB", "").replace(
            "path_prefix = \"/public/\"\nupstream = \"a\"",
            "path_prefix = \"/public/\"\nupstream = \"b\"",
        ),
    );
    let (done, out) = reload(&gw);
    assert!(done, "{out}");
    assert_eq!(
        get(gw.addr, "/public/y", "").body,
        b"b",
        "new requests move"
    );
    let r = in_flight.join().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"slow"[..]));
    server.join().unwrap();
}
