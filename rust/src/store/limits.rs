//! Rate limits: limiter state (see `rate_limit`) at "ratelimit:<key>", pinned, expiring when
//! the state is empty.

use super::entry::{Entry, Payload};
use super::rate_limit::{Algorithm, Decision, LimiterState};
use super::stats::Stats;
use super::{Store, StoreError, StoreResult};

/// Prefix of the key rate-limit state is stored at (the Redis backend uses the same layout).
pub const RATE_LIMIT_PREFIX: &str = "ratelimit:";

/// The keyspace key of rate limit `key`.
#[must_use]
pub fn rate_limit_key(key: &str) -> Vec<u8> {
    [RATE_LIMIT_PREFIX.as_bytes(), key.as_bytes()].concat()
}

impl Store {
    /// Record `cost` hits of limit `key` if they fit in `limit` per `window_ms`.
    pub fn rate_limit(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        cost: u64,
        algorithm: Algorithm,
        now_ms: u64,
    ) -> StoreResult<Decision> {
        let full = rate_limit_key(key);
        let decision = self.read(&full, |shard, hash| {
            match shard.find_live(hash, &full, now_ms, &self.stats) {
                Some(pos) => {
                    match shard.slab[pos].payload() {
                        Some(Payload::Limiter(state)) if state.algorithm() == algorithm => {}
                        Some(Payload::Limiter(state)) => {
                            return Err(StoreError::AlgorithmMismatch {
                                key: key.to_owned(),
                                existing: state.algorithm().name(),
                                requested: algorithm.name(),
                            })
                        }
                        _ => return Err(StoreError::WrongType),
                    }
                    let (decision, expires_at) = shard.update(pos, &self.stats, |entry| {
                        let Some(Payload::Limiter(state)) = entry.payload_mut() else {
                            unreachable!()
                        };
                        let decision = state.hit(now_ms, limit, window_ms, cost);
                        let expires_at = state.expires_at_ms(window_ms);
                        entry.set_expires_at(expires_at);
                        (decision, expires_at)
                    });
                    if expires_at <= now_ms {
                        // Empty state (e.g. a peek after the window passed): drop it.
                        shard.remove_at(pos, &self.stats);
                    }
                    Ok(decision)
                }
                None => {
                    let mut state = LimiterState::new(algorithm);
                    let decision = state.hit(now_ms, limit, window_ms, cost);
                    let expires_at = state.expires_at_ms(window_ms);
                    // A peek or a denied hit on fresh state records nothing worth keeping.
                    if expires_at > now_ms {
                        let entry = Entry::with_payload(&full, Payload::Limiter(state), expires_at)
                            .pinned();
                        shard.insert(hash, entry, &self.stats);
                    }
                    Ok(decision)
                }
            }
        })?;
        let counter = if decision.allowed {
            &self.stats.rate_limit_allowed
        } else {
            &self.stats.rate_limit_denied
        };
        Stats::bump(counter);
        Ok(decision)
    }
}
