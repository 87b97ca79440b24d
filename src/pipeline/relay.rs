//! Relaying a response body from the upstream to the client, re-framed for the client: as it
//! arrives, piece by piece (server-sent events are not held back), never buffered whole.

use super::client::ReadBuf;
use super::heads::ClientFraming;
use crate::http::chunked::{ChunkedDecoder, LAST_CHUNK};
use crate::http::response::ResponseFraming;
use crate::http::write::push_chunk;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::time::Duration;

/// Which side failed while relaying.
pub(super) enum RelayError {
    Upstream,
    Client,
}

/// Relays the response body from the upstream to the client, re-framed as `to`. `out` holds
/// the response head, sent with the first body bytes.
pub(super) async fn relay_body(
    up_stream: &mut TcpStream,
    client: &mut TcpStream,
    up: &mut ReadBuf,
    out: &mut Vec<u8>,
    from: ResponseFraming,
    to: ClientFraming,
    timeout: Duration,
) -> Result<u64, RelayError> {
    let mut sent = 0u64;
    match from {
        ResponseFraming::None => {
            client
                .write_all(out)
                .await
                .map_err(|_| RelayError::Client)?;
        }
        ResponseFraming::Length(n) => {
            let mut remaining = n;
            let k = (remaining.min(up.pending().len() as u64)) as usize;
            out.extend_from_slice(&up.pending()[..k]);
            up.consume(k);
            remaining -= k as u64;
            client
                .write_all(out)
                .await
                .map_err(|_| RelayError::Client)?;
            while remaining > 0 {
                fill_upstream(up, up_stream, timeout).await?;
                let k = (remaining.min(up.pending().len() as u64)) as usize;
                client
                    .write_all(&up.pending()[..k])
                    .await
                    .map_err(|_| RelayError::Client)?;
                up.consume(k);
                remaining -= k as u64;
            }
            sent = n;
        }
        ResponseFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            loop {
                while !up.pending().is_empty() && !decoder.is_done() {
                    let d = decoder
                        .decode(up.pending())
                        .map_err(|_| RelayError::Upstream)?;
                    if let Some((a, b)) = d.data {
                        sent += (b - a) as u64;
                        reframe(out, &up.pending()[a..b], to);
                    }
                    up.consume(d.consumed);
                }
                if decoder.is_done() {
                    if to == ClientFraming::Chunked {
                        out.extend_from_slice(LAST_CHUNK);
                    }
                    client
                        .write_all(out)
                        .await
                        .map_err(|_| RelayError::Client)?;
                    out.clear();
                    break;
                }
                if !out.is_empty() {
                    client
                        .write_all(out)
                        .await
                        .map_err(|_| RelayError::Client)?;
                    out.clear();
                }
                fill_upstream(up, up_stream, timeout).await?;
            }
        }
        ResponseFraming::UntilClose => loop {
            let piece = up.pending();
            sent += piece.len() as u64;
            reframe(out, piece, to);
            let n = piece.len();
            up.consume(n);
            if !out.is_empty() {
                client
                    .write_all(out)
                    .await
                    .map_err(|_| RelayError::Client)?;
                out.clear();
            }
            match up.fill(up_stream, timeout).await {
                Ok(0) => {
                    if to == ClientFraming::Chunked {
                        client
                            .write_all(LAST_CHUNK)
                            .await
                            .map_err(|_| RelayError::Client)?;
                    }
                    break;
                }
                Ok(_) => {}
                Err(_) => return Err(RelayError::Upstream),
            }
        },
    }
    Ok(sent)
}

fn reframe(out: &mut Vec<u8>, data: &[u8], to: ClientFraming) {
    if to == ClientFraming::Chunked {
        push_chunk(out, data);
    } else {
        out.extend_from_slice(data);
    }
}

async fn fill_upstream(
    up: &mut ReadBuf,
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<(), RelayError> {
    match up.fill(stream, timeout).await {
        Ok(0) | Err(_) => Err(RelayError::Upstream),
        Ok(_) => Ok(()),
    }
}
