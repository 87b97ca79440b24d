//! The gateway's configuration: the validated `Config` types, their defaults, and loading from TOML.
//!
//! `Config::load` reads a file; `Config::parse` takes text. Both return a fully
//! validated `Config` or one `ConfigError` whose Display is a single line
//! `FILE:LINE: what is wrong; what to do`. This module does no I/O beyond
//! reading the file: no sockets, no threads, no clock.

pub(crate) mod cidr;
pub mod diff;
mod error;
mod identity;
mod raw;
mod routing;
mod units;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cidr::{Cidr, CidrError};
pub use error::ConfigError;
pub use units::{parse_size, MAX_DURATION};

/// Everything the gateway needs to start. Build with [`Config::load`] or [`Config::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub server: Server,
    pub keys: Keys,
    pub identity: Identity,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub ratelimit: RateLimit,
    pub audit: Audit,
    pub admin: Admin,
    pub leaks: Leaks,
    /// Sorted by name; [`Config::upstream_index`] finds one.
    pub upstreams: Vec<Upstream>,
    /// In file order.
    pub routes: Vec<Route>,
}

/// `[server]`: where to listen and where to keep state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Proxy listener. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Worker shards; 0 = one per online CPU (resolved by the caller). Default 0.
    pub shards: usize,
    /// Admin/metrics listener. Default `127.0.0.1:9090`.
    pub admin_listen: SocketAddr,
    /// Default `/var/lib/keyway`; a relative path is resolved against the config file's directory.
    pub state_dir: PathBuf,
    /// Peers whose `X-Forwarded-For` is believed, in canonical `ADDR/LEN` form
    /// (a bare IP in the file becomes `/32` or `/128`). See [`Server::trusted_proxy_nets`].
    pub trusted_proxies: Vec<String>,
}

/// `[keys]`: where keys live and how clients present them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Default `state_dir/keys.snap`; a relative path is taken under `state_dir`.
    pub snapshot: PathBuf,
    /// Default `state_dir/keys.db`; a relative path is taken under `state_dir`.
    pub db: PathBuf,
    /// Request header carrying the key, lower-case. Default `x-api-key`.
    pub header: String,
    /// Also accept `Authorization: Bearer KEY`. Default true.
    pub bearer: bool,
    /// Where a key holder, with the key, reads what the key may do (`GET`, JSON). Default
    /// `/.well-known/keyway/key`; `None` (set to "") turns it off.
    pub self_service_path: Option<String>,
}

/// `[identity]`: headers the gateway sets on forwarded requests (and strips from incoming ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub key_id_header: String,
    pub tenant_header: String,
    pub plan_header: String,
    pub scopes_header: String,
    /// Key metadata `k = v` is forwarded as header `{meta_prefix}k: v`.
    pub meta_prefix: String,
}

/// `[limits]`: per-request size limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_request_line: usize,
    pub max_head_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: u64,
    /// Slowest a request body may arrive once `timeouts.body_grace` has passed, in bytes per
    /// second: a trickled body costs only its own connection, never an upstream one.
    pub min_body_rate: u64,
    /// Open client connections one shard serves at most; past it new ones get 503 and close.
    pub max_connections_per_shard: usize,
    /// Open client connections from one address, gateway-wide (each shard allows its share,
    /// rounded up). A trusted proxy's connections count for the client it forwards.
    pub max_connections_per_ip: usize,
    /// Requests in flight per shard past which plans of priority 0 are shed (503
    /// `overloaded`), lower priorities sooner and higher later (keyway-core `shedding`).
    /// 0 = never shed (the default).
    pub shed_after_in_flight: u32,
}

/// `[timeouts]`: all strictly positive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    pub head: Duration,
    pub body_idle: Duration,
    pub keepalive_idle: Duration,
    pub upstream_connect: Duration,
    pub upstream_response: Duration,
    pub drain: Duration,
    /// How long a request body may arrive below `limits.min_body_rate` before it is refused.
    pub body_grace: Duration,
    /// How long a response write may stay blocked on a client that does not read.
    pub client_write: Duration,
    /// The longest silence between two reads of an upstream's response body, once its head
    /// arrived (routes may override it). Default 5 minutes: a stream may run for hours,
    /// but not sit silent for that long.
    pub upstream_idle: Duration,
}

/// `[upstreams.NAME]`: a named group of backend servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    /// The addresses requests go to: the servers given as `IP:PORT`, then the addresses of
    /// those given as `HOST:PORT` (see [`Upstream::hosts`]) as last resolved. No duplicates,
    /// no port 0; empty only before the names are resolved.
    pub servers: Vec<SocketAddr>,
    /// The servers given as `IP:PORT`, in file order.
    pub fixed: Vec<SocketAddr>,
    /// Servers given by host name, in file order, each with its addresses as last resolved
    /// (empty until the runtime resolves them; the core never does).
    pub hosts: Vec<HostServer>,
    /// How often the runtime resolves `hosts` again (`resolve_interval`, default 30 s).
    pub resolve_interval: Duration,
    /// Max connections per server per shard. Default 64, at least 1.
    pub pool_size: usize,
    /// Requests that may wait for a pooled connection per shard before 503. Default 1024; 0 = none wait.
    pub queue: usize,
    /// Overrides `timeouts.upstream_connect` for this upstream.
    pub connect_timeout: Option<Duration>,
    /// Overrides `timeouts.upstream_response` for this upstream.
    pub response_timeout: Option<Duration>,
    /// When a server leaves the rotation and for how long (`eject_after_failures`,
    /// `eject_after_5xx`, `eject_backoff`, `eject_max_backoff`).
    pub ejection: crate::health::Ejection,
    /// Active health checks (`health_check_path`, `_interval`, `_timeout`); None = off.
    pub health_check: Option<HealthCheck>,
}

/// A server given as `HOST:PORT`: each address the name resolves to (A and AAAA) is a server
/// of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostServer {
    /// Lower-case DNS name.
    pub host: String,
    pub port: u16,
    /// Sorted, no duplicates.
    pub addrs: Vec<SocketAddr>,
}

/// Default `resolve_interval` of an upstream with host names.
pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

impl Upstream {
    /// Sets the addresses of host-name servers (`resolved[i]` for `hosts[i]`) and rebuilds
    /// [`Upstream::servers`]: the literal addresses, then the resolved ones, without
    /// duplicates.
    pub fn set_resolved(&mut self, resolved: Vec<Vec<SocketAddr>>) {
        self.servers.clone_from(&self.fixed);
        for (h, mut addrs) in self.hosts.iter_mut().zip(resolved) {
            addrs.sort();
            addrs.dedup();
            h.addrs = addrs;
        }
        for h in &self.hosts {
            for a in &h.addrs {
                if !self.servers.contains(a) {
                    self.servers.push(*a);
                }
            }
        }
    }
}

/// `GET path` to every server of an upstream every `interval`: an answer 200..=399 within
/// `timeout` passes (and puts an ejected server back), anything else counts as a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Starts with '/'; visible ASCII only.
    pub path: String,
    /// Default 5 s.
    pub interval: Duration,
    /// Default 1 s.
    pub timeout: Duration,
}

/// `[[routes]]`: which requests go where, and whether they need a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Starts with '/'; matched against the request path (no query).
    pub path_prefix: String,
    /// Lower-case, port stripped (an IPv6 literal keeps its brackets). None = any host.
    pub host: Option<String>,
    /// Names an entry of [`Config::upstreams`].
    pub upstream: String,
    /// No key needed when true. Default false (keyed).
    pub public: bool,
    /// Overrides `limits.max_body_bytes` for this route.
    pub max_body_bytes: Option<u64>,
    /// Plan name → upstream name, overriding `upstream` for keys on that plan.
    pub by_plan: BTreeMap<String, String>,
    /// Tenant → upstream name; checked before `by_plan`.
    pub by_tenant: BTreeMap<String, String>,
    /// Query parameter that may carry the key (e.g. `api_key`); None = not accepted.
    pub key_in_query: Option<String>,
    /// Allow `Upgrade` (e.g. WebSocket) through this route. Default false.
    pub allow_upgrade: bool,
    /// Units charged per request against the key's quota. Default 1; 0 = free.
    pub cost: u64,
    /// Accept `;` path parameters (judged without them, forwarded with them). Default false:
    /// refused with 400.
    pub allow_path_params: bool,
    /// How `path_prefix` matches. Default [`PrefixMatch::Segment`].
    pub prefix_match: PrefixMatch,
    /// Override the upstream's (then `timeouts.upstream_connect`) for this route.
    pub connect_timeout: Option<Duration>,
    /// Override the upstream's (then `timeouts.upstream_response`) for this route: the wait
    /// for the response head.
    pub response_timeout: Option<Duration>,
    /// Override `timeouts.upstream_idle` for this route: the longest silence between body
    /// reads once the head arrived.
    pub idle_timeout: Option<Duration>,
}

/// `[[routes]] prefix_match`: how a route's `path_prefix` matches the request path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrefixMatch {
    /// `"segment"`: on segment boundaries: `/health` matches `/health` and `/health/x`, not
    /// `/healthz`.
    #[default]
    Segment,
    /// `"raw"`: any path that starts with the prefix's bytes (`/health` matches `/healthz`).
    Raw,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            shards: 0,
            admin_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for Keys {
    fn default() -> Self {
        let dir = Path::new(DEFAULT_STATE_DIR);
        Keys {
            snapshot: dir.join("keys.snap"),
            db: dir.join("keys.db"),
            header: "x-api-key".to_owned(),
            bearer: true,
            self_service_path: Some(DEFAULT_SELF_SERVICE_PATH.to_owned()),
        }
    }
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            key_id_header: "x-keyway-key-id".to_owned(),
            tenant_header: "x-keyway-tenant".to_owned(),
            plan_header: "x-keyway-plan".to_owned(),
            scopes_header: "x-keyway-scopes".to_owned(),
            meta_prefix: "x-keyway-meta-".to_owned(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8192,
            max_head_bytes: 16384,
            max_headers: 100,
            max_body_bytes: 10 << 20,
            min_body_rate: 1024,
            max_connections_per_shard: 16384,
            max_connections_per_ip: 1024,
            shed_after_in_flight: 0,
        }
    }
}

/// `[ratelimit]`: how shards reconcile counters and which headers answers carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// How often shards exchange per-key deltas (default 10 ms; 1 ms to 1 s).
    pub sync_interval: Duration,
    /// How long a request the key has room for may wait while the shard's cross-shard reserve
    /// shrinks, instead of a 429 (default 250 ms; 0 answers at once).
    pub max_wait: Duration,
    pub headers: RateLimitHeaders,
}

/// `[audit]`: the JSON-lines audit log (docs/operations.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// One line per finished request is appended here; `None` (the default): no audit log.
    /// A relative path is taken under `state_dir`.
    pub path: Option<PathBuf>,
}

/// `[admin]`: the admin API's access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admin {
    /// Bearer tokens of the admin API, one per line (`NAME read|write TOKEN`), read at each
    /// call. `None` (the default): reads are open on the admin listener and every change is
    /// refused. A relative path is taken from the configuration file's directory.
    pub token_file: Option<PathBuf>,
}

/// What to do with a key reported leaked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnLeak {
    /// Revoke the key at once (it stops working within a second).
    #[default]
    Revoke,
    /// Only record the report (audit line, log, metric); the key keeps working.
    Report,
}

/// `[leaks]`: leaked-key reports from GitHub secret scanning (`POST /v1/leaks/github` on the
/// admin listener).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leaks {
    /// PEM files with the ECDSA P-256 public keys GitHub signs alerts with (from
    /// `https://api.github.com/meta/public_keys/secret_scanning`, fetched by the operator;
    /// keyway never fetches at run time). Empty (the default): the endpoint is off.
    pub github_public_keys: Vec<PathBuf>,
    pub on_leak: OnLeak,
}

/// Which rate-limit response headers to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitHeaders {
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
    Ietf,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`.
    Legacy,
    Off,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            sync_interval: Duration::from_millis(10),
            max_wait: Duration::from_millis(250),
            headers: RateLimitHeaders::Ietf,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            head: Duration::from_secs(10),
            body_idle: Duration::from_secs(30),
            keepalive_idle: Duration::from_secs(60),
            upstream_connect: Duration::from_secs(2),
            upstream_response: Duration::from_secs(30),
            drain: Duration::from_secs(10),
            body_grace: Duration::from_secs(10),
            client_write: Duration::from_secs(30),
            upstream_idle: Duration::from_secs(300),
        }
    }
}

impl Default for Config {
    /// Everything default, no upstreams, no routes: what an empty file gives.
    fn default() -> Self {
        Config {
            server: Server::default(),
            keys: Keys::default(),
            identity: Identity::default(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            ratelimit: RateLimit::default(),
            audit: Audit::default(),
            admin: Admin::default(),
            leaks: Leaks::default(),
            upstreams: Vec::new(),
            routes: Vec::new(),
        }
    }
}

/// Default `keys.self_service_path`.
pub const DEFAULT_SELF_SERVICE_PATH: &str = "/.well-known/keyway/key";

/// Default `server.state_dir`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/keyway";

impl Config {
    /// Reads, parses and validates the file at `path`. Relative paths inside it
    /// are resolved against the file's directory (made absolute from the
    /// current directory). Errors name the file as `path` was given.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(&origin, e))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let base_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Config::parse(&text, &origin, &base_dir)
    }

    /// Parses and validates `text`. `origin` names the file in messages;
    /// relative paths are resolved against `base_dir`.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(origin, text, &e))?;
        validate::validate(raw, &validate::Ctx { origin, text }, base_dir)
    }

    /// Index of the upstream called `name` in [`Config::upstreams`].
    pub fn upstream_index(&self, name: &str) -> Option<usize> {
        self.upstreams
            .binary_search_by(|u| u.name.as_str().cmp(name))
            .ok()
    }

    /// The upstream called `name`.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstream_index(name).map(|i| &self.upstreams[i])
    }
}

impl Server {
    /// `trusted_proxies` parsed, for membership tests with [`Cidr::contains`].
    pub fn trusted_proxy_nets(&self) -> Vec<Cidr> {
        self.trusted_proxies
            .iter()
            .filter_map(|s| Cidr::parse(s).ok())
            .collect()
    }
}

impl Upstream {
    /// An upstream with default pool, queue and timeouts.
    pub fn new(name: &str, servers: Vec<SocketAddr>) -> Upstream {
        Upstream {
            name: name.to_owned(),
            fixed: servers.clone(),
            servers,
            hosts: Vec::new(),
            resolve_interval: DEFAULT_RESOLVE_INTERVAL,
            pool_size: DEFAULT_POOL_SIZE,
            queue: DEFAULT_QUEUE,
            connect_timeout: None,
            response_timeout: None,
            ejection: crate::health::Ejection::default(),
            health_check: None,
        }
    }
}

impl Route {
    /// A keyed route with every option at its default.
    pub fn new(path_prefix: &str, upstream: &str) -> Route {
        Route {
            path_prefix: path_prefix.to_owned(),
            host: None,
            upstream: upstream.to_owned(),
            public: false,
            max_body_bytes: None,
            by_plan: BTreeMap::new(),
            by_tenant: BTreeMap::new(),
            key_in_query: None,
            allow_upgrade: false,
            cost: 1,
            allow_path_params: false,
            prefix_match: PrefixMatch::Segment,
            connect_timeout: None,
            response_timeout: None,
            idle_timeout: None,
        }
    }

    /// `host` + `path_prefix`, e.g. `api.example.com/v1/` or `/v1/`, for messages.
    pub fn label(&self) -> String {
        format!("{}{}", self.host.as_deref().unwrap_or(""), self.path_prefix)
    }
}

/// Default [`Upstream::pool_size`].
pub const DEFAULT_POOL_SIZE: usize = 64;
/// Default [`Upstream::queue`].
pub const DEFAULT_QUEUE: usize = 1024;
