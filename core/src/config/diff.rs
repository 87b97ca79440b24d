//! What a reload changes: the settings that take effect only at a restart (kept at their
//! running values, and named), and a one-line description of every other change, for the
//! log. Pure: two configurations in, words out.

use super::{Config, Route};

/// The settings a running gateway cannot change in place: its listeners, its threads, its
/// state directory, key database (read for live revocations) and audit file, and the shards'
/// sync rhythm (their reserves are sized
/// by it). Those that differ in `new` are set back to `running`'s values and named.
pub fn keep_restart_only(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    let (r, n) = (&running.server, &mut new.server);
    if r.listen != n.listen {
        n.listen = r.listen;
        kept.push("server.listen");
    }
    if r.admin_listen != n.admin_listen {
        n.admin_listen = r.admin_listen;
        kept.push("server.admin_listen");
    }
    if r.shards != n.shards {
        n.shards = r.shards;
        kept.push("server.shards");
    }
    if r.state_dir != n.state_dir {
        n.state_dir.clone_from(&r.state_dir);
        kept.push("server.state_dir");
    }
    if running.keys.db != new.keys.db {
        new.keys.db.clone_from(&running.keys.db);
        kept.push("keys.db");
    }
    if running.audit != new.audit {
        new.audit.clone_from(&running.audit);
        kept.push("audit.path");
    }
    if running.ratelimit.sync_interval != new.ratelimit.sync_interval {
        new.ratelimit.sync_interval = running.ratelimit.sync_interval;
        kept.push("ratelimit.sync_interval");
    }
    kept
}

/// One line per change from `old` to `new`: routes (by host and prefix) and upstreams (by
/// name) added, removed or changed, and the other sections that changed. Empty: the same.
pub fn describe(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let route_id = |r: &Route| match &r.host {
        Some(h) => format!("route {h}{}", r.path_prefix),
        None => format!("route {}", r.path_prefix),
    };
    let same_place = |a: &Route, b: &Route| a.path_prefix == b.path_prefix && a.host == b.host;
    for r in &new.routes {
        match old.routes.iter().find(|o| same_place(o, r)) {
            None => out.push(format!("{} added", route_id(r))),
            Some(o) if o != r => out.push(format!("{} changed", route_id(r))),
            Some(_) => {}
        }
    }
    for o in &old.routes {
        if !new.routes.iter().any(|r| same_place(o, r)) {
            out.push(format!("{} removed", route_id(o)));
        }
    }
    for u in &new.upstreams {
        match old.upstream_index(&u.name).map(|i| &old.upstreams[i]) {
            None => out.push(format!("upstream {} added", u.name)),
            Some(o) if o != u => out.push(format!("upstream {} changed", u.name)),
            Some(_) => {}
        }
    }
    for o in &old.upstreams {
        if new.upstream_index(&o.name).is_none() {
            out.push(format!("upstream {} removed (its pools drain)", o.name));
        }
    }
    let sections = [
        ("[server]", old.server != new.server),
        ("[keys]", old.keys != new.keys),
        ("[identity]", old.identity != new.identity),
        ("[limits]", old.limits != new.limits),
        ("[timeouts]", old.timeouts != new.timeouts),
        ("[ratelimit]", old.ratelimit != new.ratelimit),
        ("[audit]", old.audit != new.audit),
        ("[admin]", old.admin != new.admin),
        ("[leaks]", old.leaks != new.leaks),
    ];
    for (name, changed) in sections {
        if changed {
            out.push(format!("{name} changed"));
        }
    }
    let order = |c: &Config| {
        c.routes
            .iter()
            .map(|r| (r.host.clone(), r.path_prefix.clone()))
            .collect::<Vec<_>>()
    };
    if out.is_empty() && order(old) != order(new) {
        out.push("routes reordered".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Config {
        Config::parse(text, "test.toml", Path::new("/tmp")).unwrap()
    }

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"
[upstreams.a]
servers = ["127.0.0.1:9000"]
[upstreams.b]
servers = ["127.0.0.1:9001"]
[[routes]]
path_prefix = "/v1/"
upstream = "a"
"#;

    #[test]
    fn the_same_file_changes_nothing() {
        let (a, mut b) = (parse(BASE), parse(BASE));
        assert!(describe(&a, &b).is_empty());
        assert!(keep_restart_only(&a, &mut b).is_empty());
    }

    #[test]
    fn routes_and_upstreams_are_named_by_what_happened() {
        let old = parse(BASE);
        let new = parse(
            &(BASE
                .replace("upstream = \"a\"", "upstream = \"b\"")
                .replace("[upstreams.a]\nservers = [\"127.0.0.1:9000\"]\n", "")
                + "[[routes]]\npath_prefix = \"/v2/\"\nupstream = \"b\"\n[upstreams.c]\nservers = [\"127.0.0.1:9002\"]\n[limits]\nmax_body_bytes = \"1MiB\"\n"),
        );
        let d = describe(&old, &new);
        assert_eq!(
            d,
            vec![
                "route /v1/ changed",
                "route /v2/ added",
                "upstream c added",
                "upstream a removed (its pools drain)",
                "[limits] changed",
            ],
            "{d:?}"
        );
        let back = describe(&new, &old);
        assert!(back.contains(&"route /v2/ removed".to_string()), "{back:?}");
    }

    #[test]
    fn restart_only_settings_keep_their_running_values() {
        let running = parse(BASE);
        let mut new = parse(
            &(BASE.replace("127.0.0.1:8080", "127.0.0.1:8081")
                + "[ratelimit]\nsync_interval = \"20ms\"\nmax_wait = \"10ms\"\n"),
        );
        let kept = keep_restart_only(&running, &mut new);
        assert_eq!(kept, vec!["server.listen", "ratelimit.sync_interval"]);
        assert_eq!(new.server.listen, running.server.listen);
        assert_eq!(new.ratelimit.sync_interval, running.ratelimit.sync_interval);
        // What can change in place still does.
        assert_ne!(new.ratelimit.max_wait, running.ratelimit.max_wait);
        assert_eq!(describe(&running, &new), vec!["[ratelimit] changed"]);
    }
}
