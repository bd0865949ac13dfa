//! Hash commands. An emptied hash disappears, like in Redis.

use super::entry::{Entry, HashValue, Payload, MEMBER_OVERHEAD};
use super::shard::Shard;
use super::{Store, StoreError, StoreResult};

/// The hash at `pos`, or WRONGTYPE.
fn hash_at(shard: &mut Shard, pos: usize) -> StoreResult<&mut HashValue> {
    match shard.slab[pos].payload_mut() {
        Some(Payload::Hash(hash)) => Ok(hash),
        _ => Err(StoreError::WrongType),
    }
}

fn field_bytes(field: &str, value: &str) -> u64 {
    (field.len() + value.len()) as u64 + MEMBER_OVERHEAD
}

impl Store {
    /// Set a field; 1 when new, 0 when overwritten. Fails (changing nothing) if the hash would
    /// exceed `max_bytes` on its own.
    pub fn hset(&self, key: &[u8], field: &str, value: &str, now_ms: u64) -> StoreResult<usize> {
        self.in_shard_then_evict(key, |shard, hash| {
            let (pos, old_bytes) = match shard.find_live(hash, key, now_ms, &self.stats) {
                Some(pos) => {
                    let map = hash_at(shard, pos)?;
                    let old = map.fields.get(field).map(|v| field_bytes(field, v));
                    let cost =
                        shard.slab[pos].cost() - old.unwrap_or(0) + field_bytes(field, value);
                    self.check_capacity(key, cost)?;
                    (pos, old)
                }
                None => {
                    let empty = Entry::with_payload(key, Payload::Hash(HashValue::default()), 0);
                    self.check_capacity(key, empty.cost() + field_bytes(field, value))?;
                    (shard.insert(hash, empty, &self.stats), None)
                }
            };
            shard.update(pos, &self.stats, |entry| {
                let Some(Payload::Hash(map)) = entry.payload_mut() else {
                    unreachable!()
                };
                map.bytes = map.bytes - old_bytes.unwrap_or(0) + field_bytes(field, value);
                match map.fields.get_mut(field) {
                    Some(slot) => *slot = value.into(),
                    None => {
                        map.fields.insert(field.into(), value.into());
                    }
                }
            });
            Ok(usize::from(old_bytes.is_none()))
        })
    }

    pub fn hget(&self, key: &[u8], field: &str, now_ms: u64) -> StoreResult<Option<String>> {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                None => Ok(None),
                Some(pos) => Ok(hash_at(shard, pos)?
                    .fields
                    .get(field)
                    .map(ToString::to_string)),
            }
        })
    }

    pub fn hgetall(&self, key: &[u8], now_ms: u64) -> StoreResult<Vec<(String, String)>> {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                None => Ok(Vec::new()),
                Some(pos) => Ok(hash_at(shard, pos)?
                    .fields
                    .iter()
                    .map(|(f, v)| (f.to_string(), v.to_string()))
                    .collect()),
            }
        })
    }

    /// Remove fields; the count removed.
    pub fn hdel(&self, key: &[u8], fields: &[&str], now_ms: u64) -> StoreResult<usize> {
        self.in_shard(key, |shard, hash| {
            let Some(pos) = shard.find_live(hash, key, now_ms, &self.stats) else {
                return Ok(0);
            };
            hash_at(shard, pos)?;
            let (removed, empty) = shard.update(pos, &self.stats, |entry| {
                let Some(Payload::Hash(map)) = entry.payload_mut() else {
                    unreachable!()
                };
                let mut removed = 0;
                for field in fields {
                    if let Some(value) = map.fields.remove(*field) {
                        map.bytes -= field_bytes(field, &value);
                        removed += 1;
                    }
                }
                (removed, map.fields.is_empty())
            });
            if empty {
                shard.remove_at(pos, &self.stats);
            }
            Ok(removed)
        })
    }

    pub fn hlen(&self, key: &[u8], now_ms: u64) -> StoreResult<usize> {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                None => Ok(0),
                Some(pos) => Ok(hash_at(shard, pos)?.fields.len()),
            }
        })
    }
}
