//! Key self-service: `GET /.well-known/keyway/key` with a key answers what that key may do
//! and what is left of its limits, without counting against them; never the secret; the
//! same 401s as any request for a missing, unknown or revoked key; off when the path is "".

mod common;

use common::*;

fn setup(extra: &str) -> (Upstream, Gateway, String, String) {
    let up = Upstream::echo();
    let gw = Gateway::start(
        &format!(
            "{extra}\n[upstreams.api]\nservers = [\"{}\"]\n\n[[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\n",
            up.addr
        ),
        1,
    );
    cli_ok(
        &gw.config,
        &[
            "plans",
            "set",
            "free",
            "--scope",
            "GET /v1/**",
            "--limit",
            "5/min",
        ],
    );
    let (id, key) = create_key(
        &gw.config,
        &[
            "--tenant",
            "acme",
            "--plan",
            "free",
            "--name",
            "ci",
            "--credits",
            "100",
            "--refill",
            "month",
        ],
    );
    cli_ok(&gw.config, &["snapshot", "build"]);
    cli_ok(&gw.config, &["reload"]);
    (up, gw, id, key)
}

const PATH: &str = "/.well-known/keyway/key";

#[test]
fn a_key_reads_what_it_may_do_and_what_is_left_without_spending_it() {
    let (_up, gw, id, key) = setup("");
    let auth = format!("x-api-key: {key}\r\n");
    for _ in 0..2 {
        assert_eq!(get(gw.addr, "/v1/orders", &auth).status, 200);
    }
    let r = get(gw.addr, PATH, &auth);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(!body.contains(&key), "the secret never appears");
    let v = r.json();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["name"], "ci");
    assert_eq!(v["plan"], "free");
    assert_eq!(v["scopes"], serde_json::json!(["GET /v1/**"]));
    assert_eq!(v["limits"][0]["window"], "minute");
    assert_eq!(v["limits"][0]["count"], 5);
    assert_eq!(v["limits"][0]["remaining"], 3, "{v}");
    assert_eq!(v["credits"]["total"], 100);
    assert_eq!(v["credits"]["remaining"], 98);
    assert_eq!(v["credits"]["refill"], "month");
    assert_eq!(v["rotation"]["secret"], "current");
    // Asking costs nothing.
    let again = get(gw.addr, PATH, &auth).json();
    assert_eq!(again["limits"][0]["remaining"], 3);
    // HEAD: the head alone.
    let mut c = Client::connect(gw.addr);
    c.send(format!("HEAD {PATH} HTTP/1.1\r\nHost: t\r\n{auth}\r\n").as_bytes());
    let r = c.read_response("HEAD");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    wait_until(
        std::time::Duration::from_secs(3),
        "self-service answers counted",
        || {
            metric(
                gw.admin,
                "keyway_requests_total{route=\"none\",outcome=\"self_service\"}",
            ) == Some(3.0)
        },
    );
}

#[test]
fn the_same_401s_as_any_request_and_off_when_configured_so() {
    let (_up, gw, id, key) = setup("");
    assert_problem(&get(gw.addr, PATH, ""), 401, "missing_key", None);
    assert_problem(
        &get(
            gw.addr,
            PATH,
            "x-api-key: kw_live_nothing_like_a_real_key\r\n",
        ),
        401,
        "malformed_key",
        None,
    );
    // A body nobody reads: answered, then the connection is closed (its bytes are never
    // taken for a next request).
    let mut c = Client::connect(gw.addr);
    c.send(
        format!(
            "GET {PATH} HTTP/1.1\r\nHost: t\r\nx-api-key: {key}\r\nContent-Length: 40\r\n\r\nGET /v1/orders HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        .as_bytes(),
    );
    let r = c.read_response("GET");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed());
    // A query string is not the endpoint (and no route serves it).
    assert_eq!(
        get(
            gw.addr,
            &format!("{PATH}?x=1"),
            &format!("x-api-key: {key}\r\n")
        )
        .status,
        404
    );
    cli_ok(&gw.config, &["keys", "revoke", &id]);
    wait_until(std::time::Duration::from_secs(2), "revoked", || {
        get(gw.addr, PATH, &format!("x-api-key: {key}\r\n")).status == 401
    });
    assert_problem(
        &get(gw.addr, PATH, &format!("x-api-key: {key}\r\n")),
        401,
        "key_revoked",
        None,
    );

    let (_up, off, _, key) = setup("[keys]\nself_service_path = \"\"\n");
    let r = get(off.addr, PATH, &format!("x-api-key: {key}\r\n"));
    assert_problem(&r, 404, "no_route", None);
}
