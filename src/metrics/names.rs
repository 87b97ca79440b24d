//! Every metric name keyway exports, in one place (docs/metrics.md describes each).

pub const REQUESTS_TOTAL: &str = "keyway_requests_total";
pub const REQUEST_DURATION: &str = "keyway_request_duration_seconds";
pub const UPSTREAM_DURATION: &str = "keyway_upstream_duration_seconds";
pub const UPSTREAM_ERRORS_TOTAL: &str = "keyway_upstream_errors_total";
pub const UPSTREAM_RETRIES_TOTAL: &str = "keyway_upstream_retries_total";
pub const UPSTREAM_EJECTIONS_TOTAL: &str = "keyway_upstream_ejections_total";
pub const UPSTREAM_SERVERS_OUT: &str = "keyway_upstream_servers_out";
pub const UPSTREAM_SERVER_OUT: &str = "keyway_upstream_server_out";
pub const RATELIMITED_TOTAL: &str = "keyway_ratelimited_total";
pub const SHED_TOTAL: &str = "keyway_shed_total";
pub const RATELIMIT_WAITS_TOTAL: &str = "keyway_ratelimit_waits_total";
pub const SNAPSHOT_GENERATION: &str = "keyway_snapshot_generation";
pub const SNAPSHOT_KEYS: &str = "keyway_snapshot_keys";
pub const SNAPSHOT_RELOAD_FAILURES_TOTAL: &str = "keyway_snapshot_reload_failures_total";
pub const CONFIG_VERSION: &str = "keyway_config_version";
pub const CONFIG_RELOAD_FAILURES_TOTAL: &str = "keyway_config_reload_failures_total";
pub const CONNECTIONS_ACTIVE: &str = "keyway_connections_active";
pub const AUDIT_DROPPED_TOTAL: &str = "keyway_audit_dropped_total";
