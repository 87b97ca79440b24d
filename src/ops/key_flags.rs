//! The flags `keys create` and `keys update` share, and how they change a key record.

use std::str::FromStr;

use super::parse::{self, LimitArg, SizeArg, TimeArg};
use super::Error;
use crate::keys::model::{Credits, KeySpec, Window};
use crate::store::validate;

/// `--credits N`, or `none` to remove the key's credits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreditsArg {
    None,
    Total(u64),
}

impl FromStr for CreditsArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(CreditsArg::None);
        }
        let n: u64 = s.parse().map_err(|_| {
            format!("bad credits {s:?}: write a whole number of at least 1 (e.g. 10000), or none")
        })?;
        let c = Credits {
            total: n,
            refill: None,
        };
        validate::credits(&c).map_err(|e| e.to_string())?;
        Ok(CreditsArg::Total(n))
    }
}

/// `--refill day|month`: when the credits return to their total (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefillArg(pub Window);

impl FromStr for RefillArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "day" => Ok(RefillArg(Window::Day)),
            "month" => Ok(RefillArg(Window::Month)),
            _ => Err(format!("bad refill {s:?}: write day or month")),
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct KeyFlags {
    /// Display name (free text).
    #[arg(long)]
    pub name: Option<String>,
    /// Allowed endpoint, `METHOD PATH` (repeatable); without any, the plan's scopes apply.
    #[arg(long = "scope", value_name = "METHOD PATH", value_parser = parse::scope)]
    pub scopes: Vec<String>,
    /// Metadata sent upstream as `x-keyway-meta-NAME` (repeatable; a NAME given again
    /// replaces its value).
    #[arg(long = "meta", value_name = "NAME=VALUE", value_parser = parse::meta)]
    pub meta: Vec<(String, String)>,
    /// Client addresses allowed, as CIDR or one address (repeatable).
    #[arg(long = "allow-ip", value_name = "CIDR", value_parser = parse::cidr)]
    pub allow_ips: Vec<String>,
    /// Own rate limit, e.g. 20/s, 1000/min, 100000/day (repeatable; replaces the plan's
    /// limit of the same window). `none` removes every own limit.
    #[arg(long = "limit", value_name = "COUNT/WINDOW")]
    pub limits: Vec<LimitArg>,
    /// Largest request body, e.g. 1MiB (`none`: the plan's).
    #[arg(long, value_name = "SIZE")]
    pub max_body: Option<SizeArg>,
    /// Expiry as RFC 3339, e.g. 2026-12-31T23:59:59Z (`none`: never).
    #[arg(long, value_name = "RFC3339", conflicts_with = "ttl")]
    pub expires_at: Option<TimeArg>,
    /// Expiry relative to now, e.g. 30d, 12h.
    #[arg(long, value_name = "DURATION", value_parser = parse::duration)]
    pub ttl: Option<u64>,
    /// Not valid before this RFC 3339 time (`none`: at once).
    #[arg(long, value_name = "RFC3339")]
    pub not_before: Option<TimeArg>,
    /// Credit quota: N uses in all, never refilled unless --refill (`none` removes the
    /// credits). Replaces the key's credits and their refill.
    #[arg(long, value_name = "N")]
    pub credits: Option<CreditsArg>,
    /// With --credits N: the credits return to N at each UTC day or month start.
    #[arg(long, value_name = "day|month")]
    pub refill: Option<RefillArg>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl KeyFlags {
    /// The credits the flags set: `None` to leave them, `Some(None)` to remove them. Refuses
    /// `--refill` without `--credits N`.
    pub fn credits(&self) -> Result<Option<Option<Credits>>, Error> {
        match (self.credits, self.refill) {
            (None, None) => Ok(None),
            (Some(CreditsArg::None), None) => Ok(Some(None)),
            (Some(CreditsArg::Total(total)), refill) => Ok(Some(Some(Credits {
                total,
                refill: refill.map(|r| r.0),
            }))),
            (None | Some(CreditsArg::None), Some(_)) => Err(Error::invalid(
                "--refill needs credits to refill: add --credits N (e.g. --credits 10000 --refill month)",
            )),
        }
    }

    /// Sets what the flags name; list flags add to what the key has.
    pub fn apply(&self, k: &mut KeySpec, now: i64) -> Result<(), Error> {
        if let Some(credits) = self.credits()? {
            k.credits = credits;
        }
        if let Some(name) = &self.name {
            k.name.clone_from(name);
        }
        for s in &self.scopes {
            if !k.scopes.contains(s) {
                k.scopes.push(s.clone());
            }
        }
        for (name, value) in &self.meta {
            match k.metadata.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1.clone_from(value),
                None => k.metadata.push((name.clone(), value.clone())),
            }
        }
        for ip in &self.allow_ips {
            if !k.allow_ips.contains(ip) {
                k.allow_ips.push(ip.clone());
            }
        }
        for l in &self.limits {
            match *l {
                LimitArg::None => k.limits.clear(),
                LimitArg::Set(l) => parse::set_limit(&mut k.limits, l),
            }
        }
        if let Some(size) = self.max_body {
            k.max_body_bytes = size.bytes();
        }
        if let Some(t) = self.expires_at {
            k.expires_at = t.unix();
        }
        if let Some(ttl) = self.ttl {
            let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
            k.expires_at = Some(now.saturating_add(ttl));
        }
        if let Some(t) = self.not_before {
            k.not_before = t.unix();
        }
        if let (Some(nb), Some(exp)) = (k.not_before, k.expires_at) {
            if exp <= nb {
                return Err(Error::invalid(format!(
                    "the key would expire ({}) before it becomes valid ({}): check --expires-at/--ttl and --not-before",
                    parse::rfc3339(exp),
                    parse::rfc3339(nb)
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cmd {
        #[command(flatten)]
        flags: KeyFlags,
    }

    fn flags(args: &[&str]) -> Result<KeyFlags, clap::Error> {
        Cmd::try_parse_from(std::iter::once("keys").chain(args.iter().copied())).map(|c| c.flags)
    }

    fn applied(start: Option<Credits>, args: &[&str]) -> Result<Option<Credits>, Error> {
        let mut k = KeySpec {
            credits: start,
            ..KeySpec::default()
        };
        flags(args).unwrap().apply(&mut k, 0)?;
        Ok(k.credits)
    }

    const MONTHLY: Credits = Credits {
        total: 500,
        refill: Some(Window::Month),
    };

    #[test]
    fn credit_flags_parse() {
        assert_eq!("none".parse(), Ok(CreditsArg::None));
        assert_eq!("10000".parse(), Ok(CreditsArg::Total(10_000)));
        assert_eq!("day".parse(), Ok(RefillArg(Window::Day)));
        assert_eq!("month".parse(), Ok(RefillArg(Window::Month)));
        for bad in ["", "0", "-1", "1.5", "1k", "9223372036854775808", "x"] {
            assert!(bad.parse::<CreditsArg>().is_err(), "{bad}");
        }
        for bad in ["", "hour", "h", "Day", "1/day", "none"] {
            assert!(bad.parse::<RefillArg>().is_err(), "{bad}");
        }
        assert!(flags(&["--credits", "0"]).is_err());
        assert!(flags(&["--credits", "5", "--refill", "week"]).is_err());
    }

    #[test]
    fn credit_flags_set_replace_and_remove() {
        assert_eq!(applied(None, &[]).unwrap(), None);
        assert_eq!(applied(Some(MONTHLY), &[]).unwrap(), Some(MONTHLY));
        assert_eq!(
            applied(None, &["--credits", "500", "--refill", "month"]).unwrap(),
            Some(MONTHLY)
        );
        assert_eq!(
            applied(None, &["--credits", "7"]).unwrap(),
            Some(Credits {
                total: 7,
                refill: None
            })
        );
        // --credits replaces the refill too.
        assert_eq!(
            applied(Some(MONTHLY), &["--credits", "9", "--refill", "day"]).unwrap(),
            Some(Credits {
                total: 9,
                refill: Some(Window::Day)
            })
        );
        assert_eq!(
            applied(Some(MONTHLY), &["--credits", "9"]).unwrap(),
            Some(Credits {
                total: 9,
                refill: None
            })
        );
        assert_eq!(
            applied(Some(MONTHLY), &["--credits", "none"]).unwrap(),
            None
        );
        assert_eq!(applied(None, &["--credits", "none"]).unwrap(), None);
    }

    #[test]
    fn refill_without_credits_is_a_one_line_error() {
        for args in [
            &["--refill", "day"][..],
            &["--credits", "none", "--refill", "month"],
        ] {
            let e = applied(Some(MONTHLY), args).unwrap_err();
            assert!(
                e.detail.contains("--credits N") && !e.detail.contains('\n'),
                "{}",
                e.detail
            );
        }
    }
}
