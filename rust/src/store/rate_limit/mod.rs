//! Rate limits: the algorithms' state machines (`algorithm`) and the store commands that keep
//! their state in the keyspace, for one key (`single_key`) or several at once, all or nothing
//! (`multi_key`).

mod algorithm;
pub mod gcra;
mod multi_key;
mod single_key;

pub use algorithm::{Algorithm, Decision, LimiterState};
pub use multi_key::LimitSpec;

/// Prefix of the key rate-limit state is stored at (the Redis backend uses the same layout).
pub const RATE_LIMIT_PREFIX: &str = "ratelimit:";

/// The keyspace key of rate limit `key`.
#[must_use]
pub fn rate_limit_key(key: &str) -> Vec<u8> {
    [RATE_LIMIT_PREFIX.as_bytes(), key.as_bytes()].concat()
}
