//! Per-shard rate limiter: sliding and calendar windows, all-or-nothing admission, credits,
//! cross-shard reconciliation by per-key deltas. Pure: time is `now_ms` (unix ms, UTC).
//!
//! See `docs/ratelimits.md` for the algorithm, the over-admission bound and the formats.

mod entry;
mod headers;
mod persist;
#[cfg(test)]
mod tests;
pub mod window;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use strength_reduce::StrengthReducedU64;

use crate::keys::model::{LimitSpec, Window};
use entry::{Entry, Now};
use window::{bucket_ms, ceil_s};

pub use headers::{write_headers, HeaderMode};
pub use persist::RestoreReport;

/// A key's counter identity: a fixed hash of its key id (stable across processes, reloads
/// and rotations, since a rotation keeps the id).
pub type KeyHandle = u64;

/// FNV-1a 64 of the key id followed by a splitmix64 finaliser. Never changes: persisted state
/// is keyed by it.
pub fn key_handle(key_id: &str) -> KeyHandle {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Handles are already well mixed: hash them as they are.
#[derive(Default)]
struct IdHasher(u64);
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
type Map = HashMap<KeyHandle, Entry, BuildHasherDefault<IdHasher>>;

/// Shards a limiter accounts for at most (the configuration allows far fewer).
const MAX_SHARDS: usize = 1 << 16;

#[derive(Clone, Copy, Debug)]
pub struct LimiterConfig {
    pub shards: usize,
    pub sync_interval_ms: u64,
}

/// A credit quota: `total` uses; with `refill`, the balance goes back to
/// `min(total, refill.count)` at each UTC day (windows under a day count as a day) or month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditSpec {
    pub total: u64,
    pub refill: Option<LimitSpec>,
}

impl CreditSpec {
    fn budget(&self) -> u64 {
        self.refill.map_or(self.total, |r| r.count.min(self.total))
    }
    fn window(&self) -> Option<Window> {
        self.refill.map(|r| r.window)
    }
}

/// One key's counts to send to the other shards: `requests` admitted and `credits` spent
/// here, the last of them at `at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delta {
    pub key: KeyHandle,
    pub at_ms: i64,
    pub requests: u32,
    pub credits: u64,
    /// The key's limit windows and credit kinds, so that every shard knows when it may
    /// forget the key.
    pub mask: u8,
}

/// The most constraining limit (least remaining relative to its count).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limit: LimitSpec,
    pub remaining: u64,
    /// Seconds until the window gives room back (sliding: until the oldest counted request
    /// leaves it, or until this request could pass; calendar: until the period ends).
    pub reset_s: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted(Quota),
    /// Admitted; the key has no rate limit (credits, if any, are reported by `usage`).
    Unlimited,
    Limited {
        quota: Quota,
        retry_after_s: u64,
    },
    /// `None`: credits without refill, spent for good.
    QuotaExhausted {
        retry_after_s: Option<u64>,
    },
    /// Not decided yet (only from `admit_or_wait`): the key has room, but only room this shard
    /// keeps for the other shards' admissions it cannot see yet. Ask again in `retry_in_ms`,
    /// when that reserve has shrunk; nothing was counted.
    Wait {
        retry_in_ms: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitUsage {
    pub limit: LimitSpec,
    pub used: u64,
    pub remaining: u64,
    pub reset_s: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub limits: Vec<LimitUsage>,
    pub credits_left: Option<u64>,
    /// Seconds until the credits refill, if they do.
    pub credits_reset_s: Option<u64>,
}

pub struct Limiter {
    shard: usize,
    shards: u64,
    sync_ms: i64,
    /// `sync_ms` as a multiply-and-shift divisor: `retag` divides whenever the clock has
    /// left the slot (on every call, for calls further apart than `sync_ms`).
    sync_div: StrengthReducedU64,
    map: Map,
    dirty: Vec<KeyHandle>,
    now: Now,
    /// `now_ms / sync_ms` of the last call, and its slot `[tag_start, tag_end)` in ms.
    tag: i64,
    tag_start: i64,
    tag_end: i64,
}

/// Room left in one limit and when it comes back.
#[inline]
fn quota_of(e: &Entry, l: &LimitSpec, now: &Now, used: u64) -> Quota {
    let reset_ms = match l.window {
        Window::Day | Window::Month => now.left_ms(l.window),
        w => {
            let (r, ms) = (ring_of(e, w), bucket_ms(w));
            match r.oldest(now.abs(w)) {
                Some(a) => a
                    .saturating_add(window::RING as i64)
                    .saturating_mul(ms)
                    .saturating_sub(now.ms),
                None => w.seconds() as i64 * 1000,
            }
        }
    };
    Quota {
        limit: *l,
        remaining: l.count.saturating_sub(used),
        reset_s: ceil_s(reset_ms),
    }
}

/// The ring of a sliding window (`Second`, `Minute`, `Hour`).
fn ring_of(e: &Entry, w: Window) -> &window::Ring {
    &e.rings[(w as usize).min(window::HOUR)]
}

/// Ms until `need` more requests fit in `w` (at least the reconciliation horizon).
fn wait_ms(e: &Entry, w: Window, need: u64, now: &Now, horizon_ms: i64) -> i64 {
    let ms = match w {
        Window::Day | Window::Month => now.left_ms(w),
        _ if need == 0 => horizon_ms,
        w => ring_of(e, w)
            .free_after(need, bucket_ms(w), now.abs(w), now.ms)
            .unwrap_or(w.seconds() as i64 * 1000),
    };
    ms.max(horizon_ms)
}

/// What a request the admission path could not admit at once is answered with: kept out of
/// that path, and reading counts only (nothing is counted here).
struct Tight {
    /// Requests (credits) this shard keeps for the other shards' unseen admissions.
    reserve: u64,
    credit_reserve: u64,
    may_wait: bool,
    horizon_ms: i64,
    /// Ms to the next reconciliation tick, when the reserve can shrink.
    next_tick_ms: i64,
}

impl Tight {
    /// Credits first, then the limits: `QuotaExhausted` or `Limited` if the known counts have
    /// no room; else (the reserve alone holds the request back) `Wait` if the caller may wait,
    /// else `Limited`.
    #[cold]
    #[inline(never)]
    fn answer(
        &self,
        e: &Entry,
        limits: &[LimitSpec],
        credits: Option<&CreditSpec>,
        cost: u64,
        now: &Now,
    ) -> Admission {
        let mut held_back = false;
        if let Some(c) = credits {
            let need = e.credits_used(c.window(), now).saturating_add(cost);
            if need.saturating_add(self.credit_reserve) > c.budget() {
                if !self.may_wait || need > c.budget() {
                    let retry = c
                        .window()
                        .map(|w| ceil_s(now.left_ms(w).max(self.horizon_ms)));
                    return Admission::QuotaExhausted {
                        retry_after_s: retry,
                    };
                }
                held_back = true;
            }
        }
        // The refusing limit with the longest wait.
        let mut refused: Option<(Quota, i64)> = None;
        for l in limits {
            let used = e.count(l.window, now);
            let room = l.count.saturating_sub(used);
            if room > self.reserve {
                continue;
            }
            if self.may_wait && room > 0 {
                held_back = true;
                continue;
            }
            let need = (used + 1).saturating_sub(l.count);
            let wait = wait_ms(e, l.window, need, now, self.horizon_ms);
            if refused.is_none_or(|(_, w)| wait > w) {
                let q = Quota {
                    limit: *l,
                    remaining: 0,
                    reset_s: ceil_s(wait),
                };
                refused = Some((q, wait));
            }
        }
        if let Some((quota, wait)) = refused {
            return Admission::Limited {
                quota,
                retry_after_s: ceil_s(wait),
            };
        }
        if held_back {
            // The reserve shrinks when the oldest of this shard's recent slots ages out, at
            // the next sync tick; deltas from the other shards arrive on the same cadence.
            return Admission::Wait {
                retry_in_ms: self.next_tick_ms as u64,
            };
        }
        // Unreachable from `decide` (it comes here only when something was tight); answer
        // as refused rather than admit without counting.
        Admission::Limited {
            quota: Quota {
                limit: limits.first().copied().unwrap_or(LimitSpec {
                    count: 0,
                    window: Window::Second,
                }),
                remaining: 0,
                reset_s: ceil_s(self.horizon_ms),
            },
            retry_after_s: ceil_s(self.horizon_ms),
        }
    }
}

impl Limiter {
    pub fn new(shard: usize, config: LimiterConfig) -> Limiter {
        let sync_ms = config.sync_interval_ms.clamp(1, 60_000);
        Limiter {
            shard,
            shards: config.shards.clamp(1, MAX_SHARDS) as u64,
            sync_ms: sync_ms as i64,
            sync_div: StrengthReducedU64::new(sync_ms),
            map: Map::default(),
            dirty: Vec::new(),
            now: Now::new(0),
            tag: 0,
            tag_start: 0,
            tag_end: 0,
        }
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn horizon_ms(&self) -> i64 {
        self.sync_ms * entry::OWN_SLOTS as i64
    }

    /// All-or-nothing: counted in every limit and the credits, or in none. Limits count one
    /// per request; credits are spent by `cost`. Never answers `Wait`.
    pub fn admit(
        &mut self,
        key: KeyHandle,
        limits: &[LimitSpec],
        credits: Option<&CreditSpec>,
        cost: u64,
        now_ms: i64,
    ) -> Admission {
        self.decide(key, limits, credits, cost, now_ms, false)
    }

    /// `admit`, except that a request refused only by the cross-shard reserve (the key has
    /// room, but this shard holds it back for admissions of other shards it has not heard of
    /// yet) answers `Wait` instead of a refusal. The caller asks again later, or calls `admit`
    /// to settle; see "Waiting at the margin" in docs/ratelimits.md.
    pub fn admit_or_wait(
        &mut self,
        key: KeyHandle,
        limits: &[LimitSpec],
        credits: Option<&CreditSpec>,
        cost: u64,
        now_ms: i64,
    ) -> Admission {
        self.decide(key, limits, credits, cost, now_ms, true)
    }

    #[inline]
    fn decide(
        &mut self,
        key: KeyHandle,
        limits: &[LimitSpec],
        credits: Option<&CreditSpec>,
        cost: u64,
        now_ms: i64,
        may_wait: bool,
    ) -> Admission {
        if now_ms != self.now.ms {
            self.now.move_to(now_ms);
        }
        let others = self.shards - 1;
        if others > 0 && !(now_ms >= self.tag_start && now_ms < self.tag_end) {
            self.retag(now_ms);
        }
        let (now, tag, horizon_ms) = (&self.now, self.tag, self.horizon_ms());
        let tag_end = self.tag_end;
        let e = self.map.entry(key).or_default();
        let (own_req, own_cred) = if others > 0 {
            e.own_recent(tag)
        } else {
            (0, 0)
        };
        // Room kept for the other shards' unseen admissions: as many as ours in the horizon
        // (`own_req` < 2^34 and `others` < 2^16: the product cannot overflow).
        let reserve = others * own_req;
        let credit_reserve = || others.saturating_mul(own_cred);
        let tight = || Tight {
            reserve,
            credit_reserve: credit_reserve(),
            may_wait,
            horizon_ms,
            next_tick_ms: tag_end.saturating_sub(now_ms).max(1),
        };
        let cred = match credits {
            Some(c) => {
                let want = e
                    .credits_used(c.window(), now)
                    .saturating_add(cost)
                    .saturating_add(credit_reserve());
                if want > c.budget() {
                    return tight().answer(e, limits, credits, cost, now);
                }
                cost
            }
            None => 0,
        };
        // Every limit must have more room than the reserve. The answer names the most
        // constraining one: least `left / count` after this request (ties: the longer
        // window), as requests left and the limit.
        let (mut best_left, mut best) = (0u64, None::<&LimitSpec>);
        let (mut windows, mut admits) = (0u8, true);
        for l in limits {
            let i = l.window as usize;
            windows |= 1 << i;
            let room = l.count.saturating_sub(e.touch(i, now));
            admits &= room > reserve;
            let left = room.saturating_sub(1);
            let tighter = match best {
                None => true,
                Some(b) => {
                    let (x, y) = (
                        u128::from(left) * u128::from(b.count),
                        u128::from(best_left) * u128::from(l.count),
                    );
                    x < y || (x == y && l.window > b.window)
                }
            };
            if tighter {
                (best_left, best) = (left, Some(l));
            }
        }
        if !admits {
            return tight().answer(e, limits, credits, cost, now);
        }
        e.count_one_now(windows, now, cred);
        e.mask |= windows | Entry::credit_mask(credits.map(|c| c.window()));
        if others > 0 {
            e.record_own(tag, cred);
            e.pend_ms = now_ms;
            if !e.dirty {
                e.dirty = true;
                self.dirty.push(key);
            }
        }
        match best {
            Some(l) => Admission::Admitted(quota_of(e, l, now, l.count - best_left)),
            None => Admission::Unlimited,
        }
    }

    /// Moves the reconciliation slot (`tag`) to the one holding `now_ms`.
    #[inline]
    fn retag(&mut self, now_ms: i64) {
        if now_ms >= 0 {
            self.tag = (now_ms as u64 / self.sync_div) as i64;
            // At most `now_ms`: no overflow.
            self.tag_start = self.tag * self.sync_ms;
            self.tag_end = self.tag_start.saturating_add(self.sync_ms);
        } else {
            self.retag_negative(now_ms);
        }
    }

    /// A clock before 1970: only reachable by a broken clock or a test. (The slot's start
    /// saturates at `i64::MIN`; its end, above `now_ms`, cannot overflow.)
    #[cold]
    #[inline(never)]
    fn retag_negative(&mut self, now_ms: i64) {
        self.tag = now_ms.div_euclid(self.sync_ms);
        self.tag_start = self.tag.saturating_mul(self.sync_ms);
        self.tag_end = (self.tag + 1) * self.sync_ms;
    }

    /// Per-key deltas counted here since the last call (`out` is cleared first and reused).
    pub fn drain_deltas(&mut self, _now_ms: i64, out: &mut Vec<Delta>) {
        out.clear();
        for key in self.dirty.drain(..) {
            if let Some(e) = self.map.get_mut(&key) {
                if e.pend_req > 0 || e.pend_cred > 0 {
                    out.push(Delta {
                        key,
                        at_ms: e.pend_ms,
                        requests: e.pend_req,
                        credits: e.pend_cred,
                        mask: e.mask,
                    });
                }
                e.pend_req = 0;
                e.pend_cred = 0;
                e.dirty = false;
            }
        }
    }

    /// Counts another shard's deltas into the whole-gateway view.
    pub fn apply_remote(&mut self, from_shard: usize, deltas: &[Delta], now_ms: i64) {
        if from_shard == self.shard {
            return;
        }
        for d in deltas {
            // A delta from the future (clock read later on its shard) counts as now.
            let at = Now::new(d.at_ms.min(now_ms.saturating_add(self.horizon_ms())));
            let e = self.map.entry(d.key).or_default();
            e.count_in(&at, d.mask, d.requests, d.credits);
            e.mask |= d.mask;
        }
    }

    /// Forgets keys whose every counter has expired (credits spent for life are kept).
    pub fn evict_idle(&mut self, now_ms: i64) {
        let now = Now::new(now_ms);
        self.map.retain(|_, e| !e.idle(&now));
    }

    /// Read-only usage for `keys show`.
    pub fn usage(
        &self,
        key: KeyHandle,
        limits: &[LimitSpec],
        credits: Option<&CreditSpec>,
        now_ms: i64,
    ) -> Usage {
        let now = Now::new(now_ms);
        let empty = Entry::default();
        let e = self.map.get(&key).unwrap_or(&empty);
        let limits = limits
            .iter()
            .map(|l| {
                let used = e.count(l.window, &now);
                let q = quota_of(e, l, &now, used);
                LimitUsage {
                    limit: *l,
                    used,
                    remaining: q.remaining,
                    reset_s: q.reset_s,
                }
            })
            .collect();
        Usage {
            limits,
            credits_left: credits
                .map(|c| c.budget().saturating_sub(e.credits_used(c.window(), &now))),
            credits_reset_s: credits
                .and_then(|c| c.window())
                .map(|w| ceil_s(now.left_ms(w))),
        }
    }
}
