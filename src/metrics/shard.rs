//! One shard's counters and latency histograms.

use crate::error::Problem;
use hdrhistogram::Histogram;
use std::sync::Mutex;

/// What happened to a request, for `keyway_requests_total{outcome}`: forwarded and answered
/// by the upstream, or refused by the gateway with a problem code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Proxied,
    Refused(Problem),
    /// The client went away or the exchange broke after the response started.
    Aborted,
    /// Answered by the gateway itself: key self-service.
    SelfService,
}

impl Outcome {
    pub const COUNT: usize = Problem::ALL.len() + 3;

    pub fn index(self) -> usize {
        match self {
            Outcome::Proxied => 0,
            Outcome::Aborted => 1,
            Outcome::SelfService => 2,
            Outcome::Refused(p) => 3 + p.index(),
        }
    }

    pub fn from_index(i: usize) -> Outcome {
        match i {
            0 => Outcome::Proxied,
            1 => Outcome::Aborted,
            2 => Outcome::SelfService,
            i => Outcome::Refused(Problem::ALL[i - 3]),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Proxied => "proxied",
            Outcome::Aborted => "aborted",
            Outcome::SelfService => "self_service",
            Outcome::Refused(p) => p.code(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Protocol,
    Reset,
    Overloaded,
    /// Every server of the upstream was out of the rotation.
    Down,
}

impl UpstreamErrorKind {
    pub const ALL: [UpstreamErrorKind; 6] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Protocol,
        UpstreamErrorKind::Reset,
        UpstreamErrorKind::Overloaded,
        UpstreamErrorKind::Down,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Protocol => "protocol",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::Overloaded => "overloaded",
            UpstreamErrorKind::Down => "down",
        }
    }
}

/// Counters of one shard, by metric slot (`context::MetricSlots`): route slot 0 is "no
/// route". Slots only grow, across reloads.
#[derive(Clone)]
pub struct ShardMetrics {
    /// `[route_slot * Outcome::COUNT + outcome]`
    pub requests: Vec<u64>,
    /// `[upstream_slot * UpstreamErrorKind::ALL.len() + kind]`
    pub upstream_errors: Vec<u64>,
    /// Requests resent to another server after a failure before any response byte.
    pub upstream_retries: u64,
    /// Per upstream: times one of its servers left this shard's rotation (copied from the
    /// pools when published).
    pub upstream_ejections: Vec<u64>,
    /// Per upstream: its servers out of this shard's rotation (a gauge, copied likewise).
    pub upstream_servers_out: Vec<u64>,
    /// Per server of every upstream, in config order: 1 if out of this shard's rotation.
    pub server_out: Vec<u8>,
    /// Microseconds, 1 µs to 1 hour, 3 significant digits.
    pub request_us: Histogram<u64>,
    pub upstream_us: Histogram<u64>,
    pub connections_active: u64,
    /// Requests refused by a rate limit or quota, by plan name (few plans: a short list).
    pub ratelimited: Vec<(String, u64)>,
    /// Requests shed under load, by plan name (`none` on public routes).
    pub shed: Vec<(String, u64)>,
    /// Requests that waited at the margin for the cross-shard reserve (whatever the outcome).
    pub limit_waits: u64,
    /// Audit lines dropped because the writer's queue was full.
    pub audit_dropped: u64,
}

impl ShardMetrics {
    /// Counters for `routes` route slots (slot 0 included) and `upstreams` upstream slots.
    pub fn new(routes: usize, upstreams: usize) -> ShardMetrics {
        let hist = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        ShardMetrics {
            requests: vec![0; routes.max(1) * Outcome::COUNT],
            upstream_errors: vec![0; upstreams * UpstreamErrorKind::ALL.len()],
            upstream_retries: 0,
            upstream_ejections: vec![0; upstreams],
            upstream_servers_out: vec![0; upstreams],
            server_out: Vec::new(),
            request_us: hist(),
            upstream_us: hist(),
            connections_active: 0,
            ratelimited: Vec::new(),
            shed: Vec::new(),
            limit_waits: 0,
            audit_dropped: 0,
        }
    }

    /// Room for `routes` route slots and `upstreams` upstream slots (never shrinks).
    pub fn grow(&mut self, routes: usize, upstreams: usize) {
        let grow = |v: &mut Vec<u64>, n: usize| {
            if v.len() < n {
                v.resize(n, 0);
            }
        };
        grow(&mut self.requests, routes * Outcome::COUNT);
        grow(
            &mut self.upstream_errors,
            upstreams * UpstreamErrorKind::ALL.len(),
        );
        grow(&mut self.upstream_ejections, upstreams);
        grow(&mut self.upstream_servers_out, upstreams);
    }

    /// Counts one finished request on route slot `slot` (0: no route matched).
    #[inline]
    pub fn request(&mut self, slot: usize, outcome: Outcome, total_us: u64) {
        self.requests[slot * Outcome::COUNT + outcome.index()] += 1;
        self.request_us.saturating_record(total_us.max(1));
    }

    #[inline]
    pub fn upstream_time(&mut self, us: u64) {
        self.upstream_us.saturating_record(us.max(1));
    }

    /// Counts a 429 for `plan` (allocates only the first time a plan is seen).
    pub fn ratelimited(&mut self, plan: &str) {
        count_for(&mut self.ratelimited, plan);
    }

    /// Counts a request shed for `plan`.
    pub fn shed(&mut self, plan: &str) {
        count_for(&mut self.shed, plan);
    }

    #[inline]
    pub fn upstream_error(&mut self, upstream: usize, kind: UpstreamErrorKind) {
        let i = upstream * UpstreamErrorKind::ALL.len() + kind as usize;
        self.upstream_errors[i] += 1;
    }
}

/// One more for `plan` in a short per-plan list (allocates the first time a plan is seen).
fn count_for(list: &mut Vec<(String, u64)>, plan: &str) {
    match list.iter_mut().find(|(p, _)| p == plan) {
        Some((_, n)) => *n += 1,
        None => list.push((plan.to_string(), 1)),
    }
}

/// The shards' latest published copies, read by the admin listener.
pub struct Published {
    pub shards: Vec<Mutex<Option<ShardMetrics>>>,
}

impl Published {
    pub fn new(shards: usize) -> Published {
        Published {
            shards: (0..shards).map(|_| Mutex::new(None)).collect(),
        }
    }

    pub fn publish(&self, shard: usize, m: &ShardMetrics) {
        if let Ok(mut slot) = self.shards[shard].lock() {
            match slot.as_mut() {
                Some(s) => s.clone_from(m),
                None => *slot = Some(m.clone()),
            }
        }
    }
}
