//! API keys: the key format and its digest, and the snapshot the data plane authenticates
//! against. Pure: no sockets, threads, clock or glommio — `now` is an argument.
//!
//! - `format`: `{prefix}_{30 random base62}{6 base62 CRC32}`, generation, the allocation-free
//!   check, SHA-256 digests, display hints, key ids;
//! - `model`: the control plane's owned plan and key records (what `snapshot::build` takes);
//! - `snapshot`: build / write / load+validate once / zero-copy lookup (docs/snapshot-format.md);
//! - `auth`: format check -> digest -> lookup -> validity, with the client-facing codes.

pub mod auth;
pub mod format;
pub mod model;
pub mod overlay;
pub mod snapshot;

pub use auth::{authenticate, AuthError, Authenticated};
pub use format::{
    check_format, compose_secret, digest, generate_key_id, generate_secret, hint, looks_like_ours,
    validate_prefix, FormatError, DEFAULT_PREFIX, TEST_PREFIX,
};
pub use model::{GraceSecret, KeySpec, LimitSpec, PlanSpec, Window};
pub use snapshot::{build, write_atomic, KeyView, PlanView, Snapshot, SnapshotError};

/// Keys for tests: well-formed secrets and plain key records.
#[cfg(test)]
pub(crate) mod test_keys {
    use super::format::{compose_secret, digest};
    use super::model::KeySpec;

    /// A valid `kw_test_` secret, different for each `n`.
    pub fn secret(n: u8) -> String {
        let random: Vec<u8> = (0..30)
            .map(|i| b"abcdefghijKLMNOPQRST0123456789"[(i + n as usize) % 30])
            .collect();
        compose_secret("kw_test", &random).unwrap()
    }

    /// An enabled key `id` on plan `free` (tenant `t`) whose secret is `s`.
    pub fn key(id: &str, s: &str) -> KeySpec {
        KeySpec {
            id: id.into(),
            digest: digest(s.as_bytes()),
            tenant: "t".into(),
            plan: "free".into(),
            enabled: true,
            ..KeySpec::default()
        }
    }
}
