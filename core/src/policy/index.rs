//! Per-snapshot cache of compiled policies: every plan's scopes and allowlist compiled at
//! load, keys with their own lists compiled at load too (identical lists shared), and a
//! key -> entry table so `for_key` is two array reads.

use std::collections::HashMap;
use std::fmt;

use super::decision::KeyPolicy;
use super::ip::IpAllowlist;
use super::scope::ScopeSet;
use crate::keys::{KeyView, Snapshot};

/// `key_entry` value for a key that uses its plan's lists.
const PLAN: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct PlanEntry {
    scopes: u32,
    allow: u32,
    max_body: Option<u64>,
    upstream: Option<usize>,
}

/// Compiled policy of every key and plan of one snapshot. Use it only with views of the
/// snapshot it was built from (keys are found by their position in it).
#[derive(Debug)]
pub struct PolicyIndex {
    scope_sets: Vec<ScopeSet>,
    allow_sets: Vec<IpAllowlist>,
    plans: Vec<PlanEntry>,
    /// `(scopes, allow)` indices of distinct key overrides.
    overrides: Vec<(u32, u32)>,
    /// Per key position: an index into `overrides`, or `PLAN`. Empty when no key has own
    /// lists (4 bytes a key otherwise).
    key_entry: Vec<u32>,
    deny: ScopeSet,
    any: IpAllowlist,
}

/// Why a snapshot's policy does not compile: one line naming the plan or key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

/// Interns compiled lists by content, so N keys with the same scopes share one `ScopeSet`.
struct Interner<'s, T> {
    items: Vec<T>,
    seen: HashMap<Vec<&'s str>, u32, ahash::RandomState>,
}

impl<'s, T> Interner<'s, T> {
    fn new() -> Self {
        Interner {
            items: Vec::new(),
            seen: HashMap::default(),
        }
    }

    fn get<E: fmt::Display>(
        &mut self,
        list: impl Iterator<Item = &'s str>,
        compile: impl FnOnce(&[&'s str]) -> Result<T, E>,
        whose: impl FnOnce() -> String,
    ) -> Result<u32, PolicyError> {
        let list: Vec<&'s str> = list.collect();
        if let Some(&i) = self.seen.get(&list) {
            return Ok(i);
        }
        let item = compile(&list).map_err(|e| PolicyError(format!("{}: {e}", whose())))?;
        let i = u32::try_from(self.items.len())
            .map_err(|_| PolicyError("too many distinct scope or allowlist sets".into()))?;
        self.items.push(item);
        self.seen.insert(list, i);
        Ok(i)
    }
}

impl PolicyIndex {
    /// Compiles the snapshot's plans and keys. `upstream_index` maps an upstream name (a
    /// plan's default upstream) to its index in the configuration; an unknown name is an error.
    pub fn build(
        snapshot: &Snapshot,
        upstream_index: impl Fn(&str) -> Option<usize>,
    ) -> Result<PolicyIndex, PolicyError> {
        let mut scopes: Interner<'_, ScopeSet> = Interner::new();
        let mut allows: Interner<'_, IpAllowlist> = Interner::new();
        let mut plans = Vec::with_capacity(snapshot.plan_count() as usize);
        for p in snapshot.plans() {
            let name = p.name();
            let whose = || format!("plan {name:?}");
            let s = scopes.get(p.scopes(), |l| ScopeSet::compile(l.iter().copied()), whose)?;
            let a = allows.get(
                p.allow_ips(),
                |l| IpAllowlist::compile(l.iter().copied()),
                whose,
            )?;
            let upstream = match p.upstream() {
                None => None,
                Some(u) => Some(upstream_index(u).ok_or_else(|| {
                    PolicyError(format!(
                        "plan {name:?} names upstream {u:?}, which is not in [upstreams]; add it to the config or change the plan"
                    ))
                })?),
            };
            plans.push(PlanEntry {
                scopes: s,
                allow: a,
                max_body: p.max_body_bytes(),
                upstream,
            });
        }
        let mut overrides: Vec<(u32, u32)> = Vec::new();
        let mut seen: HashMap<(u32, u32), u32, ahash::RandomState> = HashMap::default();
        let mut key_entry: Vec<u32> = Vec::new();
        for (at, k) in snapshot.keys().enumerate() {
            let (own_s, own_a) = (k.scopes().len() > 0, k.allow_ips().len() > 0);
            if !own_s && !own_a {
                continue;
            }
            let plan = plans.get(k.plan_index());
            let whose = || format!("key {}", k.id());
            let s = match (own_s, plan) {
                (true, _) => {
                    scopes.get(k.scopes(), |l| ScopeSet::compile(l.iter().copied()), whose)?
                }
                (false, Some(p)) => p.scopes,
                (false, None) => scopes.get(
                    [].into_iter(),
                    |_| Ok::<_, String>(ScopeSet::empty()),
                    whose,
                )?,
            };
            let a = match (own_a, plan) {
                (true, _) => allows.get(
                    k.allow_ips(),
                    |l| IpAllowlist::compile(l.iter().copied()),
                    whose,
                )?,
                (false, Some(p)) => p.allow,
                (false, None) => allows.get(
                    [].into_iter(),
                    |_| Ok::<_, String>(IpAllowlist::any()),
                    whose,
                )?,
            };
            let next = overrides.len() as u32;
            let i = *seen.entry((s, a)).or_insert(next);
            if i == next {
                overrides.push((s, a));
            }
            if key_entry.is_empty() {
                key_entry = vec![PLAN; snapshot.key_count() as usize];
            }
            if let Some(slot) = key_entry.get_mut(at) {
                *slot = i;
            }
        }
        Ok(PolicyIndex {
            scope_sets: scopes.items,
            allow_sets: allows.items,
            plans,
            overrides,
            key_entry,
            deny: ScopeSet::empty(),
            any: IpAllowlist::any(),
        })
    }

    /// The compiled policy of `key` (a view of the snapshot this index was built from). Two
    /// array reads; no allocation. A key whose plan is missing (ruled out by `load`) gets no
    /// scopes, so it is denied.
    pub fn for_key<'a>(&'a self, key: KeyView<'a>) -> KeyPolicy<'a> {
        let plan = self.plans.get(key.plan_index());
        // (MAX, MAX) resolves to "no scopes, any address": denied. Only a view from another
        // snapshot could miss the table.
        const DENY: (u32, u32) = (u32::MAX, u32::MAX);
        let (s, a) = match (self.key_entry.get(key.index()), plan) {
            (Some(&PLAN), Some(p)) => (p.scopes, p.allow),
            (Some(&i), _) if i != PLAN => self.overrides.get(i as usize).copied().unwrap_or(DENY),
            (None, Some(p)) if self.key_entry.is_empty() => (p.scopes, p.allow),
            _ => DENY,
        };
        let plan_max = plan.and_then(|p| p.max_body);
        let max_body = match (key.max_body_bytes(), plan_max) {
            (Some(k), Some(p)) => Some(k.min(p)),
            (k, p) => k.or(p),
        };
        KeyPolicy {
            scopes: self.scope_sets.get(s as usize).unwrap_or(&self.deny),
            allow: self.allow_sets.get(a as usize).unwrap_or(&self.any),
            max_body,
            tenant: key.tenant(),
            plan: key.plan().name(),
            plan_upstream: plan.and_then(|p| p.upstream),
        }
    }

    /// Distinct compiled scope sets and allowlists, and keys with own lists (for logs).
    pub fn stats(&self) -> (usize, usize, usize) {
        let own = self.key_entry.iter().filter(|&&i| i != PLAN).count();
        (self.scope_sets.len(), self.allow_sets.len(), own)
    }
}
