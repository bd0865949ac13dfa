//! Store-wide counters: relaxed atomics, updated under a shard lock or lock-free.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters exported by `stats()`, plus the evictable totals that eviction bounds.
///
/// Relaxed ordering everywhere: each counter is a statistic or a bound checked approximately
/// across shards; no other memory is published through them.
#[derive(Debug, Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub evictions: AtomicU64,
    pub expired: AtomicU64,
    pub lock_acquired: AtomicU64,
    pub lock_contended: AtomicU64,
    pub rate_limit_allowed: AtomicU64,
    pub rate_limit_denied: AtomicU64,
    /// Entries of every kind (expired ones count until removed: `Store::live_len` skips them).
    pub keys: AtomicU64,
    /// `Entry::cost` summed over all entries.
    pub used_bytes: AtomicU64,
    /// Entries and bytes that eviction may free (not locks or rate-limit state).
    pub evictable_keys: AtomicU64,
    pub evictable_bytes: AtomicU64,
    /// Bytes of rate-limit state, bounded by `KeyspaceBounds::rate_limit_bound`.
    pub rate_limit_bytes: AtomicU64,
}

/// What an entry's bytes count towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Values of every type: evictable, under `max_keys` / `max_bytes`.
    Value,
    /// Rate-limit state: never evicted while it holds hits, under the rate-limit bound.
    Limiter,
    /// Locks: never evicted, unbounded (each goes by its TTL).
    Lock,
}

impl Stats {
    #[inline]
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Account an entry of `cost` bytes appearing.
    pub fn added(&self, cost: u64, class: Class) {
        self.apply(cost, class, |counter, n| counter.fetch_add(n, Relaxed));
    }

    /// Account an entry of `cost` bytes disappearing.
    pub fn removed(&self, cost: u64, class: Class) {
        self.apply(cost, class, |counter, n| counter.fetch_sub(n, Relaxed));
    }

    /// Apply `op` (add or subtract) to the counters an entry of `class` counts in.
    #[inline]
    fn apply(&self, cost: u64, class: Class, op: impl Fn(&AtomicU64, u64) -> u64) {
        op(&self.keys, 1);
        op(&self.used_bytes, cost);
        match class {
            Class::Value => {
                op(&self.evictable_keys, 1);
                op(&self.evictable_bytes, cost);
            }
            Class::Limiter => {
                op(&self.rate_limit_bytes, cost);
            }
            Class::Lock => {}
        }
    }

    /// Account an entry changing size and/or class in place.
    pub fn changed(&self, old: (u64, Class), new: (u64, Class)) {
        if old != new {
            self.removed(old.0, old.1);
            self.added(new.0, new.1);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
