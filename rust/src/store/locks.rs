//! Token locks: a string value holding a random token at "lock:<key>", pinned (never evicted).
//! Release and extend compare the token and act under the same shard lock, so they are atomic.

use std::sync::atomic::Ordering;

use rand::Rng;

use super::entry::Entry;
use super::stats::Stats;
use super::{deadline, Store};

/// Prefix of the key a lock is stored at (the Redis backend uses the same layout).
pub const LOCK_PREFIX: &str = "lock:";

/// The keyspace key of lock `key`.
#[must_use]
pub fn lock_key(key: &str) -> Vec<u8> {
    [LOCK_PREFIX.as_bytes(), key.as_bytes()].concat()
}

/// 128 random bits from the thread-local CSPRNG, as 32 lowercase hex chars.
fn new_token() -> String {
    hex128(rand::rng().random::<u128>())
}

/// `format!("{bits:032x}")`, by hand: the formatter costs more than drawing the bits.
fn hex128(bits: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0_u8; 32];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[((bits >> (124 - 4 * i)) & 0xf) as usize];
    }
    String::from_utf8(digits.to_vec()).expect("hex digits are ASCII")
}

impl Store {
    /// Take the lock when free (absent or expired): a fresh token, else None. A key without
    /// expiry at the lock's name gets `ttl_ms`, so the lock is free after that at the latest.
    pub fn acquire_lock(&self, key: &str, ttl_ms: u64, now_ms: u64) -> Option<String> {
        self.acquire(key, ttl_ms, now_ms, false)
            .map(|(token, _)| token)
    }

    /// Take the lock when free, like `acquire_lock`, with a fence number: (token, fence).
    ///
    /// Fences come from one store-wide counter, incremented while the lock's shard is locked
    /// by the acquisition itself, so a later holder of the same lock always gets a larger
    /// fence than an earlier one, however long the earlier one waits before reading its own.
    /// They start at 1 in each store and are comparable only within it.
    pub fn acquire_fenced_lock(
        &self,
        key: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Option<(String, u64)> {
        self.acquire(key, ttl_ms, now_ms, true)
    }

    fn acquire(&self, key: &str, ttl_ms: u64, now_ms: u64, fenced: bool) -> Option<(String, u64)> {
        let full = lock_key(key);
        let token = new_token();
        let fence = self.in_shard(&full, |shard, hash| {
            if let Some(pos) = shard.find_live(hash, &full, now_ms, &self.stats) {
                // Every lock has a TTL: a key without one here (a value `set` at "lock:...")
                // would hold the lock forever, so it gets the lock's TTL and ends (as in Redis).
                let entry = &mut shard.slab[pos];
                if entry.expires_at() == 0 {
                    entry.set_expires_at(deadline(now_ms, ttl_ms));
                }
                return None;
            }
            let entry = Entry::string(&full, token.as_bytes(), deadline(now_ms, ttl_ms)).pinned();
            shard.insert(hash, entry, &self.stats);
            // Under the shard lock: the next holder of this key needs the same lock to get in.
            Some(if fenced {
                self.fence.fetch_add(1, Ordering::SeqCst) + 1
            } else {
                0
            })
        });
        if let Some(fence) = fence {
            Stats::bump(&self.stats.lock_acquired);
            Some((token, fence))
        } else {
            Stats::bump(&self.stats.lock_contended);
            None
        }
    }

    /// Release when `token` matches the holder's; true when released.
    pub fn release_lock(&self, key: &str, token: &str, now_ms: u64) -> bool {
        let full = lock_key(key);
        self.in_shard(&full, |shard, hash| {
            match shard.find_live(hash, &full, now_ms, &self.stats) {
                Some(pos) if holds(&shard.slab[pos], token) => {
                    shard.remove_at(pos, &self.stats);
                    true
                }
                _ => false,
            }
        })
    }

    /// Reset the lock's TTL to `ttl_ms` when `token` matches; true when extended.
    pub fn extend_lock(&self, key: &str, token: &str, ttl_ms: u64, now_ms: u64) -> bool {
        let full = lock_key(key);
        self.in_shard(&full, |shard, hash| {
            match shard.find_live(hash, &full, now_ms, &self.stats) {
                Some(pos) if holds(&shard.slab[pos], token) => {
                    shard.slab[pos].set_expires_at(deadline(now_ms, ttl_ms));
                    true
                }
                _ => false,
            }
        })
    }
}

fn holds(entry: &Entry, token: &str) -> bool {
    entry.is_string() && entry.value() == token.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::hex128;
    use crate::store::{KeyspaceBounds, Store};

    #[test]
    fn a_key_without_ttl_at_a_lock_name_gets_the_lock_ttl() {
        let s = Store::new(KeyspaceBounds::default());
        s.set(b"lock:job", b"planted", None, 0).unwrap();
        assert_eq!(s.acquire_lock("job", 1000, 100), None);
        assert_eq!(s.pttl(b"lock:job", 100), 1000);
        // A key that has a TTL keeps it; the lock is free once it ends.
        assert_eq!(s.acquire_fenced_lock("job", 5000, 600), None);
        assert_eq!(s.pttl(b"lock:job", 600), 500);
        assert!(s.acquire_lock("job", 1000, 1100).is_some());
        s.set(b"lock:other", b"planted", None, 0).unwrap();
        assert_eq!(s.acquire_fenced_lock("other", 1000, 0), None);
        assert_eq!(s.pttl(b"lock:other", 0), 1000);
    }

    #[test]
    fn hex128_is_the_zero_padded_lowercase_hex() {
        let mut bits = 0x0123_4567_89ab_cdef_u128;
        for value in [0, 1, 0xf, u128::MAX, u128::MAX >> 4, 1 << 127] {
            assert_eq!(hex128(value), format!("{value:032x}"));
        }
        for _ in 0..1000 {
            bits = bits.wrapping_mul(0x2545_F491_4F6C_DD1D_9E37_79B9_7F4A_7C15) ^ (bits >> 61);
            assert_eq!(hex128(bits), format!("{bits:032x}"));
        }
    }
}
