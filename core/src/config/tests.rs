//! Whole-file tests: defaults, the shipped example, paths; refusals are in `tests_errors.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const EXAMPLE: &str = include_str!("../../../config/keyway.toml");

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "keyway.toml", Path::new("/etc/keyway"))
}

/// Parses `text`, expecting an error; returns its Display after checking it is one line.
fn err(text: &str) -> String {
    let e = parse(text).expect_err("config should be rejected");
    let s = e.to_string();
    assert!(!s.contains('\n'), "not one line: {s}");
    assert!(s.contains("; "), "no 'what to do' part: {s}");
    s
}

/// Asserts the error starts with `keyway.toml:LINE: ` and contains `needle`.
fn assert_err(text: &str, line: usize, needle: &str) {
    let s = err(text);
    let head = format!("keyway.toml:{line}: ");
    assert!(s.starts_with(&head), "expected line {line}: {s}");
    assert!(s.contains(needle), "expected {needle:?} in: {s}");
}

const UP: &str = "[upstreams.api]\nservers = [\"127.0.0.1:9000\"]\n";

#[test]
fn empty_file_is_all_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.server.shards, 0);
    assert_eq!(c.server.state_dir, PathBuf::from("/var/lib/keyway"));
    assert!(c.server.trusted_proxies.is_empty());
    assert_eq!(c.keys.snapshot, PathBuf::from("/var/lib/keyway/keys.snap"));
    assert_eq!(c.keys.db, PathBuf::from("/var/lib/keyway/keys.db"));
    assert_eq!(c.keys.header, "x-api-key");
    assert!(c.keys.bearer);
    assert_eq!(c.identity.key_id_header, "x-keyway-key-id");
    assert_eq!(c.identity.tenant_header, "x-keyway-tenant");
    assert_eq!(c.identity.plan_header, "x-keyway-plan");
    assert_eq!(c.identity.scopes_header, "x-keyway-scopes");
    assert_eq!(c.identity.meta_prefix, "x-keyway-meta-");
    assert_eq!(c.limits.max_request_line, 8192);
    assert_eq!(c.limits.max_head_bytes, 16384);
    assert_eq!(c.limits.max_headers, 100);
    assert_eq!(c.limits.max_body_bytes, 10 * 1024 * 1024);
    assert_eq!(c.timeouts.head, Duration::from_secs(10));
    assert_eq!(c.timeouts.body_idle, Duration::from_secs(30));
    assert_eq!(c.timeouts.keepalive_idle, Duration::from_secs(60));
    assert_eq!(c.timeouts.upstream_connect, Duration::from_secs(2));
    assert_eq!(c.timeouts.upstream_response, Duration::from_secs(30));
    assert_eq!(c.timeouts.drain, Duration::from_secs(10));
    assert!(c.upstreams.is_empty() && c.routes.is_empty());
    // comments and empty tables are fine too
    assert_eq!(
        parse("# nothing\n[server]\n[keys]\n[limits]\n").unwrap(),
        Config::default()
    );
}

#[test]
fn example_file_parses() {
    let c = Config::parse(EXAMPLE, "keyway.toml", Path::new("/etc/keyway")).unwrap();
    // the example spells out the defaults
    assert_eq!(c.server, Server::default());
    assert_eq!(c.keys, Keys::default());
    assert_eq!(c.identity, Identity::default());
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.timeouts, Timeouts::default());
    let api = Upstream::new("api", vec!["127.0.0.1:9000".parse().unwrap()]);
    assert_eq!(c.upstreams, vec![api]);
    assert_eq!(c.upstream_index("api"), Some(0));
    assert_eq!(
        c.routes,
        vec![
            Route::new("/v1/", "api"),
            Route {
                public: true,
                ..Route::new("/health", "api")
            }
        ]
    );
}

#[test]
fn example_comments_parse_when_uncommented() {
    // every "# key = value   # example" line is valid once uncommented
    let mut text = String::new();
    for line in EXAMPLE.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("# ") {
            if rest.contains("# example") {
                text.push_str(rest.split("# example").next().unwrap());
                text.push('\n');
                continue;
            }
        }
        text.push_str(line);
        text.push('\n');
    }
    // the uncommented trusted_proxies line repeats the key: drop the empty one
    let text = text.replacen("trusted_proxies = []\n", "", 1);
    let c = parse(&text).unwrap();
    assert_eq!(
        c.server.trusted_proxies,
        ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]
    );
    assert_eq!(c.upstreams.len(), 2);
    let pro = c.upstream("api-pro").unwrap();
    assert_eq!(pro.servers.len(), 2);
    let api = c.upstream("api").unwrap();
    assert_eq!(api.connect_timeout, Some(Duration::from_secs(1)));
    assert_eq!(api.response_timeout, Some(Duration::from_secs(120)));
    let v1 = &c.routes[0];
    assert_eq!(v1.host.as_deref(), Some("api.example.com"));
    assert_eq!(v1.max_body_bytes, Some(1 << 20));
    assert_eq!(v1.by_plan["pro"], "api-pro");
    assert_eq!(v1.by_plan["enterprise"], "api-pro");
    assert_eq!(v1.by_tenant["acme"], "api-pro");
    assert_eq!(v1.key_in_query.as_deref(), Some("api_key"));
}

#[test]
fn full_config_values() {
    let text = r#"
[server]
listen = "0.0.0.0:443"
shards = 4
admin_listen = "[::1]:9999"
state_dir = "state"
trusted_proxies = ["10.0.0.0/8", "::1", " 192.168.0.0/16 "]

[keys]
snapshot = "/srv/snap"
db = "db/keys.db"
header = "X-My-Key"
bearer = false

[identity]
key_id_header = "X-Key"
meta_prefix = "X-Meta-"

[limits]
max_request_line = 4096
max_head_bytes = "32 KiB"
max_headers = 50
shed_after_in_flight = 200
max_body_bytes = "1MB"

[timeouts]
head = "500ms"
drain = "1m 30s"
upstream_idle = "10m"

[upstreams.zeta]
servers = ["10.0.0.2:80", "[::1]:8080"]
pool_size = 8
queue = 0
connect_timeout = "250ms"

[upstreams.alpha]
servers = ["10.0.0.1:80"]
eject_after_failures = 5
eject_after_5xx = 2
eject_backoff = "2s"
health_check_path = "/healthz?deep=1"
health_check_interval = "10s"

[[routes]]
path_prefix = "/"
host = "API.Example.COM:8443"
upstream = "zeta"
max_body_bytes = "64KiB"
by_plan = { gold = "alpha" }
by_tenant = { acme = "alpha" }
key_in_query = "key"
allow_upgrade = true
cost = 0
allow_path_params = true
prefix_match = "raw"
response_timeout = "2m"
idle_timeout = "1h"

[[routes]]
path_prefix = "/"
upstream = "alpha"
public = true
"#;
    let c = Config::parse(text, "x.toml", Path::new("/etc/keyway")).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:443");
    assert_eq!(c.server.shards, 4);
    assert_eq!(c.server.admin_listen.to_string(), "[::1]:9999");
    assert_eq!(c.server.state_dir, PathBuf::from("/etc/keyway/state"));
    assert_eq!(
        c.server.trusted_proxies,
        ["10.0.0.0/8", "::1/128", "192.168.0.0/16"]
    );
    let nets = c.server.trusted_proxy_nets();
    assert!(nets.iter().any(|n| n.contains("10.9.8.7".parse().unwrap())));
    assert!(!nets.iter().any(|n| n.contains("8.8.8.8".parse().unwrap())));
    assert_eq!(c.keys.snapshot, PathBuf::from("/srv/snap"));
    assert_eq!(c.keys.db, PathBuf::from("/etc/keyway/state/db/keys.db"));
    assert_eq!(c.keys.header, "x-my-key");
    assert!(!c.keys.bearer);
    assert_eq!(c.identity.key_id_header, "x-key");
    assert_eq!(c.identity.tenant_header, "x-keyway-tenant");
    assert_eq!(c.identity.meta_prefix, "x-meta-");
    assert_eq!(c.limits.max_request_line, 4096);
    assert_eq!(c.limits.max_head_bytes, 32 * 1024);
    assert_eq!(c.limits.max_headers, 50);
    assert_eq!(c.limits.max_body_bytes, 1_000_000);
    assert_eq!(c.timeouts.head, Duration::from_millis(500));
    assert_eq!(c.timeouts.drain, Duration::from_secs(90));
    assert_eq!(c.timeouts.body_idle, Duration::from_secs(30));
    // sorted by name, whatever the file order
    let names: Vec<_> = c.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(c.upstream_index("alpha"), Some(0));
    assert_eq!(c.upstream_index("zeta"), Some(1));
    assert_eq!(c.upstream_index("nope"), None);
    let z = &c.upstreams[1];
    assert_eq!(z.servers.len(), 2);
    assert_eq!((z.pool_size, z.queue), (8, 0));
    assert_eq!(z.connect_timeout, Some(Duration::from_millis(250)));
    assert_eq!(z.ejection, crate::health::Ejection::default());
    assert_eq!(c.timeouts.upstream_idle, Duration::from_secs(600));
    assert_eq!(c.limits.shed_after_in_flight, 200);
    assert_eq!(z.health_check, None);
    assert_eq!(
        c.upstreams[0].health_check,
        Some(super::HealthCheck {
            path: "/healthz?deep=1".into(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
        })
    );
    let r = &c.routes[0];
    assert_eq!(
        (r.connect_timeout, r.response_timeout, r.idle_timeout),
        (
            None,
            Some(Duration::from_secs(120)),
            Some(Duration::from_secs(3600))
        )
    );
    assert_eq!(c.routes[1].idle_timeout, None);
    assert_eq!(
        c.upstreams[0].ejection,
        crate::health::Ejection {
            max_fails: 5,
            max_5xx: 2,
            backoff_ms: 2_000,
            max_backoff_ms: 30_000,
        }
    );
    assert_eq!(z.response_timeout, None);
    assert_eq!((c.upstreams[0].pool_size, c.upstreams[0].queue), (64, 1024));
    let r = &c.routes[0];
    assert_eq!(r.host.as_deref(), Some("api.example.com"));
    assert_eq!(r.label(), "api.example.com/");
    assert_eq!(r.max_body_bytes, Some(65536));
    assert_eq!(r.by_plan.get("gold").map(String::as_str), Some("alpha"));
    assert_eq!(r.by_tenant.get("acme").map(String::as_str), Some("alpha"));
    assert_eq!(r.key_in_query.as_deref(), Some("key"));
    assert!(r.allow_upgrade && !r.public);
    assert_eq!(r.cost, 0);
    assert!(r.allow_path_params);
    assert_eq!(r.prefix_match, PrefixMatch::Raw);
    assert!(c.routes[1].public);
    assert_eq!(c.routes[1].cost, 1);
    assert!(!c.routes[1].allow_path_params);
    assert_eq!(c.routes[1].prefix_match, PrefixMatch::Segment);
}

#[test]
fn relative_paths() {
    let base = Path::new("/opt/kw/conf");
    let c = Config::parse("[server]\nstate_dir = \"../state\"\n", "k.toml", base).unwrap();
    assert_eq!(c.server.state_dir, PathBuf::from("/opt/kw/conf/../state"));
    assert_eq!(c.audit.path, None, "no audit log unless asked for");
    let text = "[server]\nstate_dir = \"/s\"\n[audit]\npath = \"audit.jsonl\"\n";
    let a = Config::parse(text, "k.toml", base).unwrap();
    assert_eq!(a.audit.path, Some(PathBuf::from("/s/audit.jsonl")));
    let text = "[audit]\npath = \"/var/log/keyway/audit.jsonl\"\n";
    let a = Config::parse(text, "k.toml", base).unwrap();
    assert_eq!(
        a.audit.path,
        Some(PathBuf::from("/var/log/keyway/audit.jsonl"))
    );
    assert_eq!(
        c.keys.snapshot,
        PathBuf::from("/opt/kw/conf/../state/keys.snap")
    );
    assert_eq!(c.keys.db, PathBuf::from("/opt/kw/conf/../state/keys.db"));
    let c = Config::parse(
        "[keys]\nsnapshot = \"s/k.snap\"\ndb = \"/abs/k.db\"\n",
        "k.toml",
        base,
    )
    .unwrap();
    assert_eq!(c.keys.snapshot, PathBuf::from("/var/lib/keyway/s/k.snap"));
    assert_eq!(c.keys.db, PathBuf::from("/abs/k.db"));
    let c = Config::parse("[server]\nstate_dir = \"/srv/kw\"\n", "k.toml", base).unwrap();
    assert_eq!(c.keys.snapshot, PathBuf::from("/srv/kw/keys.snap"));
}

#[test]
fn load_reads_file_and_resolves_against_its_dir() {
    let dir = std::env::temp_dir().join(format!("keyway-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("k.toml");
    std::fs::write(&path, "[server]\nstate_dir = \"st\"\n").unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.server.state_dir, dir.join("st"));
    std::fs::write(&path, "\n\n[server]\nlisen = 1\n").unwrap();
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:4: unknown field `lisen`", path.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file_is_io_error() {
    let e = Config::load(Path::new("/nonexistent/dir/keyway.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert_eq!(
        e.to_string(),
        "/nonexistent/dir/keyway.toml: cannot read: No such file or directory; pass --config PATH or set KEYWAY_CONFIG"
    );
    let e = Config::load(&std::env::temp_dir()).unwrap_err();
    assert!(
        matches!(e, ConfigError::Io { .. }),
        "a directory is unreadable: {e}"
    );
}

#[test]
fn ratelimit_section() {
    let c =
        parse("[ratelimit]\nsync_interval = \"5ms\"\nmax_wait = \"0ms\"\nheaders = \"legacy\"\n")
            .unwrap();
    assert_eq!(c.ratelimit.max_wait, std::time::Duration::ZERO);
    assert_eq!(
        c.ratelimit.sync_interval,
        std::time::Duration::from_millis(5)
    );
    assert_eq!(c.ratelimit.headers, RateLimitHeaders::Legacy);
    let d = parse("").unwrap();
    assert_eq!(d.ratelimit, RateLimit::default());
    let e = parse("[ratelimit]\nheaders = \"nope\"\n").unwrap_err();
    assert_eq!(e.line(), Some(2), "{e}");
    let e = parse("[ratelimit]\nsync_interval = \"5s\"\n").unwrap_err();
    assert_eq!(e.line(), Some(2), "{e}");
    let e = parse("[audit]\npath = \"\"\n").unwrap_err();
    assert_eq!(e.line(), Some(2), "{e}");
    let e = parse("[ratelimit]\n\nmax_wait = \"1min\"\n").unwrap_err();
    assert_eq!(e.line(), Some(3), "{e}");
    assert!(e.to_string().contains("max_wait"), "{e}");
}

#[path = "tests_errors.rs"]
mod errors;

#[test]
fn host_name_servers_wait_for_their_addresses() {
    let c = parse(
        "[upstreams.api]\nservers = [\"10.0.0.1:80\", \"Backend.internal:8080\", \"other.internal:80\"]\nresolve_interval = \"5s\"\n",
    )
    .unwrap();
    let mut u = c.upstreams[0].clone();
    let a = |s: &str| -> std::net::SocketAddr { s.parse().unwrap() };
    assert_eq!(u.servers, [a("10.0.0.1:80")]);
    assert_eq!(u.fixed, u.servers);
    assert_eq!(u.resolve_interval, Duration::from_secs(5));
    let names: Vec<(&str, u16)> = u.hosts.iter().map(|h| (h.host.as_str(), h.port)).collect();
    assert_eq!(names, [("backend.internal", 8080), ("other.internal", 80)]);
    // Resolved: every address is a server, in order, once (a literal one included).
    u.set_resolved(vec![
        vec![a("10.0.0.3:8080"), a("10.0.0.2:8080"), a("10.0.0.3:8080")],
        vec![a("10.0.0.1:80")],
    ]);
    assert_eq!(
        u.servers,
        [a("10.0.0.1:80"), a("10.0.0.2:8080"), a("10.0.0.3:8080")]
    );
    assert_eq!(u.hosts[0].addrs, [a("10.0.0.2:8080"), a("10.0.0.3:8080")]);
    // Resolved again to other addresses: the old ones leave.
    u.set_resolved(vec![vec![a("10.0.0.9:8080")], vec![]]);
    assert_eq!(u.servers, [a("10.0.0.1:80"), a("10.0.0.9:8080")]);
    // Without host names the default interval stands and nothing waits.
    let plain = parse("[upstreams.api]\nservers = [\"10.0.0.1:80\"]\n").unwrap();
    assert!(plain.upstreams[0].hosts.is_empty());
    assert_eq!(
        plain.upstreams[0].resolve_interval,
        DEFAULT_RESOLVE_INTERVAL
    );
}

#[test]
fn self_service_path_defaults_and_turns_off() {
    let c = parse("").unwrap();
    assert_eq!(
        c.keys.self_service_path.as_deref(),
        Some(DEFAULT_SELF_SERVICE_PATH)
    );
    let c = parse("[keys]\nself_service_path = \"\"\n").unwrap();
    assert_eq!(c.keys.self_service_path, None);
    let c = parse("[keys]\nself_service_path = \"/me/key\"\n").unwrap();
    assert_eq!(c.keys.self_service_path.as_deref(), Some("/me/key"));
    for bad in ["me", "/a b", "/a?b"] {
        let e = parse(&format!("[keys]\nself_service_path = \"{bad}\"\n")).unwrap_err();
        assert!(
            e.to_string().contains("is not a plain absolute path"),
            "{bad}: {e}"
        );
    }
}
