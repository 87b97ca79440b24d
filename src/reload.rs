//! Key-table loading and SIGHUP reload, on the control thread: load and validate the
//! snapshot file off the shards, hand the new table to every shard, and record the outcome
//! for `/snapshot` and the metrics. A refused file leaves the old table serving.

use crate::config::Config;
use crate::keys::Snapshot;
use crate::policy::PolicyIndex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the data plane serves: the validated key snapshot and its compiled policy (scopes,
/// allowlists, plan upstreams), built together off the shards.
pub struct KeyTable {
    pub snapshot: Snapshot,
    pub policy: PolicyIndex,
}

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

/// Loads and fully validates the snapshot at `path` and compiles its policy against the
/// configuration's upstreams; the refusal reason in one line.
///
/// The data plane serves a private copy (`load_private`), not a mapping of the file: an
/// operator who `cp`s over the live file (instead of renaming) must not be able to change or
/// fault the table being served.
pub fn load(path: &Path, config: &Config) -> Result<KeyTable, String> {
    let snapshot = Snapshot::load_private(path).map_err(|e| e.to_string())?;
    let policy = PolicyIndex::build(&snapshot, |name| config.upstream_index(name))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(KeyTable { snapshot, policy })
}

/// Unix milliseconds (for rate windows).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Files the running gateway leaves in its state directory for `keyway reload`.
pub struct RuntimeFiles {
    pub pid: PathBuf,
    pub admin: PathBuf,
}

impl RuntimeFiles {
    pub fn in_dir(state_dir: &Path) -> RuntimeFiles {
        RuntimeFiles {
            pid: state_dir.join("keyway.pid"),
            admin: state_dir.join("keyway.admin"),
        }
    }

    pub fn write(&self, admin: std::net::SocketAddr) -> std::io::Result<()> {
        std::fs::write(&self.pid, format!("{}\n", std::process::id()))?;
        std::fs::write(&self.admin, format!("{admin}\n"))
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.pid);
        let _ = std::fs::remove_file(&self.admin);
    }
}
