//! `keyway quickstart`: the README's first command works and its printed curl lines do what
//! they say.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn quickstart_serves_demo_keys_and_its_curl_lines_are_true() {
    let mut cmd = Command::new(keyway_bin());
    cmd.args([
        "quickstart",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let (mut child, line, output) = spawn_capturing(cmd, "gateway on");
    let addr = addr_after(&line, "gateway on http://");
    let text = poll_until(Duration::from_secs(10), "quickstart's banner", || {
        let text = output.lock().unwrap().join("\n");
        text.contains("Ctrl-C stops it.").then_some(text)
    });
    let key_after = |label: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} in:\n{text}"))
            .trim()
            .to_string()
    };
    let free = key_after("free:");
    let pro = key_after("pro:");
    let revoked = text
        .lines()
        .find(|l| l.contains("key_revoked"))
        .and_then(|l| l.split("x-api-key: ").nth(1))
        .and_then(|l| l.split('\'').next())
        .unwrap()
        .to_string();

    let r = get(addr, "/v1/orders", &format!("x-api-key: {free}\r\n"));
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("x-keyway-plan"));
    assert_eq!(
        get(
            addr,
            "/v1/orders",
            &format!("Authorization: Bearer {pro}\r\n")
        )
        .status,
        200
    );
    assert_eq!(get(addr, "/public/hello", "").status, 200);
    let r = get(addr, "/v1/orders", "");
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, "missing_key".into())
    );
    let r = get(addr, "/v1/orders", &format!("x-api-key: {revoked}\r\n"));
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, "key_revoked".into())
    );
    assert_problem(&get(addr, "/nowhere", ""), 404, "no_route", None);

    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = poll_until(
        Duration::from_secs(10),
        "quickstart to stop on Ctrl-C",
        || child.try_wait().unwrap(),
    );
    assert!(status.success(), "{status:?}");
}
