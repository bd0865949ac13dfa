//! Keyspace-wide commands: `keys`, `scan`, `del_pattern`, `flush`, and the batched walk they share.
//!
//! Why walks go DOWN the slab: removal is `swap_remove`, which moves the last entry into the
//! hole, and inserts append, so an entry only ever moves to a lower position. A walk that has
//! visited every position >= p and continues below p therefore still meets every entry that is
//! below p now, wherever it moves later: each key present for the whole walk is visited at least
//! once (possibly twice, if it moved down past the cursor), even across lock releases.

use super::entry::Entry;
use super::glob::Glob;
use super::shard::Shard;
use super::stats::Stats;
use super::{Store, BATCH, SHARDS};

/// A SCAN cursor: (shard, exclusive upper bound of the positions still to visit in it).
/// Encoded as `shard << 32 | (u32::MAX - upper)`, so 0 is "shard 0, from its end": the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    shard: usize,
    upper: usize,
}

/// `upper` value meaning "from the end of the shard".
const FROM_END: usize = u32::MAX as usize;

impl Cursor {
    pub const START: Self = Self {
        shard: 0,
        upper: FROM_END,
    };

    /// Decode a cursor; None for one that no scan returned (past the last shard).
    #[must_use]
    pub fn decode(raw: u64) -> Option<Self> {
        let shard = (raw >> 32) as usize;
        let upper = FROM_END - (raw & u64::from(u32::MAX)) as usize;
        (shard < SHARDS).then_some(Self { shard, upper })
    }

    /// Encode; 0 once every shard is done.
    #[must_use]
    pub fn encode(self) -> u64 {
        if self.shard >= SHARDS {
            return 0;
        }
        ((self.shard as u64) << 32) | (FROM_END - self.upper.min(FROM_END)) as u64
    }
}

/// True when a glob pattern has no special characters, so it names exactly one key.
fn is_literal(pattern: &[u8]) -> bool {
    !pattern
        .iter()
        .any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
}

fn key_string(key: &[u8]) -> String {
    // Keys always come from Python `str`, so this never actually replaces anything.
    String::from_utf8_lossy(key).into_owned()
}

impl Store {
    /// Visit up to `budget` positions of shard `idx` below `upper`, descending, under one lock
    /// hold. `visit` may remove the entry at the position it is given (only that one) and hand
    /// it back; removed entries are freed after the lock is released, keeping the allocator's
    /// work out of the hold time. Returns the new upper bound; 0 when the shard is done.
    pub(super) fn walk_batch(
        &self,
        idx: usize,
        upper: usize,
        budget: usize,
        mut visit: impl FnMut(&mut Shard, usize) -> Option<Entry>,
    ) -> usize {
        let mut graveyard = Vec::new();
        let mut shard = self.lock(idx);
        let mut pos = upper.min(shard.len());
        for _ in 0..budget {
            if pos == 0 {
                break;
            }
            pos -= 1;
            // If `visit` removes `pos`, the entry moved into it came from the end: visited
            // already, or inserted after this walk began; either way no need to revisit.
            if let Some(removed) = visit(&mut shard, pos) {
                graveyard.push(removed);
            }
        }
        // Walks (the periodic sweep at least) are where a shrinking shard gives memory back.
        shard.maybe_shrink();
        drop(shard);
        drop(graveyard);
        pos
    }

    /// Walk every live entry in batches, calling `visit(shard, pos)`; expired entries met on the
    /// way are removed.
    fn walk_all(&self, now_ms: u64, mut visit: impl FnMut(&mut Shard, usize) -> Option<Entry>) {
        for idx in 0..SHARDS {
            let mut upper = FROM_END;
            while upper > 0 {
                upper = self.walk_batch(idx, upper, BATCH, |shard, pos| {
                    if shard.slab[pos].is_expired(now_ms) {
                        Stats::bump(&self.stats.expired);
                        Some(shard.remove_at(pos, &self.stats))
                    } else {
                        visit(shard, pos)
                    }
                });
            }
        }
    }

    /// Every live key matching a Redis glob pattern.
    pub fn keys(&self, pattern: &[u8], now_ms: u64) -> Vec<String> {
        if is_literal(pattern) {
            return if self.exists(pattern, now_ms) {
                vec![key_string(pattern)]
            } else {
                Vec::new()
            };
        }
        let glob = Glob::new(pattern);
        let mut out = Vec::new();
        self.walk_all(now_ms, |shard, pos| {
            let key = shard.slab[pos].key();
            if glob.matches(key) {
                out.push(key_string(key));
            }
            None
        });
        out
    }

    /// One SCAN step: visit about `count` entries from `cursor`; returns the next cursor (0 when
    /// done) and the matching live keys.
    pub fn scan(
        &self,
        cursor: u64,
        pattern: &[u8],
        count: usize,
        now_ms: u64,
    ) -> (u64, Vec<String>) {
        let Some(mut at) = Cursor::decode(cursor) else {
            return (0, Vec::new());
        };
        let glob = Glob::new(pattern);
        let mut keys = Vec::new();
        let mut budget = count.max(1);
        while budget > 0 && at.shard < SHARDS {
            let mut visited = 0;
            at.upper = self.walk_batch(at.shard, at.upper, budget.min(BATCH), |shard, pos| {
                visited += 1;
                let entry = &shard.slab[pos];
                if entry.is_expired(now_ms) {
                    Stats::bump(&self.stats.expired);
                    return Some(shard.remove_at(pos, &self.stats));
                }
                if glob.matches(entry.key()) {
                    keys.push(key_string(entry.key()));
                }
                None
            });
            budget -= visited;
            if at.upper == 0 {
                at = Cursor {
                    shard: at.shard + 1,
                    upper: FROM_END,
                };
            }
        }
        (at.encode(), keys)
    }

    /// Delete every live key matching a Redis glob pattern; the count removed.
    pub fn del_pattern(&self, pattern: &[u8], now_ms: u64) -> usize {
        if is_literal(pattern) {
            return usize::from(self.delete(pattern, now_ms));
        }
        let glob = Glob::new(pattern);
        let mut removed = 0;
        self.walk_all(now_ms, |shard, pos| {
            if glob.matches(shard.slab[pos].key()) {
                removed += 1;
                return Some(shard.remove_at(pos, &self.stats));
            }
            None
        });
        removed
    }

    /// Delete every key, locks and rate-limit state included; the count of live keys removed.
    /// Each shard is emptied under its lock, but its entries are freed after unlocking.
    pub fn flush(&self, now_ms: u64) -> usize {
        let mut removed = 0;
        for idx in 0..SHARDS {
            let entries = self.lock(idx).take_all(&self.stats);
            removed += entries.iter().filter(|e| !e.is_expired(now_ms)).count();
        }
        removed
    }
}
