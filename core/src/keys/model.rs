//! The control plane's view of plans and keys: plain owned records that the store reads and
//! writes and that `snapshot::build` compiles into the data plane's zero-copy table.
//!
//! No secret ever appears here: a key is known by its SHA-256 digest and a display hint.

use std::fmt;
use std::str::FromStr;

/// A rate window. Calendar months are UTC months (used by the rate-limit issue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    Second,
    Minute,
    Hour,
    Day,
    Month,
}

impl Window {
    /// The window's name as used in `RateLimit-Policy` and in the CLI (`20/s` -> "second").
    pub fn name(self) -> &'static str {
        match self {
            Window::Second => "second",
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// Nominal length in seconds (a month counts as 30 days here; the limiter uses the
    /// calendar).
    pub fn seconds(self) -> u64 {
        match self {
            Window::Second => 1,
            Window::Minute => 60,
            Window::Hour => 3600,
            Window::Day => 86_400,
            Window::Month => 30 * 86_400,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Window::Second => "s",
            Window::Minute => "min",
            Window::Hour => "h",
            Window::Day => "day",
            Window::Month => "month",
        }
    }
}

/// `count` requests per `window`, written `20/s`, `1000/min`, `10/h`, `100000/day`, `5/month`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LimitSpec {
    pub count: u64,
    pub window: Window,
}

impl fmt::Display for LimitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.window.suffix())
    }
}

impl FromStr for LimitSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "bad limit {s:?}: write COUNT/WINDOW with WINDOW one of s, min, h, day, month (e.g. 20/s)"
            )
        };
        let (count, window) = s.trim().split_once('/').ok_or_else(bad)?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("bad limit {s:?}: the count must be at least 1"));
        }
        let window = match window.trim() {
            "s" | "sec" | "second" => Window::Second,
            "m" | "min" | "minute" => Window::Minute,
            "h" | "hour" => Window::Hour,
            "d" | "day" => Window::Day,
            "month" => Window::Month,
            _ => return Err(bad()),
        };
        Ok(LimitSpec { count, window })
    }
}

/// A key's credit quota: `total` uses (each request spends its cost); with `refill`, the
/// balance returns to `total` at the start of each UTC day or month (`Window::Day` or
/// `Window::Month` only; `store::validate` refuses other windows). Without `refill` the
/// credits, once spent, are spent for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Credits {
    pub total: u64,
    pub refill: Option<Window>,
}

impl Credits {
    /// The refill as the rate limiter's `CreditSpec::refill` wants it: back to `total` per
    /// window (`CreditSpec { total, refill: credits.refill_limit() }`).
    pub fn refill_limit(&self) -> Option<LimitSpec> {
        self.refill.map(|window| LimitSpec {
            count: self.total,
            window,
        })
    }
}

impl fmt::Display for Credits {
    /// `1000` or `1000, refilled each UTC day` / `... month`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.refill {
            None => write!(f, "{} (no refill)", self.total),
            Some(w) => write!(f, "{}, refilled each UTC {}", self.total, w.name()),
        }
    }
}

/// A named tier: what every key on it gets unless the key overrides it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PlanSpec {
    pub name: String,
    pub limits: Vec<LimitSpec>,
    /// `METHOD PATH` patterns (`GET /v1/products/*`, `* /v1/orders/**`).
    pub scopes: Vec<String>,
    pub max_body_bytes: Option<u64>,
    /// CIDRs; empty = any address.
    pub allow_ips: Vec<String>,
    /// Upstream name overriding the route's (checked against the config at serve time).
    pub upstream: Option<String>,
    pub priority: i32,
}

/// A retired secret that still authenticates until `grace_until` (unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraceSecret {
    pub digest: [u8; 32],
    pub grace_until: i64,
}

/// One API key as the control plane keeps it. Times are unix seconds (UTC).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeySpec {
    /// Public id, `key_` + base62; safe to log and to send upstream.
    pub id: String,
    /// SHA-256 of the whole secret string.
    pub digest: [u8; 32],
    /// Display hint: prefix + first 4 random chars (e.g. `kw_live_Ab3x`); never enough to use.
    pub hint: String,
    pub tenant: String,
    pub name: String,
    pub plan: String,
    /// The key's own limits; they replace the plan's limits of the same window.
    pub limits: Vec<LimitSpec>,
    /// The key's own scopes; when empty the plan's apply.
    pub scopes: Vec<String>,
    pub allow_ips: Vec<String>,
    pub max_body_bytes: Option<u64>,
    /// The key's credit quota, if it has one (none: only its rate limits apply).
    pub credits: Option<Credits>,
    /// Metadata pairs sent upstream as `x-keyway-meta-<name>`.
    pub metadata: Vec<(String, String)>,
    pub not_before: Option<i64>,
    pub expires_at: Option<i64>,
    pub enabled: bool,
    pub created_at: i64,
    /// Id of the key this one was rotated from, if any (informational).
    pub rotated_from: Option<String>,
    /// Secrets replaced by a rotation that still work until their grace ends.
    pub grace: Vec<GraceSecret>,
    /// Imported from another system: not of our format, so the format check is skipped.
    pub legacy: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_print() {
        for (s, count, window) in [
            ("20/s", 20, Window::Second),
            ("1000/min", 1000, Window::Minute),
            ("10/h", 10, Window::Hour),
            ("100000/day", 100_000, Window::Day),
            ("5/month", 5, Window::Month),
        ] {
            let l: LimitSpec = s.parse().unwrap();
            assert_eq!(l, LimitSpec { count, window });
            assert_eq!(l.to_string(), s);
        }
        for bad in ["", "20", "/s", "x/s", "0/s", "20/w", "-1/s"] {
            assert!(bad.parse::<LimitSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_have_no_credits_by_default() {
        assert_eq!(KeySpec::default().credits, None);
        let monthly = Credits {
            total: 500,
            refill: Some(Window::Month),
        };
        assert_eq!(
            monthly.refill_limit(),
            Some(LimitSpec {
                count: 500,
                window: Window::Month
            })
        );
        assert_eq!(monthly.to_string(), "500, refilled each UTC month");
        let once = Credits {
            total: 7,
            refill: None,
        };
        assert_eq!(once.refill_limit(), None);
        assert_eq!(once.to_string(), "7 (no refill)");
    }
}
