//! Forward: send the re-serialised head, take the body in, check a connection out, send the
//! body, and read the answer's head (resending once on a pooled connection found closed).
//! The relay step (relay.rs) takes it from there.

use super::body::{buffer_body, send_request, SendError};
use super::heads::{write_request_head, Forwarding};
use super::request::{Progress, Refusal, Stop};
use super::Conn;
use crate::buffers::{Pace, ReadBuf};
use crate::context::ShardCtx;
use crate::error::Problem;
use crate::http::response::ResponseHead;
use crate::http::{Framing, Method, Version};
use crate::metrics::UpstreamErrorKind;
use crate::stream::Stream;
use crate::upstream::{Lease, PoolError};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::io;
use std::time::{Duration, Instant};

/// Interim (1xx) responses skipped before the final one; an upstream sending more is faulty
/// or hostile (each one would otherwise restart the wait for the answer).
const MAX_INTERIM: u32 = 16;

/// The facts about the request still needed once its head bytes are consumed.
#[derive(Clone, Copy)]
pub(super) struct ReqInfo {
    pub version: Version,
    pub keep_alive: bool,
    pub framing: Framing,
    pub expect_continue: bool,
    pub is_head: bool,
    /// No body and an idempotent method: may be resent on a fresh connection.
    pub retryable: bool,
    pub max_body: u64,
}

/// Where a request goes and how much body it may bring, as decided by the policy step.
#[derive(Clone, Copy)]
pub(super) struct Target {
    pub upstream: usize,
    pub max_body: u64,
}

/// The upstream's answer, its head read into `conn.resp`: what the relay step needs.
pub(super) struct Answer {
    pub lease: Lease,
    pub info: ReqInfo,
    pub upstream: usize,
    pub timeouts: UpTimeouts,
}

/// The upstream timeouts of one request: the route's, else the upstream's, else
/// `[timeouts]`.
#[derive(Clone, Copy)]
pub(super) struct UpTimeouts {
    /// Connecting (and waiting for a busy server); `None` = the pool's own.
    pub connect: Option<Duration>,
    /// From the request sent to the response head; also bounds each write upstream.
    pub head: Duration,
    /// The longest silence between body reads once the head arrived.
    pub idle: Duration,
}

impl UpTimeouts {
    fn of(ctx: &ShardCtx, route: Option<usize>, upstream: usize) -> UpTimeouts {
        let c = &ctx.shared.config;
        let route = route.map(|r| &c.routes[r]);
        let up = &c.upstreams[upstream];
        UpTimeouts {
            connect: route.and_then(|r| r.connect_timeout),
            head: route
                .and_then(|r| r.response_timeout)
                .or(up.response_timeout)
                .unwrap_or(c.timeouts.upstream_response),
            idle: route
                .and_then(|r| r.idle_timeout)
                .unwrap_or(c.timeouts.upstream_idle),
        }
    }
}

/// Why an upstream exchange failed before its answer's head was read.
enum Failure {
    /// Writing the request failed.
    Send,
    /// The upstream closed or reset before sending any byte of a response.
    Closed,
    Timeout,
    Protocol(&'static str),
}

impl Failure {
    /// A pooled connection that the upstream had closed fails this way: resend once.
    fn stale_connection(&self) -> bool {
        matches!(self, Failure::Send | Failure::Closed)
    }

    fn refusal(self) -> (Refusal, UpstreamErrorKind) {
        let (problem, kind, detail) = match self {
            Failure::Send => (
                Problem::UpstreamUnavailable,
                UpstreamErrorKind::Reset,
                "the upstream connection failed while sending the request",
            ),
            Failure::Closed => (
                Problem::UpstreamUnavailable,
                UpstreamErrorKind::Reset,
                "the upstream closed the connection before answering",
            ),
            Failure::Timeout => (
                Problem::UpstreamTimeout,
                UpstreamErrorKind::Timeout,
                "the upstream did not answer in time",
            ),
            Failure::Protocol(detail) => (
                Problem::UpstreamProtocol,
                UpstreamErrorKind::Protocol,
                detail,
            ),
        };
        (Refusal::new(problem, detail), kind)
    }
}

/// Forward: the re-serialised head, then the body once it is ready to flow, to a connection
/// of the target's upstream; returns when the answer's head is read.
pub(super) async fn forward<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
    target: Target,
) -> Result<Answer, Stop> {
    let upstream = target.upstream;
    conn.req.note.upstream = Some(upstream);
    let head = &conn.head;
    let info = ReqInfo {
        version: head.version,
        keep_alive: head.keep_alive,
        framing: head.framing,
        expect_continue: head.expect_continue,
        is_head: head.method == Method::Head,
        retryable: head.framing == Framing::None && head.method.is_idempotent(),
        max_body: target.max_body,
    };
    write_upstream_head(ctx, conn, upstream);
    let mut pace = receive_body(ctx, conn, &info).await?;
    let timeouts = UpTimeouts::of(ctx, conn.req.route, upstream);
    let lease = ctx.pools[upstream]
        .checkout(Instant::now(), None, timeouts.connect)
        .await
        .map_err(|e| pool_refusal(ctx, upstream, e, &mut conn.req.answer_lines))?;
    let _ = lease.stream.set_write_timeout(Some(timeouts.head));
    if conn.up.is_parked() {
        conn.up.attach(ctx.spares.take_up(), &[]);
    }
    let answer = Answer {
        lease,
        info,
        upstream,
        timeouts,
    };
    exchange(ctx, conn, answer, &mut pace).await
}

/// Writes the upstream head while the client's head bytes are still buffered, then lets
/// them go.
fn write_upstream_head<S: Stream>(ctx: &ShardCtx, conn: &mut Conn<S>, upstream: usize) {
    let head = &conn.head;
    let req = &conn.req;
    conn.out.clear();
    write_request_head(
        &mut conn.out,
        head,
        conn.rb.pending(),
        &Forwarding {
            client_ip: conn.peer_ip,
            request_id: req.rid.as_bytes(),
            strip_authorization: req.strip_authorization,
            identity_lines: &req.identity_lines,
            target: &req.target,
            // Written before a server is picked: the upstream's first server names it.
            host_fallback: head
                .host
                .is_none()
                .then(|| {
                    ctx.shared.config.upstreams[upstream]
                        .servers
                        .first()
                        .copied()
                })
                .flatten(),
        },
    );
    conn.rb.consume(head.head_len);
    conn.req.progress = Progress::Consumed;
}

/// `100 Continue` when asked for, then the body into the client buffer before an upstream
/// connection is taken: a client that trickles its body holds only its own connection, and
/// must keep `limits.min_body_rate`.
async fn receive_body<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
    info: &ReqInfo,
) -> Result<Pace, Stop> {
    if info.expect_continue
        && info.framing != Framing::None
        && conn.rb.pending().is_empty()
        && conn
            .stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
    {
        return Err(Stop::Abort);
    }
    let (t, limits) = (&ctx.shared.config.timeouts, &ctx.shared.config.limits);
    let mut pace = Pace::new(
        Instant::now(),
        t.body_grace,
        limits.min_body_rate,
        t.body_idle,
    );
    pace.received(conn.rb.pending().len());
    if info.framing != Framing::None {
        buffer_body(conn, info, &mut pace).await?;
    }
    Ok(pace)
}

/// Sends the request and reads the answer's head, and tells the pool how its server did. A
/// request that can be resent (no body, idempotent) is resent once when the connection failed
/// before any response byte: on a fresh connection to the same server when a pooled one had
/// been closed meanwhile (a keep-alive race, not the server's fault), else on another server.
async fn exchange<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
    mut answer: Answer,
    pace: &mut Pace,
) -> Result<Answer, Stop> {
    let (info, upstream) = (answer.info, answer.upstream);
    let pool = &ctx.pools[upstream];
    let mut retried = false;
    loop {
        let sent_at = Instant::now();
        let failure = match send_request(&mut answer.lease.stream, conn, &info, pace).await {
            Err(SendError::Upstream) => Failure::Send,
            Err(other) => return Err(other.into()),
            Ok(sent) => {
                conn.req.note.bytes_in = sent;
                conn.req.body_unread = false;
                let up = (&mut conn.up, &mut conn.resp);
                let head_timeout = answer.timeouts.head;
                match read_response_head(&mut answer.lease.stream, up, info.is_head, head_timeout)
                    .await
                {
                    Ok(()) => {
                        let upstream_us = sent_at.elapsed().as_micros() as u64;
                        ctx.metrics.borrow_mut().upstream_time(upstream_us);
                        conn.req.note.upstream_us = Some(upstream_us);
                        conn.req.note.status = conn.resp.status;
                        // The send time is close enough for health (ms): no second clock read.
                        pool.answered(answer.lease.server(), conn.resp.status, sent_at);
                        return Ok(answer);
                    }
                    Err(failure) => failure,
                }
            }
        };
        let server = answer.lease.server();
        if !(failure.stale_connection() && info.retryable && !retried) {
            if !(failure.stale_connection() && answer.lease.reused) {
                pool.failed(server, Instant::now());
            }
            let (refusal, kind) = failure.refusal();
            upstream_failed(ctx, upstream, kind);
            return Err(refusal.into());
        }
        retried = true;
        // `out` still holds the head: resendable requests have no body.
        // Boxed: the rare path's futures (a connect, a checkout) stay out of every request's
        // inline future state, which is copied each time it is built.
        let resend = resend_lease(ctx, conn, &answer.timeouts, upstream, answer.lease);
        answer.lease = Box::pin(resend).await?;
        let _ = answer
            .lease
            .stream
            .set_write_timeout(Some(answer.timeouts.head));
    }
}

/// The connection to resend on after `failed` broke before any response byte: a fresh one to
/// the same server if `failed` was a pooled connection (closed meanwhile), else, or if that
/// server refuses, one to another server; the failure counts against the server then.
async fn resend_lease<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
    timeouts: &UpTimeouts,
    upstream: usize,
    failed: Lease,
) -> Result<Lease, Stop> {
    let pool = &ctx.pools[upstream];
    let server = failed.server();
    if failed.reused {
        if let Ok(fresh) = pool.reconnect(failed, timeouts.connect).await {
            return Ok(fresh);
        }
    } else {
        drop(failed);
    }
    pool.failed(server, Instant::now());
    ctx.metrics.borrow_mut().upstream_retries += 1;
    pool.checkout(Instant::now(), Some(server), timeouts.connect)
        .await
        .map_err(|e| pool_refusal(ctx, upstream, e, &mut conn.req.answer_lines).into())
}

fn upstream_failed(ctx: &ShardCtx, upstream: usize, kind: UpstreamErrorKind) {
    ctx.count_upstream_error(upstream, kind);
}

/// No connection to the upstream could be had: 503/502/504, counted. When every server is
/// out of the rotation, `Retry-After` says when the first may be tried again.
fn pool_refusal(
    ctx: &ShardCtx,
    upstream: usize,
    e: PoolError,
    answer_lines: &mut Vec<u8>,
) -> Refusal {
    let (problem, kind, detail) = match e {
        PoolError::Down { retry_in_ms } => {
            let secs = retry_in_ms.div_ceil(1000).max(1);
            answer_lines.extend_from_slice(format!("Retry-After: {secs}\r\n").as_bytes());
            (
                Problem::UpstreamDown,
                UpstreamErrorKind::Down,
                "every server of the upstream is out of the rotation after failing; retry after the Retry-After seconds",
            )
        }
        PoolError::Overloaded => (
            Problem::Overloaded,
            UpstreamErrorKind::Overloaded,
            "every upstream connection is busy and the wait queue is full; retry later",
        ),
        PoolError::ConnectTimeout => (
            Problem::UpstreamTimeout,
            UpstreamErrorKind::Timeout,
            "connecting to the upstream timed out",
        ),
        PoolError::Connect(_) => (
            Problem::UpstreamUnavailable,
            UpstreamErrorKind::Connect,
            "the upstream refused the connection",
        ),
    };
    upstream_failed(ctx, upstream, kind);
    Refusal::new(problem, detail)
}

/// Reads the upstream's response head into `up`, skipping interim (1xx) responses.
async fn read_response_head(
    stream: &mut TcpStream,
    (up, resp): (&mut ReadBuf, &mut ResponseHead),
    is_head: bool,
    timeout: Duration,
) -> Result<(), Failure> {
    up.clear();
    let mut received = false;
    let mut interim = 0;
    loop {
        if !up.pending().is_empty() {
            match resp.parse(up.pending(), is_head, up_head_limit()) {
                Ok(true) if (100..200).contains(&resp.status) && resp.status != 101 => {
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(Failure::Protocol("upstream sent too many 1xx responses"));
                    }
                    up.consume(resp.head_len);
                    continue;
                }
                Ok(true) if resp.status == 101 => {
                    return Err(Failure::Protocol("upstream switched protocols unasked"))
                }
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(detail) => return Err(Failure::Protocol(detail)),
            }
        }
        match up.fill(stream, timeout).await {
            Ok(0) if !received => return Err(Failure::Closed),
            Ok(0) => {
                return Err(Failure::Protocol(
                    "upstream closed in the middle of the response head",
                ))
            }
            Ok(_) => received = true,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Failure::Timeout),
            Err(e) if e.kind() == io::ErrorKind::OutOfMemory => {
                return Err(Failure::Protocol("upstream response head too large"))
            }
            Err(_) if !received => return Err(Failure::Closed),
            Err(_) => {
                return Err(Failure::Protocol(
                    "upstream connection failed in the response head",
                ))
            }
        }
    }
}

fn up_head_limit() -> usize {
    crate::buffers::UPSTREAM_BUF - 1
}
