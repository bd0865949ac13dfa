//! The Python binding: the only `#[pyclass]`/`#[pymethods]` code. Thin: argument conversion,
//! the clock read, and the GIL decision per method.

mod args;
mod glob;
mod memory_store;

pub use glob::GlobPattern;
pub use memory_store::MemoryStore;
