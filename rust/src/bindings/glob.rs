//! `cachebolt._core.GlobPattern`: the store's glob matcher for keys that come from Redis.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::store::glob::Glob;

/// A Redis glob compiled once, matched in time linear in each name.
#[pyclass(frozen, module = "cachebolt._core")]
pub struct GlobPattern {
    glob: Glob,
    head: String,
}

#[pymethods]
impl GlobPattern {
    #[new]
    fn new(pattern: &str) -> Self {
        let glob = Glob::new(pattern.as_bytes());
        // The head ends before a `*` byte (or at the end), so it is a char boundary.
        let head = pattern[..glob.head_len()].to_owned();
        Self { glob, head }
    }

    /// The pattern up to its first `*` (all of it when it has none).
    #[getter]
    fn head(&self) -> &str {
        &self.head
    }

    /// True when nothing but `*`s follows the head (Redis matches it without backtracking).
    #[getter]
    fn head_only(&self) -> bool {
        self.glob.is_head_only()
    }

    // O(total bytes): attached, since the names are borrowed from the caller's `bytes`, and
    // a caller passes one SCAN step of names at a time.
    /// Indexes of the `names` whose bytes after the first `skip` match.
    fn matching(&self, names: &Bound<'_, PyList>, skip: usize) -> PyResult<Vec<usize>> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let name = name.cast_into::<PyBytes>()?;
            let bytes = name.as_bytes();
            if bytes.len() >= skip && self.glob.matches(&bytes[skip..]) {
                out.push(i);
            }
        }
        Ok(out)
    }
}
