//! Window math: sub-bucketed sliding rings (s, min, h), UTC calendar periods (day, month)
//! and the days-from-civil conversion. Pure integer arithmetic, no panics on any input.

use crate::keys::model::Window;

/// Indices of the windows (`Window as usize`) in `Now::id` and, for the sliding ones, in
/// `Entry::rings`.
pub const SEC: usize = Window::Second as usize;
pub const MIN: usize = Window::Minute as usize;
pub const HOUR: usize = Window::Hour as usize;
pub const DAY: usize = Window::Day as usize;
pub const MONTH: usize = Window::Month as usize;

/// Sub-buckets per sliding window; a ring keeps one more (the current, partial one).
pub const SUB: i64 = 20;
/// Ring length: `SUB` full buckets + the current one.
pub const RING: usize = SUB as usize + 1;
pub use crate::clock::DAY_MS;

/// `bucket_ms` of the second, minute and hour windows, as constants for the hot path.
pub const SEC_BUCKET_MS: i64 = 1_000 / SUB;
pub const MIN_BUCKET_MS: i64 = 60_000 / SUB;
pub const HOUR_BUCKET_MS: i64 = 3_600_000 / SUB;

/// Bucket width in ms of a sliding window (`W / SUB`).
pub fn bucket_ms(w: Window) -> i64 {
    (w.seconds() as i64 * 1000) / SUB
}

/// Ceil of a positive millisecond span in whole seconds, at least 1.
pub fn ceil_s(ms: i64) -> u64 {
    (ms.max(1) as u64).div_ceil(1000).max(1)
}

/// A sliding window counter: `RING` buckets of `bucket_ms`; the count is the sum of all of
/// them, which covers at least the last `W` (between W and W + W/SUB): never more than
/// N requests are admitted in any interval of length W.
#[derive(Clone, Debug, Default)]
pub struct Ring {
    /// Absolute index (`now_ms / bucket_ms`) of the newest bucket.
    pub head: i64,
    pub total: u64,
    pub b: [u32; RING],
    /// `slot(head)`, kept to spare a division on the hot path.
    hs: usize,
}

impl Ring {
    fn slot(abs: i64) -> usize {
        abs.rem_euclid(RING as i64) as usize
    }

    /// Moves the head to `abs`, clearing the buckets that left the window.
    #[inline]
    pub fn advance(&mut self, abs: i64) {
        if abs <= self.head {
            return;
        }
        let n = abs.saturating_sub(self.head);
        if n >= RING as i64 {
            self.restart(abs);
            return;
        }
        let mut s = self.hs;
        for _ in 0..n {
            s = if s + 1 == RING { 0 } else { s + 1 };
            self.total = self.total.saturating_sub(u64::from(self.b[s]));
            self.b[s] = 0;
        }
        self.hs = s;
        self.head = abs;
    }

    /// Empties the ring with its head at `abs` (the window has passed since the last count).
    /// Out of line: its division must not be hoisted into the request path.
    #[cold]
    #[inline(never)]
    fn restart(&mut self, abs: i64) {
        self.b = [0; RING];
        self.total = 0;
        self.hs = Self::slot(abs);
        self.head = abs;
    }

    /// Absolute index of the oldest non-empty bucket still counted at `abs`.
    #[inline]
    pub fn oldest(&self, abs: i64) -> Option<i64> {
        if abs == self.head {
            // The usual case (the ring was just advanced to now): walk from the slot after
            // the head, which is the oldest counted one.
            let mut s = self.hs;
            for i in 0..RING as i64 {
                s = if s + 1 == RING { 0 } else { s + 1 };
                if self.b[s] != 0 {
                    return Some(abs - (RING as i64 - 1) + i);
                }
            }
            return None;
        }
        let lo = abs.max(self.head).saturating_sub(RING as i64 - 1);
        let first = self.head.saturating_sub(RING as i64 - 1).max(lo);
        let n = self.head.saturating_sub(first).clamp(0, RING as i64 - 1) as usize;
        let mut s = Self::slot(first);
        for i in 0..=n {
            if self.b[s] != 0 {
                return Some(first.saturating_add(i as i64));
            }
            s = if s + 1 == RING { 0 } else { s + 1 };
        }
        None
    }

    /// Adds `n` at bucket `abs` (dropped if it already left the window).
    #[inline]
    pub fn add(&mut self, abs: i64, n: u32) {
        self.advance(abs);
        if abs <= self.head.saturating_sub(RING as i64) {
            return;
        }
        let s = if abs == self.head {
            self.hs
        } else {
            Self::slot(abs)
        };
        self.b[s] = self.b[s].saturating_add(n);
        self.total = self.total.saturating_add(u64::from(n));
    }

    /// Adds `n` at the head bucket (the ring was advanced to now).
    #[inline]
    pub fn add_head(&mut self, n: u32) {
        self.b[self.hs] = self.b[self.hs].saturating_add(n);
        self.total = self.total.saturating_add(u64::from(n));
    }

    /// Read-only count as of bucket `abs`.
    pub fn count_at(&self, abs: i64) -> u64 {
        if abs <= self.head {
            return self.total;
        }
        let lo = abs.saturating_sub(RING as i64 - 1);
        self.iter()
            .filter(|(a, _)| *a >= lo)
            .map(|(_, n)| u64::from(n))
            .sum()
    }

    /// (absolute bucket, count) of every non-empty bucket in the window, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        let first = self.head.saturating_sub(RING as i64 - 1);
        (0..RING as i64)
            .map(move |i| first.saturating_add(i))
            .map(|a| (a, self.b[Self::slot(a)]))
            .filter(|(_, n)| *n > 0)
    }

    /// Milliseconds from `now_ms` until at least `need` counted requests have left the
    /// window (`None` if the window does not hold that many).
    /// `abs` is `now_ms`'s bucket.
    pub fn free_after(&self, need: u64, bucket: i64, abs: i64, now_ms: i64) -> Option<i64> {
        let lo = abs.max(self.head).saturating_sub(RING as i64 - 1);
        let first = self.head.saturating_sub(RING as i64 - 1).max(lo);
        let n = self.head.saturating_sub(first).clamp(0, RING as i64 - 1) as usize;
        let mut s = Self::slot(first);
        let mut freed = 0u64;
        for i in 0..=n {
            freed += u64::from(self.b[s]);
            if freed >= need {
                // Bucket `a` leaves when the head reaches a + RING.
                let a = first.saturating_add(i as i64);
                return Some(
                    a.saturating_add(RING as i64)
                        .saturating_mul(bucket)
                        .saturating_sub(now_ms),
                );
            }
            s = if s + 1 == RING { 0 } else { s + 1 };
        }
        None
    }
}

/// A calendar period counter (UTC day or month, or the lifetime with id 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cal {
    pub id: i64,
    pub n: u64,
}

impl Cal {
    #[inline]
    pub fn add(&mut self, id: i64, n: u64) {
        if id > self.id {
            *self = Cal { id, n: 0 };
        }
        if id == self.id {
            self.n = self.n.saturating_add(n);
        }
    }

    #[inline]
    pub fn count_at(&self, id: i64) -> u64 {
        if id == self.id {
            self.n
        } else {
            0
        }
    }
}

pub use crate::clock::{civil_from_days, days_from_civil};

/// UTC day number of a time.
pub fn day_id(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS)
}

/// UTC month number (`year * 12 + month - 1`) of a time.
pub fn month_id(now_ms: i64) -> i64 {
    let (y, m, _) = civil_from_days(day_id(now_ms));
    y * 12 + m - 1
}

/// Unix ms of the start of month number `id`.
pub fn month_start_ms(id: i64) -> i64 {
    days_from_civil(id.div_euclid(12), id.rem_euclid(12) + 1, 1).saturating_mul(DAY_MS)
}

/// Calendar period id of `now_ms` for a calendar window (day or month).
pub fn period_id(w: Window, now_ms: i64) -> i64 {
    match w {
        Window::Month => month_id(now_ms),
        _ => day_id(now_ms),
    }
}

/// Milliseconds from `now_ms` to the end of its calendar period.
pub fn period_left_ms(w: Window, now_ms: i64) -> i64 {
    let end = match w {
        Window::Month => month_start_ms(month_id(now_ms).saturating_add(1)),
        _ => day_id(now_ms).saturating_add(1).saturating_mul(DAY_MS),
    };
    end.saturating_sub(now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_and_months() {
        for z in [-800_000i64, -1, 0, 1, 11_016, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(
            days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 1),
            29
        );
        assert_eq!(
            days_from_civil(2023, 3, 1) - days_from_civil(2023, 2, 1),
            28
        );
        // 2026-01-31T23:59:59.999Z -> one ms left in January.
        let t = days_from_civil(2026, 2, 1) * DAY_MS - 1;
        assert_eq!(period_left_ms(Window::Month, t), 1);
        assert_eq!(month_id(t) + 1, month_id(t + 1));
        for t in [i64::MIN, i64::MAX, -1] {
            let _ = (
                period_left_ms(Window::Month, t),
                period_left_ms(Window::Day, t),
            );
        }
    }

    #[test]
    fn bucket_constants_match_the_windows() {
        assert_eq!(SEC_BUCKET_MS, bucket_ms(Window::Second));
        assert_eq!(MIN_BUCKET_MS, bucket_ms(Window::Minute));
        assert_eq!(HOUR_BUCKET_MS, bucket_ms(Window::Hour));
    }

    #[test]
    fn ring_slides() {
        let mut r = Ring::default();
        r.add(100, 5);
        r.add(110, 3);
        assert_eq!(r.count_at(120), 8);
        assert_eq!(r.count_at(121), 3);
        r.advance(121);
        assert_eq!(r.total, 3);
        r.add(50, 9); // too old: dropped
        assert_eq!(r.total, 3);
        r.advance(i64::MAX);
        assert_eq!(r.total, 0);
    }
}
