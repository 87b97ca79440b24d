//! The clock, read in one place: wall time for rate windows, key validity and audit records.
//! Everything in keyway-core takes the time as an argument; only the runtime calls these.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds (for rate windows).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Unix seconds (key validity, created_at stamps).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Wall time, for formatting (the admin listener's `Date`).
pub fn system_now() -> SystemTime {
    SystemTime::now()
}
