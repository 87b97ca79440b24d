//! The flags `keys create` and `keys update` share, and how they change a key record.

use super::parse::{self, LimitArg, SizeArg, TimeArg};
use super::CliError;
use crate::keys::model::KeySpec;

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
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl KeyFlags {
    /// Sets what the flags name; list flags add to what the key has.
    pub fn apply(&self, k: &mut KeySpec, now: i64) -> Result<(), CliError> {
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
                return Err(CliError(format!(
                    "the key would expire ({}) before it becomes valid ({}): check --expires-at/--ttl and --not-before",
                    parse::rfc3339(exp),
                    parse::rfc3339(nb)
                )));
            }
        }
        Ok(())
    }
}
