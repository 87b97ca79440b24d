//! Connection caps: per shard and per client address (a trusted proxy's connections count for
//! the client they forward), with one 503 answer for a connection over a cap.

use super::steps::SmallLines;
use super::Conn;
use crate::context::ShardCtx;
use crate::error::Problem;
use crate::http::headers::HeaderKind;
use crate::http::problem::{write_problem, ProblemExtras};
use crate::metrics::Outcome;
use crate::policy::client_ip_lines;
use crate::stream::Stream;
use futures_lite::AsyncWriteExt;
use std::net::IpAddr;

/// Whether a new connection from `peer` is within the caps: `Ok` with the address it is
/// counted for (`None`: a trusted proxy, counted at its first head), or the refusal detail.
pub(super) fn admit_connection(
    ctx: &ShardCtx,
    peer: Option<IpAddr>,
) -> Result<Option<IpAddr>, &'static str> {
    let limits = &ctx.shared.config.limits;
    if ctx.metrics.borrow().connections_active >= limits.max_connections_per_shard as u64 {
        return Err("this gateway shard is at its connection limit; retry later");
    }
    match peer {
        Some(ip) if !ctx.shared.trusted_proxies.iter().any(|c| c.contains(ip)) => {
            if ctx.admit_ip(ip) {
                Ok(Some(ip))
            } else {
                Err(TOO_MANY_FROM_IP)
            }
        }
        _ => Ok(None),
    }
}

pub(super) const TOO_MANY_FROM_IP: &str =
    "too many connections from this client address; close idle ones or retry later";

/// A connection over a cap: one 503 answer, then close, whatever the client sends.
pub(super) async fn refuse_connection<S: Stream>(ctx: &ShardCtx, mut stream: S, detail: &str) {
    let mut out = Vec::with_capacity(512);
    let mut fresh = [0u8; 24];
    ctx.request_ids.next(&mut fresh);
    write_problem(
        &mut out,
        Problem::TooManyConnections,
        &ProblemExtras {
            detail,
            request_id: &fresh,
            close: true,
            headers: &[],
            raw_headers: &[],
            date: &ctx.date(),
        },
    );
    // The answer fits the socket buffer; a peer that reads nothing cannot hold the shard.
    let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(1)));
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
    ctx.count_request(None, Outcome::Refused(Problem::TooManyConnections), 0);
}

/// A connection from a trusted proxy is counted for the client it forwards, from its first
/// request on; `false`: that client is at its cap.
pub(super) fn count_forwarded_client<S: Stream>(ctx: &ShardCtx, conn: &mut Conn<S>) -> bool {
    let Some(peer) = conn.peer_ip else {
        return true;
    };
    let buf = conn.rb.pending();
    let xff = conn
        .head
        .headers
        .iter()
        .filter(|h| h.kind == HeaderKind::XForwardedFor)
        .map(|h| h.value.get(buf));
    let client = client_ip_lines(
        peer,
        xff.collect::<SmallLines>(),
        &ctx.shared.trusted_proxies,
    );
    if !ctx.admit_ip(client) {
        return false;
    }
    conn.counted_ip = Some(client);
    true
}
