//! Python argument conversion. Each function has a twin of the same name in
//! python/cachebolt/_validate.py with the same exception types and messages, so a bad argument
//! reads alike in memory mode, Redis mode and during fallback.

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString, PyTuple};

use crate::store::validate;
use crate::store::Algorithm;

/// `TypeError: <name> must be <expected>, not <type>`.
fn type_error(obj: &Bound<'_, PyAny>, name: &str, expected: &str) -> PyErr {
    match obj.get_type().name() {
        Ok(type_name) => {
            PyTypeError::new_err(format!("{name} must be {expected}, not {type_name}"))
        }
        Err(err) => err,
    }
}

/// A `str` argument (a member, field, token or value).
#[inline]
pub fn str_arg<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> PyResult<&'a str> {
    match obj.cast::<PyString>() {
        Ok(text) => text.to_str(),
        Err(_) => Err(type_error(obj, name, "a str")),
    }
}

/// A key: a non-empty `str` that fits the store.
#[inline]
pub fn key_arg<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> PyResult<&'a str> {
    let key = str_arg(obj, name)?;
    validate::check_key(name, key)?;
    Ok(key)
}

/// Every element of `*args` as a `str`, at least one (`sadd`, `srem`, `hdel`): none is a
/// `TypeError`, as Python's for a missing argument.
pub fn str_args(items: &Bound<'_, PyTuple>, command: &str, what: &str) -> PyResult<Vec<String>> {
    if items.is_empty() {
        return Err(PyTypeError::new_err(format!(
            "{command} needs at least one {what}"
        )));
    }
    items
        .iter()
        .map(|item| str_arg(&item, what).map(str::to_owned))
        .collect()
}

/// An `int` argument (not a bool) that fits in i64; beyond is a `ValueError`, like Redis's
/// "value is not an integer or out of range".
pub fn int_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<i64> {
    if !obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyBool>() {
        return Err(type_error(obj, name, "an int"));
    }
    obj.extract::<i64>().map_err(|err| {
        if err.is_instance_of::<PyOverflowError>(obj.py()) {
            PyValueError::new_err(format!("{name} is out of the 64-bit range, got {obj}"))
        } else {
            err
        }
    })
}

/// A non-negative `int` argument (a cost).
pub fn count_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    let value = int_arg(obj, name)?;
    u64::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be >= 0, got {value}")))
}

/// An `int` argument >= 1 (a limit).
pub fn positive_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    let value = int_arg(obj, name)?;
    match u64::try_from(value) {
        Ok(positive) if positive >= 1 => Ok(positive),
        _ => Err(PyValueError::new_err(format!(
            "{name} must be >= 1, got {value}"
        ))),
    }
}

/// A duration in seconds (`int` or `float`, not a bool) -> ms, positive and finite. An int too
/// large for a float counts as the largest float of its sign.
pub fn seconds_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    let seconds = if obj.is_instance_of::<PyFloat>() {
        obj.extract::<f64>()?
    } else if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        obj.extract::<f64>()
            .or_else(|_| Ok::<_, PyErr>(if obj.gt(0)? { f64::MAX } else { f64::MIN }))?
    } else {
        return Err(type_error(obj, name, "an int or a float"));
    };
    Ok(validate::seconds_to_ms(name, seconds, obj)?)
}

/// A positive duration in ms (`int`).
pub fn ms_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    Ok(validate::positive_ms(name, int_arg(obj, name)?)?)
}

/// A rate-limit algorithm's name.
pub fn algorithm_arg(obj: &Bound<'_, PyAny>) -> PyResult<Algorithm> {
    str_arg(obj, "algorithm")?
        .parse()
        .map_err(PyValueError::new_err)
}
