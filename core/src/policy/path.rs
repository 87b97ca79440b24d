//! The one path a request is judged by, and forwarded with.
//!
//! Routes and scopes match the path as [`judge`] leaves it, and the upstream receives that
//! path (with the client's query), so no spelling can mean one path here and another there:
//!
//! - refused (400 `bad_request`): a backslash; `%2F`, `%5C` (encoded `/`, `\`); `%3B` (an
//!   encoded `;`: some upstreams split parameters on it, some do not); a `%` not followed by
//!   two hex digits; a dot-segment (`.` or `..`, also spelled `%2e`, and also with parameters:
//!   `..;x` is `..` to a servlet container); parameters on an empty segment (`/;x`).
//! - decoded: percent-encoded unreserved characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`; RFC
//!   3986 §6.2.2.2): `/v1/%6Frders` is `/v1/orders`. Every other escape is kept as the client
//!   wrote it, hex case included (`%3f` stays `%3f`): decoding it would change its meaning.
//! - merged: empty segments inside the path (`/v1//orders` is `/v1/orders`); a trailing slash
//!   stays (`/v1/` and `/v1` are different paths).
//! - path parameters (`;` in a segment): the judged path drops each segment's `;...` (as
//!   servlet containers do); the caller refuses them unless the route allows them, and then
//!   forwards them (the forwarded path is the judged one with the parameters in place).
//!
//! One pass over the bytes; nothing is written (and nothing allocated) unless the path changes.

use crate::error::Problem;
use crate::http::{hex_digit as hex, HeadError};

/// What [`judge`] found and wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Judged {
    /// Some segment carries `;parameters`.
    pub params: bool,
    /// `judged` holds the judged path; otherwise it is the client's path unchanged.
    pub judged_rewritten: bool,
    /// `forward` holds the path to forward; otherwise it is the client's path unchanged.
    pub forward_rewritten: bool,
}

/// Detail of the refusal of path parameters on a route that does not allow them.
pub const PARAMS_REFUSED: &str =
    "path parameters (';' in a segment) are not allowed on this route; send the path without them";

fn bad(detail: &'static str) -> HeadError {
    HeadError {
        problem: Problem::BadRequest,
        detail,
    }
}

/// Judges `path` (origin-form, without the query). `judged` and `forward` are cleared, and
/// written only when the judged or the forwarded path differs from `path`.
pub fn judge(
    path: &[u8],
    judged: &mut Vec<u8>,
    forward: &mut Vec<u8>,
) -> Result<Judged, HeadError> {
    judged.clear();
    forward.clear();
    if path.first() != Some(&b'/') {
        return Err(bad(
            "request path does not start with '/'; send an origin-form target such as /v1/x",
        ));
    }
    if is_plain(path) {
        return Ok(Judged::default());
    }
    judge_general(path, judged, forward)
}

/// [`judge`] for any path (`judged` and `forward` empty, `path` starting with '/').
fn judge_general(
    path: &[u8],
    judged: &mut Vec<u8>,
    forward: &mut Vec<u8>,
) -> Result<Judged, HeadError> {
    let mut out = Judged::default();
    let n = path.len();
    // `at` is the '/' that starts the current segment.
    let mut at = 0;
    while at < n {
        let seg = scan(path, at + 1)?;
        out.params |= seg.params;
        let merged = seg.end == at + 1 && seg.end < n;
        if merged {
            // An empty segment inside the path: both forms drop it.
            start(&mut out.judged_rewritten, judged, &path[..at]);
            start(&mut out.forward_rewritten, forward, &path[..at]);
        } else {
            let name = &path[at + 1..seg.name_end];
            if seg.dots_only && (seg.dots == 1 || seg.dots == 2) {
                return Err(bad(
                    "dot-segment ('.' or '..', also encoded or with ';' parameters) in the path; send the path resolved, without them",
                ));
            }
            if seg.params && name.is_empty() {
                return Err(bad(
                    "path parameters (';') on an empty segment; remove the '/;...' from the path",
                ));
            }
            if seg.params || seg.decode_name {
                start(&mut out.judged_rewritten, judged, &path[..at]);
            }
            if out.judged_rewritten {
                judged.push(b'/');
                emit(judged, name, seg.decode_name);
            }
            if seg.decode_name || seg.decode_params {
                start(&mut out.forward_rewritten, forward, &path[..at]);
            }
            if out.forward_rewritten {
                forward.push(b'/');
                emit(
                    forward,
                    &path[at + 1..seg.end],
                    seg.decode_name || seg.decode_params,
                );
            }
        }
        at = seg.end;
    }
    Ok(out)
}

/// Byte classes for [`is_plain`]: 0 ordinary, 1 `/`, 2 needs a closer look (`%`, `;`, `\`).
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'/' as usize] = 1;
    t[b'%' as usize] = 2;
    t[b';' as usize] = 2;
    t[b'\\' as usize] = 2;
    t
};

/// The common case, in one tight pass: no escape, no `;`, no backslash, no dot-segment and no
/// empty segment but a trailing one. Such a path is judged and forwarded as it is.
fn is_plain(path: &[u8]) -> bool {
    let dots = |seg: &[u8]| seg.len() <= 2 && !seg.is_empty() && seg.iter().all(|&b| b == b'.');
    let mut seg_start = 1;
    for (i, &b) in path.iter().enumerate().skip(1) {
        match CLASS[b as usize] {
            0 => {}
            1 => {
                let seg = &path[seg_start..i];
                if seg.is_empty() || dots(seg) {
                    return false;
                }
                seg_start = i + 1;
            }
            _ => return false,
        }
    }
    !dots(&path[seg_start..])
}

/// The path to route and authorise by, for a target whose path is `target[..path_len]`.
/// When it differs from the client's, it is in `judged`; when the path to forward differs,
/// `forward` holds the whole target to forward (that path and the client's query), else
/// `forward` is left empty (forward the client's target).
pub fn judge_target<'a>(
    target: &'a [u8],
    path_len: usize,
    judged: &'a mut Vec<u8>,
    forward: &mut Vec<u8>,
) -> Result<(&'a [u8], Judged), HeadError> {
    let path = &target[..path_len];
    let j = judge(path, judged, forward)?;
    if j.forward_rewritten {
        forward.extend_from_slice(&target[path_len..]);
    }
    let judged: &'a [u8] = if j.judged_rewritten { judged } else { path };
    Ok((judged, j))
}

/// Starts writing `buf` (once): the output so far is `prefix`, unchanged.
fn start(rewritten: &mut bool, buf: &mut Vec<u8>, prefix: &[u8]) {
    if !*rewritten {
        buf.extend_from_slice(prefix);
        *rewritten = true;
    }
}

/// One segment as scanned from `start` (the byte after its '/') to `end` (the next '/' or
/// the end of the path).
struct Segment {
    end: usize,
    /// End of the segment's name: the first ';', else `end`.
    name_end: usize,
    /// The name is only dots once `%2e` is decoded; `dots` of them.
    dots_only: bool,
    dots: usize,
    params: bool,
    /// An unreserved character is percent-encoded in the name, or in the parameters.
    decode_name: bool,
    decode_params: bool,
}

fn scan(path: &[u8], start: usize) -> Result<Segment, HeadError> {
    let mut s = Segment {
        end: path.len(),
        name_end: path.len(),
        dots_only: true,
        dots: 0,
        params: false,
        decode_name: false,
        decode_params: false,
    };
    let mut i = start;
    while i < path.len() {
        match path[i] {
            b'/' => break,
            b'\\' => return Err(bad("backslash in the path; separate segments with '/'")),
            b';' => {
                if !s.params {
                    s.params = true;
                    s.name_end = i;
                }
            }
            b'%' => {
                let v = match (path.get(i + 1), path.get(i + 2)) {
                    (Some(&h), Some(&l)) => match (hex(h), hex(l)) {
                        (Some(h), Some(l)) => h << 4 | l,
                        _ => return Err(malformed()),
                    },
                    _ => return Err(malformed()),
                };
                match v {
                    b'/' | b'\\' => return Err(bad(
                        "encoded '/' or '\\' (%2F, %5C) in the path; send the path without them",
                    )),
                    b';' => {
                        return Err(bad(
                            "encoded ';' (%3B) in the path is ambiguous; send the path without it",
                        ))
                    }
                    _ => {}
                }
                let unreserved = is_unreserved(v);
                if s.params {
                    s.decode_params |= unreserved;
                } else {
                    s.decode_name |= unreserved;
                    note_name_byte(&mut s, v);
                }
                i += 2;
            }
            b => {
                if !s.params {
                    note_name_byte(&mut s, b);
                }
            }
        }
        i += 1;
    }
    s.end = i;
    if !s.params {
        s.name_end = i;
    }
    Ok(s)
}

fn note_name_byte(s: &mut Segment, b: u8) {
    if b == b'.' {
        s.dots += 1;
    } else {
        s.dots_only = false;
    }
}

fn malformed() -> HeadError {
    bad("malformed percent-encoding in the path; '%' must be followed by two hex digits (a literal '%' is %25)")
}

/// Writes `seg`, decoding escapes of unreserved characters when `decode` (escapes are
/// known to be well-formed: [`scan`] checked them).
fn emit(out: &mut Vec<u8>, seg: &[u8], decode: bool) {
    if !decode {
        out.extend_from_slice(seg);
        return;
    }
    let mut i = 0;
    while i < seg.len() {
        if seg[i] == b'%' {
            let v = hex(seg[i + 1]).unwrap_or(0) << 4 | hex(seg[i + 2]).unwrap_or(0);
            if is_unreserved(v) {
                out.push(v);
            } else {
                out.extend_from_slice(&seg[i..i + 3]);
            }
            i += 3;
        } else {
            out.push(seg[i]);
            i += 1;
        }
    }
}

/// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
