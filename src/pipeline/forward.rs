//! The upstream exchange: check a connection out, send the re-serialised head and the body,
//! read the response head, relay the response, and put the connection back only if the
//! exchange ended cleanly.

use super::body::{buffer_body, refuse_body, send_request, SendError};
use super::heads::{
    client_framing, write_request_head, write_response_head, ClientFraming, Forwarding, ToClient,
};
use super::relay::{relay_body, RelayError, Upstream};
use super::{Conn, Finished, RequestId};
use crate::buffers::{Pace, ReadBuf};
use crate::context::ShardCtx;
use crate::error::Problem;
use crate::http::response::ResponseHead;
use crate::http::{Framing, Method, Version};
use crate::metrics::{Outcome, UpstreamErrorKind};
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

enum HeadError {
    /// The upstream closed or reset before sending any byte of a response.
    Closed,
    Timeout,
    Protocol(&'static str),
}

/// Where a request goes and how much body it may bring, as decided by the policy step.
#[derive(Clone, Copy)]
pub(super) struct Target {
    pub route: usize,
    pub upstream: usize,
    pub max_body: u64,
}

pub(super) async fn forward(
    ctx: &ShardCtx,
    conn: &mut Conn,
    target: Target,
    rid: &RequestId,
    identity: &[(&[u8], &[u8])],
    strip_authorization: bool,
    response_extra: &[(&[u8], &[u8])],
) -> Finished {
    let shared = &ctx.shared;
    let t = &shared.config.timeouts;
    let Target {
        route,
        upstream,
        max_body,
    } = target;
    let pool = &ctx.pools[upstream];
    conn.note.upstream = Some(upstream);
    let response_timeout = shared.config.upstreams[upstream]
        .response_timeout
        .unwrap_or(t.upstream_response);
    let head = &conn.head;
    let req = ReqInfo {
        version: head.version,
        keep_alive: head.keep_alive,
        framing: head.framing,
        expect_continue: head.expect_continue,
        is_head: head.method == Method::Head,
        retryable: head.framing == Framing::None && head.method.is_idempotent(),
        max_body,
    };

    // The upstream head is written while the client's head bytes are still buffered.
    conn.out.clear();
    write_request_head(
        &mut conn.out,
        head,
        conn.rb.pending(),
        &Forwarding {
            client_ip: conn.peer_ip,
            request_id: rid.as_bytes(),
            strip_authorization,
            identity,
            identity_lines: &conn.identity_lines,
            target: &conn.target,
            // Written before a server is picked: the upstream's first server names it.
            host_fallback: head
                .host
                .is_none()
                .then(|| shared.config.upstreams[upstream].servers.first().copied())
                .flatten(),
        },
    );
    conn.rb.consume(head.head_len);

    if req.expect_continue
        && req.framing != Framing::None
        && conn.rb.pending().is_empty()
        && conn
            .stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
    {
        return aborted(route);
    }

    // A body is buffered before an upstream connection is taken: a client that trickles its
    // body holds only its own connection. Then it must keep `limits.min_body_rate`.
    let limits = &shared.config.limits;
    let mut pace = Pace::new(
        Instant::now(),
        t.body_grace,
        limits.min_body_rate,
        t.body_idle,
    );
    pace.received(conn.rb.pending().len());
    if req.framing != Framing::None {
        if let Err(e) = buffer_body(conn, &req, &mut pace).await {
            return refuse_body(ctx, conn, e, route, req, rid).await;
        }
    }

    let mut lease = match checkout(ctx, conn, target, req, rid).await {
        Ok(lease) => lease,
        Err(done) => return done,
    };
    let _ = lease.stream.set_write_timeout(Some(response_timeout));
    if conn.up.is_parked() {
        conn.up.attach(ctx.spares.take_up(), &[]);
    }

    let mut retried = false;
    let upstream_started;
    loop {
        let sent_at = Instant::now();
        match send_request(&mut lease.stream, conn, &req, &mut pace).await {
            Ok(sent) => conn.note.bytes_in = sent,
            Err(e) => {
                let (problem, detail) = match e {
                    SendError::Upstream => {
                        if lease.reused && req.retryable && !retried {
                            retried = true;
                            match fresh_or_refuse(ctx, conn, lease, target, req, rid).await {
                                Ok(fresh) => {
                                    lease = fresh;
                                    continue;
                                }
                                Err(done) => return done,
                            }
                        }
                        ctx.metrics
                            .borrow_mut()
                            .upstream_error(upstream, UpstreamErrorKind::Reset);
                        (
                            Problem::UpstreamUnavailable,
                            "the upstream connection failed while sending the request",
                        )
                    }
                    other => return refuse_body(ctx, conn, other, route, req, rid).await,
                };
                // The request body was not fully read: the client connection closes.
                return finish_refusal(
                    ctx,
                    conn,
                    problem,
                    detail,
                    route,
                    ReqInfo {
                        keep_alive: false,
                        ..req
                    },
                    rid,
                )
                .await;
            }
        }
        match read_response_head(
            &mut lease.stream,
            &mut conn.up,
            &mut conn.resp,
            req.is_head,
            response_timeout,
        )
        .await
        {
            Ok(()) => {
                upstream_started = sent_at;
                break;
            }
            Err(HeadError::Closed) if lease.reused && req.retryable && !retried => {
                retried = true;
                match fresh_or_refuse(ctx, conn, lease, target, req, rid).await {
                    // `out` still holds the head: retryable requests have no body.
                    Ok(fresh) => lease = fresh,
                    Err(done) => return done,
                }
            }
            Err(e) => {
                let (problem, kind, detail) = match e {
                    HeadError::Closed => (
                        Problem::UpstreamUnavailable,
                        UpstreamErrorKind::Reset,
                        "the upstream closed the connection before answering",
                    ),
                    HeadError::Timeout => (
                        Problem::UpstreamTimeout,
                        UpstreamErrorKind::Timeout,
                        "the upstream did not answer in time",
                    ),
                    HeadError::Protocol(detail) => (
                        Problem::UpstreamProtocol,
                        UpstreamErrorKind::Protocol,
                        detail,
                    ),
                };
                ctx.metrics.borrow_mut().upstream_error(upstream, kind);
                return finish_refusal(ctx, conn, problem, detail, route, req, rid).await;
            }
        }
    }
    let upstream_us = upstream_started.elapsed().as_micros() as u64;
    ctx.metrics.borrow_mut().upstream_time(upstream_us);
    conn.note.upstream_us = Some(upstream_us);
    conn.note.status = conn.resp.status;

    // Relay the response.
    let resp = &conn.resp;
    let framing = client_framing(resp.framing(), req.version);
    let keep_alive = req.keep_alive && !ctx.draining.get() && framing != ClientFraming::Close;
    conn.out.clear();
    write_response_head(
        &mut conn.out,
        resp,
        conn.up.pending(),
        &ToClient {
            framing,
            keep_alive,
            version: req.version,
            extra: response_extra,
            raw_extra: &conn.answer_lines,
            request_id: rid.as_bytes(),
            date: &ctx.date(),
        },
    );
    let reusable = resp.reusable;
    let upstream_framing = resp.framing();
    conn.up.consume(resp.head_len);
    let relayed = relay_body(
        Upstream {
            lease,
            pool,
            reusable,
            timeout: response_timeout,
        },
        &mut conn.stream,
        &mut conn.up,
        &mut conn.out,
        upstream_framing,
        framing,
    )
    .await;
    match relayed {
        Ok(sent) => {
            conn.note.bytes_out = sent;
            Finished {
                outcome: Outcome::Proxied,
                route: Some(route),
                keep_alive,
            }
        }
        Err(RelayError::UpstreamBeforeAnswer(detail)) => {
            ctx.metrics
                .borrow_mut()
                .upstream_error(upstream, UpstreamErrorKind::Protocol);
            // Nothing reached the client yet: it still gets a proper answer.
            let problem = Problem::UpstreamProtocol;
            finish_refusal(ctx, conn, problem, detail, route, req, rid).await
        }
        Err(e) => {
            if matches!(e, RelayError::Upstream) {
                ctx.metrics
                    .borrow_mut()
                    .upstream_error(upstream, UpstreamErrorKind::Reset);
            }
            // The response is cut short: closing is the only honest signal left.
            aborted(route)
        }
    }
}

/// A connection to the target's upstream, or the answer (503/502/504, counted) when none
/// can be had.
async fn checkout(
    ctx: &ShardCtx,
    conn: &mut Conn,
    target: Target,
    req: ReqInfo,
    rid: &RequestId,
) -> Result<Lease, Finished> {
    let e = match ctx.pools[target.upstream].checkout(Instant::now()).await {
        Ok(lease) => return Ok(lease),
        Err(e) => e,
    };
    let (problem, kind, detail) = match e {
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
    ctx.metrics
        .borrow_mut()
        .upstream_error(target.upstream, kind);
    // A body that is not read through leaves the connection out of step: close it.
    let req = ReqInfo {
        keep_alive: req.keep_alive && req.framing == Framing::None,
        ..req
    };
    Err(finish_refusal(ctx, conn, problem, detail, target.route, req, rid).await)
}

/// A pooled connection died before answering a retryable request: a fresh connection to the
/// same server, or — if none can be had — the 502 answer, counted.
async fn fresh_or_refuse(
    ctx: &ShardCtx,
    conn: &mut Conn,
    lease: Lease,
    target: Target,
    req: ReqInfo,
    rid: &RequestId,
) -> Result<Lease, Finished> {
    match ctx.pools[target.upstream].reconnect(lease).await {
        Ok(fresh) => Ok(fresh),
        Err(_) => {
            ctx.metrics
                .borrow_mut()
                .upstream_error(target.upstream, UpstreamErrorKind::Connect);
            let problem = Problem::UpstreamUnavailable;
            let detail = "the upstream connection failed";
            Err(finish_refusal(ctx, conn, problem, detail, target.route, req, rid).await)
        }
    }
}

pub(super) fn aborted(route: usize) -> Finished {
    Finished {
        outcome: Outcome::Aborted,
        route: Some(route),
        keep_alive: false,
    }
}

/// A refusal after the client's head bytes were consumed: write the problem directly.
pub(super) async fn finish_refusal(
    ctx: &ShardCtx,
    conn: &mut Conn,
    problem: Problem,
    detail: &str,
    route: usize,
    req: ReqInfo,
    rid: &RequestId,
) -> Finished {
    use crate::http::problem::{write_problem, ProblemExtras};
    let keep_alive = req.keep_alive && !ctx.draining.get() && !problem.closes_connection();
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
    let ok = conn.stream.write_all(&conn.out).await.is_ok();
    Finished {
        outcome: Outcome::Refused(problem),
        route: Some(route),
        keep_alive: keep_alive && ok,
    }
}

/// Reads the upstream's response head into `up`, skipping interim (1xx) responses.
async fn read_response_head(
    stream: &mut TcpStream,
    up: &mut ReadBuf,
    resp: &mut ResponseHead,
    is_head: bool,
    timeout: Duration,
) -> Result<(), HeadError> {
    up.clear();
    let mut received = false;
    let mut interim = 0;
    loop {
        if !up.pending().is_empty() {
            match resp.parse(up.pending(), is_head, up_head_limit()) {
                Ok(true) if (100..200).contains(&resp.status) && resp.status != 101 => {
                    interim += 1;
                    if interim > MAX_INTERIM {
                        return Err(HeadError::Protocol("upstream sent too many 1xx responses"));
                    }
                    up.consume(resp.head_len);
                    continue;
                }
                Ok(true) if resp.status == 101 => {
                    return Err(HeadError::Protocol("upstream switched protocols unasked"))
                }
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(detail) => return Err(HeadError::Protocol(detail)),
            }
        }
        match up.fill(stream, timeout).await {
            Ok(0) if !received => return Err(HeadError::Closed),
            Ok(0) => {
                return Err(HeadError::Protocol(
                    "upstream closed in the middle of the response head",
                ))
            }
            Ok(_) => received = true,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(HeadError::Timeout),
            Err(e) if e.kind() == io::ErrorKind::OutOfMemory => {
                return Err(HeadError::Protocol("upstream response head too large"))
            }
            Err(_) if !received => return Err(HeadError::Closed),
            Err(_) => {
                return Err(HeadError::Protocol(
                    "upstream connection failed in the response head",
                ))
            }
        }
    }
}

fn up_head_limit() -> usize {
    crate::buffers::UPSTREAM_BUF - 1
}
