//! Per connection: read head -> route -> authenticate -> authorize -> admit -> identify ->
//! forward -> relay -> account (`handle` is that list).
//!
//! One task per client connection, on the shard that accepted it. Requests on a connection
//! are handled one after another (pipelined requests wait in the read buffer and are parsed
//! and checked on their own). Each step either passes the request on or stops it with a
//! [`Refusal`] (answered by [`refuse`], the one place the gateway answers for itself and
//! the one keep-alive rule) or an abort; only `forward` and `relay` talk to an upstream.
#![warn(clippy::too_many_lines)]

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
mod request;
mod request_id;
mod selfservice;
mod steps;

pub use request::{Progress, Refusal, Request, Stop};
pub use request_id::RequestId;

use crate::buffers::{ConnBufs, ReadBuf};
use crate::context::{ShardCtx, ShardState};
use crate::error::Problem;
use crate::http::problem::{write_problem, ProblemExtras};
use crate::http::response::ResponseHead;
use crate::http::{Framing, RequestHead};
use crate::metrics::Outcome;
use crate::stream::Stream;
use account::Note;
use admit::{count_forwarded_client, refuse_connection, TOO_MANY_FROM_IP};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use head::{read_head, HeadRead};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

/// A client connection and the buffers its requests reuse. Between requests the buffers go
/// back to the shard ([`Conn::park`]): an idle connection holds only this struct.
pub struct Conn<S: Stream = TcpStream> {
    pub stream: S,
    pub rb: ReadBuf,
    pub head: RequestHead,
    pub peer_ip: Option<IpAddr>,
    /// Serialisation buffer for heads and re-framed body pieces.
    pub out: Vec<u8>,
    /// Upstream read buffer.
    pub up: ReadBuf,
    pub resp: ResponseHead,
    /// What the current request has learned so far.
    pub req: Request,
    /// The client address this connection is counted for in the per-address cap.
    counted_ip: Option<IpAddr>,
}

impl<S: Stream> Conn<S> {
    /// Hands the buffers back to the shard; nothing may be pending.
    fn park(&mut self, ctx: &ShardState) {
        if self.rb.is_parked() {
            return;
        }
        let req = &mut self.req;
        ctx.spares.put(ConnBufs {
            rb: self.rb.detach(),
            up: self.up.detach(),
            out: std::mem::take(&mut self.out),
            answer_lines: std::mem::take(&mut req.answer_lines),
            identity_lines: std::mem::take(&mut req.identity_lines),
            target: std::mem::take(&mut req.target),
            judged: std::mem::take(&mut req.judged),
        });
    }

    /// Takes buffers from the shard, holding `first` as the bytes read so far.
    fn unpark(&mut self, ctx: &ShardState, first: &[u8]) {
        let b = ctx.spares.take();
        self.rb.attach(b.rb, first);
        self.up.attach(b.up, &[]);
        self.out = b.out;
        self.req.answer_lines = b.answer_lines;
        self.req.identity_lines = b.identity_lines;
        self.req.target = b.target;
        self.req.judged = b.judged;
    }
}

/// How a request ended, for the connection loop and accounting.
pub struct Finished {
    pub outcome: Outcome,
    pub route: Option<usize>,
    pub keep_alive: bool,
}

/// Serves one accepted TCP connection (see [`serve_connection`]).
pub async fn serve_tcp(shard: Rc<ShardState>, stream: TcpStream) {
    let peer_ip = stream.peer_addr().ok().map(|a| a.ip());
    let _ = stream.set_nodelay(true);
    serve_connection(shard, stream, peer_ip).await
}

/// Serves one client connection until it closes, errs, or the shard drains. Each request
/// runs on the configuration current when its first bytes arrived.
pub async fn serve_connection<S: Stream>(
    shard: Rc<ShardState>,
    stream: S,
    peer_ip: Option<IpAddr>,
) {
    let counted_ip = {
        let ctx = shard.current();
        match admit::admit_connection(&ctx, peer_ip) {
            Ok(counted) => counted,
            Err(detail) => return refuse_connection(&ctx, stream, detail).await,
        }
    };
    shard.metrics.borrow_mut().connections_active += 1;
    let mut conn = Conn {
        stream,
        rb: ReadBuf::parked(),
        head: RequestHead::default(),
        peer_ip,
        out: Vec::new(),
        up: ReadBuf::parked(),
        resp: ResponseHead::default(),
        req: Request::new(shard.audit.is_some()),
        counted_ip,
    };
    let mut first = true;
    while first || !shard.draining.get() {
        match next_request(&shard, &mut conn, first).await {
            Some(done) if done.keep_alive => first = false,
            _ => break,
        }
    }
    let _ = conn.stream.close().await;
    conn.park(&shard);
    if let Some(ip) = conn.counted_ip {
        shard.release_ip(ip);
    }
    shard.metrics.borrow_mut().connections_active -= 1;
}

/// Reads the next request on the connection and answers it, then counts and audits it;
/// `None` when the connection ended cleanly between requests.
async fn next_request<S: Stream>(
    shard: &ShardState,
    conn: &mut Conn<S>,
    first: bool,
) -> Option<Finished> {
    if conn.rb.pending().is_empty() {
        conn.park(shard);
    } else {
        conn.rb.compact();
    }
    conn.req.reset(conn.peer_ip);
    let (ctx, read) = read_head(shard, conn, first).await;
    let ctx = &*ctx;
    let started = Instant::now();
    // A write that finds the client taking nothing fails after this long (see relay.rs).
    let _ = conn
        .stream
        .set_write_timeout(Some(ctx.shared.config.timeouts.client_write));
    let done = match read {
        HeadRead::Closed => return None,
        HeadRead::Refused(e) => refuse(ctx, conn, e.into()).await,
        HeadRead::Ready => {
            conn.req.progress = Progress::Parsed;
            conn.req.body_unread = conn.head.framing != Framing::None;
            if conn.counted_ip.is_none() && !count_forwarded_client(ctx, conn) {
                let refusal = Refusal::new(Problem::TooManyConnections, TOO_MANY_FROM_IP);
                refuse(ctx, conn, refusal).await
            } else {
                ctx.in_flight.set(ctx.in_flight.get() + 1);
                let done = handle(ctx, conn).await;
                ctx.in_flight.set(ctx.in_flight.get() - 1);
                done
            }
        }
    };
    let us = started.elapsed().as_micros() as u64;
    ctx.count_request(done.route, done.outcome, us);
    account::rollup(ctx, &conn.req.note, &done, us);
    if conn.req.note.on {
        account::audit(ctx, &conn.req.note, &done, crate::clock::unix_ms(), us);
    }
    Some(done)
}

/// One request whose head is parsed, through the pipeline's steps; a step that stops it is
/// answered here.
async fn handle<S: Stream>(ctx: &ShardCtx, conn: &mut Conn<S>) -> Finished {
    let buf = conn.rb.pending();
    let head = &conn.head;
    let rid = RequestId::for_request(ctx, head.x_request_id.map(|s| s.get(buf)));
    let note = &mut conn.req.note;
    if note.on {
        Note::set(true, &mut note.request_id, rid.as_bytes());
        Note::set(true, &mut note.method, head.method_span.get(buf));
        Note::set(true, &mut note.path, head.path.get(buf));
    }
    conn.req.rid = rid;
    match steps(ctx, conn).await {
        Ok(done) => done,
        Err(Stop::Refuse(refusal)) => refuse(ctx, conn, refusal).await,
        Err(Stop::Abort) => Finished {
            outcome: Outcome::Aborted,
            route: conn.req.route,
            keep_alive: false,
        },
    }
}

/// The lifecycle of one request: each step passes it on or stops it.
async fn steps<S: Stream>(ctx: &ShardCtx, conn: &mut Conn<S>) -> Result<Finished, Stop> {
    if selfservice::wanted(ctx, &conn.head, conn.rb.pending()) {
        return selfservice::answer(ctx, conn).await;
    }
    let route = steps::route(ctx, conn)?;
    let target = if ctx.shared.config.routes[route].public {
        steps::shed(ctx, conn, None)?;
        steps::public_target(ctx, conn, route)?
    } else {
        let keys = steps::key_table(ctx)?;
        let (keys, caller) = steps::authenticate(ctx, conn, Some(route), keys)?;
        let target = steps::authorize(ctx, conn, route, keys, &caller.key)?;
        steps::shed(ctx, conn, Some(&caller.key.plan()))?;
        steps::admit(ctx, conn, route, &caller.key).await?;
        steps::identify(ctx, conn, &caller);
        target
    };
    steps::guard_bearer(ctx, conn);
    let answer = forward::forward(ctx, conn, target).await?;
    relay::relay(ctx, conn, answer).await
}

/// Answers the current request with a problem. The one keep-alive rule: the connection stays
/// open only if the head was parsed, its body is not left unread, the client asked for
/// keep-alive, the problem does not close, and the shard is not draining.
async fn refuse<S: Stream>(ctx: &ShardCtx, conn: &mut Conn<S>, refusal: Refusal) -> Finished {
    let Refusal { problem, detail } = refusal;
    let req = &mut conn.req;
    let keep_alive = req.progress != Progress::Unparsed
        && conn.head.keep_alive
        && !req.body_unread
        && !problem.closes_connection()
        && !ctx.draining.get();
    // A request the steps saw already has its id (in the audit note, maybe upstream): answer
    // with it. One refused before them (an unparsed head, a connection cap) gets its id now,
    // the client's if its parsed head sent a sane one, and the audit record the same.
    if req.rid.as_bytes().is_empty() {
        let client = match req.progress {
            Progress::Unparsed => None,
            _ => conn.head.x_request_id.map(|s| s.get(conn.rb.pending())),
        };
        req.rid = RequestId::for_request(ctx, client);
        Note::set(req.note.on, &mut req.note.request_id, req.rid.as_bytes());
    }
    conn.out.clear();
    write_problem(
        &mut conn.out,
        problem,
        &ProblemExtras {
            detail: &detail,
            request_id: req.rid.as_bytes(),
            close: !keep_alive,
            headers: &[],
            raw_headers: &req.answer_lines,
            date: &ctx.date(),
        },
    );
    if req.progress == Progress::Parsed {
        conn.rb.consume(conn.head.head_len);
        req.progress = Progress::Consumed;
    }
    let written = conn.stream.write_all(&conn.out).await;
    Finished {
        outcome: Outcome::Refused(problem),
        route: conn.req.route,
        keep_alive: keep_alive && written.is_ok(),
    }
}
