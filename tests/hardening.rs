//! Hostile peers (issue 11): what must never reach the upstream, and what every answer carries.

mod common;

use common::*;

/// A key-shaped secret that is in no key table (prefix, `_`, 36 base62 characters).
const STRANGER_KEY: &str = "kw_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// A gateway with a keyed `/v1/` and a public `/open/`, Bearer keys off, one key published;
/// returns the gateway, its upstream and the key's secret.
fn keyed_and_public(extra: &str) -> (Upstream, Gateway, String) {
    let up = Upstream::echo();
    let gw = Gateway::start(
        &format!(
            "{extra}\n[upstreams.api]\nservers = [\"{}\"]\n\n\
             [[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\n\n\
             [[routes]]\npath_prefix = \"/open/\"\nupstream = \"api\"\npublic = true\n",
            up.addr
        ),
        1,
    );
    cli_ok(&gw.config, &["plans", "set", "free", "--scope", "* /v1/**"]);
    let (_, secret) = create_key(&gw.config, &["--tenant", "acme", "--plan", "free"]);
    cli_ok(&gw.config, &["snapshot", "build"]);
    cli_ok(&gw.config, &["reload"]);
    (up, gw, secret)
}

#[test]
fn the_key_never_leaves_by_any_route_or_header() {
    let (_up, gw, secret) = keyed_and_public("[keys]\nbearer = false\n");
    for key in [STRANGER_KEY, secret.as_str()] {
        for header in ["x-api-key", "Authorization: Bearer"] {
            let line = if header == "x-api-key" {
                format!("x-api-key: {key}\r\n")
            } else {
                format!("{header} {key}\r\n")
            };
            let r = get(gw.addr, "/open/x", &line);
            assert_eq!(r.status, 200, "{line}");
            assert!(r.echoed_header("x-api-key").is_empty(), "{line} leaked");
            assert!(r.echoed_header("authorization").is_empty(), "{line} leaked");
        }
    }
    // Keyed route, key in x-api-key, the same key as a Bearer token too (Bearer is off here,
    // so that header is not where the key was taken from).
    let r = get(
        gw.addr,
        "/v1/x",
        &format!("x-api-key: {secret}\r\nAuthorization: Bearer {secret}\r\n"),
    );
    assert_eq!(r.status, 200);
    assert!(r.echoed_header("x-api-key").is_empty());
    assert!(r.echoed_header("authorization").is_empty(), "Bearer leaked");
    // A token that is not one of our keys (a JWT) is the upstream's business.
    let jwt = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl_x-y";
    let r = get(gw.addr, "/open/x", &format!("Authorization: {jwt}\r\n"));
    assert_eq!(r.echoed_header("authorization"), [jwt]);
}
