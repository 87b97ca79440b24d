//! keyway: an API-key gateway — a thread-per-core HTTP/1.1 reverse proxy that authenticates
//! every request by a custom API key and enforces what that key may do.
//!
//! # Layout and layering
//!
//! The pure core (HTTP parsing, keys, policy, rate math, configuration, problems, audit
//! records, calendar) is its own crate, `keyway-core`, with no runtime, socket, thread or clock
//! dependency; it is re-exported here under its old module names. This crate composes it:
//!
//! - [`pipeline`]: one request's steps — read head, route, authenticate, authorize, admit,
//!   identify, forward, relay, account — each refusing with a `Refusal` answered in one place.
//! - [`context`]: the per-shard context (pools, counters, key table) below the pipeline.
//! - [`shard`] runs one glommio executor per CPU with its own listener, pools and counters;
//!   nothing on the per-request path takes a lock or an atomic read-modify-write.
//! - [`serve`] and [`admin`] are the control side: listeners, signals, health and metrics;
//!   [`rollout`] (reloads), [`resolve`] (upstream host names) and [`overlay`] (live key
//!   changes) feed the shards over their control channels; [`cli`] and [`store`] are the
//!   control plane.
//! - [`ops`] is what an operator can do to plans, keys and snapshots, once: the CLI and the
//!   admin API ([`admin`]'s `/v1/`) both call it (`cli, admin -> ops -> store`).
//!
//! Imports point one way (`cli -> serve -> shard -> pipeline -> context -> upstream, metrics,
//! audit, buffers -> keyway-core`); `tests/layering.rs` fails on any cycle.

pub use keyway_core::{config, error, fsutil, http, keys, keytable, policy, ratelimit};

pub mod admin;
pub mod audit;
pub mod buffers;
pub mod cli;
pub mod clock;
pub mod context;
pub mod metrics;
pub mod ops;
pub mod overlay;
pub mod pipeline;
pub mod resolve;
pub mod rollout;
pub mod rollup;
pub mod runfiles;
pub mod serve;
pub mod shard;
pub mod snapshot_status;
pub mod store;
pub mod stream;
pub mod upstream;
