//! Set commands. An emptied set disappears, like in Redis.

use super::entry::{Entry, Payload, SetValue, MEMBER_OVERHEAD};
use super::shard::Shard;
use super::{Store, StoreError, StoreResult};

/// The set at `pos`, or WRONGTYPE.
fn set_at(shard: &mut Shard, pos: usize) -> StoreResult<&mut SetValue> {
    match shard.slab[pos].payload_mut() {
        Some(Payload::Set(set)) => Ok(set),
        _ => Err(StoreError::WrongType),
    }
}

impl Store {
    /// Add members; the count newly added. Fails (changing nothing) if the set would exceed
    /// `max_bytes` on its own.
    pub fn sadd(&self, key: &[u8], members: Vec<String>, now_ms: u64) -> StoreResult<usize> {
        self.in_shard_then_evict(key, |shard, hash| {
            let (pos, created) = match shard.find_live(hash, key, now_ms, &self.stats) {
                Some(pos) => {
                    set_at(shard, pos)?;
                    (pos, false)
                }
                None => {
                    let empty = Entry::with_payload(key, Payload::Set(SetValue::default()), 0);
                    (shard.insert(hash, empty, &self.stats), true)
                }
            };
            let mut added = Vec::new();
            shard.update(pos, &self.stats, |entry| {
                let Some(Payload::Set(set)) = entry.payload_mut() else {
                    unreachable!()
                };
                for member in members {
                    let bytes = member.len() as u64 + MEMBER_OVERHEAD;
                    let member: Box<str> = member.into_boxed_str();
                    if !set.members.contains(&member) {
                        set.bytes += bytes;
                        added.push(member.clone());
                        set.members.insert(member);
                    }
                }
            });
            let cost = shard.slab[pos].cost();
            if let Err(err) = self.check_capacity(key, cost) {
                // Undo: a failed call changes nothing.
                if created {
                    shard.remove_at(pos, &self.stats);
                } else {
                    shard.update(pos, &self.stats, |entry| {
                        let Some(Payload::Set(set)) = entry.payload_mut() else {
                            unreachable!()
                        };
                        for member in &added {
                            set.members.remove(member);
                            set.bytes -= member.len() as u64 + MEMBER_OVERHEAD;
                        }
                    });
                }
                return Err(err);
            }
            Ok(added.len())
        })
    }

    /// Remove members; the count removed.
    pub fn srem(&self, key: &[u8], members: &[&str], now_ms: u64) -> StoreResult<usize> {
        self.in_shard(key, |shard, hash| {
            let Some(pos) = shard.find_live(hash, key, now_ms, &self.stats) else {
                return Ok(0);
            };
            set_at(shard, pos)?;
            let (removed, empty) = shard.update(pos, &self.stats, |entry| {
                let Some(Payload::Set(set)) = entry.payload_mut() else {
                    unreachable!()
                };
                let mut removed = 0;
                for member in members {
                    if set.members.remove(*member) {
                        set.bytes -= member.len() as u64 + MEMBER_OVERHEAD;
                        removed += 1;
                    }
                }
                (removed, set.members.is_empty())
            });
            if empty {
                shard.remove_at(pos, &self.stats);
            }
            Ok(removed)
        })
    }

    pub fn sismember(&self, key: &[u8], member: &str, now_ms: u64) -> StoreResult<bool> {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                None => Ok(false),
                Some(pos) => Ok(set_at(shard, pos)?.members.contains(member)),
            }
        })
    }

    /// Pass the members of the set at `key` (none when missing) to `f` under the shard lock.
    pub fn smembers_with<R>(
        &self,
        key: &[u8],
        now_ms: u64,
        f: impl FnOnce(&mut dyn Iterator<Item = &str>) -> R,
    ) -> StoreResult<R> {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                None => Ok(f(&mut std::iter::empty())),
                Some(pos) => Ok(f(&mut set_at(shard, pos)?.members.iter().map(|m| &**m))),
            }
        })
    }

    pub fn smembers(&self, key: &[u8], now_ms: u64) -> StoreResult<Vec<String>> {
        self.smembers_with(key, now_ms, |members| members.map(str::to_owned).collect())
    }

    pub fn scard(&self, key: &[u8], now_ms: u64) -> StoreResult<usize> {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                None => Ok(0),
                Some(pos) => Ok(set_at(shard, pos)?.members.len()),
            }
        })
    }
}
