//! Cross-module store tests.
