//! Raw file shape → validated `Config`: the error context, then `[server]`, `[limits]` and `[timeouts]`
//! (keys and identity headers are checked in `identity`, upstreams and routes in `routing`).

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::cidr::Cidr;
use super::error::{line_of, ConfigError};
use super::raw::{Opt, RawConfig, RawLeaks, RawLimits, RawRateLimit, RawServer, RawTimeouts};
use super::units::{duration_of, size_of, Quantity};
use super::{
    identity, routing, Admin, Audit, Config, Leaks, Limits, OnLeak, RateLimit, RateLimitHeaders,
    Server, Timeouts,
};

/// Highest accepted `server.shards`.
const MAX_SHARDS: usize = 1024;

/// Where errors are reported: the file name and its text (for line numbers).
pub struct Ctx<'a> {
    pub origin: &'a str,
    pub text: &'a str,
}

impl Ctx<'_> {
    /// An error at the line holding `span`.
    pub fn err(
        &self,
        span: &Range<usize>,
        what: impl AsRef<str>,
        fix: impl AsRef<str>,
    ) -> ConfigError {
        let line = line_of(self.text, span.start);
        ConfigError::invalid(self.origin, line, what.as_ref(), fix.as_ref())
    }

    /// Converts a size, rejecting 0. `key` is the dotted name for messages.
    pub fn size(&self, key: &str, q: &Spanned<Quantity>) -> Result<u64, ConfigError> {
        let fix = "write a byte count such as 16384, \"16KiB\", \"1MiB\" or \"10MB\"";
        let n =
            size_of(q.get_ref()).map_err(|why| self.err(&q.span(), format!("{key} {why}"), fix))?;
        if n == 0 {
            return Err(self.err(&q.span(), format!("{key} is 0"), "set it to at least 1"));
        }
        Ok(n)
    }

    /// Converts a strictly positive duration of at most 24h.
    pub fn duration(&self, key: &str, q: &Spanned<Quantity>) -> Result<Duration, ConfigError> {
        let fix = "write e.g. \"10s\" or \"500ms\"";
        let d = duration_of(q.get_ref())
            .map_err(|why| self.err(&q.span(), format!("{key} {why}"), fix))?;
        if d.is_zero() {
            return Err(self.err(
                &q.span(),
                format!("{key} is 0"),
                "write a duration greater than 0, e.g. \"10s\" or \"500ms\"",
            ));
        }
        Ok(d)
    }

    /// Parses `IP:PORT`; host names are refused (nothing is resolved here).
    pub fn socket(&self, key: &str, v: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
        v.get_ref().trim().parse().map_err(|_| {
            self.err(
                &v.span(),
                format!("{key} {:?} is not a socket address", v.get_ref()),
                "write IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"",
            )
        })
    }
}

/// Checks and completes a parsed file. `base_dir` anchors relative paths.
pub fn validate(raw: RawConfig, cx: &Ctx, base_dir: &Path) -> Result<Config, ConfigError> {
    let server = server(&raw.server, cx, base_dir)?;
    let (keys, identity) =
        identity::keys_and_identity(&raw.keys, &raw.identity, cx, &server.state_dir)?;
    let limits = limits(&raw.limits, cx)?;
    let timeouts = timeouts(&raw.timeouts, cx)?;
    let ratelimit = ratelimit(&raw.ratelimit, cx)?;
    let audit = Audit {
        path: match &raw.audit.path {
            Some(v) => Some(server.state_dir.join(path_value(cx, "audit.path", v)?)),
            None => None,
        },
    };
    let admin = Admin {
        token_file: match &raw.admin.token_file {
            Some(v) => Some(base_dir.join(path_value(cx, "admin.token_file", v)?)),
            None => None,
        },
    };
    let leaks = leaks(&raw.leaks, cx, base_dir)?;
    let upstreams = routing::upstreams(&raw.upstreams, cx)?;
    let routes = routing::routes(&raw.routes, &upstreams, limits.max_body_bytes, cx)?;
    Ok(Config {
        server,
        keys,
        identity,
        limits,
        timeouts,
        ratelimit,
        audit,
        admin,
        leaks,
        upstreams,
        routes,
    })
}

fn leaks(raw: &RawLeaks, cx: &Ctx, base_dir: &Path) -> Result<Leaks, ConfigError> {
    let mut l = Leaks::default();
    for v in raw.github_public_keys.iter().flatten() {
        l.github_public_keys
            .push(base_dir.join(path_value(cx, "leaks.github_public_keys", v)?));
    }
    if let Some(v) = &raw.on_leak {
        l.on_leak = match v.get_ref().as_str() {
            "revoke" => OnLeak::Revoke,
            "report" => OnLeak::Report,
            other => {
                return Err(cx.err(
                    &v.span(),
                    format!("leaks.on_leak {other:?} is not known"),
                    "write \"revoke\" (the default) or \"report\"",
                ))
            }
        };
    }
    Ok(l)
}

fn ratelimit(raw: &RawRateLimit, cx: &Ctx) -> Result<RateLimit, ConfigError> {
    let mut r = RateLimit::default();
    if let Some(q) = &raw.sync_interval {
        let d = cx.duration("ratelimit.sync_interval", q)?;
        if d < Duration::from_millis(1) || d > Duration::from_secs(1) {
            return Err(cx.err(
                &q.span(),
                format!("ratelimit.sync_interval {} is out of range", q.get_ref()),
                "write a duration from \"1ms\" to \"1s\" (default \"10ms\")",
            ));
        }
        r.sync_interval = d;
    }
    if let Some(q) = &raw.max_wait {
        // 0 is allowed here: it turns waiting off.
        let d = duration_of(q.get_ref()).map_err(|why| {
            cx.err(
                &q.span(),
                format!("ratelimit.max_wait {why}"),
                "write e.g. \"250ms\", or \"0ms\" to answer at once",
            )
        })?;
        if d > Duration::from_secs(5) {
            return Err(cx.err(
                &q.span(),
                format!("ratelimit.max_wait {} is out of range", q.get_ref()),
                "write a duration from \"0ms\" to \"5s\" (default \"250ms\")",
            ));
        }
        r.max_wait = d;
    }
    if let Some(h) = &raw.headers {
        r.headers = match h.get_ref().as_str() {
            "ietf" => RateLimitHeaders::Ietf,
            "legacy" => RateLimitHeaders::Legacy,
            "off" => RateLimitHeaders::Off,
            other => {
                return Err(cx.err(
                    &h.span(),
                    format!("ratelimit.headers {other:?} is not a header mode"),
                    "write \"ietf\", \"legacy\" or \"off\"",
                ))
            }
        };
    }
    Ok(r)
}

fn server(raw: &RawServer, cx: &Ctx, base_dir: &Path) -> Result<Server, ConfigError> {
    let mut s = Server::default();
    if let Some(v) = &raw.listen {
        s.listen = cx.socket("server.listen", v)?;
    }
    if let Some(v) = &raw.admin_listen {
        s.admin_listen = cx.socket("server.admin_listen", v)?;
    }
    if s.listen == s.admin_listen && s.listen.port() != 0 {
        let span = raw
            .admin_listen
            .as_ref()
            .or(raw.listen.as_ref())
            .map_or(0..0, Spanned::span);
        return Err(cx.err(
            &span,
            format!(
                "server.admin_listen {} is the same address as server.listen",
                s.admin_listen
            ),
            "give the admin listener its own port",
        ));
    }
    if let Some(v) = &raw.shards {
        s.shards = *v.get_ref();
        if s.shards > MAX_SHARDS {
            return Err(cx.err(
                &v.span(),
                format!("server.shards {} is more than {MAX_SHARDS}", s.shards),
                "use 0 for one shard per online CPU, or a smaller number",
            ));
        }
    }
    if let Some(v) = &raw.state_dir {
        s.state_dir = base_dir.join(path_value(cx, "server.state_dir", v)?);
    }
    for v in raw.trusted_proxies.iter().flatten() {
        let cidr = Cidr::parse(v.get_ref().trim()).map_err(|e| {
            cx.err(
                &v.span(),
                format!("server.trusted_proxies {}", e.what),
                &e.fix,
            )
        })?;
        s.trusted_proxies.push(cidr.to_string());
    }
    Ok(s)
}

/// A non-empty path string.
pub fn path_value(cx: &Ctx, key: &str, v: &Spanned<String>) -> Result<PathBuf, ConfigError> {
    if v.get_ref().trim().is_empty() {
        return Err(cx.err(
            &v.span(),
            format!("{key} is empty"),
            "give a path, or remove the line for the default",
        ));
    }
    Ok(PathBuf::from(v.get_ref()))
}

fn limits(raw: &RawLimits, cx: &Ctx) -> Result<Limits, ConfigError> {
    let mut l = Limits::default();
    let as_usize = |key: &str, q: &Spanned<Quantity>| -> Result<usize, ConfigError> {
        let n = cx.size(key, q)?;
        usize::try_from(n).map_err(|_| {
            cx.err(
                &q.span(),
                format!("{key} {n} is too large"),
                "use a smaller size",
            )
        })
    };
    if let Some(q) = &raw.max_request_line {
        l.max_request_line = as_usize("limits.max_request_line", q)?;
    }
    if let Some(q) = &raw.max_head_bytes {
        l.max_head_bytes = as_usize("limits.max_head_bytes", q)?;
    }
    let count = |key: &str, q: &Spanned<Quantity>| -> Result<usize, ConfigError> {
        if let Quantity::Str(s) = q.get_ref() {
            return Err(cx.err(
                &q.span(),
                format!("{key} {s:?} is not a count"),
                "write a whole number such as 100",
            ));
        }
        as_usize(key, q)
    };
    if let Some(q) = &raw.max_headers {
        l.max_headers = count("limits.max_headers", q)?;
    }
    if let Some(q) = &raw.max_connections_per_shard {
        l.max_connections_per_shard = count("limits.max_connections_per_shard", q)?;
    }
    if let Some(q) = &raw.max_connections_per_ip {
        l.max_connections_per_ip = count("limits.max_connections_per_ip", q)?;
    }
    if let Some(q) = &raw.shed_after_in_flight {
        // 0 is allowed here: it turns shedding off.
        let n = match q.get_ref() {
            Quantity::Int(0) => 0,
            _ => count("limits.shed_after_in_flight", q)?,
        };
        l.shed_after_in_flight = u32::try_from(n).map_err(|_| {
            cx.err(
                &q.span(),
                format!("limits.shed_after_in_flight {n} is too large"),
                "write at most 4294967295, or 0 to never shed",
            )
        })?;
    }
    if let Some(q) = &raw.min_body_rate {
        l.min_body_rate = cx.size("limits.min_body_rate", q)?;
    }
    if let Some(q) = &raw.max_body_bytes {
        l.max_body_bytes = cx.size("limits.max_body_bytes", q)?;
    }
    if l.max_request_line > l.max_head_bytes {
        let span = raw
            .max_request_line
            .as_ref()
            .or(raw.max_head_bytes.as_ref())
            .map_or(0..0, Spanned::span);
        return Err(cx.err(
            &span,
            format!(
                "limits.max_request_line ({}) is larger than limits.max_head_bytes ({}), which includes it",
                l.max_request_line, l.max_head_bytes
            ),
            "lower max_request_line or raise max_head_bytes",
        ));
    }
    Ok(l)
}

fn timeouts(raw: &RawTimeouts, cx: &Ctx) -> Result<Timeouts, ConfigError> {
    let mut t = Timeouts::default();
    let fields: [(&str, &Opt<Quantity>, &mut Duration); 9] = [
        ("timeouts.head", &raw.head, &mut t.head),
        ("timeouts.body_idle", &raw.body_idle, &mut t.body_idle),
        (
            "timeouts.keepalive_idle",
            &raw.keepalive_idle,
            &mut t.keepalive_idle,
        ),
        (
            "timeouts.upstream_connect",
            &raw.upstream_connect,
            &mut t.upstream_connect,
        ),
        (
            "timeouts.upstream_response",
            &raw.upstream_response,
            &mut t.upstream_response,
        ),
        ("timeouts.drain", &raw.drain, &mut t.drain),
        ("timeouts.body_grace", &raw.body_grace, &mut t.body_grace),
        (
            "timeouts.client_write",
            &raw.client_write,
            &mut t.client_write,
        ),
        (
            "timeouts.upstream_idle",
            &raw.upstream_idle,
            &mut t.upstream_idle,
        ),
    ];
    for (key, q, slot) in fields {
        if let Some(q) = q {
            *slot = cx.duration(key, q)?;
        }
    }
    Ok(t)
}
