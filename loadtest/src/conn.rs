//! Per-connection read buffer (reused for the connection's lifetime) and streaming body reader for Content-Length, chunked and close-delimited bodies.

use crate::chunked::{ChunkError, ChunkedDecoder};
use crate::http::Framing;
use futures_lite::{AsyncRead, AsyncReadExt};
use std::io;

/// Free space below which buffered bytes are moved to the front before reading.
const COMPACT_BELOW: usize = 4096;

/// A fixed-capacity read buffer holding the unconsumed bytes `buf[start..end]`.
pub struct ReadBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub fn new(capacity: usize) -> Self {
        ReadBuf {
            buf: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The buffered, not yet consumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Drops `n` bytes from the front of [`data`](Self::data).
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// True when no more bytes fit even after compaction (a head larger than the buffer).
    pub fn is_full(&self) -> bool {
        self.start == 0 && self.end == self.buf.len()
    }

    /// Reads once from `r`, appending to the buffer. Returns 0 at end of stream.
    /// Fails with `InvalidData` if the buffer is full.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> io::Result<usize> {
        if self.buf.len() - self.end < COMPACT_BELOW && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "read buffer full",
            ));
        }
        let n = r.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Socket error (including read timeouts).
    Io(io::Error),
    /// The peer closed before the body ended.
    Eof,
    /// Malformed chunked framing.
    Chunked(ChunkError),
    /// The body exceeds the caller's limit.
    TooLarge,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Io(e) => write!(f, "i/o error: {e}"),
            BodyError::Eof => f.write_str("connection closed mid-body"),
            BodyError::Chunked(e) => write!(f, "bad chunked body: {e}"),
            BodyError::TooLarge => f.write_str("body too large"),
        }
    }
}

/// Reads one body framed by `framing` from `rb` (then `r`), passing each piece of body data to `sink`.
/// Leaves any bytes after the body in `rb`. Returns the body length.
pub async fn read_body<R, F>(
    rb: &mut ReadBuf,
    r: &mut R,
    framing: Framing,
    limit: u64,
    mut sink: F,
) -> Result<u64, BodyError>
where
    R: AsyncRead + Unpin,
    F: FnMut(&[u8]),
{
    let mut total = 0u64;
    match framing {
        Framing::None => {}
        Framing::Length(n) => {
            if n > limit {
                return Err(BodyError::TooLarge);
            }
            while total < n {
                if rb.is_empty() && fill(rb, r).await? == 0 {
                    return Err(BodyError::Eof);
                }
                let data = rb.data();
                let take = data.len().min((n - total) as usize);
                sink(&data[..take]);
                rb.consume(take);
                total += take as u64;
            }
        }
        Framing::Chunked => {
            let mut dec = ChunkedDecoder::new();
            loop {
                if rb.is_empty() && fill(rb, r).await? == 0 {
                    return Err(BodyError::Eof);
                }
                let data = rb.data();
                let step = dec.decode(data).map_err(BodyError::Chunked)?;
                let piece = &data[step.data];
                total += piece.len() as u64;
                if total > limit {
                    return Err(BodyError::TooLarge);
                }
                sink(piece);
                rb.consume(step.consumed);
                if step.done {
                    break;
                }
            }
        }
        Framing::UntilClose => loop {
            if rb.is_empty() && fill(rb, r).await? == 0 {
                break;
            }
            let data = rb.data();
            total += data.len() as u64;
            if total > limit {
                return Err(BodyError::TooLarge);
            }
            sink(data);
            let n = data.len();
            rb.consume(n);
        },
    }
    Ok(total)
}

async fn fill<R: AsyncRead + Unpin>(rb: &mut ReadBuf, r: &mut R) -> Result<usize, BodyError> {
    rb.fill(r).await.map_err(BodyError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    /// A reader returning its data in fixed-size pieces.
    struct Pieces<'a> {
        data: &'a [u8],
        piece: usize,
    }

    impl AsyncRead for Pieces<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let n = self.piece.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            std::task::Poll::Ready(Ok(n))
        }
    }

    fn read(framing: Framing, input: &[u8], piece: usize) -> Result<(Vec<u8>, Vec<u8>), BodyError> {
        let mut rb = ReadBuf::new(64);
        let mut r = Pieces { data: input, piece };
        let mut body = Vec::new();
        block_on(read_body(&mut rb, &mut r, framing, 1 << 20, |d| {
            body.extend_from_slice(d)
        }))?;
        Ok((body, rb.data().to_vec()))
    }

    #[test]
    fn length_body_leaves_rest() {
        for piece in [1, 3, 100] {
            let (body, rest) = read(Framing::Length(5), b"helloGET", piece).unwrap();
            assert_eq!(body, b"hello");
            assert!(b"GET".starts_with(&rest));
        }
    }

    #[test]
    fn chunked_body_larger_than_buffer() {
        let mut msg = Vec::new();
        let mut want = Vec::new();
        for i in 0..50u8 {
            let chunk = vec![b'a' + i % 26; 37];
            msg.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            msg.extend_from_slice(&chunk);
            msg.extend_from_slice(b"\r\n");
            want.extend_from_slice(&chunk);
        }
        msg.extend_from_slice(b"0\r\n\r\n");
        for piece in [1, 7, 64] {
            let (body, rest) = read(Framing::Chunked, &msg, piece).unwrap();
            assert_eq!(body, want);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn eof_and_errors() {
        assert!(matches!(
            read(Framing::Length(10), b"short", 4),
            Err(BodyError::Eof)
        ));
        assert!(matches!(
            read(Framing::Chunked, b"5\r\nab", 4),
            Err(BodyError::Eof)
        ));
        assert!(matches!(
            read(Framing::Chunked, b"zz\r\n", 4),
            Err(BodyError::Chunked(_))
        ));
        let (body, _) = read(Framing::UntilClose, b"until the end", 2).unwrap();
        assert_eq!(body, b"until the end");
    }

    #[test]
    fn limit_enforced() {
        let mut rb = ReadBuf::new(64);
        let mut r = Pieces {
            data: b"5\r\nhello\r\n0\r\n\r\n",
            piece: 64,
        };
        let res = block_on(read_body(&mut rb, &mut r, Framing::Chunked, 4, |_| {}));
        assert!(matches!(res, Err(BodyError::TooLarge)));
    }
}
