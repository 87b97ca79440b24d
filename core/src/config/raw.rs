//! The file's shape as serde sees it: every table strict, every value spanned, nothing defaulted yet.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::units::Quantity;

/// `Option<Spanned<T>>`: a value that may be absent, and if present knows where it was written.
pub type Opt<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub keys: RawKeys,
    #[serde(default)]
    pub identity: RawIdentity,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub ratelimit: RawRateLimit,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub leaks: RawLeaks,
    #[serde(default)]
    pub upstreams: BTreeMap<Spanned<String>, RawUpstream>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Opt<String>,
    pub shards: Opt<usize>,
    pub admin_listen: Opt<String>,
    pub state_dir: Opt<String>,
    pub trusted_proxies: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    pub snapshot: Opt<String>,
    pub db: Opt<String>,
    pub header: Opt<String>,
    pub bearer: Option<bool>,
    pub self_service_path: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub key_id_header: Opt<String>,
    pub tenant_header: Opt<String>,
    pub plan_header: Opt<String>,
    pub scopes_header: Opt<String>,
    pub meta_prefix: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_request_line: Opt<Quantity>,
    pub max_head_bytes: Opt<Quantity>,
    pub max_headers: Opt<Quantity>,
    pub max_body_bytes: Opt<Quantity>,
    pub min_body_rate: Opt<Quantity>,
    pub max_connections_per_shard: Opt<Quantity>,
    pub max_connections_per_ip: Opt<Quantity>,
    pub shed_after_in_flight: Opt<Quantity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub sync_interval: Opt<Quantity>,
    pub max_wait: Opt<Quantity>,
    pub headers: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub path: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub token_file: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeaks {
    pub github_public_keys: Option<Vec<Spanned<String>>>,
    pub on_leak: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub head: Opt<Quantity>,
    pub body_idle: Opt<Quantity>,
    pub keepalive_idle: Opt<Quantity>,
    pub upstream_connect: Opt<Quantity>,
    pub upstream_response: Opt<Quantity>,
    pub drain: Opt<Quantity>,
    pub body_grace: Opt<Quantity>,
    pub client_write: Opt<Quantity>,
    pub upstream_idle: Opt<Quantity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub servers: Spanned<Vec<Spanned<String>>>,
    pub pool_size: Opt<usize>,
    pub queue: Option<usize>,
    pub connect_timeout: Opt<Quantity>,
    pub response_timeout: Opt<Quantity>,
    pub eject_after_failures: Option<u32>,
    pub eject_after_5xx: Option<u32>,
    pub eject_backoff: Opt<Quantity>,
    pub eject_max_backoff: Opt<Quantity>,
    pub health_check_path: Opt<String>,
    pub health_check_interval: Opt<Quantity>,
    pub health_check_timeout: Opt<Quantity>,
    pub resolve_interval: Opt<Quantity>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path_prefix: Spanned<String>,
    pub host: Opt<String>,
    pub upstream: Spanned<String>,
    pub public: Option<bool>,
    pub max_body_bytes: Opt<Quantity>,
    #[serde(default)]
    pub by_plan: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub by_tenant: BTreeMap<String, Spanned<String>>,
    pub key_in_query: Opt<String>,
    pub allow_upgrade: Option<bool>,
    pub cost: Option<u64>,
    pub allow_path_params: Option<bool>,
    pub prefix_match: Opt<String>,
    pub connect_timeout: Opt<Quantity>,
    pub response_timeout: Opt<Quantity>,
    pub idle_timeout: Opt<Quantity>,
}

/// Names the table whose field list serde printed in an "unknown field" error,
/// recognised by the first field it expects.
pub fn table_of_fields(first_expected: &str) -> Option<&'static str> {
    Some(match first_expected {
        "server" => "the top level",
        "listen" => "[server]",
        "snapshot" => "[keys]",
        "key_id_header" => "[identity]",
        "max_request_line" => "[limits]",
        "head" => "[timeouts]",
        "servers" => "[upstreams.*]",
        "path_prefix" => "[[routes]]",
        _ => return None,
    })
}
