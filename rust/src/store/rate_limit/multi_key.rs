//! Atomic multi-key rate limits: a call records `cost` at every key, or at none of them.
//!
//! A domain limit (an OTP request limited per phone AND per IP) must not let a request that one
//! dimension denies eat into the others' quota, also when threads race on overlapping keys. So
//! the shards of all the keys are locked together for the whole check-then-record:
//!
//! * Lock order: the distinct shard indices, ascending. Single-key commands hold one shard at a
//!   time and every multi-key call acquires in this same global order, so no cycle can form.
//! * Phase 1 reads every key's state (a copy), type-checks it, and fails before writing anything.
//! * Phase 2 decides on the copies; only when every key admits are the copies written back.
//!   A denied call writes nothing (expired state met on the way is dropped, as any read does).
//!   Nor does an admitted call whose copies need more rate-limit state than the bound leaves
//!   (after reclaiming expired entries of the locked shards): `RateLimitCapacity`, as in
//!   `single_key`.

use std::sync::MutexGuard;

use super::algorithm::{Algorithm, Decision, LimiterState};
use super::{gcra, rate_limit_key, RATE_LIMIT_PREFIX};
use crate::store::entry::{limiter_cost, Entry, Payload};
use crate::store::shard::Shard;
use crate::store::stats::Stats;
use crate::store::{Store, StoreError, StoreResult};

/// One key of a multi-key rate limit and its own limit and window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitSpec<'a> {
    pub key: &'a str,
    pub limit: u64,
    pub window_ms: u64,
}

impl Store {
    /// Record `cost` hits at every `spec.key` if each fits in its `limit` per `window_ms`;
    /// otherwise record nothing anywhere.
    ///
    /// Returns one decision per spec, in order. Each says whether that key alone had room
    /// (`allowed`), with its own `remaining`, `reset_after_ms` and `retry_after_ms`; the call was
    /// admitted iff all are allowed. In a denied call a key with room reports its quota
    /// untouched. Keys must be distinct, and for `gcra` each `limit * window_ms` within
    /// `gcra::MAX_SPAN` (`InvalidArgument` otherwise, before anything is read).
    pub fn rate_limit_many(
        &self,
        specs: &[LimitSpec<'_>],
        cost: u64,
        algorithm: Algorithm,
        now_ms: u64,
    ) -> StoreResult<Vec<Decision>> {
        let fulls = checked_keys(specs, algorithm)?;
        let located: Vec<(u64, usize)> = fulls.iter().map(|k| self.locate(k)).collect();
        let mut order: Vec<usize> = located.iter().map(|&(_, idx)| idx).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<MutexGuard<'_, Shard>> = order.iter().map(|&i| self.lock(i)).collect();
        let slot = |idx: usize| order.binary_search(&idx).expect("shard is locked");

        // Phase 1: a copy of every key's state; a wrong type fails before anything is written.
        // `held`: the bytes of each state found, for the bound check of phase 3.
        let mut states = Vec::with_capacity(specs.len());
        let mut held = vec![0; specs.len()];
        for (full, (spec, &(hash, idx))) in fulls.iter().zip(specs.iter().zip(&located)) {
            let shard = &mut guards[slot(idx)];
            let state = match shard.find_live(hash, full, now_ms, &self.stats) {
                Some(pos) => match shard.slab[pos].payload() {
                    Some(Payload::Limiter(state)) if state.algorithm() == algorithm => {
                        held[states.len()] = shard.slab[pos].cost();
                        state.clone()
                    }
                    Some(Payload::Limiter(state)) => {
                        return Err(StoreError::AlgorithmMismatch {
                            key: spec.key.to_owned(),
                            existing: state.algorithm().name(),
                            requested: algorithm.name(),
                        })
                    }
                    _ => return Err(StoreError::WrongType),
                },
                None => LimiterState::new(algorithm),
            };
            states.push(state);
        }

        // Phase 2: decide on the copies.
        let mut decisions: Vec<Decision> = states
            .iter_mut()
            .zip(specs)
            .map(|(state, s)| state.hit(now_ms, s.limit, s.window_ms, cost))
            .collect();
        let allowed = decisions.iter().all(|d| d.allowed);
        if !allowed {
            Stats::bump(&self.stats.rate_limit_denied);
            // Nothing is recorded. A key that had room reports its quota as it stands: a peek
            // on a fresh copy of its state (the trial copy holds this call's hit).
            for ((decision, spec), (full, &(hash, idx))) in decisions
                .iter_mut()
                .zip(specs)
                .zip(fulls.iter().zip(&located))
            {
                if decision.allowed {
                    let shard = &mut guards[slot(idx)];
                    let mut state = match shard.find(hash, full).map(|p| shard.slab[p].payload()) {
                        Some(Some(Payload::Limiter(state))) => state.clone(),
                        _ => LimiterState::new(algorithm),
                    };
                    let peek = state.hit(now_ms, spec.limit, spec.window_ms, 0);
                    decision.remaining = peek.remaining;
                    decision.reset_after_ms = peek.reset_after_ms;
                }
            }
            return Ok(decisions);
        }

        // Phase 3: every key admitted; check the bound, then write the copies back.
        self.check_room(&mut guards, specs, &fulls, &states, &held, now_ms)?;
        Stats::bump(&self.stats.rate_limit_allowed);
        for (state, (full, (spec, &(hash, idx)))) in states
            .into_iter()
            .zip(fulls.iter().zip(specs.iter().zip(&located)))
        {
            let shard = &mut guards[slot(idx)];
            let expires_at = state.expires_at_ms(spec.window_ms);
            match shard.find(hash, full) {
                Some(pos) => {
                    shard.update(pos, &self.stats, |entry| {
                        if let Some(Payload::Limiter(slot_state)) = entry.payload_mut() {
                            *slot_state = state;
                        }
                        entry.set_expires_at(expires_at);
                    });
                    if expires_at <= now_ms {
                        shard.remove_at(pos, &self.stats);
                    }
                }
                None if expires_at > now_ms => {
                    let entry =
                        Entry::with_payload(full, Payload::Limiter(state), expires_at).pinned();
                    shard.insert(hash, entry, &self.stats);
                }
                None => {}
            }
        }
        drop(guards);
        self.evict_unlocked(order[0]);
        Ok(decisions)
    }
}

/// The keyspace keys of `specs`, after the checks that need no state: at least one key, keys
/// distinct, and for `gcra` every `limit * window_ms` within its span (`InvalidArgument`).
fn checked_keys(specs: &[LimitSpec<'_>], algorithm: Algorithm) -> StoreResult<Vec<Vec<u8>>> {
    if specs.is_empty() {
        return Err(StoreError::InvalidArgument(
            "rate_limit_many needs at least one key".to_owned(),
        ));
    }
    let fulls: Vec<Vec<u8>> = specs.iter().map(|s| rate_limit_key(s.key)).collect();
    let mut sorted: Vec<&Vec<u8>> = fulls.iter().collect();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(StoreError::InvalidArgument(format!(
            "rate_limit_many keys must be distinct, {:?} is given twice",
            String::from_utf8_lossy(&pair[0][RATE_LIMIT_PREFIX.len()..])
        )));
    }
    if algorithm == Algorithm::Gcra {
        for s in specs {
            gcra::check_span(s.limit, s.window_ms).map_err(StoreError::InvalidArgument)?;
        }
    }
    Ok(fulls)
}

impl Store {
    /// Fail with `RateLimitCapacity`, naming a key whose state grows, when replacing state of
    /// `held` bytes (per key, 0 if absent) by `states` needs more room than the bound leaves
    /// after reclaiming expired entries of the locked shards.
    fn check_room(
        &self,
        guards: &mut [MutexGuard<'_, Shard>],
        specs: &[LimitSpec<'_>],
        fulls: &[Vec<u8>],
        states: &[LimiterState],
        held: &[u64],
        now_ms: u64,
    ) -> StoreResult<()> {
        // State that holds nothing after this call is dropped, not kept.
        let kept: Vec<u64> = states
            .iter()
            .zip(specs)
            .zip(fulls)
            .map(|((state, spec), full)| {
                if state.expires_at_ms(spec.window_ms) > now_ms {
                    limiter_cost(full.len(), state)
                } else {
                    0
                }
            })
            .collect();
        let need = kept.iter().sum::<u64>().saturating_sub(held.iter().sum());
        let mut room = self.rate_limit_headroom();
        for shard in guards {
            if need <= room {
                break;
            }
            room = self.rate_limit_room(shard, need, now_ms);
        }
        if need <= room {
            return Ok(());
        }
        let grows = kept.iter().zip(held).position(|(k, h)| k > h).unwrap_or(0);
        Err(self.rate_limit_full(specs[grows].key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyspaceBounds;
    use std::sync::Arc;

    fn spec(key: &str, limit: u64, window_ms: u64) -> LimitSpec<'_> {
        LimitSpec {
            key,
            limit,
            window_ms,
        }
    }

    fn many(s: &Store, specs: &[LimitSpec<'_>], cost: u64, now: u64) -> Vec<Decision> {
        s.rate_limit_many(specs, cost, Algorithm::SlidingLog, now)
            .unwrap()
    }

    #[test]
    fn admits_everywhere_or_nowhere() {
        let s = Store::new(KeyspaceBounds::default());
        let both = [spec("phone", 3, 1000), spec("ip", 5, 1000)];
        for i in 0..3 {
            let d = many(&s, &both, 1, i);
            assert!(d.iter().all(|d| d.allowed));
            assert_eq!((d[0].remaining, d[1].remaining), (2 - i, 4 - i));
        }
        // The phone is full: the IP keeps its quota and reports it untouched.
        let d = many(&s, &both, 1, 10);
        assert!(!d[0].allowed && d[1].allowed);
        assert_eq!(d[0].retry_after_ms, 990);
        assert_eq!((d[1].remaining, d[1].retry_after_ms), (2, 0));
        assert_eq!(d[1].reset_after_ms, 992, "the newest IP hit is at t=2");
        // Another phone on the same IP: the IP's 2 units are all still there.
        let other = [spec("phone2", 3, 1000), spec("ip", 5, 1000)];
        assert!(many(&s, &other, 2, 20).iter().all(|d| d.allowed));
        assert!(!many(&s, &other, 1, 21)[1].allowed);
        // Single-key and multi-key calls share the state.
        let single = s
            .rate_limit("ip", 5, 1000, 0, Algorithm::SlidingLog, 21)
            .unwrap();
        assert_eq!(single.remaining, 0);
        assert_eq!(Stats::get(&s.stats.rate_limit_allowed), 4 + 1 - 1);
    }

    #[test]
    fn errors_change_nothing() {
        let s = Store::new(KeyspaceBounds::default());
        s.rate_limit("fw", 3, 1000, 1, Algorithm::FixedWindow, 0)
            .unwrap();
        s.set(b"ratelimit:str", b"x", None, 0).unwrap();
        let mismatch = s.rate_limit_many(
            &[spec("a", 3, 1000), spec("fw", 3, 1000)],
            1,
            Algorithm::SlidingLog,
            0,
        );
        assert!(matches!(
            mismatch,
            Err(StoreError::AlgorithmMismatch { .. })
        ));
        let wrong = s.rate_limit_many(
            &[spec("a", 3, 1000), spec("str", 3, 1000)],
            1,
            Algorithm::SlidingLog,
            0,
        );
        assert_eq!(wrong, Err(StoreError::WrongType));
        assert!(!s.exists(b"ratelimit:a", 0));
        let dup = s.rate_limit_many(
            &[spec("a", 3, 1000), spec("a", 3, 1000)],
            1,
            Algorithm::SlidingLog,
            0,
        );
        assert!(matches!(dup, Err(StoreError::InvalidArgument(m)) if m.contains("\"a\"")));
        assert!(s.rate_limit_many(&[], 1, Algorithm::SlidingLog, 0).is_err());
        assert!(!s.exists(b"ratelimit:a", 0));
    }

    #[test]
    fn every_algorithm_and_peeks() {
        for algorithm in Algorithm::ALL {
            let s = Store::new(KeyspaceBounds::default());
            let keys = [spec("x", 2, 100), spec("y", 1, 100)];
            let d = s.rate_limit_many(&keys, 0, algorithm, 0).unwrap();
            assert!(d.iter().all(|d| d.allowed));
            assert_eq!(s.len(), 0, "{algorithm}: a peek stores nothing");
            assert!(s
                .rate_limit_many(&keys, 1, algorithm, 0)
                .unwrap()
                .iter()
                .all(|d| d.allowed));
            let d = s.rate_limit_many(&keys, 1, algorithm, 1).unwrap();
            assert!(d[0].allowed && !d[1].allowed, "{algorithm}: {d:?}");
            assert_eq!(d[0].remaining, 1, "{algorithm}");
            // Whole quota back after the windows.
            let d = s.rate_limit_many(&keys, 1, algorithm, 1000).unwrap();
            assert!(d.iter().all(|d| d.allowed), "{algorithm}: {d:?}");
        }
    }

    #[test]
    fn gcra_admits_everywhere_or_nowhere_and_the_longest_wait_is_exact() {
        let s = Store::new(KeyspaceBounds::default());
        let gcra = |specs: &[LimitSpec<'_>], cost: u64, now: u64| {
            s.rate_limit_many(specs, cost, Algorithm::Gcra, now)
                .unwrap()
        };
        // phone: 2 per second (one every 500 ms); ip: 4 per second (one every 250 ms).
        let both = [spec("phone", 2, 1000), spec("ip", 4, 1000)];
        for _ in 0..2 {
            assert!(gcra(&both, 1, 0).iter().all(|d| d.allowed));
        }
        // The phone's burst is spent: the IP keeps its quota and reports it untouched.
        let d = gcra(&both, 1, 0);
        assert!(!d[0].allowed && d[1].allowed);
        assert_eq!(d[0].retry_after_ms, 500);
        assert_eq!((d[1].remaining, d[1].reset_after_ms), (2, 500));
        assert_eq!(d[1].retry_after_ms, 0);
        // Another phone on the same IP takes the IP's last 2 units.
        let other = [spec("phone2", 2, 1000), spec("ip", 4, 1000)];
        assert!(gcra(&other, 2, 0).iter().all(|d| d.allowed));
        // Both keys now deny; the call is admitted after the longer wait, not 1 ms earlier.
        let d = gcra(&both, 1, 0);
        assert_eq!((d[0].retry_after_ms, d[1].retry_after_ms), (500, 250));
        assert!(!gcra(&both, 1, 499).iter().all(|d| d.allowed));
        assert!(gcra(&both, 1, 500).iter().all(|d| d.allowed));
        // Single-key and multi-key calls share the state.
        let single = s
            .rate_limit("ip", 4, 1000, 0, Algorithm::Gcra, 500)
            .unwrap();
        assert_eq!(single.remaining, 1);
    }

    #[test]
    fn gcra_span_is_checked_on_every_key_before_anything_is_read() {
        let s = Store::new(KeyspaceBounds::default());
        s.set(b"ratelimit:str", b"x", None, 0).unwrap();
        let big = s.rate_limit_many(
            &[spec("a", 1, 1000), spec("str", 1 << 23, 1 << 30)],
            1,
            Algorithm::Gcra,
            0,
        );
        assert!(
            matches!(big, Err(StoreError::InvalidArgument(m)) if m.contains("limit=8388608")),
            "the span, not the wrong type of \"str\""
        );
        assert!(!s.exists(b"ratelimit:a", 0));
        let within = [spec("a", 1, 1000), spec("b", 1 << 23, (1 << 30) - 1)];
        assert!(s.rate_limit_many(&within, 1, Algorithm::Gcra, 0).is_ok());
    }

    #[test]
    fn concurrent_overlapping_calls_never_over_admit_or_leak() {
        for algorithm in Algorithm::ALL {
            concurrent_overlapping_calls(algorithm);
        }
    }

    /// 8 threads, phones p0..p3 (limit 5 each) sharing ips i0, i1 (limit 7 each), all at one
    /// instant: every admitted call is within every limit, and the totals match exactly what
    /// was admitted.
    fn concurrent_overlapping_calls(algorithm: Algorithm) {
        let s = Arc::new(Store::new(KeyspaceBounds::default()));
        let admitted: Vec<Vec<(usize, usize)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let s = Arc::clone(&s);
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        for n in 0..200usize {
                            let (phone, ip) = ((t + n) % 4, (t * 3 + n) % 2);
                            let (pk, ik) = (format!("p{phone}"), format!("i{ip}"));
                            let specs = [spec(&pk, 5, 1_000_000), spec(&ik, 7, 1_000_000)];
                            let d = s.rate_limit_many(&specs, 1, algorithm, 0).unwrap();
                            if d.iter().all(|d| d.allowed) {
                                mine.push((phone, ip));
                            }
                        }
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let all: Vec<(usize, usize)> = admitted.into_iter().flatten().collect();
        for ip in 0..2 {
            let n = all.iter().filter(|a| a.1 == ip).count() as u64;
            assert_eq!(n, 7, "{algorithm}: ip {ip} admitted {n}");
            let left = s
                .rate_limit(&format!("i{ip}"), 7, 1_000_000, 0, algorithm, 0)
                .unwrap();
            assert_eq!(left.remaining, 0, "{algorithm}");
        }
        for phone in 0..4 {
            let n = all.iter().filter(|a| a.0 == phone).count() as u64;
            let left = s
                .rate_limit(&format!("p{phone}"), 5, 1_000_000, 0, algorithm, 0)
                .unwrap();
            assert!(n <= 5);
            assert_eq!(
                left.remaining,
                5 - n,
                "{algorithm}: phone {phone}: no quota leaked by denials"
            );
        }
    }
}
