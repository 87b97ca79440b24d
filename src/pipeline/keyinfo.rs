//! What the pipeline tells about the key beyond id, tenant and plan: its context for the
//! upstream (`x-keyway-scopes`, `x-keyway-meta-*`) and its lifecycle for the client
//! (`Deprecation`, `Sunset`).

use crate::http::date::imf_fixdate;
use crate::http::{is_tchar, is_valid_value};
use crate::keys::model::Credits;
use crate::keys::KeyView;
use crate::ratelimit::Usage;
use serde_json::json;

/// Keys expiring within this many seconds announce it with `Sunset`.
pub const SUNSET_WARNING_S: i64 = 7 * 86_400;

/// Response headers about the key's lifecycle (allocated only when there is one to send).
#[derive(Default)]
pub struct Lifecycle {
    pub deprecation: Option<String>,
    pub sunset: Option<String>,
}

/// `Deprecation` (a structured date: now) for a rotated-out secret; `Sunset` (HTTP-date) at
/// the earliest of its grace end and the key's expiry when that is within 7 days.
pub fn lifecycle_headers(grace_until: Option<i64>, expiring: Option<i64>, now: i64) -> Lifecycle {
    let end = match (grace_until, expiring) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Lifecycle {
        deprecation: grace_until.map(|_| format!("@{now}")),
        // Total: a grace or expiry past year 9999 says 9999-12-31, never panics.
        sunset: end.map(|t| String::from_utf8_lossy(&imf_fixdate(t)).into_owned()),
    }
}

/// The key's context for the upstream beyond id/tenant/plan: `x-keyway-scopes` (the key's
/// own scopes, else its plan's, comma-separated) and one `x-keyway-meta-<name>` per metadata
/// pair. Values were checked at creation; anything not a valid header value is skipped.
pub fn write_key_context(
    out: &mut Vec<u8>,
    names: &crate::config::Identity,
    key: &crate::keys::KeyView<'_>,
) {
    let own = key.scopes();
    let mut first = true;
    let mut push_scope = |out: &mut Vec<u8>, scope: &str| {
        if !is_valid_value(scope.as_bytes()) {
            return;
        }
        if first {
            out.extend_from_slice(names.scopes_header.as_bytes());
            out.extend_from_slice(b": ");
            first = false;
        } else {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(scope.as_bytes());
    };
    if own.len() > 0 {
        for s in own {
            push_scope(out, s);
        }
    } else {
        for s in key.plan().scopes() {
            push_scope(out, s);
        }
    }
    if !first {
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in key.metadata() {
        if name.bytes().all(is_tchar) && is_valid_value(value.as_bytes()) {
            out.extend_from_slice(names.meta_prefix.as_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// `own` when the key sets any, else its plan's.
fn own_or_plan<'a>(own: Vec<&'a str>, plan: Vec<&'a str>) -> Vec<&'a str> {
    if own.is_empty() {
        plan
    } else {
        own
    }
}

/// The self-service answer (JSON) for `key`: what it may do and what is left of its limits
/// (`usage`, from this gateway's counters). The key's own scopes, addresses and body limit,
/// else its plan's. Never the secret, nor the metadata.
pub fn self_service_body(
    key: &KeyView<'_>,
    grace_until: Option<i64>,
    usage: &Usage,
    credits: Option<Credits>,
) -> Vec<u8> {
    let plan = key.plan();
    let limits: Vec<_> = usage
        .limits
        .iter()
        .map(|u| {
            json!({
                "limit": u.limit.to_string(),
                "count": u.limit.count,
                "window": u.limit.window.name(),
                "used": u.used,
                "remaining": u.remaining,
                "reset_seconds": u.reset_s,
            })
        })
        .collect();
    let credits = credits.map(|c| {
        json!({
            "total": c.total,
            "refill": c.refill.map(|w| w.name()),
            "remaining": usage.credits_left,
            "reset_seconds": usage.credits_reset_s,
        })
    });
    let body = json!({
        "id": key.id(),
        "name": key.name(),
        "tenant": key.tenant(),
        "plan": plan.name(),
        "scopes": own_or_plan(key.scopes().collect(), plan.scopes().collect()),
        "allowed_ips": own_or_plan(key.allow_ips().collect(), plan.allow_ips().collect()),
        "max_body_bytes": key.max_body_bytes().or(plan.max_body_bytes()),
        "limits": limits,
        "credits": credits,
        "not_before": key.not_before(),
        "expires_at": key.expires_at(),
        "rotation": match grace_until {
            Some(t) => json!({"secret": "previous", "works_until": t}),
            None => json!({"secret": "current"}),
        },
    });
    let mut out = serde_json::to_vec_pretty(&body).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_date_formats_without_panicking() {
        let now = 1_700_000_000;
        for t in [i64::MAX, 253_402_300_800, 1 << 40, -1, i64::MIN] {
            let l = lifecycle_headers(Some(t), None, now);
            assert!(l.sunset.is_some_and(|s| s.ends_with(" GMT")));
            let l = lifecycle_headers(None, Some(t), now);
            assert!(l.sunset.is_some());
        }
        let far = lifecycle_headers(Some(i64::MAX), None, now).sunset.unwrap();
        assert_eq!(far, "Fri, 31 Dec 9999 23:59:59 GMT");
        let past = lifecycle_headers(Some(-5), None, now).sunset.unwrap();
        assert_eq!(past, "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
