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
pub mod json;
pub mod problem;
/// The value of one hex digit (either case), for chunk sizes and percent-escapes.
#[inline]
pub fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod proptests;
pub mod request;
pub mod response;
pub mod write;

pub use chunked::{ChunkedDecoder, ChunkedError, Decoded};
pub use headers::{HeaderKind, KnownHeaders};
pub use request::{HeadError, HeadLimits, Method, RequestHead, Version};
pub use response::{ResponseFraming, ResponseHead};

/// A byte range into a buffer that holds a message head. Heads are at most a few hundred KiB,
/// so u32 offsets keep header tables small.
///
/// A span is only made by [`Span::within`] (from a slice that lies inside the buffer),
/// [`Span::prefix`] of another span, or `Default` (empty): it cannot point outside the buffer
/// it was taken from, whatever a parser hands back for a peer's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The position of `part` inside `buf`, or `None` when `part` is not a sub-slice of `buf`
    /// (httparse hands back a static `""` for some fields, e.g. a reason phrase with obs-text).
    #[inline]
    pub fn within(buf: &[u8], part: &[u8]) -> Option<Span> {
        let start = (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        if end > buf.len() {
            return None;
        }
        Some(Span {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    /// The first `len` bytes of this span (all of it if it is shorter).
    #[inline]
    pub fn prefix(self, len: usize) -> Span {
        let len = u32::try_from(len)
            .unwrap_or(u32::MAX)
            .min(self.end - self.start);
        Span {
            start: self.start,
            end: self.start + len,
        }
    }

    /// The bytes of `buf` this span covers. `buf` must be the buffer the span was taken from
    /// (or one that starts with the same bytes); a shorter one yields nothing rather than a
    /// panic, which would abort every shard.
    #[inline]
    pub fn get(self, buf: &[u8]) -> &[u8] {
        let part = buf.get(self.start as usize..self.end as usize);
        debug_assert!(
            part.is_some(),
            "span {self:?} outside a {}-byte buffer",
            buf.len()
        );
        part.unwrap_or_default()
    }

    pub fn start(self) -> usize {
        self.start as usize
    }

    pub fn end(self) -> usize {
        self.end as usize
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
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

#[cfg(test)]
mod tests {
    use super::{is_tchar, Span};

    #[test]
    fn tchar_is_rfc_9110s_list() {
        // RFC 9110 section 5.6.2, as written there: the one definition every caller shares.
        for b in 0..=u8::MAX {
            let spec = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), spec, "byte {b:#04x}");
        }
    }

    #[test]
    fn spans_only_come_from_inside_the_buffer() {
        let buf = b"HTTP/1.1 200 OK\r\n".to_vec();
        let s = Span::within(&buf, &buf[9..12]).unwrap();
        assert_eq!(s.get(&buf), b"200");
        assert_eq!(s.prefix(2).get(&buf), b"20");
        assert_eq!(s.prefix(99), s);
        assert_eq!(Span::within(&buf, &buf[17..]).unwrap().len(), 0);
        // A static "" (what httparse returns for some absent fields) is not in the buffer.
        assert_eq!(Span::within(&buf, b""), None);
        assert_eq!(Span::within(&buf[..5], &buf[3..8]), None);
        assert_eq!(Span::within(&buf[5..], &buf[3..8]), None);
    }
}
