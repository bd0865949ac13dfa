//! Store tests across modules. Time is passed in as plain numbers (the manual clock's job), so
//! nothing here sleeps except the sweeper-thread test.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::Clock;
use super::entry::{string_cost, ENTRY_OVERHEAD};
use super::expiry::Sweeper;
use super::{Algorithm, Cursor, KeyspaceBounds, Store, StoreError, SHARDS};

fn store() -> Store {
    Store::new(KeyspaceBounds::default())
}

fn bounded(max_keys: Option<u64>, max_bytes: Option<u64>) -> Store {
    Store::new(KeyspaceBounds {
        max_keys,
        max_bytes,
        max_rate_limit_bytes: None,
    })
}

fn strs(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn strings_round_trip_and_overwrite_any_type() {
    let s = store();
    assert_eq!(s.get(b"k", 0), Ok(None));
    s.set(b"k", b"v", None, 0).unwrap();
    assert_eq!(s.get(b"k", 0), Ok(Some(b"v".to_vec())));
    assert!(s.exists(b"k", 0));
    s.sadd(b"set", strs(&["a"]), 0).unwrap();
    s.set(b"set", b"now a string", None, 0).unwrap();
    assert_eq!(s.get(b"set", 0), Ok(Some(b"now a string".to_vec())));
    assert!(s.delete(b"k", 0));
    assert!(!s.delete(b"k", 0));
    assert_eq!(s.len(), 1);
    assert_eq!(crate::store::Stats::get(&s.stats.hits), 2);
    assert_eq!(crate::store::Stats::get(&s.stats.misses), 1);
}

#[test]
fn commands_meeting_another_type_fail_with_wrongtype() {
    let s = store();
    s.set(b"str", b"x", None, 0).unwrap();
    s.sadd(b"set", strs(&["m"]), 0).unwrap();
    s.hset(b"hash", "f", "v", 0).unwrap();
    assert_eq!(s.get(b"set", 0), Err(StoreError::WrongType));
    assert_eq!(s.get(b"hash", 0), Err(StoreError::WrongType));
    assert_eq!(s.incrby(b"set", 1, 0), Err(StoreError::WrongType));
    assert_eq!(s.sadd(b"str", strs(&["m"]), 0), Err(StoreError::WrongType));
    assert_eq!(s.sadd(b"hash", strs(&["m"]), 0), Err(StoreError::WrongType));
    assert_eq!(s.srem(b"hash", &["m"], 0), Err(StoreError::WrongType));
    assert_eq!(s.sismember(b"str", "m", 0), Err(StoreError::WrongType));
    assert_eq!(s.smembers(b"hash", 0), Err(StoreError::WrongType));
    assert_eq!(s.scard(b"str", 0), Err(StoreError::WrongType));
    assert_eq!(s.hset(b"set", "f", "v", 0), Err(StoreError::WrongType));
    assert_eq!(s.hget(b"str", "f", 0), Err(StoreError::WrongType));
    assert_eq!(s.hgetall(b"set", 0), Err(StoreError::WrongType));
    assert_eq!(s.hdel(b"set", &["f"], 0), Err(StoreError::WrongType));
    assert_eq!(s.hlen(b"str", 0), Err(StoreError::WrongType));
    s.rate_limit("r", 5, 1000, 1, Algorithm::SlidingLog, 0)
        .unwrap();
    assert_eq!(s.get(b"ratelimit:r", 0), Err(StoreError::WrongType));
    s.set(b"ratelimit:s", b"x", None, 0).unwrap();
    assert_eq!(
        s.rate_limit("s", 5, 1000, 1, Algorithm::SlidingLog, 0),
        Err(StoreError::WrongType)
    );
    // Failed calls changed nothing.
    assert_eq!(s.get(b"str", 0), Ok(Some(b"x".to_vec())));
    assert_eq!(s.smembers(b"set", 0), Ok(strs(&["m"])));
    assert_eq!(s.hgetall(b"hash", 0), Ok(vec![("f".into(), "v".into())]));
}

#[test]
fn a_lookup_that_does_not_count_misses_still_counts_hits() {
    let s = store();
    let count = |name: &str| {
        s.stats_snapshot(0)
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    };
    assert_eq!(s.get_with(b"k", 0, false, <[u8]>::to_vec), Ok(None));
    assert_eq!((count("hits"), count("misses")), (0, 0));
    s.set(b"k", b"v", None, 0).unwrap();
    assert_eq!(
        s.get_with(b"k", 0, false, <[u8]>::to_vec),
        Ok(Some(b"v".to_vec()))
    );
    assert_eq!(s.get(b"nope", 0), Ok(None));
    assert_eq!((count("hits"), count("misses")), (1, 1));
}

#[test]
fn live_len_and_stats_skip_expired_keys_before_any_sweep() {
    let s = store();
    for i in 0..1000 {
        s.set(format!("k{i}").as_bytes(), b"v", Some(50), 0)
            .unwrap();
    }
    s.set(b"forever", b"v", None, 0).unwrap();
    let keys = |now_ms| {
        let snapshot = s.stats_snapshot(now_ms);
        snapshot.iter().find(|(name, _)| *name == "keys").unwrap().1
    };
    assert_eq!((s.live_len(49), keys(49)), (1001, 1001));
    assert_eq!(
        (s.live_len(50), keys(50)),
        (1, 1),
        "expired at their deadline"
    );
    assert_eq!(s.len(), 1001, "nothing removed: counting is read-only");
    assert_eq!(crate::store::Stats::get(&s.stats.expired), 0);
    assert_eq!(s.sweep_expired(50), 1000);
    assert_eq!((s.len(), s.live_len(50)), (1, 1));
}

#[test]
fn lazy_expiry_and_ttl_rounding() {
    let s = store();
    s.set(b"k", b"v", Some(1500), 1000).unwrap();
    assert_eq!(s.pttl(b"k", 1000), 1500);
    assert_eq!(s.ttl(b"k", 1000), 2); // 1.5 s rounds half up like Redis TTL
    assert_eq!(s.ttl(b"k", 1001), 1); // 1.499 s
    assert_eq!(s.pttl(b"k", 2499), 1);
    assert_eq!(s.ttl(b"k", 2499), 0);
    assert_eq!(s.get(b"k", 2500), Ok(None)); // expired exactly at its deadline
    assert_eq!(s.len(), 0, "lazy expiry removed it");
    assert_eq!(crate::store::Stats::get(&s.stats.expired), 1);
    assert_eq!(s.ttl(b"k", 2500), -2);
    s.set(b"p", b"v", None, 0).unwrap();
    assert_eq!(s.ttl(b"p", 0), -1);
    assert!(s.expire(b"p", 10, 0));
    assert!(!s.expire(b"missing", 10, 0));
    assert_eq!(s.pttl(b"p", 3), 7);
    assert!(s.persist(b"p", 3));
    assert!(!s.persist(b"p", 3));
    assert_eq!(s.pttl(b"p", 100), -1);
    // set without a TTL clears a previous one; incr keeps it.
    s.set(b"c", b"1", Some(100), 0).unwrap();
    s.set(b"c", b"1", None, 0).unwrap();
    assert_eq!(s.pttl(b"c", 0), -1);
    s.set(b"c", b"1", Some(100), 0).unwrap();
    assert_eq!(s.incrby(b"c", 1, 50), Ok(2));
    assert_eq!(s.pttl(b"c", 50), 50);
    assert_eq!(
        s.incrby(b"c", 1, 100),
        Ok(1),
        "expired counter restarts from 0"
    );
}

#[test]
fn sweep_removes_only_expired_keys() {
    let s = store();
    for i in 0..5000u32 {
        let ttl = if i % 2 == 0 { Some(10) } else { None };
        s.set(format!("k{i}").as_bytes(), b"v", ttl, 0).unwrap();
    }
    assert_eq!(s.sweep_expired(9), 0);
    assert_eq!(s.sweep_expired(10), 2500);
    assert_eq!(s.len(), 2500);
    assert_eq!(s.sweep_expired(1_000_000), 0);
    assert!((0..5000u32).all(|i| s.exists(format!("k{i}").as_bytes(), 10) == (i % 2 == 1)));
}

#[test]
fn incr_edge_cases() {
    let s = store();
    assert_eq!(s.incrby(b"n", 5, 0), Ok(5));
    assert_eq!(s.incrby(b"n", -7, 0), Ok(-2));
    assert_eq!(s.get(b"n", 0), Ok(Some(b"-2".to_vec())));
    s.set(b"max", i64::MAX.to_string().as_bytes(), None, 0)
        .unwrap();
    assert_eq!(s.incrby(b"max", 1, 0), Err(StoreError::Overflow));
    assert_eq!(s.incrby(b"max", 0, 0), Ok(i64::MAX));
    s.set(b"min", i64::MIN.to_string().as_bytes(), None, 0)
        .unwrap();
    assert_eq!(s.incrby(b"min", -1, 0), Err(StoreError::Overflow));
    assert_eq!(s.incrby(b"min", 1, 0), Ok(i64::MIN + 1));
    for bad in [
        "+1",
        " 1",
        "1 ",
        "01",
        "-0",
        "",
        "1.0",
        "abc",
        "9223372036854775808",
    ] {
        s.set(b"bad", bad.as_bytes(), None, 0).unwrap();
        assert_eq!(
            s.incrby(b"bad", 1, 0),
            Err(StoreError::NotAnInteger),
            "{bad:?}"
        );
        assert_eq!(
            s.get(b"bad", 0),
            Ok(Some(bad.as_bytes().to_vec())),
            "unchanged"
        );
    }
    assert_eq!(
        StoreError::Overflow.to_string(),
        "increment or decrement would overflow"
    );
    assert_eq!(
        StoreError::NotAnInteger.to_string(),
        "value is not an integer or out of range"
    );
}

#[test]
fn sets_and_hashes_disappear_when_emptied() {
    let s = store();
    assert_eq!(s.sadd(b"s", strs(&["a", "b", "a"]), 0), Ok(2));
    assert_eq!(s.sadd(b"s", strs(&["b", "c"]), 0), Ok(1));
    assert_eq!(s.scard(b"s", 0), Ok(3));
    assert_eq!(s.sismember(b"s", "c", 0), Ok(true));
    assert_eq!(s.sismember(b"s", "z", 0), Ok(false));
    let members: HashSet<String> = s.smembers(b"s", 0).unwrap().into_iter().collect();
    assert_eq!(
        members,
        ["a", "b", "c"].iter().map(|m| (*m).to_owned()).collect()
    );
    assert_eq!(s.srem(b"s", &["a", "z"], 0), Ok(1));
    assert_eq!(s.srem(b"s", &["b", "c"], 0), Ok(2));
    assert!(!s.exists(b"s", 0));
    assert_eq!(s.scard(b"s", 0), Ok(0));
    assert_eq!(s.srem(b"s", &["a"], 0), Ok(0));

    assert_eq!(s.hset(b"h", "f", "1", 0), Ok(1));
    assert_eq!(s.hset(b"h", "f", "2", 0), Ok(0));
    assert_eq!(s.hset(b"h", "g", "3", 0), Ok(1));
    assert_eq!(s.hget(b"h", "f", 0), Ok(Some("2".to_owned())));
    assert_eq!(s.hget(b"h", "x", 0), Ok(None));
    assert_eq!(s.hlen(b"h", 0), Ok(2));
    assert_eq!(s.hdel(b"h", &["f", "x"], 0), Ok(1));
    assert_eq!(s.hdel(b"h", &["g"], 0), Ok(1));
    assert!(!s.exists(b"h", 0));
    assert_eq!(s.hgetall(b"h", 0), Ok(vec![]));
    assert_eq!(crate::store::Stats::get(&s.stats.used_bytes), 0);
}

#[test]
fn used_bytes_tracks_every_change_and_returns_to_zero() {
    let s = store();
    let used = || crate::store::Stats::get(&s.stats.used_bytes);
    s.set(b"k", b"12345", None, 0).unwrap();
    assert_eq!(used(), string_cost(1, 5));
    s.set(b"k", b"1", None, 0).unwrap();
    assert_eq!(used(), 2 + ENTRY_OVERHEAD);
    s.incrby(b"k", 99, 0).unwrap();
    assert_eq!(used(), 4 + ENTRY_OVERHEAD);
    s.sadd(b"s", strs(&["a", "b"]), 0).unwrap();
    s.hset(b"h", "f", "v", 0).unwrap();
    s.acquire_lock("l", 1000, 0).unwrap();
    s.rate_limit("r", 10, 1000, 1, Algorithm::SlidingLog, 0)
        .unwrap();
    assert!(used() > 4 + ENTRY_OVERHEAD);
    assert_eq!(s.flush(0), 5);
    assert_eq!((used(), s.len()), (0, 0));
    assert_eq!(crate::store::Stats::get(&s.stats.evictable_bytes), 0);
}

#[test]
fn eviction_respects_max_keys_and_never_evicts_locks_or_limits() {
    let s = bounded(Some(100), None);
    let mut tokens = Vec::new();
    for i in 0..50 {
        tokens.push(s.acquire_lock(&format!("l{i}"), 1_000_000, 0).unwrap());
        s.rate_limit(
            &format!("r{i}"),
            10,
            1_000_000,
            1,
            Algorithm::FixedWindow,
            0,
        )
        .unwrap();
    }
    for i in 0..10_000u32 {
        s.set(format!("k{i}").as_bytes(), b"value", None, 0)
            .unwrap();
        assert!(crate::store::Stats::get(&s.stats.evictable_keys) <= 100);
    }
    assert_eq!(s.len(), 200, "100 evictable keys + 50 locks + 50 limits");
    assert_eq!(crate::store::Stats::get(&s.stats.evictions), 9_900);
    for (i, token) in tokens.iter().enumerate() {
        assert!(s.release_lock(&format!("l{i}"), token, 1));
        assert!(s.exists(format!("ratelimit:r{i}").as_bytes(), 1));
    }
    assert!(
        s.exists(b"k9999", 1),
        "the key just written is never the victim"
    );
}

#[test]
fn eviction_respects_max_bytes() {
    let cost = string_cost(6, 100);
    let s = bounded(None, Some(cost * 50));
    for i in 0..1000u32 {
        s.set(format!("k{i:05}").as_bytes(), &[7u8; 100], None, 0)
            .unwrap();
        assert!(crate::store::Stats::get(&s.stats.evictable_bytes) <= cost * 50);
    }
    assert_eq!(s.len(), 50);
}

#[test]
fn approximate_lru_keeps_the_hot_set() {
    // 2000 slots; a hot set of 1000 keys read constantly while 10 000 cold keys stream through.
    let s = bounded(Some(2000), None);
    let hot: Vec<Vec<u8>> = (0..1000).map(|i| format!("hot{i}").into_bytes()).collect();
    for key in &hot {
        s.set(key, b"h", None, 0).unwrap();
    }
    let (mut hits, mut reads) = (0u32, 0u32);
    for i in 0..10_000u32 {
        s.set(format!("cold{i}").as_bytes(), b"c", None, 0).unwrap();
        for key in hot.iter().skip(i as usize % 10).step_by(10) {
            reads += 1;
            match s.get(key, 0).unwrap() {
                Some(_) => hits += 1,
                None => s.set(key, b"h", None, 0).unwrap(),
            }
        }
    }
    let ratio = f64::from(hits) / f64::from(reads);
    assert!(ratio > 0.95, "hot-set hit ratio {ratio}");
}

#[test]
fn eviction_with_tiny_bounds_reaches_other_shards() {
    // max_keys below the shard count: the written shard is often empty of other victims.
    let s = bounded(Some(3), None);
    for i in 0..500u32 {
        s.set(format!("k{i}").as_bytes(), b"v", None, 0).unwrap();
        assert!(s.len() <= 3);
    }
    assert!(s.exists(b"k499", 0));
}

#[test]
fn oversized_values_fail_with_capacity_error_and_change_nothing() {
    let s = bounded(None, Some(200));
    s.set(b"big", b"small", None, 0).unwrap();
    let err = s.set(b"big", &[0u8; 200], None, 0).unwrap_err();
    assert!(matches!(err, StoreError::Capacity { max_bytes: 200, .. }));
    assert!(err.to_string().contains("\"big\""), "{err}");
    assert_eq!(s.get(b"big", 0), Ok(Some(b"small".to_vec())));
    // A set growing past the bound on its own: the whole call is undone.
    s.sadd(b"s", strs(&["a"]), 0).unwrap();
    let before = crate::store::Stats::get(&s.stats.used_bytes);
    let long = "x".repeat(100);
    assert!(matches!(
        s.sadd(b"s", vec![long.clone(), "b".into()], 0),
        Err(StoreError::Capacity { .. })
    ));
    assert_eq!(s.smembers(b"s", 0), Ok(strs(&["a"])));
    assert_eq!(crate::store::Stats::get(&s.stats.used_bytes), before);
    assert!(matches!(
        s.sadd(b"new", vec![long.clone()], 0),
        Err(StoreError::Capacity { .. })
    ));
    assert!(!s.exists(b"new", 0));
    assert!(matches!(
        s.hset(b"h", "f", &long, 0),
        Err(StoreError::Capacity { .. })
    ));
    assert!(!s.exists(b"h", 0));
}

#[test]
fn lock_tokens_are_random_and_checked() {
    let s = store();
    let token = s.acquire_lock("job", 1000, 0).unwrap();
    assert_eq!(token.len(), 32);
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(s.get(b"lock:job", 0), Ok(Some(token.clone().into_bytes())));
    assert_eq!(s.acquire_lock("job", 1000, 500), None);
    assert!(!s.release_lock("job", "not-the-token", 500));
    assert!(!s.extend_lock("job", "not-the-token", 5000, 500));
    assert!(s.extend_lock("job", &token, 5000, 500));
    assert_eq!(s.pttl(b"lock:job", 500), 5000);
    assert_eq!(s.acquire_lock("job", 1000, 5499), None);
    // Expired: free again, and the old token no longer works.
    let second = s.acquire_lock("job", 1000, 5500).unwrap();
    assert_ne!(second, token);
    assert!(!s.release_lock("job", &token, 5500));
    assert!(!s.extend_lock("job", &token, 1000, 5500));
    assert!(s.release_lock("job", &second, 5500));
    assert!(!s.release_lock("job", &second, 5500));
    assert_eq!(crate::store::Stats::get(&s.stats.lock_acquired), 2);
    assert_eq!(crate::store::Stats::get(&s.stats.lock_contended), 2);
    // A lock is an ordinary string key: delete frees it.
    let third = s.acquire_lock("job", 1000, 0).unwrap();
    assert!(s.delete(b"lock:job", 0));
    assert!(!s.release_lock("job", &third, 0));
}

#[test]
fn fenced_locks_get_increasing_fences_assigned_at_acquisition() {
    let s = store();
    let (first, f1) = s.acquire_fenced_lock("job", 1000, 0).unwrap();
    assert_eq!(f1, 1);
    assert_eq!(s.get(b"lock:job", 0), Ok(Some(first.clone().into_bytes())));
    assert_eq!(s.acquire_fenced_lock("job", 1000, 10), None, "held");
    // The holder stalls past its TTL: the next holder gets a larger fence.
    let (second, f2) = s.acquire_fenced_lock("job", 1000, 1000).unwrap();
    assert!(f2 > f1);
    assert!(!s.release_lock("job", &first, 1000));
    assert!(s.release_lock("job", &second, 1000));
    // Plain acquisitions take no fence; other keys share the store-wide sequence.
    let plain = s.acquire_lock("job", 1000, 1000).unwrap();
    assert!(s.release_lock("job", &plain, 1000));
    let (_, other) = s.acquire_fenced_lock("other", 1000, 1000).unwrap();
    let (_, f3) = s.acquire_fenced_lock("job", 1000, 1000).unwrap();
    assert_eq!((other, f3), (3, 4));
    assert_eq!(crate::store::Stats::get(&s.stats.lock_acquired), 5);
    assert_eq!(crate::store::Stats::get(&s.stats.lock_contended), 1);
}

#[test]
fn fences_follow_the_order_of_acquisition_across_threads() {
    // 8 threads take one lock in turn; the order in which they got it (the lock key's holder
    // sequence, recorded while holding it) must be the order of their fences.
    let s = Arc::new(store());
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (s, order) = (Arc::clone(&s), Arc::clone(&order));
            std::thread::spawn(move || {
                let mut taken = 0;
                while taken < 200 {
                    if let Some((token, fence)) = s.acquire_fenced_lock("hot", 60_000, 0) {
                        order.lock().unwrap().push(fence);
                        assert!(s.release_lock("hot", &token, 0));
                        taken += 1;
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 1600);
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "fences out of holder order"
    );
}

#[test]
fn rate_limits_store_state_with_its_expiry() {
    let s = store();
    for i in 0..3 {
        let d = s
            .rate_limit("api", 3, 1000, 1, Algorithm::SlidingLog, i)
            .unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 2 - i);
    }
    let denied = s
        .rate_limit("api", 3, 1000, 1, Algorithm::SlidingLog, 10)
        .unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after_ms, 990);
    assert_eq!(
        s.pttl(b"ratelimit:api", 10),
        992,
        "state expires when its last hit leaves"
    );
    assert_eq!(
        s.rate_limit("api", 3, 1000, 1, Algorithm::FixedWindow, 10),
        Err(StoreError::AlgorithmMismatch {
            key: "api".into(),
            existing: "sliding_log",
            requested: "fixed_window"
        })
    );
    assert!(
        s.rate_limit("api", 3, 1000, 1, Algorithm::SlidingLog, 1000)
            .unwrap()
            .allowed
    );
    // A peek on absent state stores nothing.
    assert!(
        s.rate_limit("peek", 3, 1000, 0, Algorithm::SlidingCounter, 0)
            .unwrap()
            .allowed
    );
    assert!(!s.exists(b"ratelimit:peek", 0));
    assert_eq!(crate::store::Stats::get(&s.stats.rate_limit_allowed), 5);
    assert_eq!(crate::store::Stats::get(&s.stats.rate_limit_denied), 1);
}

#[test]
fn keys_and_pattern_delete() {
    let s = store();
    for i in 0..3000u32 {
        s.set(format!("user:{i}").as_bytes(), b"v", None, 0)
            .unwrap();
        s.set(format!("post:{i}").as_bytes(), b"v", Some(10), 0)
            .unwrap();
    }
    s.sadd(b"user:set", strs(&["m"]), 0).unwrap();
    assert_eq!(s.keys(b"user:*", 0).len(), 3001);
    assert_eq!(s.keys(b"user:1", 0), vec!["user:1".to_owned()]);
    assert_eq!(
        s.keys(b"post:*", 10).len(),
        0,
        "expired keys are not listed"
    );
    assert_eq!(s.del_pattern(b"user:1*", 10), 1111);
    assert_eq!(s.keys(b"user:1*", 10), Vec::<String>::new());
    assert_eq!(s.del_pattern(b"user:2999", 10), 1);
    assert_eq!(s.len(), 3001 - 1112);
    assert_eq!(s.del_pattern(b"*", 10), 3001 - 1112);
    assert!(s.is_empty());
}

#[test]
fn cursor_round_trips() {
    assert_eq!(Cursor::START.encode(), 0);
    assert_eq!(Cursor::decode(0), Some(Cursor::START));
    for raw in [
        1u64 << 32,
        (5u64 << 32) | 0x11,
        ((SHARDS as u64 - 1) << 32) | 3,
    ] {
        assert_eq!(Cursor::decode(raw).unwrap().encode(), raw);
    }
    assert_eq!(Cursor::decode((SHARDS as u64) << 32), None);
}

fn scan_all(s: &Store, count: usize, mut between: impl FnMut()) -> Vec<String> {
    let (mut cursor, mut seen) = (0u64, Vec::new());
    loop {
        let (next, keys) = s.scan(cursor, b"*", count, 0);
        seen.extend(keys);
        between();
        if next == 0 {
            return seen;
        }
        cursor = next;
    }
}

#[test]
fn scan_returns_every_stable_key_despite_deletes_and_inserts() {
    let s = store();
    for i in 0..20_000u32 {
        s.set(format!("stable{i}").as_bytes(), b"v", None, 0)
            .unwrap();
        s.set(format!("churn{i}").as_bytes(), b"v", None, 0)
            .unwrap();
    }
    // Between steps, delete churn keys (moving last entries down into the holes) and insert
    // new keys (appending): every stable key must still come back.
    let mut next = 0u32;
    let seen = scan_all(&s, 97, || {
        for _ in 0..150 {
            s.delete(format!("churn{next}").as_bytes(), 0);
            s.set(format!("new{next}").as_bytes(), b"v", None, 0)
                .unwrap();
            next += 1;
        }
    });
    let seen: HashSet<String> = seen.into_iter().collect();
    assert!((0..20_000u32).all(|i| seen.contains(&format!("stable{i}"))));
    assert!(next > 1000, "the scan took many steps");
}

#[test]
fn scan_is_complete_with_concurrent_deleting_threads() {
    let s = Arc::new(store());
    for i in 0..20_000u32 {
        s.set(format!("stable{i}").as_bytes(), b"v", None, 0)
            .unwrap();
        s.set(format!("churn{i}").as_bytes(), b"v", None, 0)
            .unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let churner = {
        let (s, done) = (Arc::clone(&s), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !done.load(Ordering::Relaxed) {
                s.delete(format!("churn{}", i % 20_000).as_bytes(), 0);
                s.set(
                    format!("churn{}", (i + 10_000) % 20_000).as_bytes(),
                    b"v",
                    None,
                    0,
                )
                .unwrap();
                i += 1;
            }
        })
    };
    let seen: HashSet<String> = scan_all(&s, 50, std::thread::yield_now)
        .into_iter()
        .collect();
    done.store(true, Ordering::Relaxed);
    churner.join().unwrap();
    assert!((0..20_000u32).all(|i| seen.contains(&format!("stable{i}"))));
}

#[test]
fn sweeper_thread_expires_keys_and_stops_promptly() {
    let store = Arc::new(store());
    let clock = Arc::new(Clock::system());
    let now = clock.now_ms();
    for i in 0..10_000u32 {
        store
            .set(format!("k{i}").as_bytes(), b"v", Some(1), now)
            .unwrap();
    }
    let mut sweeper = Sweeper::spawn(
        Arc::downgrade(&store),
        Arc::clone(&clock),
        Duration::from_millis(5),
    )
    .unwrap();
    let start = Instant::now();
    while !store.is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(store.is_empty(), "the sweeper removed the expired keys");
    let stopping = Instant::now();
    sweeper.stop();
    sweeper.stop();
    assert!(stopping.elapsed() < Duration::from_secs(1));
    // A sweeper whose store is gone exits on its own at its next wake-up.
    let orphan = {
        let store = Arc::new(super::Store::new(KeyspaceBounds::default()));
        Sweeper::spawn(Arc::downgrade(&store), clock, Duration::from_millis(1)).unwrap()
    };
    drop(orphan);
}

#[test]
fn eight_threads_of_mixed_commands_keep_the_invariants() {
    const THREADS: u64 = 8;
    const ITERS: u64 = 3000;
    let s = Arc::new(bounded(Some(5000), None));
    let held = Arc::new(AtomicBool::new(false));
    let allowed = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, held, allowed) = (Arc::clone(&s), Arc::clone(&held), Arc::clone(&allowed));
            std::thread::spawn(move || {
                let mut owned = 0u64;
                for i in 0..ITERS {
                    let now = i; // each thread's time moves forward
                    assert!(s.incrby(b"counter", 1, 0).is_ok());
                    let key = format!("t{t}:k{}", i % 100);
                    s.set(key.as_bytes(), key.as_bytes(), Some(50), now)
                        .unwrap();
                    if let Some(value) = s.get(key.as_bytes(), now).unwrap() {
                        assert_eq!(value, key.as_bytes());
                    }
                    s.sadd(
                        format!("set{t}").as_bytes(),
                        vec![format!("m{}", i % 7)],
                        now,
                    )
                    .unwrap();
                    s.hset(b"shared-hash", &format!("t{t}"), &i.to_string(), now)
                        .unwrap();
                    if let Some(token) = s.acquire_lock("mutex", 1_000_000, 0) {
                        assert!(!held.swap(true, Ordering::SeqCst), "two lock holders");
                        owned += 1;
                        held.store(false, Ordering::SeqCst);
                        assert!(s.release_lock("mutex", &token, 0));
                    }
                    let decision = s
                        .rate_limit("shared", 1000, 1 << 40, 1, Algorithm::SlidingLog, 0)
                        .unwrap();
                    if decision.allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                    match i % 500 {
                        0 => {
                            s.del_pattern(format!("t{t}:k1*").as_bytes(), now);
                        }
                        250 => {
                            s.sweep_expired(now);
                        }
                        499 => {
                            s.keys(b"set*", now);
                        }
                        _ => {
                            s.delete(format!("t{t}:k{}", (i + 50) % 100).as_bytes(), now);
                        }
                    }
                }
                owned
            })
        })
        .collect();
    let owned: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(owned > 0);
    assert_eq!(
        s.get(b"counter", 0),
        Ok(Some((THREADS * ITERS).to_string().into_bytes()))
    );
    assert_eq!(
        allowed.load(Ordering::Relaxed),
        1000,
        "sliding log is exact"
    );
    assert_eq!(s.hlen(b"shared-hash", 0), Ok(THREADS as usize));
    // len matches what a full walk finds, and flush brings the accounting back to zero.
    assert_eq!(s.keys(b"*", 0).len(), s.len());
    s.flush(0);
    assert_eq!(s.len(), 0);
    assert_eq!(crate::store::Stats::get(&s.stats.used_bytes), 0);
    assert_eq!(crate::store::Stats::get(&s.stats.evictable_keys), 0);
    assert_eq!(crate::store::Stats::get(&s.stats.evictable_bytes), 0);
}

#[test]
#[ignore = "measurement: cargo test --release -- --ignored --nocapture batch_hold"]
fn batch_hold_times_when_sweeping_a_million_keys() {
    let s = store();
    for i in 0..1_000_000u32 {
        s.set(format!("key{i:07}").as_bytes(), &[b'x'; 50], Some(1), 0)
            .unwrap();
    }
    let (mut worst, mut total, mut batches) = (Duration::ZERO, Duration::ZERO, 0u32);
    for idx in 0..SHARDS {
        let mut upper = usize::MAX;
        while upper > 0 {
            let start = Instant::now();
            upper = s.walk_batch(idx, upper, super::BATCH, |shard, pos| {
                Some(shard.remove_at(pos, &s.stats))
            });
            let took = start.elapsed();
            worst = worst.max(took);
            total += took;
            batches += 1;
        }
    }
    println!(
        "{batches} batches, mean {:?}, worst {worst:?}",
        total / batches
    );
}
