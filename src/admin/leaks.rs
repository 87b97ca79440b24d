//! Leaked-key intake: GitHub secret scanning's partner alerts at `POST /v1/leaks/github`.
//!
//! GitHub posts a JSON array of `{token, type, url, source}` signed with ECDSA P-256 over the
//! raw body (`Github-Public-Key-Signature`, base64 ASN.1 DER). The signature is checked
//! against the PEM public keys in `[leaks] github_public_keys` before anything else is
//! read; then each token is looked up by digest and, with `on_leak = "revoke"`, its key is
//! revoked (live within a second, through the overlay). The answer is GitHub's feedback
//! format: `[{token_hash, token_type, label}]` with `true_positive` for a token that is one
//! of our keys and `false_positive` otherwise. A token is never echoed back or logged.

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::http::{Request, Response};
use super::AdminState;
use crate::config::OnLeak;
use crate::keys::format;
use crate::ops::{admin_log, Paths};

/// Most alerts one request may carry.
pub const MAX_ALERTS: usize = 1000;

#[derive(Deserialize)]
struct Alert {
    token: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    source: String,
}

/// Loads the configured public keys; errors name the file.
pub fn load_keys(files: &[std::path::PathBuf]) -> Result<Vec<VerifyingKey>, String> {
    files
        .iter()
        .map(|f| {
            let pem = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
                format!(
                    "{} is not a PEM P-256 public key ({e}); save GitHub's key as published",
                    f.display()
                )
            })
        })
        .collect()
}

/// Whether `sig_b64` is a valid signature of `body` by one of `keys`.
pub fn verify(keys: &[VerifyingKey], body: &[u8], sig_b64: &str) -> bool {
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(sig_b64.trim()) else {
        return false;
    };
    let Ok(sig) = Signature::from_der(&der) else {
        return false;
    };
    keys.iter().any(|k| k.verify(body, &sig).is_ok())
}

pub fn handle(req: &Request, state: &AdminState) -> Response {
    let shared = state.shared();
    let leaks = &shared.config.leaks;
    if leaks.github_public_keys.is_empty() {
        return Response::problem(
            404,
            "leak_intake_off",
            "leak intake is off: set [leaks] github_public_keys (docs/operations.md)",
        );
    }
    let keys = match load_keys(&leaks.github_public_keys) {
        Ok(k) => k,
        Err(why) => {
            tracing::error!("leak intake: {why}");
            return Response::problem(500, "leak_keys_unusable", &why);
        }
    };
    let signed = req
        .header("github-public-key-signature")
        .is_some_and(|sig| verify(&keys, &req.body, sig));
    let paths = Paths::of(&shared.config);
    if !signed {
        admin_log::append(
            &paths,
            &admin_log::Entry {
                who: "unverified",
                action: "leak.alert",
                target: "",
                status: 401,
                code: Some("invalid_signature"),
                remote: req.peer.map(|p| p.to_string()),
            },
        );
        return Response::problem(
            401,
            "invalid_signature",
            "the Github-Public-Key-Signature does not verify against [leaks] github_public_keys; nothing was changed",
        );
    }
    let alerts: Vec<Alert> = match serde_json::from_slice(&req.body) {
        Ok(a) => a,
        Err(e) => {
            return Response::problem(
                400,
                "invalid_json",
                &format!("the alert is not a JSON array of {{token, type, url, source}} ({e})"),
            )
        }
    };
    if alerts.len() > MAX_ALERTS {
        return Response::problem(
            413,
            "too_many_alerts",
            &format!("at most {MAX_ALERTS} alerts a request; send them in batches"),
        );
    }
    let mut labels = Vec::with_capacity(alerts.len());
    for a in &alerts {
        labels.push(one(a, leaks.on_leak, &paths, req));
    }
    Response::json(200, &Value::Array(labels))
}

/// Handles one alert; GitHub's feedback entry for it.
fn one(a: &Alert, on_leak: OnLeak, paths: &Paths, req: &Request) -> Value {
    let token_hash = hex(&Sha256::digest(a.token.as_bytes()));
    let found = paths
        .open_store()
        .and_then(|s| Ok(s.key_id_by_digest(&format::digest(a.token.as_bytes()))?));
    let (label, action, target, status, code) = match found {
        Ok(Some(id)) => {
            let (action, outcome) = match on_leak {
                OnLeak::Revoke => (
                    "leak.revoke",
                    paths
                        .open_store()
                        .and_then(|mut s| crate::ops::keys::revoke(&mut s, &id)),
                ),
                OnLeak::Report => ("leak.report", Ok(())),
            };
            match outcome {
                Ok(()) => {
                    tracing::warn!(key = %id, kind = %a.kind, url = %a.url, source = %a.source, action, "leaked key reported by GitHub");
                    ("true_positive", action, id, 200, None)
                }
                Err(e) => {
                    tracing::error!(key = %id, error = %e, "leaked key reported but not revoked");
                    ("true_positive", action, id, e.status, Some(e.code))
                }
            }
        }
        Ok(None) => ("false_positive", "leak.unknown", String::new(), 200, None),
        Err(e) => {
            tracing::error!(error = %e, "cannot look up a reported token");
            (
                "false_positive",
                "leak.lookup_failed",
                String::new(),
                e.status,
                Some(e.code),
            )
        }
    };
    admin_log::append(
        paths,
        &admin_log::Entry {
            who: "github",
            action,
            target: &target,
            status,
            code,
            remote: req.peer.map(|p| p.to_string()),
        },
    );
    json!({ "token_hash": token_hash, "token_type": a.kind, "label": label })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;

    fn signer(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32].into()).unwrap()
    }

    fn sign(k: &SigningKey, body: &[u8]) -> String {
        let sig: Signature = k.sign(body);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }

    #[test]
    fn signatures_verify_only_for_the_signed_body_and_key() {
        let (ours, theirs) = (signer(7), signer(9));
        let keys = vec![*ours.verifying_key()];
        let body =
            br#"[{"token":"kw_live_x","type":"keyway_api_key","url":"u","source":"content"}]"#;
        assert!(verify(&keys, body, &sign(&ours, body)));
        assert!(!verify(&keys, body, &sign(&theirs, body)));
        assert!(!verify(&keys, b"[]", &sign(&ours, body)));
        for junk in ["", "!!", "AAAA", &sign(&ours, body)[4..]] {
            assert!(!verify(&keys, body, junk), "{junk}");
        }
    }

    #[test]
    fn pem_keys_load_or_say_which_file_is_wrong() {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("gh.pem");
        let pem = signer(3)
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        std::fs::write(&good, pem).unwrap();
        assert_eq!(load_keys(std::slice::from_ref(&good)).unwrap().len(), 1);
        let bad = dir.path().join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let e = load_keys(&[good, bad]).unwrap_err();
        assert!(
            e.contains("bad.pem") && e.contains("not a PEM P-256"),
            "{e}"
        );
    }
}
