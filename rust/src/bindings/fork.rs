//! `fork()` safety for every `MemoryStore` of the process.
//!
//! `fork()` copies only the calling thread. A shard lock held at that moment by another thread
//! (a detached `del_pattern`, the sweeper) would stay locked in the child forever, and the shard
//! could be copied half-updated; the sweeper thread itself is missing in the child.
//!
//! So `fork()` itself (a `pthread_atfork` prepare handler) first takes every shard lock of every
//! live store, and releases them right after, in the parent and in the child. Only a thread
//! that holds no shard lock can be waiting at that point: `os.fork()` holds the GIL, so no
//! attached command is running, and detached walks and the sweeper never need the GIL while
//! they hold a lock, so the wait is at most one batch. The locks are released inside `fork()`
//! too, before the parent runs any Python code: an attached command of another thread that then
//! blocked on a held lock would keep the GIL the parent needs. The child then starts a new
//! sweeper in place of the one it lost (an `os.register_at_fork` hook: ordinary code, unlike
//! a handler that runs inside `fork()`).

use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, Weak};
use std::time::Duration;

use pyo3::prelude::*;

use crate::store::clock::Clock;
use crate::store::expiry::Sweeper;
use crate::store::{AllShards, Store};

/// A store's background expiry: the sweeper and what it takes to start another one.
pub(super) struct Background {
    store: Weak<Store>,
    clock: Arc<Clock>,
    /// None: no periodic sweep (disabled, or a manual clock that never moves on its own).
    interval: Option<Duration>,
    sweeper: Mutex<Option<Sweeper>>,
}

impl Background {
    /// Start sweeping `store` every `interval` (when given) and register the store for `fork()`.
    pub(super) fn start(
        store: &Arc<Store>,
        clock: Arc<Clock>,
        interval: Option<Duration>,
    ) -> std::io::Result<Arc<Self>> {
        let sweeper = interval
            .map(|every| Sweeper::spawn(Arc::downgrade(store), Arc::clone(&clock), every))
            .transpose()?;
        let background = Arc::new(Self {
            store: Arc::downgrade(store),
            clock,
            interval,
            sweeper: Mutex::new(sweeper),
        });
        let mut live = lock(&LIVE);
        live.retain(|entry| entry.strong_count() > 0);
        live.push(Arc::downgrade(&background));
        Ok(background)
    }

    /// Stop the sweeper and wait for it (at most one batch of work). Idempotent.
    pub(super) fn stop(&self) {
        let sweeper = lock(&self.sweeper).take();
        if let Some(mut sweeper) = sweeper {
            sweeper.stop();
        }
    }

    /// In a forked child: a running sweeper in place of the one the child does not have.
    #[cfg(unix)]
    fn restart_in_child(&self) -> std::io::Result<()> {
        let mut slot = lock(&self.sweeper);
        let Some(lost) = slot.take() else {
            return Ok(()); // closed before the fork, or never had one
        };
        lost.abandon();
        if let Some(every) = self.interval {
            *slot = Some(Sweeper::spawn(
                self.store.clone(),
                Arc::clone(&self.clock),
                every,
            )?);
        }
        Ok(())
    }
}

/// Every store's background, weakly: a store that is gone needs nothing at fork time.
static LIVE: Mutex<Vec<Weak<Background>>> = Mutex::new(Vec::new());

/// What the forking thread holds from the prepare handler until the parent or child handler.
#[cfg(unix)]
struct Held {
    /// Declared first, so dropped first: the locks go before the stores they borrow from.
    _shards: Vec<AllShards<'static>>,
    _stores: Vec<Arc<Store>>,
    _registry: MutexGuard<'static, Vec<Weak<Background>>>,
}

#[cfg(unix)]
thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `fork()` prepare handler: the registry, then every shard of every live store (stores in
/// registration order, shards ascending: the order `rate_limit_many` uses, so no cycle forms).
#[cfg(unix)]
extern "C" fn prepare() {
    let registry = lock(&LIVE);
    let stores: Vec<Arc<Store>> = registry
        .iter()
        .filter_map(Weak::upgrade)
        .filter_map(|background| background.store.upgrade())
        .collect();
    let shards = stores
        .iter()
        .map(|store| {
            // SAFETY: the guards borrow from `store`, which `Held::_stores` keeps alive until
            // `Held::_shards` (declared first, so dropped first) has released them.
            unsafe { std::mem::transmute::<AllShards<'_>, AllShards<'static>>(store.lock_all()) }
        })
        .collect();
    HELD.with(|held| {
        *held.borrow_mut() = Some(Held {
            _shards: shards,
            _stores: stores,
            _registry: registry,
        });
    });
}

/// `fork()` parent and child handler: release what `prepare` took (a futex unlock each).
#[cfg(unix)]
extern "C" fn release() {
    if let Some(held) = HELD.with(|held| held.borrow_mut().take()) {
        drop(held);
    }
}

/// After `os.fork()` in the child: give every live store a running sweeper again. A thread
/// that cannot be started raises `OSError` (that store then expires keys only when commands
/// meet them).
#[cfg(unix)]
#[pyfunction]
fn restart_sweepers() -> PyResult<()> {
    let live: Vec<Arc<Background>> = lock(&LIVE).iter().filter_map(Weak::upgrade).collect();
    for background in live {
        background.restart_in_child()?;
    }
    Ok(())
}

/// Install the `fork()` handlers and the child hook, once per process.
#[cfg(unix)]
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    static INSTALLED: Once = Once::new();
    let mut result = Ok(());
    INSTALLED.call_once(|| {
        // SAFETY: the handlers are `extern "C" fn()` that never unwind (they take std mutexes,
        // whose poisoning is ignored, and move `Vec`s).
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release)) };
        if rc != 0 {
            result = Err(pyo3::exceptions::PyOSError::new_err(format!(
                "pthread_atfork failed with error {rc}"
            )));
            return;
        }
        result = (|| {
            let py = module.py();
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item(
                "after_in_child",
                wrap_pyfunction!(restart_sweepers, module)?,
            )?;
            py.import("os")?
                .call_method("register_at_fork", (), Some(&kwargs))?;
            Ok(())
        })();
    });
    result
}
