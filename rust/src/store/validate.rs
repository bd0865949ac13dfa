//! Argument checks shared by the binding and Rust callers; messages name the argument and the
//! bad value, as python/cachebolt/_validate.py words them.

use std::fmt::Display;

use super::entry::MAX_KEY_LEN;
use super::{StoreError, StoreResult};

/// Largest TTL accepted, in ms (~4 400 years): half the range of an entry's 48-bit expiry.
pub const MAX_TTL_MS: u64 = 1 << 47;

fn invalid(message: String) -> StoreError {
    StoreError::InvalidArgument(message)
}

/// Keys are non-empty and fit the entry's 31-bit key length; `name` names the argument
/// (`key`, `lock_key`).
pub fn check_key(name: &str, key: &str) -> StoreResult<()> {
    if key.is_empty() {
        return Err(invalid(format!("{name} must be a non-empty str")));
    }
    // Lock and rate-limit keys add a prefix of up to 10 bytes.
    if key.len() > MAX_KEY_LEN - 16 {
        return Err(invalid(format!(
            "{name} is too long: {} bytes, at most {} allowed",
            key.len(),
            MAX_KEY_LEN - 16
        )));
    }
    Ok(())
}

/// A duration in seconds -> ms, rounded up so a tiny positive duration is at least 1 ms.
/// `name` names the argument in the error (`ttl`, `window_seconds`), `shown` is the value as
/// the caller wrote it (the binding shows Python's `str()` of it).
pub fn seconds_to_ms(name: &str, seconds: f64, shown: &dyn Display) -> StoreResult<u64> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(invalid(format!(
            "{name} must be a positive finite number of seconds, got {shown}"
        )));
    }
    let ms = (seconds * 1000.0).ceil();
    if ms > MAX_TTL_MS as f64 {
        return Err(invalid(format!("{name} is too large: {shown} seconds")));
    }
    Ok((ms as u64).max(1))
}

/// A positive integer number of milliseconds (lock TTLs).
pub fn positive_ms(name: &str, ms: i64) -> StoreResult<u64> {
    if ms <= 0 || ms as u64 > MAX_TTL_MS {
        return Err(invalid(format!(
            "{name} must be a positive number of milliseconds, got {ms}"
        )));
    }
    Ok(ms as u64)
}

/// An optional bound: None or >= 1.
pub fn bound(name: &str, value: Option<i64>) -> StoreResult<Option<u64>> {
    match value {
        None => Ok(None),
        Some(v) if v >= 1 => Ok(Some(v as u64)),
        Some(v) => Err(invalid(format!("{name} must be >= 1 or None, got {v}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up_and_reject_bad_values() {
        let ms = |seconds: f64| seconds_to_ms("ttl", seconds, &seconds);
        assert_eq!(ms(1.0), Ok(1000));
        assert_eq!(ms(0.0001), Ok(1));
        assert_eq!(ms(1.0001), Ok(1001));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(ms(bad).is_err());
        }
        assert_eq!(
            seconds_to_ms("ttl", -1.0, &"-1.0").unwrap_err().to_string(),
            "ttl must be a positive finite number of seconds, got -1.0"
        );
        assert!(ms(1e300).is_err());
    }

    #[test]
    fn keys_and_bounds() {
        assert_eq!(
            check_key("lock_key", "").unwrap_err().to_string(),
            "lock_key must be a non-empty str"
        );
        assert!(check_key("key", "k").is_ok());
        assert_eq!(positive_ms("ttl_ms", 5), Ok(5));
        assert!(positive_ms("ttl_ms", 0).is_err());
        assert_eq!(bound("max_keys", None), Ok(None));
        assert_eq!(bound("max_keys", Some(3)), Ok(Some(3)));
        assert!(bound("max_keys", Some(0)).is_err());
    }
}
