//! Plan CRUD. A plan in use by any key (revoked ones included) cannot be deleted.

use rusqlite::{params, OptionalExtension, Row};

use super::{codec, validate, Result, Store, StoreError};
use crate::keys::model::PlanSpec;

pub(super) const PLAN_COLUMNS: &str =
    "name, limits, scopes, max_body, allow_ips, upstream, priority";

pub(super) fn plan_from_row(row: &Row<'_>) -> rusqlite::Result<PlanSpec> {
    Ok(PlanSpec {
        name: row.get(0)?,
        limits: codec::read_limits(row.get_ref(1)?, 1)?,
        scopes: codec::read_lines(row.get_ref(2)?, 2)?,
        max_body_bytes: codec::read_size(row.get(3)?),
        allow_ips: codec::read_lines(row.get_ref(4)?, 4)?,
        upstream: row.get(5)?,
        priority: row.get(6)?,
    })
}

impl Store {
    /// Creates the plan, or replaces every field of the existing one. Returns true if created.
    pub fn set_plan(&self, plan: &PlanSpec) -> Result<bool> {
        validate::plan(plan)?;
        let existed = self.plan_exists(&plan.name)?;
        self.conn.execute(
            "INSERT INTO plans (name, limits, scopes, max_body, allow_ips, upstream, priority)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(name) DO UPDATE SET limits = excluded.limits,
                scopes = excluded.scopes, max_body = excluded.max_body,
                allow_ips = excluded.allow_ips, upstream = excluded.upstream,
                priority = excluded.priority",
            params![
                plan.name,
                codec::limits(&plan.limits),
                codec::lines(&plan.scopes),
                codec::size(plan.max_body_bytes),
                codec::lines(&plan.allow_ips),
                plan.upstream,
                plan.priority,
            ],
        )?;
        Ok(!existed)
    }

    pub fn plan_exists(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM plans WHERE name = ?1")?
            .exists([name])?)
    }

    pub fn get_plan(&self, name: &str) -> Result<PlanSpec> {
        self.conn
            .prepare_cached(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE name = ?1"))?
            .query_row([name], plan_from_row)
            .optional()?
            .ok_or_else(|| StoreError::PlanNotFound(name.to_owned()))
    }

    /// All plans, by name.
    pub fn list_plans(&self) -> Result<Vec<PlanSpec>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {PLAN_COLUMNS} FROM plans ORDER BY name"))?;
        let plans = stmt.query_map([], plan_from_row)?;
        Ok(plans.collect::<rusqlite::Result<_>>()?)
    }

    /// How many keys (enabled or not) are on the plan.
    pub fn keys_on_plan(&self, name: &str) -> Result<u64> {
        Ok(self
            .conn
            .prepare_cached("SELECT count(*) FROM keys WHERE plan = ?1")?
            .query_row([name], |r| r.get(0))?)
    }

    /// Deletes the plan; refused while any key uses it.
    pub fn delete_plan(&mut self, name: &str) -> Result<()> {
        let tx = self.write_tx()?;
        let keys: u64 = tx.query_row("SELECT count(*) FROM keys WHERE plan = ?1", [name], |r| {
            r.get(0)
        })?;
        if keys > 0 {
            return Err(StoreError::PlanInUse {
                name: name.to_owned(),
                keys,
            });
        }
        if tx.execute("DELETE FROM plans WHERE name = ?1", [name])? == 0 {
            return Err(StoreError::PlanNotFound(name.to_owned()));
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_util::{key, plan};
    use crate::store::{Store, StoreError};

    #[test]
    fn plan_crud() {
        let mut store = Store::open_in_memory().unwrap();
        let mut free = plan("free");
        assert!(store.set_plan(&free).unwrap());
        assert_eq!(store.get_plan("free").unwrap(), free);

        free.limits.push("1000/day".parse().unwrap());
        free.max_body_bytes = Some(1 << 20);
        free.allow_ips = vec!["10.0.0.0/8".into()];
        free.upstream = Some("llm".into());
        free.priority = 3;
        assert!(!store.set_plan(&free).unwrap(), "replace, not create");
        assert_eq!(store.get_plan("free").unwrap(), free);

        store.set_plan(&plan("pro")).unwrap();
        let names: Vec<_> = store
            .list_plans()
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["free", "pro"]);

        store.delete_plan("pro").unwrap();
        assert!(matches!(
            store.get_plan("pro"),
            Err(StoreError::PlanNotFound(_))
        ));
        assert!(matches!(
            store.delete_plan("pro"),
            Err(StoreError::PlanNotFound(_))
        ));
    }

    #[test]
    fn bad_plans_are_refused() {
        let store = Store::open_in_memory().unwrap();
        let mut p = plan("free");
        p.scopes = vec!["get /x".into()];
        assert!(store.set_plan(&p).is_err());
        let mut p = plan("no spaces allowed");
        p.scopes.clear();
        assert!(store.set_plan(&p).is_err());
    }

    #[test]
    fn delete_refused_while_keys_use_it() {
        let mut store = Store::open_in_memory().unwrap();
        store.set_plan(&plan("free")).unwrap();
        store
            .create_key(&key("key_a", "free", "kw_live_aaaaaaaaaa"))
            .unwrap();
        store
            .create_key(&key("key_b", "free", "kw_live_bbbbbbbbbb"))
            .unwrap();
        store.revoke_key("key_b").unwrap();
        let err = store.delete_plan("free").unwrap_err();
        assert!(
            matches!(err, StoreError::PlanInUse { keys: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("2 key(s)"), "{err}");
        assert_eq!(store.keys_on_plan("free").unwrap(), 2);
        assert!(store.plan_exists("free").unwrap());
    }
}
