//! `StoreError` -> Python exception, in one place.

use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

use crate::store::StoreError;

// The Python layer defines the exception classes, so both backends raise the very same types.
pyo3::import_exception!(cachebolt.exceptions, WrongTypeError);
pyo3::import_exception!(cachebolt.exceptions, CapacityError);

impl From<StoreError> for PyErr {
    fn from(err: StoreError) -> Self {
        let message = err.to_string();
        match err {
            StoreError::WrongType
            | StoreError::NotAnInteger
            | StoreError::Overflow
            | StoreError::AlgorithmMismatch { .. } => WrongTypeError::new_err(message),
            StoreError::Capacity { .. } | StoreError::RateLimitCapacity { .. } => {
                CapacityError::new_err(message)
            }
            StoreError::InvalidArgument(_) => PyValueError::new_err(message),
        }
    }
}
