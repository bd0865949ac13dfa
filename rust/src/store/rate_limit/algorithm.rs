//! Rate-limiter state machines: exact sliding log, fixed window, sliding (two-bucket) counter,
//! and GCRA (its state machine and spec in `gcra`).
//!
//! This is the contract that the Redis Lua scripts copy; all arithmetic is on integers.
//!
//! # Common rules (all algorithms)
//!
//! * Inputs: `limit >= 1` units per `window_ms >= 1` ms; `cost >= 0` units per call. (Out of
//!   contract values are tolerated: `window_ms = 0` acts as 1 and `limit = 0` denies
//!   everything.)
//! * Clock: `now = max(now_ms, largest now_ms seen so far by this state)`, so time never runs
//!   backwards; all statements below are about this clamped clock. The two counters drop state
//!   whose largest `now_ms` is more than a window ahead (a wall clock stepped back: held, they
//!   would deny until the clock caught up); the store's own clock is monotonic.
//! * `need = max(cost, 1)`. A call is allowed iff `need` units fit, i.e. `need <= remaining`,
//!   where `remaining` is what the algorithm would report for the call. So a **peek**
//!   (`cost = 0`) is allowed iff at least one unit is left, and never records anything.
//! * An allowed call records `cost` units at `now`. A denied call records nothing: no later
//!   decision (with the same `limit` and `window_ms`) differs from what it would have been
//!   without the denied call. (It may still drop hits that have left the window.)
//! * `remaining`: the largest `cost` that would be allowed right now, after this call.
//! * `reset_after_ms`: ms until the state holds no hits at all, i.e. until `remaining`
//!   returns to `limit` if nothing else is admitted (IETF `RateLimit-Reset` style);
//!   0 iff it holds nothing now. Always equals `expires_at_ms(window_ms) - now`.
//! * `retry_after_ms`: 0 when allowed. When denied: the smallest wait after which the same
//!   call (same `cost`, `limit`, `window_ms`, no other hits) is allowed, so a client that
//!   waits exactly `retry_after_ms` is admitted and one that retries 1 ms earlier is not.
//!   Exception: `cost > limit` can never be admitted; such calls are denied with
//!   `retry_after_ms = window_ms` (a conventional "no sooner than one window" answer).
//! * `expires_at_ms`: absolute time at which the state holds no hits (use as the key's TTL);
//!   equals the clamped `now` of the last call when it already holds nothing.
//! * Changing `limit` between calls just changes the threshold (`remaining` saturates at 0
//!   if the usage is already above a lowered limit). Changing `window_ms`: see each
//!   algorithm.
//!
//! # `SlidingLog` (exact)
//!
//! Keeps `(timestamp, cost)` entries (one per distinct timestamp) and their sum `used`. A hit
//! at `t` counts in the windows `(t - window_ms, t]`: at `now`, entries with
//! `ts <= now - window_ms` are dropped first.
//! * allowed iff `used + need <= limit`; `remaining = limit - used`.
//! * `reset_after_ms = newest_ts + window_ms - now` (0 if empty).
//! * denied: walk entries oldest first, summing their costs, until the sum reaches
//!   `used + need - limit`; `retry_after_ms = that_entry_ts + window_ms - now`.
//! * `expires_at_ms = newest_ts + window_ms`.
//! * Guarantee (fixed `limit`/`window_ms`): no half-open interval of length `window_ms`
//!   contains more than `limit` admitted units. Memory: one entry per distinct admitted
//!   timestamp within the window (at most `limit` entries).
//! * A changed `window_ms` applies to the entries still held; shrinking takes effect at once,
//!   growing cannot resurrect entries already dropped.
//!
//! # `FixedWindow`
//!
//! Windows are `[k * window_ms, (k + 1) * window_ms)` of the store clock; `count` is the
//! units admitted in the current window (reset to 0 when `now` leaves it).
//! * allowed iff `count + need <= limit`; `remaining = limit - count`.
//! * `reset_after_ms = window_end - now` (0 if `count = 0`).
//! * denied (`cost <= limit`): `retry_after_ms = window_end - now`.
//! * `expires_at_ms = window_end` (or `now` if `count = 0`).
//! * Guarantee: at most `limit` units per aligned window, hence at most `2 * limit` in any
//!   sliding window of length `window_ms` (tight for `window_ms >= 2`).
//! * A changed `window_ms` re-aligns the current window to the new width (`count` kept).
//!
//! # `SlidingCounter` (Cloudflare-style approximation)
//!
//! Aligned windows as above; `curr` = units admitted in the current window, `prev` = in the
//! one before (0 if that was not the immediately preceding window). With
//! `elapsed = now - window_start` (`0 <= elapsed < window_ms`) the estimate is
//! `estimate = prev * (window_ms - elapsed) / window_ms + curr` (exact rational).
//! * allowed iff `estimate + need <= limit`, evaluated exactly in integers as
//!   `prev * (window_ms - elapsed) <= (limit - need - curr) * window_ms` (with
//!   `curr + need <= limit`), so it never admits beyond the estimate.
//! * `remaining = limit - curr - ceil(prev * (window_ms - elapsed) / window_ms)` (>= 0).
//! * `reset_after_ms`: `2 * window_ms - elapsed` if `curr > 0`, else `window_ms - elapsed`
//!   if `prev > 0`, else 0.
//! * denied (`cost <= limit`): the estimate never increases while no hits arrive, so
//!   `retry_after_ms` is the first ms at which the inequality holds, in this order:
//!   1. later in this window (needs `curr + need <= limit` and `prev > 0`): at
//!      `elapsed' = max(elapsed + 1, window_ms - floor((limit - need - curr) * window_ms / prev))`
//!      if that is `< window_ms`;
//!   2. in the next window, where `prev' = curr`, `curr' = 0`: at
//!      `elapsed'' = window_ms - floor((limit - need) * window_ms / curr)` (0 if `curr = 0`)
//!      if that is `< window_ms`, i.e. `retry = window_ms - elapsed + elapsed''`;
//!   3. otherwise when both windows are over: `retry = 2 * window_ms - elapsed`.
//! * `expires_at_ms = window_start + 2 * window_ms` if `curr > 0`, else
//!   `window_start + window_ms` if `prev > 0`, else `now`.
//! * Bound (fixed `limit` L, `window_ms` W): any half-open interval of length W contains at
//!   most `L + floor(L * (W - 2) / W)` admitted units (< 2L; exactly L for W <= 2), and
//!   this is tight. Proof sketch: an interval ending in window k holds X units from window
//!   k-1 (only those after offset e of the last admission in window k that it contains,
//!   which at offset e required `c(k-1) * (W - e) / W + Y <= L`); X <= c(k-1) <= L and X > 0
//!   forces e <= W - 2, so X + Y <= L + c(k-1) * e / W <= L + L * (W - 2) / W. E.g. L = W = 10:
//!   10 units at offset 9, then 8 at offset 8 of the next window (span 10 ms) = 18.
//! * A changed `window_ms` folds `prev` into `curr` of a window re-aligned to the new width
//!   (conservative: the estimate never drops because of the change).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use super::gcra::Gcra;

/// Rate-limiting algorithm (see the module docs for the exact semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    SlidingLog,
    FixedWindow,
    SlidingCounter,
    Gcra,
}

impl Algorithm {
    /// All algorithms, in declaration order.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::SlidingLog,
        Algorithm::FixedWindow,
        Algorithm::SlidingCounter,
        Algorithm::Gcra,
    ];

    /// Wire name: `"sliding_log"`, `"fixed_window"`, `"sliding_counter"` or `"gcra"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::SlidingLog => "sliding_log",
            Algorithm::FixedWindow => "fixed_window",
            Algorithm::SlidingCounter => "sliding_counter",
            Algorithm::Gcra => "gcra",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a wire name exactly (`"sliding_log"`, `"fixed_window"`, `"sliding_counter"`); the
/// error message names the bad value and lists the valid ones.
impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown rate limit algorithm '{s}'; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// Outcome of [`LimiterState::hit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the call was admitted (and its cost recorded).
    pub allowed: bool,
    /// Largest cost that would be admitted right now, after this call.
    pub remaining: u64,
    /// Ms until the state holds no hits (full quota back); 0 if it holds none.
    pub reset_after_ms: u64,
    /// 0 if allowed; else the exact wait after which the same call is admitted
    /// (`window_ms` if `cost > limit`, which is never admitted).
    pub retry_after_ms: u64,
}

/// Per-key limiter state, one variant per [`Algorithm`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimiterState {
    SlidingLog(SlidingLog),
    FixedWindow(FixedWindow),
    SlidingCounter(SlidingCounter),
    Gcra(Gcra),
}

impl LimiterState {
    /// Empty state (no hits) for `algorithm`.
    #[must_use]
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::SlidingLog => LimiterState::SlidingLog(SlidingLog::default()),
            Algorithm::FixedWindow => LimiterState::FixedWindow(FixedWindow::default()),
            Algorithm::SlidingCounter => LimiterState::SlidingCounter(SlidingCounter::default()),
            Algorithm::Gcra => LimiterState::Gcra(Gcra::default()),
        }
    }

    /// The algorithm this state implements.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        match self {
            LimiterState::SlidingLog(_) => Algorithm::SlidingLog,
            LimiterState::FixedWindow(_) => Algorithm::FixedWindow,
            LimiterState::SlidingCounter(_) => Algorithm::SlidingCounter,
            LimiterState::Gcra(_) => Algorithm::Gcra,
        }
    }

    /// Record `cost` hits at `now_ms` if they fit in `limit` per `window_ms`; a denied call
    /// changes nothing. Exact rules: module docs.
    pub fn hit(&mut self, now_ms: u64, limit: u64, window_ms: u64, cost: u64) -> Decision {
        let window = window_ms.max(1);
        match self {
            LimiterState::SlidingLog(s) => s.hit(now_ms, limit, window, cost),
            LimiterState::FixedWindow(s) => s.hit(now_ms, limit, window, cost),
            LimiterState::SlidingCounter(s) => s.hit(now_ms, limit, window, cost),
            LimiterState::Gcra(s) => s.hit(now_ms, limit, window, cost),
        }
    }

    /// Absolute ms at which this state holds no hits any more (the key's TTL); >= now of the
    /// last hit, and equal to it if the state already holds nothing.
    ///
    /// `window_ms` should be the one passed to the last [`hit`](Self::hit): the sliding log
    /// uses it, the two counters use the window width their buckets were aligned to by that
    /// call.
    #[must_use]
    pub fn expires_at_ms(&self, window_ms: u64) -> u64 {
        let window = window_ms.max(1);
        match self {
            LimiterState::SlidingLog(s) => s.expires_at(window),
            LimiterState::FixedWindow(s) => s.expires_at(),
            LimiterState::SlidingCounter(s) => s.expires_at(),
            LimiterState::Gcra(s) => s.expires_at(),
        }
    }

    /// Heap bytes owned (for memory accounting).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        match self {
            LimiterState::SlidingLog(s) => s.entries.capacity() * std::mem::size_of::<(u64, u64)>(),
            LimiterState::FixedWindow(_)
            | LimiterState::SlidingCounter(_)
            | LimiterState::Gcra(_) => 0,
        }
    }

    /// Most heap bytes one [`hit`](Self::hit) can add: a full sliding log doubles its buffer
    /// (to at least 4 entries, std's smallest), the counters never allocate.
    #[must_use]
    pub fn max_growth(&self) -> u64 {
        match self {
            LimiterState::SlidingLog(s) if s.entries.len() == s.entries.capacity() => {
                (s.entries.capacity().max(4) * std::mem::size_of::<(u64, u64)>()) as u64
            }
            LimiterState::SlidingLog(_)
            | LimiterState::FixedWindow(_)
            | LimiterState::SlidingCounter(_)
            | LimiterState::Gcra(_) => 0,
        }
    }
}

/// State of [`Algorithm::SlidingLog`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlidingLog {
    entries: VecDeque<(u64, u64)>,
    used: u64,
    last_ms: u64,
}

impl SlidingLog {
    fn hit(&mut self, now_ms: u64, limit: u64, window: u64, cost: u64) -> Decision {
        let now = now_ms.max(self.last_ms);
        self.last_ms = now;
        while let Some(&(ts, c)) = self.entries.front() {
            if ts.saturating_add(window) > now {
                break;
            }
            self.entries.pop_front();
            self.used -= c;
        }
        // Give memory back after a burst (amortised: only when 3/4 of it is idle).
        if self.entries.capacity() > 16 && self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        let need = cost.max(1);
        let allowed = need <= limit && self.used <= limit - need;
        if allowed && cost > 0 {
            match self.entries.back_mut() {
                Some((ts, c)) if *ts == now => *c += cost,
                _ => self.entries.push_back((now, cost)),
            }
            self.used += cost;
        }
        let retry_after_ms = if allowed {
            0
        } else if need > limit {
            window
        } else {
            let excess = self.used - (limit - need);
            let mut freed = 0u64;
            let mut wait = window;
            for &(ts, c) in &self.entries {
                freed = freed.saturating_add(c);
                if freed >= excess {
                    wait = ts.saturating_add(window) - now;
                    break;
                }
            }
            wait
        };
        Decision {
            allowed,
            remaining: limit.saturating_sub(self.used),
            reset_after_ms: self.expires_at(window) - now,
            retry_after_ms,
        }
    }

    fn expires_at(&self, window: u64) -> u64 {
        match self.entries.back() {
            Some(&(ts, _)) => ts.saturating_add(window).max(self.last_ms),
            None => self.last_ms,
        }
    }
}

/// State of [`Algorithm::FixedWindow`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FixedWindow {
    window_start: u64,
    window_ms: u64,
    count: u64,
    last_ms: u64,
}

impl FixedWindow {
    fn hit(&mut self, now_ms: u64, limit: u64, window: u64, cost: u64) -> Decision {
        if self.last_ms > now_ms.saturating_add(window) {
            *self = Self::default();
        }
        let now = now_ms.max(self.last_ms);
        self.last_ms = now;
        if self.window_ms == 0 || now >= self.window_start.saturating_add(self.window_ms) {
            self.count = 0;
        }
        self.window_start = now - now % window;
        self.window_ms = window;
        let need = cost.max(1);
        let allowed = need <= limit && self.count <= limit - need;
        if allowed {
            self.count += cost;
        }
        let end = self.window_start.saturating_add(window);
        let retry_after_ms = if allowed {
            0
        } else if need > limit {
            window
        } else {
            end - now
        };
        Decision {
            allowed,
            remaining: limit.saturating_sub(self.count),
            reset_after_ms: self.expires_at() - now,
            retry_after_ms,
        }
    }

    fn expires_at(&self) -> u64 {
        if self.count == 0 {
            self.last_ms
        } else {
            self.window_start.saturating_add(self.window_ms)
        }
    }
}

/// State of [`Algorithm::SlidingCounter`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlidingCounter {
    curr_start: u64,
    window_ms: u64,
    prev: u64,
    curr: u64,
    last_ms: u64,
}

impl SlidingCounter {
    fn roll(&mut self, now: u64, window: u64) {
        if self.window_ms != 0 {
            let elapsed = now - self.curr_start;
            if elapsed >= self.window_ms.saturating_mul(2) {
                self.prev = 0;
                self.curr = 0;
            } else if elapsed >= self.window_ms {
                self.prev = self.curr;
                self.curr = 0;
            }
            if self.window_ms != window {
                self.curr = self.curr.saturating_add(self.prev);
                self.prev = 0;
            }
        }
        self.curr_start = now - now % window;
        self.window_ms = window;
    }

    fn hit(&mut self, now_ms: u64, limit: u64, window: u64, cost: u64) -> Decision {
        if self.last_ms > now_ms.saturating_add(window) {
            *self = Self::default();
        }
        let now = now_ms.max(self.last_ms);
        self.last_ms = now;
        self.roll(now, window);
        let w = u128::from(window);
        let weight = u128::from(window - (now - self.curr_start));
        let prev_part = u128::from(self.prev) * weight;
        let need = cost.max(1);
        let allowed = need <= limit
            && self.curr <= limit - need
            && prev_part <= u128::from(limit - need - self.curr) * w;
        if allowed {
            self.curr += cost;
        }
        let used = u128::from(self.curr) + prev_part.div_ceil(w);
        let remaining = u64::try_from(u128::from(limit).saturating_sub(used)).unwrap_or(0);
        let retry_after_ms = if allowed {
            0
        } else if need > limit {
            window
        } else {
            self.retry_after(now, limit, need)
        };
        Decision {
            allowed,
            remaining,
            reset_after_ms: self.expires_at() - now,
            retry_after_ms,
        }
    }

    fn retry_after(&self, now: u64, limit: u64, need: u64) -> u64 {
        let w = self.window_ms;
        let e = now - self.curr_start;
        // Phase 1: later in the current bucket.
        if self.curr <= limit - need && self.prev > 0 {
            let room = u128::from(limit - need - self.curr) * u128::from(w) / u128::from(self.prev);
            let min_e = u128::from(w).saturating_sub(room).max(u128::from(e) + 1);
            if min_e < u128::from(w) {
                return u64::try_from(min_e).unwrap_or(u64::MAX) - e;
            }
        }
        // Phase 2: in the next bucket, where `curr` becomes `prev`.
        let to_next = w - e;
        if self.curr == 0 {
            return to_next;
        }
        let room = u128::from(limit - need) * u128::from(w) / u128::from(self.curr);
        let min_e2 = u128::from(w).saturating_sub(room);
        if min_e2 < u128::from(w) {
            return to_next.saturating_add(u64::try_from(min_e2).unwrap_or(u64::MAX));
        }
        // Phase 3: both buckets have expired.
        to_next.saturating_add(w)
    }

    fn expires_at(&self) -> u64 {
        if self.curr > 0 {
            self.curr_start
                .saturating_add(self.window_ms.saturating_mul(2))
        } else if self.prev > 0 {
            self.curr_start.saturating_add(self.window_ms)
        } else {
            self.last_ms
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_rng::Rng;

    /// `(now, limit, window, cost, allowed, remaining, reset_after, retry_after)`
    type Step = (u64, u64, u64, u64, bool, u64, u64, u64);

    fn run(algorithm: Algorithm, steps: &[Step]) -> LimiterState {
        let mut st = LimiterState::new(algorithm);
        let mut clock = 0;
        for (i, &(now, limit, window, cost, allowed, remaining, reset, retry)) in
            steps.iter().enumerate()
        {
            let d = st.hit(now, limit, window, cost);
            let want = Decision {
                allowed,
                remaining,
                reset_after_ms: reset,
                retry_after_ms: retry,
            };
            assert_eq!(
                d, want,
                "{algorithm:?} step {i}: hit({now}, {limit}, {window}, {cost})"
            );
            clock = now.max(clock);
            assert_eq!(
                st.expires_at_ms(window),
                clock + reset,
                "{algorithm:?} step {i}"
            );
        }
        st
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
            assert_eq!(a.to_string(), a.name());
            assert_eq!(LimiterState::new(a).algorithm(), a);
        }
        let err = "token_bucket".parse::<Algorithm>().unwrap_err();
        assert!(err.contains("'token_bucket'"), "{err}");
        for a in Algorithm::ALL {
            assert!(err.contains(a.name()), "{err}");
        }
        assert!("Sliding_Log".parse::<Algorithm>().is_err());
    }

    #[test]
    fn sliding_log_table() {
        let st = run(
            Algorithm::SlidingLog,
            &[
                (0, 3, 1000, 1, true, 2, 1000, 0),
                (100, 3, 1000, 1, true, 1, 1000, 0),
                (200, 3, 1000, 1, true, 0, 1000, 0),
                // full: the oldest unit (t=0) frees up at 1000
                (300, 3, 1000, 1, false, 0, 900, 700),
                (300, 3, 1000, 0, false, 0, 900, 700), // peek on a full log
                (999, 3, 1000, 1, false, 0, 201, 1),   // 1 ms early
                (1000, 3, 1000, 1, true, 0, 1000, 0),  // exactly at retry_after
                // cost 2 needs two units back: t=100 and t=200 -> at 1200
                (1000, 3, 1000, 2, false, 0, 1000, 200),
                (1199, 3, 1000, 2, false, 1, 801, 1),
                (1200, 3, 1000, 2, true, 0, 1000, 0),
                (1200, 3, 1000, 4, false, 0, 1000, 1000), // cost > limit: never
                (1200, 3, 1000, 0, false, 0, 1000, 800),  // oldest is now t=1000
                // everything expired: a peek is allowed and records nothing
                (5000, 3, 1000, 0, true, 3, 0, 0),
                (5000, 3, 1000, 3, true, 0, 1000, 0),
                // an earlier timestamp is clamped to 5000
                (4000, 3, 1000, 1, false, 0, 1000, 1000),
                // a lower limit: remaining saturates, retry waits for enough expiry
                (5500, 2, 1000, 1, false, 0, 500, 500),
                // shrinking the window applies at once
                (5500, 3, 400, 1, true, 2, 400, 0),
            ],
        );
        assert_eq!(st.expires_at_ms(400), 5900);
    }

    #[test]
    fn sliding_log_merges_equal_timestamps_and_frees_memory() {
        let mut st = LimiterState::new(Algorithm::SlidingLog);
        for _ in 0..100 {
            assert!(st.hit(7, 1000, 10, 1).allowed);
        }
        assert_eq!(st.heap_bytes(), {
            let LimiterState::SlidingLog(log) = &st else {
                unreachable!()
            };
            assert_eq!(log.entries.len(), 1);
            log.entries.capacity() * 16
        });
        for t in 0..1000 {
            st.hit(100 + t, 1000, 10_000, 1);
        }
        let big = st.heap_bytes();
        assert!(big >= 1000 * 16);
        st.hit(1_000_000, 1000, 10_000, 1);
        assert!(st.heap_bytes() < big / 4, "{} vs {big}", st.heap_bytes());
        assert_eq!(LimiterState::new(Algorithm::FixedWindow).heap_bytes(), 0);
    }

    #[test]
    fn fixed_window_table() {
        let st = run(
            Algorithm::FixedWindow,
            &[
                (10, 3, 1000, 2, true, 1, 990, 0),
                (500, 3, 1000, 2, false, 1, 500, 500),
                (500, 3, 1000, 1, true, 0, 500, 0),
                (500, 3, 1000, 0, false, 0, 500, 500),
                (999, 3, 1000, 1, false, 0, 1, 1),
                (1000, 3, 1000, 1, true, 2, 1000, 0),
                (1000, 3, 1000, 5, false, 2, 1000, 1000),
                (1000, 3, 1000, 0, true, 2, 1000, 0),
                (900, 3, 1000, 2, true, 0, 1000, 0), // clamped to 1000
                (3500, 3, 1000, 0, true, 3, 0, 0),
                // window change: re-aligned to 3000..3600... of width 600, count kept
                (3500, 3, 1000, 1, true, 2, 500, 0),
                (3500, 3, 600, 2, true, 0, 100, 0),
                (3599, 3, 600, 1, false, 0, 1, 1),
                (3600, 3, 600, 3, true, 0, 600, 0),
            ],
        );
        assert_eq!(st.expires_at_ms(600), 4200);
    }

    #[test]
    fn sliding_counter_table() {
        let st = run(
            Algorithm::SlidingCounter,
            &[
                (0, 10, 1000, 10, true, 0, 2000, 0),
                // next window at 1000 has prev = 10: weight must drop to 9/10 -> 1100
                (500, 10, 1000, 1, false, 0, 1500, 600),
                (1099, 10, 1000, 1, false, 0, 901, 1),
                (1100, 10, 1000, 1, true, 0, 1900, 0),
                // estimate 9 + 1 = 10: a peek needs 1 unit -> weight 8/10 at 1200
                (1100, 10, 1000, 0, false, 0, 1900, 100),
                (1200, 10, 1000, 0, true, 1, 1800, 0),
                (1200, 10, 1000, 11, false, 1, 1800, 1000),
                // estimate 1 + 5 = 6 at 1500: cost 5 needs weight 4/10 -> 1600
                (1500, 10, 1000, 5, false, 4, 1500, 100),
                (1599, 10, 1000, 5, false, 4, 1401, 1),
                (1600, 10, 1000, 5, true, 0, 1400, 0),
                // 2000: prev = 6 at full weight; cost 10 must wait for the next window,
                // where prev' = curr = 0 -> 3000
                (2000, 10, 1000, 10, false, 4, 1000, 1000),
                (2999, 10, 1000, 10, false, 9, 1, 1),
                (3000, 10, 1000, 10, true, 0, 2000, 0),
                // 5000: two windows later everything is gone
                (5000, 10, 1000, 0, true, 10, 0, 0),
            ],
        );
        assert_eq!(st.expires_at_ms(1000), 5000);

        // Phase 3: cost == limit behind a non-empty current window waits for both windows.
        run(
            Algorithm::SlidingCounter,
            &[
                (0, 2, 1000, 2, true, 0, 2000, 0),
                (1, 2, 1000, 2, false, 0, 1999, 1999),
                (1999, 2, 1000, 2, false, 1, 1, 1), // estimate 0.002: one unit fits
                (2000, 2, 1000, 2, true, 0, 2000, 0),
            ],
        );
        // Phase 2 with a partial weight; then a window change folds prev into curr.
        run(
            Algorithm::SlidingCounter,
            &[
                (0, 4, 100, 3, true, 1, 200, 0),
                // at 134: 3 * 66/100 = 1.98, + 2 <= 4; at 133: 2.01 + 2 > 4
                (50, 4, 100, 2, false, 1, 150, 84),
                (133, 4, 100, 2, false, 1, 67, 1),
                (134, 4, 100, 2, true, 0, 166, 0),
                // window 100 -> 50: curr = 2 + 3 = 5 in [150, 200); at 220: 5 * 30/50 = 3
                (150, 4, 50, 0, false, 0, 100, 70),
                (219, 4, 50, 0, false, 0, 31, 1),
                (220, 4, 50, 0, true, 1, 30, 0),
            ],
        );
    }

    #[test]
    fn extreme_values_do_not_panic() {
        for a in Algorithm::ALL {
            let mut st = LimiterState::new(a);
            for &(now, limit, window, cost) in &[
                (u64::MAX - 5, u64::MAX, u64::MAX, u64::MAX),
                (u64::MAX - 5, u64::MAX, u64::MAX, 1),
                (u64::MAX - 1, 1, u64::MAX, 1),
                (u64::MAX, 1, u64::MAX, 1),
                (u64::MAX, 1, 1, 1),
                (u64::MAX, 0, 0, 0), // out of contract: limit 0, window 0
                (0, 3, 1, 2),        // backwards
                (u64::MAX, 3, 2, u64::MAX),
                (u64::MAX, u64::MAX, 2, u64::MAX - 1),
            ] {
                let d = st.hit(now, limit, window, cost);
                assert!(d.remaining <= limit);
                let _ = st.expires_at_ms(window);
                let _ = st.heap_bytes();
            }
            let mut st = LimiterState::new(a);
            let d = st.hit(5, 0, 0, 0);
            assert!(!d.allowed);
            assert_eq!(d.retry_after_ms, 1);
        }
    }

    /// Largest number of units admitted in any half-open interval `(t - window, t]`
    /// (two pointers over the time-ordered admissions).
    fn max_in_any_window(admitted: &[(u64, u64)], window: u64) -> u64 {
        let (mut l, mut sum, mut best) = (0, 0, 0);
        for r in 0..admitted.len() {
            sum += admitted[r].1;
            while admitted[l].0 + window <= admitted[r].0 {
                sum -= admitted[l].1;
                l += 1;
            }
            best = best.max(sum);
        }
        best
    }

    fn peek(st: &LimiterState, now: u64, limit: u64, window: u64) -> u64 {
        st.clone().hit(now, limit, window, 0).remaining
    }

    /// Replays random traffic and checks every decision against the contract.
    /// Returns the admitted `(ts, cost)` list.
    fn replay(
        algorithm: Algorithm,
        limit: u64,
        window: u64,
        n: usize,
        seed: u64,
    ) -> Vec<(u64, u64)> {
        let mut rng = Rng(seed);
        let mut st = LimiterState::new(algorithm);
        // Receives only the recorded hits: denied calls and peeks must not matter.
        let mut shadow = LimiterState::new(algorithm);
        // Independent sliding-log oracle.
        let mut log: std::collections::VecDeque<(u64, u64)> = std::collections::VecDeque::new();
        let mut admitted = Vec::new();
        let mut now = 1_000_000 + rng.below_u64(window);
        for step in 0..n {
            now += match rng.below_u64(20) {
                0..=7 => 0,
                8..=15 => rng.below_u64(window / 4 + 1),
                16..=18 => rng.below_u64(window + 1),
                _ => rng.below_u64(3 * window),
            };
            let cost = match rng.below_u64(20) {
                0 | 1 => 0,
                2..=12 => 1,
                13..=18 => 1 + rng.below_u64(limit),
                _ => limit + 1 + rng.below_u64(2),
            };
            let need = cost.max(1);
            let before = peek(&st, now, limit, window);
            let d = st.hit(now, limit, window, cost);
            let ctx = format!(
                "{algorithm:?} L={limit} W={window} step {step} t={now} cost={cost}: {d:?}"
            );
            assert!(d.remaining <= limit, "{ctx}");
            if need > limit {
                assert!(!d.allowed, "{ctx}");
                assert_eq!(d.retry_after_ms, window, "{ctx}");
            } else {
                assert_eq!(d.allowed, need <= before, "{ctx} before={before}");
            }
            if d.allowed {
                assert_eq!(d.retry_after_ms, 0, "{ctx}");
                assert_eq!(d.remaining, before - cost, "{ctx}");
            } else {
                assert_eq!(d.remaining, before, "{ctx}");
            }
            if d.allowed && cost > 0 {
                assert_eq!(shadow.hit(now, limit, window, cost), d, "{ctx}");
                admitted.push((now, cost));
            } else {
                assert_eq!(shadow.clone().hit(now, limit, window, cost), d, "{ctx}");
            }
            // retry_after is exact: admitted at now + retry, not 1 ms earlier.
            if !d.allowed && need <= limit {
                assert!(d.retry_after_ms >= 1, "{ctx}");
                let at = now + d.retry_after_ms;
                assert!(st.clone().hit(at, limit, window, cost).allowed, "{ctx}");
                assert!(
                    !st.clone().hit(at - 1, limit, window, cost).allowed,
                    "{ctx}"
                );
            }
            // reset_after / expires_at: empty exactly from then on.
            let exp = st.expires_at_ms(window);
            assert_eq!(exp, now + d.reset_after_ms, "{ctx}");
            assert_eq!(peek(&st, exp, limit, window), limit, "{ctx}");
            if d.reset_after_ms > 0 {
                assert!(peek(&st, exp - 1, limit, window) < limit, "{ctx}");
            }
            if algorithm == Algorithm::SlidingLog {
                while log.front().is_some_and(|&(t, _)| t + window <= now) {
                    log.pop_front();
                }
                let used: u64 = log.iter().map(|e| e.1).sum();
                if need <= limit {
                    assert_eq!(d.allowed, used + need <= limit, "{ctx} used={used}");
                }
                if d.allowed && cost > 0 {
                    log.push_back((now, cost));
                }
                let used: u64 = log.iter().map(|e| e.1).sum();
                assert_eq!(d.remaining, limit - used, "{ctx}");
            }
        }
        admitted
    }

    #[test]
    fn randomized_replay_respects_bounds() {
        let configs: &[(u64, u64)] = &[
            (1, 1),
            (1, 10),
            (2, 2),
            (3, 7),
            (5, 1000),
            (10, 10),
            (50, 100),
            (100, 3),
        ];
        let per_config = 100_000 / configs.len();
        for algorithm in Algorithm::ALL {
            for (k, &(limit, window)) in configs.iter().enumerate() {
                let seed = 0x5EED_0000 + k as u64 * 7919 + algorithm as u64;
                let admitted = replay(algorithm, limit, window, per_config, seed);
                let total: u64 = admitted.iter().map(|e| e.1).sum();
                assert!(total > 0);
                let worst = max_in_any_window(&admitted, window);
                let bound = match algorithm {
                    Algorithm::SlidingLog => limit,
                    Algorithm::FixedWindow => {
                        // ... and at most `limit` per aligned window.
                        let mut per_window = std::collections::HashMap::new();
                        for &(t, c) in &admitted {
                            *per_window.entry(t / window).or_insert(0) += c;
                        }
                        assert!(per_window.values().all(|&c| c <= limit));
                        if window >= 2 {
                            2 * limit
                        } else {
                            limit
                        }
                    }
                    Algorithm::SlidingCounter => limit + limit * window.saturating_sub(2) / window,
                    Algorithm::Gcra => limit + limit * (window - 1) / window,
                };
                assert!(
                    worst <= bound,
                    "{algorithm:?} L={limit} W={window}: {worst} units in one window > {bound}"
                );
            }
        }
    }

    #[test]
    fn gcra_table() {
        let st = run(
            Algorithm::Gcra,
            &[
                // A unit costs 333.3 ms of the 1000 ms burst.
                (0, 3, 1000, 1, true, 2, 334, 0),
                (0, 3, 1000, 2, true, 0, 1000, 0),
                (0, 3, 1000, 1, false, 0, 1000, 334),
                (333, 3, 1000, 1, false, 0, 667, 1), // 1 ms early
                (334, 3, 1000, 1, true, 0, 1000, 0), // exactly at retry_after
                (334, 3, 1000, 0, false, 0, 1000, 333),
                (334, 3, 1000, 4, false, 0, 1000, 1000), // cost > limit: never
                (5000, 3, 1000, 0, true, 3, 0, 0),       // drained: a peek records nothing
                (4000, 3, 1000, 3, true, 0, 1000, 0),    // clamped to 5000
                // a changed limit: the debt (1000 ms) is re-expressed in sixths of a ms
                (5000, 6, 1000, 1, false, 0, 1000, 167),
                // a changed window: 500 ms of debt left is a full burst of 500 ms
                (5500, 6, 500, 1, false, 0, 500, 84),
                (5584, 6, 500, 1, true, 0, 500, 0),
            ],
        );
        assert_eq!(st.expires_at_ms(500), 6084);
    }

    #[test]
    fn gcra_bound_is_tight() {
        // L = 10, W = 100: a burst of 10 at t=0, then 9 more by t=99 (one per 10 ms).
        let mut st = LimiterState::new(Algorithm::Gcra);
        assert!(st.hit(0, 10, 100, 10).allowed);
        let mut admitted = vec![(0, 10)];
        for t in 1..100 {
            if st.hit(t, 10, 100, 1).allowed {
                admitted.push((t, 1));
            }
        }
        assert_eq!(max_in_any_window(&admitted, 100), 10 + 10 * 99 / 100);
    }

    #[test]
    fn sliding_counter_bound_is_tight() {
        // L = W = 10: 10 units at offset 9, then 8 at offset 8 of the next window.
        let mut st = LimiterState::new(Algorithm::SlidingCounter);
        assert!(st.hit(9, 10, 10, 10).allowed);
        let d = st.hit(18, 10, 10, 8);
        assert!(d.allowed, "{d:?}");
        assert!(!st.hit(18, 10, 10, 1).allowed);
        let admitted = [(9, 10), (18, 8)];
        assert_eq!(max_in_any_window(&admitted, 10), 10 + 10 * 8 / 10);
    }

    #[test]
    fn state_a_window_ahead_recovers_from_a_clock_stepped_back() {
        // 5 per 3 s, 5 calls a second for 12 s after a step back.
        for algorithm in [
            Algorithm::FixedWindow,
            Algorithm::SlidingCounter,
            Algorithm::Gcra,
        ] {
            let traffic = |st: &mut LimiterState, from: u64| {
                (0..60u64)
                    .filter(|i| st.hit(from + i * 200, 5, 3000, 1).allowed)
                    .count()
            };
            let mut fresh = LimiterState::new(algorithm);
            let expected = traffic(&mut fresh, 100_000);
            // State written a minute ahead is dropped: the same admissions as a fresh state.
            let mut ahead = LimiterState::new(algorithm);
            assert_eq!(traffic(&mut ahead, 160_000), expected);
            assert_eq!(traffic(&mut ahead, 100_000), expected, "{algorithm:?}");
            // A step within a window holds the clock: nothing more is admitted until it is over.
            let mut near = LimiterState::new(algorithm);
            assert_eq!(
                (0..5)
                    .filter(|_| near.hit(101_000, 5, 3000, 1).allowed)
                    .count(),
                5
            );
            assert!((0..5).all(|i| !near.hit(100_000 + i * 200, 5, 3000, 1).allowed));
        }
    }
}
