//! The audit log end to end: one JSON line per request — proxied, refused by auth, by policy,
//! or unparseable — never a secret nor a query; reopened on SIGUSR1 (logrotate); complete
//! after SIGTERM.

mod common;

use common::*;
use std::time::Duration;

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}

/// Waits (bounded) until the file holds `n` lines: shards hand their lines over every 10 ms.
fn wait_lines(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    poll_until(Duration::from_secs(5), &format!("{n} audit lines"), || {
        Some(lines(path)).filter(|got| got.len() >= n)
    })
}

#[test]
fn every_request_leaves_one_line_and_no_secret() {
    let up = Upstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keyway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nshards = 2\nstate_dir = \"{}\"\n\n\
             [audit]\npath = \"audit.jsonl\"\n\n[upstreams.api]\nservers = [\"{}\"]\n\n\
             [[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\nkey_in_query = \"api_key\"\n\n\
             [[routes]]\npath_prefix = \"/public/\"\nupstream = \"api\"\npublic = true\n",
            dir.path().display(),
            up.addr
        ),
    )
    .unwrap();
    cli_ok(
        &config,
        &["plans", "set", "reader", "--scope", "GET /v1/**"],
    );
    let (key_id, secret) = create_key(&config, &["--tenant", "acme", "--plan", "reader"]);
    cli_ok(&config, &["snapshot", "build"]);
    let mut gw = Gateway::start_with(dir, &config);
    let log = gw.dir.path().join("audit.jsonl");
    let key = format!("x-api-key: {secret}\r\n");

    let r = get(gw.addr, &format!("/v1/orders?api_key={secret}&page=2"), "");
    assert_eq!(r.status, 200);
    let r = exchange(
        gw.addr,
        format!(
            "POST /v1/orders HTTP/1.1\r\nHost: t\r\n{key}Content-Length: 5\r\nx-request-id: audit-me\r\n\r\nhello"
        )
        .as_bytes(),
    );
    assert_problem(
        &r,
        403,
        "insufficient_scope",
        Some("POST /v1/orders is not within this key's scopes"),
    );
    assert_problem(&get(gw.addr, "/v1/orders", ""), 401, "missing_key", None);
    assert_eq!(get(gw.addr, "/v1/orders", &key).status, 200);
    assert_problem(
        &exchange(gw.addr, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        400,
        "bad_request",
        Some("Host header repeated"),
    );

    let before = wait_lines(&log, 5);
    assert_eq!(before.len(), 5, "{before:#?}");
    // Shards write in their own order: find each request by what it was.
    let find = |status: u64, method: &str| {
        before
            .iter()
            .find(|l| l["status"] == status && l["method"] == method)
            .unwrap_or_else(|| panic!("no {method} {status} line in {before:#?}"))
    };
    let proxied = before
        .iter()
        .find(|l| l["status"] == 200 && l["bytes_out"].as_u64().unwrap() > 0)
        .unwrap();
    assert_eq!(proxied["outcome"], "proxied");
    assert_eq!(proxied["key_id"], key_id.as_str());
    assert_eq!(proxied["tenant"], "acme");
    assert_eq!(proxied["plan"], "reader");
    assert_eq!(proxied["route"], "/v1/");
    assert_eq!(proxied["upstream"], "api");
    assert_eq!(proxied["path"], "/v1/orders", "never the query");
    assert_eq!(proxied["client_ip"], "127.0.0.1");
    assert!(proxied["upstream_us"].as_u64().is_some());
    assert!(proxied["ts"].as_str().unwrap().ends_with('Z'));
    let refused = find(403, "POST");
    assert_eq!(refused["outcome"], "insufficient_scope");
    assert_eq!(refused["request_id"], "audit-me");
    assert_eq!(refused["key_id"], key_id.as_str());
    assert_eq!(refused["upstream"], serde_json::Value::Null);
    let anonymous = find(401, "GET");
    assert_eq!(anonymous["outcome"], "missing_key");
    assert_eq!(anonymous["key_id"], serde_json::Value::Null);
    let unparsed = before.iter().find(|l| l["status"] == 400).unwrap();
    assert_eq!(unparsed["outcome"], "bad_request");
    assert_eq!(unparsed["route"], serde_json::Value::Null);

    // logrotate: move the file, SIGUSR1, and the next line starts the new file.
    let rotated = gw.dir.path().join("audit.jsonl.1");
    std::fs::rename(&log, &rotated).unwrap();
    gw.signal(libc::SIGUSR1);
    wait_until(
        Duration::from_secs(5),
        "SIGUSR1 to reopen the audit log",
        || log.exists(),
    );
    assert_eq!(get(gw.addr, "/public/x", "").status, 200);
    // SIGTERM: every line is written before the process exits.
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_exit(Duration::from_secs(10)).unwrap().success());
    let after = lines(&log);
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_eq!(after[0]["route"], "/public/");
    assert_eq!(after[0]["key_id"], serde_json::Value::Null);
    assert_eq!(lines(&rotated).len(), 5);

    for file in [&log, &rotated] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(&secret), "a secret reached the audit log");
        assert!(!text.contains("page=2"), "a query reached the audit log");
    }
    let printed = gw.output.lock().unwrap().join("\n");
    assert!(
        !printed.contains(&secret),
        "a secret reached the gateway's log"
    );
}
