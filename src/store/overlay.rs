//! The store's side of the live overlay (`keys::overlay`): every revocation or disabling is
//! numbered in `overlay` in the same transaction as the change; a snapshot build records in
//! `snapshot_overlay` the number it absorbed. The gateway reads what came after.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{Result, Store};
use crate::clock::unix_now;

/// Numbers a change of `key_id` (created, edited, rotated, revoked), inside the
/// transaction that makes it.
pub(super) fn note_changed(tx: &Transaction<'_>, key_id: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO overlay (key_id, action, at) VALUES (?1, 'change', ?2)",
        params![key_id, unix_now()],
    )?;
    Ok(())
}

/// Numbers a revocation of `key_id` (inside the transaction that makes it).
pub(super) fn note_revoked(tx: &Transaction<'_>, key_id: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO overlay (key_id, action, at) VALUES (?1, 'revoke', ?2)",
        params![key_id, unix_now()],
    )?;
    Ok(())
}

/// One numbered change: a revocation, or any other change to the key (its current record
/// then belongs in the live overlay).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayEntry {
    pub seq: u64,
    pub key_id: String,
    pub revoke: bool,
}

impl Store {
    /// Revocations numbered after `after`, in order: (number, key id).
    pub fn overlay_since(&self, after: u64) -> Result<Vec<(u64, String)>> {
        Ok(self
            .overlay_entries(after)?
            .into_iter()
            .filter(|e| e.revoke)
            .map(|e| (e.seq, e.key_id))
            .collect())
    }

    /// Every overlay entry numbered after `after`, in order.
    pub fn overlay_entries(&self, after: u64) -> Result<Vec<OverlayEntry>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, key_id, action FROM overlay WHERE seq > ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([after], |r| {
            Ok(OverlayEntry {
                seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                key_id: r.get(1)?,
                revoke: r.get::<_, String>(2)? == "revoke",
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The overlay number the snapshot of `generation` absorbed; `None` when no build
    /// recorded it (a snapshot from before the overlay, or from another store: everything
    /// in the overlay then applies).
    pub fn absorbed_by(&self, generation: u64) -> Result<Option<u64>> {
        let generation = i64::try_from(generation).unwrap_or(i64::MAX);
        let seq: Option<i64> = self
            .conn
            .query_row(
                "SELECT overlay_seq FROM snapshot_overlay WHERE generation = ?1",
                [generation],
                |r| r.get(0),
            )
            .optional()?;
        Ok(seq.map(|s| u64::try_from(s).unwrap_or(0)))
    }

    /// Records that the snapshot of `generation` absorbed the overlay up to `seq`.
    pub fn record_absorbed(&mut self, generation: u64, seq: u64) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO snapshot_overlay (generation, overlay_seq) VALUES (?1, ?2)",
            params![
                i64::try_from(generation).unwrap_or(i64::MAX),
                i64::try_from(seq).unwrap_or(i64::MAX)
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_util::{key, plan};
    use crate::store::Store;

    #[test]
    fn revocations_are_numbered_and_builds_record_what_they_absorbed() {
        let mut store = Store::open_in_memory().unwrap();
        store.set_plan(&plan("free")).unwrap();
        for id in ["key_a", "key_b", "key_c"] {
            store
                .create_key(&key(id, "free", &format!("kw_live_{id}xxxxxxx")))
                .unwrap();
        }
        store.revoke_key("key_a").unwrap();
        let (_, _, absorbed) = store.load_all_at().unwrap();
        // Three creations, then the revocation and its change.
        assert_eq!(absorbed, 5);
        store.record_absorbed(7, absorbed).unwrap();
        store.revoke_key("key_b").unwrap();
        store
            .update_key("key_c", |k| {
                k.enabled = false;
                Ok(())
            })
            .unwrap();
        // A rename is a change, not a revocation.
        store
            .update_key("key_c", |k| {
                k.name = "renamed".into();
                Ok(())
            })
            .unwrap();
        assert_eq!(store.absorbed_by(7).unwrap(), Some(5));
        assert_eq!(store.absorbed_by(8).unwrap(), None);
        let ids: Vec<String> = store
            .overlay_since(5)
            .unwrap()
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        assert_eq!(ids, ["key_b", "key_c"]);
        assert_eq!(store.overlay_since(0).unwrap().len(), 3);
        // Every change is numbered: after the build, key_b's revocation, key_c's disabling
        // and its rename.
        let changed: Vec<(String, bool)> = store
            .overlay_entries(5)
            .unwrap()
            .into_iter()
            .map(|e| (e.key_id, e.revoke))
            .collect();
        assert_eq!(
            changed,
            [
                ("key_b".to_string(), true),
                ("key_b".to_string(), false),
                ("key_c".to_string(), true),
                ("key_c".to_string(), false),
                ("key_c".to_string(), false),
            ]
        );
        let last = store.overlay_entries(0).unwrap().last().unwrap().seq;
        assert!(store.overlay_entries(last).unwrap().is_empty());
    }
}
