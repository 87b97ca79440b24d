//! The upstream exchange: check a connection out, send the re-serialised head and the body,
//! read the response head, relay the response, and put the connection back only if the
//! exchange ended cleanly.

use super::client::Pace;
use super::client::ReadBuf;
use super::heads::{
    client_framing, write_request_head, write_response_head, ClientFraming, Forwarding, ToClient,
};
use super::relay::{relay_body, RelayError, Upstream};
use super::{Conn, Finished, RequestId};
use crate::error::Problem;
use crate::http::chunked::{ChunkedDecoder, LAST_CHUNK};
use crate::http::response::ResponseHead;
use crate::http::write::push_chunk;
use crate::http::{Framing, Method, Version};
use crate::metrics::{Outcome, UpstreamErrorKind};
use crate::shard::ShardCtx;
use crate::upstream::{Lease, PoolError};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::io;
use std::time::{Duration, Instant};

/// Flush the serialisation buffer to the peer once it holds this much.
const FLUSH_AT: usize = 64 * 1024;

/// The facts about the request still needed once its head bytes are consumed.
#[derive(Clone, Copy)]
struct ReqInfo {
    version: Version,
    keep_alive: bool,
    framing: Framing,
    expect_continue: bool,
    is_head: bool,
    /// No body and an idempotent method: may be resent on a fresh connection.
    retryable: bool,
    max_body: u64,
}

enum SendError {
    Upstream,
    ClientGone,
    ClientTimeout,
    /// The body arrived below `limits.min_body_rate` past `timeouts.body_grace`.
    ClientTooSlow,
    TooLarge,
    BadChunk(&'static str),
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

    let mut lease = match pool.checkout(Instant::now()).await {
        Ok(lease) => lease,
        Err(e) => {
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
            ctx.metrics.borrow_mut().upstream_error(upstream, kind);
            // A body that is not read through leaves the connection out of step: close it.
            let req = ReqInfo {
                keep_alive: req.keep_alive && req.framing == Framing::None,
                ..req
            };
            return finish_refusal(ctx, conn, problem, detail, route, req, rid).await;
        }
    };
    let _ = lease.stream.set_write_timeout(Some(response_timeout));

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

fn aborted(route: usize) -> Finished {
    Finished {
        outcome: Outcome::Aborted,
        route: Some(route),
        keep_alive: false,
    }
}

/// A refusal after the client's head bytes were consumed: write the problem directly.
async fn finish_refusal(
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

/// Sends the head in `conn.out` and the request body, re-framed. `out` is left holding the
/// head when there is no body, so a retry can send it again.
async fn send_request(
    up: &mut TcpStream,
    conn: &mut Conn,
    req: &ReqInfo,
    pace: &mut Pace,
) -> Result<u64, SendError> {
    let out = &mut conn.out;
    let rb = &mut conn.rb;
    match req.framing {
        Framing::None => {
            up.write_all(out).await.map_err(|_| SendError::Upstream)?;
            Ok(0)
        }
        Framing::Length(n) => {
            let mut remaining = n;
            let k = (remaining as usize).min(rb.pending().len()).min(FLUSH_AT);
            out.extend_from_slice(&rb.pending()[..k]);
            rb.consume(k);
            remaining -= k as u64;
            up.write_all(out).await.map_err(|_| SendError::Upstream)?;
            while remaining > 0 {
                if rb.pending().is_empty() {
                    read_client(rb, &mut conn.stream, pace).await?;
                }
                let k = (remaining.min(rb.pending().len() as u64)) as usize;
                up.write_all(&rb.pending()[..k])
                    .await
                    .map_err(|_| SendError::Upstream)?;
                rb.consume(k);
                remaining -= k as u64;
            }
            Ok(n)
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut total = 0u64;
            loop {
                while !rb.pending().is_empty() && !decoder.is_done() {
                    let d = decoder
                        .decode(rb.pending())
                        .map_err(|e| SendError::BadChunk(e.detail()))?;
                    if let Some((a, b)) = d.data {
                        total += (b - a) as u64;
                        if total > req.max_body {
                            return Err(SendError::TooLarge);
                        }
                        push_chunk(out, &rb.pending()[a..b]);
                    }
                    rb.consume(d.consumed);
                }
                if decoder.is_done() {
                    out.extend_from_slice(LAST_CHUNK);
                    up.write_all(out).await.map_err(|_| SendError::Upstream)?;
                    return Ok(total);
                }
                if out.len() >= FLUSH_AT || rb.pending().is_empty() {
                    up.write_all(out).await.map_err(|_| SendError::Upstream)?;
                    out.clear();
                }
                read_client(rb, &mut conn.stream, pace).await?;
            }
        }
    }
}

async fn read_client(
    rb: &mut ReadBuf,
    stream: &mut TcpStream,
    pace: &mut Pace,
) -> Result<(), SendError> {
    let (wait, by_rate) = pace.next_wait(Instant::now());
    let too_slow = || {
        if by_rate {
            SendError::ClientTooSlow
        } else {
            SendError::ClientTimeout
        }
    };
    if wait.is_zero() {
        return Err(too_slow());
    }
    match rb.fill(stream, wait).await {
        Ok(0) => Err(SendError::ClientGone),
        Ok(n) => {
            pace.received(n);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(too_slow()),
        Err(_) => Err(SendError::ClientGone),
    }
}

/// Reads the request body into the client buffer until it is all there or the buffer is
/// full, so the upstream connection is taken only for a body that is ready to flow.
async fn buffer_body(conn: &mut Conn, req: &ReqInfo, pace: &mut Pace) -> Result<(), SendError> {
    let mut body = BodyScan::new(req.framing);
    while !conn.rb.is_full() && !body.complete(conn.rb.pending()) {
        read_client(&mut conn.rb, &mut conn.stream, pace).await?;
    }
    Ok(())
}

/// Finds where a buffered body ends, looking at each byte once however it trickles in.
struct BodyScan {
    framing: Framing,
    decoder: ChunkedDecoder,
    /// Bytes of the pending body already decoded.
    scanned: usize,
}

impl BodyScan {
    fn new(framing: Framing) -> BodyScan {
        BodyScan {
            framing,
            decoder: ChunkedDecoder::new(),
            scanned: 0,
        }
    }

    /// Whether `pending` holds the whole body (a malformed chunked body counts as complete:
    /// the send step reports it).
    fn complete(&mut self, pending: &[u8]) -> bool {
        match self.framing {
            Framing::None => true,
            Framing::Length(n) => pending.len() as u64 >= n,
            Framing::Chunked => {
                while self.scanned < pending.len() && !self.decoder.is_done() {
                    match self.decoder.decode(&pending[self.scanned..]) {
                        Ok(d) if d.consumed > 0 => self.scanned += d.consumed,
                        Ok(_) => break,
                        Err(_) => return true,
                    }
                }
                self.decoder.is_done()
            }
        }
    }
}

/// The answer to a request whose body could not be read through: the connection closes.
async fn refuse_body(
    ctx: &ShardCtx,
    conn: &mut Conn,
    e: SendError,
    route: usize,
    req: ReqInfo,
    rid: &RequestId,
) -> Finished {
    let (problem, detail) = match e {
        SendError::ClientGone => return aborted(route),
        SendError::ClientTimeout => (Problem::RequestTimeout, "request body not received in time"),
        SendError::ClientTooSlow => (
            Problem::RequestTimeout,
            "request body arrived slower than the gateway's minimum rate; send it faster",
        ),
        SendError::TooLarge => (
            Problem::BodyTooLarge,
            "request body exceeds the body size limit",
        ),
        SendError::BadChunk(detail) => (Problem::BadRequest, detail),
        SendError::Upstream => (
            Problem::UpstreamUnavailable,
            "the upstream connection failed while sending the request",
        ),
    };
    let req = ReqInfo {
        keep_alive: false,
        ..req
    };
    finish_refusal(ctx, conn, problem, detail, route, req, rid).await
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
    loop {
        if !up.pending().is_empty() {
            match resp.parse(up.pending(), is_head, up_head_limit()) {
                Ok(true) if (100..200).contains(&resp.status) && resp.status != 101 => {
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
    super::UPSTREAM_BUF - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_found_complete_however_it_trickles_in() {
        let body = b"5\r\nhello\r\n3;x=1\r\nabc\r\n0\r\nT: v\r\n\r\n";
        for step in 1..body.len() {
            let mut scan = BodyScan::new(Framing::Chunked);
            let mut end = 0;
            while end < body.len() {
                assert!(
                    !scan.complete(&body[..end]),
                    "complete at {end} of {}",
                    body.len()
                );
                end = (end + step).min(body.len());
            }
            assert!(scan.complete(body));
        }
        let mut scan = BodyScan::new(Framing::Chunked);
        assert!(scan.complete(b"zz\r\n"), "malformed: left to the send step");
        assert!(BodyScan::new(Framing::Length(3)).complete(b"abc"));
        assert!(!BodyScan::new(Framing::Length(4)).complete(b"abc"));
    }
}
