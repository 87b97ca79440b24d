//! One key's counters on one shard: whole-gateway counts (local + remote) of the windows the
//! key is limited by, credits spent per day / month / lifetime, and this shard's own recent
//! and pending counts.

use super::window::{
    day_id, month_id, month_start_ms, Cal, Ring, DAY, DAY_MS, HOUR, HOUR_BUCKET_MS, MIN,
    MIN_BUCKET_MS, MONTH, SEC, SEC_BUCKET_MS,
};
use crate::keys::model::Window;

/// Slots of this shard's own recent admissions, one per `sync_interval`: the reconciliation
/// horizon is `OWN_SLOTS - 1 ..= OWN_SLOTS` sync intervals.
pub const OWN_SLOTS: usize = 4;

#[derive(Clone, Copy, Debug, Default)]
pub struct OwnSlot {
    pub tag: i64,
    pub req: u32,
    pub cred: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// The sliding windows, indexed by `Window as usize` (`SEC`, `MIN`, `HOUR`).
    pub rings: [Ring; 3],
    pub day: Cal,
    pub month: Cal,
    pub cday: Cal,
    pub cmonth: Cal,
    pub clife: u64,
    pub own: [OwnSlot; OWN_SLOTS],
    /// The newest tag of the own slots: when it is out of the horizon, so are all the others.
    pub own_tag: i64,
    pub pend_req: u32,
    pub pend_cred: u64,
    pub pend_ms: i64,
    pub dirty: bool,
    /// Windows this key is limited by (bit = `Window as u8`) and credit kinds (bits 5..=7:
    /// day, month, lifetime): eviction only waits for these.
    pub mask: u8,
}

/// Precomputed period ids of one `now_ms` (computed once per call, not per window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub ms: i64,
    /// Bucket index of each sliding window, period id of each calendar window, indexed by
    /// `Window as usize` (`SEC` .. `MONTH`).
    pub id: [i64; 5],
    /// Unix ms of the end of the current UTC month.
    pub month_end: i64,
    /// `[lo, hi)`, unix ms of the current second, minute and hour buckets (saturated at the
    /// ends of i64, where a bucket is only cut shorter): `move_to` compares instead of dividing.
    sec_b: (i64, i64),
    min_b: (i64, i64),
    hour_b: (i64, i64),
}

/// `[lo, hi)` of bucket `id` of width `w`, saturated.
#[inline]
fn bounds(id: i64, w: i64) -> (i64, i64) {
    (id.saturating_mul(w), id.saturating_add(1).saturating_mul(w))
}

#[inline]
fn inside(ms: i64, b: (i64, i64)) -> bool {
    ms >= b.0 && ms < b.1
}

impl Now {
    pub fn new(ms: i64) -> Now {
        let (sec, min, hour) = (
            ms.div_euclid(SEC_BUCKET_MS),
            ms.div_euclid(MIN_BUCKET_MS),
            ms.div_euclid(HOUR_BUCKET_MS),
        );
        Now {
            ms,
            id: [sec, min, hour, day_id(ms), month_id(ms)],
            month_end: month_start_ms(month_id(ms).saturating_add(1)),
            sec_b: bounds(sec, SEC_BUCKET_MS),
            min_b: bounds(min, MIN_BUCKET_MS),
            hour_b: bounds(hour, HOUR_BUCKET_MS),
        }
    }

    /// The bucket index of a sliding window (`Second`, `Minute`, `Hour`) at this time.
    #[inline]
    pub fn abs(&self, w: Window) -> i64 {
        self.id[w as usize]
    }

    /// Ms to the end of the calendar period (`Day`; `Month`) holding this time.
    #[inline]
    pub fn left_ms(&self, w: Window) -> i64 {
        match w {
            Window::Month => self.month_end.saturating_sub(self.ms),
            _ => self.id[DAY]
                .saturating_add(1)
                .saturating_mul(DAY_MS)
                .saturating_sub(self.ms),
        }
    }

    /// Becomes `Now::new(ms)`, reusing what has not changed: buckets nest (a second's bucket
    /// lies within one minute bucket, which lies within one hour bucket, within one day), so
    /// a time in the same second bucket changes nothing but `ms`, and most other calls
    /// divide once.
    #[inline]
    pub fn move_to(&mut self, ms: i64) {
        self.ms = ms;
        if inside(ms, self.sec_b) {
            return;
        }
        self.id[SEC] = ms.div_euclid(SEC_BUCKET_MS);
        self.sec_b = bounds(self.id[SEC], SEC_BUCKET_MS);
        if inside(ms, self.min_b) {
            return;
        }
        self.move_to_cold(ms);
    }

    /// The minute bucket changed (every 3 s of a steady clock): kept off the request path.
    #[cold]
    #[inline(never)]
    fn move_to_cold(&mut self, ms: i64) {
        self.id[MIN] = ms.div_euclid(MIN_BUCKET_MS);
        self.min_b = bounds(self.id[MIN], MIN_BUCKET_MS);
        if inside(ms, self.hour_b) {
            return;
        }
        self.id[HOUR] = ms.div_euclid(HOUR_BUCKET_MS);
        self.hour_b = bounds(self.id[HOUR], HOUR_BUCKET_MS);
        if day_id(ms) != self.id[DAY] {
            *self = Now::new(ms);
        }
    }
}

impl Entry {
    /// Rotates the rings to `now` so that `total` is the current count.
    #[inline]
    pub fn advance(&mut self, now: &Now) {
        for (r, id) in self.rings.iter_mut().zip(now.id) {
            r.advance(id);
        }
    }

    /// Requests counted in `w` as of `now` (read-only; `touch` is the admission path's form).
    #[inline]
    pub fn count(&self, w: Window, now: &Now) -> u64 {
        let i = w as usize;
        match w {
            Window::Day => self.day.count_at(now.id[DAY]),
            Window::Month => self.month.count_at(now.id[MONTH]),
            _ => self.rings[i].count_at(now.id[i]),
        }
    }

    /// Credits spent in the refill period (`None` = lifetime; windows under a day use the day).
    #[inline]
    pub fn credits_used(&self, refill: Option<Window>, now: &Now) -> u64 {
        match refill {
            None => self.clife,
            Some(Window::Month) => self.cmonth.count_at(now.id[MONTH]),
            Some(_) => self.cday.count_at(now.id[DAY]),
        }
    }

    /// Counts `req` requests at time `now` in the windows of `windows` (bit = `Window as u8`)
    /// and `cred` credits.
    #[inline]
    pub fn count_in(&mut self, now: &Now, windows: u8, req: u32, cred: u64) {
        for (i, r) in self.rings.iter_mut().enumerate() {
            if windows & (1 << i) != 0 {
                r.add(now.id[i], req);
            }
        }
        if windows & (1 << DAY) != 0 {
            self.day.add(now.id[DAY], u64::from(req));
        }
        if windows & (1 << MONTH) != 0 {
            self.month.add(now.id[MONTH], u64::from(req));
        }
        self.spend(now, cred);
    }

    #[inline]
    fn spend(&mut self, now: &Now, cred: u64) {
        if cred > 0 {
            self.cday.add(now.id[DAY], cred);
            self.cmonth.add(now.id[MONTH], cred);
            self.clife = self.clife.saturating_add(cred);
        }
    }

    /// Brings window `i` (`Window as usize`) to `now` and returns its count: the admission
    /// path touches only the windows the key is limited by.
    #[inline]
    pub fn touch(&mut self, i: usize, now: &Now) -> u64 {
        match i {
            SEC | MIN | HOUR => {
                let r = &mut self.rings[i];
                r.advance(now.id[i]);
                r.total
            }
            DAY => self.day.count_at(now.id[DAY]),
            _ => self.month.count_at(now.id[MONTH]),
        }
    }

    /// Counts one admission at `now` in the windows of `windows`, each touched at `now`
    /// first (so a ring's head bucket is now), and `cred` credits.
    #[inline]
    pub fn count_one_now(&mut self, windows: u8, now: &Now, cred: u64) {
        for (i, r) in self.rings.iter_mut().enumerate() {
            if windows & (1 << i) != 0 {
                r.add_head(1);
            }
        }
        if windows & (1 << DAY) != 0 {
            self.day.add(now.id[DAY], 1);
        }
        if windows & (1 << MONTH) != 0 {
            self.month.add(now.id[MONTH], 1);
        }
        self.spend(now, cred);
    }

    /// This shard's own admissions within the reconciliation horizon: (requests, credits).
    #[inline]
    pub fn own_recent(&self, tag: i64) -> (u64, u64) {
        let mut r = (0, 0);
        // A key admitted here less than once per horizon (most keys) skips the scan: every
        // slot's tag is at most `own_tag`, so none is within the horizon either. (Wrapping:
        // only tags ~2^63 apart, out of any clock's reach, could be misjudged.)
        if tag.wrapping_sub(self.own_tag) >= OWN_SLOTS as i64 {
            return r;
        }
        for s in &self.own {
            // `s.tag` in `tag - OWN_SLOTS + 1 ..= tag`, as one unsigned compare.
            if (tag.wrapping_sub(s.tag) as u64) < OWN_SLOTS as u64 {
                r.0 += u64::from(s.req);
                r.1 += s.cred;
            }
        }
        r
    }

    #[inline]
    pub fn record_own(&mut self, tag: i64, cred: u64) {
        let s = &mut self.own[(tag as usize) % OWN_SLOTS];
        if s.tag != tag {
            *s = OwnSlot {
                tag,
                req: 0,
                cred: 0,
            };
        }
        s.req = s.req.saturating_add(1);
        s.cred = s.cred.saturating_add(cred);
        self.own_tag = self.own_tag.max(tag);
        self.pend_req = self.pend_req.saturating_add(1);
        self.pend_cred = self.pend_cred.saturating_add(cred);
    }

    /// True when nothing counted here matters any more at `now`.
    pub fn idle(&self, now: &Now) -> bool {
        let m = |bit: usize, n: u64| self.mask & (1 << bit) == 0 || n == 0;
        !self.dirty
            && (0..self.rings.len()).all(|i| m(i, self.rings[i].count_at(now.id[i])))
            && m(DAY, self.day.count_at(now.id[DAY]))
            && m(MONTH, self.month.count_at(now.id[MONTH]))
            && m(5, self.cday.count_at(now.id[DAY]))
            && m(6, self.cmonth.count_at(now.id[MONTH]))
            && m(7, self.clife)
    }

    /// The `mask` bit of a key's credits (`None`: no credits; `Some(None)`: lifetime).
    #[inline]
    pub fn credit_mask(credit_refill: Option<Option<Window>>) -> u8 {
        match credit_refill {
            None => 0,
            Some(None) => 1 << 7,
            Some(Some(Window::Month)) => 1 << 6,
            Some(Some(_)) => 1 << 5,
        }
    }
}
