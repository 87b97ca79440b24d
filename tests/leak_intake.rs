//! Leaked-key intake on the real binary: a GitHub secret-scanning alert signed with the
//! configured ECDSA P-256 key revokes the key (every open connection refuses it within a
//! second) and answers `true_positive`; a forged signature changes nothing; `report` mode
//! records without revoking.

mod common;

use common::admin::*;
use common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn a_signed_github_alert_revokes_the_key_and_a_forged_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (github, pem) = github_key(7);
    let (forger, _) = github_key(8);
    let pem_path = dir.path().join("github.pem");
    std::fs::write(&pem_path, pem).unwrap();
    let (_up, gw) = setup(&format!(
        "[leaks]\ngithub_public_keys = [\"{}\"]\n",
        pem_path.display()
    ));
    let (id, key) = create(gw.admin);
    let mut conns: Vec<Client> = (0..4).map(|_| Client::connect(gw.addr)).collect();
    until_every(&mut conns, &key, 200);

    let alert = json!([{"token": key, "type": "keyway_api_key", "url": "https://github.com/o/r/blob/x/.env", "source": "content"}]).to_string();
    // Forged: 401, nothing changed, the key still works.
    let r = github_post(gw.admin, &alert, &forger);
    assert_problem(&r, 401, "invalid_signature", None);
    assert!(until_every(&mut conns, &key, 200) < Duration::from_secs(1));
    // A valid signature over a different body does not carry over.
    let r = github_post(gw.admin, &alert.replace("content", "commit"), &forger);
    assert_eq!(r.status, 401);

    // Signed by GitHub's key: true_positive, and the key refused within a second.
    let r = github_post(gw.admin, &alert, &github);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let labels = r.json();
    assert_eq!(labels[0]["label"], "true_positive", "{labels}");
    assert_eq!(labels[0]["token_hash"], sha256_hex(key.as_bytes()));
    assert!(
        !String::from_utf8_lossy(&r.body).contains(&key),
        "the token is never echoed"
    );
    let took = until_every(&mut conns, &key, 401);
    assert!(took < Duration::from_secs(1), "{took:?}");
    let r = get(gw.addr, "/v1/orders", &format!("x-api-key: {key}\r\n"));
    assert_problem(&r, 401, "key_revoked", None);

    // A token that is none of ours: false_positive.
    let other = json!([{"token": "kw_live_notoursatallnotoursatall00", "type": "keyway_api_key", "url": "", "source": "content"}]).to_string();
    let r = github_post(gw.admin, &other, &github);
    assert_eq!(r.json()[0]["label"], "false_positive");
    let trail = audit_lines(gw.dir.path());
    assert!(trail
        .iter()
        .any(|l| l["who"] == "github" && l["action"] == "leak.revoke" && l["target"] == id));
    assert!(trail
        .iter()
        .any(|l| l["who"] == "unverified" && l["code"] == "invalid_signature"));
}

#[test]
fn report_mode_records_a_leak_without_revoking() {
    let dir = tempfile::tempdir().unwrap();
    let (github, pem) = github_key(5);
    let pem_path = dir.path().join("github.pem");
    std::fs::write(&pem_path, pem).unwrap();
    let (_up, gw) = setup(&format!(
        "[leaks]\ngithub_public_keys = [\"{}\"]\non_leak = \"report\"\n",
        pem_path.display()
    ));
    let (id, key) = create(gw.admin);
    let alert = json!([{"token": key, "type": "keyway_api_key", "url": "u", "source": "content"}])
        .to_string();
    let r = github_post(gw.admin, &alert, &github);
    assert_eq!(r.json()[0]["label"], "true_positive");
    let (_, v) = call(gw.admin, "GET", &format!("/v1/keys/{id}"), Some(READ), None);
    assert_eq!(v["state"], "active", "{v}");
    assert!(audit_lines(gw.dir.path())
        .iter()
        .any(|l| l["action"] == "leak.report" && l["target"] == id));
}
