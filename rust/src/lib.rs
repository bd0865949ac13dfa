//! cachebolt's Rust core: a pure-Rust store (`store`) behind a thin `PyO3` binding (`bindings`).

pub mod bindings;
pub mod errors;
pub mod store;

use pyo3::prelude::*;

/// `cachebolt._core`. `gil_used = false` holds because `MemoryStore` is frozen and does all its
/// own locking (sharded mutexes and atomics), so it is safe on free-threaded Python too.
#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    tune_allocator();
    m.add_class::<bindings::MemoryStore>()?;
    m.add_class::<bindings::GlobPattern>()?;
    m.add_function(wrap_pyfunction!(bindings::first_non_finite, m)?)?;
    #[cfg(unix)]
    bindings::register_fork_handlers(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

// Rust-side allocations (entries, blobs, slabs) use mimalloc, not glibc malloc: glibc
// consolidates its fastbins (every freed small blob) on the next large allocation, a multi-ms
// pause that would land under a shard lock; and mimalloc's size classes waste less on the small
// key+value blobs (a 60-byte blob takes 64 bytes instead of glibc's 80).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Return freed memory to the OS at once. A growing keyspace frees its old slabs and index tables
/// as it grows; mimalloc's default purge delay kept them resident (~20-40 bytes per key more RSS
/// at 1M keys), and eagerly committed arenas add more. Indices from mimalloc v3's `mi_option_t`
/// (`include/mimalloc.h` in libmimalloc-sys 0.1.49, pinned in Cargo.toml).
fn tune_allocator() {
    const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: plain setters of global allocator options, safe to call at any time.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}
