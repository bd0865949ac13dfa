//! One keyspace entry, laid out for memory: the key and a string value share one allocation.
//!
//! `Entry` is 40 bytes: the blob (16), an optional boxed payload for the rarer types (8), the
//! expiry packed with the key length and a "pinned" flag (8), the LRU stamp (4) and 32 bits of
//! the key's hash (4). A million 10-byte keys with 50-byte values then cost one 60-byte
//! allocation plus 40 bytes of slab each. Keeping the hash in the entry lets the index rehash
//! and remove without touching (cache-missing) the blob of every entry.

use ahash::RandomState;
use hashbrown::{HashMap, HashSet};

use super::rate_limit::LimiterState;
use super::stats::Class;

/// Estimated bytes an entry costs beyond its key and value: the slab slot (40), its index slot
/// (~8 with hashbrown's load factor), and the allocator's header and rounding of the blob (~16).
/// `used_bytes` and `max_bytes` count `key + value + ENTRY_OVERHEAD`.
pub const ENTRY_OVERHEAD: u64 = 64;
/// Estimated bytes per set member or hash field beyond its text: a boxed str (16) in a
/// hashbrown slot, its control byte and allocation header.
pub const MEMBER_OVERHEAD: u64 = 32;
/// Estimated bytes of an empty set/hash/limiter payload (the box, the table header, the hasher).
pub const PAYLOAD_OVERHEAD: u64 = 64;

/// `packed` = expiry in its low 48 bits (ms: 8900 years of store uptime), key length in the next
/// 15, and the "pinned" flag in the top bit. A pinned entry (lock or rate-limit state) is never
/// evicted and not counted against `max_keys`/`max_bytes`.
const EXPIRY_BITS: u32 = 48;
/// Largest representable expiry; later deadlines are clamped to it ("practically never").
pub const MAX_EXPIRY_MS: u64 = (1 << EXPIRY_BITS) - 1;
const PINNED: u64 = 1 << 63;
/// Keys are limited to the 15 bits of length left in `packed` (memcached allows 250 bytes).
pub const MAX_KEY_LEN: usize = (1 << 15) - 1;

/// Value types that are not plain strings.
#[derive(Debug)]
pub enum Payload {
    Set(SetValue),
    Hash(HashValue),
    Limiter(LimiterState),
}

impl Payload {
    /// Estimated heap bytes of the payload, for memory accounting.
    pub fn bytes(&self) -> u64 {
        PAYLOAD_OVERHEAD
            + match self {
                Self::Set(set) => set.bytes,
                Self::Hash(hash) => hash.bytes,
                Self::Limiter(state) => state.heap_bytes() as u64,
            }
    }
}

/// A Redis set of `str` members; `bytes` is kept in step with the members.
#[derive(Debug, Default)]
pub struct SetValue {
    pub members: HashSet<Box<str>, RandomState>,
    pub bytes: u64,
}

/// A Redis hash of `str` fields to `str` values; `bytes` is kept in step with the fields.
#[derive(Debug, Default)]
pub struct HashValue {
    pub fields: HashMap<Box<str>, Box<str>, RandomState>,
    pub bytes: u64,
}

/// A keyspace entry. `blob` holds the key bytes followed by the string value (a lock's token is
/// a string value too); sets, hashes and limiter state live in `payload` and leave the value
/// part of the blob empty.
#[derive(Debug)]
pub struct Entry {
    blob: Box<[u8]>,
    payload: Option<Box<Payload>>,
    /// Expiry (absolute store ms, 0 = none: the clock starts at 0 and a TTL is >= 1 ms), key
    /// length and pinned flag; see `EXPIRY_BITS`.
    packed: u64,
    /// Per-shard logical access counter at the last access (wrapping; see `Shard::touch`).
    pub lru: u32,
    /// Low 32 bits of the key's hash, set by `Shard::insert`.
    pub hash: u32,
}

impl Entry {
    /// A string entry: one allocation for key + value.
    pub fn string(key: &[u8], value: &[u8], expires_at: u64) -> Self {
        debug_assert!(key.len() <= MAX_KEY_LEN);
        let mut blob = Vec::with_capacity(key.len() + value.len());
        blob.extend_from_slice(key);
        blob.extend_from_slice(value);
        Self {
            blob: blob.into_boxed_slice(),
            payload: None,
            packed: ((key.len() as u64) << EXPIRY_BITS) | expires_at.min(MAX_EXPIRY_MS),
            lru: 0,
            hash: 0,
        }
    }

    /// An entry holding a set, hash or limiter.
    pub fn with_payload(key: &[u8], payload: Payload, expires_at: u64) -> Self {
        let mut entry = Self::string(key, &[], expires_at);
        entry.payload = Some(Box::new(payload));
        entry
    }

    /// Mark the entry never-evictable (locks, rate-limit state).
    #[must_use]
    pub fn pinned(mut self) -> Self {
        self.packed |= PINNED;
        self
    }

    #[inline]
    pub fn key_len(&self) -> usize {
        ((self.packed & !PINNED) >> EXPIRY_BITS) as usize
    }

    #[inline]
    pub fn key(&self) -> &[u8] {
        &self.blob[..self.key_len()]
    }

    /// The string value (empty for payload entries).
    #[inline]
    pub fn value(&self) -> &[u8] {
        &self.blob[self.key_len()..]
    }

    #[inline]
    pub fn is_pinned(&self) -> bool {
        self.packed & PINNED != 0
    }

    /// What the entry's bytes count towards: a pinned entry is a lock unless it holds
    /// rate-limit state.
    #[inline]
    pub fn class(&self) -> Class {
        match (self.is_pinned(), self.payload.as_deref()) {
            (false, _) => Class::Value,
            (true, Some(Payload::Limiter(_))) => Class::Limiter,
            (true, _) => Class::Lock,
        }
    }

    #[inline]
    pub fn is_string(&self) -> bool {
        self.payload.is_none()
    }

    pub fn payload(&self) -> Option<&Payload> {
        self.payload.as_deref()
    }

    pub fn payload_mut(&mut self) -> Option<&mut Payload> {
        self.payload.as_deref_mut()
    }

    /// Replace the string value, keeping key, expiry and flags: one new allocation.
    pub fn set_value(&mut self, value: &[u8]) {
        let mut blob = Vec::with_capacity(self.key_len() + value.len());
        blob.extend_from_slice(self.key());
        blob.extend_from_slice(value);
        self.blob = blob.into_boxed_slice();
    }

    /// Absolute expiry in store ms; 0 = none.
    #[inline]
    pub fn expires_at(&self) -> u64 {
        self.packed & MAX_EXPIRY_MS
    }

    /// Set the expiry (0 = none), clamped to `MAX_EXPIRY_MS`.
    #[inline]
    pub fn set_expires_at(&mut self, at: u64) {
        self.packed = (self.packed & !MAX_EXPIRY_MS) | at.min(MAX_EXPIRY_MS);
    }

    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        let at = self.expires_at();
        at != 0 && at <= now_ms
    }

    /// Bytes counted by `used_bytes`: key + value + fixed overheads.
    pub fn cost(&self) -> u64 {
        self.blob.len() as u64 + ENTRY_OVERHEAD + self.payload.as_ref().map_or(0, |p| p.bytes())
    }
}

/// Bytes a string entry of these sizes would cost (checked against `max_bytes` before writing).
pub fn string_cost(key_len: usize, value_len: usize) -> u64 {
    (key_len + value_len) as u64 + ENTRY_OVERHEAD
}

/// Bytes an entry holding `state` at a key of `key_len` bytes costs (what `Entry::cost` says
/// once it is stored).
pub fn limiter_cost(key_len: usize, state: &LimiterState) -> u64 {
    key_len as u64 + ENTRY_OVERHEAD + PAYLOAD_OVERHEAD + state.heap_bytes() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_small() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }

    #[test]
    fn blob_holds_key_then_value() {
        let mut entry = Entry::string(b"key", b"value", 0);
        assert_eq!(entry.key(), b"key");
        assert_eq!(entry.value(), b"value");
        assert!(!entry.is_pinned());
        assert_eq!(entry.cost(), 8 + ENTRY_OVERHEAD);
        entry.set_value(b"v2");
        assert_eq!((entry.key(), entry.value()), (&b"key"[..], &b"v2"[..]));
        let pinned = Entry::string(b"lock:x", b"tok", 5).pinned();
        assert!(pinned.is_pinned());
        assert_eq!(pinned.key(), b"lock:x");
        assert!(pinned.is_expired(5) && !pinned.is_expired(4));
        let mut long = Entry::string(&vec![b'k'; MAX_KEY_LEN], b"v", u64::MAX).pinned();
        assert_eq!(
            (long.key_len(), long.expires_at()),
            (MAX_KEY_LEN, MAX_EXPIRY_MS)
        );
        long.set_expires_at(0);
        assert_eq!(long.expires_at(), 0);
        assert!(long.is_pinned() && !long.is_expired(u64::MAX));
        assert_eq!(long.value(), b"v");
    }
}
