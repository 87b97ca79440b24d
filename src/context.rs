//! What a shard holds: the gateway-wide immutable [`Shared`] state and its own
//! [`ShardCtx`] (pools, counters, flags), which only its thread ever touches.

use crate::audit::{Batch, ShardAudit};
use crate::buffers::Spares;
use crate::config::Cidr;
use crate::config::Config;
use crate::config::RateLimitHeaders;
use crate::http::date::{imf_fixdate, IMF_FIXDATE_LEN};
use crate::http::{HeadLimits, KnownHeaders};
use crate::keys::overlay::Revoked;
use crate::keytable::{Delta, KeyTable};
use crate::metrics::{Outcome, Published, ShardMetrics, UpstreamErrorKind};
use crate::policy::{CompiledRoutes, RoutePolicy, RouteTable};
use crate::ratelimit::{HeaderMode, Limiter, LimiterConfig};
use crate::upstream::Pool;
use crossbeam_channel::Sender;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Built from one version of the configuration on the control thread; read by every shard.
/// A reload builds a new one ([`Shared::next`]) and the shards swap to it between requests.
pub struct Shared {
    pub config: Config,
    pub routes: RouteTable,
    pub known: KnownHeaders,
    pub head_limits: HeadLimits,
    /// Client read buffer size: a whole head at the limit plus room for body bytes.
    pub client_buf: usize,
    /// The shards' published metrics: one for the gateway's life, carried across reloads.
    pub published: Arc<Published>,
    /// Any route needs a key (so serving needs a loaded key table).
    pub has_keyed_routes: bool,
    /// `[[routes]]` index -> its compiled policy (body limit, upstream, by_tenant/by_plan);
    /// public routes use its upstream and `route_body_limit`.
    pub route_policies: Vec<RoutePolicy>,
    /// `[server] trusted_proxies`, parsed.
    pub trusted_proxies: Vec<Cidr>,
    /// Audit lines the writer thread failed to write (not touched by the request path).
    pub audit_failed: Arc<AtomicU64>,
    /// Metric series slots, stable across reloads (see [`MetricSlots`]).
    pub slots: MetricSlots,
    /// Which reload this is: 0 at start, then one more for every configuration applied.
    pub version: u64,
}

/// Metric series are counted by slot, not by route or upstream index: a reload that adds,
/// removes or reorders routes keeps every series on its slot, so counters never jump and a
/// request finishing on the old configuration counts where it should. Slots only grow;
/// a series whose route or upstream is gone keeps its last value.
#[derive(Clone, Debug, Default)]
pub struct MetricSlots {
    /// Slot -> route label (`path_prefix`); slot 0 is "no route" (`none`).
    pub route_labels: Vec<String>,
    /// Slot -> upstream name.
    pub upstream_labels: Vec<String>,
    /// `[[routes]]` index -> its slot.
    pub route_slot: Vec<usize>,
    /// `upstreams` index -> its slot.
    pub upstream_slot: Vec<usize>,
}

impl MetricSlots {
    /// Slots for `config`, keeping every slot of `prev`.
    pub fn assign(config: &Config, prev: Option<&MetricSlots>) -> MetricSlots {
        let mut slots = MetricSlots {
            route_labels: prev.map_or_else(|| vec!["none".to_owned()], |p| p.route_labels.clone()),
            upstream_labels: prev.map_or_else(Vec::new, |p| p.upstream_labels.clone()),
            ..Default::default()
        };
        fn slot_of(labels: &mut Vec<String>, label: &str) -> usize {
            match labels.iter().position(|l| l == label) {
                Some(i) => i,
                None => {
                    labels.push(label.to_owned());
                    labels.len() - 1
                }
            }
        }
        for r in &config.routes {
            let s = slot_of(&mut slots.route_labels, &r.path_prefix);
            slots.route_slot.push(s);
        }
        for u in &config.upstreams {
            let s = slot_of(&mut slots.upstream_labels, &u.name);
            slots.upstream_slot.push(s);
        }
        slots
    }
}

impl Shared {
    pub fn new(config: Config, shards: usize) -> Shared {
        Shared::build(
            config,
            Arc::new(Published::new(shards)),
            Arc::default(),
            None,
        )
    }

    /// The state for a reloaded `config`: metrics, audit counts and slots carried over.
    pub fn next(&self, config: Config) -> Shared {
        let mut next = Shared::build(
            config,
            self.published.clone(),
            self.audit_failed.clone(),
            Some(&self.slots),
        );
        next.version = self.version + 1;
        next
    }

    fn build(
        config: Config,
        published: Arc<Published>,
        audit_failed: Arc<AtomicU64>,
        prev: Option<&MetricSlots>,
    ) -> Shared {
        let CompiledRoutes {
            table: routes,
            policies: route_policies,
        } = CompiledRoutes::compile(&config);
        let known = KnownHeaders {
            api_key: config.keys.header.as_bytes().into(),
            identity: [
                &config.identity.key_id_header,
                &config.identity.tenant_header,
                &config.identity.plan_header,
                &config.identity.scopes_header,
            ]
            .iter()
            .map(|s| s.as_bytes().into())
            .collect(),
            meta_prefix: config.identity.meta_prefix.as_bytes().into(),
        };
        let head_limits = HeadLimits {
            max_request_line: config.limits.max_request_line,
            max_head_bytes: config.limits.max_head_bytes,
            max_headers: config.limits.max_headers,
        };
        let client_buf = head_limits.max_head_bytes.max(head_limits.max_request_line) + 16 * 1024;
        let has_keyed_routes = config.routes.iter().any(|r| !r.public);
        let trusted_proxies = config.server.trusted_proxy_nets();
        Shared {
            routes,
            known,
            head_limits,
            client_buf,
            published,
            has_keyed_routes,
            route_policies,
            trusted_proxies,
            audit_failed,
            slots: MetricSlots::assign(&config, prev),
            version: 0,
            config,
        }
    }

    /// The number of shards serving.
    pub fn shards(&self) -> usize {
        self.published.shards.len()
    }
}

/// Per-request id source: a random per-shard prefix and a counter, so ids are unique across
/// shards and restarts without any shared state.
pub struct RequestIds {
    prefix: u64,
    next: Cell<u64>,
}

impl RequestIds {
    pub fn new(shard: usize) -> RequestIds {
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
        RequestIds {
            prefix: u64::from_le_bytes(seed) ^ (shard as u64).rotate_left(56),
            next: Cell::new(0),
        }
    }

    /// Writes a fresh 24-hex-digit id into `out`.
    pub fn next(&self, out: &mut [u8; 24]) {
        let n = self.next.get();
        self.next.set(n.wrapping_add(1));
        let mut v = ((self.prefix as u128) << 32) | u128::from(n as u32);
        for b in out.iter_mut().rev() {
            *b = b"0123456789abcdef"[(v & 15) as usize];
            v >>= 4;
        }
    }
}

/// Spare connection buffers a shard keeps (about 100 KiB each, touched parts resident).
const SPARES_KEPT: usize = 256;

/// What the live-overlay poller hands every shard: revocations, and (when it changed) the
/// table of keys changed since the snapshot (`Some(None)`: none any more).
#[derive(Default)]
pub struct LiveUpdate {
    pub revoked: crate::keys::overlay::OverlayUpdate,
    pub delta: Option<Option<Arc<Delta>>>,
}

/// A shard's state that outlives configurations: counters, clocks, connections, buffers.
/// Never shared with another thread. Reached through [`ShardCtx`] (which derefs to it).
pub struct ShardState {
    pub id: usize,
    pub metrics: RefCell<ShardMetrics>,
    /// Stop taking new requests; close connections after the current one.
    pub draining: Cell<bool>,
    /// Requests between a complete head and the end of their response.
    pub in_flight: Cell<usize>,
    pub request_ids: RequestIds,
    /// Unix seconds, refreshed by the shard's control timer (10 ms; 100 ms with no client
    /// connection open, and then again on accept): validity checks need seconds, not a clock
    /// read per request.
    pub now_unix: Cell<i64>,
    /// `Date` for answers: the IMF-fixdate of `date_of`, re-formatted only when `now_unix` has
    /// moved to another second (see [`ShardState::date`]).
    date: Cell<[u8; IMF_FIXDATE_LEN]>,
    date_of: Cell<i64>,
    /// This shard's rate counters (local counts plus what the other shards reported).
    pub limiter: RefCell<Limiter>,
    pub limit_waiting: Cell<usize>,
    /// This shard's audit batch, when `[audit] path` is set.
    pub audit: Option<ShardAudit>,
    /// Shutting down with nothing in flight: the sync loop sends its last counts and ends.
    pub rates_final: Cell<bool>,
    /// Buffers of connections between requests, for the next one that has bytes to read.
    pub spares: Spares,
    /// Open client connections per client address on this shard (absent = none).
    pub conns_per_ip: RefCell<HashMap<IpAddr, u32, ahash::RandomState>>,
    /// Keys revoked after the serving snapshot was built (the live overlay; usually empty).
    pub revoked: RefCell<Revoked>,
    /// This minute's usage per key and route (`state_dir/usage`, see `rollup`).
    pub rollup: RefCell<crate::rollup::ShardRollup>,
    /// Ejections counted by pools a reload retired, per upstream metric slot.
    ejections_retired: RefCell<Vec<u64>>,
    /// The configuration (and key table) new requests start on. Set before any task runs;
    /// it refers back to this state, a cycle that lives as long as the shard.
    current: RefCell<Option<Rc<ShardCtx>>>,
}

/// One shard's view of one configuration and key table: what a request starts on and
/// keeps until it ends, even if a reload swaps in another meanwhile. Cheap to clone (a
/// key-table swap clones it with the new table).
#[derive(Clone)]
pub struct ShardCtx {
    pub state: Rc<ShardState>,
    pub shared: Arc<Shared>,
    /// `upstreams` index -> this shard's pool (kept across reloads that leave its upstream
    /// as it was).
    pub pools: Vec<Rc<Pool>>,
    /// The key table this configuration serves (compiled against it); `None` until one is
    /// loaded. Requests hold it through their [`ShardCtx`], never cloning the `Arc`.
    pub keys: Option<Arc<KeyTable>>,
    /// Keys changed in the store since that table was built (the live overlay), compiled
    /// against this configuration too; `None`: none.
    pub delta: Option<Arc<Delta>>,
    pub ratelimit_headers: HeaderMode,
    /// `limits.shed_after_in_flight`: when this shard refuses low-priority plans.
    pub shedding: keyway_core::shedding::Shedding,
    /// `[ratelimit] max_wait` in ms.
    pub limit_max_wait_ms: i64,
    /// This shard's share of `limits.max_connections_per_ip`.
    pub max_conns_per_ip: u32,
}

impl std::ops::Deref for ShardCtx {
    type Target = ShardState;

    #[inline]
    fn deref(&self) -> &ShardState {
        &self.state
    }
}

impl ShardState {
    /// The state of shard `id`, serving `shared` and `keys` from the start.
    pub fn start(
        id: usize,
        shared: Arc<Shared>,
        keys: Option<Arc<KeyTable>>,
        audit: Option<Sender<Batch>>,
        rollup: Option<Sender<crate::rollup::Batch>>,
    ) -> Rc<ShardState> {
        let c = &shared.config;
        let limiter = Limiter::new(
            id,
            LimiterConfig {
                shards: shared.shards(),
                sync_interval_ms: c.ratelimit.sync_interval.as_millis() as u64,
            },
        );
        let now = crate::clock::unix_now();
        let state = Rc::new(ShardState {
            id,
            metrics: RefCell::new(ShardMetrics::new(
                shared.slots.route_labels.len(),
                shared.slots.upstream_labels.len(),
            )),
            draining: Cell::new(false),
            in_flight: Cell::new(0),
            request_ids: RequestIds::new(id),
            now_unix: Cell::new(now),
            date: Cell::new(imf_fixdate(now)),
            date_of: Cell::new(now),
            limiter: RefCell::new(limiter),
            limit_waiting: Cell::new(0),
            audit: audit.map(ShardAudit::new),
            rates_final: Cell::new(false),
            spares: Spares::new(shared.client_buf, crate::buffers::UPSTREAM_BUF, SPARES_KEPT),
            conns_per_ip: RefCell::default(),
            revoked: RefCell::default(),
            rollup: RefCell::new(crate::rollup::ShardRollup::new(rollup)),
            ejections_retired: RefCell::new(Vec::new()),
            current: RefCell::new(None),
        });
        let ctx = ShardCtx::build(&state, shared, keys, None);
        state.current.replace(Some(Rc::new(ctx)));
        state
    }

    /// What a request starting now runs on.
    #[inline]
    pub fn current(&self) -> Rc<ShardCtx> {
        match &*self.current.borrow() {
            Some(ctx) => ctx.clone(),
            None => unreachable!("ShardState::start sets the current configuration"),
        }
    }

    /// Applies a live-overlay update: revocations, and the changed keys' table.
    pub fn apply_live(&self, update: &LiveUpdate) {
        self.revoked.borrow_mut().apply(&update.revoked);
        if let Some(delta) = &update.delta {
            let mut next = (*self.current()).clone();
            next.delta = match delta {
                Some(d) if d.config_version != next.shared.version => {
                    match d.recompile(&next.shared.config, next.shared.version) {
                        Ok(d) => Some(Arc::new(d)),
                        Err(e) => {
                            tracing::warn!(error = %e, "keys changed since the snapshot do not fit the configuration; they wait for the next build");
                            None
                        }
                    }
                }
                other => other.clone(),
            };
            self.current.replace(Some(Rc::new(next)));
        }
    }

    /// New requests use `keys` from now on (the configuration stays).
    pub fn swap_keys(&self, keys: Arc<KeyTable>) {
        let mut next = (*self.current()).clone();
        next.keys = Some(keys);
        self.current.replace(Some(Rc::new(next)));
    }

    /// New requests use `shared` and `keys` (compiled against it) from now on. Pools of
    /// upstreams left as they were are kept; the others are retired: they close once the
    /// requests still using them end.
    pub fn swap_config(self: &Rc<Self>, shared: Arc<Shared>, keys: Option<Arc<KeyTable>>) {
        let old = self.current();
        let next = ShardCtx::build(self, shared, keys, Some(&old));
        {
            let mut retired = self.ejections_retired.borrow_mut();
            for (u, pool) in old.pools.iter().enumerate() {
                if !next.pools.iter().any(|p| Rc::ptr_eq(p, pool)) {
                    let slot = old.shared.slots.upstream_slot[u];
                    if retired.len() <= slot {
                        retired.resize(slot + 1, 0);
                    }
                    retired[slot] += pool.ejections();
                }
            }
        }
        let s = &next.shared.slots;
        self.metrics
            .borrow_mut()
            .grow(s.route_labels.len(), s.upstream_labels.len());
        self.spares.set_client_buf(next.shared.client_buf);
        self.current.replace(Some(Rc::new(next)));
    }

    /// Copies the current pools' ejection counts and servers out into the metrics before
    /// they are published.
    pub fn copy_pool_health(&self) {
        let ctx = self.current();
        let now = std::time::Instant::now();
        let retired = self.ejections_retired.borrow();
        let mut m = self.metrics.borrow_mut();
        m.server_out.clear();
        m.upstream_servers_out.iter_mut().for_each(|n| *n = 0);
        for (slot, n) in m.upstream_ejections.iter_mut().enumerate() {
            *n = retired.get(slot).copied().unwrap_or(0);
        }
        for (i, pool) in ctx.pools.iter().enumerate() {
            let slot = ctx.shared.slots.upstream_slot[i];
            m.upstream_ejections[slot] += pool.ejections();
            let before = m.server_out.len();
            m.server_out.extend(pool.out_flags(now).map(u8::from));
            m.upstream_servers_out[slot] =
                m.server_out[before..].iter().map(|&o| u64::from(o)).sum();
        }
    }

    /// Forgets a connection counted by [`ShardCtx::admit_ip`].
    pub fn release_ip(&self, ip: IpAddr) {
        let mut map = self.conns_per_ip.borrow_mut();
        if let Some(n) = map.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }

    /// The `Date` value for an answer now (to the second of the shard's clock tick): formatted
    /// once per second per shard, not per request.
    #[inline]
    pub fn date(&self) -> [u8; IMF_FIXDATE_LEN] {
        let now = self.now_unix.get();
        if now != self.date_of.get() {
            self.date.set(imf_fixdate(now));
            self.date_of.set(now);
        }
        self.date.get()
    }
}

impl ShardCtx {
    /// This shard's view of `shared`; pools of `prev` whose upstream is unchanged are kept.
    fn build(
        state: &Rc<ShardState>,
        shared: Arc<Shared>,
        keys: Option<Arc<KeyTable>>,
        prev: Option<&ShardCtx>,
    ) -> ShardCtx {
        let c = &shared.config;
        let pools = c
            .upstreams
            .iter()
            .map(|u| {
                let connect = u.connect_timeout.unwrap_or(c.timeouts.upstream_connect);
                let idle = c.timeouts.keepalive_idle;
                let kept = prev.and_then(|p| {
                    let pc = &p.shared.config;
                    let i = pc.upstream_index(&u.name)?;
                    let pu = &pc.upstreams[i];
                    let same = pu == u
                        && pu.connect_timeout.unwrap_or(pc.timeouts.upstream_connect) == connect
                        && pc.timeouts.keepalive_idle == idle;
                    same.then(|| p.pools[i].clone())
                });
                kept.unwrap_or_else(|| Rc::new(Pool::new(u, connect, idle)))
            })
            .collect();
        let ratelimit_headers = match c.ratelimit.headers {
            RateLimitHeaders::Ietf => HeaderMode::Ietf,
            RateLimitHeaders::Legacy => HeaderMode::Legacy,
            RateLimitHeaders::Off => HeaderMode::Off,
        };
        // The live delta follows the configuration (a few keys: cheap to compile here).
        let delta = prev.and_then(|p| p.delta.clone()).and_then(|d| {
            if d.config_version == shared.version {
                return Some(d);
            }
            match d.recompile(c, shared.version) {
                Ok(d) => Some(Arc::new(d)),
                Err(e) => {
                    tracing::warn!(error = %e, "keys changed since the snapshot cannot follow the new configuration; they wait for the next build");
                    None
                }
            }
        });
        ShardCtx {
            state: state.clone(),
            pools,
            keys,
            delta,
            ratelimit_headers,
            shedding: keyway_core::shedding::Shedding {
                after_in_flight: c.limits.shed_after_in_flight,
            },
            limit_max_wait_ms: c.ratelimit.max_wait.as_millis() as i64,
            max_conns_per_ip: c
                .limits
                .max_connections_per_ip
                .div_ceil(shared.shards().max(1))
                .min(u32::MAX as usize) as u32,
            shared,
        }
    }

    /// Counts a connection for `ip`; `false` (nothing counted) when `ip` is at its cap.
    pub fn admit_ip(&self, ip: IpAddr) -> bool {
        let mut map = self.conns_per_ip.borrow_mut();
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max_conns_per_ip {
            if *n == 0 {
                map.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// Counts one finished request on its route's metric slot (`None`: no route matched).
    #[inline]
    pub fn count_request(&self, route: Option<usize>, outcome: Outcome, us: u64) {
        let slot = route.map_or(0, |r| self.shared.slots.route_slot[r]);
        self.metrics.borrow_mut().request(slot, outcome, us);
    }

    /// Counts an upstream failure on its upstream's metric slot.
    #[inline]
    pub fn count_upstream_error(&self, upstream: usize, kind: UpstreamErrorKind) {
        let slot = self.shared.slots.upstream_slot[upstream];
        self.metrics.borrow_mut().upstream_error(slot, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_hex() {
        let ids = RequestIds::new(0);
        let mut a = [0u8; 24];
        let mut b = [0u8; 24];
        ids.next(&mut a);
        ids.next(&mut b);
        assert_ne!(a, b);
        assert!(a.iter().all(|c| c.is_ascii_hexdigit()));
    }
}
