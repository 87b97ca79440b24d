//! Control-plane store: plans and keys in SQLite (rusqlite), used by the CLI only.
//!
//! # Layout
//! - `schema`   versioned migrations (`PRAGMA user_version`)
//! - `codec`    how list-valued fields are kept in one column
//! - `validate` what a plan or key record may contain (checked before every write)
//! - `plans`    plan CRUD
//! - `keys`     key create / get / list / update / revoke / rotate
//! - `import`   bulk import of keys from another system (TSV, JSON lines)
//! - `load`     `load_all` for snapshot builds, and the generation counter
//!
//! Only SHA-256 digests and display hints are stored: no function here takes a secret
//! except `import`, which hashes each one as it reads it and keeps nothing else of it.
//! The data plane never opens this database; it reads the snapshot built from it.

mod codec;
mod import;
#[cfg(test)]
mod import_tests;
mod keys;
mod load;
mod overlay;
pub use overlay::OverlayEntry;
mod plans;
mod schema;
pub mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

pub use import::{ImportFormat, ImportOptions, ImportReport};
pub use keys::KeyFilter;

/// How long a writer waits for another process holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the store can refuse or fail at. Messages say what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the key database has schema v{found} but this keyway knows up to v{known}: upgrade keyway"
    )]
    SchemaTooNew { found: u32, known: u32 },
    #[error("the key database is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "no plan named {0:?}: create it with `keyway plans set {0}`, or see `keyway plans list`"
    )]
    PlanNotFound(String),
    #[error("plan {name:?} is used by {keys} key(s): move them to another plan with `keyway keys update ID --plan OTHER` first")]
    PlanInUse { name: String, keys: u64 },
    #[error("no key with id {0:?}: see `keyway keys list`")]
    KeyNotFound(String),
    #[error("a key with id {0:?} already exists: choose another id")]
    KeyExists(String),
    #[error("that secret is already stored for key {0:?}: each key needs its own secret")]
    DuplicateSecret(String),
    #[error("key {0:?} is revoked: re-enable it with `keyway keys update {0} --enable` first")]
    KeyRevoked(String),
    #[error("{0}")]
    Invalid(String),
    #[error("line {line}: {reason}")]
    Import { line: u64, reason: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An open key database.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating it and its parent directory if needed) and migrates the database.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        Self::setup(Connection::open(path)?)
    }

    /// A private in-memory database (tests, dry runs).
    pub fn open_in_memory() -> Result<Store> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Store> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL lets `snapshot build` read while a `keys create` writes; NORMAL is durable
        // across process crashes in WAL mode, which is what a CLI needs.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
        conn.pragma_update(None, "cache_size", -65536)?;
        schema::migrate(&mut conn)?;
        Ok(Store { conn })
    }

    /// A transaction that takes the write lock at once (waiting up to `BUSY_TIMEOUT` for
    /// another writer), so a read-then-write never fails half-way on a lock upgrade.
    fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    /// Writes a consistent copy of the database to `path` (`VACUUM INTO`: one read
    /// transaction, so writers carry on and the copy is a single point in time). Refuses a
    /// `path` that exists.
    pub fn backup_to(&self, path: &Path) -> Result<()> {
        if path.exists() {
            return Err(StoreError::Invalid(
                "the file exists; choose a new name (a backup never overwrites)".into(),
            ));
        }
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Invalid("the path is not UTF-8; choose another".into()))?;
        self.conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// The schema version the database is at (after `open`, the newest this build knows).
    pub fn schema_version(&self) -> Result<u32> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }
}

pub(crate) use crate::clock::unix_now;

#[cfg(test)]
pub(crate) mod test_util {
    use crate::keys::model::{KeySpec, PlanSpec};

    pub fn plan(name: &str) -> PlanSpec {
        PlanSpec {
            name: name.into(),
            limits: vec!["20/s".parse().unwrap()],
            scopes: vec!["GET /v1/**".into()],
            ..PlanSpec::default()
        }
    }

    pub fn key(id: &str, plan: &str, secret: &str) -> KeySpec {
        KeySpec {
            id: id.into(),
            digest: crate::keys::format::digest(secret.as_bytes()),
            hint: crate::keys::format::hint(secret),
            tenant: "acme".into(),
            plan: plan.into(),
            enabled: true,
            created_at: 1_700_000_000,
            ..KeySpec::default()
        }
    }
}
