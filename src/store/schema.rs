//! Schema migrations: an ordered list of SQL scripts; `PRAGMA user_version` is how many ran.

use rusqlite::Connection;

use super::{Result, StoreError};

/// Migration `i` takes the schema from version `i` to `i + 1`. Append only; never edit one
/// that has shipped.
pub(super) const MIGRATIONS: &[&str] = &[
    // v1: plans, keys, the snapshot generation counter.
    "CREATE TABLE plans (
        name      TEXT PRIMARY KEY,
        limits    TEXT,
        scopes    TEXT,
        max_body  INTEGER,
        allow_ips TEXT,
        upstream  TEXT,
        priority  INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE keys (
        id           TEXT PRIMARY KEY,
        digest       BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),
        hint         TEXT NOT NULL,
        tenant       TEXT NOT NULL,
        name         TEXT NOT NULL DEFAULT '',
        plan         TEXT NOT NULL REFERENCES plans(name) ON UPDATE CASCADE ON DELETE RESTRICT,
        limits       TEXT,
        scopes       TEXT,
        allow_ips    TEXT,
        max_body     INTEGER,
        metadata     TEXT,
        not_before   INTEGER,
        expires_at   INTEGER,
        enabled      INTEGER NOT NULL DEFAULT 1,
        created_at   INTEGER NOT NULL,
        rotated_from TEXT,
        updated_at   INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX keys_tenant ON keys(tenant);
    CREATE INDEX keys_plan ON keys(plan);
    CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) STRICT;
    INSERT INTO meta (name, value) VALUES ('snapshot_generation', 0);",
    // v2: rotation grace periods and imported (legacy-format) keys.
    "CREATE TABLE key_grace (
        digest      BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),
        key_id      TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
        grace_until INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX key_grace_key ON key_grace(key_id);
    ALTER TABLE keys ADD COLUMN legacy INTEGER NOT NULL DEFAULT 0;",
    // v3: per-key credits (quota): the total, and the refill period ('day', 'month' or NULL
    // for never). NULL credits = none; a refill only with credits.
    "ALTER TABLE keys ADD COLUMN credits INTEGER CHECK (credits >= 0);
    ALTER TABLE keys ADD COLUMN credits_refill TEXT
        CHECK (credits_refill IS NULL
            OR (credits_refill IN ('day', 'month') AND credits IS NOT NULL));",
    // v4: the live overlay: revocations and other key changes numbered as they happen, and
    // the number each snapshot build absorbed (keys::overlay).
    "CREATE TABLE overlay (
        seq    INTEGER PRIMARY KEY AUTOINCREMENT,
        key_id TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('revoke', 'change')),
        at     INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE snapshot_overlay (
        generation  INTEGER PRIMARY KEY,
        overlay_seq INTEGER NOT NULL
    ) STRICT;",
    // v5: the admin API pages through a tenant's or a plan's keys by id: an index that is
    // already in that order (no sort of a tenant's million keys per page).
    "DROP INDEX keys_tenant;
    CREATE INDEX keys_tenant ON keys(tenant, id);
    DROP INDEX keys_plan;
    CREATE INDEX keys_plan ON keys(plan, id);",
];

/// The newest schema version this build knows.
pub(super) fn latest() -> u32 {
    MIGRATIONS.len() as u32
}

/// Runs every migration the database has not had yet, each in its own transaction. The
/// version is read under the write lock, so two processes opening a new database at once
/// do not both run the same step.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found: u32 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > latest() {
            return Err(StoreError::SchemaTooNew {
                found,
                known: latest(),
            });
        }
        let Some(sql) = MIGRATIONS.get(found as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn fresh_db_is_at_latest_version() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.schema_version().unwrap(), latest());
    }

    #[test]
    fn v1_db_migrates_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO plans (name, limits, priority) VALUES ('free', '5/s', 0);
                 INSERT INTO keys (id, digest, hint, tenant, plan, created_at, updated_at)
                 VALUES ('key_old', zeroblob(32), 'kw_live_Ab3x', 'acme', 'free', 1, 1);",
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest());
        let key = store.get_key("key_old").unwrap();
        assert!(!key.legacy);
        assert!(key.grace.is_empty());
        assert_eq!(key.digest, [0u8; 32]);
        // The v2 table works.
        store
            .rotate_key("key_old", [7; 32], "kw_live_Zz9z".into(), 3_000_000_000)
            .unwrap();
        assert_eq!(store.get_key("key_old").unwrap().grace.len(), 1);
        // Opening again is a no-op.
        drop(store);
        assert_eq!(
            Store::open(&path).unwrap().schema_version().unwrap(),
            latest()
        );
    }

    #[test]
    fn v2_db_migrates_to_credits() {
        use crate::keys::model::{Credits, Window};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(MIGRATIONS[1]).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute_batch(
                "INSERT INTO plans (name, limits, priority) VALUES ('free', '5/s', 0);
                 INSERT INTO keys (id, digest, hint, tenant, plan, created_at, updated_at, legacy)
                 VALUES ('key_v2', zeroblob(32), 'kw_live_Ab3x', 'acme', 'free', 1, 1, 1);",
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest());
        let key = store.get_key("key_v2").unwrap();
        assert_eq!(key.credits, None);
        assert!(key.legacy);
        // The v3 columns work.
        let monthly = Credits {
            total: 1000,
            refill: Some(Window::Month),
        };
        store
            .update_key("key_v2", |k| {
                k.credits = Some(monthly);
                Ok(())
            })
            .unwrap();
        assert_eq!(store.get_key("key_v2").unwrap().credits, Some(monthly));
        // The columns refuse a refill without credits and unknown refill periods.
        for bad in [
            "UPDATE keys SET credits = NULL, credits_refill = 'day'",
            "UPDATE keys SET credits = 5, credits_refill = 'hour'",
            "UPDATE keys SET credits = -1, credits_refill = NULL",
        ] {
            assert!(store.conn.execute(bad, []).is_err(), "{bad}");
        }
        drop(store);
        assert_eq!(
            Store::open(&path).unwrap().schema_version().unwrap(),
            latest()
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Store::open(&path).err().unwrap();
        assert!(err.to_string().contains("upgrade keyway"), "{err}");
    }
}
