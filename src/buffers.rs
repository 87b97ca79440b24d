//! Read buffers with deadlines, for both sides of a connection, and the shard's spare
//! buffers that connections between requests hand back.
//!
//! A [`ReadBuf`] holds bytes read but not yet used, `[start, end)`. On the client side it is
//! sized from the head limits so a whole request head fits; on the upstream side it holds
//! response heads and body pieces in transit. Bytes are consumed from the front.
//!
//! An idle connection holds no buffer: it waits for its next request with a small stack
//! array (see `read_head`) and takes a [`ConnBufs`] from the shard's [`Spares`] when bytes
//! arrive, so 10 000 idle keep-alive connections cost kilobytes each, not 100 KiB.

use crate::stream::Stream;
use futures_lite::AsyncReadExt;
use std::cell::{Cell, RefCell};
use std::io;
use std::time::{Duration, Instant};

/// Upstream read buffer size (response heads must fit; bodies pass through in pieces).
pub const UPSTREAM_BUF: usize = 64 * 1024;

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

    /// A buffer without storage: [`ReadBuf::attach`] gives it some.
    pub fn parked() -> ReadBuf {
        ReadBuf {
            buf: Box::default(),
            start: 0,
            end: 0,
        }
    }

    pub fn is_parked(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the storage away, dropping anything pending.
    pub fn detach(&mut self) -> Box<[u8]> {
        self.start = 0;
        self.end = 0;
        std::mem::take(&mut self.buf)
    }

    /// Gives the buffer `storage`, holding `first` as its pending bytes.
    pub fn attach(&mut self, storage: Box<[u8]>, first: &[u8]) {
        self.buf = storage;
        self.buf[..first.len()].copy_from_slice(first);
        self.start = 0;
        self.end = first.len();
    }

    /// Pending bytes fill the whole buffer: nothing more can be read before some are used.
    pub fn is_full(&self) -> bool {
        self.end - self.start == self.buf.len()
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
    pub async fn fill<S: Stream>(
        &mut self,
        stream: &mut S,
        timeout: Duration,
    ) -> io::Result<usize> {
        if self.end == self.buf.len() {
            self.compact();
            if self.end == self.buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "read buffer full",
                ));
            }
        }
        stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let n = stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}

/// Capacity a spare output buffer keeps.
const SPARE_OUT: usize = 64 * 1024;

/// The buffers a connection needs only while it has a request in hand.
pub struct ConnBufs {
    pub rb: Box<[u8]>,
    /// Empty until the connection forwards a request ([`Spares::take_up`]).
    pub up: Box<[u8]>,
    pub out: Vec<u8>,
    pub answer_lines: Vec<u8>,
    pub identity_lines: Vec<u8>,
    pub target: Vec<u8>,
    pub judged: Vec<u8>,
}

/// One shard's spare [`ConnBufs`]: connections between requests put theirs here and the next
/// connection with bytes to read takes them, so buffers are allocated (and zeroed) once per
/// busy connection, not per connection or per request.
pub struct Spares {
    /// Size of a client read buffer; a reload that changes the head limits changes it.
    client_buf: Cell<usize>,
    upstream_buf: usize,
    free: RefCell<Vec<ConnBufs>>,
    /// Upstream buffers, apart: a connection takes one only when it forwards (a trickled
    /// head or a refused request never does).
    free_up: RefCell<Vec<Box<[u8]>>>,
    /// Spares kept at most; more are freed (the high-water of busy connections, roughly).
    keep: usize,
}

impl Spares {
    pub fn new(client_buf: usize, upstream_buf: usize, keep: usize) -> Spares {
        Spares {
            client_buf: Cell::new(client_buf),
            upstream_buf,
            free: RefCell::new(Vec::new()),
            free_up: RefCell::new(Vec::new()),
            keep,
        }
    }

    /// A set of buffers; its `up` is empty (see [`Spares::take_up`]).
    pub fn take(&self) -> ConnBufs {
        self.free.borrow_mut().pop().unwrap_or_else(|| ConnBufs {
            rb: vec![0u8; self.client_buf.get()].into_boxed_slice(),
            up: Box::default(),
            out: Vec::with_capacity(4096),
            answer_lines: Vec::new(),
            identity_lines: Vec::new(),
            target: Vec::new(),
            judged: Vec::new(),
        })
    }

    /// An upstream read buffer.
    pub fn take_up(&self) -> Box<[u8]> {
        self.free_up
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| vec![0u8; self.upstream_buf].into_boxed_slice())
    }

    pub fn put(&self, mut bufs: ConnBufs) {
        let up = std::mem::take(&mut bufs.up);
        if !up.is_empty() {
            let mut free_up = self.free_up.borrow_mut();
            if free_up.len() < self.keep {
                free_up.push(up);
            }
        }
        let mut free = self.free.borrow_mut();
        // A buffer of the size before a reload is dropped, not kept.
        if free.len() < self.keep && bufs.rb.len() == self.client_buf.get() {
            // A response spilled for a slow client grew it: keep a spare small.
            bufs.out.clear();
            bufs.out.shrink_to(SPARE_OUT);
            bufs.answer_lines.clear();
            bufs.identity_lines.clear();
            bufs.target.clear();
            bufs.judged.clear();
            free.push(bufs);
        }
    }

    /// Client buffers are `n` bytes from now on (spares of another size are dropped).
    pub fn set_client_buf(&self, n: usize) {
        if self.client_buf.replace(n) != n {
            self.free.borrow_mut().clear();
        }
    }

    pub fn len(&self) -> usize {
        self.free.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The pace a request body must keep: after `grace`, at least `min_rate` bytes per second on
/// average since its first byte was awaited, and never a pause longer than `idle`. Pure: the
/// caller passes the clock.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    started: Instant,
    grace: Duration,
    min_rate: u64,
    idle: Duration,
    received: u64,
}

impl Pace {
    pub fn new(started: Instant, grace: Duration, min_rate: u64, idle: Duration) -> Pace {
        Pace {
            started,
            grace,
            min_rate: min_rate.max(1),
            idle,
            received: 0,
        }
    }

    pub fn received(&mut self, n: usize) {
        self.received += n as u64;
    }

    /// How long the next read may wait at `now`, and whether that wait ends at the rate limit
    /// (`true`) rather than the idle limit. A zero wait means the body is already too slow.
    pub fn next_wait(&self, now: Instant) -> (Duration, bool) {
        // The time by which `received` bytes must have arrived, plus the grace.
        let earned = Duration::from_secs_f64(self.received as f64 / self.min_rate as f64);
        let rate_deadline = self.started + self.grace + earned;
        let by_rate = rate_deadline.saturating_duration_since(now);
        if by_rate < self.idle {
            (by_rate, true)
        } else {
            (self.idle, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_allows_the_grace_then_the_rate() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Pace::new(t0, s(10), 1000, s(30));
        // Nothing received: the grace is all there is.
        assert_eq!(p.next_wait(t0), (s(10), true));
        assert_eq!(p.next_wait(t0 + s(4)), (s(6), true));
        assert_eq!(p.next_wait(t0 + s(11)), (Duration::ZERO, true));
        // 5000 bytes buy 5 s more at 1000 B/s.
        p.received(5000);
        assert_eq!(p.next_wait(t0 + s(11)), (s(4), true));
        // Far ahead of the rate: the idle limit decides.
        p.received(1_000_000);
        assert_eq!(p.next_wait(t0 + s(11)), (s(30), false));
    }

    #[test]
    fn spares_keep_at_most_their_bound_and_come_back_clean() {
        let spares = Spares::new(64, 128, 1);
        let mut a = spares.take();
        let mut b = spares.take();
        assert!(a.up.is_empty(), "the upstream buffer is taken apart");
        a.up = spares.take_up();
        b.up = spares.take_up();
        a.out.extend_from_slice(b"stale");
        spares.put(a);
        spares.put(b);
        assert_eq!(spares.len(), 1);
        let c = spares.take();
        assert!(c.out.is_empty());
        assert_eq!((c.rb.len(), c.up.len()), (64, 0));
        assert_eq!(spares.take_up().len(), 128);
        assert!(spares.is_empty());
    }

    #[test]
    fn a_parked_buffer_takes_storage_and_first_bytes() {
        let mut rb = ReadBuf::parked();
        assert!(rb.is_parked());
        rb.attach(vec![0u8; 16].into_boxed_slice(), b"GET /");
        assert_eq!(rb.pending(), b"GET /");
        rb.consume(4);
        let storage = rb.detach();
        assert_eq!(storage.len(), 16);
        assert!(rb.is_parked() && rb.pending().is_empty());
    }
}
