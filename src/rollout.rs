//! Reloads on the control thread: SIGHUP re-reads the configuration file and the key
//! snapshot, checks them whole, and hands the shards what changed; the shards swap between
//! requests (requests in flight finish on what they began with) and confirm.
//!
//! A configuration that does not parse or validate is refused whole: the running one keeps
//! serving and the reason is logged, counted and shown on `/snapshot`. A valid one is
//! compared with the running one: settings that only a restart can change (listeners,
//! shards, state directory, audit file, sync interval) keep their running values and are
//! named in the log; the rest is applied. The key table is compiled against the
//! configuration that will serve it: the snapshot file if it loads, else the table being
//! served, recompiled; if neither fits (a plan names an upstream the new file removed) the
//! configuration is refused.

use crate::admin::AdminState;
use crate::config::diff::{describe, keep_restart_only};
use crate::config::Config;
use crate::keytable::{self, KeyTable};
use crate::shard::Control;
use crossbeam_channel::Sender;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where the configuration came from, so a reload can read it again.
#[derive(Clone, Debug)]
pub struct ConfigSource {
    pub path: PathBuf,
    /// Command-line flags that replace values of the file.
    pub overrides: ServerOverrides,
}

/// `keyway serve --listen/--admin-listen/--shards`: they win over the file, at start and on
/// every reload.
#[derive(Clone, Debug, Default)]
pub struct ServerOverrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub shards: Option<usize>,
}

impl ServerOverrides {
    pub fn apply(&self, config: &mut Config) {
        if let Some(l) = self.listen {
            config.server.listen = l;
        }
        if let Some(a) = self.admin_listen {
            config.server.admin_listen = a;
        }
        if let Some(s) = self.shards {
            config.server.shards = s;
        }
    }
}

/// Something handed to every shard, waiting for each to confirm.
struct Pending {
    id: u64,
    confirmed: Vec<bool>,
}

impl Pending {
    fn new(id: u64, shards: usize) -> Pending {
        Pending {
            id,
            confirmed: vec![false; shards],
        }
    }

    /// Shard `shard` confirmed `id`; true once every shard has.
    fn confirm(&mut self, shard: usize, id: u64) -> bool {
        if id == self.id {
            if let Some(c) = self.confirmed.get_mut(shard) {
                *c = true;
            }
        }
        self.confirmed.iter().all(|&c| c)
    }
}

/// The control thread's side of reloads.
pub struct Rollout {
    source: Option<ConfigSource>,
    /// The last key table handed to the shards (compiled against the newest configuration).
    keys: Option<Arc<KeyTable>>,
    pending_keys: Option<Pending>,
    pending_config: Option<Pending>,
    shards: usize,
}

impl Rollout {
    pub fn new(source: Option<ConfigSource>, keys: Option<Arc<KeyTable>>, shards: usize) -> Self {
        Rollout {
            source,
            keys,
            pending_keys: None,
            pending_config: None,
            shards,
        }
    }

    /// SIGHUP: the configuration file (when there is one) and the key snapshot.
    pub fn reload(&mut self, state: &AdminState, controls: &[Sender<Control>]) {
        let running = state.shared();
        let next = self.read_config(state, &running.config);
        let config = next.as_ref().unwrap_or(&running.config);
        let snapshot_path = config.keys.snapshot.clone();
        let loaded = keytable::load(&snapshot_path, config);
        let mut status = lock(&state.snapshot);
        status.path = snapshot_path.display().to_string();
        let fresh = status.record(loaded);
        if fresh.is_none() {
            tracing::error!(
                error = status.last_error.as_deref().unwrap_or(""),
                "key table refused; the previous one keeps serving"
            );
        }
        let Some(next) = next else {
            if let Some(table) = fresh {
                let generation = table.snapshot.generation();
                tracing::info!(
                    generation,
                    keys = table.snapshot.key_count(),
                    "reloading key table"
                );
                for tx in controls {
                    let _ = tx.send(Control::Keys(table.clone()));
                }
                status.rolling_out = Some(generation);
                self.pending_keys = Some(Pending::new(generation, self.shards));
                self.keys = Some(table);
            }
            return;
        };
        let keys = match (&fresh, &self.keys) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(serving)) => match serving.recompile(&next) {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    let c = &mut status.config;
                    c.failures += 1;
                    let why = format!("{e}; keep that upstream in the file, or change the plan or key and rebuild the snapshot");
                    tracing::error!(error = %why, "configuration refused; the running one keeps serving");
                    c.last_error = Some(why);
                    return;
                }
            },
            (None, None) => None,
        };
        let shared = Arc::new(running.next(next));
        let changes = describe(&running.config, &shared.config);
        tracing::info!(
            version = shared.version,
            changes = %changes.join("; "),
            "applying the reloaded configuration"
        );
        for tx in controls {
            let _ = tx.send(Control::Config(shared.clone(), keys.clone()));
        }
        if let Some(t) = &fresh {
            let generation = t.snapshot.generation();
            status.rolling_out = Some(generation);
            self.pending_keys = Some(Pending::new(generation, self.shards));
        }
        status.config.rolling_out = Some(shared.version);
        status.config.last_changes = changes;
        self.pending_config = Some(Pending::new(shared.version, self.shards));
        self.keys = keys;
        *state.shared.write().unwrap_or_else(|p| p.into_inner()) = shared;
    }

    /// The file again, checked whole; `Some` when it is valid and differs from `running`.
    fn read_config(&self, state: &AdminState, running: &Config) -> Option<Config> {
        let source = self.source.as_ref()?;
        let result = Config::load(&source.path);
        let mut status = lock(&state.snapshot);
        let c = &mut status.config;
        c.attempts += 1;
        let mut next = match result {
            Ok(next) => next,
            Err(e) => {
                c.failures += 1;
                tracing::error!(error = %e, "configuration refused; the running one keeps serving");
                c.last_error = Some(e.to_string());
                return None;
            }
        };
        c.last_error = None;
        source.overrides.apply(&mut next);
        let kept = keep_restart_only(running, &mut next);
        if !kept.is_empty() {
            tracing::warn!(
                settings = %kept.join(", "),
                "changed in the configuration file, but they take effect only at a restart; their running values stay"
            );
        }
        c.needs_restart = kept.into_iter().map(String::from).collect();
        if next == *running {
            tracing::info!("configuration unchanged");
            return None;
        }
        Some(next)
    }

    /// Shard `shard` now serves key-table `generation`.
    pub fn keys_swapped(&mut self, state: &AdminState, shard: usize, generation: u64) {
        if let Some(p) = self.pending_keys.as_mut() {
            if p.confirm(shard, generation) {
                if let Some(table) = &self.keys {
                    if table.snapshot.generation() == generation {
                        lock(&state.snapshot).serving(&table.snapshot);
                    }
                }
                tracing::info!(generation, "every shard serves the new key table");
                self.pending_keys = None;
            }
        }
    }

    /// Shard `shard` now serves configuration `version`.
    pub fn config_swapped(&mut self, state: &AdminState, shard: usize, version: u64) {
        if let Some(p) = self.pending_config.as_mut() {
            if p.confirm(shard, version) {
                let mut status = lock(&state.snapshot);
                status.config.rolling_out = None;
                status.config.version = version;
                status.config.loaded_at = Some(crate::clock::unix_now());
                tracing::info!(version, "every shard serves the reloaded configuration");
                self.pending_config = None;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::Pending;

    #[test]
    fn a_rollout_ends_when_every_shard_confirmed_its_id() {
        let mut p = Pending::new(7, 3);
        assert!(!p.confirm(0, 7));
        // Twice from one shard, or an older id, does not count for the others.
        assert!(!p.confirm(0, 7));
        assert!(!p.confirm(1, 6));
        assert!(!p.confirm(1, 7));
        assert!(p.confirm(2, 7));
    }
}
