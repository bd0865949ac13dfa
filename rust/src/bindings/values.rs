//! What JSON cannot hold: values are JSON-encoded by orjson in Python, which writes NaN and the
//! infinities as `null`; the service refuses them with this walk (a Python walk costs about
//! 90 ns a node, this one a few).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// The first NaN or infinite float in `value`, else None.
///
/// Dicts (keys and values), lists and tuples are walked here; any other object that is not a
/// str, an int or None goes to `children(obj)`, which returns what orjson encodes inside it (an
/// enum's value, a dataclass's fields) or None. Called only on a value orjson has encoded, so
/// nesting is at most orjson's 255 levels. Attached to the GIL: it reads Python objects.
#[pyfunction]
pub fn first_non_finite(
    value: &Bound<'_, PyAny>,
    children: &Bound<'_, PyAny>,
) -> PyResult<Option<f64>> {
    if let Ok(float) = value.cast::<PyFloat>() {
        let x = float.value();
        return Ok((!x.is_finite()).then_some(x));
    }
    if value.is_none() || value.is_instance_of::<PyString>() || value.is_instance_of::<PyInt>() {
        return Ok(None);
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        for (key, item) in dict.iter() {
            for part in [key, item] {
                if let Some(x) = first_non_finite(&part, children)? {
                    return Ok(Some(x));
                }
            }
        }
        return Ok(None);
    }
    if let Ok(list) = value.cast::<PyList>() {
        return first_in(list.iter(), children);
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return first_in(tuple.iter(), children);
    }
    let inner = children.call1((value,))?;
    if inner.is_none() {
        return Ok(None);
    }
    let items: Vec<Bound<'_, PyAny>> = inner.try_iter()?.collect::<PyResult<_>>()?;
    first_in(items.into_iter(), children)
}

fn first_in<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    children: &Bound<'py, PyAny>,
) -> PyResult<Option<f64>> {
    for item in items {
        if let Some(x) = first_non_finite(&item, children)? {
            return Ok(Some(x));
        }
    }
    Ok(None)
}
