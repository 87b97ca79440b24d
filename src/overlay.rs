//! The live overlay's runtime side: a thread that polls the key database every
//! [`OVERLAY_POLL`] for key changes numbered after what the serving snapshot absorbed
//! (`keys::overlay`, `keytable::Delta`) and hands them to every shard over its control
//! channel: revoked key ids, and a small table of the keys created, edited or rotated
//! since the build. A change made with the CLI (or, later, the admin API) is served by every
//! shard within `OVERLAY_POLL` + a shard's control tick, without a snapshot rebuild; at
//! start the overlay is read before the shards take a request, so it survives a restart.
//!
//! The thread never blocks the data plane: the shards only ever see a finished update. A
//! database that is missing, locked or too old is retried on the next poll (and logged
//! once per kind of trouble). Past [`MAX_DELTA_KEYS`] changed keys the table stops growing
//! (revocations still apply) until a build absorbs them.

use crate::admin::AdminState;
use crate::context::LiveUpdate;
use crate::keys::overlay::OverlayUpdate;
use crate::keytable::Delta;
use crate::shard::Control;
use crate::store::Store;
use crossbeam_channel::Sender;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the key database is polled for changes.
pub const OVERLAY_POLL: Duration = Duration::from_millis(200);

/// The most changed keys the live table holds; past it `keyway snapshot build` is due.
pub const MAX_DELTA_KEYS: usize = 10_000;

/// Where the overlay stands: which snapshot it is on top of, and the last number applied.
pub struct OverlayReader {
    db: PathBuf,
    store: Option<Store>,
    /// Generation of the snapshot the shards' overlay is relative to; `None` inside: not
    /// read yet (or the database was reopened).
    generation: Option<Option<u64>>,
    /// Last overlay number handed to the shards.
    last: u64,
    /// Keys changed since the snapshot (their current records make the delta).
    changed: BTreeSet<String>,
    /// The last trouble logged (logged again only when it changes).
    trouble: Option<String>,
}

impl OverlayReader {
    pub fn new(db: &Path) -> OverlayReader {
        OverlayReader {
            db: db.to_path_buf(),
            store: None,
            generation: None,
            last: 0,
            changed: BTreeSet::new(),
            trouble: None,
        }
    }

    /// What the shards must apply now that `generation` serves under `state`'s
    /// configuration: everything since the snapshot when it changed, else what is new since
    /// the last poll (`None`: nothing).
    pub fn poll(&mut self, generation: Option<u64>, state: &AdminState) -> Option<LiveUpdate> {
        match self.try_poll(generation, state) {
            Ok(update) => {
                self.trouble = None;
                update
            }
            Err(e) => {
                if self.trouble.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "cannot read key changes from the key database; retrying (changes since the last snapshot build may not apply yet)");
                    self.trouble = Some(e);
                }
                self.store = None;
                None
            }
        }
    }

    fn try_poll(
        &mut self,
        generation: Option<u64>,
        state: &AdminState,
    ) -> Result<Option<LiveUpdate>, String> {
        if self.store.is_none() {
            if !self.db.exists() {
                return Ok(None);
            }
            let store = Store::open(&self.db).map_err(|e| format!("{}: {e}", self.db.display()))?;
            self.store = Some(store);
            self.generation = None;
        }
        let store = self.store.as_ref().expect("opened above");
        let err = |e: crate::store::StoreError| format!("{}: {e}", self.db.display());
        let reset = self.generation != Some(generation);
        let after = if reset {
            match generation {
                Some(g) => store.absorbed_by(g).map_err(err)?.unwrap_or(0),
                None => 0,
            }
        } else {
            self.last
        };
        let entries = store.overlay_entries(after).map_err(err)?;
        if !reset && entries.is_empty() {
            return Ok(None);
        }
        if reset {
            self.changed.clear();
            self.generation = Some(generation);
        }
        self.last = entries.last().map_or(after, |e| e.seq).max(after);
        let mut revoked = Vec::new();
        // Any change (a new key, or a new record of one the delta holds) rebuilds it.
        let mut changed = false;
        for e in entries {
            if e.revoke {
                revoked.push(e.key_id.into_boxed_str());
            } else {
                self.changed.insert(e.key_id);
                changed = true;
            }
        }
        let delta = if reset || changed {
            Some(self.build_delta(store, state).map_err(err)?)
        } else {
            None
        };
        Ok(Some(LiveUpdate {
            revoked: OverlayUpdate { reset, revoked },
            delta,
        }))
    }

    /// The table of the changed keys' current records (`None`: none, or too many, or they
    /// cannot be compiled: then they wait for the next build, and the log says why).
    fn build_delta(
        &self,
        store: &Store,
        state: &AdminState,
    ) -> Result<Option<Arc<Delta>>, crate::store::StoreError> {
        if self.changed.is_empty() {
            return Ok(None);
        }
        if self.changed.len() > MAX_DELTA_KEYS {
            tracing::warn!(
                changed = self.changed.len(),
                "more keys changed since the last snapshot build than the live table holds ({MAX_DELTA_KEYS}); run `keyway snapshot build` and `keyway reload` (revocations still apply)"
            );
            return Ok(None);
        }
        let plans = store.list_plans()?;
        let mut keys = Vec::with_capacity(self.changed.len());
        for id in &self.changed {
            match store.get_key(id) {
                Ok(k) => keys.push(k),
                Err(crate::store::StoreError::KeyNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let shared = state.shared();
        let now = crate::clock::unix_now();
        match Delta::build(&plans, &keys, now, &shared.config, shared.version) {
            Ok(d) => Ok(Some(Arc::new(d))),
            Err(e) => {
                tracing::warn!(error = %e, "keys changed since the snapshot cannot be served yet; they wait for the next build");
                Ok(None)
            }
        }
    }
}

/// Polls on a thread of its own until the shards' channels close.
pub fn spawn(
    mut reader: OverlayReader,
    state: Arc<AdminState>,
    controls: Vec<Sender<Control>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("keyway-overlay".into())
        .spawn(move || loop {
            std::thread::sleep(OVERLAY_POLL);
            if let Some(update) = reader.poll(state.status().generation, &state) {
                let changed = match &update.delta {
                    Some(Some(d)) => d.len(),
                    _ => 0,
                };
                if !update.revoked.revoked.is_empty() || changed > 0 {
                    tracing::info!(
                        revoked = update.revoked.revoked.len(),
                        changed,
                        "live key changes handed to the shards"
                    );
                }
                let update = Arc::new(update);
                for tx in &controls {
                    if tx.send(Control::Overlay(update.clone())).is_err() {
                        return;
                    }
                }
            }
        })?;
    Ok(())
}
