//! The admin API on the real binary: tokens (none, wrong, read-only, write), key and plan
//! operations with their problem codes, live revocation and creation over the API reaching
//! every shard within a second and surviving `kill -9`, the admin audit trail, and
//! docs/admin-api.json checked against the routes the gateway really serves
//! (tests/leak_intake.rs has the GitHub alerts).

mod common;

use common::admin::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

#[test]
fn api_creation_and_revocation_are_live_within_a_second_and_survive_kill_9() {
    let (_up, mut gw) = setup("");
    let (_, first) = create(gw.admin);
    let mut conns: Vec<Client> = (0..8).map(|_| Client::connect(gw.addr)).collect();
    until_every(&mut conns, &first, 200);

    let (id, key) = create(gw.admin);
    let took = until_every(&mut conns, &key, 200);
    eprintln!("a key created over the API served on 8 open connections after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    let (status, v) = call(
        gw.admin,
        "POST",
        &format!("/v1/keys/{id}/revoke"),
        Some(WRITE),
        None,
    );
    assert_eq!((status, &v["revoked"]), (200, &json!(true)), "{v}");
    // Killed right after the API's answer: nothing the answer promised may be lost.
    gw.signal(libc::SIGKILL);
    gw.wait_exit(Duration::from_secs(5)).expect("killed");
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    let config = gw.config.clone();
    drop(gw);
    let gw = Gateway::start_with(dir, &config);
    let r = get(gw.addr, "/v1/orders", &format!("x-api-key: {key}\r\n"));
    assert_problem(&r, 401, "key_revoked", None);

    // And on a running gateway: every open connection refuses it within a second.
    let (id2, key2) = create(gw.admin);
    let mut conns: Vec<Client> = (0..8).map(|_| Client::connect(gw.addr)).collect();
    until_every(&mut conns, &key2, 200);
    call(
        gw.admin,
        "POST",
        &format!("/v1/keys/{id2}/revoke"),
        Some(WRITE),
        None,
    );
    let took = until_every(&mut conns, &key2, 401);
    eprintln!("a revocation over the API seen on 8 open connections after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // Who did what: every change is in the trail, the secret never is.
    let trail = audit_lines(gw.dir.path());
    let actions: Vec<(&str, &str)> = trail
        .iter()
        .map(|l| (l["who"].as_str().unwrap(), l["action"].as_str().unwrap()))
        .collect();
    assert!(
        actions.contains(&("token:ops", "key.create")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("token:ops", "key.revoke")),
        "{actions:?}"
    );
    assert!(trail
        .iter()
        .any(|l| l["target"] == id && l["action"] == "key.revoke"));
    let text = std::fs::read_to_string(gw.dir.path().join("admin-audit.log")).unwrap();
    assert!(!text.contains(&key) && !text.contains(&key2));
    let mode = std::fs::metadata(gw.dir.path().join("admin-audit.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}

#[test]
fn tokens_are_required_checked_and_scoped() {
    let (_up, gw) = setup("");
    let a = gw.admin;
    let (s, v) = call(a, "GET", "/v1/keys", None, None);
    assert_eq!((s, code(&v)), (401, "missing_token"));
    let (s, v) = call(
        a,
        "GET",
        "/v1/keys",
        Some("w0123456789abcdef0123456789abcdeX"),
        None,
    );
    assert_eq!((s, code(&v)), (401, "invalid_token"));
    let (s, v) = call(a, "POST", "/v1/keys", Some("nope"), Some(&json!({})));
    assert_eq!((s, code(&v)), (401, "invalid_token"));
    let (s, _) = call(a, "GET", "/v1/keys", Some(READ), None);
    assert_eq!(s, 200);
    let (s, v) = call(
        a,
        "POST",
        "/v1/keys",
        Some(READ),
        Some(&json!({"tenant": "t", "plan": "free"})),
    );
    assert_eq!((s, code(&v)), (403, "read_only_token"));
    // Refused attempts at changes are in the trail too.
    let trail = audit_lines(gw.dir.path());
    assert!(trail
        .iter()
        .any(|l| l["who"] == "unauthenticated" && l["status"] == 401));
    assert!(trail
        .iter()
        .any(|l| l["who"] == "token:viewer" && l["code"] == "read_only_token"));

    // Without a token file: reads open (loopback), changes off and saying so.
    let up = Upstream::echo();
    let plain = Gateway::start(&REST.replace("UP", &up.addr.to_string()), 1);
    let (s, _) = call(plain.admin, "GET", "/v1/plans", None, None);
    assert_eq!(s, 200);
    let (s, v) = call(plain.admin, "POST", "/v1/keys", None, Some(&json!({})));
    assert_eq!((s, code(&v)), (403, "admin_writes_disabled"));
    assert!(v["detail"].as_str().unwrap().contains("token_file"));
}

#[test]
fn every_bad_input_gets_a_problem_with_a_stable_code() {
    let (_up, gw) = setup("");
    let a = gw.admin;
    let (id, _) = create(a);
    let t = Some(WRITE);
    let cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"plan": "free"})),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"tenant": "t", "plan": "gold"})),
            400,
            "plan_not_found",
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"tenant": "t", "plan": "free", "limits": ["0/s"]})),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"tenant": "t", "plan": "free", "scopes": ["GET orders"]})),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"tenant": "t", "plan": "free", "expires_at": "2001-01-01T00:00:00Z"})),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!({"tenant": "t", "plan": "free", "secret": "x"})),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys".into(),
            Some(json!("a string")),
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/keys?limit=0".into(),
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/keys?limit=lots".into(),
            None,
            400,
            "invalid_request",
        ),
        (
            "GET",
            "/v1/keys/key_nope".into(),
            None,
            404,
            "key_not_found",
        ),
        (
            "PATCH",
            "/v1/keys/key_nope".into(),
            Some(json!({"name": "x"})),
            404,
            "key_not_found",
        ),
        (
            "PATCH",
            format!("/v1/keys/{id}"),
            Some(json!({"plan": "gold"})),
            404,
            "plan_not_found",
        ),
        (
            "PATCH",
            format!("/v1/keys/{id}"),
            Some(json!({"refill": "month"})),
            400,
            "invalid_request",
        ),
        (
            "PATCH",
            format!("/v1/keys/{id}"),
            Some(json!({"enable": "yes"})),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/keys/key_nope/revoke".into(),
            None,
            404,
            "key_not_found",
        ),
        (
            "POST",
            format!("/v1/keys/{id}/rotate"),
            Some(json!({"grace": "9999y"})),
            400,
            "invalid_request",
        ),
        (
            "PUT",
            "/v1/plans/gold".into(),
            Some(json!({"limits": ["5/s", "9/s"]})),
            400,
            "invalid_request",
        ),
        (
            "PUT",
            "/v1/plans/bad%20name".into(),
            None,
            400,
            "invalid_request",
        ),
        ("DELETE", "/v1/plans/free".into(), None, 409, "plan_in_use"),
        (
            "DELETE",
            "/v1/plans/none".into(),
            None,
            404,
            "plan_not_found",
        ),
        ("GET", "/v1/nothing".into(), None, 404, "not_found"),
        ("DELETE", "/v1/keys".into(), None, 405, "method_not_allowed"),
    ];
    for (method, path, body, status, want) in &cases {
        let (s, v) = call(a, method, path, t, body.as_ref());
        assert_eq!(
            (s, code(&v)),
            (*status, *want),
            "{method} {path} {body:?}: {v}"
        );
    }
    // Not JSON, and a body over 1 MiB.
    let raw = format!("POST /v1/keys HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {WRITE}\r\nContent-Length: 5\r\n\r\n{{nope");
    let r = exchange(a, raw.as_bytes());
    assert_problem(&r, 400, "invalid_json", None);
    let raw = format!("POST /v1/keys HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {WRITE}\r\nContent-Length: 2000000\r\n\r\n");
    assert_problem(&exchange(a, raw.as_bytes()), 413, "body_too_large", None);
    let raw = format!("POST /v1/keys HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {WRITE}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_problem(&exchange(a, raw.as_bytes()), 411, "length_required", None);
}

#[test]
fn keys_and_plans_round_trip_with_paging_and_rotation() {
    let (_up, gw) = setup("");
    let a = gw.admin;
    let t = Some(WRITE);
    let (s, v) = call(
        a,
        "PUT",
        "/v1/plans/gold",
        t,
        Some(&json!({"limits": ["50/s"], "scopes": ["GET /v1/**"], "priority": -2})),
    );
    assert_eq!((s, &v["created"]), (201, &json!(true)), "{v}");
    let (s, v) = call(a, "GET", "/v1/plans", t, None);
    assert_eq!(s, 200);
    let gold = v["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "gold")
        .unwrap()
        .clone();
    assert_eq!(
        (gold["limits"].clone(), gold["priority"].clone()),
        (json!(["50/s"]), json!(-2))
    );

    let mut ids = BTreeSet::new();
    for i in 0..5 {
        let (s, v) = call(
            a,
            "POST",
            "/v1/keys",
            t,
            Some(
                &json!({"tenant": format!("t{}", i % 2), "plan": "gold", "meta": {"team": "pay"}, "limits": ["7/s"]}),
            ),
        );
        assert_eq!(s, 201, "{v}");
        assert_eq!(v["record"]["metadata"]["team"], "pay");
        ids.insert(v["id"].as_str().unwrap().to_string());
    }
    // Pages of 2 walk every key exactly once.
    let mut seen = BTreeSet::new();
    let mut after = String::new();
    loop {
        let (s, v) = call(
            a,
            "GET",
            &format!("/v1/keys?plan=gold&limit=2&after={after}"),
            t,
            None,
        );
        assert_eq!(s, 200, "{v}");
        for k in v["keys"].as_array().unwrap() {
            assert!(k.get("digest").is_none() && k.get("key").is_none());
            assert!(seen.insert(k["id"].as_str().unwrap().to_string()));
        }
        match v["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let (_, v) = call(a, "GET", "/v1/keys?tenant=t0&plan=gold", t, None);
    assert_eq!(v["keys"].as_array().unwrap().len(), 3);

    let id = ids.iter().next().unwrap();
    let (s, v) = call(
        a,
        "PATCH",
        &format!("/v1/keys/{id}"),
        t,
        Some(&json!({"name": "ci", "clear_meta": true, "scopes": ["GET /v1/orders/**"]})),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["name"].clone(),
            v["metadata"].clone(),
            v["scopes"].clone()
        ),
        (json!("ci"), json!({}), json!(["GET /v1/orders/**"]))
    );
    let (s, v) = call(
        a,
        "POST",
        &format!("/v1/keys/{id}/rotate"),
        t,
        Some(&json!({"grace": "1h"})),
    );
    assert_eq!(s, 200, "{v}");
    assert!(
        v["key"].as_str().unwrap().starts_with("kw_live_") && v["previous_valid_until"].is_string()
    );
    let (s, v) = call(a, "GET", &format!("/v1/keys/{id}"), Some(READ), None);
    assert_eq!(
        (s, v["previous_secrets_valid"].as_array().unwrap().len()),
        (200, 1),
        "{v}"
    );

    // Publish: the new plan's keys are in the snapshot every shard serves.
    let (s, v) = call(a, "POST", "/v1/snapshot/publish", t, None);
    assert_eq!(
        (s, &v["served"], &v["keys"]),
        (200, &json!(true), &json!(5)),
        "{v}"
    );
    // A real HTTP client reads the same status.
    let status: Value = ureq::get(&format!("http://{a}/v1/status"))
        .set("Authorization", &format!("Bearer {READ}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(status["generation"], v["generation"]);
    assert_eq!(status["ready"], true);
}

#[test]
fn the_openapi_document_is_the_routes_the_gateway_serves() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/admin-api.json"))
            .unwrap(),
    )
    .unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item
            .as_object()
            .unwrap()
            .iter()
            .filter(|(m, _)| *m != "parameters")
        {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = keyway::admin::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, served,
        "docs/admin-api.json and admin::api::ROUTES differ"
    );

    // Against the running gateway: each documented operation is routed (no 404 not_found,
    // no 405), and answers with a status its description lists.
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("gh.pem");
    std::fs::write(&pem, github_key(1).1).unwrap();
    let (_up, gw) = setup(&format!(
        "[leaks]\ngithub_public_keys = [\"{}\"]\n",
        pem.display()
    ));
    let (id, _) = create(gw.admin);
    let (_, served_doc) = call(gw.admin, "GET", "/v1/openapi.json", None, None);
    assert_eq!(served_doc, doc);
    for (method, path) in &documented {
        let concrete = path.replace("{id}", &id).replace("{name}", "free");
        let body = match (method.as_str(), path.as_str()) {
            ("POST", "/v1/keys") => Some(json!({"tenant": "doc", "plan": "free"})),
            ("POST", "/v1/leaks/github") => Some(json!([])),
            _ => None,
        };
        let (s, v) = call(gw.admin, method, &concrete, Some(WRITE), body.as_ref());
        assert!(
            code(&v) != "not_found" && s != 405,
            "{method} {path}: {s} {v}"
        );
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(
            op["responses"].get(s.to_string()).is_some(),
            "{method} {path} answered {s}, not documented: {v}"
        );
    }
}
