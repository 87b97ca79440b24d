//! Any bytes, split anywhere: the chunked decoder never panics, never returns data outside
//! its input, and decodes the same body however the input is split.
#![no_main]

use keyway_core::http::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

fn decode(data: &[u8], step: usize) -> Result<(Vec<u8>, bool), ()> {
    let mut dec = ChunkedDecoder::new();
    let mut body = Vec::new();
    let mut pos = 0;
    while pos < data.len() && !dec.is_done() {
        let end = (pos + step).min(data.len());
        let mut window = &data[pos..end];
        while !window.is_empty() && !dec.is_done() {
            let d = dec.decode(window).map_err(|_| ())?;
            if let Some((a, b)) = d.data {
                assert!(a <= b && b <= window.len());
                body.extend_from_slice(&window[a..b]);
            }
            assert!(d.consumed <= window.len());
            window = &window[d.consumed..];
            pos += d.consumed;
            if d.consumed == 0 {
                break;
            }
        }
        if !window.is_empty() && !dec.is_done() {
            return Err(());
        }
    }
    Ok((body, dec.is_done()))
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(data, data.len().max(1));
    let bytewise = decode(data, 1);
    if let (Ok(a), Ok(b)) = (&whole, &bytewise) {
        assert_eq!(a, b);
    }
    assert_eq!(whole.is_ok(), bytewise.is_ok());
});
