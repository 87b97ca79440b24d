//! Reading a loaded snapshot: the digest lookup (ordered linear probing: one cache line in
//! the common case, no allocation) and the borrowed, `Copy` views of keys and plans.
//!
//! Accessors re-check each index with `get` (a compare, no panic); after `load`'s checks the
//! fallbacks (empty string, empty list) are unreachable.

use std::cmp::Ordering;
use std::fmt;

use rkyv::vec::ArchivedVec;

use super::load::Snapshot;
use super::schema::{
    home, refill_from_flags, window_from_code, ArchivedExtras, ArchivedKeyRecord,
    ArchivedLimitRecord, ArchivedPlanRecord, ArchivedSnapshotData, ArchivedSpan, ArchivedStrRef,
    EMPTY, GRACE_BIT, HEAD_LEN, KEY_ENABLED, KEY_HAS_CREDITS, KEY_HAS_EXPIRES_AT, KEY_HAS_MAX_BODY,
    KEY_HAS_NOT_BEFORE, KEY_ID_IN_ARENA, KEY_ID_LEN_MASK, KEY_ID_LEN_SHIFT, KEY_LEGACY, NO_EXTRAS,
    PLAN_HAS_MAX_BODY, PLAN_HAS_UPSTREAM,
};
use crate::keys::model::{Credits, LimitSpec, Window};

impl Snapshot {
    pub fn generation(&self) -> u64 {
        self.header.generation
    }

    pub fn created_at(&self) -> i64 {
        self.header.created_at
    }

    pub fn key_count(&self) -> u64 {
        self.header.key_count
    }

    pub fn plan_count(&self) -> u64 {
        self.header.plan_count
    }

    /// Number of rotated-out secrets still in their grace period (as of the build).
    pub fn grace_count(&self) -> u64 {
        self.data().grace.len() as u64
    }

    /// True when some key is legacy (not of our format): then keys that do not look like ours
    /// skip the format check and go to the lookup.
    pub fn has_legacy_keys(&self) -> bool {
        self.data().legacy_keys.to_native() > 0
    }

    /// The key whose secret has this SHA-256 digest, if any. A grace secret's view carries its
    /// `grace_until`. Compares the digest's first 224 bits (SHA-256 truncated, as in NIST
    /// SP 800-107; `build` refuses two digests equal there): forging a match for any of n
    /// stored keys costs about 2^224 / n hashes. No allocation; touches the key record only
    /// when the view's accessors are called.
    pub fn lookup(&self, digest: &[u8; 32]) -> Option<KeyView<'_>> {
        let data = self.data();
        let slots = data.slots.as_slice();
        let want = &digest[..HEAD_LEN];
        let want_top = top64(want);
        let mut i = home(want, data.home_slots.to_native()) as usize;
        loop {
            let slot = slots.get(i)?;
            let entry = slot.entry.to_native();
            if entry == EMPTY {
                return None;
            }
            // The first 8 bytes decide almost every comparison; memcmp the rest only on a tie.
            let order = top64(&slot.head)
                .cmp(&want_top)
                .then_with(|| slot.head[8..].cmp(&want[8..]));
            match order {
                Ordering::Less => i += 1,
                Ordering::Greater => return None,
                Ordering::Equal => return KeyView::of_entry(data, entry),
            }
        }
    }

    /// Every key, in build order (grace secrets not repeated; see `grace_secrets`).
    pub fn keys(&self) -> impl ExactSizeIterator<Item = KeyView<'_>> + '_ {
        let data = self.data();
        data.keys.iter().map(move |rec| KeyView {
            data,
            rec,
            grace_until: None,
        })
    }

    /// Every grace secret, as its key's view with `grace_until` set.
    pub fn grace_secrets(&self) -> impl Iterator<Item = KeyView<'_>> + '_ {
        let data = self.data();
        data.grace.iter().filter_map(move |g| {
            let rec = data.keys.get(g.key.to_native() as usize)?;
            Some(KeyView {
                data,
                rec,
                grace_until: Some(g.grace_until.to_native()),
            })
        })
    }

    pub fn plans(&self) -> impl ExactSizeIterator<Item = PlanView<'_>> + '_ {
        let data = self.data();
        data.plans.iter().map(move |rec| PlanView {
            data,
            rec: Some(rec),
        })
    }

    /// The plan called `name` (a linear scan: plans are few).
    pub fn plan(&self, name: &str) -> Option<PlanView<'_>> {
        self.plans().find(|p| p.name() == name)
    }
}

fn top64(head: &[u8]) -> u64 {
    let mut top = [0u8; 8];
    top.copy_from_slice(&head[..8]);
    u64::from_be_bytes(top)
}

fn text<'a>(data: &'a ArchivedSnapshotData, r: &ArchivedStrRef) -> &'a str {
    let off = r.off.to_native() as usize;
    data.arena
        .as_str()
        .get(off..off.saturating_add(r.len.to_native() as usize))
        .unwrap_or("")
}

fn run<'a, T>(v: &'a ArchivedVec<T>, span: Option<&ArchivedSpan>) -> &'a [T] {
    let Some(span) = span else { return &[] };
    let start = span.start.to_native() as usize;
    v.as_slice()
        .get(start..start.saturating_add(span.len.to_native() as usize))
        .unwrap_or(&[])
}

fn texts<'a>(
    data: &'a ArchivedSnapshotData,
    span: Option<&ArchivedSpan>,
) -> impl ExactSizeIterator<Item = &'a str> + Clone + 'a {
    run(&data.strs, span).iter().map(move |r| text(data, r))
}

fn limits<'a>(
    data: &'a ArchivedSnapshotData,
    span: Option<&ArchivedSpan>,
) -> impl ExactSizeIterator<Item = LimitSpec> + Clone + 'a {
    run(&data.limits, span)
        .iter()
        .map(|l: &ArchivedLimitRecord| LimitSpec {
            count: l.count.to_native(),
            window: window_from_code(l.window).unwrap_or(Window::Second),
        })
}

/// One key as the snapshot holds it, borrowed from the snapshot. `Copy`; all accessors are
/// allocation-free.
#[derive(Clone, Copy)]
pub struct KeyView<'a> {
    data: &'a ArchivedSnapshotData,
    rec: &'a ArchivedKeyRecord,
    grace_until: Option<i64>,
}

impl<'a> KeyView<'a> {
    fn of_entry(data: &'a ArchivedSnapshotData, entry: u32) -> Option<KeyView<'a>> {
        let (key, grace_until) = if entry & GRACE_BIT != 0 {
            let g = data.grace.get((entry & !GRACE_BIT) as usize)?;
            (g.key.to_native(), Some(g.grace_until.to_native()))
        } else {
            (entry, None)
        };
        let rec = data.keys.get(key as usize)?;
        Some(KeyView {
            data,
            rec,
            grace_until,
        })
    }

    fn flag(&self, bit: u32) -> bool {
        self.rec.flags.to_native() & bit != 0
    }

    /// This key's position in the snapshot's key table (`0..key_count`), the same for a grace
    /// secret as for the key's own secret. For per-snapshot side tables (compiled policy).
    pub fn index(&self) -> usize {
        let base = self.data.keys.as_slice().as_ptr() as usize;
        (self.rec as *const ArchivedKeyRecord as usize).wrapping_sub(base)
            / std::mem::size_of::<ArchivedKeyRecord>()
    }

    /// The key's plan's position in the snapshot's plan table (`0..plan_count`).
    pub fn plan_index(&self) -> usize {
        self.rec.plan.to_native() as usize
    }

    fn extras(&self) -> Option<&'a ArchivedExtras> {
        match self.rec.extras.to_native() {
            NO_EXTRAS => None,
            i => self.data.extras.get(i as usize),
        }
    }

    /// Public id (`key_...`): safe to log and to send upstream.
    pub fn id(&self) -> &'a str {
        let flags = self.rec.flags.to_native();
        let id = &self.rec.id;
        if flags & KEY_ID_IN_ARENA != 0 {
            let word = |at: usize| u32::from_le_bytes([id[at], id[at + 1], id[at + 2], id[at + 3]]);
            let off = word(0) as usize;
            return self
                .data
                .arena
                .as_str()
                .get(off..off.saturating_add(word(4) as usize))
                .unwrap_or("");
        }
        let len = ((flags & KEY_ID_LEN_MASK) >> KEY_ID_LEN_SHIFT) as usize;
        id.get(..len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    pub fn tenant(&self) -> &'a str {
        text(self.data, &self.rec.tenant)
    }

    pub fn name(&self) -> &'a str {
        text(self.data, &self.rec.name)
    }

    pub fn plan(&self) -> PlanView<'a> {
        PlanView {
            data: self.data,
            rec: self.data.plans.get(self.rec.plan.to_native() as usize),
        }
    }

    pub fn enabled(&self) -> bool {
        self.flag(KEY_ENABLED)
    }

    /// Imported from another system: its secret is not of our format.
    pub fn legacy(&self) -> bool {
        self.flag(KEY_LEGACY)
    }

    pub fn not_before(&self) -> Option<i64> {
        self.flag(KEY_HAS_NOT_BEFORE)
            .then(|| self.rec.not_before.to_native())
    }

    pub fn expires_at(&self) -> Option<i64> {
        self.flag(KEY_HAS_EXPIRES_AT)
            .then(|| self.rec.expires_at.to_native())
    }

    /// `Some` when the looked-up digest is a rotated-out secret of this key: it works until
    /// then (exclusive).
    pub fn grace_until(&self) -> Option<i64> {
        self.grace_until
    }

    pub fn max_body_bytes(&self) -> Option<u64> {
        let extras = self.extras().filter(|_| self.flag(KEY_HAS_MAX_BODY))?;
        Some(extras.max_body_bytes.to_native())
    }

    /// The key's credit quota, if it has one (`CreditSpec { total, refill:
    /// credits.refill_limit() }` for the limiter). One flag test for a key without credits;
    /// with them, one read of its `Extras`.
    pub fn credits(&self) -> Option<Credits> {
        if !self.flag(KEY_HAS_CREDITS) {
            return None;
        }
        let extras = self.extras()?;
        Some(Credits {
            total: extras.credits.to_native(),
            refill: refill_from_flags(self.rec.flags.to_native()).flatten(),
        })
    }

    /// The key's own scopes (when empty, the plan's apply).
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &'a str> + Clone + 'a {
        texts(self.data, self.extras().map(|e| &e.scopes))
    }

    /// The key's own CIDR allowlist (empty: see the plan's).
    pub fn allow_ips(&self) -> impl ExactSizeIterator<Item = &'a str> + Clone + 'a {
        texts(self.data, self.extras().map(|e| &e.allow_ips))
    }

    /// The key's own limits; they replace the plan's limits of the same window.
    pub fn limits(&self) -> impl ExactSizeIterator<Item = LimitSpec> + Clone + 'a {
        limits(self.data, self.extras().map(|e| &e.limits))
    }

    /// Metadata pairs (name, value), sent upstream as `x-keyway-meta-<name>`.
    pub fn metadata(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + Clone + 'a {
        let data = self.data;
        run(&data.meta, self.extras().map(|e| &e.metadata))
            .iter()
            .map(move |m| (text(data, &m.name), text(data, &m.value)))
    }
}

impl fmt::Debug for KeyView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyView")
            .field("id", &self.id())
            .field("tenant", &self.tenant())
            .field("plan", &self.plan().name())
            .field("enabled", &self.enabled())
            .field("grace_until", &self.grace_until)
            .finish_non_exhaustive()
    }
}

/// One plan, borrowed from the snapshot. `Copy`.
#[derive(Clone, Copy)]
pub struct PlanView<'a> {
    data: &'a ArchivedSnapshotData,
    /// `None` only for a key whose plan index is out of range, which `load` rules out.
    rec: Option<&'a ArchivedPlanRecord>,
}

impl<'a> PlanView<'a> {
    fn flag(&self, bit: u32) -> bool {
        self.rec.is_some_and(|r| r.flags.to_native() & bit != 0)
    }

    pub fn name(&self) -> &'a str {
        self.rec.map_or("", |r| text(self.data, &r.name))
    }

    pub fn limits(&self) -> impl ExactSizeIterator<Item = LimitSpec> + Clone + 'a {
        limits(self.data, self.rec.map(|r| &r.limits))
    }

    /// Default scopes for keys without their own. Deny by default: none means nothing.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &'a str> + Clone + 'a {
        texts(self.data, self.rec.map(|r| &r.scopes))
    }

    pub fn allow_ips(&self) -> impl ExactSizeIterator<Item = &'a str> + Clone + 'a {
        texts(self.data, self.rec.map(|r| &r.allow_ips))
    }

    pub fn max_body_bytes(&self) -> Option<u64> {
        let rec = self.rec.filter(|_| self.flag(PLAN_HAS_MAX_BODY))?;
        Some(rec.max_body_bytes.to_native())
    }

    /// Upstream name overriding the route's.
    pub fn upstream(&self) -> Option<&'a str> {
        let rec = self.rec.filter(|_| self.flag(PLAN_HAS_UPSTREAM))?;
        Some(text(self.data, &rec.upstream))
    }

    pub fn priority(&self) -> i32 {
        self.rec.map_or(0, |r| r.priority.to_native())
    }
}

impl fmt::Debug for PlanView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanView")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}
