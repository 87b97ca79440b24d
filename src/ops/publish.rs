//! Publishing a snapshot: compile every plan and key in the store into the file the data
//! plane loads (written atomically), and record which overlay entries it absorbed. Shared by
//! `keyway snapshot build` and `POST /v1/snapshot/publish`.

use std::path::Path;
use std::time::Instant;

use super::{Error, Paths};
use crate::keys::snapshot::{self, Snapshot};

/// What a build is doing, for progress display.
pub enum Phase {
    /// Keys read from the store so far, of `total`.
    Loading {
        done: u64,
        total: u64,
    },
    Building,
    Writing,
    Done,
}

/// A written snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub generation: u64,
    pub keys: usize,
    pub plans: usize,
    pub bytes: usize,
    pub seconds: f64,
}

/// Builds the store's snapshot into `out`, calling `progress` as it goes.
pub fn build(
    paths: &Paths,
    out: &Path,
    now: i64,
    progress: &mut dyn FnMut(Phase),
) -> Result<Built, Error> {
    let started = Instant::now();
    let mut store = paths.open_store()?;

    // A new snapshot must supersede the one on disk even if the database was recreated.
    let floor = Snapshot::load(out).map_or(0, |s| s.generation());
    let total = store.key_count()?;
    let loaded = store.load_all_with(&mut |done| progress(Phase::Loading { done, total }));
    let (plans, mut keys, absorbed) = loaded?;
    for k in &mut keys {
        k.grace.retain(|g| g.grace_until > now);
    }
    let generation = store.next_generation_above(floor)?;
    progress(Phase::Building);
    let built = snapshot::build(generation, now, &plans, &keys)
        .map_err(|e| Error::new(500, "snapshot_build_failed", e.to_string()));
    progress(Phase::Writing);
    let written = built.and_then(|bytes| {
        snapshot::write_atomic(out, &bytes)
            .map(|()| bytes.len())
            .map_err(|e| {
                Error::new(
                    500,
                    "snapshot_write_failed",
                    format!(
                        "cannot write {}: {e}; check the directory and free space",
                        out.display()
                    ),
                )
            })
    });
    progress(Phase::Done);
    let bytes = written?;
    // Overlay entries up to `absorbed` are in this snapshot: a gateway serving it stops
    // applying them from the overlay.
    store.record_absorbed(generation, absorbed)?;
    Ok(Built {
        generation,
        keys: keys.len(),
        plans: plans.len(),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
