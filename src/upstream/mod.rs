//! Upstream side of the data plane: per-shard keep-alive connection pools.
//!
//! Everything here belongs to one shard (`Rc`, `Cell`): no lock or atomic is taken to check a
//! connection out or in.

pub mod pool;

pub use pool::{Lease, Pool, PoolError};
