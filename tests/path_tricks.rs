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

const DOT_SEGMENT: &str = "dot-segment ('.' or '..'";
const ENCODED_SEMICOLON: &str = "encoded ';' (%3B) in the path is ambiguous";
const PATH_PARAMS: &str = "path parameters (';' in a segment) are not allowed on this route";

/// Asserts a 400 `bad_request` answered by the gateway itself (the upstream never saw it),
/// with a one-line detail containing `fragment` (which path check refused it).
#[track_caller]
fn refused_here(r: &Response, what: &str, fragment: &str) {
    assert_eq!(
        r.status,
        400,
        "{what}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_problem(r, 400, "bad_request", Some(fragment));
    let v = r.json();
    assert!(v.get("conn_id").is_none(), "{what} reached the upstream");
    let detail = v["detail"].as_str().unwrap().to_string();
    assert!(!detail.contains('\n') && detail.contains("; "), "{detail}");
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
    for (path, fragment) in [
        ("/health/..;/v1/orders", DOT_SEGMENT),
        ("/health/..;x=1/v1/orders", DOT_SEGMENT),
        ("/health/%2e%2e;/v1/orders", DOT_SEGMENT),
        ("/health/.%2e;/v1/orders", DOT_SEGMENT),
        ("/health/%2E%2E%3B/v1/orders", ENCODED_SEMICOLON),
        ("/health/..%3b/v1/orders", ENCODED_SEMICOLON),
        ("/health/..%3B/v1/orders", ENCODED_SEMICOLON),
        ("/health;/../v1/orders", DOT_SEGMENT),
    ] {
        refused_here(&get(s.gw.addr, path, ""), path, fragment);
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
    assert_problem(
        &get(s.gw.addr, "/v1/admin", &key),
        403,
        "insufficient_scope",
        Some("GET /v1/admin is not within this key's scopes"),
    );
    for (path, fragment) in [
        ("/v1/orders/..;/admin", DOT_SEGMENT),
        ("/v1/orders/..;jsessionid=1/admin", DOT_SEGMENT),
        ("/v1/orders/%2e%2e;/admin", DOT_SEGMENT),
        ("/v1/orders/.%2e;/admin", DOT_SEGMENT),
        ("/v1/orders/%2E%2E%3B/admin", ENCODED_SEMICOLON),
        ("/v1/orders/..%3b/admin", ENCODED_SEMICOLON),
        ("/v1/orders/%2e%2e/admin", DOT_SEGMENT),
    ] {
        refused_here(&get(s.gw.addr, path, &key), path, fragment);
    }
}

#[test]
fn path_parameters_are_refused_unless_the_route_allows_them() {
    let s = setup();
    let key = format!("x-api-key: {}\r\n", s.key);
    refused_here(
        &get(s.gw.addr, "/v1/orders;jsessionid=abc/1", &key),
        "params",
        PATH_PARAMS,
    );
    refused_here(
        &get(s.gw.addr, "/health;x", ""),
        "params on /health",
        PATH_PARAMS,
    );
    // The route that allows them: judged without, forwarded with.
    assert_eq!(
        seen(&get(s.gw.addr, "/files/a;v=1/b;jsessionid=x", "")).0,
        "/files/a;v=1/b;jsessionid=x"
    );
    // ... and they still cannot make a dot-segment.
    refused_here(
        &get(s.gw.addr, "/files/..;/v1/orders", ""),
        "opt-in ..;",
        DOT_SEGMENT,
    );
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
    assert_problem(
        &r,
        403,
        "insufficient_scope",
        Some("GET /v1/admin is not within this key's scopes"),
    );
    refused_here(
        &get(s.gw.addr, "/v1/orders/%zz", &key),
        "malformed",
        "malformed percent-encoding in the path",
    );
}

#[test]
fn prefixes_match_whole_segments() {
    let s = setup();
    for path in ["/health", "/health/", "/health/x", "/health?x=1"] {
        assert_eq!(get(s.gw.addr, path, "").status, 200, "{path}");
    }
    for path in ["/healthz-internal", "/healthz", "/health%7a"] {
        let r = get(s.gw.addr, path, "");
        assert_problem(&r, 404, "no_route", Some("no route matches this path"));
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
