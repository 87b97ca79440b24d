//! Helpers for the admin API tests: a gateway with a token file, API calls that check every
//! refusal is a one-line problem+json, the admin audit trail, and GitHub-style signed alerts.

use super::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub const WRITE: &str = "w0123456789abcdef0123456789abcdef";
pub const READ: &str = "r0123456789abcdef0123456789abcdef";

pub const REST: &str = "[upstreams.api]\nservers = [\"UP\"]\n\n[[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\n";

/// An admin API call: (status, JSON body, problem code if any).
pub fn call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.map_or(String::new(), Value::to_string);
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = exchange(admin, raw.as_bytes());
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    if r.status >= 400 {
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{method} {path}: {v}"
        );
        assert_eq!(v["status"], r.status, "{v}");
        let detail = v["detail"].as_str().unwrap_or("");
        assert!(!detail.is_empty() && !detail.contains('\n'), "{v}");
    }
    (r.status, v)
}

pub fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("")
}

/// A gateway with 2 shards, a token file (one write, one read token), plan `free`, and
/// `extra` config appended.
pub fn setup(extra: &str) -> (Upstream, Gateway) {
    let up = Upstream::echo();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("admin.tokens");
    std::fs::write(&tokens, format!("ops write {WRITE}\nviewer read {READ}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rest = format!(
        "[admin]\ntoken_file = \"{}\"\n{extra}\n{}",
        tokens.display(),
        REST.replace("UP", &up.addr.to_string())
    );
    let config = write_config(dir.path(), 2, &rest);
    cli_ok(&config, &["plans", "set", "free", "--scope", "GET /v1/**"]);
    cli_ok(&config, &["snapshot", "build"]);
    let gw = Gateway::start_with(dir, &config);
    (up, gw)
}

pub fn create(admin: SocketAddr) -> (String, String) {
    let (status, v) = call(
        admin,
        "POST",
        "/v1/keys",
        Some(WRITE),
        Some(&json!({"tenant": "acme", "plan": "free"})),
    );
    assert_eq!(status, 201, "{v}");
    (
        v["id"].as_str().unwrap().into(),
        v["key"].as_str().unwrap().into(),
    )
}

pub fn audit_lines(db_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(db_dir.join("admin-audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A P-256 key pair from a fixed seed: (signing key, public key PEM).
pub fn github_key(seed: u8) -> (p256::ecdsa::SigningKey, String) {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    let k = p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap();
    let pem = k.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
    (k, pem)
}

pub fn github_post(admin: SocketAddr, body: &str, signer: &p256::ecdsa::SigningKey) -> Response {
    use base64::Engine;
    use p256::ecdsa::signature::Signer;
    let sig: p256::ecdsa::Signature = signer.sign(body.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
    let raw = format!(
        "POST /v1/leaks/github HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nGithub-Public-Key-Identifier: test\r\nGithub-Public-Key-Signature: {sig}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(admin, raw.as_bytes())
}
