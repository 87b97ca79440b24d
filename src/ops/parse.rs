//! Flag values of the key and plan commands: limits, sizes, times, durations, metadata,
//! scopes and CIDRs, parsed (and checked with `store::validate`) before anything is opened.

use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::keys::model::LimitSpec;
use crate::store::validate;

/// `--limit COUNT/WINDOW`, or `none` to drop every own limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitArg {
    None,
    Set(LimitSpec),
}

impl FromStr for LimitArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(LimitArg::None),
            _ => s.parse().map(LimitArg::Set),
        }
    }
}

/// `--max-body SIZE` (`1MiB`, `512KiB`, `10MB`, `2000`), or `none` to remove it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeArg {
    None,
    Bytes(u64),
}

impl FromStr for SizeArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(SizeArg::None);
        }
        let bad = || {
            format!("bad size {s:?}: write bytes with an optional unit B, KB, KiB, MB, MiB, GB, GiB (e.g. 1MiB), or none")
        };
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1000,
            "kib" => 1 << 10,
            "mb" => 1_000_000,
            "mib" => 1 << 20,
            "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            _ => return Err(bad()),
        };
        n.checked_mul(mult)
            .filter(|&b| b <= i64::MAX as u64)
            .map(SizeArg::Bytes)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

impl SizeArg {
    pub fn bytes(self) -> Option<u64> {
        match self {
            SizeArg::None => None,
            SizeArg::Bytes(n) => Some(n),
        }
    }
}

/// An RFC 3339 time (`2026-12-31T23:59:59Z`, `2026-06-01T09:00:00+02:00`), or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeArg {
    None,
    At(i64),
}

impl FromStr for TimeArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(TimeArg::None);
        }
        OffsetDateTime::parse(s, &Rfc3339)
            .map(|t| TimeArg::At(t.unix_timestamp()))
            .map_err(|_| {
                format!("bad time {s:?}: write RFC 3339, e.g. 2026-12-31T23:59:59Z, or none")
            })
    }
}

impl TimeArg {
    pub fn unix(self) -> Option<i64> {
        match self {
            TimeArg::None => None,
            TimeArg::At(t) => Some(t),
        }
    }
}

/// A duration such as `30d`, `24h`, `90min`, `1h 30m`; in whole seconds.
pub fn duration(s: &str) -> Result<u64, String> {
    humantime::parse_duration(s)
        .map(|d| d.as_secs())
        .map_err(|e| format!("bad duration {s:?} ({e}): write e.g. 30d, 24h, 15min"))
}

/// Longest `keys rotate --grace`: a year and a day. A grace lets clients move to the new
/// secret; longer would be a second permanent key.
pub const MAX_GRACE_S: u64 = 366 * 86_400;

/// `--grace DURATION`: a duration of at most [`MAX_GRACE_S`].
pub fn grace(s: &str) -> Result<u64, String> {
    let secs = duration(s)?;
    if secs > MAX_GRACE_S {
        return Err(format!(
            "grace {s:?} is longer than 366 days: rotate with a shorter grace, e.g. 30d"
        ));
    }
    Ok(secs)
}

/// `--meta NAME=VALUE`.
pub fn meta(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| "write NAME=VALUE, e.g. --meta team=payments".to_string())?;
    validate::meta_name(k).map_err(|e| e.to_string())?;
    validate::meta_value(k, v).map_err(|e| e.to_string())?;
    Ok((k.to_owned(), v.to_owned()))
}

/// `--scope 'METHOD PATH'`.
pub fn scope(s: &str) -> Result<String, String> {
    validate::scope(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

/// `--allow-ip CIDR` (or one address), stored in canonical form.
pub fn cidr(s: &str) -> Result<String, String> {
    validate::normalize_cidr(s).map_err(|e| e.to_string())
}

/// Unix seconds as RFC 3339 UTC (`2026-12-31T23:59:59Z`).
pub fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{t}"))
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds (`2026-12-31T23:59:59.123Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let base = rfc3339(secs);
    match base.strip_suffix('Z') {
        Some(head) => format!("{head}.{:03}Z", ms.rem_euclid(1000)),
        None => base,
    }
}

/// Sets `limit` in `list`, replacing an existing limit of the same window.
pub fn set_limit(list: &mut Vec<LimitSpec>, limit: LimitSpec) {
    list.retain(|l| l.window != limit.window);
    list.push(limit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("1MiB".parse(), Ok(SizeArg::Bytes(1 << 20)));
        assert_eq!("512kib".parse(), Ok(SizeArg::Bytes(512 << 10)));
        assert_eq!("10MB".parse(), Ok(SizeArg::Bytes(10_000_000)));
        assert_eq!("2000".parse(), Ok(SizeArg::Bytes(2000)));
        assert_eq!("none".parse(), Ok(SizeArg::None));
        for bad in ["", "MiB", "1.5MiB", "1 furlong", "-1", "99999999999GiB"] {
            assert!(bad.parse::<SizeArg>().is_err(), "{bad}");
        }
    }

    #[test]
    fn times_and_durations() {
        assert_eq!("1970-01-01T00:01:00Z".parse(), Ok(TimeArg::At(60)));
        assert_eq!("1970-01-01T01:00:00+01:00".parse(), Ok(TimeArg::At(0)));
        assert!("2026-13-01T00:00:00Z".parse::<TimeArg>().is_err());
        assert!("tomorrow".parse::<TimeArg>().is_err());
        assert_eq!(rfc3339(60), "1970-01-01T00:01:00Z");
        assert_eq!(duration("30d"), Ok(30 * 86_400));
        assert_eq!(duration("24h"), Ok(86_400));
        assert_eq!(duration("0s"), Ok(0));
        assert!(duration("soon").is_err());
        assert_eq!(grace("366d"), Ok(MAX_GRACE_S));
        assert!(grace("367d").is_err() && grace("9999y").is_err());
    }

    #[test]
    fn meta_and_limits() {
        assert_eq!(meta("team=a=b"), Ok(("team".into(), "a=b".into())));
        assert!(meta("Team=x").is_err());
        assert!(meta("team").is_err());
        assert_eq!("none".parse(), Ok(LimitArg::None));
        let mut l = vec!["5/s".parse().unwrap(), "9/h".parse().unwrap()];
        set_limit(&mut l, "7/s".parse().unwrap());
        assert_eq!(l, vec!["9/h".parse().unwrap(), "7/s".parse().unwrap()]);
    }
}
