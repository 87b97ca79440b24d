//! Configuration refusals: every error kind, each with its line number and one-line text.

use super::*;
#[test]
fn unknown_fields() {
    assert_eq!(
        err("# c\n\n[server]\nlisen = \"127.0.0.1:1\"\n"),
        "keyway.toml:4: unknown field `lisen` in [server]; expected one of listen, shards, admin_listen, state_dir, trusted_proxies"
    );
    assert_eq!(
        err("[sever]\n"),
        "keyway.toml:1: unknown field `sever` at the top level; expected one of server, keys, identity, limits, timeouts, ratelimit, audit, admin, leaks, upstreams, routes"
    );
    assert_err(
        "[keys]\nheadr = \"x\"\n",
        2,
        "unknown field `headr` in [keys]; expected one of snapshot,",
    );
    assert_err(
        "[identity]\nx = \"x\"\n",
        2,
        "in [identity]; expected one of key_id_header,",
    );
    assert_err(
        "[limits]\nmax_body = 1\n",
        2,
        "in [limits]; expected one of max_request_line,",
    );
    assert_err(
        "[timeouts]\nheader = \"1s\"\n",
        2,
        "in [timeouts]; expected one of head,",
    );
    assert_err(
        &format!("{UP}pool = 1\n"),
        3,
        "unknown field `pool` in [upstreams.api]; expected one of servers,",
    );
    assert_err(
        &format!("{UP}[[routes]]\npath_prefix = \"/\"\nupstream = \"api\"\nplan = {{}}\n"),
        6,
        "in [[routes]]; expected one of path_prefix,",
    );
}

#[test]
fn syntax_and_type_errors() {
    assert_err("[server]\nlisten = \"a\nx = 1\n", 2, "fix the TOML syntax");
    assert_err("[server\n", 1, "fix the TOML syntax");
    assert_err(
        "[server]\nshards = 1\nshards = 2\n",
        3,
        "duplicate key `shards`",
    );
    assert_err(
        "\n[server]\nshards = \"four\"\n",
        3,
        "server.shards: invalid type: string \"four\", expected a whole number; fix the value",
    );
    assert_err("server = 5\n", 1, "expected a table");
    assert_err(
        "[keys]\nbearer = \"yes\"\n",
        2,
        "keys.bearer: invalid type: string \"yes\", expected a boolean",
    );
    assert_err(
        "[limits]\nmax_headers = 1.5\n",
        2,
        "limits.max_headers: invalid type: floating point",
    );
    assert_err(
        &format!("{UP}[[routes]]\npath_prefix = \"/\"\nupstream = \"api\"\ncost = -1\n"),
        6,
        "routes.cost: invalid value: integer `-1`",
    );
    assert_err(
        &format!("{UP}queue = -1\n"),
        3,
        "upstreams.api.queue: invalid value",
    );
}

#[test]
fn missing_required_fields() {
    assert_err(
        "\n[upstreams.api]\npool_size = 3\n",
        2,
        "missing field `servers` in [upstreams.api]; add servers = [",
    );
    assert_err(
        &format!("{UP}\n[[routes]]\nupstream = \"api\"\n"),
        4,
        "missing field `path_prefix` in [[routes]]; add path_prefix",
    );
    assert_err(
        "[[routes]]\npath_prefix = \"/\"\n",
        1,
        "missing field `upstream` in [[routes]]; add upstream",
    );
}

#[test]
fn socket_addresses() {
    assert_err(
        "[server]\nlisten = \"localhost:8080\"\n",
        2,
        "server.listen \"localhost:8080\" is not a socket address; write IP:PORT",
    );
    assert_err(
        "[server]\nadmin_listen = \"127.0.0.1\"\n",
        2,
        "server.admin_listen \"127.0.0.1\" is not a socket address",
    );
    assert_err(
        "[server]\nadmin_listen = \"127.0.0.1:8080\"\n",
        2,
        "is the same address as server.listen",
    );
    assert!(parse("[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n").is_ok());
    assert_err(
        "[upstreams.api]\nservers = [\n  \"127.0.0.1:1\",\n  \"api_1:80\",\n]\n",
        4,
        "upstreams.api.servers \"api_1:80\" is not a socket address",
    );
    assert_err(
        "[upstreams.api]\nservers = [\"api.internal:0\"]\n",
        2,
        "has port 0",
    );
    assert_err(
        "[upstreams.api]\nservers = [\"API.internal:80\", \"api.internal:80\"]\n",
        2,
        "lists \"api.internal:80\" twice",
    );
    assert_err(
        "[upstreams.api]\nservers = [\"api.internal:80\"]\nresolve_interval = 5\n",
        3,
        "resolve_interval",
    );
    assert_err(
        "[upstreams.api]\nservers = [\"127.0.0.1:0\"]\n",
        2,
        "has port 0",
    );
    assert_err(
        "[upstreams.api]\nservers = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n",
        2,
        "lists \"127.0.0.1:1\" twice",
    );
}

#[test]
fn upstream_errors() {
    assert_err(
        "[upstreams.api]\n\nservers = []\n",
        3,
        "upstreams.api.servers is empty; list at least one",
    );
    assert_err(
        &format!("{UP}pool_size = 0\n"),
        3,
        "upstreams.api.pool_size is 0; set it to at least 1 (default 64)",
    );
    assert_err(
        "[upstreams.\"a b\"]\nservers = [\"127.0.0.1:1\"]\n",
        1,
        "upstream name \"a b\" is not a plain name",
    );
    assert_err(
        &format!("{UP}connect_timeout = \"0s\"\n"),
        3,
        "upstreams.api.connect_timeout is 0",
    );
    assert_err(
        "[upstreams.api]\nservers = [\"127.0.0.1:1\"]\n[[routes]]\npath_prefix = \"/v1/\"\nupstream = \"api\"\nidle_timeout = \"0s\"\n",
        6,
        "route /v1/ idle_timeout is 0",
    );
    assert_err(
        &format!("{UP}health_check_interval = \"1s\"\n"),
        3,
        "upstreams.api sets a health check interval or timeout but no health_check_path; add health_check_path",
    );
    assert_err(
        &format!("{UP}health_check_path = \"healthz\"\n"),
        3,
        "upstreams.api.health_check_path \"healthz\" is not a path; write an absolute path",
    );
    assert_err(
        &format!("{UP}health_check_path = \"/a b\"\n"),
        3,
        "is not a path",
    );
    assert_err(
        &format!("{UP}eject_backoff = \"0s\"\n"),
        3,
        "upstreams.api.eject_backoff is 0",
    );
    assert_err(
        &format!("{UP}eject_backoff = \"10s\"\neject_max_backoff = \"5s\"\n"),
        4,
        "upstreams.api.eject_max_backoff (5s) is shorter than eject_backoff (10s); make it at least eject_backoff, or drop it (default 30s)",
    );
    assert_err(
        &format!("{UP}eject_after_failures = -1\n"),
        3,
        "eject_after_failures",
    );
    assert_err(
        &format!("{UP}response_timeout = \"soon\"\n"),
        3,
        "upstreams.api.response_timeout \"soon\" is not a duration",
    );
}

#[test]
fn route_errors() {
    let route = |body: &str| format!("{UP}[[routes]]\n{body}");
    // UP is lines 1-2, [[routes]] is line 3, body starts on line 4
    assert_eq!(
        err(&route("path_prefix = \"/v1\"\nupstream = \"api2\"\n")),
        "keyway.toml:5: route /v1 names upstream \"api2\", which is not defined; add [upstreams.api2] or fix the name"
    );
    assert_err(
        &route("path_prefix = \"v1\"\nupstream = \"api\"\n"),
        4,
        "route path_prefix \"v1\" does not start with '/'",
    );
    assert_err(
        &route("path_prefix = \"/v1?x=1\"\nupstream = \"api\"\n"),
        4,
        "contains '?'",
    );
    assert_err(
        &route("path_prefix = \"/a b\"\nupstream = \"api\"\n"),
        4,
        "contains ' '",
    );
    assert_err(
        &route("path_prefix = \"/\"\nhost = \"a b\"\nupstream = \"api\"\n"),
        5,
        "host \"a b\" is not a host name",
    );
    assert_err(
        &route("path_prefix = \"/v1\"\nupstream = \"api\"\nby_plan = { pro = \"gold\" }\n"),
        6,
        "route /v1 by_plan.pro names upstream \"gold\", which is not defined; add [upstreams.gold]",
    );
    assert_err(
        &route("path_prefix = \"/v1\"\nupstream = \"api\"\n[routes.by_tenant]\nacme = \"x\"\n"),
        7,
        "route /v1 by_tenant.acme names upstream \"x\"",
    );
    assert_err(
        &route("path_prefix = \"/\"\nupstream = \"api\"\nkey_in_query = \"a&b\"\n"),
        6,
        "key_in_query \"a&b\" is not a plain query parameter name",
    );
    assert_err(
        &route("path_prefix = \"/\"\nupstream = \"api\"\nmax_body_bytes = 0\n"),
        6,
        "route / max_body_bytes is 0",
    );
    assert_err(
        &route("path_prefix = \"/\"\nupstream = \"api\"\nmax_body_bytes = \"11MiB\"\n"),
        6,
        "route / max_body_bytes (11534336) is larger than limits.max_body_bytes (10485760), which caps every route; lower it",
    );
    let raised = format!(
        "[limits]\nmax_body_bytes = \"20MiB\"\n{}",
        route("path_prefix = \"/\"\nupstream = \"api\"\nmax_body_bytes = \"11MiB\"\n")
    );
    assert_eq!(
        parse(&raised).unwrap().routes[0].max_body_bytes,
        Some(11 << 20)
    );
    assert_err(
        &route("path_prefix = \"/h\"\nupstream = \"api\"\npublic = true\nkey_in_query = \"k\"\n"),
        7,
        "route /h is public, so key_in_query would never apply; remove key_in_query, or set public = false",
    );
    assert_err(
        &route(
            "path_prefix = \"/h\"\nupstream = \"api\"\npublic = true\nby_plan = { a = \"api\" }\n",
        ),
        7,
        "is public, so by_plan",
    );
    assert_err(
        &route("path_prefix = \"/h\"\nupstream = \"api\"\nprefix_match = \"exact\"\n"),
        6,
        "route /h prefix_match \"exact\" is not \"segment\" or \"raw\"; write prefix_match = \"segment\"",
    );
    assert_err(
        &route("path_prefix = \"/h\"\nupstream = \"api\"\nallow_path_params = \"yes\"\n"),
        6,
        "allow_path_params",
    );
}

#[test]
fn duplicate_routes() {
    let text = format!(
        "{UP}[[routes]]\npath_prefix = \"/v1\"\nupstream = \"api\"\n\n[[routes]]\npath_prefix = \"/v1\"\nupstream = \"api\"\npublic = true\n"
    );
    assert_eq!(
        err(&text),
        "keyway.toml:8: route /v1 is defined twice (same host and path_prefix; first at line 4); remove one, or change its path_prefix or host"
    );
    // same prefix on different hosts is fine; same host spelled differently is not
    let ok = format!("{UP}[[routes]]\npath_prefix = \"/v1\"\nupstream = \"api\"\n[[routes]]\npath_prefix = \"/v1\"\nhost = \"a.com\"\nupstream = \"api\"\n");
    assert!(parse(&ok).is_ok());
    let dup =
        format!("{ok}[[routes]]\npath_prefix = \"/v1\"\nhost = \"A.com:80\"\nupstream = \"api\"\n");
    assert_err(&dup, 11, "route a.com/v1 is defined twice");
}

#[test]
fn cidr_errors() {
    assert_err(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\",\n \"10.1.0.0/8\"]\n",
        3,
        "has host bits set; did you mean \"10.0.0.0/8\"?",
    );
    assert_err(
        "[server]\ntrusted_proxies = [\"10.0.0.0/40\"]\n",
        2,
        "server.trusted_proxies \"10.0.0.0/40\" has a bad prefix length",
    );
    assert_err(
        "[server]\ntrusted_proxies = [\"proxy.local\"]\n",
        2,
        "\"proxy.local\" is not a CIDR block",
    );
}

#[test]
fn limit_errors() {
    assert_err(
        "[limits]\nshed_after_in_flight = 5000000000\n",
        2,
        "limits.shed_after_in_flight 5000000000 is too large",
    );
    assert_err(
        "[limits]\nmax_headers = 0\n",
        2,
        "limits.max_headers is 0; set it to at least 1",
    );
    assert_err(
        "[limits]\nmax_body_bytes = \"0KiB\"\n",
        2,
        "limits.max_body_bytes is 0",
    );
    assert_err("[limits]\nmax_head_bytes = \"16 kilo\"\n", 2, "limits.max_head_bytes \"16 kilo\" is not a size; write a byte count such as 16384, \"16KiB\"");
    assert_err(
        "[limits]\nmax_request_line = -5\n",
        2,
        "limits.max_request_line -5 is negative",
    );
    assert_err(
        "[limits]\nmax_headers = \"100\"\n",
        2,
        "limits.max_headers \"100\" is not a count",
    );
    assert_err(
        "[limits]\nmax_head_bytes = 4096\n",
        2,
        "limits.max_request_line (8192) is larger than limits.max_head_bytes (4096)",
    );
    assert_err(
        "[limits]\nmax_request_line = \"20KiB\"\n",
        2,
        "limits.max_request_line (20480) is larger",
    );
}

#[test]
fn timeout_errors() {
    assert_eq!(
        err("[timeouts]\n\n\n\n\n\n\nhead = \"10x\"\n"),
        "keyway.toml:8: timeouts.head \"10x\" is not a duration; write e.g. \"10s\" or \"500ms\""
    );
    assert_err(
        "[timeouts]\nbody_idle = 30\n",
        2,
        "timeouts.body_idle 30 is not a duration (a unit is required)",
    );
    assert_err(
        "[timeouts]\ndrain = \"0ms\"\n",
        2,
        "timeouts.drain is 0; write a duration greater than 0",
    );
    assert_err(
        "[timeouts]\nkeepalive_idle = \"2days\"\n",
        2,
        "timeouts.keepalive_idle \"2days\" is longer than 24h",
    );
    assert_err(
        "[timeouts]\nupstream_connect = true\n",
        2,
        "timeouts.upstream_connect: invalid type: boolean",
    );
}

#[test]
fn header_errors() {
    assert_err(
        "[keys]\nheader = \"x api key\"\n",
        2,
        "keys.header \"x api key\" is not a valid header name",
    );
    assert_err(
        "[keys]\nheader = \"\"\n",
        2,
        "keys.header \"\" is not a valid header name",
    );
    for h in [
        "Host",
        "content-length",
        "Transfer-Encoding",
        "connection",
        "upgrade",
        "te",
    ] {
        assert_err(
            &format!("[keys]\nheader = \"{h}\"\n"),
            2,
            "is a hop-by-hop, framing or credential header",
        );
    }
    assert_err(
        "[keys]\nheader = \"Authorization\"\n",
        2,
        "reserved for bearer tokens; set keys.bearer = true",
    );
    assert_err(
        "[identity]\nplan_header = \"keep-alive\"\n",
        2,
        "identity.plan_header \"keep-alive\" is a hop-by-hop",
    );
    assert_err(
        "[identity]\ntenant_header = \"x-keyway-key-id\"\n",
        2,
        "identity.key_id_header and identity.tenant_header are both \"x-keyway-key-id\"",
    );
    assert_err(
        "[keys]\nheader = \"x-keyway-plan\"\n",
        2,
        "keys.header and identity.plan_header are both \"x-keyway-plan\"",
    );
    assert_err(
        "[identity]\nmeta_prefix = \"x-keyway-\"\n",
        2,
        "identity.key_id_header \"x-keyway-key-id\" starts with identity.meta_prefix",
    );
    assert_err(
        "[identity]\nmeta_prefix = \"content-\"\n",
        2,
        "could produce the header content-length",
    );
    assert_err(
        "[identity]\nmeta_prefix = \"\"\n",
        2,
        "is not a valid header name prefix",
    );
    assert_err(
        "[keys]\nheader = \"x-keyway-meta-key\"\n",
        2,
        "keys.header \"x-keyway-meta-key\" starts with identity.meta_prefix",
    );
}

#[test]
fn path_and_server_errors() {
    assert_err(
        "[server]\nstate_dir = \"\"\n",
        2,
        "server.state_dir is empty",
    );
    assert_err("[keys]\nsnapshot = \" \"\n", 2, "keys.snapshot is empty");
    assert_err(
        "[keys]\ndb = \"keys.snap\"\n",
        2,
        "keys.snapshot and keys.db are the same file",
    );
    assert_err(
        "[server]\nshards = 100000\n",
        2,
        "server.shards 100000 is more than 1024",
    );
}

#[test]
fn errors_have_lines_and_one_line_display() {
    let e = parse("[server]\nlisen = 1\n").unwrap_err();
    assert_eq!(e.line(), Some(2));
    match e {
        ConfigError::Invalid {
            origin,
            line,
            what,
            fix,
        } => {
            assert_eq!((origin.as_str(), line), ("keyway.toml", 2));
            assert_eq!(what, "unknown field `lisen` in [server]");
            assert!(fix.starts_with("expected one of listen"));
        }
        other => panic!("{other:?}"),
    }
    // a multi-line parser message is flattened
    let s = err("[a\nb]\n");
    assert!(s.starts_with("keyway.toml:1: "), "{s}");
}

#[test]
fn prefixes_no_judged_path_could_match() {
    for (prefix, why) in [
        ("/v1;x", "contains ';'"),
        ("/v1//x", "contains '//'"),
        ("/v1/../x", "contains a dot segment"),
        ("/./x", "contains a dot segment"),
        ("/a\\\\b", "contains a backslash"),
        ("/v1/%6frders", "percent-encodes an unreserved character"),
    ] {
        assert_err(
            &format!("{UP}[[routes]]\npath_prefix = \"{prefix}\"\nupstream = \"api\"\n"),
            4,
            why,
        );
    }
    // What a judged path can hold is fine: a trailing slash, dots inside a segment, escapes
    // of reserved characters.
    for prefix in ["/v1/", "/v1.2/x..y", "/a%20b", "/"] {
        assert!(Config::parse(
            &format!("{UP}[[routes]]\npath_prefix = \"{prefix}\"\nupstream = \"api\"\n"),
            "keyway.toml",
            Path::new("/tmp"),
        )
        .is_ok());
    }
}

#[test]
fn admin_and_leaks_sections() {
    let c = parse(
        "[admin]\ntoken_file = \"tokens\"\n[leaks]\ngithub_public_keys = [\"gh.pem\"]\non_leak = \"report\"\n",
    )
    .unwrap();
    assert!(c.admin.token_file.unwrap().ends_with("tokens"));
    assert_eq!(c.leaks.github_public_keys.len(), 1);
    assert_eq!(c.leaks.on_leak, super::OnLeak::Report);
    let d = parse("").unwrap();
    assert_eq!(
        (d.admin.token_file, d.leaks.on_leak),
        (None, super::OnLeak::Revoke)
    );
    let e = parse("[leaks]\non_leak = \"delete\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("leaks.on_leak \"delete\" is not known") && e.contains("\"report\""),
        "{e}"
    );
    let e = parse("[admin]\ntoken_file = \"\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("admin.token_file is empty"), "{e}");
}
