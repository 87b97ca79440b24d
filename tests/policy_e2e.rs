//! Authorization policy end to end: scopes (key over plan, deny by default), IP allowlists
//! (IPv6 over [::1]), body-size precedence, and key-aware upstream choice.

mod common;

use common::*;
use std::path::Path;

fn create(config: &Path, args: &[&str]) -> String {
    create_key(config, args).1
}

/// Gateway listening on `listen`, upstream `api`, a second upstream `down` that refuses
/// connections, route `/v1/` keyed with `by_tenant = { blocked = "down" }`.
fn setup(listen: &str) -> (Upstream, tempfile::TempDir, std::path::PathBuf) {
    let up = Upstream::echo();
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keyway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{listen}\"\nadmin_listen = \"127.0.0.1:0\"\nshards = 1\nstate_dir = \"{}\"\n\n\
             [upstreams.api]\nservers = [\"{}\"]\n\n[upstreams.down]\nservers = [\"{down}\"]\n\n\
             [[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\nmax_body_bytes = 1000\nby_tenant = {{ blocked = \"down\" }}\n",
            dir.path().display(),
            up.addr
        ),
    )
    .unwrap();
    cli_ok(
        &config,
        &[
            "plans",
            "set",
            "reader",
            "--scope",
            "GET /v1/orders/*",
            "--scope",
            "GET /v1/items/**",
        ],
    );
    cli_ok(&config, &["plans", "set", "nothing"]);
    (up, dir, config)
}

#[test]
fn scopes_key_over_plan_and_deny_by_default() {
    let (_up, dir, config) = setup("127.0.0.1:0");
    let plan_key = create(&config, &["--tenant", "a", "--plan", "reader"]);
    let own_key = create(
        &config,
        &[
            "--tenant",
            "a",
            "--plan",
            "reader",
            "--scope",
            "POST /v1/orders/*",
        ],
    );
    let no_scopes = create(&config, &["--tenant", "a", "--plan", "nothing"]);
    cli_ok(&config, &["snapshot", "build"]);
    let gw = Gateway::start_with(dir, &config);
    let call = |method: &str, path: &str, key: &str| {
        exchange(
            gw.addr,
            format!("{method} {path} HTTP/1.1\r\nHost: t\r\nx-api-key: {key}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        )
    };
    assert_eq!(call("GET", "/v1/orders/7", &plan_key).status, 200);
    assert_eq!(call("GET", "/v1/items/a/b/c", &plan_key).status, 200);
    let r = call("POST", "/v1/orders/7", &plan_key);
    assert_problem(
        &r,
        403,
        "insufficient_scope",
        Some("POST /v1/orders/7 is not within this key's scopes"),
    );
    let detail = r.json()["detail"].as_str().unwrap().to_string();
    assert!(
        !detail.contains("GET /v1/orders/*"),
        "the scopes must not be disclosed: {detail}"
    );
    // The key's own scopes replace the plan's.
    assert_eq!(call("POST", "/v1/orders/7", &own_key).status, 200);
    let out_of_scope = "GET /v1/orders/7 is not within this key's scopes";
    assert_problem(
        &call("GET", "/v1/orders/7", &own_key),
        403,
        "insufficient_scope",
        Some(out_of_scope),
    );
    // No scopes anywhere: nothing is allowed.
    assert_problem(
        &call("GET", "/v1/orders/7", &no_scopes),
        403,
        "insufficient_scope",
        Some(out_of_scope),
    );
}

#[test]
fn ipv6_allowlist_over_loopback() {
    let (_up, dir, config) = setup("[::1]:0");
    let v6_only = create(
        &config,
        &["--tenant", "a", "--plan", "reader", "--allow-ip", "::1/128"],
    );
    let v4_only = create(
        &config,
        &[
            "--tenant",
            "a",
            "--plan",
            "reader",
            "--allow-ip",
            "127.0.0.1/32",
        ],
    );
    cli_ok(&config, &["snapshot", "build"]);
    let gw = Gateway::start_with(dir, &config);
    assert!(gw.addr.is_ipv6());
    assert_eq!(
        get(
            gw.addr,
            "/v1/orders/1",
            &format!("x-api-key: {v6_only}\r\n")
        )
        .status,
        200
    );
    let r = get(
        gw.addr,
        "/v1/orders/1",
        &format!("x-api-key: {v4_only}\r\n"),
    );
    let not_here = "this key may not be used from this address";
    assert_problem(&r, 403, "ip_not_allowed", Some(not_here));
    // A spoofed x-forwarded-for from an untrusted peer changes nothing.
    let r = get(
        gw.addr,
        "/v1/orders/1",
        &format!("x-api-key: {v4_only}\r\nX-Forwarded-For: 127.0.0.1\r\n"),
    );
    assert_problem(&r, 403, "ip_not_allowed", Some(not_here));
}

#[test]
fn smallest_body_limit_applies_before_the_body_is_read() {
    let (_up, dir, config) = setup("127.0.0.1:0");
    let small = create(
        &config,
        &[
            "--tenant",
            "a",
            "--plan",
            "reader",
            "--scope",
            "* /v1/**",
            "--max-body",
            "10",
        ],
    );
    let route_limited = create(
        &config,
        &["--tenant", "a", "--plan", "reader", "--scope", "* /v1/**"],
    );
    cli_ok(&config, &["snapshot", "build"]);
    let gw = Gateway::start_with(dir, &config);
    let head_only = |key: &str, len: usize| {
        let mut c = Client::connect(gw.addr);
        // Only the head: the answer must come without the body.
        c.send(format!("POST /v1/u HTTP/1.1\r\nHost: t\r\nx-api-key: {key}\r\nContent-Length: {len}\r\n\r\n").as_bytes());
        c.read_response("POST")
    };
    assert_problem(
        &head_only(&small, 11),
        413,
        "body_too_large",
        Some("the declared body is larger than the limit of 10 bytes"),
    );
    // The route's 1000 applies.
    assert_problem(
        &head_only(&route_limited, 1001),
        413,
        "body_too_large",
        Some("the declared body is larger than the limit of 1000 bytes"),
    );
    let mut c = Client::connect(gw.addr);
    c.send(format!("POST /v1/u HTTP/1.1\r\nHost: t\r\nx-api-key: {route_limited}\r\nContent-Length: 11\r\n\r\nhello world").as_bytes());
    assert_eq!(c.read_response("POST").status, 200);
}

#[test]
fn tenant_routing_chooses_the_upstream() {
    let (_up, dir, config) = setup("127.0.0.1:0");
    let normal = create(&config, &["--tenant", "acme", "--plan", "reader"]);
    let blocked = create(&config, &["--tenant", "blocked", "--plan", "reader"]);
    cli_ok(&config, &["snapshot", "build"]);
    let gw = Gateway::start_with(dir, &config);
    assert_eq!(
        get(gw.addr, "/v1/orders/1", &format!("x-api-key: {normal}\r\n")).status,
        200
    );
    let r = get(
        gw.addr,
        "/v1/orders/1",
        &format!("x-api-key: {blocked}\r\n"),
    );
    // Tenant `blocked` goes to the `down` upstream, which refuses connections.
    assert_problem(
        &r,
        502,
        "upstream_unavailable",
        Some("the upstream refused the connection"),
    );
}

#[test]
fn key_context_reaches_the_upstream_and_spoofed_copies_never_do() {
    let (_up, dir, config) = setup("127.0.0.1:0");
    let key = create(
        &config,
        &[
            "--tenant",
            "acme",
            "--plan",
            "reader",
            "--meta",
            "team=billing",
            "--meta",
            "tier=gold",
            "--ttl",
            "2d",
        ],
    );
    cli_ok(&config, &["snapshot", "build"]);
    let gw = Gateway::start_with(dir, &config);
    let r = get(
        gw.addr,
        "/v1/orders/1",
        &format!("x-api-key: {key}\r\nx-keyway-meta-team: evil\r\nx_keyway_meta_tier: evil\r\nX-Keyway-Scopes: * /**\r\nx_keyway_scopes: * /**\r\n"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.echoed_header("x-keyway-scopes"),
        ["GET /v1/orders/*, GET /v1/items/**"]
    );
    assert_eq!(r.echoed_header("x-keyway-meta-team"), ["billing"]);
    assert_eq!(r.echoed_header("x-keyway-meta-tier"), ["gold"]);
    for spoof in ["x_keyway_meta_tier", "x_keyway_scopes"] {
        assert!(
            r.echoed_header(spoof).is_empty(),
            "{spoof} reached the upstream"
        );
    }
    // Expires within 7 days: the client is told when.
    assert!(r.header("sunset").is_some_and(|s| s.ends_with("GMT")));
    assert!(r.header("deprecation").is_none());
}

#[test]
fn keys_check_explains_the_decision() {
    let (_up, dir, config) = setup("127.0.0.1:0");
    let out = cli_ok(
        &config,
        &[
            "keys",
            "create",
            "--tenant",
            "acme",
            "--plan",
            "reader",
            "--allow-ip",
            "10.0.0.0/8",
            "--json",
        ],
    );
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    cli_ok(&config, &["snapshot", "build"]);
    let allowed = cli_ok(
        &config,
        &[
            "keys",
            "check",
            &id,
            "--path",
            "/v1/orders/7",
            "--ip",
            "10.1.2.3",
        ],
    );
    assert!(allowed.contains("validity: valid now"), "{allowed}");
    assert!(allowed.contains("allowed: upstream #0 (api)"), "{allowed}");
    let denied = cli_ok(
        &config,
        &[
            "keys",
            "check",
            &id,
            "--method",
            "POST",
            "--path",
            "/v1/orders/7",
            "--ip",
            "10.1.2.3",
        ],
    );
    assert!(
        denied.contains("refused: 403 insufficient_scope"),
        "{denied}"
    );
    let outside = cli_ok(
        &config,
        &[
            "keys",
            "check",
            &id,
            "--path",
            "/v1/orders/7",
            "--ip",
            "192.0.2.1",
        ],
    );
    assert!(outside.contains("refused: 403 ip_not_allowed"), "{outside}");
    // The path is judged as the gateway judges it: refused, or normalised first.
    let check_path = |path: &str| {
        cli_ok(
            &config,
            &["keys", "check", &id, "--path", path, "--ip", "10.1.2.3"],
        )
    };
    let walk = check_path("/v1/orders/..;/admin");
    assert!(
        walk.contains("path: refused with 400 bad_request"),
        "{walk}"
    );
    let encoded = check_path("/v1/%6frders/7");
    assert!(
        encoded.contains("path: judged as /v1/orders/7"),
        "{encoded}"
    );
    assert!(encoded.contains("allowed: upstream #0 (api)"), "{encoded}");
    drop(dir);
}

#[test]
fn key_in_query_only_where_the_route_allows_it_and_never_forwarded() {
    let (up, dir, config) = setup("127.0.0.1:0");
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[[routes]]\npath_prefix = \"/q/\"\nupstream = \"api\"\nkey_in_query = \"api_key\"\n";
    std::fs::write(&config, text).unwrap();
    let key = create(
        &config,
        &["--tenant", "acme", "--plan", "reader", "--scope", "GET /**"],
    );
    cli_ok(&config, &["snapshot", "build"]);
    let gw = Gateway::start_with(dir, &config);
    let r = get(gw.addr, &format!("/q/x?a=1&api_key={key}&b=2"), "");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["query"],
        "a=1&b=2",
        "the key must not reach the upstream"
    );
    let r = get(gw.addr, &format!("/q/x?api_key={key}"), "");
    assert_eq!(r.status, 200);
    assert!(r.json()["query"].is_null() || r.json()["query"] == "");
    // Off by default: the same parameter on another route is not a key.
    let r = get(gw.addr, &format!("/v1/orders/1?api_key={key}"), "");
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, "missing_key".into())
    );
    // A different key in the header and the query is a conflict.
    let r = get(
        gw.addr,
        &format!("/q/x?api_key={key}"),
        "x-api-key: kw_live_other\r\n",
    );
    assert_problem(
        &r,
        400,
        "conflicting_keys",
        Some("the key was sent more than once with different values"),
    );
    drop(up);
}
