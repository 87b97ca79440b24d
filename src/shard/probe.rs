//! Active health checks. For an upstream with `health_check_path`, each shard sends
//! `GET path` to each of its servers every `health_check_interval`, on a fresh connection
//! (never a pooled one), and reads the status line within `health_check_timeout`. A status
//! 200..=399 passes and puts an ejected server back at once; anything else (refused, timed
//! out, closed, another status, a malformed line) counts as one failure toward
//! `eject_after_failures`, as a failed request does. Probes run per shard, like the passive
//! health they feed (docs/architecture.md).

use crate::context::ShardCtx;
use crate::upstream::Pool;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use keyway_core::config::HealthCheck;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

/// The longest status line read from a probe answer.
const MAX_STATUS_LINE: usize = 256;

/// This shard's probe tasks, one per upstream with `health_check_path`, each with the pool
/// it feeds.
pub type Probes = Vec<(Rc<Pool>, glommio::Task<()>)>;

/// Starts the probes `ctx`'s upstreams need. A probe of `running` whose pool `ctx` kept (its
/// upstream unchanged by a reload) goes on with its rhythm; the others are cancelled.
pub async fn start(ctx: &ShardCtx, mut running: Probes) -> Probes {
    let mut probes = Probes::new();
    for (u, up) in ctx.shared.config.upstreams.iter().enumerate() {
        let Some(check) = &up.health_check else {
            continue;
        };
        let pool = &ctx.pools[u];
        match running.iter().position(|(p, _)| Rc::ptr_eq(p, pool)) {
            Some(i) => probes.push(running.swap_remove(i)),
            None => {
                let task = glommio::spawn_local(probe_loop(
                    pool.clone(),
                    up.servers.clone(),
                    check.clone(),
                ));
                probes.push((pool.clone(), task));
            }
        }
    }
    stop(running).await;
    probes
}

/// Stops `probes` (those a reload retired, or all at drain).
pub async fn stop(probes: Probes) {
    for (_, task) in probes {
        task.cancel().await;
    }
}

/// Probes `servers` of `pool` until the task is cancelled.
async fn probe_loop(pool: Rc<Pool>, servers: Vec<SocketAddr>, check: HealthCheck) {
    loop {
        glommio::timer::sleep(check.interval).await;
        for (server, &addr) in servers.iter().enumerate() {
            let passed = probe(addr, &check).await;
            let now = Instant::now();
            if passed {
                pool.probe_passed(server, now);
            } else {
                pool.failed(server, now);
            }
        }
    }
}

/// One check of one server: true when it answered 200..=399 in time.
async fn probe(addr: SocketAddr, check: &HealthCheck) -> bool {
    let attempt = async { Some(status_of(addr, &check.path).await) };
    let deadline = async {
        glommio::timer::sleep(check.timeout).await;
        None
    };
    matches!(
        futures_lite::future::or(attempt, deadline).await,
        Some(Some(200..=399))
    )
}

/// The status of `GET path` at `addr`, or None if it could not be had.
async fn status_of(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: keyway-health-check\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut line = Vec::with_capacity(64);
    let mut buf = [0u8; 128];
    while !line.contains(&b'\n') && line.len() < MAX_STATUS_LINE {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        line.extend_from_slice(&buf[..n]);
    }
    parse_status(&line)
}

/// The status code of the status line at the start of `line` (httparse reads it; the headers
/// after it, if any, are not looked at), if it is in 100..=599.
fn parse_status(line: &[u8]) -> Option<u16> {
    let mut no_headers = [httparse::EMPTY_HEADER; 0];
    let mut res = httparse::Response::new(&mut no_headers);
    match res.parse(line) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {
            res.code.filter(|c| (100..=599).contains(c))
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_status;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes a health-checked server sends: no panic, and a status only when the
        /// line starts with `HTTP/1.x ` and three digits in range.
        #[test]
        fn any_bytes_give_a_status_only_when_well_formed(line in proptest::collection::vec(any::<u8>(), 0..40)) {
            let got = parse_status(&line);
            if let Some(code) = got {
                prop_assert!((100..=599).contains(&code));
                prop_assert!(line.starts_with(b"HTTP/1.1 ") || line.starts_with(b"HTTP/1.0 "));
                let digits = code.to_string();
                prop_assert_eq!(&line[9..12], digits.as_bytes());
            }
        }

        #[test]
        fn every_well_formed_status_is_read(
            code in 100u16..=599,
            minor in 0u8..=1,
            reason in "( [ -~]{0,20})?",
            crlf in any::<bool>(),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let line = format!("HTTP/1.{minor} {code}{reason}{end}");
            prop_assert_eq!(parse_status(line.as_bytes()), Some(code));
        }
    }

    #[test]
    fn reads_the_status_or_nothing() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503\r\n"), Some(503));
        assert_eq!(
            parse_status(b"HTTP/1.1 204 No Content\r\nX: y\r\n"),
            Some(204)
        );
        assert_eq!(parse_status(b"HTTP/1.1 200\n"), Some(200));
        for bad in [
            &b""[..],
            b"HTTP/1.1 ",
            b"HTTP/1.1 20",
            b"HTTP/1.1 2000 x",
            b"HTTP/2 200 OK",
            b"HTTP/1.1 099 x",
            b"HTTP/1.1 600 x",
            b"http/1.1 200 OK",
            b"HTTP/1.1 2a0 x\r\n",
        ] {
            assert_eq!(parse_status(bad), None, "{bad:?}");
        }
    }
}
