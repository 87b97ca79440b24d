//! Path tricks end to end (issue 11): `..;` and its encodings cannot walk past a public
//! prefix or out of a key's scopes, `;` parameters are refused unless the route allows them,
//! escaped unreserved characters are judged and forwarded decoded, and prefixes match on
//! segment boundaries. The echo upstream reports the path it received.

mod common;

use common::*;

struct Setup {
    up: Upstream,
    gw: Gateway,
    /// A key scoped to `GET /v1/orders/**`.
    key: String,
}

/// Routes: `/health` public; `/v1/` keyed, key also accepted as `?api_key=`; `/files/`
/// public and allowing path parameters. No `/` route, so an unmatched path is a 404.
fn setup() -> Setup {
    let up = Upstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        1,
        &format!(
            "[upstreams.api]\nservers = [\"{}\"]\n\n\
             [[routes]]\npath_prefix = \"/health\"\nupstream = \"api\"\npublic = true\n\n\
             [[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\nkey_in_query = \"api_key\"\n\n\
             [[routes]]\npath_prefix = \"/files/\"\nupstream = \"api\"\npublic = true\nallow_path_params = true\n",
            up.addr
        ),
    );
    cli_ok(&config, &["plans", "set", "nothing"]);
    let (_, key) = create_key(
        &config,
        &[
            "--tenant",
            "a",
            "--plan",
            "nothing",
            "--scope",
            "GET /v1/orders/**",
        ],
    );
    cli_ok(&config, &["snapshot", "build"]);
    let gw = Gateway::start_with(dir, &config);
    Setup { up, gw, key }
}

/// Asserts a 400 `bad_request` answered by the gateway itself (the upstream never saw it),
/// with a one-line detail; returns the detail.
fn refused_here(r: &Response, what: &str) -> String {
    assert_eq!(
        r.status,
        400,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["code"], "bad_request", "{what}");
    assert!(v.get("conn_id").is_none(), "{what} reached the upstream");
    let detail = v["detail"].as_str().unwrap().to_string();
    assert!(!detail.contains('\n') && detail.contains("; "), "{detail}");
    detail
}

/// The path the echo upstream received (and its query).
fn seen(r: &Response) -> (String, Option<String>) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    (
        v["path"].as_str().unwrap().to_string(),
        v["query"].as_str().map(str::to_string),
    )
}

#[test]
fn dot_dot_semicolon_cannot_walk_past_a_public_prefix() {
    let s = setup();
    // The upstream's own count of requests on its connection: it must not move while the
    // tricks are refused.
    let before = get(s.gw.addr, "/health", "").json()["conn_requests"]
        .as_u64()
        .unwrap();
    for path in [
        "/health/..;/v1/orders",
        "/health/..;x=1/v1/orders",
        "/health/%2e%2e;/v1/orders",
        "/health/.%2e;/v1/orders",
        "/health/%2E%2E%3B/v1/orders",
        "/health/..%3b/v1/orders",
        "/health/..%3B/v1/orders",
        "/health;/../v1/orders",
    ] {
        let detail = refused_here(&get(s.gw.addr, path, ""), path);
        assert!(
            detail.contains("dot-segment") || detail.contains("%3B"),
            "{path}: {detail}"
        );
    }
    let after = get(s.gw.addr, "/health", "").json()["conn_requests"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before + 1, "a refused request reached the upstream");
    drop(s.up);
}

#[test]
fn a_scoped_key_cannot_leave_its_scope_with_dot_dot_semicolon() {
    let s = setup();
    let key = format!("x-api-key: {}\r\n", s.key);
    assert_eq!(
        seen(&get(s.gw.addr, "/v1/orders/1", &key)).0,
        "/v1/orders/1"
    );
    assert_eq!(get(s.gw.addr, "/v1/admin", &key).status, 403);
    for path in [
        "/v1/orders/..;/admin",
        "/v1/orders/..;jsessionid=1/admin",
        "/v1/orders/%2e%2e;/admin",
        "/v1/orders/.%2e;/admin",
        "/v1/orders/%2E%2E%3B/admin",
        "/v1/orders/..%3b/admin",
        "/v1/orders/%2e%2e/admin",
    ] {
        refused_here(&get(s.gw.addr, path, &key), path);
    }
}

#[test]
fn path_parameters_are_refused_unless_the_route_allows_them() {
    let s = setup();
    let key = format!("x-api-key: {}\r\n", s.key);
    let detail = refused_here(
        &get(s.gw.addr, "/v1/orders;jsessionid=abc/1", &key),
        "params",
    );
    assert!(detail.contains("path parameters"), "{detail}");
    refused_here(&get(s.gw.addr, "/health;x", ""), "params on /health");
    // The route that allows them: judged without, forwarded with.
    assert_eq!(
        seen(&get(s.gw.addr, "/files/a;v=1/b;jsessionid=x", "")).0,
        "/files/a;v=1/b;jsessionid=x"
    );
    // ... and they still cannot make a dot-segment.
    refused_here(&get(s.gw.addr, "/files/..;/v1/orders", ""), "opt-in ..;");
}

#[test]
fn escaped_unreserved_characters_are_judged_and_forwarded_decoded() {
    let s = setup();
    let key = format!("x-api-key: {}\r\n", s.key);
    // Judged as /v1/orders/1 (within the scope), and the upstream sees exactly that.
    assert_eq!(
        seen(&get(s.gw.addr, "/v1/%6frders/1?q=%6f", &key)),
        ("/v1/orders/1".into(), Some("q=%6f".into()))
    );
    assert_eq!(
        seen(&get(s.gw.addr, "/v1//%6Frders//1", &key)).0,
        "/v1/orders/1"
    );
    // A key from the query leaves the target that was judged, not the client's.
    let r = get(
        s.gw.addr,
        &format!("/v1/%6frders/2?api_key={}&x=1", s.key),
        "",
    );
    assert_eq!(seen(&r), ("/v1/orders/2".into(), Some("x=1".into())));
    // Reserved escapes keep their meaning: forwarded as sent.
    assert_eq!(
        seen(&get(s.gw.addr, "/v1/orders/a%3Fb%2520", &key)).0,
        "/v1/orders/a%3Fb%2520"
    );
    // An escaped path outside the scope is refused as its decoded self.
    let r = get(s.gw.addr, "/v1/%61dmin", &key);
    assert_eq!(r.status, 403);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("GET /v1/admin"));
    refused_here(&get(s.gw.addr, "/v1/orders/%zz", &key), "malformed");
}

#[test]
fn prefixes_match_whole_segments() {
    let s = setup();
    for path in ["/health", "/health/", "/health/x", "/health?x=1"] {
        assert_eq!(get(s.gw.addr, path, "").status, 200, "{path}");
    }
    for path in ["/healthz-internal", "/healthz", "/health%7a"] {
        let r = get(s.gw.addr, path, "");
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["code"], "no_route", "{path}");
    }
}

#[test]
fn raw_prefix_match_is_an_opt_in() {
    let up = Upstream::echo();
    let gw = Gateway::proxying(
        up.addr,
        "[[routes]]\npath_prefix = \"/health\"\nupstream = \"api\"\npublic = true\nprefix_match = \"raw\"\n",
        "",
    );
    assert_eq!(seen(&get(gw.addr, "/healthz", "")).0, "/healthz");
}
