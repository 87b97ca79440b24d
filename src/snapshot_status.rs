//! What `/snapshot` reports about the key table: the generation every shard serves, the last
//! load attempt and its refusal reason. Loading happens in `serve` (at start and on SIGHUP);
//! a refused file leaves the old table serving.

use crate::clock::unix_now;
use keyway_core::keys::Snapshot;
use keyway_core::keytable::KeyTable;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// What `/snapshot` reports. Only the control thread writes it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SnapshotStatus {
    /// Generation every shard now serves (`null` before the first load).
    pub generation: Option<u64>,
    pub keys: u64,
    /// Unix seconds when the serving table was loaded.
    pub loaded_at: Option<i64>,
    pub path: String,
    /// Why the last attempt was refused; `null` when it succeeded.
    pub last_error: Option<String>,
    /// Load attempts so far (start and every SIGHUP); `keyway reload` waits for it to move.
    pub attempts: u64,
    pub failures: u64,
    /// Generation handed to the shards but not yet confirmed by all of them.
    pub rolling_out: Option<u64>,
    /// The configuration file's reloads.
    #[serde(default)]
    pub config: ConfigStatus,
}

/// What `/snapshot` reports about the configuration (under `config`). Only the control
/// thread writes it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConfigStatus {
    /// The file SIGHUP re-reads; `null` when serving without one (quickstart): SIGHUP then
    /// reloads the key table only.
    pub path: Option<String>,
    /// Version every shard serves: 0 as started, one more for each reload applied.
    pub version: u64,
    /// Unix seconds when the serving version was applied (start for version 0).
    pub loaded_at: Option<i64>,
    /// Reload attempts (every SIGHUP with a file); `keyway reload` waits for it to move.
    pub attempts: u64,
    pub failures: u64,
    /// Why the last attempt was refused; `null` when it was applied (or unchanged).
    pub last_error: Option<String>,
    /// Version handed to the shards but not yet confirmed by all of them.
    pub rolling_out: Option<u64>,
    /// Settings the file changes that take effect only at a restart (their running values
    /// stay meanwhile).
    pub needs_restart: Vec<String>,
    /// What the last applied reload changed, one line each.
    pub last_changes: Vec<String>,
}

impl SnapshotStatus {
    pub fn new(path: &Path) -> SnapshotStatus {
        SnapshotStatus {
            path: path.display().to_string(),
            ..Default::default()
        }
    }

    /// Records a load attempt's result; returns the table to hand to the shards.
    pub fn record(&mut self, result: Result<KeyTable, String>) -> Option<Arc<KeyTable>> {
        self.attempts += 1;
        match result {
            Ok(snap) => {
                self.last_error = None;
                Some(Arc::new(snap))
            }
            Err(reason) => {
                self.failures += 1;
                self.last_error = Some(reason);
                None
            }
        }
    }

    /// Every shard now serves `snap`.
    pub fn serving(&mut self, snap: &Snapshot) {
        self.rolling_out = None;
        self.generation = Some(snap.generation());
        self.keys = snap.key_count();
        self.loaded_at = Some(unix_now());
    }
}
