//! Passive health of one upstream server: which outcomes take it out of the rotation, for how
//! long, and how it comes back. Pure: the caller passes the time (milliseconds on any
//! monotonic clock) and reports each outcome; one [`Health`] per server per shard.
//!
//! A server is ejected after `max_fails` failures in a row (connect refused or timed out, a
//! reset or close before any response byte, a response timeout) or, when `max_5xx` is set,
//! after that many 5xx answers in a row. It stays out for the backoff, which doubles with each
//! ejection in a row up to `max_backoff`. Then it is half-open: one request at a time may try
//! it (a trial); a success puts it back and resets the backoff, a failure ejects it again at
//! once with the next backoff. A trial with no outcome (its client left) stops holding the
//! server after `backoff`, and the next request tries.

/// When a server leaves the rotation and for how long (`[upstreams.NAME]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    /// Failures in a row that eject. 0 = never eject on failures.
    pub max_fails: u32,
    /// 5xx answers in a row that eject. 0 = 5xx answers never eject.
    pub max_5xx: u32,
    /// The first ejection's length, in milliseconds.
    pub backoff_ms: u64,
    /// The longest ejection, in milliseconds.
    pub max_backoff_ms: u64,
}

impl Default for Ejection {
    fn default() -> Self {
        Ejection {
            max_fails: 3,
            max_5xx: 0,
            backoff_ms: 1_000,
            max_backoff_ms: 30_000,
        }
    }
}

/// One server's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    fails: u32,
    fives: u32,
    /// Ejections in a row (0 = healthy); sets the next backoff.
    ejections: u32,
    /// Out of the rotation until then (ms); `None` = in it.
    until: Option<u64>,
    /// Half-open, and a trial request is on it since then (ms).
    trial: Option<u64>,
}

/// What [`Health::pick`] says about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// In the rotation.
    Healthy,
    /// Its ejection is over and no trial is on it: this request is the trial.
    Trial,
    /// Out of the rotation (ejected, or half-open with a trial on it).
    Out,
}

/// What an outcome did to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// It left the rotation for this many milliseconds.
    Ejected(u64),
    /// It came back (a trial succeeded).
    Restored,
}

impl Health {
    /// Whether a request may use the server at `now`; a [`Pick::Trial`] marks the trial as
    /// started, to be followed by an outcome ([`Health::success`], [`Health::failure`],
    /// [`Health::status`]).
    pub fn pick(&mut self, now: u64, policy: &Ejection) -> Pick {
        match self.until {
            None => Pick::Healthy,
            Some(until) if now < until => Pick::Out,
            Some(_) if self.trial_on(now, policy) => Pick::Out,
            Some(_) => {
                self.trial = Some(now);
                Pick::Trial
            }
        }
    }

    /// Whether the server is out of the rotation at `now`, without starting a trial.
    pub fn is_out(&self, now: u64, policy: &Ejection) -> bool {
        match self.until {
            None => false,
            Some(until) => now < until || self.trial_on(now, policy),
        }
    }

    /// Milliseconds until the server may be tried again (0 = now).
    pub fn out_for(&self, now: u64) -> u64 {
        self.until.map_or(0, |until| until.saturating_sub(now))
    }

    fn trial_on(&self, now: u64, policy: &Ejection) -> bool {
        self.trial
            .is_some_and(|since| now.saturating_sub(since) < policy.backoff_ms)
    }

    /// A response head arrived (any status when 5xx runs do not eject).
    pub fn success(&mut self) -> Change {
        let was_out = self.until.is_some();
        *self = Health::default();
        if was_out {
            Change::Restored
        } else {
            Change::None
        }
    }

    /// The server failed a request: refused or timed out the connect, reset or closed before
    /// a response byte, or timed out the response.
    pub fn failure(&mut self, now: u64, policy: &Ejection) -> Change {
        self.fives = 0;
        self.fails = self.fails.saturating_add(1);
        if self.trial.is_some() || (policy.max_fails > 0 && self.fails >= policy.max_fails) {
            return self.eject(now, policy);
        }
        Change::None
    }

    /// A response head with this status arrived.
    pub fn status(&mut self, status: u16, now: u64, policy: &Ejection) -> Change {
        if !(500..600).contains(&status) || policy.max_5xx == 0 {
            return self.success();
        }
        self.fails = 0;
        self.fives = self.fives.saturating_add(1);
        if self.trial.is_some() || self.fives >= policy.max_5xx {
            return self.eject(now, policy);
        }
        Change::None
    }

    fn eject(&mut self, now: u64, policy: &Ejection) -> Change {
        let shift = self.ejections.min(32);
        let backoff = policy
            .backoff_ms
            .saturating_mul(1u64 << shift)
            .min(policy.max_backoff_ms.max(policy.backoff_ms));
        self.ejections = self.ejections.saturating_add(1);
        self.until = Some(now.saturating_add(backoff));
        self.fails = 0;
        self.fives = 0;
        self.trial = None;
        Change::Ejected(backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Ejection = Ejection {
        max_fails: 3,
        max_5xx: 2,
        backoff_ms: 1_000,
        max_backoff_ms: 4_000,
    };

    #[test]
    fn failures_in_a_row_eject_and_a_success_in_between_forgives() {
        let mut h = Health::default();
        assert_eq!(h.failure(0, &P), Change::None);
        assert_eq!(h.failure(1, &P), Change::None);
        assert_eq!(h.success(), Change::None);
        assert_eq!(h.failure(2, &P), Change::None);
        assert_eq!(h.failure(3, &P), Change::None);
        assert_eq!(h.pick(3, &P), Pick::Healthy);
        assert_eq!(h.failure(4, &P), Change::Ejected(1_000));
        assert_eq!(h.pick(5, &P), Pick::Out);
        assert!(h.is_out(1_003, &P));
        assert_eq!(h.pick(1_003, &P), Pick::Out);
    }

    #[test]
    fn half_open_allows_one_trial_and_backoff_doubles_to_the_cap() {
        let mut h = Health::default();
        for t in 0..3 {
            h.failure(t, &P);
        }
        let mut now = 2;
        let mut expect = [2_000, 4_000, 4_000].into_iter();
        for _ in 0..3 {
            let until = now + 1_000_000;
            // Find when it is half-open: the first ms where pick says Trial.
            let mut t = now;
            while h.pick(t, &P) == Pick::Out && t < until {
                t += 1;
            }
            assert_eq!(
                h.pick(t, &P),
                Pick::Out,
                "a second request during the trial"
            );
            assert_eq!(h.failure(t, &P), Change::Ejected(expect.next().unwrap()));
            now = t;
        }
        // A successful trial restores and resets the backoff.
        let mut t = now;
        while h.pick(t, &P) == Pick::Out {
            t += 1;
        }
        assert_eq!(h.success(), Change::Restored);
        assert_eq!(h.pick(t, &P), Pick::Healthy);
        for i in 0..3 {
            h.failure(t + i, &P);
        }
        assert!(h.is_out(t + 3, &P));
        assert!(!h.is_out(t + 3 + 1_000, &P));
    }

    #[test]
    fn a_trial_with_no_outcome_stops_holding_the_server_after_the_backoff() {
        let mut h = Health::default();
        for t in 0..3 {
            h.failure(t, &P);
        }
        assert_eq!(h.out_for(2), 1_000);
        assert_eq!(h.pick(1_002, &P), Pick::Trial);
        assert_eq!(h.pick(1_500, &P), Pick::Out);
        assert!(h.is_out(2_001, &P));
        assert_eq!(h.pick(2_002, &P), Pick::Trial);
        assert_eq!(h.out_for(2_002), 0);
    }

    #[test]
    fn five_hundreds_eject_only_when_asked() {
        let mut h = Health::default();
        assert_eq!(h.status(503, 0, &P), Change::None);
        assert_eq!(h.status(200, 0, &P), Change::None);
        assert_eq!(h.status(500, 1, &P), Change::None);
        assert_eq!(h.status(502, 2, &P), Change::Ejected(1_000));
        let off = Ejection { max_5xx: 0, ..P };
        let mut h = Health::default();
        for t in 0..10 {
            assert_eq!(h.status(500, t, &off), Change::None);
        }
        assert!(!h.is_out(10, &P));
    }

    #[test]
    fn never_ejects_when_max_fails_is_zero() {
        let off = Ejection { max_fails: 0, ..P };
        let mut h = Health::default();
        for t in 0..100 {
            assert_eq!(h.failure(t, &off), Change::None);
        }
        assert_eq!(h.pick(100, &off), Pick::Healthy);
    }

    #[test]
    fn huge_counts_and_times_saturate() {
        let mut h = Health::default();
        let p = Ejection {
            max_fails: 1,
            max_5xx: 0,
            backoff_ms: u64::MAX / 2,
            max_backoff_ms: u64::MAX,
        };
        for _ in 0..40 {
            assert!(matches!(h.failure(u64::MAX - 1, &p), Change::Ejected(_)));
        }
        assert!(h.is_out(u64::MAX - 1, &p));
    }
}
