//! Property tests over random and mutated heads and chunked bodies, run with the unit tests
//! (a few seconds in a debug build). The fuzz targets in `fuzz/` explore further; these keep
//! the same properties checked on every `cargo test`:
//!
//! - nothing panics, whatever the bytes;
//! - every span a parsed head holds lies within its head;
//! - the verdict (accepted with this head / refused / needs more) is the same whether the
//!   bytes are parsed whole or arrive a byte at a time, and a head object reused from an
//!   earlier message parses exactly like a fresh one;
//! - a head rebuilt from what was parsed re-parses to the same result; a chunked body decodes
//!   to the same bytes however it is split, and re-chunked (as the relay does) decodes to the
//!   same bytes again.

mod chunked;
mod gen;
mod heads;

use super::Span;
use proptest::prelude::ProptestConfig;

/// Cases per property: all of them run in about 3 s in a debug build.
const CASES: u32 = 1000;

/// `CASES` cases, or `PROPTEST_CASES` when set (longer runs by hand).
pub(super) fn config() -> ProptestConfig {
    let base = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            CASES
        },
        failure_persistence: None,
        ..base
    }
}

/// Accepted (with the head as printed), needs more, or refused.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    Accepted(String),
    NeedsMore,
    Refused,
}

/// Asserts that `span` lies within the first `head_len` bytes.
pub(super) fn within(span: Span, head_len: usize) {
    assert!(
        span.start() <= span.end() && span.end() <= head_len,
        "{span:?} beyond {head_len}"
    );
}
