//! keyway-core: the pure half of the keyway API-key gateway. HTTP/1.1 head parsing on
//! httparse, the zero-copy key table (rkyv snapshots), policy (routes, scopes, allowlists,
//! size limits), rate-limit and quota arithmetic, configuration, problem answers and audit
//! records.
//!
//! Nothing here depends on an async runtime, opens a socket, starts a thread or reads the
//! clock: time and bytes are arguments. The `keyway` binary composes these pieces on glommio;
//! the compiler holds the line, since this crate does not depend on it.

pub mod audit;
pub mod clock;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod http;
pub mod keys;
pub mod keytable;
pub mod policy;
pub mod ratelimit;
