//! Reading a request head: deadlines (slowloris), the idle wait without buffers, and parsing
//! only when a line ends or a limit is crossed.

use super::{Conn, ShardCtx, ShardState};
use crate::error::Problem;
use crate::http::HeadError;
use crate::stream::Stream;
use futures_lite::AsyncReadExt;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What an idle connection reads its next request's first bytes into, before it takes
/// buffers from the shard's spares (most request heads fit whole).
const LOBBY: usize = 512;

/// How reading a head ended.
pub(super) enum HeadRead {
    Ready,
    /// Clean end: the client closed or idled out between requests.
    Closed,
    Refused(HeadError),
}

/// Reads until a whole head is buffered and parsed; returns the configuration the request
/// runs on with the verdict. On a new connection the whole head must arrive within the head
/// timeout of the accept; between requests the first byte may take up to the keep-alive
/// idle time, and the head timeout starts when that byte is here (however the rest is
/// trickled in). An idle connection reads its first bytes into a small stack array and
/// takes its buffers only then, and takes the configuration only then: a connection idle
/// across reloads holds none of them, and its next request runs on the newest.
pub(super) async fn read_head<S: Stream>(
    state: &ShardState,
    conn: &mut Conn<S>,
    first: bool,
) -> (Rc<ShardCtx>, HeadRead) {
    let mut deadline: Option<Instant> =
        first.then(|| Instant::now() + state.current().shared.config.timeouts.head);
    let mut lobby = [0u8; LOBBY];
    let mut n = 0;
    if conn.rb.is_parked() {
        match first_bytes(state, conn, &mut lobby, deadline).await {
            Ok(k) => n = k,
            Err(done) => return (state.current(), done),
        }
    }
    let ctx = state.current();
    let t = &ctx.shared.config.timeouts;
    if conn.rb.is_parked() {
        deadline.get_or_insert_with(|| Instant::now() + t.head);
        if let Some(done) = read_in_lobby(&ctx, conn, &mut deadline, lobby, n).await {
            return (ctx, done);
        }
    }
    let verdict = read_buffered(&ctx, conn, deadline).await;
    (ctx, verdict)
}

/// Reads the rest of a head in the connection's buffer.
async fn read_buffered<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
    mut deadline: Option<Instant>,
) -> HeadRead {
    let t = &ctx.shared.config.timeouts;
    // Pending bytes already looked at: a head trickled a byte at a time is parsed once per
    // line, not once per byte (which would cost the gateway quadratic work per head).
    let mut seen = 0usize;
    loop {
        let pending = conn.rb.pending();
        if pending.len() > seen && worth_parsing(pending, seen, &ctx.shared.head_limits) {
            match conn
                .head
                .parse(pending, &ctx.shared.head_limits, &ctx.shared.known)
            {
                Ok(true) => return HeadRead::Ready,
                Ok(false) => {}
                Err(e) => return HeadRead::Refused(e),
            }
        }
        seen = pending.len();
        let now = Instant::now();
        if deadline.is_none() && !conn.rb.pending().is_empty() {
            // The head has begun (pipelined): it has the head timeout.
            deadline = Some(now + t.head);
        }
        let wait = match deadline {
            Some(d) if now >= d => return head_timed_out(conn),
            Some(d) => d - now,
            None => t.keepalive_idle,
        };
        match conn.rb.fill(&mut conn.stream, wait).await {
            Ok(0) => return HeadRead::Closed,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return head_timed_out(conn),
            Err(_) => return HeadRead::Closed,
        }
    }
}

/// Waits for the first bytes of a request on a connection without buffers, holding no
/// configuration meanwhile: up to the keep-alive idle time, or `deadline` on a new
/// connection. `Err`: the connection ended quietly (closed, reset or idle too long).
async fn first_bytes<S: Stream>(
    state: &ShardState,
    conn: &mut Conn<S>,
    lobby: &mut [u8; LOBBY],
    deadline: Option<Instant>,
) -> Result<usize, HeadRead> {
    let idle = state.current().shared.config.timeouts.keepalive_idle;
    let wait = match deadline {
        Some(d) => d.saturating_duration_since(Instant::now()),
        None => idle,
    };
    let _ = conn
        .stream
        .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
    match conn.stream.read(lobby).await {
        Ok(0) | Err(_) => Err(HeadRead::Closed),
        Ok(k) => Ok(k),
    }
}

/// Reads a head into a small stack array while it fits there: a whole head usually arrives
/// in one read and a slowloris trickle never outgrows it, so neither takes the connection's
/// buffers until it must. The bytes go to the client buffer (with the same offsets, so a head
/// parsed here stays parsed) when the head is complete, refused, or outgrows the array;
/// `Some` is then the verdict, `None` means "read on in the buffer". `n` bytes are in the
/// lobby already.
async fn read_in_lobby<S: Stream>(
    ctx: &ShardCtx,
    conn: &mut Conn<S>,
    deadline: &mut Option<Instant>,
    mut lobby: [u8; LOBBY],
    mut n: usize,
) -> Option<HeadRead> {
    let t = &ctx.shared.config.timeouts;
    let limits = &ctx.shared.head_limits;
    let mut seen = 0usize;
    let verdict = loop {
        if n == LOBBY {
            break None;
        }
        if n > seen && worth_parsing(&lobby[..n], seen, limits) {
            match conn.head.parse(&lobby[..n], limits, &ctx.shared.known) {
                Ok(true) => break Some(HeadRead::Ready),
                Ok(false) => {}
                Err(e) => break Some(HeadRead::Refused(e)),
            }
        }
        seen = n;
        let now = Instant::now();
        let wait = match *deadline {
            Some(d) if now >= d => return Some(lobby_timed_out(n)),
            Some(d) => d - now,
            None => t.keepalive_idle,
        };
        let _ = conn
            .stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        match conn.stream.read(&mut lobby[n..]).await {
            Ok(0) => return Some(HeadRead::Closed),
            Ok(k) => {
                n += k;
                deadline.get_or_insert_with(|| Instant::now() + t.head);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Some(lobby_timed_out(n)),
            // A reset: a quiet end.
            Err(_) => return Some(HeadRead::Closed),
        }
    };
    conn.unpark(ctx, &lobby[..n]);
    verdict
}

/// The head timeout in the lobby: nothing sent is a quiet close, a partial head 408.
fn lobby_timed_out(received: usize) -> HeadRead {
    if received == 0 {
        HeadRead::Closed
    } else {
        HeadRead::Refused(timeout_error())
    }
}

/// Whether `pending` (of which the first `seen` bytes were parsed before, incomplete) may
/// now parse differently: a line ended, or a size limit was crossed.
fn worth_parsing(pending: &[u8], seen: usize, limits: &crate::http::HeadLimits) -> bool {
    let crossed = |limit: usize| seen <= limit && pending.len() > limit;
    seen == 0
        || memchr::memchr(b'\n', &pending[seen..]).is_some()
        || crossed(limits.max_request_line)
        || crossed(limits.max_head_bytes)
}

/// Time is up: a connection that sent nothing of a head is closed quietly, else 408.
fn head_timed_out<S: Stream>(conn: &Conn<S>) -> HeadRead {
    if conn.rb.pending().is_empty() {
        HeadRead::Closed
    } else {
        HeadRead::Refused(timeout_error())
    }
}

fn timeout_error() -> HeadError {
    HeadError {
        problem: Problem::RequestTimeout,
        detail: "request head not received in time",
    }
}

#[cfg(test)]
mod tests {
    use super::worth_parsing;
    use crate::http::HeadLimits;

    #[test]
    fn a_trickled_head_is_parsed_at_line_ends_and_limits_only() {
        let limits = HeadLimits {
            max_request_line: 16,
            max_head_bytes: 32,
            max_headers: 10,
        };
        let head = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
        let parses: Vec<usize> = (1..=head.len())
            .filter(|&n| worth_parsing(&head[..n], n - 1, &limits))
            .collect();
        // The first byte, then each LF: 4 parses for 28 bytes, not 28.
        assert_eq!(parses, vec![1, 17, 26, 28]);
        // A line that never ends is parsed when it crosses each limit, then not again.
        let long = [b'a'; 40];
        let crossings: Vec<usize> = (1..=long.len())
            .filter(|&n| worth_parsing(&long[..n], n - 1, &limits))
            .collect();
        assert_eq!(crossings, vec![1, 17, 33]);
    }
}
