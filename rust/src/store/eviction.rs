//! Approximated LRU eviction, Redis style: sample random entries of a shard into a pool of the
//! 16 best candidates (longest idle) and evict the best one still valid. Only values are
//! evicted; rate-limit state at its bound makes room by reclaiming expired entries only
//! (`reclaim_expired`), since evicting live state would reset a count.

use super::shard::Shard;
use super::stats::Stats;

/// Random entries examined per eviction (Redis `maxmemory-samples` defaults to 5).
const SAMPLES: usize = 8;
/// Candidates kept between evictions, like Redis's `EVPOOL_SIZE`.
const POOL_SIZE: usize = 16;
/// Sampling rounds before falling back to a linear search (shards full of pinned entries).
const ROUNDS: usize = 4;
/// Random entries examined by `reclaim_expired` (Redis's active expiry takes 20 per loop).
const RECLAIM_SAMPLES: usize = 20;

/// Best eviction candidates of one shard, as (slab position, LRU stamp) sorted by idle time,
/// longest first. A candidate is valid only while the entry at that position still carries that
/// stamp: stamps are unique per shard, so a moved, re-accessed or replaced entry drops out.
#[derive(Debug, Default)]
pub struct EvictionPool {
    candidates: Vec<(u32, u32)>,
}

impl Shard {
    /// Evict one evictable entry other than `protect` (the key being written); false when this
    /// shard has none.
    pub fn evict_one(&mut self, protect: &[u8], stats: &Stats) -> bool {
        if self.evictable == 0 || self.slab.is_empty() {
            return false;
        }
        for _ in 0..ROUNDS {
            self.populate_pool(protect);
            while let Some((pos, stamp)) = self.pool.candidates.first().copied() {
                self.pool.candidates.remove(0);
                let pos = pos as usize;
                if let Some(entry) = self.slab.get(pos) {
                    if entry.lru == stamp && !entry.is_pinned() && entry.key() != protect {
                        self.remove_at(pos, stats);
                        Stats::bump(&stats.evictions);
                        return true;
                    }
                }
            }
        }
        // Sampling kept hitting pinned entries or `protect`: find any victim linearly.
        let victim = self
            .slab
            .iter()
            .position(|e| !e.is_pinned() && e.key() != protect);
        match victim {
            Some(pos) => {
                self.remove_at(pos, stats);
                Stats::bump(&stats.evictions);
                true
            }
            None => false,
        }
    }

    /// Remove the expired entries among `RECLAIM_SAMPLES` random positions: room for new
    /// rate-limit state before the sweep gets there, at a bounded cost, without touching a live
    /// entry. Positions may move (`remove_at`). Returns the count removed.
    pub fn reclaim_expired(&mut self, now_ms: u64, stats: &Stats) -> usize {
        let mut removed = 0;
        for _ in 0..RECLAIM_SAMPLES {
            if self.slab.is_empty() {
                break;
            }
            let pos = self.random_pos();
            if self.slab[pos].is_expired(now_ms) {
                self.remove_at(pos, stats);
                Stats::bump(&stats.expired);
                removed += 1;
            }
        }
        removed
    }

    fn populate_pool(&mut self, protect: &[u8]) {
        for _ in 0..SAMPLES {
            let pos = self.random_pos();
            let entry = &self.slab[pos];
            if entry.is_pinned() || entry.key() == protect {
                continue;
            }
            let (stamp, idle) = (entry.lru, self.idle(entry));
            let candidate = (pos as u32, stamp);
            let pool = &self.pool.candidates;
            if pool.contains(&candidate) {
                continue;
            }
            // Insert sorted by idle time, longest first; drop the youngest beyond POOL_SIZE.
            let at = pool
                .iter()
                .position(|&(p, s)| {
                    let other = self.slab.get(p as usize).filter(|e| e.lru == s);
                    other.is_none_or(|e| self.idle(e) < idle)
                })
                .unwrap_or(pool.len());
            if at < POOL_SIZE {
                self.pool.candidates.insert(at, candidate);
                self.pool.candidates.truncate(POOL_SIZE);
            }
        }
    }
}
