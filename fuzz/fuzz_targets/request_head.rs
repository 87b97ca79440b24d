//! Any bytes: the strict head parser never panics, and whatever it accepts is self-consistent
//! (spans inside the head, framing decided, no bare LF inside the head).
#![no_main]

use keyway_core::http::{HeadLimits, KnownHeaders, RequestHead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut head = RequestHead::default();
    let limits = HeadLimits::default();
    let known = KnownHeaders::default();
    if let Ok(true) = head.parse(data, &limits, &known) {
        assert!(head.head_len <= data.len());
        let h = &data[..head.head_len];
        for (i, &b) in h.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && h[i - 1] == b'\r');
            }
        }
        for line in &head.headers {
            assert!(line.value.end() <= head.head_len);
        }
        assert!(head.path.get(data).starts_with(b"/"));
        // Parsing the same bytes again gives the same answer (the head is reusable).
        assert_eq!(head.parse(data, &limits, &known), Ok(true));
    }
});
