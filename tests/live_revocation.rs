//! Key changes without a rebuild: `keyway keys revoke` reaches every shard of the running
//! gateway within 1 s through the live overlay (the store numbers each change; the gateway
//! polls it), on connections that were already open, and so does a newly created key's
//! first 200 and a rotation; a `kill -9` and a restart keep the key refused; a snapshot
//! built afterwards absorbs the changes, and re-enabling the key then works (the overlay
//! does not pin it).

mod common;

use common::*;
use std::time::Duration;

const REST: &str = "[upstreams.api]\nservers = [\"UP\"]\n\n[[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\n";

/// An echo upstream, a 2-shard configuration with a keyed `/v1/` route, and plan `free`.
fn setup() -> (Upstream, tempfile::TempDir, std::path::PathBuf) {
    let up = Upstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 2, &REST.replace("UP", &up.addr.to_string()));
    cli_ok(&config, &["plans", "set", "free", "--scope", "GET /v1/**"]);
    (up, dir, config)
}

#[test]
fn a_revocation_reaches_every_open_connection_within_a_second_and_survives_kill_9() {
    let (_up, dir, config) = setup();
    let (id, key) = create_key(&config, &["--tenant", "acme", "--plan", "free"]);
    cli_ok(&config, &["snapshot", "build"]);
    let mut gw = Gateway::start_with(dir, &config);

    // Keep-alive connections spread over both shards (SO_REUSEPORT hashes each one).
    let mut conns: Vec<Client> = (0..8).map(|_| Client::connect(gw.addr)).collect();
    for c in &mut conns {
        c.send(request(&key).as_bytes());
        assert_eq!(c.read_response("GET").status, 200);
    }
    cli_ok(&config, &["keys", "revoke", &id]);
    let slowest = until_every(&mut conns, &key, 401);
    eprintln!("revocation seen on 8 open connections after at most {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    for c in &mut conns {
        c.send(request(&key).as_bytes());
        assert_problem(&c.read_response("GET"), 401, "key_revoked", None);
    }

    // kill -9 and a restart: the snapshot on disk still has the key enabled; the overlay
    // read at start refuses it from the first request.
    gw.signal(libc::SIGKILL);
    gw.wait_exit(Duration::from_secs(5)).expect("killed");
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    drop(gw);
    let gw = Gateway::start_with(dir, &config);
    let r = get(gw.addr, "/v1/orders", &format!("x-api-key: {key}\r\n"));
    assert_problem(&r, 401, "key_revoked", None);

    // A build absorbs it (refused by the snapshot now); re-enabled and built again, the key
    // works: the overlay holds nothing the newer snapshot already has.
    cli_ok(&config, &["snapshot", "build"]);
    cli_ok(&config, &["reload"]);
    let r = get(gw.addr, "/v1/orders", &format!("x-api-key: {key}\r\n"));
    assert_problem(&r, 401, "key_revoked", None);
    cli_ok(&config, &["keys", "update", &id, "--enable"]);
    cli_ok(&config, &["snapshot", "build"]);
    cli_ok(&config, &["reload"]);
    wait_until(
        Duration::from_secs(2),
        "the re-enabled key accepted",
        || get(gw.addr, "/v1/orders", &format!("x-api-key: {key}\r\n")).status == 200,
    );
}

#[test]
fn a_created_key_and_a_rotation_are_served_within_a_second_without_a_build() {
    let (up, dir, config) = setup();
    let (_, first) = create_key(&config, &["--tenant", "acme", "--plan", "free"]);
    cli_ok(&config, &["snapshot", "build"]);
    let gw = Gateway::start_with(dir, &config);
    let mut conns: Vec<Client> = (0..8).map(|_| Client::connect(gw.addr)).collect();
    until_every(&mut conns, &first, 200);

    // Created after the build: its first 200 on every connection within a second.
    let (id, key) = create_key(&config, &["--tenant", "acme", "--plan", "free"]);
    let took = until_every(&mut conns, &key, 200);
    eprintln!("a created key served on 8 open connections after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let r = get(gw.addr, "/v1/orders", &format!("x-api-key: {key}\r\n"));
    assert_eq!(r.echoed_header("x-keyway-key-id"), [id]);

    // A key of the snapshot rotated without grace: the new secret works and the old one is
    // refused as revoked, within a second.
    let first_id = get(gw.addr, "/v1/orders", &format!("x-api-key: {first}\r\n"))
        .echoed_header("x-keyway-key-id")
        .remove(0);
    let out = cli_ok(&config, &["keys", "rotate", &first_id, "--json"]);
    let rotated: serde_json::Value = serde_json::from_str(&out).unwrap();
    let new = rotated["key"].as_str().unwrap().to_string();
    let took = until_every(&mut conns, &new, 200).max(until_every(&mut conns, &first, 401));
    eprintln!("a rotation served on 8 open connections after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let r = get(gw.addr, "/v1/orders", &format!("x-api-key: {first}\r\n"));
    assert_problem(&r, 401, "key_revoked", None);
    // The created key, untouched since, is still served.
    assert_eq!(
        get(gw.addr, "/v1/orders", &format!("x-api-key: {key}\r\n")).status,
        200
    );

    // A reload that moves the upstream indexes (a new one sorts first): the changed keys'
    // table follows the configuration, and they are still served where they should be.
    let rest = REST.replace("UP", &up.addr.to_string())
        + "\n[upstreams.aaa]\nservers = [\"127.0.0.1:9\"]\n";
    write_config(gw.dir.path(), 2, &rest);
    cli_ok(&config, &["reload"]);
    for secret in [&key, &new] {
        let r = get(gw.addr, "/v1/orders", &format!("x-api-key: {secret}\r\n"));
        assert_eq!(r.status, 200, "{r:?}");
    }
}
