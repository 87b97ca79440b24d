//! Step 8: which limits apply to a key, and the admission against the shard's
//! `ratelimit::Limiter` (all-or-nothing over every limit), waiting briefly at the margin.

use std::cell::Cell;
use std::time::Duration;

use crate::clock::unix_ms;
use crate::context::ShardCtx;
use crate::keys::{KeyView, LimitSpec, Window};
use crate::ratelimit::{Admission, CreditSpec, KeyHandle};

/// Requests one shard lets wait at the margin at once; past it, they are answered at once.
pub const MAX_WAITING: usize = 256;

/// One waiting slot of the shard, released when the request stops waiting (or is dropped
/// because its client went away).
struct WaitSlot<'a>(&'a Cell<usize>);

impl<'a> WaitSlot<'a> {
    fn take(count: &'a Cell<usize>) -> Option<WaitSlot<'a>> {
        (count.get() < MAX_WAITING).then(|| {
            count.set(count.get() + 1);
            WaitSlot(count)
        })
    }
}

impl Drop for WaitSlot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Admits or refuses one request. A request the key has room for, held back only by the
/// shard's cross-shard reserve, waits (up to `[ratelimit] max_wait`, re-asking each time the
/// limiter says) instead of being refused; then it is settled like any other.
pub async fn admit(
    ctx: &ShardCtx,
    key: KeyHandle,
    limits: &[LimitSpec],
    credits: Option<&CreditSpec>,
    cost: u64,
) -> Admission {
    let start = unix_ms();
    let deadline = start.saturating_add(ctx.limit_max_wait_ms);
    let mut slot: Option<WaitSlot<'_>> = None;
    let mut now = start;
    loop {
        let may_wait = now < deadline && (slot.is_some() || ctx.limit_waiting.get() < MAX_WAITING);
        let answer = {
            let mut limiter = ctx.limiter.borrow_mut();
            if may_wait {
                limiter.admit_or_wait(key, limits, credits, cost, now)
            } else {
                limiter.admit(key, limits, credits, cost, now)
            }
        };
        let Admission::Wait { retry_in_ms } = answer else {
            return answer;
        };
        if slot.is_none() {
            slot = WaitSlot::take(&ctx.limit_waiting);
            ctx.metrics.borrow_mut().limit_waits += 1;
        }
        let pause = retry_in_ms.min(deadline.saturating_sub(now).max(1) as u64);
        glommio::timer::sleep(Duration::from_millis(pause)).await;
        now = unix_ms();
    }
}

/// At most one limit per window.
pub const MAX_LIMITS: usize = 5;

/// The key's own limits, then its plan's for the windows the key does not set (a key's own
/// limit replaces the plan's of the same window). Returns how many were written.
pub fn effective_limits(key: &KeyView<'_>, out: &mut [LimitSpec; MAX_LIMITS]) -> usize {
    let mut n = 0;
    for l in key.limits().chain(key.plan().limits()) {
        if n < MAX_LIMITS && !out[..n].iter().any(|o| o.window == l.window) {
            out[n] = l;
            n += 1;
        }
    }
    n
}

/// An empty limit table to fill.
pub const NO_LIMITS: [LimitSpec; MAX_LIMITS] = [LimitSpec {
    count: 0,
    window: Window::Second,
}; MAX_LIMITS];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{build, format, KeySpec, PlanSpec, Snapshot};

    #[test]
    fn key_limits_replace_the_plans_of_the_same_window() {
        let plan = PlanSpec {
            name: "free".into(),
            limits: vec!["20/s".parse().unwrap(), "1000/day".parse().unwrap()],
            ..Default::default()
        };
        let secret = format::generate_secret("kw_test").unwrap();
        let key = KeySpec {
            id: "key_a".into(),
            digest: format::digest(secret.as_bytes()),
            tenant: "t".into(),
            plan: "free".into(),
            enabled: true,
            limits: vec!["5/s".parse().unwrap(), "10/min".parse().unwrap()],
            ..Default::default()
        };
        let snap = Snapshot::from_bytes(&build(1, 0, &[plan], &[key]).unwrap()).unwrap();
        let view = snap.lookup(&format::digest(secret.as_bytes())).unwrap();
        let mut out = NO_LIMITS;
        let n = effective_limits(&view, &mut out);
        let got: Vec<String> = out[..n].iter().map(|l| l.to_string()).collect();
        assert_eq!(got, ["5/s", "10/min", "1000/day"]);
    }
}
