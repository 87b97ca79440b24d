//! Process lifecycle: configuration checks, readiness, shards, and draining on SIGTERM.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn sigterm_lets_requests_in_flight_finish_and_exits_0() {
    let up = Upstream::echo();
    let mut gw = Gateway::proxying(up.addr, PUBLIC_ALL, "[timeouts]\ndrain = \"5s\"\n");
    let addr = gw.addr;
    let in_flight: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(move || get(addr, "/_test/sleep/1000", "")))
        .collect();
    // SIGTERM only once the gateway holds all three (the upstream answers after 1 s).
    wait_connections(gw.admin, 3.0);
    gw.signal(libc::SIGTERM);
    for t in in_flight {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("close"));
    }
    let status = gw.wait_exit(Duration::from_secs(10)).expect("exited");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigint_on_an_idle_gateway_exits_0_promptly() {
    let up = Upstream::echo();
    let mut gw = Gateway::proxying(up.addr, PUBLIC_ALL, "");
    assert_eq!(get(gw.addr, "/", "").status, 200);
    gw.signal(libc::SIGINT);
    let status = gw.wait_exit(Duration::from_secs(5)).expect("exited");
    assert!(status.success());
}

#[test]
fn two_shards_both_serve() {
    let up = Upstream::echo();
    let gw = Gateway::start(
        &format!(
            "[upstreams.api]\nservers = [\"{}\"]\n\n{PUBLIC_ALL}",
            up.addr
        ),
        2,
    );
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let addr = gw.addr;
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for _ in 0..5 {
                    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
                    assert_eq!(c.read_response("GET").status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let (status, body) = admin_get(gw.admin, "/readyz");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn check_config_accepts_the_example_and_rejects_bad_files_with_a_line() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/keyway.toml");
    let out = Command::new(keyway_bin())
        .args(["check-config", "--config", example])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap();
    let out = Command::new(keyway_bin())
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3"), "error names the line: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    std::fs::write(
        &bad,
        "[upstreams.api]\nservers = [\"127.0.0.1:1\"]\n\n[[routes]]\npath_prefix = \"/\"\nupstream = \"nope\"\n",
    )
    .unwrap();
    let out = Command::new(keyway_bin())
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));

    let out = Command::new(keyway_bin())
        .args(["serve", "--config"])
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"{}\"\nadmin_listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n",
            taken.local_addr().unwrap(),
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(keyway_bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on"), "{err}");
}
