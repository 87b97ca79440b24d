//! Load shedding by plan priority. Pure: the caller passes the shard's requests in flight.
//!
//! `limits.shed_after_in_flight = T` (per shard; 0 = off) is where plans of priority 0 start
//! being refused. Each priority step moves a plan's point by a tenth of `T` (at least 1):
//! with T = 100, priority 10 is shed only past 200, priority -5 already past 50. Priorities
//! are clamped to -9..=10, so every plan keeps a point of at least 1 and T/10, and none is
//! shed later than T + 10 steps.
//! Under overload the lowest priorities are refused first, leaving the shard's capacity to
//! the higher ones; requests on public routes (no plan) count as priority 0.

/// The shedding setting of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shedding {
    /// In-flight requests per shard where priority 0 starts being shed; 0 = never shed.
    pub after_in_flight: u32,
}

/// Priorities beyond these shed as these.
pub const MIN_PRIORITY: i32 = -9;
pub const MAX_PRIORITY: i32 = 10;

impl Shedding {
    /// The most requests in flight (this one included) a request of `priority` is served
    /// with; `None` when shedding is off.
    pub fn point(&self, priority: i32) -> Option<u64> {
        if self.after_in_flight == 0 {
            return None;
        }
        let t = i64::from(self.after_in_flight);
        let step = (t / 10).max(1);
        let p = i64::from(priority.clamp(MIN_PRIORITY, MAX_PRIORITY));
        Some((t + step * p).max(1) as u64)
    }

    /// Whether a request of `priority` is refused with `in_flight` requests in flight on its
    /// shard, itself included.
    pub fn sheds(&self, priority: i32, in_flight: u64) -> bool {
        self.point(priority).is_some_and(|p| in_flight > p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_never_sheds() {
        let off = Shedding::default();
        assert_eq!(off.point(0), None);
        assert!(!off.sheds(-9, u64::MAX));
    }

    #[test]
    fn lower_priorities_are_shed_first() {
        let s = Shedding {
            after_in_flight: 100,
        };
        assert_eq!(s.point(0), Some(100));
        assert_eq!(s.point(10), Some(200));
        assert_eq!(s.point(1_000), Some(200));
        assert_eq!(s.point(-5), Some(50));
        assert_eq!(s.point(i32::MIN), Some(10));
        assert!(!s.sheds(0, 100));
        assert!(s.sheds(0, 101));
        assert!(!s.sheds(5, 101));
        assert!(s.sheds(5, 151));
        // Monotone: at any load, a higher priority is shed only if every lower one is.
        for load in 0..300 {
            for p in -12..12 {
                if s.sheds(p + 1, load) {
                    assert!(s.sheds(p, load), "load {load}: {} shed, {p} not", p + 1);
                }
            }
        }
    }

    #[test]
    fn small_thresholds_still_grade() {
        let s = Shedding { after_in_flight: 3 };
        assert_eq!(
            [
                s.point(-9),
                s.point(-1),
                s.point(0),
                s.point(1),
                s.point(10)
            ],
            [Some(1), Some(2), Some(3), Some(4), Some(13)]
        );
    }
}
