//! What an operator can do to plans, keys and snapshots, once: the CLI (`keyway keys ...`)
//! and the admin API (`/v1/...`) both call these functions and only differ in how they read
//! the request and show the answer. Each failure is an [`Error`] with the HTTP status and the
//! stable code the API answers with; the CLI prints its one-line detail.

pub mod admin_log;
pub mod key_flags;
pub mod keys;
pub mod parse;
pub mod plans;
pub mod publish;
pub mod render;
pub mod usage;

use std::fmt;
use std::path::PathBuf;

use crate::store::{Store, StoreError};

/// Where the key database, the snapshot and the gateway's state are.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The key database (`--db`, else `[keys] db`, else `keys.db` under the state dir).
    pub db_path: PathBuf,
    /// The snapshot the data plane loads (`--snapshot`, else `[keys] snapshot`, else
    /// `keys.snap` under the state dir).
    pub snapshot_path: PathBuf,
    /// Where the running gateway persists its rate-limit state (`[server] state_dir`), when
    /// a configuration was read.
    pub state_dir: Option<PathBuf>,
}

impl Paths {
    /// The paths a gateway serving `config` uses.
    pub fn of(config: &crate::config::Config) -> Paths {
        Paths {
            db_path: config.keys.db.clone(),
            snapshot_path: config.keys.snapshot.clone(),
            state_dir: Some(config.server.state_dir.clone()),
        }
    }

    pub fn open_store(&self) -> Result<Store, Error> {
        Store::open(&self.db_path).map_err(|e| {
            let mut err = Error::from(e);
            err.detail = format!(
                "cannot open the key database {}: {}",
                self.db_path.display(),
                err.detail
            );
            err
        })
    }
}

/// A refused or failed operation: the API's status and problem code, and one line saying
/// what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
}

impl Error {
    pub fn new(status: u16, code: &'static str, detail: impl Into<String>) -> Error {
        Error {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// A value the caller gave that cannot be used (400 `invalid_request`).
    pub fn invalid(detail: impl Into<String>) -> Error {
        Error::new(400, "invalid_request", detail)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        let (status, code) = match &e {
            StoreError::PlanNotFound(_) => (404, "plan_not_found"),
            StoreError::KeyNotFound(_) => (404, "key_not_found"),
            StoreError::PlanInUse { .. } => (409, "plan_in_use"),
            StoreError::KeyExists(_) => (409, "key_exists"),
            StoreError::DuplicateSecret(_) => (409, "duplicate_secret"),
            StoreError::KeyRevoked(_) => (409, "key_revoked"),
            StoreError::Invalid(_) | StoreError::Import { .. } => (400, "invalid_request"),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                return Error::new(
                    503,
                    "store_busy",
                    "the key database stayed locked by another writer for 5 s; try again",
                );
            }
            _ => (500, "store_error"),
        };
        Error::new(status, code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_stable_codes() {
        let cases = [
            (StoreError::PlanNotFound("p".into()), 404, "plan_not_found"),
            (StoreError::KeyNotFound("k".into()), 404, "key_not_found"),
            (
                StoreError::PlanInUse {
                    name: "p".into(),
                    keys: 2,
                },
                409,
                "plan_in_use",
            ),
            (StoreError::Invalid("bad".into()), 400, "invalid_request"),
            (StoreError::Corrupt("x".into()), 500, "store_error"),
        ];
        for (e, status, code) in cases {
            let detail = e.to_string();
            let got = Error::from(e);
            assert_eq!((got.status, got.code, got.detail), (status, code, detail));
        }
        let busy = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        assert_eq!(Error::from(busy).code, "store_busy");
    }
}
