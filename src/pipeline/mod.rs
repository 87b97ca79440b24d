//! Per connection: read head -> route -> auth -> policy -> limit -> forward -> account.
//!
//! One task per client connection, on the shard that accepted it. Requests on a connection
//! are handled one after another (pipelined requests wait in the read buffer and are parsed
//! and checked on their own). Each step either passes the request on or answers it with a
//! [`Problem`]; only [`forward`] talks to an upstream.

mod account;
mod admit;
mod auth;
mod body;
mod forward;
mod head;
pub mod heads;
mod keyinfo;
mod limit;
mod relay;
mod request_id;

pub use request_id::RequestId;

use crate::buffers::{ConnBufs, ReadBuf};
use crate::clock::unix_ms;
use crate::context::ShardCtx;
use crate::error::Problem;
use crate::http::headers::HeaderKind;
use crate::http::problem::{write_problem, ProblemExtras};
use crate::http::response::ResponseHead;
use crate::http::{Framing, RequestHead};
use crate::metrics::Outcome;
use crate::policy::path::{judge_target, PARAMS_REFUSED};
use crate::policy::{client_ip_lines, decide, Denial};
use crate::ratelimit::{key_handle, write_headers, Admission, CreditSpec};
use account::Note;
use admit::{count_forwarded_client, refuse_connection, TOO_MANY_FROM_IP};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use head::{read_head, HeadRead};
use keyinfo::{lifecycle_headers, write_key_context, SUNSET_WARNING_S};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

/// A client connection and the buffers its requests reuse. Between requests the buffers go
/// back to the shard ([`Conn::park`]): an idle connection holds only this struct.
pub struct Conn {
    pub stream: TcpStream,
    pub rb: ReadBuf,
    pub head: RequestHead,
    pub peer_ip: Option<IpAddr>,
    /// Serialisation buffer for heads and re-framed body pieces.
    pub out: Vec<u8>,
    /// Upstream read buffer.
    pub up: ReadBuf,
    pub resp: ResponseHead,
    /// Header lines the gateway adds to this request's answer, whatever it is (rate-limit
    /// headers); cleared per request.
    pub answer_lines: Vec<u8>,
    /// Identity header lines for the upstream beyond id/tenant/plan (scopes, metadata).
    pub identity_lines: Vec<u8>,
    /// The target to forward when it differs from the client's (key removed from the
    /// query); empty = forward the client's target.
    pub target: Vec<u8>,
    /// This request's audit facts (kept only when the audit log is on).
    pub note: account::Note,
    /// This request's id, once its head is parsed: what the answer, the upstream and the
    /// audit record all carry.
    pub rid: RequestId,
    /// The client address this connection is counted for in the per-address cap.
    counted_ip: Option<IpAddr>,
}

impl Conn {
    /// Hands the buffers back to the shard; nothing may be pending.
    fn park(&mut self, ctx: &ShardCtx) {
        if self.rb.is_parked() {
            return;
        }
        ctx.spares.put(ConnBufs {
            rb: self.rb.detach(),
            up: self.up.detach(),
            out: std::mem::take(&mut self.out),
            answer_lines: std::mem::take(&mut self.answer_lines),
            identity_lines: std::mem::take(&mut self.identity_lines),
            target: std::mem::take(&mut self.target),
        });
    }

    /// Takes buffers from the shard, holding `first` as the bytes read so far.
    fn unpark(&mut self, ctx: &ShardCtx, first: &[u8]) {
        let b = ctx.spares.take();
        self.rb.attach(b.rb, first);
        self.up.attach(b.up, &[]);
        self.out = b.out;
        self.answer_lines = b.answer_lines;
        self.identity_lines = b.identity_lines;
        self.target = b.target;
    }
}

/// How a request ended, for the connection loop and accounting.
pub struct Finished {
    pub outcome: Outcome,
    pub route: Option<usize>,
    pub keep_alive: bool,
}

/// Serves one client connection until it closes, errs, or the shard drains.
pub async fn serve_connection(ctx: Rc<ShardCtx>, stream: TcpStream) {
    let peer_ip = stream.peer_addr().ok().map(|a| a.ip());
    let counted_ip = match admit::admit_connection(&ctx, peer_ip) {
        Ok(counted) => counted,
        Err(detail) => return refuse_connection(&ctx, stream, detail).await,
    };
    let _ = stream.set_nodelay(true);
    // A write that finds the client taking nothing fails after this long (see relay.rs).
    let _ = stream.set_write_timeout(Some(ctx.shared.config.timeouts.client_write));
    ctx.metrics.borrow_mut().connections_active += 1;
    let mut conn = Conn {
        stream,
        rb: ReadBuf::parked(),
        head: RequestHead::default(),
        peer_ip,
        out: Vec::new(),
        up: ReadBuf::parked(),
        resp: ResponseHead::default(),
        answer_lines: Vec::new(),
        identity_lines: Vec::new(),
        target: Vec::new(),
        note: account::Note {
            on: ctx.audit.is_some(),
            ..Default::default()
        },
        rid: RequestId::NONE,
        counted_ip,
    };
    let mut first = true;
    loop {
        if ctx.draining.get() && !first {
            break;
        }
        if conn.rb.pending().is_empty() {
            conn.park(&ctx);
        } else {
            conn.rb.compact();
        }
        conn.answer_lines.clear();
        conn.identity_lines.clear();
        conn.target.clear();
        if conn.note.on {
            conn.note.clear();
            conn.note.client_ip = conn.peer_ip;
        }
        match read_head(&ctx, &mut conn, first).await {
            HeadRead::Closed => break,
            HeadRead::Refused(e) => {
                let started = Instant::now();
                let done = refuse(&ctx, &mut conn, e.problem, e.detail, None, false).await;
                let us = started.elapsed().as_micros() as u64;
                ctx.metrics
                    .borrow_mut()
                    .request(None, Outcome::Refused(e.problem), us);
                account::audit(&ctx, &conn.note, &done, unix_ms(), us);
                break;
            }
            HeadRead::Ready => {}
        }
        if conn.counted_ip.is_none() && !count_forwarded_client(&ctx, &mut conn) {
            let done = refuse(
                &ctx,
                &mut conn,
                Problem::TooManyConnections,
                TOO_MANY_FROM_IP,
                None,
                true,
            )
            .await;
            ctx.metrics.borrow_mut().request(
                None,
                Outcome::Refused(Problem::TooManyConnections),
                0,
            );
            account::audit(&ctx, &conn.note, &done, unix_ms(), 0);
            break;
        }
        let started = Instant::now();
        ctx.in_flight.set(ctx.in_flight.get() + 1);
        let done = handle(&ctx, &mut conn).await;
        ctx.in_flight.set(ctx.in_flight.get() - 1);
        let us = started.elapsed().as_micros() as u64;
        ctx.metrics
            .borrow_mut()
            .request(done.route, done.outcome, us);
        if conn.note.on {
            account::audit(&ctx, &conn.note, &done, unix_ms(), us);
        }
        if !done.keep_alive {
            break;
        }
        first = false;
    }
    let _ = conn.stream.close().await;
    conn.park(&ctx);
    if let Some(ip) = conn.counted_ip {
        ctx.release_ip(ip);
    }
    ctx.metrics.borrow_mut().connections_active -= 1;
}

/// One request whose head is parsed: the pipeline's steps in order.
async fn handle(ctx: &ShardCtx, conn: &mut Conn) -> Finished {
    let shared = &ctx.shared;
    let buf = conn.rb.pending();
    let head = &conn.head;
    let rid = RequestId::for_request(ctx, head.x_request_id.map(|s| s.get(buf)));
    conn.rid = rid;
    let note = &mut conn.note;
    if note.on {
        Note::set(true, &mut note.request_id, rid.as_bytes());
        Note::set(true, &mut note.method, head.method_span.get(buf));
        Note::set(true, &mut note.path, head.path.get(buf));
    }

    // Route, on the judged path: the one forwarded (`conn.target` when it differs).
    let mut judged = Vec::new();
    let target = head.target.get(buf);
    let (path, path_params) = match judge_target(
        target,
        head.path.get(buf).len(),
        &mut judged,
        &mut conn.target,
    ) {
        Ok((path, j)) => (path, j.params),
        Err(e) => return refuse(ctx, conn, e.problem, e.detail, None, true).await,
    };
    let Some(route) = shared.routes.find(head.host.map(|h| h.get(buf)), path) else {
        return refuse(
            ctx,
            conn,
            Problem::NoRoute,
            "no route matches this path",
            None,
            true,
        )
        .await;
    };
    let route_cfg = &shared.config.routes[route];
    if path_params && !route_cfg.allow_path_params {
        let bad = Problem::BadRequest;
        return refuse(ctx, conn, bad, PARAMS_REFUSED, Some(route), true).await;
    }
    if head.upgrade && !route_cfg.allow_upgrade {
        return refuse(
            ctx,
            conn,
            Problem::BadRequest,
            "protocol upgrade is not allowed on this route",
            Some(route),
            true,
        )
        .await;
    }

    // Policy that needs no key: a declared body over the route's limit is refused before
    // any body byte is read (and before `100 Continue`).
    let declared_too_large = matches!(head.framing, Framing::Length(n) if n > shared.route_policies[route].route_body_limit());

    if route_cfg.public {
        if declared_too_large {
            return refuse(
                ctx,
                conn,
                Problem::BodyTooLarge,
                BODY_TOO_LARGE,
                Some(route),
                true,
            )
            .await;
        }
        let target = forward::Target {
            route,
            upstream: shared.route_policies[route].upstream,
            max_body: shared.route_policies[route].route_body_limit(),
        };
        return forward::forward(ctx, conn, target, &rid, &[], false, &[]).await;
    }

    // Authenticate: extract the key, then check it against this shard's key table. The table
    // is held (an `Rc` clone) until the request ends, whatever a reload does meanwhile.
    let Some(keys) = ctx.keys.borrow().clone() else {
        return refuse(
            ctx,
            conn,
            Problem::KeysUnavailable,
            "no key table is loaded; build one with `keyway snapshot build` and run `keyway reload`",
            Some(route),
            true,
        )
        .await;
    };
    let from_headers = auth::extract(head, buf, shared.config.keys.bearer);
    let presented = match (from_headers, &route_cfg.key_in_query) {
        (Ok(p), Some(param)) => auth::with_query_key(p, head.target.get(buf), param.as_bytes()),
        (other, _) => other,
    };
    let presented = match presented {
        Ok(Some(p)) => p,
        Ok(None) => {
            return refuse(
                ctx,
                conn,
                Problem::MissingKey,
                "send your API key in the x-api-key header or as Authorization: Bearer",
                Some(route),
                true,
            )
            .await
        }
        Err((problem, detail)) => {
            return refuse(ctx, conn, problem, detail, Some(route), true).await;
        }
    };
    let via_authorization = presented.via_authorization;
    if presented.via_query {
        // The key never travels further: forward the target without its parameter.
        let param = route_cfg.key_in_query.as_deref().unwrap_or_default();
        let judged_target = std::mem::take(&mut conn.target);
        let from = if judged_target.is_empty() {
            target
        } else {
            &judged_target
        };
        auth::strip_query_param(from, param.as_bytes(), &mut conn.target);
    }
    let caller = match auth::check(&keys.snapshot, presented.key, ctx.now_unix.get()) {
        Ok(c) => c,
        Err((problem, detail)) => {
            return refuse(ctx, conn, problem, detail, Some(route), true).await;
        }
    };
    let key = caller.key;
    let plan = key.plan();
    let note = &mut conn.note;
    Note::set(note.on, &mut note.key_id, key.id().as_bytes());
    Note::set(note.on, &mut note.tenant, key.tenant().as_bytes());
    Note::set(note.on, &mut note.plan, plan.name().as_bytes());

    // Policy: client address, scopes, body size, upstream — one pure decision.
    let key_policy = keys.policy.for_key(key);
    let client = conn.peer_ip.map(|peer| {
        if key_policy.allow.is_empty() {
            // No allowlist: any address passes, so the x-forwarded-for walk is not needed.
            return peer;
        }
        let xff = head
            .headers
            .iter()
            .filter(|h| h.kind == HeaderKind::XForwardedFor)
            .map(|h| h.value.get(buf));
        client_ip_lines(peer, xff.collect::<SmallLines>(), &shared.trusted_proxies)
    });
    if conn.note.on {
        conn.note.client_ip = client;
    }
    let declared = match head.framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let method = head.method_span.get(buf);
    let decision = match client {
        Some(ip) => decide(
            &key_policy,
            &shared.route_policies[route],
            method,
            path,
            ip,
            declared,
        ),
        // No peer address (never on TCP): only an empty allowlist could pass; be strict.
        None => Err(Denial::IpNotAllowed),
    };
    let decision = match decision {
        Ok(d) => d,
        Err(denial) => {
            let problem = match denial {
                Denial::InsufficientScope => Problem::InsufficientScope,
                Denial::IpNotAllowed => Problem::IpNotAllowed,
                Denial::BodyTooLarge { .. } => Problem::BodyTooLarge,
            };
            let detail = denial.detail(method, path);
            return refuse(ctx, conn, problem, &detail, Some(route), true).await;
        }
    };

    // Rate limits and quota: all of the key's limits at once, counted only if all admit.
    let mut limits = limit::NO_LIMITS;
    let n = limit::effective_limits(&key, &mut limits);
    let credits = key.credits().map(|c| CreditSpec {
        total: c.total,
        refill: c.refill_limit(),
    });
    if n > 0 || credits.is_some() {
        let admission = limit::admit(
            ctx,
            key_handle(key.id()),
            &limits[..n],
            credits.as_ref(),
            route_cfg.cost,
        )
        .await;
        write_headers(ctx.ratelimit_headers, &admission, &mut conn.answer_lines);
        let refusal = match admission {
            Admission::Limited { quota, .. } => Some((
                Problem::RateLimited,
                format!(
                    "rate limit {} exceeded; retry after the Retry-After seconds",
                    quota.limit
                ),
            )),
            Admission::QuotaExhausted { .. } => Some((
                Problem::QuotaExhausted,
                "the key's credits are spent; they refill on schedule or can be topped up".into(),
            )),
            // `limit::admit` settles every wait; never forward on one.
            Admission::Wait { .. } => Some((
                Problem::RateLimited,
                "rate limit reached; retry in a moment".into(),
            )),
            Admission::Admitted(_) | Admission::Unlimited => None,
        };
        if let Some((problem, detail)) = refusal {
            ctx.metrics.borrow_mut().ratelimited(plan.name());
            return refuse(ctx, conn, problem, &detail, Some(route), true).await;
        }
    }

    let names = &shared.config.identity;
    let identity: [(&[u8], &[u8]); 3] = [
        (names.key_id_header.as_bytes(), key.id().as_bytes()),
        (names.tenant_header.as_bytes(), key.tenant().as_bytes()),
        (names.plan_header.as_bytes(), plan.name().as_bytes()),
    ];
    write_key_context(&mut conn.identity_lines, names, &key);
    // A rotated-out secret still works until its grace ends: say so (RFC 9745, RFC 8594); a
    // key that expires within 7 days gets `Sunset` too.
    let now = ctx.now_unix.get();
    let expiring = key
        .expires_at()
        .filter(|&t| t.saturating_sub(now) <= SUNSET_WARNING_S);
    let lifecycle = lifecycle_headers(caller.grace_until, expiring, now);
    let mut extra: Vec<(&[u8], &[u8])> = Vec::new();
    if let Some(deprecation) = &lifecycle.deprecation {
        extra.push((b"Deprecation".as_slice(), deprecation.as_bytes()));
    }
    if let Some(sunset) = &lifecycle.sunset {
        extra.push((b"Sunset".as_slice(), sunset.as_bytes()));
    }
    let target = forward::Target {
        route,
        upstream: decision.upstream,
        max_body: decision.max_body,
    };
    forward::forward(
        ctx,
        conn,
        target,
        &rid,
        &identity,
        via_authorization,
        &extra,
    )
    .await
}

/// The `x-forwarded-for` lines of one request, on the stack (a request rarely has more than
/// one; past 8 only the last 8 are kept — the walk from the right never reads further).
struct SmallLines<'b> {
    lines: [&'b [u8]; 8],
    len: usize,
}

impl<'b> FromIterator<&'b [u8]> for SmallLines<'b> {
    fn from_iter<I: IntoIterator<Item = &'b [u8]>>(iter: I) -> Self {
        let mut s = SmallLines {
            lines: [&[][..]; 8],
            len: 0,
        };
        for line in iter {
            if s.len == 8 {
                s.lines.copy_within(1.., 0);
                s.len = 7;
            }
            s.lines[s.len] = line;
            s.len += 1;
        }
        s
    }
}

impl<'b> IntoIterator for SmallLines<'b> {
    type Item = &'b [u8];
    type IntoIter = std::iter::Take<std::array::IntoIter<&'b [u8], 8>>;
    fn into_iter(self) -> Self::IntoIter {
        self.lines.into_iter().take(self.len)
    }
}

const BODY_TOO_LARGE: &str = "declared Content-Length exceeds the body size limit";

/// Answers the current request with a problem. `head_parsed`: the head is valid, so its
/// keep-alive and framing can be honoured; otherwise the connection closes.
async fn refuse(
    ctx: &ShardCtx,
    conn: &mut Conn,
    problem: Problem,
    detail: &str,
    route: Option<usize>,
    head_parsed: bool,
) -> Finished {
    // A pending request body has not been read: the connection cannot be reused.
    let keep_alive = head_parsed
        && conn.head.keep_alive
        && conn.head.framing == Framing::None
        && !problem.closes_connection()
        && !ctx.draining.get();
    // A parsed head already has its id (in the audit note, maybe upstream): answer with it.
    // An unparsed one gets its id now, and the audit record the same.
    if !head_parsed {
        conn.rid = RequestId::for_request(ctx, None);
        let note = &mut conn.note;
        Note::set(note.on, &mut note.request_id, conn.rid.as_bytes());
    }
    let rid = conn.rid;
    conn.out.clear();
    write_problem(
        &mut conn.out,
        problem,
        &ProblemExtras {
            detail,
            request_id: rid.as_bytes(),
            close: !keep_alive,
            headers: &[],
            raw_headers: &conn.answer_lines,
            date: &ctx.date(),
        },
    );
    if head_parsed {
        conn.rb.consume(conn.head.head_len);
    }
    let written = conn.stream.write_all(&conn.out).await;
    Finished {
        outcome: Outcome::Refused(problem),
        route,
        keep_alive: keep_alive && written.is_ok(),
    }
}
