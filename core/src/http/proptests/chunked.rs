//! The chunked decoder driven as the relay drives it: the same body however the input is
//! split, and the re-chunked output decodes to the same bytes.

use super::config;
use super::gen::{mutate, noise, pick};
use crate::http::chunked::{relay_model, ChunkedError, Relayed};
use proptest::collection::vec;
use proptest::prelude::*;

fn meaning(r: &Result<Relayed, ChunkedError>) -> Result<(&[u8], bool, usize), ChunkedError> {
    r.as_ref()
        .map(|r| (&r.body[..], r.done, r.left))
        .map_err(|e| *e)
}

/// Decodes `input` arriving in the pieces cut at `cuts`, the way `relay_body` drives the
/// decoder ([`relay_model`]).
fn relay(input: &[u8], cuts: &[usize]) -> Result<Relayed, ChunkedError> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    let mut from = 0;
    let parts = points.into_iter().map(|to| {
        let part = &input[from..to];
        from = to;
        part
    });
    relay_model(parts)
}

/// A valid chunked body (chunks with random-case sizes, leading zeros and extensions, a last
/// chunk with trailers) then maybe bytes of a next message; with the body it carries and the
/// number of bytes after it.
fn valid_chunked() -> impl Strategy<Value = (Vec<u8>, Vec<u8>, usize)> {
    let chunk = (
        vec(any::<u8>(), 1..40),
        any::<bool>(),
        0..3usize,
        any::<bool>(),
    );
    (
        vec(chunk, 0..5),
        pick(&[b"", b"X-T: 1\r\n", b"A: b\r\nC: d\r\n"]),
        pick(&[b"", b"HTTP/1.1 200 OK\r\n"]),
    )
        .prop_map(|(chunks, trailer, after)| {
            let (mut out, mut body) = (Vec::new(), Vec::new());
            for (data, upper, zeros, ext) in chunks {
                let size = format!("{}{:x}", "0".repeat(zeros), data.len());
                let size = if upper { size.to_uppercase() } else { size };
                out.extend_from_slice(size.as_bytes());
                if ext {
                    out.extend_from_slice(b"; a=\"b c\"");
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
                body.extend_from_slice(&data);
            }
            let bytes = [
                out,
                b"0\r\n".to_vec(),
                trailer,
                b"\r\n".to_vec(),
                after.clone(),
            ]
            .concat();
            (bytes, body, after.len())
        })
}

fn chunked_bytes() -> impl Strategy<Value = Vec<u8>> {
    let valid = || valid_chunked().prop_map(|(bytes, _, _)| bytes);
    prop_oneof![1 => valid(), 3 => mutate(valid()), 1 => noise(48)]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn chunked_decoding_does_not_depend_on_the_split(input in chunked_bytes(), cuts in vec(any::<usize>(), 0..6)) {
        let bytewise: Vec<usize> = (0..input.len()).collect();
        let whole = relay(&input, &[]);
        for split in [relay(&input, &cuts), relay(&input, &bytewise)] {
            // Chunk boundaries follow the arrival; the body, its end and what is left do not.
            prop_assert_eq!(meaning(&split), meaning(&whole));
            if let Ok(r) = split {
                // What the client gets decodes to the same bytes and ends where it should.
                let again = relay(&r.rechunked, &[]).expect("re-chunked output decodes");
                prop_assert_eq!(&again.body, &r.body);
                prop_assert_eq!(again.done, r.done);
                prop_assert_eq!(again.left, 0);
            }
        }
    }

    #[test]
    fn valid_chunked_bodies_decode_to_their_data((input, body, after) in valid_chunked(), cuts in vec(any::<usize>(), 0..6)) {
        let r = relay(&input, &cuts).expect("a valid body decodes");
        prop_assert_eq!(r.body, body);
        prop_assert!(r.done);
        prop_assert_eq!(r.left, after);
    }
}
