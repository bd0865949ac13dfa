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
    /// Live entries of every kind (expired ones count until removed).
    pub keys: AtomicU64,
    /// `Entry::cost` summed over all entries.
    pub used_bytes: AtomicU64,
    /// Entries and bytes that eviction may free (not locks or rate-limit state).
    pub evictable_keys: AtomicU64,
    pub evictable_bytes: AtomicU64,
}

impl Stats {
    #[inline]
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Account an entry of `cost` bytes appearing.
    pub fn added(&self, cost: u64, evictable: bool) {
        self.keys.fetch_add(1, Relaxed);
        self.used_bytes.fetch_add(cost, Relaxed);
        if evictable {
            self.evictable_keys.fetch_add(1, Relaxed);
            self.evictable_bytes.fetch_add(cost, Relaxed);
        }
    }

    /// Account an entry of `cost` bytes disappearing.
    pub fn removed(&self, cost: u64, evictable: bool) {
        self.keys.fetch_sub(1, Relaxed);
        self.used_bytes.fetch_sub(cost, Relaxed);
        if evictable {
            self.evictable_keys.fetch_sub(1, Relaxed);
            self.evictable_bytes.fetch_sub(cost, Relaxed);
        }
    }

    /// Account an entry changing size and/or evictability in place.
    pub fn changed(&self, old: (u64, bool), new: (u64, bool)) {
        if old != new {
            self.removed(old.0, old.1);
            self.added(new.0, new.1);
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }
}
