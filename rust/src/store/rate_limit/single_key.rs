//! Single-key rate limits: limiter state (see `algorithm`) at "ratelimit:<key>", pinned,
//! expiring when the state is empty.
//!
//! Memory: the state counts against `KeyspaceBounds::rate_limit_bound` (a share of `max_bytes`). Live
//! state is never evicted: that would reset its count, and a caller who controls recency (by
//! hitting other keys in between) could then reset the count of the key he is hammering. A hit
//! that needs more state than the bound leaves (a new key, or a full sliding log doubling its
//! buffer) first reclaims expired entries of its shard, then fails with `RateLimitCapacity`,
//! recording nothing: existing keys keep exact counts, new keys wait for old state to expire.
//! Concurrent calls on different shards each check the room alone, so the bound may be passed
//! by at most one entry's growth per concurrent caller.

use super::algorithm::{Algorithm, Decision, LimiterState};
use super::{gcra, rate_limit_key};
use crate::store::entry::{limiter_cost, Entry, Payload};
use crate::store::stats::Stats;
use crate::store::{Store, StoreError, StoreResult};

/// The limiter state of an entry already checked to hold one.
fn limiter(entry: &Entry) -> &LimiterState {
    let Some(Payload::Limiter(state)) = entry.payload() else {
        unreachable!("checked to be a limiter")
    };
    state
}

impl Store {
    /// Record `cost` hits of limit `key` if they fit in `limit` per `window_ms`.
    ///
    /// Fails with `RateLimitCapacity`, recording nothing, when the hit needs more rate-limit
    /// state than the bound leaves (module docs), and with `InvalidArgument` for `gcra` beyond
    /// `gcra::MAX_SPAN`.
    pub fn rate_limit(
        &self,
        key: &str,
        limit: u64,
        window_ms: u64,
        cost: u64,
        algorithm: Algorithm,
        now_ms: u64,
    ) -> StoreResult<Decision> {
        if algorithm == Algorithm::Gcra {
            gcra::check_span(limit, window_ms).map_err(StoreError::InvalidArgument)?;
        }
        let full = rate_limit_key(key);
        // `in_shard_then_evict`: new state may push values over `max_bytes`, which then evicts values.
        let decision = self.in_shard_then_evict(&full, |shard, hash| {
            match shard.find_live(hash, &full, now_ms, &self.stats) {
                Some(mut pos) => {
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
                    let growth = limiter(&shard.slab[pos]).max_growth();
                    let mut room = self.rate_limit_headroom();
                    if growth > room {
                        room = self.rate_limit_room(shard, growth, now_ms);
                        // Reclaiming may have moved the entry (never removed it: it is live).
                        pos = shard
                            .find(hash, &full)
                            .expect("live state is not reclaimed");
                    }
                    // Near the bound, decide on a copy and keep it only if it fits; the common
                    // case updates in place.
                    let trial = if growth <= room {
                        None
                    } else {
                        let state = limiter(&shard.slab[pos]);
                        let mut trial = state.clone();
                        let decision = trial.hit(now_ms, limit, window_ms, cost);
                        if trial.heap_bytes() > state.heap_bytes()
                            && (trial.heap_bytes() - state.heap_bytes()) as u64 > room
                        {
                            return Err(self.rate_limit_full(key));
                        }
                        Some((trial, decision))
                    };
                    let (decision, expires_at) = shard.update(pos, &self.stats, |entry| {
                        let Some(Payload::Limiter(state)) = entry.payload_mut() else {
                            unreachable!()
                        };
                        let decision = match trial {
                            Some((trial, decision)) => {
                                *state = trial;
                                decision
                            }
                            None => state.hit(now_ms, limit, window_ms, cost),
                        };
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
                        let need = limiter_cost(full.len(), &state);
                        if need > self.rate_limit_room(shard, need, now_ms) {
                            return Err(self.rate_limit_full(key));
                        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{KeyspaceBounds, LimitSpec};

    const SECOND: u64 = 1000;

    fn bounded(max_bytes: u64) -> Store {
        Store::new(KeyspaceBounds {
            max_bytes: Some(max_bytes),
            ..KeyspaceBounds::default()
        })
    }

    fn rl_bytes(s: &Store) -> u64 {
        Stats::get(&s.stats.rate_limit_bytes)
    }

    /// Hit `count` fresh keys `{tag}{i}` once each; the number refused for capacity.
    fn flood(s: &Store, tag: &str, count: usize, window_ms: u64, now: u64) -> usize {
        let bound = s.bounds().rate_limit_bound().unwrap();
        let mut refused = 0;
        for i in 0..count {
            match s.rate_limit(
                &format!("{tag}{i}"),
                5,
                window_ms,
                1,
                Algorithm::SlidingLog,
                now,
            ) {
                Ok(d) => assert!(d.allowed),
                Err(StoreError::RateLimitCapacity { key, max_bytes }) => {
                    assert_eq!((key, max_bytes), (format!("{tag}{i}"), bound));
                    refused += 1;
                }
                Err(other) => panic!("{other}"),
            }
            assert!(rl_bytes(s) <= bound, "{} > {bound}", rl_bytes(s));
        }
        refused
    }

    #[test]
    fn the_bound_is_a_share_of_max_bytes_or_its_own() {
        let limits = |max_bytes, share| KeyspaceBounds {
            max_keys: None,
            max_bytes,
            max_rate_limit_bytes: share,
        };
        assert_eq!(limits(None, None).rate_limit_bound(), None);
        assert_eq!(limits(Some(1000), None).rate_limit_bound(), Some(500));
        assert_eq!(limits(Some(1000), Some(300)).rate_limit_bound(), Some(300));
        assert_eq!(
            limits(Some(1000), Some(5000)).rate_limit_bound(),
            Some(1000)
        );
        assert_eq!(limits(None, Some(300)).rate_limit_bound(), Some(300));
    }

    #[test]
    fn accounted_bytes_are_the_entry_cost() {
        let s = Store::new(KeyspaceBounds::default());
        for algorithm in Algorithm::ALL {
            let before = rl_bytes(&s);
            s.rate_limit(algorithm.name(), 5, SECOND, 1, algorithm, 0)
                .unwrap();
            let mut state = LimiterState::new(algorithm);
            state.hit(0, 5, SECOND, 1);
            let full = rate_limit_key(algorithm.name());
            assert_eq!(rl_bytes(&s) - before, limiter_cost(full.len(), &state));
        }
        s.flush(0);
        assert_eq!(rl_bytes(&s), 0);
    }

    #[test]
    fn gcra_beyond_its_span_is_refused_and_records_nothing() {
        let s = Store::new(KeyspaceBounds::default());
        let d = s
            .rate_limit("g", 1 << 23, (1 << 30) - 1, 1, Algorithm::Gcra, 0)
            .unwrap();
        assert_eq!(d.remaining, (1 << 23) - 1);
        let err = s
            .rate_limit("h", 1 << 23, 1 << 30, 1, Algorithm::Gcra, 0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "gcra needs limit * window_ms < 2**53, got limit=8388608 and window_ms=1073741824"
        );
        assert!(!s.exists(b"ratelimit:h", 0));
    }

    #[test]
    fn rotating_keys_stay_under_the_bound_and_are_refused_beyond_it() {
        let s = bounded(64 * 1024);
        let refused = flood(&s, "ip:", 2000, 60 * SECOND, 0);
        let bound = s.bounds().rate_limit_bound().unwrap();
        assert!(refused > 1000, "refused {refused}");
        assert!(
            rl_bytes(&s) > bound - 200,
            "the bound is used up to one entry"
        );
        assert_eq!(
            Stats::get(&s.stats.evictions),
            0,
            "rate-limit state is never evicted"
        );
    }

    #[test]
    fn an_actively_hit_key_keeps_its_exact_count_at_the_bound() {
        for algorithm in Algorithm::ALL {
            let s = bounded(64 * 1024);
            for _ in 0..3 {
                assert!(
                    s.rate_limit("victim", 3, 600 * SECOND, 1, algorithm, 0)
                        .unwrap()
                        .allowed
                );
            }
            // The flood fills the bound; between its keys the victim is hit again and again.
            for round in 0..2000 {
                let _ = s.rate_limit(&format!("ip:{round}"), 5, 600 * SECOND, 1, algorithm, 1);
                let d = s
                    .rate_limit("victim", 3, 600 * SECOND, 1, algorithm, 1)
                    .unwrap();
                assert!(!d.allowed, "{algorithm}: round {round} admitted the victim");
            }
        }
    }

    #[test]
    fn state_whose_window_passed_makes_room_without_the_sweep() {
        let s = bounded(64 * 1024);
        assert!(flood(&s, "old:", 2000, SECOND, 0) > 0);
        let full = s.len();
        // One window later every entry is dead but still counted; as many new keys as the
        // bound holds reclaim them (by sampling: the last few may not find the last few dead
        // entries, which the sweep removes).
        let refused = flood(&s, "new:", full, SECOND, SECOND);
        assert!(refused <= full / 20, "refused {refused} of {full}");
        assert!(Stats::get(&s.stats.expired) >= (full - refused) as u64);
    }

    #[test]
    fn a_growing_sliding_log_counts_and_is_refused_unchanged() {
        let s = Store::new(KeyspaceBounds {
            max_rate_limit_bytes: Some(4096),
            ..KeyspaceBounds::default()
        });
        let mut refused_at = None;
        for t in 0..1000 {
            match s.rate_limit("busy", 10_000, 3600 * SECOND, 1, Algorithm::SlidingLog, t) {
                Ok(d) => assert!(d.allowed),
                Err(StoreError::RateLimitCapacity { .. }) => {
                    refused_at = Some(t);
                    break;
                }
                Err(other) => panic!("{other}"),
            }
            assert!(rl_bytes(&s) <= 4096);
        }
        let t = refused_at.expect("the log outgrew 4096 bytes");
        // Nothing was recorded: t hits are counted, and a hit at an existing timestamp
        // (no growth) still goes through.
        let d = s
            .rate_limit(
                "busy",
                10_000,
                3600 * SECOND,
                1,
                Algorithm::SlidingLog,
                t - 1,
            )
            .unwrap();
        assert_eq!(d.remaining, 10_000 - t - 1);
    }

    #[test]
    fn a_log_that_grows_over_dead_state_keeps_its_exact_count() {
        // The bound is full of state that expires at t=1 (over 100 entries per shard, more than
        // one call reclaims); from t=10 a sliding log grows by reclaiming it, which moves
        // entries around in its own shard.
        let s = Store::new(KeyspaceBounds {
            max_rate_limit_bytes: Some(1024 * 1024),
            ..KeyspaceBounds::default()
        });
        let mut i = 0;
        while s
            .rate_limit(&format!("dead{i}"), 5, 1, 1, Algorithm::FixedWindow, 0)
            .is_ok()
        {
            i += 1;
        }
        for k in 0..300 {
            let d = s
                .rate_limit(
                    "busy",
                    10_000,
                    3600 * SECOND,
                    1,
                    Algorithm::SlidingLog,
                    10 + k,
                )
                .unwrap();
            assert_eq!((d.allowed, d.remaining), (true, 10_000 - k - 1), "hit {k}");
            assert!(rl_bytes(&s) <= 1024 * 1024);
        }
    }

    #[test]
    fn values_are_evicted_to_make_room_and_limits_never() {
        let max = 64 * 1024;
        let s = bounded(max);
        for i in 0..1000 {
            s.set(format!("v{i}").as_bytes(), &[b'x'; 100], None, 0)
                .unwrap();
        }
        let values_alone = Stats::get(&s.stats.evictable_bytes);
        flood(&s, "ip:", 2000, 60 * SECOND, 0);
        let (values, limits) = (Stats::get(&s.stats.evictable_bytes), rl_bytes(&s));
        assert!(values + limits <= max, "{values} + {limits} > {max}");
        assert!(values < values_alone, "values made room");
        assert!(values >= max - s.bounds().rate_limit_bound().unwrap() - 200);
        for i in 0..2000 {
            s.set(format!("w{i}").as_bytes(), &[b'x'; 100], None, 0)
                .unwrap();
        }
        assert_eq!(
            rl_bytes(&s),
            limits,
            "value writes evict no rate-limit state"
        );
    }

    #[test]
    fn rate_limit_many_refuses_all_or_nothing_at_the_bound() {
        let s = bounded(64 * 1024);
        s.rate_limit("phone", 5, 60 * SECOND, 1, Algorithm::SlidingLog, 0)
            .unwrap();
        flood(&s, "ip:", 2000, 60 * SECOND, 0);
        let specs = [
            LimitSpec {
                key: "phone",
                limit: 5,
                window_ms: 60 * SECOND,
            },
            LimitSpec {
                key: "fresh-ip",
                limit: 5,
                window_ms: 60 * SECOND,
            },
        ];
        let err = s
            .rate_limit_many(&specs, 1, Algorithm::SlidingLog, 0)
            .unwrap_err();
        assert!(matches!(err, StoreError::RateLimitCapacity { ref key, .. } if key == "fresh-ip"));
        let peek = s
            .rate_limit("phone", 5, 60 * SECOND, 0, Algorithm::SlidingLog, 0)
            .unwrap();
        assert_eq!(peek.remaining, 4, "the refused call recorded nothing");
        assert!(!s.exists(b"ratelimit:fresh-ip", 0));
    }
}
