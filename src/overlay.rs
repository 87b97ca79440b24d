//! The live overlay's runtime side: a thread that polls the key database every
//! [`OVERLAY_POLL`] for revocations newer than what the serving snapshot absorbed
//! (`keys::overlay`) and hands them to every shard over its control channel. A revocation
//! made with the CLI (or, later, the admin API) is refused by every shard within
//! `OVERLAY_POLL` + a shard's control tick, without a snapshot rebuild; at start the
//! overlay is read before the shards take a request, so it survives a restart.
//!
//! The thread never blocks the data plane: the shards only ever see a finished update. A
//! database that is missing, locked or too old is retried on the next poll (and logged
//! once per kind of trouble).

use crate::admin::AdminState;
use crate::keys::overlay::OverlayUpdate;
use crate::shard::Control;
use crate::store::Store;
use crossbeam_channel::Sender;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often the key database is polled for new revocations.
pub const OVERLAY_POLL: Duration = Duration::from_millis(200);

/// Where the overlay stands: which snapshot it is on top of, and the last number applied.
pub struct OverlayReader {
    db: PathBuf,
    store: Option<Store>,
    /// Generation of the snapshot the shards' overlay is relative to; `None` inside: not
    /// read yet (or the database was reopened).
    generation: Option<Option<u64>>,
    /// Last overlay number handed to the shards.
    last: u64,
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
            trouble: None,
        }
    }

    /// What the shards must apply now that `generation` serves: a full reset when the
    /// snapshot changed, else the revocations since the last poll (`None`: nothing new).
    pub fn poll(&mut self, generation: Option<u64>) -> Option<OverlayUpdate> {
        match self.try_poll(generation) {
            Ok(update) => {
                self.trouble = None;
                update
            }
            Err(e) => {
                if self.trouble.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "cannot read revocations from the key database; retrying (revocations since the last snapshot build may not apply yet)");
                    self.trouble = Some(e);
                }
                self.store = None;
                None
            }
        }
    }

    fn try_poll(&mut self, generation: Option<u64>) -> Result<Option<OverlayUpdate>, String> {
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
        if self.generation != Some(generation) {
            let base = match generation {
                Some(g) => store.absorbed_by(g).map_err(err)?.unwrap_or(0),
                None => 0,
            };
            let rows = store.overlay_since(base).map_err(err)?;
            self.last = rows.last().map_or(base, |(seq, _)| *seq).max(base);
            self.generation = Some(generation);
            return Ok(Some(OverlayUpdate {
                reset: true,
                revoked: rows.into_iter().map(|(_, id)| id.into()).collect(),
            }));
        }
        let rows = store.overlay_since(self.last).map_err(err)?;
        let Some((seq, _)) = rows.last() else {
            return Ok(None);
        };
        self.last = *seq;
        Ok(Some(OverlayUpdate {
            reset: false,
            revoked: rows.into_iter().map(|(_, id)| id.into()).collect(),
        }))
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
            if let Some(update) = reader.poll(state.status().generation) {
                if !update.revoked.is_empty() {
                    tracing::info!(
                        revoked = update.revoked.len(),
                        reset = update.reset,
                        "live revocations handed to the shards"
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
