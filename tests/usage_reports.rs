//! Usage rollups on the real binary: requests counted per minute by key, tenant, plan and
//! route (refusals by code, latency buckets, bytes) are written by the gateway off the
//! request path, survive a restart, and are read by `keyway usage` and `GET /v1/usage`.

mod common;

use common::*;
use serde_json::Value;

const REST: &str = "[upstreams.api]\nservers = [\"UP\"]\n\n[[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\n\n[[routes]]\npath_prefix = \"/health\"\nupstream = \"api\"\npublic = true\n";

fn group<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no group {name}: {report}"))
}

#[test]
fn usage_is_counted_by_key_tenant_plan_and_route_and_read_by_cli_and_api() {
    let up = Upstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 2, &REST.replace("UP", &up.addr.to_string()));
    cli_ok(
        &config,
        &["plans", "set", "free", "--scope", "GET /v1/orders/**"],
    );
    let (a, key_a) = create_key(&config, &["--tenant", "acme", "--plan", "free"]);
    let (b, key_b) = create_key(&config, &["--tenant", "beta", "--plan", "free"]);
    cli_ok(&config, &["snapshot", "build"]);
    let mut gw = Gateway::start_with(dir, &config);

    for _ in 0..5 {
        let r = get(gw.addr, "/v1/orders/1", &format!("x-api-key: {key_a}\r\n"));
        assert_eq!(r.status, 200);
    }
    for _ in 0..2 {
        let r = get(gw.addr, "/v1/orders/1", &format!("x-api-key: {key_b}\r\n"));
        assert_eq!(r.status, 200);
        let r = get(gw.addr, "/v1/admin", &format!("x-api-key: {key_b}\r\n"));
        assert_problem(&r, 403, "insufficient_scope", None);
    }
    assert_eq!(get(gw.addr, "/v1/orders/1", "").status, 401);
    assert_eq!(get(gw.addr, "/health", "").status, 200);

    // A drain sends every shard's counts; nothing is lost across the restart.
    gw.signal(libc::SIGTERM);
    gw.wait_exit(std::time::Duration::from_secs(10))
        .expect("drained");
    let json = |args: &[&str]| -> Value {
        let mut all = vec!["usage", "--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&cli_ok(&config, &all)).unwrap()
    };
    let by_key = json(&["--by", "key"]);
    let ga = group(&by_key, &a);
    assert_eq!(
        (ga["requests"].as_u64(), ga["ok"].as_u64()),
        (Some(5), Some(5)),
        "{ga}"
    );
    assert!(ga["bytes_out"].as_u64().unwrap() > 0);
    let gb = group(&by_key, &b);
    assert_eq!(
        (
            gb["requests"].as_u64(),
            gb["client_errors"].as_u64(),
            gb["refused"].as_u64()
        ),
        (Some(4), Some(2), Some(2)),
        "{gb}"
    );
    assert_eq!(gb["refusals"]["insufficient_scope"], 2, "{gb}");
    let none = group(&by_key, "(no key)");
    assert_eq!(none["requests"], 2, "{none}");
    assert_eq!(none["refusals"]["missing_key"], 1, "{none}");
    let buckets: u64 = ga["latency_buckets_ms"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(buckets, 5);

    let by_tenant = json(&["--by", "tenant", "--since", "1h"]);
    assert_eq!(group(&by_tenant, "acme")["requests"], 5);
    assert_eq!(group(&by_tenant, "beta")["requests"], 4);
    let by_plan = json(&["--by", "plan"]);
    assert_eq!(group(&by_plan, "free")["requests"], 9);
    let by_route = json(&["--by", "route"]);
    assert_eq!(group(&by_route, "/v1/")["requests"], 10);
    assert_eq!(group(&by_route, "/health")["requests"], 1);
    let text = cli_ok(&config, &["usage", "--by", "tenant"]);
    assert!(
        text.contains("acme") && text.contains("insufficient_scope 2"),
        "{text}"
    );

    // The admin API reads the same rollups.
    let dir = std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap());
    drop(gw);
    let gw = Gateway::start_with(dir, &config);
    let (status, body) = admin_get(gw.admin, "/v1/usage?by=tenant&since=1h");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(group(&v, "acme")["requests"], 5);
    let (status, body) = admin_get(gw.admin, "/v1/usage?by=model");
    assert_eq!(status, 400, "{body}");
    let (status, _) = admin_get(gw.admin, "/v1/usage?since=1000d");
    assert_eq!(status, 400);
}
