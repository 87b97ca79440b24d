//! HTTP/1.1 wire handling for the data plane: a strict request-head parser over httparse,
//! body framing (Content-Length, chunked), upstream response heads, head re-serialisation and
//! canned `application/problem+json` answers. Pure: no sockets, no clock, no glommio.
//!
//! It is deliberately stricter than httparse (which accepts bare LF, `#` and UTF-8 in the
//! target, and overflowing chunk sizes): everything that could let two parsers disagree about
//! where a message ends is refused here, before a byte reaches an upstream (DESIGN.md §8).

pub mod chunked;
pub mod date;
pub mod headers;
pub mod problem;
pub mod request;
pub mod response;
pub mod write;

pub use chunked::{ChunkedDecoder, ChunkedError, Decoded};
pub use headers::{HeaderKind, KnownHeaders};
pub use request::{HeadError, HeadLimits, Method, RequestHead, Version};
pub use response::{ResponseFraming, ResponseHead};

/// A byte range into a buffer that holds a message head. Heads are at most a few hundred KiB,
/// so u32 offsets keep header tables small.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub fn of(buf: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    #[inline]
    pub fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// How a message body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// Whether `b` is one of RFC 9110's `tchar`s (header names, methods, tokens).
#[inline]
pub fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Whether `value` is a valid field value: visible ASCII, SP, HTAB and obs-text; no CTL, no DEL.
#[inline]
pub fn is_valid_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}
