//! Any bytes as an upstream's chunked response body, decoded the way `relay_body` drives the
//! decoder (whatever is pending, until it is used up or the body ends) and re-framed for the
//! client with `push_chunk`: the decoder never panics or hands back a range outside its
//! input, the body, its end and the bytes left after it do not depend on how the input
//! arrives, and the re-chunked output decodes to the same bytes.
//!
//! The first byte is the piece size the input arrives in (0 = all at once).
#![no_main]

use keyway_core::http::chunked::{relay_model, ChunkedError, Relayed};
use libfuzzer_sys::fuzz_target;

fn relay(input: &[u8], piece: usize) -> Result<Relayed, ChunkedError> {
    relay_model(input.chunks(piece.max(1)))
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
