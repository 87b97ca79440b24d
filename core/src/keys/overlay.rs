//! The live overlay on top of a key snapshot: keys revoked (or disabled) in the store after
//! the snapshot being served was built. The store numbers each such change; a snapshot build
//! records the number it absorbed, and the gateway applies what came after, so a revocation
//! takes effect within a second without a rebuild and survives a restart. Pure: the runtime
//! reads the store and hands the ids in.

use std::collections::HashSet;

/// What a shard applies: the ids revoked after the absorbed point, either all of them
/// (`reset`, when the serving snapshot changed) or the ones new since the last update.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OverlayUpdate {
    pub reset: bool,
    pub revoked: Vec<Box<str>>,
}

/// Key ids refused whatever the snapshot says.
#[derive(Debug, Default)]
pub struct Revoked {
    ids: HashSet<Box<str>, ahash::RandomState>,
}

impl Revoked {
    pub fn apply(&mut self, update: &OverlayUpdate) {
        if update.reset {
            self.ids.clear();
        }
        self.ids.extend(update.revoked.iter().cloned());
    }

    /// Whether `key_id` was revoked after the snapshot was built. Nothing revoked (the usual
    /// case): no hashing at all.
    #[inline]
    pub fn contains(&self, key_id: &str) -> bool {
        !self.ids.is_empty() && self.ids.contains(key_id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(reset: bool, ids: &[&str]) -> OverlayUpdate {
        OverlayUpdate {
            reset,
            revoked: ids.iter().map(|s| Box::from(*s)).collect(),
        }
    }

    #[test]
    fn updates_add_and_a_reset_replaces() {
        let mut r = Revoked::default();
        assert!(!r.contains("key_a"));
        r.apply(&update(false, &["key_a"]));
        r.apply(&update(false, &["key_b", "key_a"]));
        assert!(r.contains("key_a") && r.contains("key_b") && !r.contains("key_c"));
        assert_eq!(r.len(), 2);
        // A new snapshot absorbed key_a's revocation (or it was re-enabled before it).
        r.apply(&update(true, &["key_b"]));
        assert!(!r.contains("key_a") && r.contains("key_b"));
        r.apply(&update(true, &[]));
        assert!(r.is_empty());
    }
}
