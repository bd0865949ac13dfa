//! The pure-Rust store: a sharded keyspace of typed values with expiry, eviction, token locks and
//! rate limits. No pyo3 here; every command takes the caller's `now_ms` (see `clock`).

pub mod clock;
pub mod entry;
pub mod error;
mod eviction;
pub mod expiry;
pub mod glob;
mod hashes;
mod keyspace;
mod locks;
pub mod rate_limit;
mod sets;
mod shard;
pub mod stats;
mod strings;
pub mod validate;

#[cfg(test)]
pub(crate) mod test_rng;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use ahash::RandomState;
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

pub use error::{StoreError, StoreResult};
pub use keyspace::Cursor;
pub use rate_limit::{Algorithm, Decision, LimitSpec};
use shard::{hash_key, Shard};
use stats::Stats;

const SHARD_BITS: u32 = 6;
/// Number of shards: a power of two, picked by the top bits of the key's hash.
pub const SHARDS: usize = 1 << SHARD_BITS;

/// Entries examined per lock hold by O(n) walks (sweep, scan, keys, pattern delete): about
/// 10-50 us of work, so no caller waits long on a shard lock whatever the keyspace size.
pub const BATCH: usize = 1024;

/// Other shards a rate-limit call at its bound reclaims expired entries from (besides its own).
const RECLAIM_SHARDS: usize = 4;

/// Memory bounds of the keyspace. `max_keys` counts values only; `max_bytes` covers values and
/// rate-limit state together (values are evicted to make room); locks are outside both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyspaceBounds {
    pub max_keys: Option<u64>,
    pub max_bytes: Option<u64>,
    /// Share of `max_bytes` rate-limit state may hold (None: half of it); a bound of its own
    /// when `max_bytes` is None.
    pub max_rate_limit_bytes: Option<u64>,
}

impl KeyspaceBounds {
    /// Bytes rate-limit state may hold; None when unbounded.
    #[must_use]
    pub fn rate_limit_bound(&self) -> Option<u64> {
        match (self.max_rate_limit_bytes, self.max_bytes) {
            (Some(share), Some(max)) => Some(share.min(max)),
            (share, None) => share,
            (None, Some(max)) => Some(max / 2),
        }
    }
}

/// A shard lock on its own cache line, so threads on neighbouring shards do not false-share.
#[repr(align(64))]
#[derive(Debug)]
struct Padded(Mutex<Shard>);

/// Every shard lock of a store, held until dropped (see `Store::lock_all`).
#[must_use = "the shard locks are released when this is dropped"]
pub struct AllShards<'a> {
    _guards: Vec<MutexGuard<'a, Shard>>,
}

/// The keyspace. Thread-safe: every command locks one shard at a time, except
/// `rate_limit_many`, which holds the shards of its keys together, taken in ascending index
/// order (the one lock order, so no cycle can form); O(n) commands lock shards one after
/// another in batches.
#[derive(Debug)]
pub struct Store {
    shards: Box<[Padded]>,
    /// Keyed with random keys at creation: user input picks the keys, so an unkeyed hash
    /// would let a caller force every key into one shard and one probe chain.
    hasher: RandomState,
    bounds: KeyspaceBounds,
    /// `bounds.rate_limit_bound()`, `u64::MAX` when unbounded (read on every rate-limit call).
    rate_limit_bound: u64,
    pub stats: Stats,
    /// The last fence number handed out by `acquire_fenced_lock` (store-wide, starts at 0).
    fence: std::sync::atomic::AtomicU64,
    /// The next shard `rate_limit_room` reclaims expired entries from.
    reclaim_cursor: AtomicUsize,
}

impl Store {
    #[must_use]
    pub fn new(bounds: KeyspaceBounds) -> Self {
        let hasher = RandomState::new();
        let shards = (0..SHARDS)
            .map(|i| Padded(Mutex::new(Shard::new(hasher.hash_one(i)))))
            .collect();
        Self {
            shards,
            hasher,
            bounds,
            rate_limit_bound: bounds.rate_limit_bound().unwrap_or(u64::MAX),
            stats: Stats::default(),
            fence: std::sync::atomic::AtomicU64::new(0),
            reclaim_cursor: AtomicUsize::new(0),
        }
    }

    #[must_use]
    pub fn bounds(&self) -> KeyspaceBounds {
        self.bounds
    }

    /// Entries of every type, including expired ones that no command or sweep has removed yet
    /// (O(1); `live_len` counts the live ones).
    #[must_use]
    pub fn len(&self) -> usize {
        Stats::get(&self.stats.keys) as usize
    }

    /// Keys of every type whose TTL has not run out at `now_ms`. O(n), read-only: each shard
    /// is counted under one hold of its lock (~40 bytes of slab read per entry), so each
    /// shard's count is exact at its instant and expiry stays the sweep's job.
    #[must_use]
    pub fn live_len(&self, now_ms: u64) -> usize {
        (0..SHARDS)
            .map(|idx| {
                let shard = self.lock(idx);
                shard.slab.len() - shard.slab.iter().filter(|e| e.is_expired(now_ms)).count()
            })
            .sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key's hash and shard. The shard comes from the top bits; the shard's index uses
    /// only the low 32 (see `shard::hash_key`), so the two choices are independent.
    #[inline]
    fn locate(&self, key: &[u8]) -> (u64, usize) {
        let hash = hash_key(&self.hasher, key);
        (hash, (hash >> (64 - SHARD_BITS)) as usize)
    }

    /// A shard's lock. A panic under a shard lock leaves the shard consistent (every command
    /// validates before it writes), so a poisoned lock is taken like any other.
    #[inline]
    fn lock(&self, idx: usize) -> MutexGuard<'_, Shard> {
        self.shards[idx]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every shard lock, taken in ascending order (the one lock order). Held across `fork()`,
    /// so the child copies no shard in the middle of a command; dropping the guards releases
    /// them in the parent and in the child alike (std's futex mutex keeps no process-wide state
    /// that a thread missing from the child could have left locked).
    pub fn lock_all(&self) -> AllShards<'_> {
        AllShards {
            _guards: (0..SHARDS).map(|idx| self.lock(idx)).collect(),
        }
    }

    /// Run a command that cannot grow the keyspace on the key's locked shard: a read, an
    /// in-place update, a removal, and the lazy expiry any of them may do on the way.
    #[inline]
    fn in_shard<R>(&self, key: &[u8], f: impl FnOnce(&mut Shard, u64) -> R) -> R {
        let (hash, idx) = self.locate(key);
        f(&mut self.lock(idx), hash)
    }

    /// Run a command that may grow the keyspace on the key's locked shard, then evict down to
    /// the bounds. `key` is never the victim: it was just written.
    #[inline]
    fn in_shard_then_evict<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&mut Shard, u64) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let (hash, idx) = self.locate(key);
        let mut shard = self.lock(idx);
        let out = f(&mut shard, hash)?;
        if self.over_bounds() {
            self.evict(shard, idx, key);
        }
        Ok(out)
    }

    /// Evict down to the bounds from shard `idx` on, for a caller that holds no shard lock
    /// (new rate-limit state may push values over `max_bytes`).
    fn evict_unlocked(&self, idx: usize) {
        if self.over_bounds() {
            self.evict(self.lock(idx), idx, &[]);
        }
    }

    /// A value that alone exceeds `max_bytes` can never be stored.
    fn check_capacity(&self, key: &[u8], cost: u64) -> StoreResult<()> {
        match self.bounds.max_bytes {
            Some(max_bytes) if cost > max_bytes => Err(StoreError::Capacity {
                key: String::from_utf8_lossy(key).into_owned(),
                size: cost,
                max_bytes,
            }),
            _ => Ok(()),
        }
    }

    #[inline]
    fn over_bounds(&self) -> bool {
        let over_keys = self
            .bounds
            .max_keys
            .is_some_and(|max| Stats::get(&self.stats.evictable_keys) > max);
        let over_bytes = self.bounds.max_bytes.is_some_and(|max| {
            Stats::get(&self.stats.evictable_bytes) + Stats::get(&self.stats.rate_limit_bytes) > max
        });
        over_keys || over_bytes
    }

    /// Bytes rate-limit state may still grow by before reaching its bound.
    #[inline]
    fn rate_limit_headroom(&self) -> u64 {
        self.rate_limit_bound
            .saturating_sub(Stats::get(&self.stats.rate_limit_bytes))
    }

    /// `rate_limit_headroom`, after reclaiming expired entries when it is below `need`: in
    /// `shard` (whose positions may move then), then in up to `RECLAIM_SHARDS` others taken in
    /// turn, so dead state anywhere is found. Those are only tried (`try_lock`): the caller
    /// holds `shard`, and waiting here could deadlock with a multi-key limit.
    fn rate_limit_room(&self, shard: &mut Shard, need: u64, now_ms: u64) -> u64 {
        let mut room = self.rate_limit_headroom();
        if need <= room {
            return room;
        }
        shard.reclaim_expired(now_ms, &self.stats);
        for _ in 0..RECLAIM_SHARDS {
            room = self.rate_limit_headroom();
            if need <= room {
                break;
            }
            let idx = self.reclaim_cursor.fetch_add(1, Relaxed) % SHARDS;
            let other = match self.shards[idx].0.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(mut other) = other {
                other.reclaim_expired(now_ms, &self.stats);
            }
        }
        self.rate_limit_headroom()
    }

    /// The error for rate-limit state that found no room for `key`.
    fn rate_limit_full(&self, key: &str) -> StoreError {
        StoreError::RateLimitCapacity {
            key: key.to_owned(),
            max_bytes: self.rate_limit_bound,
        }
    }

    /// Evict from the written shard first (its lock is already held); when it has nothing left
    /// to give, release it and visit the others one at a time.
    fn evict(&self, mut shard: MutexGuard<'_, Shard>, idx: usize, protect: &[u8]) {
        while self.over_bounds() && shard.evict_one(protect, &self.stats) {}
        drop(shard);
        for step in 1..SHARDS {
            if !self.over_bounds() {
                return;
            }
            let mut other = self.lock((idx + step) % SHARDS);
            while self.over_bounds() && other.evict_one(protect, &self.stats) {}
        }
    }

    /// Counters for `stats()`, `keys` counting live keys at `now_ms` (O(n), see `live_len`);
    /// `max_keys`/`max_bytes`/`max_rate_limit_bytes` are 0 when unbounded.
    #[must_use]
    pub fn stats_snapshot(&self, now_ms: u64) -> Vec<(&'static str, u64)> {
        let s = &self.stats;
        vec![
            ("keys", self.live_len(now_ms) as u64),
            ("used_bytes", Stats::get(&s.used_bytes)),
            ("evictions", Stats::get(&s.evictions)),
            ("expired", Stats::get(&s.expired)),
            ("hits", Stats::get(&s.hits)),
            ("misses", Stats::get(&s.misses)),
            ("lock_acquired", Stats::get(&s.lock_acquired)),
            ("lock_contended", Stats::get(&s.lock_contended)),
            ("rate_limit_allowed", Stats::get(&s.rate_limit_allowed)),
            ("rate_limit_denied", Stats::get(&s.rate_limit_denied)),
            ("rate_limit_bytes", Stats::get(&s.rate_limit_bytes)),
            ("max_keys", self.bounds.max_keys.unwrap_or(0)),
            ("max_bytes", self.bounds.max_bytes.unwrap_or(0)),
            (
                "max_rate_limit_bytes",
                self.bounds.rate_limit_bound().unwrap_or(0),
            ),
        ]
    }
}

/// Absolute expiry for a TTL in ms from now (saturating: a huge TTL means "practically never").
#[inline]
fn deadline(now_ms: u64, ttl_ms: u64) -> u64 {
    now_ms.saturating_add(ttl_ms).max(1)
}
