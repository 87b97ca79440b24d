//! keyway: an API-key gateway — a thread-per-core HTTP/1.1 reverse proxy that authenticates
//! every request by a custom API key and enforces what that key may do.
//!
//! # Layout and layering
//!
//! Dependencies point one way:
//! `cli -> serve, shard -> pipeline -> upstream, metrics -> http, policy, config -> error`.
//!
//! - [`http`], [`policy`], [`config`] are pure: no glommio, sockets, threads or clock reads.
//!   They take bytes and time as arguments, and are unit-tested and benchmarked anywhere.
//! - [`pipeline`] composes them per connection: read head -> route -> auth -> policy ->
//!   limit -> forward -> account.
//! - [`shard`] runs one glommio executor per CPU with its own listener, pools and counters;
//!   nothing on the per-request path takes a lock or an atomic read-modify-write.
//! - [`serve`] and [`admin`] are the control side: listeners, signals, health and metrics.

pub use keyway_core::{
    audit as audit_record, clock as calendar, config, error, fsutil, http, keys, keytable, policy,
    ratelimit,
};

pub mod admin;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod metrics;
pub mod pipeline;
pub mod runfiles;
pub mod serve;
pub mod shard;
pub mod snapshot_status;
pub mod store;
pub mod upstream;
