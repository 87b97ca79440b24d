//! Streaming decoder for HTTP/1.1 `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1), fed arbitrary slices, never buffering the body.

use std::ops::Range;

/// Longest chunk-size in hex digits (16 digits = 64 bits).
const MAX_SIZE_DIGITS: u32 = 16;
/// Bound on the bytes of chunk extensions per chunk-size line.
const MAX_EXT_LEN: usize = 4096;
/// Bound on the total bytes of the trailer section.
const MAX_TRAILER_LEN: usize = 64 * 1024;

/// Why a chunked body was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk-size line without hex digits or with an invalid byte.
    BadSize,
    /// A chunk size that does not fit in 64 bits.
    SizeOverflow,
    /// CR not followed by LF, or chunk data not followed by CRLF.
    BadLineEnd,
    /// Chunk extensions longer than the bound.
    ExtTooLong,
    /// Trailer section longer than the bound.
    TrailerTooLong,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            ChunkError::BadSize => "malformed chunk size",
            ChunkError::SizeOverflow => "chunk size overflows 64 bits",
            ChunkError::BadLineEnd => "malformed chunk line ending",
            ChunkError::ExtTooLong => "chunk extension too long",
            ChunkError::TrailerTooLong => "chunked trailer too long",
        };
        f.write_str(what)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size; `digits` read so far.
    Size { value: u64, digits: u32 },
    /// After the digits: optional whitespace then `;ext` or CR.
    SizeTail { value: u64 },
    /// Inside chunk extensions, skipping until CR.
    Ext { value: u64 },
    /// Saw CR ending a size line; expecting LF.
    SizeLf { value: u64 },
    /// Inside chunk data with `remaining` bytes left.
    Data { remaining: u64 },
    /// After chunk data; expecting CR.
    DataCr,
    /// After chunk data and CR; expecting LF.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line, skipping until CR.
    TrailerLine,
    /// Saw CR ending a trailer field line; expecting LF.
    TrailerLineLf,
    /// Saw CR of the final empty line; expecting LF.
    FinalLf,
    /// The whole body, trailers included, has been consumed.
    Done,
}

/// One decoding step: how much input was consumed, which part of it is body data, whether the body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the input consumed (framing and data); the caller drops them.
    pub consumed: usize,
    /// Range of the input holding body data (possibly empty); always ends at or before `consumed`.
    pub data: Range<usize>,
    /// The terminating chunk and trailers were fully consumed; bytes after `consumed` belong to the next message.
    pub done: bool,
}

/// Incremental chunked decoder. Feed it whatever bytes are available; it never looks past the end of the body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    ext_len: usize,
    trailer_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn hex_val(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
            },
            ext_len: 0,
            trailer_len: 0,
        }
    }

    /// True once the terminating chunk and trailer section were consumed.
    #[cfg(test)]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, stopping after the first run of body data, at the end of the body, or when the input is used up.
    /// With non-empty input and an unfinished body, at least one byte is consumed.
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { value, digits } => {
                    if let Some(v) = hex_val(b) {
                        if digits >= MAX_SIZE_DIGITS {
                            return Err(ChunkError::SizeOverflow);
                        }
                        let value = value
                            .checked_mul(16)
                            .and_then(|x| x.checked_add(v))
                            .ok_or(ChunkError::SizeOverflow)?;
                        self.state = State::Size {
                            value,
                            digits: digits + 1,
                        };
                    } else if digits == 0 {
                        return Err(ChunkError::BadSize);
                    } else {
                        self.state = State::SizeTail { value };
                        continue; // re-examine this byte in SizeTail
                    }
                }
                State::SizeTail { value } => match b {
                    b' ' | b'\t' => {}
                    b';' => {
                        self.ext_len = 0;
                        self.state = State::Ext { value };
                    }
                    b'\r' => self.state = State::SizeLf { value },
                    _ => return Err(ChunkError::BadSize),
                },
                State::Ext { value } => {
                    if b == b'\r' {
                        self.state = State::SizeLf { value };
                    } else if b == b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    } else {
                        self.ext_len += 1;
                        if self.ext_len > MAX_EXT_LEN {
                            return Err(ChunkError::ExtTooLong);
                        }
                    }
                }
                State::SizeLf { value } => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = if value == 0 {
                        self.trailer_len = 0;
                        State::TrailerStart
                    } else {
                        State::Data { remaining: value }
                    };
                }
                State::Data { remaining } => {
                    let avail = (input.len() - i) as u64;
                    let take = remaining.min(avail);
                    let left = remaining - take;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
                    };
                    let end = i + take as usize;
                    return Ok(Step {
                        consumed: end,
                        data: i..end,
                        done: false,
                    });
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Size {
                        value: 0,
                        digits: 0,
                    };
                }
                State::TrailerStart => {
                    self.bump_trailer()?;
                    self.state = match b {
                        b'\r' => State::FinalLf,
                        b'\n' => return Err(ChunkError::BadLineEnd),
                        _ => State::TrailerLine,
                    };
                }
                State::TrailerLine => {
                    self.bump_trailer()?;
                    match b {
                        b'\r' => self.state = State::TrailerLineLf,
                        b'\n' => return Err(ChunkError::BadLineEnd),
                        _ => {}
                    }
                }
                State::TrailerLineLf => {
                    self.bump_trailer()?;
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::TrailerStart;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnd);
                    }
                    self.state = State::Done;
                    return Ok(Step {
                        consumed: i + 1,
                        data: 0..0,
                        done: true,
                    });
                }
                State::Done => {
                    return Ok(Step {
                        consumed: i,
                        data: 0..0,
                        done: true,
                    });
                }
            }
            i += 1;
        }
        Ok(Step {
            consumed: i,
            data: 0..0,
            done: self.state == State::Done,
        })
    }

    fn bump_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER_LEN {
            return Err(ChunkError::TrailerTooLong);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes; returns (body, bytes consumed).
    fn decode_all(input: &[u8], piece: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut pos = 0;
        let mut fed_end = 0;
        for _ in 0..input.len() * 4 + 4 {
            if pos == fed_end {
                if fed_end == input.len() {
                    break;
                }
                fed_end = (fed_end + piece).min(input.len());
            }
            let step = d.decode(&input[pos..fed_end])?;
            body.extend_from_slice(&input[pos..fed_end][step.data.clone()]);
            pos += step.consumed;
            if step.done {
                assert!(d.is_done());
                return Ok((body, pos));
            }
        }
        panic!("body did not finish; got {} bytes", body.len());
    }

    #[test]
    fn simple_body_any_split() {
        let msg = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\nNEXT";
        for piece in 1..msg.len() {
            let (body, used) = decode_all(msg, piece).unwrap();
            assert_eq!(body, b"hello, world", "piece {piece}");
            assert_eq!(&msg[used..], b"NEXT");
        }
    }

    #[test]
    fn hex_sizes_extensions_and_trailers() {
        let mut msg = b"A;name=value;x\r\n0123456789\r\n1b \t\r\n".to_vec();
        msg.extend_from_slice(&[b'z'; 27]);
        msg.extend_from_slice(b"\r\n0;last\r\nX-Trailer: 1\r\nOther: 2\r\n\r\n");
        for piece in [1, 2, 3, 7, 1000] {
            let (body, used) = decode_all(&msg, piece).unwrap();
            assert_eq!(body.len(), 37);
            assert_eq!(&body[..10], b"0123456789");
            assert_eq!(used, msg.len());
        }
    }

    #[test]
    fn empty_body() {
        let (body, used) = decode_all(b"0\r\n\r\n", 1).unwrap();
        assert!(body.is_empty());
        assert_eq!(used, 5);
    }

    #[test]
    fn rejects_malformed() {
        let bad: &[&[u8]] = &[
            b"\r\n",                     // no digits
            b"g\r\n",                    // not hex
            b"-1\r\n",                   // sign
            b"5\nhello\r\n0\r\n\r\n",    // bare LF after size
            b"5\r\nhelloX\r\n0\r\n\r\n", // data longer than size
            b"5\r\nhello\rX",            // CR not followed by LF
            b"0\r\n\n",                  // bare LF final line
            b"0\r\nX: 1\n\r\n",          // bare LF in trailer
            b"5 x\r\n",                  // junk after size
            b"5;a\nb\r\n",               // LF inside extension
        ];
        for msg in bad {
            assert!(
                decode_all(msg, 1).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(msg)
            );
        }
    }

    #[test]
    fn rejects_overflow() {
        assert_eq!(
            decode_all(b"10000000000000000\r\n", 64).unwrap_err(),
            ChunkError::SizeOverflow
        );
        // 16 digits is fine as a size (we only check framing here).
        let mut d = ChunkedDecoder::new();
        assert!(d.decode(b"ffffffffffffffff\r\nab").is_ok());
    }

    #[test]
    fn rejects_long_extension_and_trailer() {
        let mut msg = b"1;".to_vec();
        msg.extend(std::iter::repeat_n(b'e', MAX_EXT_LEN + 1));
        assert_eq!(decode_all(&msg, 512).unwrap_err(), ChunkError::ExtTooLong);

        let mut msg = b"0\r\n".to_vec();
        for _ in 0..(MAX_TRAILER_LEN / 10 + 1) {
            msg.extend_from_slice(b"X-T: abc\r\n");
        }
        assert_eq!(
            decode_all(&msg, 4096).unwrap_err(),
            ChunkError::TrailerTooLong
        );
    }

    #[test]
    fn data_step_never_crosses_chunk_boundary() {
        let mut d = ChunkedDecoder::new();
        let input = b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
        let s = d.decode(input).unwrap();
        assert_eq!(&input[s.data.clone()], b"abc");
        assert_eq!(s.consumed, 6);
        assert!(!s.done);
    }

    #[test]
    fn done_decoder_consumes_nothing_more() {
        let mut d = ChunkedDecoder::new();
        let s = d.decode(b"0\r\n\r\n").unwrap();
        assert!(s.done);
        let s = d.decode(b"GET").unwrap();
        assert_eq!(s.consumed, 0);
        assert!(s.done);
    }
}
