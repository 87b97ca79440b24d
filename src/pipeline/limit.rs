//! Step 8's inputs: which limits apply to a key. The admission itself is the shard's
//! `ratelimit::Limiter` (all-or-nothing over every limit).

use crate::keys::{KeyView, LimitSpec, Window};

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
