//! Relaying a response body from the upstream to the client, re-framed for the client: as it
//! arrives, piece by piece (server-sent events are not held back), never buffered whole.
//!
//! A slow client costs only itself. While a write to the client is blocked, the relay keeps
//! reading the upstream into the client's output buffer, up to [`SPILL_MAX`]: a response that
//! fits is read to its end and the upstream connection goes back to the pool at once, however
//! slowly the client then reads. A larger response keeps its upstream connection, and a client
//! that takes none of it for `timeouts.client_write` is cut off — or after [`CONTENDED_AFTER`]
//! when other requests wait for a connection to that server. The upstream's own pace is never
//! held against the client: a model streaming one event a minute is waited for as long as the
//! route's idle timeout (`idle_timeout`, else `timeouts.upstream_idle`) allows between reads.

use super::forward::Answer;
use super::heads::{client_framing, write_response_head, ClientFraming, ToClient};
use super::request::{Refusal, Stop};
use super::{Conn, Finished};
use crate::buffers::ReadBuf;
use crate::context::ShardCtx;
use crate::error::Problem;
use crate::http::chunked::{ChunkedDecoder, LAST_CHUNK};
use crate::http::response::ResponseFraming;
use crate::http::write::push_chunk;
use crate::metrics::{Outcome, UpstreamErrorKind};
use crate::stream::Stream;
use crate::upstream::{Lease, Pool};
use futures_lite::future::or;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::io;
use std::time::{Duration, Instant};

/// Response bytes a connection buffers ahead of a slow client, at most.
pub const SPILL_MAX: usize = 1024 * 1024;

/// How long a client write may stay blocked before its upstream connection is given to a
/// request waiting for one.
pub const CONTENDED_AFTER: Duration = Duration::from_secs(1);

/// Relay: the answer's head, re-serialised for the client (rate-limit and key lifecycle
/// headers added), then its body as it comes.
pub(super) async fn relay<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
    answer: Answer,
) -> Result<Finished, Stop> {
    let (info, resp, req) = (answer.info, &conn.resp, &conn.req);
    let framing = client_framing(resp.framing(), info.version);
    let keep_alive = info.keep_alive && !ctx.draining.get() && framing != ClientFraming::Close;
    let lifecycle = [
        (
            b"Deprecation".as_slice(),
            req.lifecycle.deprecation.as_deref(),
        ),
        (b"Sunset".as_slice(), req.lifecycle.sunset.as_deref()),
    ];
    let mut extra: [(&[u8], &[u8]); 2] = [(&[], &[]); 2];
    let mut n = 0;
    for (name, value) in lifecycle {
        if let Some(value) = value {
            extra[n] = (name, value.as_bytes());
            n += 1;
        }
    }
    conn.out.clear();
    write_response_head(
        &mut conn.out,
        resp,
        conn.up.pending(),
        &ToClient {
            framing,
            keep_alive,
            version: info.version,
            extra: &extra[..n],
            raw_extra: &req.answer_lines,
            request_id: req.rid.as_bytes(),
            date: &ctx.date(),
        },
    );
    let (reusable, upstream_framing) = (resp.reusable, resp.framing());
    conn.up.consume(resp.head_len);
    let source = Upstream {
        lease: answer.lease,
        pool: &ctx.pools[answer.upstream],
        reusable,
        timeout: answer.timeouts.idle,
    };
    let (stream, up, out) = (&mut conn.stream, &mut conn.up, &mut conn.out);
    match relay_body(source, stream, up, out, upstream_framing, framing).await {
        Ok(sent) => {
            conn.req.note.bytes_out = sent;
            Ok(Finished {
                outcome: Outcome::Proxied,
                route: conn.req.route,
                keep_alive,
            })
        }
        Err(RelayError::UpstreamBeforeAnswer(detail)) => {
            let kind = UpstreamErrorKind::Protocol;
            ctx.count_upstream_error(answer.upstream, kind);
            // Nothing reached the client yet: it still gets a proper answer.
            Err(Refusal::new(Problem::UpstreamProtocol, detail).into())
        }
        Err(e) => {
            if matches!(e, RelayError::Upstream) {
                let kind = UpstreamErrorKind::Reset;
                ctx.count_upstream_error(answer.upstream, kind);
            }
            // The response is cut short: closing is the only honest signal left.
            Err(Stop::Abort)
        }
    }
}

/// Which side failed while relaying.
pub(super) enum RelayError {
    /// The upstream failed before any byte of the answer reached the client: it can still
    /// be answered with a 502.
    UpstreamBeforeAnswer(&'static str),
    Upstream,
    Client,
    /// The client read nothing for too long (or while others waited for its connection).
    ClientTooSlow,
}

/// Where the response comes from and whether its connection may be reused.
pub(super) struct Upstream<'a> {
    pub lease: Lease,
    pub pool: &'a Pool,
    /// The response allows reuse (framing, `Connection`, version).
    pub reusable: bool,
    /// The longest silence between body reads (the route's `idle_timeout`).
    pub timeout: Duration,
}

/// Reads the upstream body out of `up` into `out`, re-framed for the client.
struct Source {
    from: ResponseFraming,
    to: ClientFraming,
    remaining: u64,
    decoder: ChunkedDecoder,
    /// The upstream closed the connection (the end of an `UntilClose` body).
    closed: bool,
    done: bool,
}

impl Source {
    fn new(from: ResponseFraming, to: ClientFraming) -> Source {
        Source {
            from,
            to,
            remaining: match from {
                ResponseFraming::Length(n) => n,
                _ => 0,
            },
            decoder: ChunkedDecoder::new(),
            closed: false,
            done: from == ResponseFraming::None,
        }
    }

    /// Moves what `up` holds into `out`; returns the body bytes moved.
    fn produce(&mut self, up: &mut ReadBuf, out: &mut Vec<u8>) -> Result<u64, RelayError> {
        let mut moved = 0u64;
        match self.from {
            ResponseFraming::None => {}
            ResponseFraming::Length(_) => {
                let k = (self.remaining.min(up.pending().len() as u64)) as usize;
                out.extend_from_slice(&up.pending()[..k]);
                up.consume(k);
                self.remaining -= k as u64;
                moved = k as u64;
                self.done = self.remaining == 0;
            }
            ResponseFraming::Chunked => {
                while !up.pending().is_empty() && !self.decoder.is_done() {
                    let d = self
                        .decoder
                        .decode(up.pending())
                        .map_err(|_| RelayError::Upstream)?;
                    if let Some((a, b)) = d.data {
                        moved += (b - a) as u64;
                        reframe(out, &up.pending()[a..b], self.to);
                    }
                    up.consume(d.consumed);
                }
                if self.decoder.is_done() {
                    self.finish(out);
                }
            }
            ResponseFraming::UntilClose => {
                let piece = up.pending();
                moved = piece.len() as u64;
                reframe(out, piece, self.to);
                let n = piece.len();
                up.consume(n);
                if self.closed {
                    self.finish(out);
                }
            }
        }
        Ok(moved)
    }

    /// The upstream ended the body (or closed, for `UntilClose`).
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.to == ClientFraming::Chunked {
            out.extend_from_slice(LAST_CHUNK);
        }
        self.done = true;
    }
}

/// Relays the response body from the upstream to the client, re-framed as `to`. `out` holds
/// the response head, sent with the first body bytes. The upstream connection goes back to
/// its pool as soon as the body has been read from it (if it may be reused), before the
/// client has taken it all.
pub(super) async fn relay_body<S: Stream>(
    upstream: Upstream<'_>,
    client: &mut S,
    up: &mut ReadBuf,
    out: &mut Vec<u8>,
    from: ResponseFraming,
    to: ClientFraming,
) -> Result<u64, RelayError> {
    // The client has taken a byte: an upstream failure can no longer become a 502.
    let mut answered = false;
    let Upstream {
        lease,
        pool,
        reusable,
        timeout,
    } = upstream;
    let mut lease = Some(lease);
    let mut src = Source::new(from, to);
    let mut sent = 0u64;
    // `out[written..]` is what the client has not taken yet.
    let mut written = 0usize;
    let mut blocked_since: Option<Instant> = None;
    loop {
        if !src.done {
            sent += src.produce(up, out).map_err(|_| {
                if answered {
                    RelayError::Upstream
                } else {
                    RelayError::UpstreamBeforeAnswer("the upstream sent a malformed chunked body")
                }
            })?;
        }
        if src.done {
            if let Some(l) = lease.take() {
                if reusable && up.pending().is_empty() {
                    pool.checkin(l, Instant::now());
                }
            }
            if written == out.len() {
                return Ok(sent);
            }
        }
        let until_close = from == ResponseFraming::UntilClose;
        if written == out.len() {
            out.clear();
            written = 0;
            // The lease is held until the body has been read from it.
            let Some(l) = lease.as_mut() else {
                return Err(RelayError::Upstream);
            };
            src.closed = fill(up, &mut l.stream, timeout, until_close).await?;
            continue;
        }
        let can_read = !src.done && out.len() < SPILL_MAX;
        let step = match (&mut lease, can_read) {
            (Some(l), true) => {
                let w = write_some(client, &out[written..]);
                let r = fill(up, &mut l.stream, timeout, until_close);
                or(w, async { Ok(Step::Read(r.await?)) }).await
            }
            _ => {
                // Only the client can move: wait for it, looking up now and then whether
                // others need the connection it holds.
                let contended = lease.as_ref().map(|l| (l, pool));
                or(write_some(client, &out[written..]), async {
                    watch(contended, blocked_since).await;
                    Ok(Step::Contended)
                })
                .await
            }
        };
        match step? {
            Step::Wrote(n) => {
                written += n;
                answered = true;
                blocked_since = None;
            }
            Step::Read(closed) => {
                src.closed = closed;
                blocked_since.get_or_insert_with(Instant::now);
            }
            Step::Contended => return Err(RelayError::ClientTooSlow),
        }
    }
}

/// What one turn of the relay did.
enum Step {
    /// The client took this many bytes.
    Wrote(usize),
    /// More upstream bytes are in `up` (`true`: the upstream closed instead).
    Read(bool),
    /// The client is blocked and others wait for the connection it holds.
    Contended,
}

/// One write to the client; the stream's write timeout (`timeouts.client_write`) runs from
/// the first write that found the client not reading and ends only with progress, so it
/// measures how long the client has taken nothing, across the races this write loses.
async fn write_some<S: Stream>(client: &mut S, bytes: &[u8]) -> Result<Step, RelayError> {
    match client.write(bytes).await {
        Ok(0) => Err(RelayError::Client),
        Ok(n) => Ok(Step::Wrote(n)),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(RelayError::ClientTooSlow),
        Err(_) => Err(RelayError::Client),
    }
}

/// Resolves once the client has been blocked past [`CONTENDED_AFTER`] while requests wait
/// for a connection to the server it holds; never while nobody waits.
async fn watch(held: Option<(&Lease, &Pool)>, blocked_since: Option<Instant>) {
    let Some((lease, pool)) = held else {
        return std::future::pending().await;
    };
    let since = blocked_since.unwrap_or_else(Instant::now);
    loop {
        let at = since + CONTENDED_AFTER;
        let now = Instant::now();
        if now < at {
            glommio::timer::sleep(at - now).await;
        } else {
            glommio::timer::sleep(CONTENDED_AFTER / 4).await;
        }
        if pool.contended(lease) && since.elapsed() >= CONTENDED_AFTER {
            return;
        }
    }
}

/// Reads more of the upstream body into `up`; `Ok(true)`: the upstream closed, which ends
/// an `UntilClose` body (and is an error for any other).
async fn fill(
    up: &mut ReadBuf,
    stream: &mut TcpStream,
    timeout: Duration,
    until_close: bool,
) -> Result<bool, RelayError> {
    match up.fill(stream, timeout).await {
        Ok(0) if until_close => Ok(true),
        Ok(0) | Err(_) => Err(RelayError::Upstream),
        Ok(_) => Ok(false),
    }
}

fn reframe(out: &mut Vec<u8>, data: &[u8], to: ClientFraming) {
    if to == ClientFraming::Chunked {
        push_chunk(out, data);
    } else {
        out.extend_from_slice(data);
    }
}
