//! cachebolt's Rust core: a pure-Rust store (`store`) behind a thin PyO3 binding (`bindings`).

pub mod bindings;
pub mod errors;
pub mod store;

use pyo3::prelude::*;

/// `cachebolt._core`. `gil_used = false` holds because `MemoryStore` is frozen and does all its
/// own locking (sharded mutexes and atomics), so it is safe on free-threaded Python too.
#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<bindings::MemoryStore>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
