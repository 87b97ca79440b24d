//! A key's current usage for `keys show`: its effective limits and credits, read against the
//! rate-limit state the running gateway persists (`state_dir/ratelimit.state`, at least once
//! a second). Counts are as of the last write.

use crate::keys::model::Credits;
use crate::keys::{KeySpec, LimitSpec, PlanSpec};
use crate::ratelimit::{key_handle, CreditSpec, Limiter, LimiterConfig, Usage};
use std::path::Path;

/// The key's own limits, then its plan's for the windows the key does not set.
pub fn effective_limits(key: &KeySpec, plan: Option<&PlanSpec>) -> Vec<LimitSpec> {
    let mut out: Vec<LimitSpec> = Vec::new();
    let plan_limits = plan.map(|p| p.limits.as_slice()).unwrap_or_default();
    for l in key.limits.iter().chain(plan_limits) {
        if !out.iter().any(|o| o.window == l.window) {
            out.push(*l);
        }
    }
    out
}

/// Usage of `key` per the state file, or why it is unknown.
pub fn read(
    state_file: &Path,
    key: &KeySpec,
    plan: Option<&PlanSpec>,
    now_ms: i64,
) -> Result<(Vec<LimitSpec>, Usage), String> {
    let limits = effective_limits(key, plan);
    let credits = key.credits.map(|c: Credits| CreditSpec {
        total: c.total,
        refill: c.refill_limit(),
    });
    let bytes = std::fs::read(state_file).map_err(|e| {
        format!(
            "no usage recorded ({}: {e}); the gateway writes it while serving",
            state_file.display()
        )
    })?;
    let mut limiter = Limiter::new(
        0,
        LimiterConfig {
            shards: 1,
            sync_interval_ms: 10,
        },
    );
    let _ = limiter.restore_state(&bytes, now_ms);
    let usage = limiter.usage(key_handle(&key.id), &limits, credits.as_ref(), now_ms);
    Ok((limits, usage))
}

/// Human lines for `keys show`.
pub fn lines(limits: &[LimitSpec], usage: &Usage) -> Vec<String> {
    let mut out = Vec::new();
    for u in &usage.limits {
        out.push(format!(
            "usage        {}: {} used, {} left, resets in {} s",
            u.limit, u.used, u.remaining, u.reset_s
        ));
    }
    if limits.is_empty() && usage.credits_left.is_none() {
        out.push("usage        no limits".into());
    }
    if let Some(left) = usage.credits_left {
        let reset = usage
            .credits_reset_s
            .map_or(String::new(), |s| format!(", refill in {s} s"));
        out.push(format!("credits left {left}{reset}"));
    }
    out
}
