//! Any bytes as an upstream's response head: the parser never panics; whatever it accepts
//! has every span inside the head, needs no more bytes than it took, parses the same again
//! with the same head object, and — written for the client as the gateway writes it —
//! re-parses to the same status, reason and header fields.
//!
//! The first byte picks the options: bit 0 = the request was HEAD, bit 1 = a 64-byte head
//! limit instead of 16 KiB; the others pick a split point for the prefix check.
#![no_main]

use keyway_core::http::response::ResponseHead;
use keyway_core::http::write::{reason_phrase, HeadWriter};
use keyway_core::http::Span;
use libfuzzer_sys::fuzz_target;

fn within(s: Span, head_len: usize) {
    assert!(s.start() <= s.end() && s.end() <= head_len, "{s:?} beyond {head_len}");
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, data)) = input.split_first() else {
        return;
    };
    let was_head = flags & 1 != 0;
    let max = if flags & 2 != 0 { 64 } else { 16 * 1024 };
    let mut head = ResponseHead::default();
    let Ok(true) = head.parse(data, was_head, max) else {
        return;
    };
    let n = head.head_len;
    assert!(n <= data.len() && n <= max);
    within(head.reason, n);
    for h in &head.headers {
        within(h.name, n);
        within(h.value, n);
    }
    for &s in &head.connection_drops {
        within(s, n);
    }
    // Any shorter prefix asks for more: the verdict does not depend on how bytes arrive.
    let k = (usize::from(flags >> 2) * n / 64).min(n - 1);
    let mut partial = ResponseHead::default();
    assert_eq!(partial.parse(&data[..k], was_head, max), Ok(false), "prefix {k} of {n}");
    // The same object parses the same bytes the same way again.
    let first = format!("{head:?}");
    assert_eq!(head.parse(data, was_head, max), Ok(true));
    assert_eq!(format!("{head:?}"), first);
    // The head the client gets means the same.
    let mut out = Vec::new();
    let mut w = HeadWriter::new(&mut out);
    w.status_line(head.status, head.reason.get(data));
    for h in &head.headers {
        w.header(h.name.get(data), h.value.get(data));
    }
    w.end();
    let mut again = ResponseHead::default();
    assert_eq!(again.parse(&out, was_head, usize::MAX), Ok(true));
    assert_eq!(again.head_len, out.len());
    assert_eq!(again.status, head.status);
    let reason = match head.reason.get(data) {
        [] => reason_phrase(head.status).as_bytes(),
        r => r,
    };
    assert_eq!(again.reason.get(&out), reason);
    assert_eq!(again.headers.len(), head.headers.len());
    for (a, b) in again.headers.iter().zip(&head.headers) {
        assert_eq!(a.name.get(&out), b.name.get(data));
        assert_eq!(a.value.get(&out), b.value.get(data));
    }
});
