//! Metrics: the one list of names, per-shard counters and histograms, Prometheus text.
//!
//! Each shard counts in plain fields of its own [`ShardMetrics`] (no atomics on the request
//! path) and publishes a copy once a second into its slot of [`Published`]; the admin
//! listener merges the slots when scraped.

pub mod names;
pub mod render;
pub mod shard;

pub use render::render;
pub use shard::{Outcome, Published, ShardMetrics, UpstreamErrorKind};
