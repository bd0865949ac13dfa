//! One shard of the keyspace: a dense slab of entries and a hash index of slab positions.
//!
//! Removal is `swap_remove`: the last entry moves into the hole, so the slab stays dense (O(1)
//! random sampling for eviction) and positions only ever move DOWN. Cursors (scan, sweep,
//! pattern delete) walk positions in descending order, which that invariant makes safe.

use ahash::RandomState;
use hashbrown::HashTable;

use super::entry::Entry;
use super::stats::{Class, Stats};

/// Shard contents. Always used under its `Mutex` in `Store`.
#[derive(Debug)]
pub struct Shard {
    pub slab: Vec<Entry>,
    /// Slab positions, hashed by `table_hash` of the entry's stored 32-bit key hash.
    index: HashTable<u32>,
    /// Logical LRU clock, bumped on every access; wraps after 2^32 accesses to this shard,
    /// after which very old entries look young again (harmless for an approximation).
    lru_clock: u32,
    /// xorshift state for eviction sampling (statistical, not security-relevant).
    rng: u64,
    pub(super) pool: super::eviction::EvictionPool,
    /// Entries with `is_pinned() == false`.
    pub evictable: usize,
}

/// Hash a key with the store's keyed hasher. The store picks the shard from the top bits and
/// the shard keeps the low 32 bits (`Entry::hash`), so the two are independent.
#[inline]
pub fn hash_key(hasher: &RandomState, key: &[u8]) -> u64 {
    hasher.hash_one(key)
}

/// The index's hash, rebuilt from an entry's stored 32 bits without touching its key. The odd
/// multiplier spreads them into the top bits too (hashbrown's 7-bit tag), while the low bits
/// (the bucket) stay a bijection of the hash's low bits.
#[inline]
fn table_hash(hash32: u32) -> u64 {
    u64::from(hash32).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Shard {
    pub fn new(seed: u64) -> Self {
        Self {
            slab: Vec::new(),
            index: HashTable::new(),
            lru_clock: 0,
            rng: seed | 1,
            pool: super::eviction::EvictionPool::default(),
            evictable: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// Position of `key`, expired or not.
    #[inline]
    pub fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let (slab, hash32) = (&self.slab, hash as u32);
        self.index
            .find(table_hash(hash32), |&pos| {
                // Compare the stored hash first: no blob access for the rare tag collision.
                let entry = &slab[pos as usize];
                entry.hash == hash32 && entry.key() == key
            })
            .map(|&pos| pos as usize)
    }

    /// Position of a live `key`, bumping its LRU stamp; an expired entry is removed on the way
    /// (lazy expiry) and reported missing.
    #[inline]
    pub fn find_live(
        &mut self,
        hash: u64,
        key: &[u8],
        now_ms: u64,
        stats: &Stats,
    ) -> Option<usize> {
        let pos = self.find(hash, key)?;
        if self.slab[pos].is_expired(now_ms) {
            self.remove_at(pos, stats);
            Stats::bump(&stats.expired);
            return None;
        }
        self.touch(pos);
        Some(pos)
    }

    /// Record an access for LRU.
    #[inline]
    pub fn touch(&mut self, pos: usize) {
        self.lru_clock = self.lru_clock.wrapping_add(1);
        self.slab[pos].lru = self.lru_clock;
    }

    /// How long ago (in shard accesses) the entry was last touched.
    #[inline]
    pub fn idle(&self, entry: &Entry) -> u32 {
        self.lru_clock.wrapping_sub(entry.lru)
    }

    /// Insert an entry whose key is absent; returns its position.
    pub fn insert(&mut self, hash: u64, mut entry: Entry, stats: &Stats) -> usize {
        debug_assert!(self.find(hash, entry.key()).is_none());
        let pos = self.slab.len();
        assert!(u32::try_from(pos).is_ok(), "shard full");
        if pos == self.slab.capacity() {
            // Grow by ~1.25x rather than doubling: the slab is the biggest per-key structure,
            // so bounding its slack matters more than a few extra reallocations.
            self.slab.reserve_exact((pos / 4).max(16));
        }
        let class = entry.class();
        stats.added(entry.cost(), class);
        self.evictable += usize::from(class == Class::Value);
        entry.hash = hash as u32;
        self.slab.push(entry);
        let slab = &self.slab;
        self.index
            .insert_unique(table_hash(hash as u32), pos as u32, |&p| {
                table_hash(slab[p as usize].hash)
            });
        self.touch(pos);
        pos
    }

    /// Replace the entry at `pos` (same key) with `entry`, accounting the change.
    pub fn replace(&mut self, pos: usize, mut entry: Entry, stats: &Stats) {
        debug_assert_eq!(self.slab[pos].key(), entry.key());
        let old = &self.slab[pos];
        let (old_class, new_class) = (old.class(), entry.class());
        stats.changed((old.cost(), old_class), (entry.cost(), new_class));
        self.evictable = self.evictable + usize::from(new_class == Class::Value)
            - usize::from(old_class == Class::Value);
        entry.hash = old.hash;
        self.slab[pos] = entry;
        self.touch(pos);
    }

    /// Remove the entry at `pos`; the last entry moves into its place.
    pub fn remove_at(&mut self, pos: usize, stats: &Stats) -> Entry {
        self.index
            .find_entry(table_hash(self.slab[pos].hash), |&p| p as usize == pos)
            .expect("slab entry is indexed")
            .remove();
        let last = self.slab.len() - 1;
        let entry = self.slab.swap_remove(pos);
        if pos != last {
            // The former last entry now lives at `pos`: repoint its index slot.
            let slot = self
                .index
                .find_mut(table_hash(self.slab[pos].hash), |&p| p as usize == last)
                .expect("moved entry is indexed");
            *slot = pos as u32;
        }
        let class = entry.class();
        stats.removed(entry.cost(), class);
        self.evictable -= usize::from(class == Class::Value);
        entry
    }

    /// Take every entry out (the caller drops them after unlocking), accounting their removal.
    pub fn take_all(&mut self, stats: &Stats) -> Vec<Entry> {
        for entry in &self.slab {
            stats.removed(entry.cost(), entry.class());
        }
        self.index = HashTable::new();
        self.evictable = 0;
        self.pool = super::eviction::EvictionPool::default();
        std::mem::take(&mut self.slab)
    }

    /// Uniform random slab position (the slab must be non-empty).
    pub fn random_pos(&mut self) -> usize {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((u128::from(r) * self.slab.len() as u128) >> 64) as usize
    }

    /// Release slack after many removals, so a shrinking keyspace gives memory back. Called
    /// once per walk batch rather than per removal: the check is cheap, the rebuild is not.
    pub fn maybe_shrink(&mut self) {
        let (len, cap) = (self.slab.len(), self.slab.capacity());
        if cap > 64 && len < cap / 4 {
            self.slab.shrink_to(len + len / 4);
            let slab = &self.slab;
            self.index
                .shrink_to(len, |&p| table_hash(slab[p as usize].hash));
        }
    }
}

impl Shard {
    /// Mutate the entry at `pos` in place (same key, same class), accounting its size change.
    pub fn update<R>(&mut self, pos: usize, stats: &Stats, f: impl FnOnce(&mut Entry) -> R) -> R {
        let entry = &mut self.slab[pos];
        let before = (entry.cost(), entry.class());
        let out = f(entry);
        let after = (entry.cost(), entry.class());
        debug_assert_eq!(before.1, after.1, "update must not change the class");
        stats.changed(before, after);
        out
    }
}
