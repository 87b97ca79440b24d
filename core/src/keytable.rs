//! The key table the data plane serves: a validated snapshot and the policy compiled from it
//! against the configuration, built together off the shards and swapped whole on reload.

use crate::config::Config;
use crate::keys::auth::{self, AuthError, Authenticated};
use crate::keys::model::{KeySpec, PlanSpec};
use crate::keys::snapshot;
use crate::keys::Snapshot;
use crate::policy::PolicyIndex;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// What the data plane serves: the validated key snapshot and its compiled policy (scopes,
/// allowlists, plan upstreams), built together off the shards.
pub struct KeyTable {
    /// Shared by the tables a configuration reload recompiles from it.
    pub snapshot: Arc<Snapshot>,
    pub policy: PolicyIndex,
}

/// Loads and fully validates the snapshot at `path` and compiles its policy against the
/// configuration's upstreams; the refusal reason in one line.
///
/// The data plane serves a private copy (`load_private`), not a mapping of the file: an
/// operator who `cp`s over the live file (instead of renaming) must not be able to change or
/// fault the table being served.
pub fn load(path: &Path, config: &Config) -> Result<KeyTable, String> {
    let snapshot = Snapshot::load_private(path).map_err(|e| e.to_string())?;
    let policy = PolicyIndex::build(&snapshot, |name| config.upstream_index(name))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(KeyTable {
        snapshot: Arc::new(snapshot),
        policy,
    })
}

impl KeyTable {
    /// The same keys with their policy compiled against another configuration (a reload
    /// that changes upstreams while the snapshot file stays or is refused); the reason in
    /// one line when a plan or key names an upstream `config` lacks.
    pub fn recompile(&self, config: &Config) -> Result<KeyTable, String> {
        let policy = PolicyIndex::build(&self.snapshot, |name| config.upstream_index(name))
            .map_err(|e| format!("the key table being served: {e}"))?;
        Ok(KeyTable {
            snapshot: self.snapshot.clone(),
            policy,
        })
    }
}

/// Keys changed in the store after the serving snapshot was built (created, edited,
/// rotated, revoked: the live overlay's records), as a small table of their own with the
/// plans they use. Looked up before the snapshot; a key id it holds is served from it alone,
/// so an edit or rotation replaces the snapshot's record. Built off the shards.
pub struct Delta {
    pub table: KeyTable,
    ids: HashSet<Box<str>, ahash::RandomState>,
    /// The configuration version its policy was compiled against.
    pub config_version: u64,
}

impl Delta {
    /// A delta of `keys` (with every plan they may name) compiled against `config`.
    pub fn build(
        plans: &[PlanSpec],
        keys: &[KeySpec],
        now_unix: i64,
        config: &Config,
        config_version: u64,
    ) -> Result<Delta, String> {
        let bytes = snapshot::build(0, now_unix, plans, keys).map_err(|e| e.to_string())?;
        let snapshot = Snapshot::from_bytes(&bytes).map_err(|e| e.to_string())?;
        let policy = PolicyIndex::build(&snapshot, |name| config.upstream_index(name))
            .map_err(|e| format!("changed keys: {e}"))?;
        Ok(Delta {
            table: KeyTable {
                snapshot: Arc::new(snapshot),
                policy,
            },
            ids: keys.iter().map(|k| Box::from(k.id.as_str())).collect(),
            config_version,
        })
    }

    /// The same keys compiled against another configuration.
    pub fn recompile(&self, config: &Config, config_version: u64) -> Result<Delta, String> {
        Ok(Delta {
            table: self.table.recompile(config)?,
            ids: self.ids.clone(),
            config_version,
        })
    }

    /// Whether the delta holds the current record of `key_id`.
    #[inline]
    pub fn holds(&self, key_id: &str) -> bool {
        self.ids.contains(key_id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Authenticates `presented` against the live delta first (when there is one), then the
/// snapshot; returns the table the key was found in (its policy applies). A secret the
/// snapshot knows for a key the delta holds was replaced since the build (rotated out, or
/// the key edited): the delta's record decides, so such a secret is refused as revoked.
pub fn authenticate<'a>(
    main: &'a KeyTable,
    delta: Option<&'a Delta>,
    presented: &[u8],
    now_unix: i64,
) -> Result<(&'a KeyTable, Authenticated<'a>), AuthError> {
    if let Some(d) = delta {
        match auth::authenticate(&d.table.snapshot, presented, now_unix) {
            Ok(found) => return Ok((&d.table, found)),
            Err(e @ (AuthError::Revoked | AuthError::Expired)) => return Err(e),
            Err(_) => {}
        }
    }
    let found = auth::authenticate(&main.snapshot, presented, now_unix)?;
    if delta.is_some_and(|d| d.holds(found.key.id())) {
        return Err(AuthError::Revoked);
    }
    Ok((main, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::model::GraceSecret;
    use crate::keys::test_keys::{key, secret};
    use std::path::Path;

    fn table(keys: &[KeySpec], config: &Config) -> KeyTable {
        let plans = [PlanSpec {
            name: "free".into(),
            ..PlanSpec::default()
        }];
        let bytes = snapshot::build(1, 0, &plans, keys).unwrap();
        let snapshot = Snapshot::from_bytes(&bytes).unwrap();
        let policy = PolicyIndex::build(&snapshot, |n| config.upstream_index(n)).unwrap();
        KeyTable {
            snapshot: Arc::new(snapshot),
            policy,
        }
    }

    #[test]
    fn the_delta_decides_for_the_keys_it_holds() {
        let config = Config::parse("", "t.toml", Path::new("/tmp")).unwrap();
        let plans = [PlanSpec {
            name: "free".into(),
            ..PlanSpec::default()
        }];
        let (old, new, created, other) = (secret(1), secret(2), secret(3), secret(4));
        let main = table(&[key("key_a", &old), key("key_b", &other)], &config);
        // Since the build: key_a rotated without grace, key_c created.
        let mut rotated = key("key_a", &new);
        rotated.grace = Vec::<GraceSecret>::new();
        let delta =
            Delta::build(&plans, &[rotated, key("key_c", &created)], 0, &config, 0).unwrap();
        let auth = |s: &str| authenticate(&main, Some(&delta), s.as_bytes(), 10);
        let (from, found) = auth(&created).unwrap();
        assert_eq!(found.key.id(), "key_c");
        assert!(std::ptr::eq(from, &delta.table));
        assert_eq!(auth(&new).unwrap().1.key.id(), "key_a");
        assert_eq!(auth(&old).err(), Some(AuthError::Revoked), "rotated out");
        let (from, found) = auth(&other).unwrap();
        assert_eq!(found.key.id(), "key_b");
        assert!(std::ptr::eq(from, &main));
        assert_eq!(auth(&secret(9)).err(), Some(AuthError::Unknown));
        // Without a delta: the snapshot alone.
        assert_eq!(
            authenticate(&main, None, old.as_bytes(), 10)
                .unwrap()
                .1
                .key
                .id(),
            "key_a"
        );
    }
}
