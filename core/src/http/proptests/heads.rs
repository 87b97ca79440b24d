//! Request and response heads: no panic, spans within the head, the same verdict whole or
//! byte by byte, reused like fresh, rebuilt heads mean the same.

use super::gen::{request_bytes, response_bytes};
use super::{config, within, Verdict};
use crate::http::request::{HeadError, HeadLimits, RequestHead, Version};
use crate::http::response::{ResponseFraming, ResponseHead};
use crate::http::write::{reason_phrase, HeadWriter};
use crate::http::KnownHeaders;
use proptest::prelude::*;

// ---------------------------------------------------------------- request heads

fn limits(small: bool) -> HeadLimits {
    if small {
        HeadLimits {
            max_request_line: 24,
            max_head_bytes: 64,
            max_headers: 3,
        }
    } else {
        HeadLimits::default()
    }
}

fn parse_request(h: &mut RequestHead, raw: &[u8], limits: &HeadLimits) -> Result<bool, HeadError> {
    let r = h.parse(raw, limits, &KnownHeaders::default());
    if r == Ok(true) {
        request_spans_within(h, raw);
    }
    r
}

fn request_verdict(h: &RequestHead, r: Result<bool, HeadError>) -> Verdict {
    match r {
        Ok(true) => Verdict::Accepted(format!("{h:?}")),
        Ok(false) => Verdict::NeedsMore,
        Err(_) => Verdict::Refused,
    }
}

fn request_spans_within(h: &RequestHead, raw: &[u8]) {
    let n = h.head_len;
    assert!(n <= raw.len());
    for s in [h.method_span, h.target, h.path]
        .into_iter()
        .chain(h.host)
        .chain(h.x_request_id)
    {
        within(s, n);
    }
    for l in &h.headers {
        within(l.name, n);
        within(l.value, n);
    }
    h.connection_drops.iter().for_each(|&s| within(s, n));
}

/// The request parsed whole, then as the gateway sees it arriving a byte at a time.
fn check_request(raw: &[u8], small: bool) {
    let limits = limits(small);
    let mut whole = RequestHead::default();
    let r = parse_request(&mut whole, raw, &limits);
    let expected = request_verdict(&whole, r);
    let mut seen = Verdict::NeedsMore;
    let mut h = RequestHead::default();
    for k in 1..=raw.len() {
        let r = parse_request(&mut h, &raw[..k], &limits);
        seen = request_verdict(&h, r);
        if seen != Verdict::NeedsMore {
            break;
        }
    }
    assert_eq!(seen, expected, "fed a byte at a time vs whole");
}

/// The request head rebuilt from its parsed parts.
fn rebuild_request(h: &RequestHead, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = HeadWriter::new(&mut out);
    w.request_line(h.method_span.get(raw), h.target.get(raw));
    for l in &h.headers {
        w.header(l.name.get(raw), l.value.get(raw));
    }
    w.end();
    if h.version == Version::Http10 {
        let i = memchr::memmem::find(&out, b"HTTP/1.1\r\n").unwrap();
        out[i + 7] = b'0';
    }
    out
}

/// What a request head says, independent of where in the buffer it sits.
fn request_meaning(h: &RequestHead, raw: &[u8]) -> String {
    let headers: Vec<_> = h
        .headers
        .iter()
        .map(|l| (l.name.get(raw), l.value.get(raw), l.kind))
        .collect();
    format!(
        "{:?} {:?} {:?} {:?} {headers:?} {:?} {:?} {} {} {} {:?} {:?} {} {:?}",
        h.method,
        h.target.get(raw),
        h.path.get(raw),
        h.version,
        h.framing,
        h.host.map(|s| s.get(raw)),
        h.keep_alive,
        h.expect_continue,
        h.upgrade,
        h.api_key_header,
        h.authorization,
        h.duplicate_key_headers,
        h.connection_drops
            .iter()
            .map(|s| s.get(raw))
            .collect::<Vec<_>>(),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_head_verdicts_agree(raw in request_bytes(), small in any::<bool>()) {
        check_request(&raw, small);
    }

    #[test]
    fn request_head_reused_parses_like_fresh(a in request_bytes(), b in request_bytes()) {
        let limits = HeadLimits::default();
        let mut fresh = RequestHead::default();
        let expected = parse_request(&mut fresh, &b, &limits);
        let mut reused = RequestHead::default();
        let _ = parse_request(&mut reused, &a, &limits);
        let got = parse_request(&mut reused, &b, &limits);
        prop_assert_eq!(got, expected);
        if expected == Ok(true) {
            prop_assert_eq!(format!("{reused:?}"), format!("{fresh:?}"));
        }
    }

    #[test]
    fn accepted_request_head_rebuilt_means_the_same(raw in request_bytes()) {
        let limits = HeadLimits::default();
        let mut h = RequestHead::default();
        if parse_request(&mut h, &raw, &limits) == Ok(true) {
            let again = rebuild_request(&h, &raw);
            let mut h2 = RequestHead::default();
            prop_assert_eq!(parse_request(&mut h2, &again, &limits), Ok(true));
            prop_assert_eq!(request_meaning(&h2, &again), request_meaning(&h, &raw));
        }
    }
}
// ---------------------------------------------------------------- response heads

fn parse_response(
    r: &mut ResponseHead,
    raw: &[u8],
    was_head: bool,
    max: usize,
) -> Result<bool, &'static str> {
    let res = r.parse(raw, was_head, max);
    if res == Ok(true) {
        let n = r.head_len;
        assert!(n <= raw.len() && n <= max);
        within(r.reason, n);
        for h in &r.headers {
            within(h.name, n);
            within(h.value, n);
        }
        r.connection_drops.iter().for_each(|&s| within(s, n));
    }
    res
}

fn response_verdict(r: &ResponseHead, res: Result<bool, &'static str>) -> Verdict {
    match res {
        Ok(true) => Verdict::Accepted(format!("{r:?}")),
        Ok(false) => Verdict::NeedsMore,
        Err(_) => Verdict::Refused,
    }
}

/// The head the client gets (status line and header lines), as `write_response_head` writes
/// them, without the gateway's own framing and extra headers.
fn rebuild_response(r: &ResponseHead, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = HeadWriter::new(&mut out);
    w.status_line(r.status, r.reason.get(raw));
    for h in &r.headers {
        w.header(h.name.get(raw), h.value.get(raw));
    }
    w.end();
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn response_head_verdicts_agree(raw in response_bytes(), was_head in any::<bool>(), small in any::<bool>()) {
        let max = if small { 48 } else { 16 * 1024 };
        let mut whole = ResponseHead::default();
        let res = parse_response(&mut whole, &raw, was_head, max);
        let expected = response_verdict(&whole, res);
        let mut seen = Verdict::NeedsMore;
        let mut r = ResponseHead::default();
        for k in 1..=raw.len() {
            let res = parse_response(&mut r, &raw[..k], was_head, max);
            seen = response_verdict(&r, res);
            if seen != Verdict::NeedsMore {
                break;
            }
        }
        prop_assert_eq!(seen, expected);
    }

    #[test]
    fn response_head_reused_parses_like_fresh(a in response_bytes(), b in response_bytes()) {
        let mut fresh = ResponseHead::default();
        let expected = parse_response(&mut fresh, &b, false, 16 * 1024);
        let mut reused = ResponseHead::default();
        let _ = parse_response(&mut reused, &a, true, 16 * 1024);
        let got = parse_response(&mut reused, &b, false, 16 * 1024);
        prop_assert_eq!(got, expected);
        if expected == Ok(true) {
            prop_assert_eq!(format!("{reused:?}"), format!("{fresh:?}"));
        }
    }

    #[test]
    fn accepted_response_head_relayed_means_the_same(raw in response_bytes(), was_head in any::<bool>()) {
        let mut r = ResponseHead::default();
        if parse_response(&mut r, &raw, was_head, 16 * 1024) == Ok(true) {
            let sent = rebuild_response(&r, &raw);
            let mut again = ResponseHead::default();
            prop_assert_eq!(parse_response(&mut again, &sent, was_head, 16 * 1024), Ok(true));
            prop_assert_eq!(again.head_len, sent.len());
            prop_assert_eq!(again.status, r.status);
            let reason = r.reason.get(&raw);
            let reason = if reason.is_empty() { reason_phrase(r.status).as_bytes() } else { reason };
            prop_assert_eq!(again.reason.get(&sent), reason);
            let pairs = |h: &ResponseHead, buf: &[u8]| -> Vec<(Vec<u8>, Vec<u8>)> {
                h.headers.iter().map(|x| (x.name.get(buf).to_vec(), x.value.get(buf).to_vec())).collect()
            };
            prop_assert_eq!(pairs(&again, &sent), pairs(&r, &raw));
            // Written as HTTP/1.1: only an HTTP/1.0 head without a length may read differently.
            if r.version == Some(Version::Http11) || r.framing() != ResponseFraming::UntilClose {
                prop_assert_eq!(again.framing(), r.framing());
            }
        }
    }
}
