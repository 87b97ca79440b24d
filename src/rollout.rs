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
use crate::context::Shared;
use crate::keytable::{self, KeyTable};
use crate::shard::Control;
use crate::snapshot_status::SnapshotStatus;
use crossbeam_channel::{Receiver, Sender};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
        let needed = config.routes.iter().any(|r| !r.public);
        let mut status = lock(&state.snapshot);
        status.path = snapshot_path.display().to_string();
        let fresh = if !needed && !snapshot_path.exists() {
            // Public routes only and no snapshot: nothing to load, nothing wrong.
            status.attempts += 1;
            status.last_error = None;
            None
        } else {
            status.record(keytable::load(&snapshot_path, config))
        };
        if fresh.is_none() && status.last_error.is_some() {
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
            (None, Some(serving)) => match follow(serving, &running.config, &next) {
                Ok(t) => Some(t),
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
        if let Some(t) = &fresh {
            let generation = t.snapshot.generation();
            status.rolling_out = Some(generation);
            self.pending_keys = Some(Pending::new(generation, self.shards));
        }
        self.apply(state, controls, &running, next, keys, &mut status);
    }

    /// Hands `next` (with `keys`, compiled against it) to every shard.
    fn apply(
        &mut self,
        state: &AdminState,
        controls: &[Sender<Control>],
        running: &Shared,
        next: Config,
        keys: Option<Arc<KeyTable>>,
        status: &mut SnapshotStatus,
    ) {
        let shared = Arc::new(running.next(next));
        let changes = describe(&running.config, &shared.config);
        tracing::info!(
            version = shared.version,
            changes = %changes.join("; "),
            "applying a new configuration version"
        );
        for tx in controls {
            let _ = tx.send(Control::Config(shared.clone(), keys.clone()));
        }
        status.config.rolling_out = Some(shared.version);
        status.config.last_changes = changes;
        self.pending_config = Some(Pending::new(shared.version, self.shards));
        self.keys = keys;
        *state.shared.write().unwrap_or_else(|p| p.into_inner()) = shared;
    }

    /// The resolver found other addresses for an upstream's host names.
    pub fn resolved(&mut self, state: &AdminState, controls: &[Sender<Control>], found: Resolved) {
        let running = state.shared();
        if running.version != found.version {
            // A reload came first (and resolved the names itself).
            return;
        }
        let mut next = running.config.clone();
        let Some(i) = next.upstream_index(&found.upstream) else {
            return;
        };
        next.upstreams[i].set_resolved(found.addrs);
        if next == running.config {
            return;
        }
        tracing::info!(
            upstream = %found.upstream,
            servers = ?next.upstreams[i].servers,
            "upstream host names resolve to other addresses"
        );
        let keys = self.keys.clone();
        let mut status = lock(&state.snapshot);
        self.apply(state, controls, &running, next, keys, &mut status);
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
        source.overrides.apply(&mut next);
        if let Err(e) = crate::resolve::resolve(&mut next, Some(running)) {
            c.failures += 1;
            tracing::error!(error = %e, "configuration refused; the running one keeps serving");
            c.last_error = Some(e);
            return None;
        }
        c.last_error = None;
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

/// The serving key table, valid for `next`: the same table when the upstreams are the same
/// names in the same order (their indexes did not move), else recompiled against `next`.
fn follow(serving: &Arc<KeyTable>, old: &Config, next: &Config) -> Result<Arc<KeyTable>, String> {
    let names = |c: &Config| {
        c.upstreams
            .iter()
            .map(|u| u.name.clone())
            .collect::<Vec<_>>()
    };
    if names(old) == names(next) {
        Ok(serving.clone())
    } else {
        serving.recompile(next).map(Arc::new)
    }
}

/// Other addresses for the host names of `upstream` in configuration `version`
/// (`addrs[i]` for its `hosts[i]`).
pub struct Resolved {
    pub version: u64,
    pub upstream: String,
    pub addrs: Vec<Vec<SocketAddr>>,
}

/// How often the resolver thread looks whether a name is due.
const RESOLVE_TICK: Duration = Duration::from_secs(1);

/// Starts the thread that resolves upstream host names again every `resolve_interval`
/// (off the shards and the control thread: a slow DNS answer delays nothing else) and
/// reports changed address sets. It ends with the control loop (when a report finds no
/// receiver).
pub fn spawn_resolver(state: Arc<AdminState>) -> std::io::Result<Receiver<Resolved>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("keyway-resolver".into())
        .spawn(move || {
            let mut due: HashMap<String, Instant> = HashMap::new();
            loop {
                std::thread::sleep(RESOLVE_TICK);
                let shared = state.shared();
                let now = Instant::now();
                for u in shared.config.upstreams.iter().filter(|u| !u.hosts.is_empty()) {
                    let at = due
                        .entry(u.name.clone())
                        .or_insert(now + u.resolve_interval);
                    if now < *at {
                        continue;
                    }
                    *at = now + u.resolve_interval;
                    let mut changed = false;
                    let addrs = u
                        .hosts
                        .iter()
                        .map(|h| match crate::resolve::lookup(&h.host, h.port) {
                            // Sorted and deduplicated, as `hosts[i].addrs` is.
                            Ok(a) => {
                                changed |= a != h.addrs;
                                a
                            }
                            Err(e) => {
                                tracing::warn!(upstream = %u.name, server = %format!("{}:{}", h.host, h.port), error = %e,
                                    "cannot resolve an upstream server; keeping the addresses it had");
                                h.addrs.clone()
                            }
                        })
                        .collect();
                    if changed {
                        let found = Resolved {
                            version: shared.version,
                            upstream: u.name.clone(),
                            addrs,
                        };
                        if tx.send(found).is_err() {
                            return;
                        }
                    }
                }
            }
        })?;
    Ok(rx)
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
