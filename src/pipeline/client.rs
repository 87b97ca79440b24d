//! Read buffers with deadlines, for both sides of a connection.
//!
//! A [`ReadBuf`] holds bytes read but not yet used, `[start, end)`. On the client side it is
//! sized from the head limits so a whole request head fits; on the upstream side it holds
//! response heads and body pieces in transit. Bytes are consumed from the front.

use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;
use std::io;
use std::time::Duration;

pub struct ReadBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub fn new(capacity: usize) -> ReadBuf {
        ReadBuf {
            buf: vec![0u8; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Bytes read but not yet consumed.
    #[inline]
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    #[inline]
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Moves pending bytes to the front so a whole head can be read contiguously.
    pub fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Reads more bytes from `stream`, waiting at most `timeout` (a `TimedOut` error after).
    /// `Ok(0)` is end of stream.
    pub async fn fill(&mut self, stream: &mut TcpStream, timeout: Duration) -> io::Result<usize> {
        if self.end == self.buf.len() {
            self.compact();
            if self.end == self.buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "read buffer full",
                ));
            }
        }
        stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(io::Error::from)?;
        let n = stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}
