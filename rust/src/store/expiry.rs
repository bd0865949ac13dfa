//! Expiry: TTL commands, the incremental sweep and the background sweeper thread.
//!
//! Expired keys are removed lazily when a command meets them and actively by `sweep_expired`,
//! which walks each shard in batches of `BATCH` entries, releasing the lock between batches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::clock::Clock;
use super::stats::Stats;
use super::{deadline, Store, BATCH, SHARDS};

impl Store {
    /// Milliseconds left: -2 for a missing key, -1 for no expiry.
    pub fn pttl(&self, key: &[u8], now_ms: u64) -> i64 {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                None => -2,
                Some(pos) => match shard.slab[pos].expires_at() {
                    0 => -1,
                    at => (at - now_ms) as i64,
                },
            }
        })
    }

    /// Seconds left rounded like Redis `TTL` ((ms + 500) / 1000); -2 missing, -1 no expiry.
    pub fn ttl(&self, key: &[u8], now_ms: u64) -> i64 {
        match self.pttl(key, now_ms) {
            ms if ms < 0 => ms,
            ms => (ms + 500) / 1000,
        }
    }

    /// Set a TTL on a live key; false when missing.
    pub fn expire(&self, key: &[u8], ttl_ms: u64, now_ms: u64) -> bool {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                None => false,
                Some(pos) => {
                    shard.slab[pos].set_expires_at(deadline(now_ms, ttl_ms));
                    true
                }
            }
        })
    }

    /// Remove a key's TTL; true when it had one.
    pub fn persist(&self, key: &[u8], now_ms: u64) -> bool {
        self.in_shard(key, |shard, hash| {
            match shard.find_live(hash, key, now_ms, &self.stats) {
                Some(pos) if shard.slab[pos].expires_at() != 0 => {
                    shard.slab[pos].set_expires_at(0);
                    true
                }
                _ => false,
            }
        })
    }

    /// Remove every expired key; the count removed.
    pub fn sweep_expired(&self, now_ms: u64) -> usize {
        self.sweep_expired_until(now_ms, &AtomicBool::new(false))
    }

    /// `sweep_expired`, giving up between batches once `stop` is set (so `close()` is prompt).
    pub fn sweep_expired_until(&self, now_ms: u64, stop: &AtomicBool) -> usize {
        let mut removed = 0;
        for idx in 0..SHARDS {
            let mut upper = usize::MAX;
            while upper > 0 {
                if stop.load(Ordering::Relaxed) {
                    return removed;
                }
                upper = self.walk_batch(idx, upper, BATCH, |shard, pos| {
                    if !shard.slab[pos].is_expired(now_ms) {
                        return None;
                    }
                    Stats::bump(&self.stats.expired);
                    removed += 1;
                    Some(shard.remove_at(pos, &self.stats))
                });
            }
        }
        removed
    }
}

/// Shutdown signal shared by a `Sweeper` and its thread.
#[derive(Debug, Default)]
struct Signal {
    stop: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

/// The background expiry thread. It holds only a `Weak` to the store and never touches Python,
/// so it needs no GIL; it stops on `stop()`, on drop, or once the store is gone.
#[derive(Debug)]
pub struct Sweeper {
    signal: Arc<Signal>,
    handle: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Start sweeping `store` every `interval`.
    pub fn spawn(
        store: Weak<Store>,
        clock: Arc<Clock>,
        interval: Duration,
    ) -> std::io::Result<Self> {
        let signal = Arc::new(Signal::default());
        let thread_signal = Arc::clone(&signal);
        let handle = std::thread::Builder::new()
            .name("cachebolt-sweeper".to_owned())
            .spawn(move || loop {
                {
                    let guard = thread_signal
                        .lock
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    if !thread_signal.stop.load(Ordering::Acquire) {
                        let _ = thread_signal.wake.wait_timeout(guard, interval);
                    }
                }
                if thread_signal.stop.load(Ordering::Acquire) {
                    return;
                }
                let Some(store) = store.upgrade() else { return };
                store.sweep_expired_until(clock.now_ms(), &thread_signal.stop);
            })?;
        Ok(Self {
            signal,
            handle: Some(handle),
        })
    }

    /// Stop the thread and wait for it (at most one batch of work). Idempotent.
    pub fn stop(&mut self) {
        {
            // Set the flag under the lock so the thread cannot miss the wake-up between its
            // check and its wait.
            let _guard = self
                .signal
                .lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.signal.stop.store(true, Ordering::Release);
            self.signal.wake.notify_all();
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Sweeper {
    /// Let go of the thread without signalling or joining it, for a forked child: only the
    /// forking thread is copied into the child, so joining would never return, and the signal's
    /// lock may have been held by the thread that is gone. The handle and signal are leaked.
    pub fn abandon(self) {
        std::mem::forget(self);
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.stop();
    }
}
