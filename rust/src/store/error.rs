//! The store's error type: pure Rust, mapped to Python exceptions in `crate::errors`.

use std::fmt;

/// Why a store command failed. A failed command has changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A command met a key holding another kind of value (Redis `WRONGTYPE`).
    WrongType,
    /// `incrby` met a string that is not a Redis integer.
    NotAnInteger,
    /// `incrby` would leave the i64 range.
    Overflow,
    /// A rate limit exists at the key with another algorithm.
    AlgorithmMismatch {
        key: String,
        existing: &'static str,
        requested: &'static str,
    },
    /// A single value can never fit under `max_bytes`.
    Capacity {
        key: String,
        size: u64,
        max_bytes: u64,
    },
    /// Rate-limit state is at its bound and a hit at `key` needs more of it.
    RateLimitCapacity { key: String, max_bytes: u64 },
    /// A bad argument (empty key, TTL <= 0, ...); the message names it.
    InvalidArgument(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongType => {
                f.write_str("WRONGTYPE Operation against a key holding the wrong kind of value")
            }
            Self::NotAnInteger => f.write_str("value is not an integer or out of range"),
            Self::Overflow => f.write_str("increment or decrement would overflow"),
            Self::AlgorithmMismatch {
                key,
                existing,
                requested,
            } => write!(
                f,
                "WRONGTYPE rate limit {key:?} uses algorithm {existing:?}, not {requested:?}"
            ),
            Self::Capacity {
                key,
                size,
                max_bytes,
            } => write!(
                f,
                "value for key {key:?} needs {size} bytes, more than max_bytes={max_bytes}"
            ),
            Self::RateLimitCapacity { key, max_bytes } => write!(
                f,
                "rate limit {key:?} needs more state, but rate-limit state is at its bound \
                 (max_rate_limit_bytes={max_bytes}); nothing was recorded"
            ),
            Self::InvalidArgument(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for StoreError {}

/// Result of a store command.
pub type StoreResult<T> = Result<T, StoreError>;
