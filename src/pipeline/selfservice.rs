//! Key self-service: `GET /.well-known/keyway/key` (`[keys] self_service_path`) with a key
//! answers what that key may do: id, tenant, plan, scopes, address allowlist, body limit,
//! its limits with what is left now on this gateway, credits, validity window and rotation
//! state. Never the secret, nothing of other keys, no metadata (that is the operator's
//! context for the upstream). The key is checked like any request's (revoked, expired,
//! malformed keys get the same 401s); nothing is counted against its limits.

use super::keyinfo::self_service_body;
use super::{limit, steps, Conn, Finished, Progress, ShardCtx, Stop};
use crate::http::write::HeadWriter;
use crate::http::RequestHead;
use crate::metrics::Outcome;
use crate::ratelimit::{key_handle, CreditSpec};
use crate::stream::Stream;
use futures_lite::AsyncWriteExt;

/// Whether the request asks for the self-service answer: a GET (or HEAD) of exactly the
/// configured path (no query).
pub(super) fn wanted(ctx: &ShardCtx, head: &RequestHead, buf: &[u8]) -> bool {
    let Some(path) = ctx.shared.config.keys.self_service_path.as_deref() else {
        return false;
    };
    let method = head.method_span.get(buf);
    (method == b"GET" || method == b"HEAD")
        && head.path.get(buf) == path.as_bytes()
        && head.target.get(buf) == path.as_bytes()
}

/// Authenticates the request's key and answers with what it may do.
pub(super) async fn answer<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
) -> Result<Finished, Stop> {
    let keys = steps::key_table(ctx)?;
    let (_, caller) = steps::authenticate(ctx, conn, None, keys)?;
    let key = &caller.key;
    let mut limits = limit::NO_LIMITS;
    let n = limit::effective_limits(key, &mut limits);
    let credits = key.credits();
    let spec = credits.map(|c| CreditSpec {
        total: c.total,
        refill: c.refill_limit(),
    });
    let usage = ctx.limiter.borrow().usage(
        key_handle(key.id()),
        &limits[..n],
        spec.as_ref(),
        crate::clock::unix_ms(),
    );
    let body = self_service_body(key, caller.grace_until, &usage, credits);
    let head_only = conn.head.method_span.get(conn.rb.pending()) == b"HEAD";
    let keep_alive = conn.head.keep_alive && !conn.req.body_unread && !ctx.draining.get();
    conn.rb.consume(conn.head.head_len);
    conn.req.progress = Progress::Consumed;
    let out = &mut conn.out;
    out.clear();
    let mut w = HeadWriter::new(out);
    w.status_line(200, b"OK");
    w.header(b"Date", &ctx.date());
    w.header(b"Content-Type", b"application/json");
    w.header(b"Cache-Control", b"no-store");
    w.header(b"x-request-id", conn.req.rid.as_bytes());
    w.header_u64(b"Content-Length", body.len() as u64);
    if !keep_alive {
        w.header(b"Connection", b"close");
    }
    w.end();
    if !head_only {
        out.extend_from_slice(&body);
    }
    let written = conn.stream.write_all(&conn.out).await;
    Ok(Finished {
        outcome: Outcome::SelfService,
        route: None,
        keep_alive: keep_alive && written.is_ok(),
    })
}
