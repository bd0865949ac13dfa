//! The Python binding: the only `#[pyclass]`/`#[pymethods]` code. Thin: argument conversion,
//! the clock read, and the GIL decision per method.

mod args;
mod fork;
mod glob;
mod memory_store;
mod values;

#[cfg(unix)]
pub use fork::register as register_fork_handlers;
pub use glob::GlobPattern;
pub use memory_store::MemoryStore;
pub use values::first_non_finite;
