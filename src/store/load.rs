//! Everything a snapshot build needs: all plans and keys in one pass, and the generation
//! counter. Built for millions of keys: one streaming SELECT per table, rows decoded in place.

use std::collections::HashMap;

use rusqlite::params;

use super::keys::{key_from_row, KEY_COLUMNS};
use super::plans::{plan_from_row, PLAN_COLUMNS};
use super::{codec, Result, Store};
use crate::keys::model::{GraceSecret, KeySpec, PlanSpec};

/// `load_all_with` reports progress every this many keys.
pub const PROGRESS_EVERY: u64 = 10_000;

impl Store {
    /// How many keys the store holds (for sizing and progress bars).
    pub fn key_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))?)
    }

    /// Every plan (by name) and every key (enabled or not, in storage order), with their
    /// grace secrets, read in one read transaction so the two lists agree.
    pub fn load_all(&mut self) -> Result<(Vec<PlanSpec>, Vec<KeySpec>)> {
        self.load_all_with(&mut |_| {}).map(|(p, k, _)| (p, k))
    }

    /// `load_all`, with the overlay number the lists include (for `record_absorbed`).
    pub fn load_all_at(&mut self) -> Result<(Vec<PlanSpec>, Vec<KeySpec>, u64)> {
        self.load_all_with(&mut |_| {})
    }

    /// `load_all_at`, calling `progress(keys_read_so_far)` every `PROGRESS_EVERY` keys.
    pub fn load_all_with(
        &mut self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(Vec<PlanSpec>, Vec<KeySpec>, u64)> {
        let tx = self.conn.transaction()?;
        // Read in the same transaction as the keys: the lists include exactly the overlay up
        // to this number.
        let overlay: i64 = tx.query_row("SELECT coalesce(max(seq), 0) FROM overlay", [], |r| {
            r.get(0)
        })?;
        let plans = tx
            .prepare(&format!("SELECT {PLAN_COLUMNS} FROM plans ORDER BY name"))?
            .query_map([], plan_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;

        // Grace rows are few (only keys rotated with a grace period): index them by key id.
        let mut grace: HashMap<String, Vec<GraceSecret>> = HashMap::new();
        {
            let mut stmt = tx.prepare("SELECT key_id, digest, grace_until FROM key_grace")?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                grace.entry(r.get(0)?).or_default().push(GraceSecret {
                    digest: codec::read_digest(r.get_ref(1)?, 1)?,
                    grace_until: r.get(2)?,
                });
            }
        }

        let count: u64 = tx.query_row("SELECT count(*) FROM keys", [], |r| r.get(0))?;
        let mut keys = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        {
            let mut stmt = tx.prepare(&format!("SELECT {KEY_COLUMNS} FROM keys"))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let mut k = key_from_row(row)?;
                if !grace.is_empty() {
                    if let Some(g) = grace.remove(&k.id) {
                        k.grace = g;
                    }
                }
                keys.push(k);
                if (keys.len() as u64).is_multiple_of(PROGRESS_EVERY) {
                    progress(keys.len() as u64);
                }
            }
        }
        tx.commit()?;
        progress(keys.len() as u64);
        Ok((plans, keys, u64::try_from(overlay).unwrap_or(0)))
    }

    /// Takes the next snapshot generation (1, 2, ...). Every call returns a larger number.
    pub fn next_generation(&mut self) -> Result<u64> {
        self.next_generation_above(0)
    }

    /// Like `next_generation`, but larger than `floor` too: a snapshot built after the
    /// database was recreated still supersedes the one already on disk.
    pub fn next_generation_above(&mut self, floor: u64) -> Result<u64> {
        let floor = i64::try_from(floor).unwrap_or(i64::MAX - 1);
        let g: i64 = self.conn.query_row(
            "UPDATE meta SET value = max(value + 1, ?1 + 1)
             WHERE name = 'snapshot_generation' RETURNING value",
            params![floor],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(g).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_util::{key, plan};
    use crate::store::Store;

    #[test]
    fn load_all_returns_everything() {
        let mut store = Store::open_in_memory().unwrap();
        store.set_plan(&plan("free")).unwrap();
        store.set_plan(&plan("pro")).unwrap();
        for i in 0..25 {
            let mut k = key(
                &format!("key_{i:03}"),
                "free",
                &format!("kw_live_secret{i:04}"),
            );
            k.scopes = vec!["GET /x".into()];
            store.create_key(&k).unwrap();
        }
        store
            .rotate_key("key_007", [5; 32], "kw_live_abcd".into(), i64::MAX / 2)
            .unwrap();
        let mut seen = Vec::new();
        let (plans, keys, _) = store.load_all_with(&mut |n| seen.push(n)).unwrap();
        assert_eq!(plans.len(), 2);
        assert_eq!(keys.len(), 25);
        assert_eq!(seen.last(), Some(&25));
        let k7 = keys.iter().find(|k| k.id == "key_007").unwrap();
        assert_eq!(k7.grace.len(), 1);
        assert_eq!(keys.iter().filter(|k| !k.grace.is_empty()).count(), 1);
        assert_eq!(keys[3], store.get_key(&keys[3].id).unwrap());
        assert_eq!(store.key_count().unwrap(), 25);
    }

    #[test]
    fn generations_increase() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.next_generation().unwrap(), 1);
        assert_eq!(store.next_generation().unwrap(), 2);
        assert_eq!(store.next_generation_above(10).unwrap(), 11);
        assert_eq!(store.next_generation_above(3).unwrap(), 12);
    }
}
