//! cachebolt's Rust core: a pure-Rust store (`store`) behind a thin PyO3 binding (`bindings`).
