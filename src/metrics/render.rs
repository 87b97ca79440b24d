//! Prometheus text exposition of the merged shard metrics.

use super::names;
use super::shard::{Outcome, Published, ShardMetrics, UpstreamErrorKind};
use std::fmt::Write;

/// Gateway-wide gauges that do not come from shards.
pub struct Gauges {
    pub snapshot_generation: u64,
    pub snapshot_keys: u64,
    pub snapshot_reload_failures: u64,
    /// The configuration version every shard serves (0: as started).
    pub config_version: u64,
    pub config_reload_failures: u64,
    /// Audit lines the writer failed to write (the shards' queue drops are added to it).
    pub audit_dropped: u64,
}

/// Renders all metrics. `routes` and `upstreams` name the metric slots (route slot 0 is
/// `none`).
/// `servers`: every upstream's servers in config order, as (upstream name, address).
pub fn render(
    published: &Published,
    routes: &[String],
    upstreams: &[String],
    servers: &[(String, String)],
    g: &Gauges,
) -> String {
    let mut merged: Option<ShardMetrics> = None;
    for slot in &published.shards {
        let Ok(slot) = slot.lock() else { continue };
        let Some(m) = slot.as_ref() else { continue };
        match merged.as_mut() {
            None => merged = Some(m.clone()),
            Some(acc) => {
                // A shard that has not taken the latest reload yet has fewer slots.
                acc.grow(
                    m.requests.len() / Outcome::COUNT,
                    m.upstream_ejections.len(),
                );
                for (a, b) in acc.requests.iter_mut().zip(&m.requests) {
                    *a += b;
                }
                for (a, b) in acc.upstream_errors.iter_mut().zip(&m.upstream_errors) {
                    *a += b;
                }
                acc.upstream_retries += m.upstream_retries;
                for (a, b) in acc.upstream_ejections.iter_mut().zip(&m.upstream_ejections) {
                    *a += b;
                }
                // Each shard judges its servers alone: the most any shard has out, and a
                // server is out if any shard has it out.
                for (a, b) in acc
                    .upstream_servers_out
                    .iter_mut()
                    .zip(&m.upstream_servers_out)
                {
                    *a = (*a).max(*b);
                }
                if acc.server_out.len() < m.server_out.len() {
                    acc.server_out.resize(m.server_out.len(), 0);
                }
                for (a, b) in acc.server_out.iter_mut().zip(&m.server_out) {
                    *a = (*a).max(*b);
                }
                let _ = acc.request_us.add(&m.request_us);
                let _ = acc.upstream_us.add(&m.upstream_us);
                acc.connections_active += m.connections_active;
                acc.limit_waits += m.limit_waits;
                acc.audit_dropped += m.audit_dropped;
                add_by_plan(&mut acc.ratelimited, &m.ratelimited);
                add_by_plan(&mut acc.shed, &m.shed);
            }
        }
    }
    let mut out = String::with_capacity(8192);
    let _ = writeln!(
        out,
        "# HELP {} Requests finished, by route and outcome.",
        names::REQUESTS_TOTAL
    );
    let _ = writeln!(out, "# TYPE {} counter", names::REQUESTS_TOTAL);
    if let Some(m) = &merged {
        for (slot, chunk) in m.requests.chunks(Outcome::COUNT).enumerate() {
            let route = routes.get(slot).map(String::as_str).unwrap_or("?");
            for (i, &n) in chunk.iter().enumerate() {
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "{}{{route=\"{}\",outcome=\"{}\"}} {}",
                        names::REQUESTS_TOTAL,
                        escape(route),
                        Outcome::from_index(i).label(),
                        n
                    );
                }
            }
        }
        summary(
            &mut out,
            names::REQUEST_DURATION,
            "Time from request head to the end of the response.",
            &m.request_us,
        );
        summary(
            &mut out,
            names::UPSTREAM_DURATION,
            "Time from sending upstream to the upstream's response head.",
            &m.upstream_us,
        );
        let _ = writeln!(
            out,
            "# HELP {} Upstream failures by kind.",
            names::UPSTREAM_ERRORS_TOTAL
        );
        let _ = writeln!(out, "# TYPE {} counter", names::UPSTREAM_ERRORS_TOTAL);
        for (u, chunk) in m
            .upstream_errors
            .chunks(UpstreamErrorKind::ALL.len())
            .enumerate()
        {
            for (k, &n) in chunk.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{}{{upstream=\"{}\",kind=\"{}\"}} {}",
                    names::UPSTREAM_ERRORS_TOTAL,
                    escape(upstreams.get(u).map(String::as_str).unwrap_or("?")),
                    UpstreamErrorKind::ALL[k].label(),
                    n
                );
            }
        }
        upstream_health(&mut out, m, upstreams, servers);
        by_plan(
            &mut out,
            names::RATELIMITED_TOTAL,
            "Requests refused by a rate limit or quota, by plan.",
            &m.ratelimited,
        );
        by_plan(
            &mut out,
            names::SHED_TOTAL,
            "Requests shed under load (503 overloaded), by plan (none: public routes).",
            &m.shed,
        );
        let _ = writeln!(
            out,
            "# HELP {} Requests that waited for room held back for other shards.",
            names::RATELIMIT_WAITS_TOTAL
        );
        let _ = writeln!(out, "# TYPE {} counter", names::RATELIMIT_WAITS_TOTAL);
        let _ = writeln!(out, "{} {}", names::RATELIMIT_WAITS_TOTAL, m.limit_waits);
        gauge(
            &mut out,
            names::CONNECTIONS_ACTIVE,
            "Open client connections.",
            m.connections_active,
        );
    }
    gauge(
        &mut out,
        names::SNAPSHOT_GENERATION,
        "Generation of the key snapshot being served.",
        g.snapshot_generation,
    );
    gauge(
        &mut out,
        names::SNAPSHOT_KEYS,
        "Keys in the snapshot being served.",
        g.snapshot_keys,
    );
    let _ = writeln!(
        out,
        "# HELP {} Snapshot files refused on reload.",
        names::SNAPSHOT_RELOAD_FAILURES_TOTAL
    );
    let _ = writeln!(
        out,
        "# TYPE {} counter",
        names::SNAPSHOT_RELOAD_FAILURES_TOTAL
    );
    let _ = writeln!(
        out,
        "{} {}",
        names::SNAPSHOT_RELOAD_FAILURES_TOTAL,
        g.snapshot_reload_failures
    );
    gauge(
        &mut out,
        names::CONFIG_VERSION,
        "Configuration version every shard serves (0 as started, one more per reload applied).",
        g.config_version,
    );
    let n = names::CONFIG_RELOAD_FAILURES_TOTAL;
    let _ = writeln!(
        out,
        "# HELP {n} Configuration files refused on reload (the running one kept serving).\n# TYPE {n} counter\n{n} {}",
        g.config_reload_failures
    );
    let _ = writeln!(
        out,
        "# HELP {} Audit records dropped (writer queue full, or the file could not be written).",
        names::AUDIT_DROPPED_TOTAL
    );
    let _ = writeln!(out, "# TYPE {} counter", names::AUDIT_DROPPED_TOTAL);
    let shard_drops = merged.as_ref().map_or(0, |m| m.audit_dropped);
    let _ = writeln!(
        out,
        "{} {}",
        names::AUDIT_DROPPED_TOTAL,
        g.audit_dropped + shard_drops
    );
    out
}

fn gauge(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {v}");
}

/// A Prometheus summary (quantiles from the hdrhistogram, in seconds).
fn summary(out: &mut String, name: &str, help: &str, h: &hdrhistogram::Histogram<u64>) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} summary");
    for q in [0.5, 0.9, 0.99, 0.999] {
        let v = h.value_at_quantile(q) as f64 / 1e6;
        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {v}");
    }
    let sum = h.mean() * h.len() as f64 / 1e6;
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {}", h.len());
}

/// Adds per-plan counts into `acc`.
fn add_by_plan(acc: &mut Vec<(String, u64)>, more: &[(String, u64)]) {
    for (plan, n) in more {
        match acc.iter_mut().find(|(p, _)| p == plan) {
            Some((_, total)) => *total += n,
            None => acc.push((plan.clone(), *n)),
        }
    }
}

/// A per-plan counter family.
fn by_plan(out: &mut String, name: &str, help: &str, counts: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (plan, n) in counts {
        let _ = writeln!(out, "{name}{{plan=\"{}\"}} {n}", escape(plan));
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Retries, ejections and servers out of the rotation (docs/metrics.md).
fn upstream_health(
    out: &mut String,
    m: &ShardMetrics,
    upstreams: &[String],
    servers: &[(String, String)],
) {
    let _ = writeln!(
        out,
        "# HELP {n} Requests resent to another upstream server after a failure before any response byte.\n# TYPE {n} counter\n{n} {}",
        m.upstream_retries,
        n = names::UPSTREAM_RETRIES_TOTAL,
    );
    let series = [
        (
            names::UPSTREAM_EJECTIONS_TOTAL,
            "counter",
            "Times a server left a shard's rotation after failing.",
            &m.upstream_ejections,
        ),
        (
            names::UPSTREAM_SERVERS_OUT,
            "gauge",
            "Servers out of the rotation (the most any shard has out).",
            &m.upstream_servers_out,
        ),
    ];
    for (name, kind, help, values) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (u, v) in values.iter().enumerate() {
            let upstream = escape(upstreams.get(u).map(String::as_str).unwrap_or("?"));
            let _ = writeln!(out, "{name}{{upstream=\"{upstream}\"}} {v}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP {n} 1 if the server is out of the rotation on any shard.\n# TYPE {n} gauge",
        n = names::UPSTREAM_SERVER_OUT
    );
    for ((up, addr), o) in servers.iter().zip(&m.server_out) {
        let _ = writeln!(
            out,
            "{}{{upstream=\"{}\",server=\"{}\"}} {o}",
            names::UPSTREAM_SERVER_OUT,
            escape(up),
            escape(addr)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Problem;

    #[test]
    fn merges_shards_and_renders() {
        let p = Published::new(2);
        // Shard 0 has not taken a reload that added a route and an upstream; shard 1 has.
        let mut a = ShardMetrics::new(2, 1);
        a.request(1, Outcome::Proxied, 100);
        a.request(0, Outcome::Refused(Problem::NoRoute), 10);
        a.server_out = vec![0];
        let mut b = ShardMetrics::new(3, 2);
        b.server_out = vec![1];
        b.request(1, Outcome::Proxied, 300);
        b.request(2, Outcome::Proxied, 300);
        b.upstream_error(0, UpstreamErrorKind::Timeout);
        b.upstream_error(1, UpstreamErrorKind::Connect);
        p.publish(0, &a);
        p.publish(1, &b);
        let text = render(
            &p,
            &["none".into(), "/v1/".into(), "/v2/".into()],
            &["api".into(), "api2".into()],
            &[("api".to_string(), "127.0.0.1:9".to_string())],
            &Gauges {
                snapshot_generation: 3,
                snapshot_keys: 10,
                snapshot_reload_failures: 0,
                config_version: 2,
                config_reload_failures: 1,
                audit_dropped: 0,
            },
        );
        assert!(
            text.contains("keyway_requests_total{route=\"/v1/\",outcome=\"proxied\"} 2"),
            "{text}"
        );
        assert!(text.contains("keyway_requests_total{route=\"none\",outcome=\"no_route\"} 1"));
        assert!(text.contains("keyway_requests_total{route=\"/v2/\",outcome=\"proxied\"} 1"));
        assert!(text.contains("keyway_upstream_errors_total{upstream=\"api\",kind=\"timeout\"} 1"));
        assert!(text.contains("keyway_upstream_errors_total{upstream=\"api2\",kind=\"connect\"} 1"));
        assert!(text.contains("keyway_request_duration_seconds_count 4"));
        assert!(text.contains("keyway_snapshot_generation 3"));
        assert!(text.contains("keyway_config_version 2"));
        assert!(text.contains("keyway_config_reload_failures_total 1"));
        assert!(
            text.contains("keyway_upstream_server_out{upstream=\"api\",server=\"127.0.0.1:9\"} 1"),
            "{text}"
        );
    }
}
