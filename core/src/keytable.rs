//! The key table the data plane serves: a validated snapshot and the policy compiled from it
//! against the configuration, built together off the shards and swapped whole on reload.

use crate::config::Config;
use crate::keys::Snapshot;
use crate::policy::PolicyIndex;
use std::path::Path;
use std::sync::Arc;

/// What the data plane serves: the validated key snapshot and its compiled policy (scopes,
/// allowlists, plan upstreams), built together off the shards.
pub struct KeyTable {
    /// Shared by the tables a configuration reload recompiles from it.
    pub snapshot: Arc<Snapshot>,
    pub policy: PolicyIndex,
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
    Ok(KeyTable {
        snapshot: Arc::new(snapshot),
        policy,
    })
}

impl KeyTable {
    /// The same keys with their policy compiled against another configuration (a reload
    /// that changes upstreams while the snapshot file stays or is refused); the reason in
    /// one line when a plan or key names an upstream `config` lacks.
    pub fn recompile(&self, config: &Config) -> Result<KeyTable, String> {
        let policy = PolicyIndex::build(&self.snapshot, |name| config.upstream_index(name))
            .map_err(|e| format!("the key table being served: {e}"))?;
        Ok(KeyTable {
            snapshot: self.snapshot.clone(),
            policy,
        })
    }
}
