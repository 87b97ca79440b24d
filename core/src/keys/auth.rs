//! Authentication of a presented key against a snapshot: format check, digest, lookup, then
//! the key's validity at `now` — each failure mapped to the problem `code` the client sees.
//!
//! Order: format check -> `Malformed`; lookup -> `Unknown`; disabled -> `Revoked`;
//! `now < not_before` or `now >= expires_at` -> `Expired`; a grace secret with
//! `now >= grace_until` -> `Revoked`.
//!
//! Legacy keys (imported, not of our format): only when the snapshot has some does a key that
//! fails the format check go on to the lookup. One that does not look like ours is then
//! looked up like any other (unknown -> `Unknown`); one that looks like ours (a mistyped key,
//! or another vendor's token of the same design, e.g. GitHub's `ghp_...`) is accepted only if
//! it finds a legacy key, else `Malformed`. So a legacy key is never refused for its shape,
//! and keys without legacy keys in the snapshot cost no hashing when malformed.
//!
//! Why `Revoked` for a grace secret past its grace: the secret was real and was deliberately
//! retired by a rotation; `key_revoked` tells its holder to fetch the new secret, where
//! `invalid_key` would suggest a typo. A disabled key refuses its grace secrets too, and a
//! key's own expiry bounds its grace secrets.

use super::format::{check_format, digest, looks_like_ours, FormatError};
use super::snapshot::{KeyView, Snapshot};
use crate::error::Problem;

/// A key that may be used now. `grace_until` is `Some` when the presented secret is a
/// rotated-out one (answer with `Deprecation` and `Sunset` headers).
#[derive(Clone, Copy, Debug)]
pub struct Authenticated<'a> {
    pub key: KeyView<'a>,
    pub grace_until: Option<i64>,
}

/// Why a presented key is refused. Carries no part of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("malformed key: {0}")]
    Malformed(FormatError),
    #[error("unknown key")]
    Unknown,
    #[error("key revoked")]
    Revoked,
    #[error("key expired or not yet valid")]
    Expired,
}

impl AuthError {
    /// The problem the client gets (all are 401).
    pub fn problem(&self) -> Problem {
        match self {
            AuthError::Malformed(_) => Problem::MalformedKey,
            AuthError::Unknown => Problem::InvalidKey,
            AuthError::Revoked => Problem::KeyRevoked,
            AuthError::Expired => Problem::KeyExpired,
        }
    }

    /// The `code` of the problem+json answer.
    pub fn code(&self) -> &'static str {
        self.problem().code()
    }

    /// The client-facing detail: what to do, never any part of the key.
    pub fn detail(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => {
                "the API key is not of a valid format; check that it was copied whole"
            }
            AuthError::Unknown => "the API key is not known",
            AuthError::Revoked => "the API key was revoked or rotated; use its current secret",
            AuthError::Expired => "the API key is outside its validity window",
        }
    }
}

/// Authenticates `presented` (the raw header value) at `now_unix` (seconds). No allocation.
pub fn authenticate<'a>(
    snap: &'a Snapshot,
    presented: &[u8],
    now_unix: i64,
) -> Result<Authenticated<'a>, AuthError> {
    let format = check_format(presented);
    if let Err(e) = format {
        if !snap.has_legacy_keys() {
            return Err(AuthError::Malformed(e));
        }
    }
    let found = snap.lookup(&digest(presented));
    let key = match (format, found) {
        (Ok(()), Some(key)) => key,
        (Err(_), Some(key)) if key.legacy() => key,
        (Err(e), _) if looks_like_ours(presented) => return Err(AuthError::Malformed(e)),
        _ => return Err(AuthError::Unknown),
    };
    if !key.enabled() {
        return Err(AuthError::Revoked);
    }
    if key.not_before().is_some_and(|t| now_unix < t)
        || key.expires_at().is_some_and(|t| now_unix >= t)
    {
        return Err(AuthError::Expired);
    }
    let grace_until = key.grace_until();
    if grace_until.is_some_and(|t| now_unix >= t) {
        return Err(AuthError::Revoked);
    }
    Ok(Authenticated { key, grace_until })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::model::{GraceSecret, KeySpec, PlanSpec};
    use crate::keys::snapshot::build;
    use crate::keys::test_keys::{key, secret};

    fn snapshot(keys: &[KeySpec]) -> Snapshot {
        let plans = [PlanSpec {
            name: "free".into(),
            ..PlanSpec::default()
        }];
        Snapshot::from_bytes(&build(1, 0, &plans, keys).unwrap()).unwrap()
    }

    #[test]
    fn outcomes_in_order() {
        let (ok, off, early, late, old, new) = (
            secret(0),
            secret(1),
            secret(2),
            secret(3),
            secret(4),
            secret(5),
        );
        let mut rotated = key("key_rotated", &new);
        rotated.grace = vec![GraceSecret {
            digest: digest(old.as_bytes()),
            grace_until: 2000,
        }];
        let snap = snapshot(&[
            key("key_ok", &ok),
            KeySpec {
                enabled: false,
                ..key("key_off", &off)
            },
            KeySpec {
                not_before: Some(1500),
                ..key("key_early", &early)
            },
            KeySpec {
                expires_at: Some(1000),
                ..key("key_late", &late)
            },
            rotated,
        ]);
        let at = |s: &str, now| authenticate(&snap, s.as_bytes(), now);

        let a = at(&ok, 1000).unwrap();
        assert_eq!((a.key.id(), a.grace_until), ("key_ok", None));
        assert_eq!(at(&off, 1000).unwrap_err(), AuthError::Revoked);
        assert_eq!(at(&early, 1499).unwrap_err(), AuthError::Expired);
        assert_eq!(at(&early, 1500).unwrap().key.id(), "key_early");
        assert_eq!(at(&late, 999).unwrap().key.id(), "key_late");
        assert_eq!(at(&late, 1000).unwrap_err(), AuthError::Expired);
        let g = at(&old, 1999).unwrap();
        assert_eq!((g.key.id(), g.grace_until), ("key_rotated", Some(2000)));
        assert_eq!(at(&old, 2000).unwrap_err(), AuthError::Revoked);
        assert_eq!(at(&new, 5000).unwrap().grace_until, None);
        assert_eq!(at(&secret(9), 1000).unwrap_err(), AuthError::Unknown);

        let mut typo = ok.clone().into_bytes();
        typo.swap(9, 10);
        assert_eq!(
            at(std::str::from_utf8(&typo).unwrap(), 1000).unwrap_err(),
            AuthError::Malformed(FormatError::Checksum)
        );
        assert_eq!(
            authenticate(&snap, b"legacy-secret-123456", 1000)
                .unwrap_err()
                .code(),
            "malformed_key"
        );
        assert_eq!(AuthError::Unknown.code(), "invalid_key");
        assert_eq!(AuthError::Revoked.code(), "key_revoked");
        assert_eq!(AuthError::Expired.code(), "key_expired");
    }

    #[test]
    fn legacy_keys_skip_the_format_check_only_when_not_ours() {
        let legacy = "sk_live_0123456789abcdefghij";
        let ghp = "ghp_0123456789abcdefABCDEF0123456789abcd"; // looks like ours, other CRC
        assert!(check_format(ghp.as_bytes()).is_err() && looks_like_ours(ghp.as_bytes()));
        let snap = snapshot(&[
            KeySpec {
                legacy: true,
                ..key("key_legacy", legacy)
            },
            KeySpec {
                legacy: true,
                ..key("key_ghp", ghp)
            },
            key("key_ok", &secret(0)),
        ]);
        assert!(snap.has_legacy_keys());
        assert!(authenticate(&snap, legacy.as_bytes(), 0)
            .unwrap()
            .key
            .legacy());
        assert_eq!(
            authenticate(&snap, ghp.as_bytes(), 0).unwrap().key.id(),
            "key_ghp"
        );
        assert_eq!(
            authenticate(&snap, b"other-legacy", 0).unwrap_err(),
            AuthError::Unknown
        );
        let mut typo = secret(0).into_bytes();
        typo.swap(9, 10);
        assert_eq!(
            authenticate(&snap, &typo, 0).unwrap_err(),
            AuthError::Malformed(FormatError::Checksum)
        );
        assert_eq!(
            authenticate(&snap, secret(0).as_bytes(), 0)
                .unwrap()
                .key
                .id(),
            "key_ok"
        );

        // Without legacy keys in the snapshot, the same legacy-shaped input is malformed.
        let plain = snapshot(&[key("key_ok", &secret(0))]);
        assert_eq!(
            authenticate(&plain, ghp.as_bytes(), 0).unwrap_err().code(),
            "malformed_key"
        );
    }
}
