//! Any bytes as an upstream's chunked response body, decoded the way `relay_body` drives the
//! decoder (whatever is pending, until it is used up or the body ends) and re-framed for the
//! client with `push_chunk`: the decoder never panics or hands back a range outside its
//! input, the body, its end and the bytes left after it do not depend on how the input
//! arrives, and the re-chunked output decodes to the same bytes.
//!
//! The first byte is the piece size the input arrives in (0 = all at once).
#![no_main]

use keyway_core::http::chunked::{ChunkedDecoder, ChunkedError, LAST_CHUNK};
use keyway_core::http::write::push_chunk;
use libfuzzer_sys::fuzz_target;

struct Relayed {
    body: Vec<u8>,
    rechunked: Vec<u8>,
    done: bool,
    left: usize,
}

fn relay(input: &[u8], piece: usize) -> Result<Relayed, ChunkedError> {
    let mut dec = ChunkedDecoder::new();
    let (mut pending, mut body, mut rechunked) = (Vec::new(), Vec::new(), Vec::new());
    for part in input.chunks(piece.max(1)) {
        pending.extend_from_slice(part);
        while !pending.is_empty() && !dec.is_done() {
            let d = dec.decode(&pending)?;
            assert!(d.consumed <= pending.len());
            assert!(d.consumed > 0 || d.done, "no progress");
            if let Some((a, b)) = d.data {
                assert!(a < b && b <= d.consumed);
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

fuzz_target!(|input: &[u8]| {
    let Some((&piece, data)) = input.split_first() else {
        return;
    };
    let piece = if piece == 0 { data.len() } else { usize::from(piece) };
    let whole = relay(data, data.len());
    let split = relay(data, piece);
    match (&whole, &split) {
        (Ok(w), Ok(s)) => {
            assert_eq!(w.body, s.body);
            assert_eq!((w.done, w.left), (s.done, s.left));
            let again = relay(&s.rechunked, s.rechunked.len()).expect("re-chunked decodes");
            assert_eq!(again.body, s.body);
            assert_eq!((again.done, again.left), (s.done, 0));
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("whole and split disagree"),
    }
});
