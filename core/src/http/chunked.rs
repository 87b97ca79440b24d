//! A strict, incremental decoder for the chunked transfer coding (RFC 9112 §7.1), and the
//! chunk-header encoder used when re-framing a body.
//!
//! The decoder is fed whatever bytes have arrived and hands back body data as ranges of that
//! input, so a body streams through without being copied or buffered whole. It refuses what
//! httparse's `parse_chunk_size` lets through: an empty size, more than 16 hex digits, bare LF,
//! whitespace not followed by an extension, and data not followed by CRLF. Trailer fields are
//! read, checked for line endings and a size cap, and dropped (they are not forwarded).

/// Trailer section size cap: a client cannot make us read an endless trailer.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    EmptySize,
    SizeTooLong,
    BadSizeByte,
    BadExtension,
    BadLineEnding,
    MissingDataCrlf,
    TrailerTooLarge,
}

impl ChunkedError {
    pub fn detail(self) -> &'static str {
        match self {
            ChunkedError::EmptySize => {
                "chunk size missing: a chunk line must start with hex digits"
            }
            ChunkedError::SizeTooLong => "chunk size longer than 16 hex digits",
            ChunkedError::BadSizeByte => "chunk size is not hexadecimal",
            ChunkedError::BadExtension => "invalid chunk extension",
            ChunkedError::BadLineEnding => "chunk line not ended by CRLF",
            ChunkedError::MissingDataCrlf => "chunk data not followed by CRLF",
            ChunkedError::TrailerTooLarge => "chunked trailer section too large",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    /// Whitespace after the size: only an extension may follow.
    SizeWs,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// What one call to [`ChunkedDecoder::decode`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input consumed (framing and data).
    pub consumed: usize,
    /// Body data found, as a range of the input.
    pub data: Option<(usize, usize)>,
    /// The final chunk and trailer section have been read: the body is complete.
    pub done: bool,
}

#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: u8,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            trailer_bytes: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input` until it yields data, finishes, or runs out of input.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size => match super::hex_digit(b) {
                    Some(d) => {
                        if self.digits == 16 {
                            return Err(ChunkedError::SizeTooLong);
                        }
                        self.digits += 1;
                        self.size = (self.size << 4) | u64::from(d);
                    }
                    None => {
                        if self.digits == 0 {
                            return Err(ChunkedError::EmptySize);
                        }
                        self.state = match b {
                            b'\r' => State::SizeLf,
                            b';' => State::Extension,
                            b' ' | b'\t' => State::SizeWs,
                            b'\n' => return Err(ChunkedError::BadLineEnding),
                            _ => return Err(ChunkedError::BadSizeByte),
                        };
                    }
                },
                State::SizeWs => match b {
                    b' ' | b'\t' => {}
                    b';' => self.state = State::Extension,
                    _ => return Err(ChunkedError::BadExtension),
                },
                State::Extension => match b {
                    b'\r' => self.state = State::SizeLf,
                    b'\t' | b' '..=b'~' | 0x80..=0xff => {}
                    _ => return Err(ChunkedError::BadExtension),
                },
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::BadLineEnding);
                    }
                    self.digits = 0;
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let n = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Decoded {
                        consumed: i + n,
                        data: Some((i, i + n)),
                        done: false,
                    });
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkedError::MissingDataCrlf);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::MissingDataCrlf);
                    }
                    self.state = State::Size;
                }
                State::TrailerStart | State::TrailerLine => {
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_TRAILER_BYTES {
                        return Err(ChunkedError::TrailerTooLarge);
                    }
                    let empty = self.state == State::TrailerStart;
                    self.state = match b {
                        b'\r' => State::TrailerLf { empty },
                        b'\n' => return Err(ChunkedError::BadLineEnding),
                        _ => State::TrailerLine,
                    };
                }
                State::TrailerLf { empty } => {
                    if b != b'\n' {
                        return Err(ChunkedError::BadLineEnding);
                    }
                    if empty {
                        self.state = State::Done;
                        return Ok(Decoded {
                            consumed: i + 1,
                            data: None,
                            done: true,
                        });
                    }
                    self.state = State::TrailerStart;
                }
                State::Done => break,
            }
            i += 1;
        }
        Ok(Decoded {
            consumed: i,
            data: None,
            done: self.state == State::Done,
        })
    }
}

/// Writes the chunk header for `len` data bytes (`{len:x}\r\n`) into `out`; returns its length.
pub fn chunk_header(len: usize, out: &mut [u8; 18]) -> usize {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    let d = &digits[i..];
    out[..d.len()].copy_from_slice(d);
    out[d.len()..d.len() + 2].copy_from_slice(b"\r\n");
    d.len() + 2
}

/// The last chunk with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// What decoding a chunked body found, driven as the relay drives the decoder: the body, the
/// body re-chunked for the client, whether the last chunk and trailers were read, and how
/// many bytes were left after them.
#[derive(Debug)]
pub struct Relayed {
    pub body: Vec<u8>,
    pub rechunked: Vec<u8>,
    pub done: bool,
    pub left: usize,
}

/// The reference use of the decoder that the property tests and the `chunked_response` fuzz
/// target check against: `parts` arrive one after another and whatever is pending is decoded
/// until it is used up or the body ends, as `relay_body` does; data is re-framed with
/// `push_chunk`. Not for the request path (it allocates). Panics when the decoder breaks its
/// contract: a data range outside what it consumed, or no progress on pending bytes.
pub fn relay_model<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Result<Relayed, ChunkedError> {
    use super::write::push_chunk;
    let mut dec = ChunkedDecoder::new();
    let (mut pending, mut body, mut rechunked) = (Vec::new(), Vec::new(), Vec::new());
    for part in parts {
        pending.extend_from_slice(part);
        while !pending.is_empty() && !dec.is_done() {
            let d = dec.decode(&pending)?;
            assert!(d.consumed <= pending.len());
            assert!(
                d.consumed > 0 || d.done,
                "no progress on {} bytes",
                pending.len()
            );
            if let Some((a, b)) = d.data {
                assert!(a < b && b <= d.consumed, "{a}..{b} of {}", d.consumed);
                body.extend_from_slice(&pending[a..b]);
                push_chunk(&mut rechunked, &pending[a..b]);
            }
            pending.drain(..d.consumed);
        }
    }
    if dec.is_done() {
        rechunked.extend_from_slice(LAST_CHUNK);
    }
    Ok(Relayed {
        body,
        rechunked,
        done: dec.is_done(),
        left: pending.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the body or the error.
    fn decode_all(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), ChunkedError> {
        let mut dec = ChunkedDecoder::new();
        let mut body = Vec::new();
        let mut fed = 0;
        let mut pos = 0;
        while pos < input.len() && !dec.is_done() {
            fed = (fed + step).min(input.len()).max(pos + 1);
            let window = &input[pos..fed];
            let mut off = 0;
            while off < window.len() {
                let d = dec.decode(&window[off..])?;
                if let Some((a, b)) = d.data {
                    body.extend_from_slice(&window[off + a..off + b]);
                }
                off += d.consumed;
                if d.done || d.consumed == 0 {
                    break;
                }
            }
            pos += off;
        }
        Ok((body, dec.is_done()))
    }

    #[test]
    fn decodes_in_any_split() {
        let input = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";
        for step in 1..input.len() {
            let (body, done) = decode_all(input, step).unwrap();
            assert_eq!(body, b"hello, world", "step {step}");
            assert!(done);
        }
    }

    #[test]
    fn stops_at_the_end_of_the_body() {
        let input = b"1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let mut dec = ChunkedDecoder::new();
        let mut off = 0;
        loop {
            let d = dec.decode(&input[off..]).unwrap();
            off += d.consumed;
            if d.done {
                break;
            }
        }
        assert_eq!(&input[off..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn refuses_bad_framing() {
        for (input, err) in [
            (&b"\r\n"[..], ChunkedError::EmptySize),
            (b";x\r\n", ChunkedError::EmptySize),
            (b"g\r\n", ChunkedError::EmptySize),
            (b"1g\r\n", ChunkedError::BadSizeByte),
            (b"10000000000000000\r\n", ChunkedError::SizeTooLong),
            (b"ffffffffffffffff1\r\n", ChunkedError::SizeTooLong),
            (b"5\nhello\r\n", ChunkedError::BadLineEnding),
            (b"5\rhello", ChunkedError::BadLineEnding),
            (b"5\r\nhelloXX", ChunkedError::MissingDataCrlf),
            (b"5\r\nhello\rX", ChunkedError::MissingDataCrlf),
            (b"5 \r\nhello\r\n", ChunkedError::BadExtension),
            (b"5;a\x01\r\n", ChunkedError::BadExtension),
            (b"0\r\nX: 1\n\r\n", ChunkedError::BadLineEnding),
            (b"-1\r\n", ChunkedError::EmptySize),
            (b"0x5\r\n", ChunkedError::BadSizeByte),
        ] {
            assert_eq!(
                decode_all(input, input.len()).map(|_| ()),
                Err(err),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn trailer_is_capped() {
        let mut input = b"0\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_TRAILER_BYTES + 10));
        assert_eq!(
            decode_all(&input, 4096).map(|_| ()),
            Err(ChunkedError::TrailerTooLarge)
        );
    }

    #[test]
    fn sixteen_digit_sizes_do_not_overflow() {
        let mut dec = ChunkedDecoder::new();
        let d = dec.decode(b"ffffffffffffffff\r\nab").unwrap();
        assert_eq!(d.data, Some((18, 20)));
    }

    #[test]
    fn chunk_headers() {
        let mut out = [0u8; 18];
        let n = chunk_header(0x1a2b, &mut out);
        assert_eq!(&out[..n], b"1a2b\r\n");
        let n = chunk_header(0, &mut out);
        assert_eq!(&out[..n], b"0\r\n");
        let n = chunk_header(usize::MAX, &mut out);
        assert_eq!(&out[..n], b"ffffffffffffffff\r\n");
    }
}
