//! Keys end to end: the CLI creates plans and keys in the store, builds a snapshot, the
//! running gateway reloads it on `keyway reload`, and requests are authenticated against it.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A gateway with a keyed route `/v1/` and a public `/open/`, its store in the state dir.
struct Setup {
    _up: Upstream,
    gw: Gateway,
}

fn keyway(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(keyway_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("KEYWAY_LOG", "debug")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn ok(config: &Path, args: &[&str]) -> String {
    let (code, out, err) = keyway(config, args);
    assert_eq!(code, 0, "keyway {args:?}: {err}");
    out
}

impl Setup {
    fn new() -> Setup {
        Setup::with_level("warn")
    }

    fn with_level(level: &str) -> Setup {
        let up = Upstream::echo();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("keyway.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nshards = 2\nstate_dir = \"{}\"\n\n\
                 [upstreams.api]\nservers = [\"{}\"]\n\n\
                 [[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\n\n\
                 [[routes]]\npath_prefix = \"/open/\"\nupstream = \"api\"\npublic = true\n",
                dir.path().display(),
                up.addr
            ),
        )
        .unwrap();
        ok(
            &config,
            &[
                "plans", "set", "free", "--limit", "100000/s", "--scope", "* /v1/**",
            ],
        );
        let gw = Gateway::start_logging(dir, &config, level);
        Setup { _up: up, gw }
    }

    fn config(&self) -> &Path {
        &self.gw.config
    }

    /// Creates a key; returns (id, secret).
    fn create(&self, extra: &[&str]) -> (String, String) {
        let mut args = vec![
            "keys", "create", "--tenant", "acme", "--plan", "free", "--json",
        ];
        args.extend_from_slice(extra);
        let out = ok(self.config(), &args);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        (
            v["id"].as_str().unwrap().to_string(),
            v["key"].as_str().unwrap().to_string(),
        )
    }

    /// snapshot build + keyway reload.
    fn publish(&self) {
        ok(self.config(), &["snapshot", "build"]);
        ok(self.config(), &["reload"]);
    }

    fn call(&self, key_header: &str) -> Response {
        get(self.gw.addr, "/v1/orders/7", key_header)
    }
}

#[test]
fn create_build_reload_then_revoke() {
    let s = Setup::new();
    let (id, secret) = s.create(&["--name", "ci"]);
    // Before the first snapshot the keyed route cannot be served.
    assert_problem(
        &s.call(&format!("x-api-key: {secret}\r\n")),
        503,
        "keys_unavailable",
        Some("no key table is loaded"),
    );
    s.publish();
    let (status, body) = admin_get(s.gw.admin, "/readyz");
    assert_eq!(status, 200, "{body}");

    let r = s.call(&format!("x-api-key: {secret}\r\n"));
    assert_eq!(r.status, 200);
    assert_eq!(r.echoed_header("x-keyway-key-id"), [id.as_str()]);
    assert_eq!(r.echoed_header("x-keyway-tenant"), ["acme"]);
    assert_eq!(r.echoed_header("x-keyway-plan"), ["free"]);
    assert!(
        r.echoed_header("x-api-key").is_empty(),
        "the key reached the upstream"
    );

    // Bearer works too, and the Authorization header is not forwarded.
    let r = s.call(&format!("Authorization: Bearer {secret}\r\n"));
    assert_eq!(r.status, 200);
    assert!(r.echoed_header("authorization").is_empty());

    ok(s.config(), &["keys", "revoke", &id]);
    s.publish();
    let r = s.call(&format!("x-api-key: {secret}\r\n"));
    assert_problem(
        &r,
        401,
        "key_revoked",
        Some("the API key was revoked or rotated"),
    );
    assert!(r.header("www-authenticate").is_some());
}

#[test]
fn refusals_have_their_codes() {
    let s = Setup::new();
    let (_, secret) = s.create(&[]);
    s.publish();
    let cases = [
        ("".to_string(), 401, "missing_key"),
        ("x-api-key: not-a-key\r\n".to_string(), 401, "malformed_key"),
        (
            format!("x-api-key: {}\r\n", mangle_crc(&secret)),
            401,
            "malformed_key",
        ),
        (
            "x-api-key: kw_live_000000000000000000000000000000000000\r\n".to_string(),
            401,
            "malformed_key",
        ),
        (
            format!("x-api-key: {secret}\r\nx-api-key: {secret}\r\n"),
            400,
            "conflicting_keys",
        ),
        (
            format!("x-api-key: {secret}\r\nAuthorization: Bearer other\r\n"),
            400,
            "conflicting_keys",
        ),
    ];
    for (headers, status, code) in cases {
        let r = s.call(&headers);
        assert_eq!(r.status, status, "{headers:?}");
        assert_eq!(r.json()["code"], code, "{headers:?}");
    }
    // A well-formed key that is not in the table.
    let (_, unknown) = s.create(&[]);
    let r = s.call(&format!("x-api-key: {unknown}\r\n"));
    assert_eq!(
        r.json()["code"],
        "invalid_key",
        "created after the last build"
    );
}

/// Changes the last (checksum) character so the key is well-shaped but fails its CRC.
fn mangle_crc(secret: &str) -> String {
    let mut chars: Vec<char> = secret.chars().collect();
    let last = chars.last_mut().unwrap();
    *last = if *last == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}

#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    let s = Setup::new();
    let (id, secret) = s.create(&[]);
    s.publish();
    let r = s.call(&format!(
        "x-api-key: {secret}\r\nx-keyway-key-id: spoofed\r\nX-Keyway-Tenant: spoofed\r\nx_keyway_plan: spoofed\r\n"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.echoed_header("x-keyway-key-id"), [id]);
    assert_eq!(r.echoed_header("x-keyway-tenant"), ["acme"]);
    assert_eq!(r.echoed_header("x-keyway-plan"), ["free"]);
    assert!(r.echoed_header("x_keyway_plan").is_empty());
}

#[test]
fn expect_continue_checks_the_key_first() {
    let s = Setup::new();
    let (_, secret) = s.create(&[]);
    s.publish();
    let mut c = Client::connect(s.gw.addr);
    c.send(b"POST /v1/x HTTP/1.1\r\nHost: t\r\nx-api-key: nope\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let r = c.read_response("POST");
    // The final status, no 100 Continue.
    assert_problem(
        &r,
        401,
        "malformed_key",
        Some("the API key is not of a valid format"),
    );
    let mut c = Client::connect(s.gw.addr);
    c.send(format!("POST /v1/x HTTP/1.1\r\nHost: t\r\nx-api-key: {secret}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").as_bytes());
    assert_eq!(c.read_response("POST").status, 100);
    c.send(b"hello");
    assert_eq!(c.read_response("POST").json()["body_bytes"], 5);
}

#[test]
fn validity_window_not_before_and_expiry() {
    let s = Setup::new();
    let later = time_in(3600);
    let (_, future) = s.create(&["--not-before", &later]);
    let (_, short) = s.create(&["--ttl", "3s"]);
    s.publish();
    let r = s.call(&format!("x-api-key: {future}\r\n"));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, "key_expired".into())
    );
    assert_eq!(s.call(&format!("x-api-key: {short}\r\n")).status, 200);
    // The 3 s TTL passes in real time (short enough, with the build and reload before the
    // first call, to stay valid for it); the answer is polled until it flips.
    let r = poll_every(
        PROBE_EVERY,
        Duration::from_secs(8),
        "the key to expire",
        || Some(s.call(&format!("x-api-key: {short}\r\n"))).filter(|r| r.status != 200),
    );
    assert_problem(&r, 401, "key_expired", None);
}

/// How often the TTL and grace tests ask whether a key's answer flipped: each probe is a
/// request, and the flip is a whole-second boundary anyway.
const PROBE_EVERY: Duration = Duration::from_millis(50);

fn time_in(secs: u64) -> String {
    let t = std::time::SystemTime::now() + Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[test]
fn rotation_keeps_the_old_secret_only_for_the_grace() {
    let s = Setup::new();
    let (id, old) = s.create(&[]);
    s.publish();
    let out = ok(
        s.config(),
        &["keys", "rotate", &id, "--grace", "3s", "--json"],
    );
    let new = serde_json::from_str::<serde_json::Value>(&out).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(old, new);
    s.publish();
    let r = s.call(&format!("x-api-key: {old}\r\n"));
    assert_eq!(r.status, 200);
    assert!(r.header("deprecation").is_some());
    assert!(r.header("sunset").unwrap().ends_with("GMT"));
    assert_eq!(r.echoed_header("x-keyway-key-id"), [id.as_str()]);
    let r = s.call(&format!("x-api-key: {new}\r\n"));
    assert_eq!(r.status, 200);
    assert!(r.header("deprecation").is_none());
    // The 3 s grace passes in real time; the answer is polled until it flips.
    let r = poll_every(
        PROBE_EVERY,
        Duration::from_secs(8),
        "the old secret's grace to end",
        || Some(s.call(&format!("x-api-key: {old}\r\n"))).filter(|r| r.status != 200),
    );
    assert_problem(&r, 401, "key_revoked", None);
    assert_eq!(s.call(&format!("x-api-key: {new}\r\n")).status, 200);
}

#[test]
fn refused_snapshot_files_leave_the_old_table_serving() {
    let s = Setup::new();
    let (_, secret) = s.create(&[]);
    s.publish();
    let snap = s.gw.dir.path().join("keys.snap");
    let good = std::fs::read(&snap).unwrap();
    // An operator `cp`-ing over the live file (same inode, truncated, rewritten) must not
    // change or fault the table being served: it serves a private copy.
    std::fs::write(&snap, &good[..100]).unwrap();
    assert_eq!(s.call(&format!("x-api-key: {secret}\r\n")).status, 200);
    std::fs::write(&snap, &good).unwrap();
    ok(s.config(), &["reload"]);
    assert_eq!(s.call(&format!("x-api-key: {secret}\r\n")).status, 200);

    let mut cases: Vec<(&str, Option<Vec<u8>>)> = Vec::new();
    cases.push(("truncated", Some(good[..good.len() / 2].to_vec())));
    let mut flipped = good.clone();
    let mid = flipped.len() - 20;
    flipped[mid] ^= 0x10;
    cases.push(("bit-flipped", Some(flipped)));
    let mut magic = good.clone();
    magic[0] ^= 0xff;
    cases.push(("wrong magic", Some(magic)));
    let mut version = good.clone();
    version[8] = version[8].wrapping_add(7);
    cases.push(("wrong version", Some(version)));
    cases.push(("empty", Some(Vec::new())));
    cases.push((
        "random",
        Some(
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
    ));
    cases.push(("missing", None));
    for (what, bytes) in cases {
        match bytes {
            Some(b) => replace_file(&snap, &b),
            None => std::fs::remove_file(&snap).unwrap(),
        }
        let (code, _, err) = keyway(s.config(), &["reload"]);
        assert_eq!(code, 1, "{what}: reload should be refused");
        assert!(err.contains("refused"), "{what}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{what}: one line: {err}");
        assert_eq!(
            s.call(&format!("x-api-key: {secret}\r\n")).status,
            200,
            "{what}: the old table must keep serving"
        );
    }
    let (_, body) = admin_get(s.gw.admin, "/snapshot");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["last_error"].is_string());
    assert_eq!(v["failures"], 7, "{v}");
}

/// Installs `bytes` at `path` the way operators are told to: write elsewhere, then rename.
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn fifty_reloads_under_traffic_fail_no_request() {
    let s = Setup::new();
    let (_, secret) = s.create(&[]);
    s.publish();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let addr = s.gw.addr;
            let secret = secret.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut done = 0u64;
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    c.send(
                        format!("GET /v1/x HTTP/1.1\r\nHost: t\r\nx-api-key: {secret}\r\n\r\n")
                            .as_bytes(),
                    );
                    let r = c.read_response("GET");
                    assert_eq!(r.status, 200, "request {done} failed during reloads");
                    done += 1;
                }
                done
            })
        })
        .collect();
    for _ in 0..50 {
        s.publish();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(
        total > 50,
        "traffic ran during the reloads ({total} requests)"
    );
}

#[test]
fn no_secret_in_logs_listings_or_store() {
    let s = Setup::with_level("debug");
    let (id, secret) = s.create(&["--meta", "team=billing"]);
    s.publish();
    assert_eq!(s.call(&format!("x-api-key: {secret}\r\n")).status, 200);
    assert_problem(
        &s.call(&format!("x-api-key: {secret}x\r\n")),
        401,
        "malformed_key",
        Some("the API key is not of a valid format"),
    );
    let listing = ok(s.config(), &["keys", "list"]) + &ok(s.config(), &["keys", "show", &id]);
    let json = ok(s.config(), &["keys", "list", "--json"])
        + &ok(s.config(), &["keys", "show", &id, "--json"]);
    let logs = s.gw.output.lock().unwrap().join("\n");
    // The random part of the secret: any leak would contain it.
    let random = &secret[secret.len() - 30..];
    for (what, text) in [("listing", listing), ("json", json), ("gateway log", logs)] {
        assert!(!text.contains(random), "the secret appears in the {what}");
    }
    for entry in std::fs::read_dir(s.gw.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(random.len()).any(|w| w == random.as_bytes()),
                "the secret is stored in {}",
                path.display()
            );
        }
    }
}
