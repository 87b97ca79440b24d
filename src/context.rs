//! What a shard holds: the gateway-wide immutable [`Shared`] state and its own
//! [`ShardCtx`] (pools, counters, flags), which only its thread ever touches.

use crate::audit::{Batch, ShardAudit};
use crate::buffers::Spares;
use crate::config::Cidr;
use crate::config::Config;
use crate::config::RateLimitHeaders;
use crate::http::date::{imf_fixdate, IMF_FIXDATE_LEN};
use crate::http::{HeadLimits, KnownHeaders};
use crate::keytable::KeyTable;
use crate::metrics::{Published, ShardMetrics};
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

/// Built once from the configuration; read by every shard.
pub struct Shared {
    pub config: Config,
    pub routes: RouteTable,
    pub known: KnownHeaders,
    pub head_limits: HeadLimits,
    /// Client read buffer size: a whole head at the limit plus room for body bytes.
    pub client_buf: usize,
    pub published: Published,
    /// Any route needs a key (so serving needs a loaded key table).
    pub has_keyed_routes: bool,
    /// `[[routes]]` index -> its compiled policy (body limit, upstream, by_tenant/by_plan);
    /// public routes use its upstream and `route_body_limit`.
    pub route_policies: Vec<RoutePolicy>,
    /// `[server] trusted_proxies`, parsed.
    pub trusted_proxies: Vec<Cidr>,
    /// Audit lines the writer thread failed to write (not touched by the request path).
    pub audit_failed: Arc<AtomicU64>,
}

impl Shared {
    pub fn new(config: Config, shards: usize) -> Shared {
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
            published: Published::new(shards),
            has_keyed_routes,
            route_policies,
            trusted_proxies,
            audit_failed: Arc::default(),
            config,
        }
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

/// One shard's own state. Never shared with another thread.
pub struct ShardCtx {
    pub id: usize,
    pub shared: Arc<Shared>,
    /// `upstreams` index -> this shard's pool.
    pub pools: Vec<Pool>,
    pub metrics: RefCell<ShardMetrics>,
    /// Stop taking new requests; close connections after the current one.
    pub draining: Cell<bool>,
    /// Requests between a complete head and the end of their response.
    pub in_flight: Cell<usize>,
    pub request_ids: RequestIds,
    /// The key table this shard serves. A request clones the `Rc` (not the `Arc`: no atomic
    /// on the request path) and finishes on that table even if a reload swaps it meanwhile.
    pub keys: RefCell<Option<Rc<Arc<KeyTable>>>>,
    /// Unix seconds, refreshed by the shard's control timer (10 ms; 100 ms with no client
    /// connection open, and then again on accept): validity checks need seconds, not a clock
    /// read per request.
    pub now_unix: Cell<i64>,
    /// `Date` for answers: the IMF-fixdate of `date_of`, re-formatted only when `now_unix` has
    /// moved to another second (see [`ShardCtx::date`]).
    date: Cell<[u8; IMF_FIXDATE_LEN]>,
    date_of: Cell<i64>,
    /// This shard's rate counters (local counts plus what the other shards reported).
    pub limiter: RefCell<Limiter>,
    pub ratelimit_headers: HeaderMode,
    /// `limits.shed_after_in_flight`: when this shard refuses low-priority plans.
    pub shedding: keyway_core::shedding::Shedding,
    /// `[ratelimit] max_wait` in ms, and how many requests wait at the margin now.
    pub limit_max_wait_ms: i64,
    pub limit_waiting: Cell<usize>,
    /// This shard's audit batch, when `[audit] path` is set.
    pub audit: Option<ShardAudit>,
    /// Shutting down with nothing in flight: the sync loop sends its last counts and ends.
    pub rates_final: Cell<bool>,
    /// Buffers of connections between requests, for the next one that has bytes to read.
    pub spares: Spares,
    /// Open client connections per client address on this shard (absent = none).
    pub conns_per_ip: RefCell<HashMap<IpAddr, u32, ahash::RandomState>>,
    /// This shard's share of `limits.max_connections_per_ip`.
    pub max_conns_per_ip: u32,
}

impl ShardCtx {
    /// Copies the pools' ejection counts and servers out into the metrics before they are
    /// published.
    pub fn copy_pool_health(&self) {
        let now = std::time::Instant::now();
        let mut m = self.metrics.borrow_mut();
        m.server_out.clear();
        for (i, pool) in self.pools.iter().enumerate() {
            m.upstream_ejections[i] = pool.ejections();
            let before = m.server_out.len();
            m.server_out.extend(pool.out_flags(now).map(u8::from));
            m.upstream_servers_out[i] = m.server_out[before..].iter().map(|&o| u64::from(o)).sum();
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
}

impl ShardCtx {
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        keys: Option<Arc<KeyTable>>,
        audit: Option<Sender<Batch>>,
    ) -> ShardCtx {
        let c = &shared.config;
        let pools = c
            .upstreams
            .iter()
            .map(|u| {
                Pool::new(
                    u,
                    u.connect_timeout.unwrap_or(c.timeouts.upstream_connect),
                    c.timeouts.keepalive_idle,
                )
            })
            .collect();
        let metrics = ShardMetrics::new(c.routes.len(), c.upstreams.len());
        let limiter = Limiter::new(
            id,
            LimiterConfig {
                shards: shared.published.shards.len(),
                sync_interval_ms: c.ratelimit.sync_interval.as_millis() as u64,
            },
        );
        let now = crate::clock::unix_now();
        let ratelimit_headers = match c.ratelimit.headers {
            RateLimitHeaders::Ietf => HeaderMode::Ietf,
            RateLimitHeaders::Legacy => HeaderMode::Legacy,
            RateLimitHeaders::Off => HeaderMode::Off,
        };
        ShardCtx {
            id,
            pools,
            metrics: RefCell::new(metrics),
            draining: Cell::new(false),
            in_flight: Cell::new(0),
            request_ids: RequestIds::new(id),
            keys: RefCell::new(keys.map(Rc::new)),
            now_unix: Cell::new(now),
            date: Cell::new(imf_fixdate(now)),
            date_of: Cell::new(now),
            limiter: RefCell::new(limiter),
            ratelimit_headers,
            shedding: keyway_core::shedding::Shedding {
                after_in_flight: c.limits.shed_after_in_flight,
            },
            limit_max_wait_ms: c.ratelimit.max_wait.as_millis() as i64,
            limit_waiting: Cell::new(0),
            audit: audit.map(ShardAudit::new),
            rates_final: Cell::new(false),
            spares: Spares::new(shared.client_buf, crate::buffers::UPSTREAM_BUF, SPARES_KEPT),
            conns_per_ip: RefCell::default(),
            max_conns_per_ip: c
                .limits
                .max_connections_per_ip
                .div_ceil(shared.published.shards.len().max(1))
                .min(u32::MAX as usize) as u32,
            shared,
        }
    }
}

impl ShardCtx {
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
