//! The byte stream a client connection runs on. The pipeline is generic over it: plain TCP
//! today, and TLS (rustls over the same socket) as a second implementation, with no change
//! to the steps. Reads and writes are the `futures` traits; deadlines are set per operation.

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::io;
use std::time::Duration;

/// A stream with per-operation deadlines: a read or write that finds the peer silent for
/// longer fails with `TimedOut`.
pub trait Stream: AsyncRead + AsyncWrite + Unpin {
    fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()>;
}

impl Stream for TcpStream {
    fn set_read_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, dur).map_err(io::Error::from)
    }

    fn set_write_timeout(&self, dur: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, dur).map_err(io::Error::from)
    }
}
