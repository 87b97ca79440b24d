//! What a plan or key record may contain. The store checks every record before writing it;
//! the CLI uses the same functions to normalise flags. Messages name the bad field and say
//! what is accepted; none of them echo a secret.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Result, StoreError};
use crate::http::is_tchar;
use crate::keys::model::{Credits, KeySpec, LimitSpec, PlanSpec, Window};

fn invalid(msg: String) -> StoreError {
    StoreError::Invalid(msg)
}

/// Ids, plan names and upstream names: 1-64 of `A-Z a-z 0-9 _ . -`.
fn identifier(what: &str, s: &str) -> Result<()> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "bad {what} {s:?}: use 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'"
        )))
    }
}

pub fn plan_name(s: &str) -> Result<()> {
    identifier("plan name", s)
}

pub fn key_id(s: &str) -> Result<()> {
    identifier("key id", s)
}

/// A tenant is sent upstream as a header value: 1-128 visible ASCII characters, no spaces.
pub fn tenant(s: &str) -> Result<()> {
    if (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid(format!(
            "bad tenant {s:?}: use 1-128 visible ASCII characters without spaces"
        )))
    }
}

/// A key's display name: free text up to 200 characters, no control characters.
pub fn key_name(s: &str) -> Result<()> {
    if s.chars().count() <= 200 && !s.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(invalid(
            "bad key name: use at most 200 characters and no control characters".into(),
        ))
    }
}

/// `METHOD PATH`: method a token or `*`; path from `/`, segments literal, `*` (one segment)
/// or `**` (the rest, last segment only).
pub fn scope(s: &str) -> Result<()> {
    // One grammar: the data plane's compiler decides what a scope is, so the CLI can never
    // store a scope the gateway would refuse at load.
    crate::policy::ScopeSet::compile(std::iter::once(s))
        .map(|_| ())
        .map_err(|e| invalid(e.to_string()))
}

/// Parses an allowlist entry: a CIDR, or a bare address meaning just that address.
/// Returns the canonical form (host bits cleared), which is what is stored.
pub fn normalize_cidr(s: &str) -> Result<String> {
    let bad = || {
        invalid(format!(
            "bad --allow-ip {s:?}: write a CIDR (10.0.0.0/8, 2001:db8::/32) or an address"
        ))
    };
    // The address is read as the gateway's allowlist reads it (std's strict parser: no
    // leading-zero octets), so the store never holds an entry the gateway would refuse.
    let addr = s.split_once('/').map_or(s, |(a, _)| a);
    addr.parse::<IpAddr>().map_err(|_| bad())?;
    let net = match s.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => s.parse::<IpAddr>().map(IpNet::from).map_err(|_| bad())?,
    };
    Ok(net.trunc().to_string())
}

/// A stored allowlist entry: must already be canonical.
pub fn cidr(s: &str) -> Result<()> {
    if normalize_cidr(s)? == s {
        Ok(())
    } else {
        Err(invalid(format!(
            "allowlist entry {s:?} is not canonical: write {}",
            normalize_cidr(s)?
        )))
    }
}

/// Metadata names become `x-keyway-meta-<name>`: lowercase header-token characters.
pub fn meta_name(s: &str) -> Result<()> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| is_tchar(b) && !b.is_ascii_uppercase() && b != b'=');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "bad metadata name {s:?}: use 1-64 lowercase header-name characters (a-z 0-9 - _ ...)"
        )))
    }
}

/// A metadata value is a header value: visible ASCII, spaces and tabs, not at either end.
pub fn meta_value(name: &str, v: &str) -> Result<()> {
    let chars_ok = v
        .bytes()
        .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t');
    let ends_ok = !v.starts_with([' ', '\t']) && !v.ends_with([' ', '\t']);
    if chars_ok && ends_ok && v.len() <= 1024 {
        Ok(())
    } else {
        Err(invalid(format!(
            "bad value for metadata {name:?}: use at most 1024 visible ASCII characters, \
             spaces or tabs, not starting or ending with a space"
        )))
    }
}

fn limits(owner: &str, list: &[LimitSpec]) -> Result<()> {
    for (i, a) in list.iter().enumerate() {
        if list[..i].iter().any(|b| b.window == a.window) {
            return Err(invalid(format!(
                "{owner} has two limits per {}: keep one",
                a.window.name()
            )));
        }
    }
    Ok(())
}

fn size(what: &str, v: Option<u64>) -> Result<()> {
    match v {
        Some(n) if n > i64::MAX as u64 => Err(invalid(format!("{what} is too large"))),
        _ => Ok(()),
    }
}

/// Credits: at least 1 and within SQLite's INTEGER; refilled per UTC day or month, if at all.
pub fn credits(c: &Credits) -> Result<()> {
    if c.total == 0 {
        return Err(invalid(
            "bad credits 0: give at least 1 (or none to remove them)".into(),
        ));
    }
    if c.total > i64::MAX as u64 {
        return Err(invalid(format!(
            "bad credits {}: at most {}",
            c.total,
            i64::MAX
        )));
    }
    match c.refill {
        None | Some(Window::Day) | Some(Window::Month) => Ok(()),
        Some(w) => Err(invalid(format!(
            "bad credit refill per {}: credits refill each day or month",
            w.name()
        ))),
    }
}

pub fn plan(p: &PlanSpec) -> Result<()> {
    plan_name(&p.name)?;
    limits(&format!("plan {:?}", p.name), &p.limits)?;
    p.scopes.iter().try_for_each(|s| scope(s))?;
    p.allow_ips.iter().try_for_each(|s| cidr(s))?;
    size("max body size", p.max_body_bytes)?;
    if let Some(u) = &p.upstream {
        identifier("upstream name", u)?;
    }
    Ok(())
}

pub fn key(k: &KeySpec) -> Result<()> {
    key_id(&k.id)?;
    tenant(&k.tenant)?;
    key_name(&k.name)?;
    plan_name(&k.plan)?;
    if k.hint.is_empty() || k.hint.len() > 64 || !k.hint.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(format!("bad hint for key {:?}", k.id)));
    }
    limits(&format!("key {:?}", k.id), &k.limits)?;
    k.scopes.iter().try_for_each(|s| scope(s))?;
    k.allow_ips.iter().try_for_each(|s| cidr(s))?;
    size("max body size", k.max_body_bytes)?;
    if let Some(c) = &k.credits {
        credits(c)?;
    }
    for (i, (name, value)) in k.metadata.iter().enumerate() {
        meta_name(name)?;
        meta_value(name, value)?;
        if k.metadata[..i].iter().any(|(n, _)| n == name) {
            return Err(invalid(format!("metadata {name:?} is given twice")));
        }
    }
    if let (Some(nb), Some(exp)) = (k.not_before, k.expires_at) {
        if exp <= nb {
            return Err(invalid(
                "the expiry must come after not-before: check --expires-at/--ttl and --not-before"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// An imported secret: 8-512 visible ASCII characters (it travels in a header).
/// The message never contains the secret.
pub fn foreign_secret(s: &str) -> std::result::Result<(), String> {
    if s.len() < 8 {
        Err("the key is shorter than 8 characters".into())
    } else if s.len() > 512 {
        Err("the key is longer than 512 characters".into())
    } else if !s.bytes().all(|b| b.is_ascii_graphic()) {
        Err("the key has a character that is not visible ASCII".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        for ok in [
            "GET /v1/products/*",
            "* /v1/orders/**",
            "POST /",
            "GET /v1/",
            "PURGE /cache/*/x",
        ] {
            scope(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in crate::policy::scope::BAD_SCOPE_EXAMPLES {
            assert!(scope(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidrs() {
        assert_eq!(normalize_cidr("10.1.2.3/8").unwrap(), "10.0.0.0/8");
        assert_eq!(normalize_cidr("192.0.2.7").unwrap(), "192.0.2.7/32");
        assert_eq!(normalize_cidr("2001:db8::1/32").unwrap(), "2001:db8::/32");
        assert_eq!(normalize_cidr("::1").unwrap(), "::1/128");
        // What the gateway's allowlist would refuse, the store refuses too.
        assert!(normalize_cidr("010.0.0.1/8").is_err());
        assert!(normalize_cidr("010.0.0.1").is_err());
        for bad in ["", "10.0.0.0/33", "example.com", "10.0.0/8"] {
            assert!(normalize_cidr(bad).is_err(), "{bad}");
        }
        assert!(cidr("10.0.0.0/8").is_ok());
        assert!(cidr("10.1.0.0/8").is_err());
    }

    #[test]
    fn metadata() {
        assert!(meta_name("team").is_ok());
        assert!(meta_name("cost-center_2").is_ok());
        for bad in ["", "Team", "a b", "a=b", "ä"] {
            assert!(meta_name(bad).is_err(), "{bad}");
        }
        assert!(meta_value("x", "hello world\tok").is_ok());
        assert!(meta_value("x", "").is_ok());
        for bad in [" lead", "trail ", "new\nline", "ü"] {
            assert!(meta_value("x", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_times_and_limits() {
        let mut k = crate::store::test_util::key("key_a", "free", "kw_live_abcdefgh");
        assert!(key(&k).is_ok());
        k.not_before = Some(100);
        k.expires_at = Some(100);
        assert!(key(&k).is_err());
        k.expires_at = Some(101);
        assert!(key(&k).is_ok());
        k.limits = vec!["1/s".parse().unwrap(), "2/s".parse().unwrap()];
        assert!(key(&k).is_err());
    }

    #[test]
    fn key_credits() {
        let mut k = crate::store::test_util::key("key_a", "free", "kw_live_abcdefgh");
        for (total, refill, ok) in [
            (1, None, true),
            (5, Some(Window::Day), true),
            (i64::MAX as u64, Some(Window::Month), true),
            (0, None, false),
            (i64::MAX as u64 + 1, None, false),
            (5, Some(Window::Second), false),
            (5, Some(Window::Minute), false),
            (5, Some(Window::Hour), false),
        ] {
            k.credits = Some(Credits { total, refill });
            assert_eq!(key(&k).is_ok(), ok, "{total} {refill:?}");
        }
    }

    #[test]
    fn foreign_secret_errors_do_not_echo_it() {
        let err = foreign_secret("abc def ghijkl").unwrap_err();
        assert!(!err.contains("abc"));
        assert!(foreign_secret("short").is_err());
        assert!(foreign_secret("0123456789abcdef").is_ok());
    }
}
