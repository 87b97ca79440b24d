//! Load shedding by plan priority: open-loop load past what the upstream can take, from two
//! plans at once; the high-priority plan keeps its answers while the low one gets the 503s.

mod common;

use common::*;
use std::process::Command;

/// One open-loop `keyway-loadtest run` with `key`, as its JSON report.
fn load(gw: &Gateway, key: &str, rate: u32) -> std::thread::JoinHandle<serde_json::Value> {
    let (target, key) = (gw.addr.to_string(), key.to_string());
    std::thread::spawn(move || {
        let mut cmd = Command::new(loadtest_bin());
        cmd.args(["run", "--target", &target, "--path", "/_test/sleep/20"])
            .args(["--rate", &rate.to_string(), "--connections", "48"])
            .args(["--duration", "3s", "--warmup", "500ms", "--timeout", "5s"])
            .args(["--cpus", "none", "--json"])
            .args(["-H", &format!("x-api-key: {key}")]);
        serde_json::from_slice(&output_ok(&mut cmd)).unwrap()
    })
}

fn share_2xx(report: &serde_json::Value) -> f64 {
    let n = |k: &str| report["status"][k].as_f64().unwrap();
    let all = n("2xx") + n("4xx") + n("5xx") + report["errors"]["total"].as_f64().unwrap();
    n("2xx") / all.max(1.0)
}

#[test]
fn under_overload_the_high_priority_plan_keeps_its_answers() {
    let up = Upstream::echo();
    let dir = tempfile::tempdir().unwrap();
    // The upstream takes 8 requests at a time at 20 ms each: 400 req/s. Past 16 waiting for
    // a connection, any request gets 503: without shedding both plans would share the loss.
    let config = write_config(
        dir.path(),
        1,
        &format!(
            "[limits]\nshed_after_in_flight = 8\n\n\
             [upstreams.api]\nservers = [\"{}\"]\npool_size = 8\nqueue = 16\n\n\
             [[routes]]\npath_prefix = \"/_test/\"\nupstream = \"api\"\n",
            up.addr
        ),
    );
    cli_ok(&config, &["plans", "set", "low", "--scope", "* /_test/**"]);
    let high = [
        "plans",
        "set",
        "high",
        "--priority",
        "10",
        "--scope",
        "* /_test/**",
    ];
    cli_ok(&config, &high);
    let (_, low_key) = create_key(&config, &["--tenant", "t", "--plan", "low"]);
    let (_, high_key) = create_key(&config, &["--tenant", "t", "--plan", "high"]);
    cli_ok(&config, &["snapshot", "build"]);
    let gw = Gateway::start_with(dir, &config);

    // 250 + 250 req/s offered against 400 req/s of upstream.
    let (lo, hi) = (load(&gw, &low_key, 250), load(&gw, &high_key, 250));
    let (lo, hi) = (lo.join().unwrap(), hi.join().unwrap());
    let (lo_ok, hi_ok) = (share_2xx(&lo), share_2xx(&hi));
    assert!(
        hi_ok >= 0.95,
        "high priority: {:.1} % answered 2xx\nhigh: {hi}\nlow: {lo}",
        hi_ok * 100.0
    );
    assert!(
        lo["status"]["5xx"].as_u64().unwrap() > 0 && lo_ok < hi_ok,
        "the low plan absorbs the 503s\nhigh: {hi}\nlow: {lo}"
    );
    wait_until(
        std::time::Duration::from_secs(5),
        "shedding counted",
        || metric(gw.admin, "keyway_shed_total{plan=\"low\"}") >= Some(1.0),
    );
    assert_eq!(metric(gw.admin, "keyway_shed_total{plan=\"high\"}"), None);
}
