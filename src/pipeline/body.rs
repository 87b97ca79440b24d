//! The request body: read into the client buffer before an upstream connection is taken,
//! at a minimum pace, then sent re-framed (Content-Length as is, chunked decoded strictly and
//! re-chunked).

use super::forward::ReqInfo;
use super::request::{Refusal, Stop};
use super::Conn;
use crate::buffers::{Pace, ReadBuf};
use crate::error::Problem;
use crate::http::chunked::{ChunkedDecoder, LAST_CHUNK};
use crate::http::write::push_chunk;
use crate::http::Framing;
use crate::stream::Stream;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::io;
use std::time::Instant;

/// Flush the serialisation buffer to the peer once it holds this much.
const FLUSH_AT: usize = 64 * 1024;

/// Why a request body could not be sent.
pub(super) enum SendError {
    Upstream,
    ClientGone,
    ClientTimeout,
    /// The body arrived below `limits.min_body_rate` past `timeouts.body_grace`.
    ClientTooSlow,
    TooLarge,
    BadChunk(&'static str),
}

/// Sends the head in `conn.out` and the request body, re-framed. `out` is left holding the
/// head when there is no body, so a retry can send it again.
pub(super) async fn send_request<S: Stream>(
    up: &mut TcpStream,
    conn: &mut Conn<S>,
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

async fn read_client<S: Stream>(
    rb: &mut ReadBuf,
    stream: &mut S,
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
pub(super) async fn buffer_body<S: Stream>(
    conn: &mut Conn<S>,
    req: &ReqInfo,
    pace: &mut Pace,
) -> Result<(), SendError> {
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

impl From<SendError> for Stop {
    /// What the client hears when its request body could not be read through or sent (the
    /// connection then closes: `Request::body_unread` is still set).
    fn from(e: SendError) -> Stop {
        let (problem, detail) = match e {
            SendError::ClientGone => return Stop::Abort,
            SendError::ClientTimeout => {
                (Problem::RequestTimeout, "request body not received in time")
            }
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
        Stop::Refuse(Refusal::new(problem, detail))
    }
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
