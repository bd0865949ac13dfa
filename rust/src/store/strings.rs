//! String commands: get, set, delete, exists, incrby.

use std::io::Write;

use super::entry::{string_cost, Entry};
use super::stats::Stats;
use super::{deadline, Store, StoreError, StoreResult};

impl Store {
    /// Pass the value of a live string key to `f` (under the shard lock, so the caller can copy
    /// it straight into its own buffer); `None` when missing. Counts a hit, and a miss when
    /// `count_miss` (false: the caller counts what its miss becomes, as `get_or_set` does).
    #[inline]
    pub fn get_with<R>(
        &self,
        key: &[u8],
        now_ms: u64,
        count_miss: bool,
        f: impl FnOnce(&[u8]) -> R,
    ) -> StoreResult<Option<R>> {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                None => {
                    if count_miss {
                        Stats::bump(&self.stats.misses);
                    }
                    Ok(None)
                }
                Some(pos) => {
                    let entry = &shard.slab[pos];
                    if !entry.is_string() {
                        return Err(StoreError::WrongType);
                    }
                    Stats::bump(&self.stats.hits);
                    Ok(Some(f(entry.value())))
                }
            }
        })
    }

    /// The value of a live string key, copied.
    pub fn get(&self, key: &[u8], now_ms: u64) -> StoreResult<Option<Vec<u8>>> {
        self.get_with(key, now_ms, true, <[u8]>::to_vec)
    }

    /// Store a string, replacing a value of any type; `ttl_ms` None clears any previous TTL.
    pub fn set(
        &self,
        key: &[u8],
        value: &[u8],
        ttl_ms: Option<u64>,
        now_ms: u64,
    ) -> StoreResult<()> {
        self.check_capacity(key, string_cost(key.len(), value.len()))?;
        let expires_at = ttl_ms.map_or(0, |ttl| deadline(now_ms, ttl));
        self.in_shard_then_evict(key, |shard, hash| {
            let entry = Entry::string(key, value, expires_at);
            match shard.find_live(hash, key, now_ms, &self.stats) {
                Some(pos) => shard.replace(pos, entry, &self.stats),
                None => {
                    shard.insert(hash, entry, &self.stats);
                }
            }
            Ok(())
        })
    }

    /// Remove a key of any type; true when a live key was removed.
    pub fn delete(&self, key: &[u8], now_ms: u64) -> bool {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                Some(pos) => {
                    shard.remove_at(pos, &self.stats);
                    true
                }
                None => false,
            }
        })
    }

    /// True when the key exists and has not expired.
    pub fn exists(&self, key: &[u8], now_ms: u64) -> bool {
        self.in_shard(key, |shard, hash| {
            shard.find_live(hash, key, now_ms, &self.stats).is_some()
        })
    }

    /// Add `amount` to the integer held in a string key (missing counts from 0), keeping the TTL.
    pub fn incrby(&self, key: &[u8], amount: i64, now_ms: u64) -> StoreResult<i64> {
        self.in_shard_then_evict(key, |shard, hash| {
            let pos = shard.find_live(hash, key, now_ms, &self.stats);
            let current = match pos {
                None => 0,
                Some(pos) => {
                    let entry = &shard.slab[pos];
                    if !entry.is_string() {
                        return Err(StoreError::WrongType);
                    }
                    parse_redis_int(entry.value()).ok_or(StoreError::NotAnInteger)?
                }
            };
            let next = current.checked_add(amount).ok_or(StoreError::Overflow)?;
            let mut buf = [0u8; 20];
            let len = {
                let mut cursor = std::io::Cursor::new(&mut buf[..]);
                write!(cursor, "{next}").expect("an i64 fits in 20 bytes");
                cursor.position() as usize
            };
            let digits = &buf[..len];
            self.check_capacity(key, string_cost(key.len(), digits.len()))?;
            match pos {
                Some(pos) => shard.update(pos, &self.stats, |entry| entry.set_value(digits)),
                None => {
                    shard.insert(hash, Entry::string(key, digits, 0), &self.stats);
                }
            }
            Ok(next)
        })
    }
}

/// Parse a Redis integer exactly like Redis's `string2ll`: optional '-', then "0" alone or a
/// digit 1-9 followed by digits; no '+', no spaces, no leading zeros, no "-0"; must fit in i64.
#[must_use]
pub fn parse_redis_int(s: &[u8]) -> Option<i64> {
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, s),
    };
    if digits.len() > 19 || !matches!(digits.first()?, b'1'..=b'9') {
        return None;
    }
    // Accumulate negatively so i64::MIN, whose magnitude exceeds i64::MAX, still parses.
    let mut value: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_redis_int;

    #[test]
    fn parses_like_redis() {
        assert_eq!(parse_redis_int(b"0"), Some(0));
        assert_eq!(parse_redis_int(b"42"), Some(42));
        assert_eq!(parse_redis_int(b"-42"), Some(-42));
        assert_eq!(parse_redis_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_redis_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"01",
            b"-0",
            b"00",
            b"1.5",
            b"1e3",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
            b"abc",
        ] {
            assert_eq!(
                parse_redis_int(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
