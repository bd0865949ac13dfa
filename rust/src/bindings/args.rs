//! Python argument conversion with messages that name the argument.

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};

use crate::store::validate;

/// `PyO3` would extract `True` as 1 or 1.0; a bool where a number is expected is a caller bug.
fn reject_bool(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<()> {
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number, not bool"
        )));
    }
    Ok(())
}

/// An `int` argument that fits in i64 (an out-of-range int is a `ValueError`, like Redis's
/// "value is not an integer or out of range"). The messages are those of `int64_arg` in
/// python/cachebolt/_validate.py, so every mode names a bad argument alike.
pub fn int_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    reject_bool(obj, name)?;
    if !obj.is_instance_of::<PyInt>() {
        let type_name = obj.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int, not {type_name}"
        )));
    }
    obj.extract::<i64>().map_err(|err| {
        if err.is_instance_of::<PyOverflowError>(obj.py()) {
            PyValueError::new_err(format!("{name} is out of the 64-bit range, got {obj}"))
        } else {
            err
        }
    })
}

/// A non-negative `int` argument.
pub fn count_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    let value = int_arg(obj, name)?;
    u64::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be >= 0, got {value}")))
}

/// A duration in seconds (`int` or `float`) -> ms, positive and finite.
pub fn seconds_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    reject_bool(obj, name)?;
    Ok(validate::seconds_to_ms(name, obj.extract::<f64>()?)?)
}

/// A positive duration in ms (`int`).
pub fn ms_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    Ok(validate::positive_ms(name, int_arg(obj, name)?)?)
}

/// A non-empty key.
#[inline]
pub fn key_arg(key: &str) -> PyResult<&[u8]> {
    validate::check_key(key)?;
    Ok(key.as_bytes())
}
