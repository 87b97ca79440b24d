//! Key CRUD: create, get, list, update, revoke, rotate. Keys are found by id; the secret is
//! never an argument, only its digest and hint.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{codec, unix_now, validate, Result, Store, StoreError};
#[cfg(test)]
use crate::keys::model::{Credits, Window};
use crate::keys::model::{GraceSecret, KeySpec};

pub(super) const KEY_COLUMNS: &str = "id, digest, hint, tenant, name, plan, limits, scopes, \
    allow_ips, max_body, metadata, not_before, expires_at, enabled, created_at, rotated_from, legacy, credits, credits_refill";

/// Reads a row selected with `KEY_COLUMNS`; `grace` is left empty.
pub(super) fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeySpec> {
    Ok(KeySpec {
        id: row.get(0)?,
        digest: codec::read_digest(row.get_ref(1)?, 1)?,
        hint: row.get(2)?,
        tenant: row.get(3)?,
        name: row.get(4)?,
        plan: row.get(5)?,
        limits: codec::read_limits(row.get_ref(6)?, 6)?,
        scopes: codec::read_lines(row.get_ref(7)?, 7)?,
        allow_ips: codec::read_lines(row.get_ref(8)?, 8)?,
        max_body_bytes: codec::read_size(row.get(9)?),
        metadata: codec::read_metadata(row.get_ref(10)?, 10)?,
        not_before: row.get(11)?,
        expires_at: row.get(12)?,
        enabled: row.get(13)?,
        created_at: row.get(14)?,
        rotated_from: row.get(15)?,
        grace: Vec::new(),
        legacy: row.get(16)?,
        credits: codec::read_credits(row.get(17)?, row.get_ref(18)?, 17)?,
    })
}

/// The extended SQLite result code of a failed statement, if it was a SQLite failure.
pub(super) fn extended_code(e: &rusqlite::Error) -> Option<i32> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code),
        _ => None,
    }
}

/// Turns a failed key INSERT into the error that says which rule it broke.
pub(super) fn insert_error(conn: &Connection, e: rusqlite::Error, k: &KeySpec) -> StoreError {
    use rusqlite::ffi;
    match extended_code(&e) {
        Some(ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => StoreError::KeyExists(k.id.clone()),
        Some(ffi::SQLITE_CONSTRAINT_UNIQUE) => {
            let owner: Option<String> = conn
                .query_row(
                    "SELECT id FROM keys WHERE digest = ?1",
                    [&k.digest[..]],
                    |r| r.get(0),
                )
                .optional()
                .ok()
                .flatten();
            StoreError::DuplicateSecret(owner.unwrap_or_else(|| "?".into()))
        }
        Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => StoreError::PlanNotFound(k.plan.clone()),
        _ => e.into(),
    }
}

/// Which keys `list_keys` returns.
#[derive(Clone, Debug, Default)]
pub struct KeyFilter {
    pub tenant: Option<String>,
    pub plan: Option<String>,
}

fn grace_of(conn: &Connection, id: &str) -> Result<Vec<GraceSecret>> {
    let mut stmt = conn.prepare_cached(
        "SELECT digest, grace_until FROM key_grace WHERE key_id = ?1 ORDER BY grace_until",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(GraceSecret {
            digest: codec::read_digest(r.get_ref(0)?, 0)?,
            grace_until: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn get_in(conn: &Connection, id: &str) -> Result<KeySpec> {
    let mut key = conn
        .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = ?1"))?
        .query_row([id], key_from_row)
        .optional()?
        .ok_or_else(|| StoreError::KeyNotFound(id.to_owned()))?;
    key.grace = grace_of(conn, id)?;
    Ok(key)
}

impl Store {
    /// Stores a new key. The plan must exist; id and digest must be new.
    pub fn create_key(&self, k: &KeySpec) -> Result<()> {
        validate::key(k)?;
        if !self.plan_exists(&k.plan)? {
            return Err(StoreError::PlanNotFound(k.plan.clone()));
        }
        let (credits, credits_refill) = codec::credits(k.credits);
        // The key and its overlay entry commit together (a running gateway serves it within
        // a second).
        let tx = self.conn.unchecked_transaction()?;
        tx.prepare_cached(
            "INSERT INTO keys (id, digest, hint, tenant, name, plan, limits, scopes,
                    allow_ips, max_body, metadata, not_before, expires_at, enabled, created_at,
                    rotated_from, legacy, updated_at, credits, credits_refill)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                    ?17, ?18, ?19, ?20)",
        )?
        .execute(params![
            k.id,
            &k.digest[..],
            k.hint,
            k.tenant,
            k.name,
            k.plan,
            codec::limits(&k.limits),
            codec::lines(&k.scopes),
            codec::lines(&k.allow_ips),
            codec::size(k.max_body_bytes),
            codec::metadata(&k.metadata),
            k.not_before,
            k.expires_at,
            k.enabled,
            k.created_at,
            k.rotated_from,
            k.legacy,
            unix_now(),
            credits,
            credits_refill,
        ])
        .map_err(|e| insert_error(&tx, e, k))?;
        super::overlay::note_changed(&tx, &k.id)?;
        tx.commit()?;
        Ok(())
    }

    /// One key with its grace secrets.
    pub fn get_key(&self, id: &str) -> Result<KeySpec> {
        get_in(&self.conn, id)
    }

    /// Keys matching the filter, by id, with their grace secrets.
    pub fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeySpec>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {KEY_COLUMNS} FROM keys
             WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR plan = ?2) ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![filter.tenant, filter.plan], key_from_row)?;
        let mut keys: Vec<KeySpec> = rows.collect::<rusqlite::Result<_>>()?;
        let mut grace: HashMap<String, Vec<GraceSecret>> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT key_id, digest, grace_until FROM key_grace ORDER BY grace_until")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            grace.entry(r.get(0)?).or_default().push(GraceSecret {
                digest: codec::read_digest(r.get_ref(1)?, 1)?,
                grace_until: r.get(2)?,
            });
        }
        for k in &mut keys {
            k.grace = grace.remove(&k.id).unwrap_or_default();
        }
        Ok(keys)
    }

    /// One page of the keys matching the filter: at most `limit`, ids after `after`, by id.
    /// Each page is an index range (`keys_tenant`/`keys_plan` are in id order), so paging
    /// through ten million keys costs the same per page as through ten.
    pub fn list_keys_page(
        &self,
        filter: &KeyFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<KeySpec>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {KEY_COLUMNS} FROM keys
             WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR plan = ?2)
               AND (?3 IS NULL OR id > ?3)
             ORDER BY id LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![filter.tenant, filter.plan, after, limit],
            key_from_row,
        )?;
        let mut keys: Vec<KeySpec> = rows.collect::<rusqlite::Result<_>>()?;
        for k in &mut keys {
            k.grace = grace_of(&self.conn, &k.id)?;
        }
        Ok(keys)
    }

    /// The id of the key whose current or grace secret has this digest.
    pub fn key_id_by_digest(&self, digest: &[u8; 32]) -> Result<Option<String>> {
        let found = self
            .conn
            .prepare_cached(
                "SELECT id FROM keys WHERE digest = ?1
                 UNION ALL SELECT key_id FROM key_grace WHERE digest = ?1 LIMIT 1",
            )?
            .query_row([&digest[..]], |r| r.get(0))
            .optional()?;
        Ok(found)
    }

    /// Applies `edit` to the key and stores the result, atomically. The id, digest, hint,
    /// creation time and grace secrets cannot be changed this way.
    pub fn update_key(
        &mut self,
        id: &str,
        edit: impl FnOnce(&mut KeySpec) -> Result<()>,
    ) -> Result<KeySpec> {
        let tx = self.write_tx()?;
        let mut k = get_in(&tx, id)?;
        let was_enabled = k.enabled;
        edit(&mut k)?;
        if was_enabled && !k.enabled {
            super::overlay::note_revoked(&tx, id)?;
        }
        super::overlay::note_changed(&tx, id)?;
        validate::key(&k)?;
        let plan_ok = tx
            .prepare_cached("SELECT 1 FROM plans WHERE name = ?1")?
            .exists([&k.plan])?;
        if !plan_ok {
            return Err(StoreError::PlanNotFound(k.plan));
        }
        let (credits, credits_refill) = codec::credits(k.credits);
        tx.execute(
            "UPDATE keys SET tenant = ?2, name = ?3, plan = ?4, limits = ?5, scopes = ?6,
                allow_ips = ?7, max_body = ?8, metadata = ?9, not_before = ?10,
                expires_at = ?11, enabled = ?12, updated_at = ?13, credits = ?14,
                credits_refill = ?15
             WHERE id = ?1",
            params![
                id,
                k.tenant,
                k.name,
                k.plan,
                codec::limits(&k.limits),
                codec::lines(&k.scopes),
                codec::lines(&k.allow_ips),
                codec::size(k.max_body_bytes),
                codec::metadata(&k.metadata),
                k.not_before,
                k.expires_at,
                k.enabled,
                unix_now(),
                credits,
                credits_refill,
            ],
        )?;
        let stored = get_in(&tx, id)?;
        tx.commit()?;
        Ok(stored)
    }

    /// Disables the key and drops its grace secrets. Idempotent.
    pub fn revoke_key(&mut self, id: &str) -> Result<()> {
        let tx = self.write_tx()?;
        let n = tx.execute(
            "UPDATE keys SET enabled = 0, updated_at = ?2 WHERE id = ?1",
            params![id, unix_now()],
        )?;
        if n == 0 {
            return Err(StoreError::KeyNotFound(id.to_owned()));
        }
        tx.execute("DELETE FROM key_grace WHERE key_id = ?1", [id])?;
        super::overlay::note_revoked(&tx, id)?;
        super::overlay::note_changed(&tx, id)?;
        tx.commit()?;
        Ok(())
    }

    /// Gives the key a new secret (digest + hint), same id. The old secret keeps working until
    /// `grace_until` if that is in the future; otherwise it stops at once. Expired grace
    /// secrets of the key are dropped. A rotated key is no longer `legacy`.
    pub fn rotate_key(
        &mut self,
        id: &str,
        digest: [u8; 32],
        hint: String,
        grace_until: i64,
    ) -> Result<()> {
        let now = unix_now();
        let tx = self.write_tx()?;
        let old = get_in(&tx, id)?;
        if !old.enabled {
            return Err(StoreError::KeyRevoked(id.to_owned()));
        }
        tx.execute(
            "DELETE FROM key_grace WHERE key_id = ?1 AND grace_until <= ?2",
            params![id, now],
        )?;
        if grace_until > now {
            tx.execute(
                "INSERT INTO key_grace (digest, key_id, grace_until) VALUES (?1, ?2, ?3)",
                params![&old.digest[..], id, grace_until],
            )?;
        }
        tx.execute(
            "UPDATE keys SET digest = ?2, hint = ?3, legacy = 0, updated_at = ?4 WHERE id = ?1",
            params![id, &digest[..], hint, now],
        )
        .map_err(|e| {
            let probe = KeySpec {
                id: id.to_owned(),
                digest,
                ..KeySpec::default()
            };
            insert_error(&tx, e, &probe)
        })?;
        super::overlay::note_changed(&tx, id)?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_util::{key, plan};

    fn store() -> Store {
        let store = Store::open_in_memory().unwrap();
        store.set_plan(&plan("free")).unwrap();
        store.set_plan(&plan("pro")).unwrap();
        store
    }

    #[test]
    fn create_get_list() {
        let store = store();
        let mut a = key("key_a", "free", "kw_live_aaaaaaaaaa");
        a.limits = vec!["5/s".parse().unwrap()];
        a.scopes = vec!["GET /v1/**".into()];
        a.allow_ips = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()];
        a.metadata = vec![("team".into(), "blue".into())];
        a.max_body_bytes = Some(1024);
        a.not_before = Some(10);
        a.expires_at = Some(20);
        a.name = "ci bot".into();
        store.create_key(&a).unwrap();
        let mut b = key("key_b", "pro", "kw_live_bbbbbbbbbb");
        b.tenant = "globex".into();
        store.create_key(&b).unwrap();

        assert_eq!(store.get_key("key_a").unwrap(), a);
        assert!(matches!(
            store.get_key("nope"),
            Err(StoreError::KeyNotFound(_))
        ));

        let all = store.list_keys(&KeyFilter::default()).unwrap();
        assert_eq!(all, vec![a.clone(), b.clone()]);
        let f = KeyFilter {
            tenant: Some("globex".into()),
            plan: None,
        };
        assert_eq!(store.list_keys(&f).unwrap(), vec![b.clone()]);
        let f = KeyFilter {
            tenant: None,
            plan: Some("free".into()),
        };
        assert_eq!(store.list_keys(&f).unwrap(), vec![a.clone()]);
    }

    #[test]
    fn create_refuses_duplicates_and_unknown_plans() {
        let store = store();
        store
            .create_key(&key("key_a", "free", "kw_live_aaaaaaaaaa"))
            .unwrap();
        let e = store
            .create_key(&key("key_a", "free", "kw_live_other_one"))
            .unwrap_err();
        assert!(
            matches!(e, StoreError::KeyExists(ref id) if id == "key_a"),
            "{e}"
        );
        let e = store
            .create_key(&key("key_b", "free", "kw_live_aaaaaaaaaa"))
            .unwrap_err();
        assert!(
            matches!(e, StoreError::DuplicateSecret(ref id) if id == "key_a"),
            "{e}"
        );
        let e = store
            .create_key(&key("key_c", "gold", "kw_live_cccccccccc"))
            .unwrap_err();
        assert!(matches!(e, StoreError::PlanNotFound(_)), "{e}");
    }

    #[test]
    fn update_changes_fields_atomically() {
        let mut store = store();
        let a = key("key_a", "free", "kw_live_aaaaaaaaaa");
        store.create_key(&a).unwrap();
        let got = store
            .update_key("key_a", |k| {
                k.plan = "pro".into();
                k.scopes = vec!["* /v2/**".into()];
                Ok(())
            })
            .unwrap();
        assert_eq!(got.plan, "pro");
        assert_eq!(store.get_key("key_a").unwrap(), got);
        // A bad edit leaves the key as it was.
        let e = store.update_key("key_a", |k| {
            k.plan = "gold".into();
            Ok(())
        });
        assert!(matches!(e, Err(StoreError::PlanNotFound(_))));
        let e = store.update_key("key_a", |k| {
            k.metadata = vec![("Bad Name".into(), "v".into())];
            Ok(())
        });
        assert!(matches!(e, Err(StoreError::Invalid(_))));
        assert_eq!(store.get_key("key_a").unwrap(), got);
    }

    #[test]
    fn credits_round_trip() {
        let mut store = store();
        let mut a = key("key_a", "free", "kw_live_aaaaaaaaaa");
        a.credits = Some(Credits {
            total: 1000,
            refill: Some(Window::Day),
        });
        store.create_key(&a).unwrap();
        let b = key("key_b", "free", "kw_live_bbbbbbbbbb");
        store.create_key(&b).unwrap();
        assert_eq!(store.get_key("key_a").unwrap(), a);
        assert_eq!(store.get_key("key_b").unwrap().credits, None);
        assert_eq!(
            store.list_keys(&KeyFilter::default()).unwrap(),
            vec![a.clone(), b.clone()]
        );

        // Update: set, change, remove.
        let once = Credits {
            total: u64::try_from(i64::MAX).unwrap(),
            refill: None,
        };
        let got = store
            .update_key("key_b", |k| {
                k.credits = Some(once);
                Ok(())
            })
            .unwrap();
        assert_eq!(got.credits, Some(once));
        let got = store
            .update_key("key_a", |k| {
                k.credits = None;
                Ok(())
            })
            .unwrap();
        assert_eq!(got.credits, None);
        assert_eq!(store.get_key("key_a").unwrap().credits, None);
        // The snapshot loader reads them too.
        let (_, keys) = store.load_all().unwrap();
        let b_loaded = keys.iter().find(|k| k.id == "key_b").unwrap();
        assert_eq!(b_loaded.credits, Some(once));

        // Refused: windows other than day and month, totals beyond SQLite's range.
        for bad in [
            Credits {
                total: 5,
                refill: Some(Window::Hour),
            },
            Credits {
                total: u64::MAX,
                refill: None,
            },
        ] {
            let e = store.update_key("key_b", |k| {
                k.credits = Some(bad);
                Ok(())
            });
            assert!(matches!(e, Err(StoreError::Invalid(_))), "{bad:?}");
        }
        assert_eq!(store.get_key("key_b").unwrap().credits, Some(once));
    }

    #[test]
    fn revoke_and_reenable() {
        let mut store = store();
        store
            .create_key(&key("key_a", "free", "kw_live_aaaaaaaaaa"))
            .unwrap();
        store.revoke_key("key_a").unwrap();
        assert!(!store.get_key("key_a").unwrap().enabled);
        let e = store.rotate_key("key_a", [1; 32], "kw_live_Xx1x".into(), 0);
        assert!(matches!(e, Err(StoreError::KeyRevoked(_))));
        store
            .update_key("key_a", |k| {
                k.enabled = true;
                Ok(())
            })
            .unwrap();
        assert!(store.get_key("key_a").unwrap().enabled);
        assert!(matches!(
            store.revoke_key("nope"),
            Err(StoreError::KeyNotFound(_))
        ));
    }

    #[test]
    fn rotate_keeps_the_old_digest_in_grace() {
        let mut store = store();
        let a = key("key_a", "free", "kw_live_aaaaaaaaaa");
        store.create_key(&a).unwrap();
        let until = unix_now() + 3600;
        let new = crate::keys::format::digest(b"kw_live_newnewnew");
        store
            .rotate_key("key_a", new, "kw_live_newn".into(), until)
            .unwrap();
        let got = store.get_key("key_a").unwrap();
        assert_eq!(got.digest, new);
        assert_eq!(got.hint, "kw_live_newn");
        assert_eq!(
            got.grace,
            vec![GraceSecret {
                digest: a.digest,
                grace_until: until
            }]
        );
        let rows: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM key_grace WHERE key_id = 'key_a'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 1);

        // Grace 0: the previous secret stops at once; the earlier grace row stays until its end.
        store
            .rotate_key("key_a", [9; 32], "kw_live_nine".into(), 0)
            .unwrap();
        let got = store.get_key("key_a").unwrap();
        assert_eq!(got.grace.len(), 1);
        assert_eq!(got.grace[0].digest, a.digest);

        // Revoking drops the grace secrets too.
        store.revoke_key("key_a").unwrap();
        assert!(store.get_key("key_a").unwrap().grace.is_empty());
    }
}
