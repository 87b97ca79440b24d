//! One key's counters on one shard: whole-gateway counts (local + remote) for every window,
//! credits spent per day / month / lifetime, and this shard's own recent and pending counts.

use super::window::{
    bucket_ms, day_id, month_id, month_start_ms, Cal, Ring, DAY_MS, HOUR_BUCKET_MS, MIN_BUCKET_MS,
    SEC_BUCKET_MS,
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
    pub sec: Ring,
    pub min: Ring,
    pub hour: Ring,
    pub day: Cal,
    pub month: Cal,
    pub cday: Cal,
    pub cmonth: Cal,
    pub clife: u64,
    pub own: [OwnSlot; OWN_SLOTS],
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
    pub sec: i64,
    pub min: i64,
    pub hour: i64,
    pub day: i64,
    pub month: i64,
    /// Unix ms of the end of the current UTC month.
    pub month_end: i64,
}

impl Now {
    pub fn new(ms: i64) -> Now {
        Now {
            ms,
            sec: ms.div_euclid(bucket_ms(Window::Second)),
            min: ms.div_euclid(bucket_ms(Window::Minute)),
            hour: ms.div_euclid(bucket_ms(Window::Hour)),
            day: day_id(ms),
            month: month_id(ms),
            month_end: month_start_ms(month_id(ms).saturating_add(1)),
        }
    }

    /// The bucket index of a sliding window (`Second`, `Minute`, `Hour`) at this time.
    #[inline]
    pub fn abs(&self, w: Window) -> i64 {
        match w {
            Window::Minute => self.min,
            Window::Hour => self.hour,
            _ => self.sec,
        }
    }

    /// Ms to the end of the calendar period (`Day`; `Month`) holding this time.
    #[inline]
    pub fn left_ms(&self, w: Window) -> i64 {
        match w {
            Window::Month => self.month_end.saturating_sub(self.ms),
            _ => self
                .day
                .saturating_add(1)
                .saturating_mul(DAY_MS)
                .saturating_sub(self.ms),
        }
    }

    /// Becomes `Now::new(ms)`, reusing what has not changed: buckets nest (a second's bucket
    /// lies within one minute bucket, which lies within one hour bucket, within one day), so
    /// a time in the same second bucket changes nothing but `ms`, and most calls divide once
    /// or not at all.
    #[inline]
    pub fn move_to(&mut self, ms: i64) {
        let within = |id: i64, width: i64| {
            id.checked_mul(width)
                .and_then(|start| ms.checked_sub(start))
                .is_some_and(|d| (0..width).contains(&d))
        };
        self.ms = ms;
        if within(self.sec, SEC_BUCKET_MS) {
            return;
        }
        self.sec = ms.div_euclid(SEC_BUCKET_MS);
        if within(self.min, MIN_BUCKET_MS) {
            return;
        }
        self.min = ms.div_euclid(MIN_BUCKET_MS);
        if within(self.hour, HOUR_BUCKET_MS) {
            return;
        }
        self.hour = ms.div_euclid(HOUR_BUCKET_MS);
        let day = day_id(ms);
        if day != self.day {
            *self = Now::new(ms);
        }
    }
}

impl Entry {
    /// Rotates the rings to `now` so that `total` is the current count.
    #[inline]
    pub fn advance(&mut self, now: &Now) {
        self.sec.advance(now.sec);
        self.min.advance(now.min);
        self.hour.advance(now.hour);
    }

    /// Requests counted in `w` as of `now` (rings must have been advanced for `&mut` use;
    /// `count_at` is the read-only form).
    #[inline]
    pub fn count(&self, w: Window, now: &Now) -> u64 {
        match w {
            Window::Second => self.sec.count_at(now.sec),
            Window::Minute => self.min.count_at(now.min),
            Window::Hour => self.hour.count_at(now.hour),
            Window::Day => self.day.count_at(now.day),
            Window::Month => self.month.count_at(now.month),
        }
    }

    /// Every window's count right after `advance(now)`, indexed by `Window as usize`.
    #[inline]
    pub fn current(&self, now: &Now) -> [u64; 5] {
        [
            self.sec.total,
            self.min.total,
            self.hour.total,
            self.day.count_at(now.day),
            self.month.count_at(now.month),
        ]
    }

    /// Credits spent in the refill period (`None` = lifetime; windows under a day use the day).
    #[inline]
    pub fn credits_used(&self, refill: Option<Window>, now: &Now) -> u64 {
        match refill {
            None => self.clife,
            Some(Window::Month) => self.cmonth.count_at(now.month),
            Some(_) => self.cday.count_at(now.day),
        }
    }

    /// Counts `req` requests and `cred` credits at time `now` into every window.
    #[inline]
    pub fn count_in(&mut self, now: &Now, req: u32, cred: u64) {
        self.sec.add(now.sec, req);
        self.min.add(now.min, req);
        self.hour.add(now.hour, req);
        self.day.add(now.day, u64::from(req));
        self.month.add(now.month, u64::from(req));
        if cred > 0 {
            self.cday.add(now.day, cred);
            self.cmonth.add(now.month, cred);
            self.clife = self.clife.saturating_add(cred);
        }
    }

    /// `count_in` of one admission at `now`, after `advance(now)`: the rings' heads are now.
    #[inline]
    pub fn count_one_now(&mut self, now: &Now, cred: u64) {
        self.sec.add_head(1);
        self.min.add_head(1);
        self.hour.add_head(1);
        self.day.add(now.day, 1);
        self.month.add(now.month, 1);
        if cred > 0 {
            self.cday.add(now.day, cred);
            self.cmonth.add(now.month, cred);
            self.clife = self.clife.saturating_add(cred);
        }
    }

    /// This shard's own admissions within the reconciliation horizon: (requests, credits).
    #[inline]
    pub fn own_recent(&self, tag: i64) -> (u64, u64) {
        let lo = tag.saturating_sub(OWN_SLOTS as i64 - 1);
        let mut r = (0, 0);
        for s in &self.own {
            if s.tag >= lo && s.tag <= tag {
                r.0 += u64::from(s.req);
                r.1 += s.cred;
            }
        }
        r
    }

    #[inline]
    pub fn record_own(&mut self, tag: i64, cred: u64) {
        let s = &mut self.own[tag.rem_euclid(OWN_SLOTS as i64) as usize];
        if s.tag != tag {
            *s = OwnSlot {
                tag,
                req: 0,
                cred: 0,
            };
        }
        s.req = s.req.saturating_add(1);
        s.cred = s.cred.saturating_add(cred);
        self.pend_req = self.pend_req.saturating_add(1);
        self.pend_cred = self.pend_cred.saturating_add(cred);
    }

    /// True when nothing counted here matters any more at `now`.
    pub fn idle(&self, now: &Now) -> bool {
        let m = |bit: u8, n: u64| self.mask & (1 << bit) == 0 || n == 0;
        !self.dirty
            && m(0, self.sec.count_at(now.sec))
            && m(1, self.min.count_at(now.min))
            && m(2, self.hour.count_at(now.hour))
            && m(3, self.day.count_at(now.day))
            && m(4, self.month.count_at(now.month))
            && m(5, self.cday.count_at(now.day))
            && m(6, self.cmonth.count_at(now.month))
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
