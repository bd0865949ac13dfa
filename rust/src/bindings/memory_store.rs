//! `cachebolt._core.MemoryStore`.
//!
//! GIL policy: O(1) commands stay attached (releasing and re-taking the GIL costs more than the
//! command, and can wait a whole switch interval when other threads are runnable). O(n) commands
//! (`keys`, `scan`, `del_pattern`, `flush`, `sweep_expired`, `stats`, `len`) run detached so other
//! Python threads keep going. Under a shard lock we only ever create `bytes`/`str` objects, which are not tracked
//! by the garbage collector, so no finalizer can run (and re-enter the store) while a shard is
//! locked; containers (list/set/dict) are built after the lock is released.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PySet, PyTuple};

use super::args::{
    algorithm_arg, count_arg, int_arg, key_arg, ms_arg, positive_arg, seconds_arg, str_arg,
    str_args,
};
use super::fork::Background;
use crate::store::clock::Clock;
use crate::store::validate;
use crate::store::{KeyspaceBounds, LimitSpec, Store};

/// Keys are `str` as Python gives them; every binding checks them with `key_arg`.
type PyKey<'a, 'py> = &'a Bound<'py, PyAny>;

/// A sharded, thread-safe, in-process keyspace with expiry, eviction, locks and rate limits.
#[pyclass(frozen, module = "cachebolt._core")]
pub struct MemoryStore {
    store: Arc<Store>,
    /// The one clock: read here, at the binding edge, and passed into every store command.
    clock: Arc<Clock>,
    /// The sweeper thread, restarted in a forked child (see `fork`).
    background: Arc<Background>,
}

impl MemoryStore {
    #[inline]
    fn now(&self) -> u64 {
        self.clock.now_ms()
    }
}

#[pymethods]
impl MemoryStore {
    #[new]
    #[pyo3(
        signature = (*, max_keys=None, max_bytes=None, max_rate_limit_bytes=None, cleanup_interval_seconds=Some(30.0), manual_clock=false),
        text_signature = "(*, max_keys=None, max_bytes=None, max_rate_limit_bytes=None, cleanup_interval_seconds=30.0, manual_clock=False)"
    )]
    fn new(
        max_keys: Option<&Bound<'_, PyAny>>,
        max_bytes: Option<&Bound<'_, PyAny>>,
        max_rate_limit_bytes: Option<&Bound<'_, PyAny>>,
        cleanup_interval_seconds: Option<f64>,
        manual_clock: bool,
    ) -> PyResult<Self> {
        let bounds = KeyspaceBounds {
            max_keys: validate::bound(
                "max_keys",
                max_keys.map(|v| int_arg(v, "max_keys")).transpose()?,
            )?,
            max_bytes: validate::bound(
                "max_bytes",
                max_bytes.map(|v| int_arg(v, "max_bytes")).transpose()?,
            )?,
            max_rate_limit_bytes: validate::bound(
                "max_rate_limit_bytes",
                max_rate_limit_bytes
                    .map(|v| int_arg(v, "max_rate_limit_bytes"))
                    .transpose()?,
            )?,
        };
        let interval_ms = cleanup_interval_seconds
            .map(|s| validate::seconds_to_ms("cleanup_interval_seconds", s, &s))
            .transpose()?;
        let clock = Arc::new(if manual_clock {
            Clock::manual()
        } else {
            Clock::system()
        });
        let store = Arc::new(Store::new(bounds));
        // A manual clock never moves on its own, so a periodic sweep would have nothing to do.
        let interval = interval_ms
            .filter(|_| !manual_clock)
            .map(Duration::from_millis);
        let background = Background::start(&store, Arc::clone(&clock), interval)
            .map_err(|e| PyValueError::new_err(format!("cannot start the sweep thread: {e}")))?;
        Ok(Self {
            store,
            clock,
            background,
        })
    }

    // O(n): detached; counts the live keys shard by shard.
    fn __len__(&self, py: Python<'_>) -> usize {
        let now = self.now();
        py.detach(|| self.store.live_len(now))
    }

    // --- strings ---------------------------------------------------------------------------

    // O(1): attached; the value is copied from the shard straight into the new bytes object.
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: PyKey<'_, 'py>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = key_arg(key, "key")?.as_bytes();
        Ok(self
            .store
            .get_with(key, self.now(), true, |value| PyBytes::new(py, value))?)
    }

    // O(1): attached, as `get`.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        key: PyKey<'_, 'py>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let key = key_arg(key, "key")?.as_bytes();
        Ok(self
            .store
            .get_with(key, self.now(), false, |value| PyBytes::new(py, value))?)
    }

    // O(1): attached; `value` is borrowed from the bytes object, copied once into the entry.
    #[pyo3(signature = (key, value, ttl=None))]
    fn set(
        &self,
        key: PyKey<'_, '_>,
        value: &[u8],
        ttl: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let key = key_arg(key, "key")?.as_bytes();
        let ttl_ms = ttl.map(|t| seconds_arg(t, "ttl")).transpose()?;
        Ok(self.store.set(key, value, ttl_ms, self.now())?)
    }

    // O(1): attached.
    fn delete(&self, key: PyKey<'_, '_>) -> PyResult<bool> {
        Ok(self
            .store
            .delete(key_arg(key, "key")?.as_bytes(), self.now()))
    }

    // O(1): attached.
    fn exists(&self, key: PyKey<'_, '_>) -> PyResult<bool> {
        Ok(self
            .store
            .exists(key_arg(key, "key")?.as_bytes(), self.now()))
    }

    // O(1): attached.
    fn incrby(&self, key: PyKey<'_, '_>, amount: &Bound<'_, PyAny>) -> PyResult<i64> {
        let key = key_arg(key, "key")?.as_bytes();
        let amount = int_arg(amount, "amount")?;
        Ok(self.store.incrby(key, amount, self.now())?)
    }

    // --- expiry ----------------------------------------------------------------------------

    // O(1): attached.
    fn ttl(&self, key: PyKey<'_, '_>) -> PyResult<i64> {
        Ok(self.store.ttl(key_arg(key, "key")?.as_bytes(), self.now()))
    }

    // O(1): attached.
    fn pttl(&self, key: PyKey<'_, '_>) -> PyResult<i64> {
        Ok(self.store.pttl(key_arg(key, "key")?.as_bytes(), self.now()))
    }

    // O(1): attached.
    fn expire(&self, key: PyKey<'_, '_>, ttl: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_arg(key, "key")?.as_bytes();
        let ttl_ms = seconds_arg(ttl, "ttl_seconds")?;
        Ok(self.store.expire(key, ttl_ms, self.now()))
    }

    // O(1): attached.
    fn persist(&self, key: PyKey<'_, '_>) -> PyResult<bool> {
        Ok(self
            .store
            .persist(key_arg(key, "key")?.as_bytes(), self.now()))
    }

    // --- keyspace --------------------------------------------------------------------------

    // O(n): detached; the walk locks one shard per batch of entries.
    #[pyo3(signature = (pattern="*"))]
    fn keys(&self, py: Python<'_>, pattern: &str) -> Vec<String> {
        let now = self.now();
        py.detach(|| self.store.keys(pattern.as_bytes(), now))
    }

    // O(count): detached, since `count` may be large.
    #[pyo3(signature = (cursor=0, pattern="*", count=100))]
    fn scan(&self, py: Python<'_>, cursor: u64, pattern: &str, count: usize) -> (u64, Vec<String>) {
        let now = self.now();
        py.detach(|| self.store.scan(cursor, pattern.as_bytes(), count, now))
    }

    // O(n): detached; deletes in batches, releasing the shard lock between them.
    fn del_pattern(&self, py: Python<'_>, pattern: &str) -> usize {
        let now = self.now();
        py.detach(|| self.store.del_pattern(pattern.as_bytes(), now))
    }

    // O(n): detached; entries are freed outside the shard locks.
    fn flush(&self, py: Python<'_>) -> usize {
        let now = self.now();
        py.detach(|| self.store.flush(now))
    }

    // O(n): detached; same batched walk as the background sweeper.
    fn sweep_expired(&self, py: Python<'_>) -> usize {
        let now = self.now();
        py.detach(|| self.store.sweep_expired(now))
    }

    // --- sets ------------------------------------------------------------------------------

    // O(members): attached.
    #[pyo3(signature = (key, *members))]
    fn sadd(&self, key: PyKey<'_, '_>, members: &Bound<'_, PyTuple>) -> PyResult<usize> {
        let key = key_arg(key, "key")?.as_bytes();
        let members = str_args(members, "sadd", "member")?;
        Ok(self.store.sadd(key, members, self.now())?)
    }

    // O(members): attached.
    #[pyo3(signature = (key, *members))]
    fn srem(&self, key: PyKey<'_, '_>, members: &Bound<'_, PyTuple>) -> PyResult<usize> {
        let key = key_arg(key, "key")?.as_bytes();
        let members = str_args(members, "srem", "member")?;
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        Ok(self.store.srem(key, &members, self.now())?)
    }

    // O(1): attached.
    fn sismember(&self, key: PyKey<'_, '_>, member: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_arg(key, "key")?.as_bytes();
        let member = str_arg(member, "member")?;
        Ok(self.store.sismember(key, member, self.now())?)
    }

    // O(size): attached; copying out under the shard lock is cheaper than a GIL hand-off for
    // sets of ordinary size. The Python set is built after the lock is released.
    fn smembers<'py>(&self, py: Python<'py>, key: PyKey<'_, 'py>) -> PyResult<Bound<'py, PySet>> {
        let members = self
            .store
            .smembers(key_arg(key, "key")?.as_bytes(), self.now())?;
        PySet::new(py, members)
    }

    // O(1): attached.
    fn scard(&self, key: PyKey<'_, '_>) -> PyResult<usize> {
        Ok(self
            .store
            .scard(key_arg(key, "key")?.as_bytes(), self.now())?)
    }

    // --- hashes ----------------------------------------------------------------------------

    // O(1): attached.
    fn hset(
        &self,
        key: PyKey<'_, '_>,
        field: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let key = key_arg(key, "key")?.as_bytes();
        let field = str_arg(field, "field")?;
        let value = str_arg(value, "value")?;
        Ok(self.store.hset(key, field, value, self.now())?)
    }

    // O(1): attached.
    fn hget(&self, key: PyKey<'_, '_>, field: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let key = key_arg(key, "key")?.as_bytes();
        let field = str_arg(field, "field")?;
        Ok(self.store.hget(key, field, self.now())?)
    }

    // O(size): attached, like smembers.
    fn hgetall<'py>(&self, py: Python<'py>, key: PyKey<'_, 'py>) -> PyResult<Bound<'py, PyDict>> {
        let fields = self
            .store
            .hgetall(key_arg(key, "key")?.as_bytes(), self.now())?;
        let dict = PyDict::new(py);
        for (field, value) in fields {
            dict.set_item(field, value)?;
        }
        Ok(dict)
    }

    // O(fields): attached.
    #[pyo3(signature = (key, *fields))]
    fn hdel(&self, key: PyKey<'_, '_>, fields: &Bound<'_, PyTuple>) -> PyResult<usize> {
        let key = key_arg(key, "key")?.as_bytes();
        let fields = str_args(fields, "hdel", "field")?;
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        Ok(self.store.hdel(key, &fields, self.now())?)
    }

    // O(1): attached.
    fn hlen(&self, key: PyKey<'_, '_>) -> PyResult<usize> {
        Ok(self
            .store
            .hlen(key_arg(key, "key")?.as_bytes(), self.now())?)
    }

    // --- token locks -----------------------------------------------------------------------

    // O(1): attached.
    fn acquire_lock(
        &self,
        key: PyKey<'_, '_>,
        ttl_ms: &Bound<'_, PyAny>,
    ) -> PyResult<Option<String>> {
        let key = key_arg(key, "lock_key")?;
        let ttl_ms = ms_arg(ttl_ms, "ttl_ms")?;
        Ok(self.store.acquire_lock(key, ttl_ms, self.now()))
    }

    // O(1): attached.
    fn acquire_fenced_lock(
        &self,
        key: PyKey<'_, '_>,
        ttl_ms: &Bound<'_, PyAny>,
    ) -> PyResult<Option<(String, u64)>> {
        let key = key_arg(key, "lock_key")?;
        let ttl_ms = ms_arg(ttl_ms, "ttl_ms")?;
        Ok(self.store.acquire_fenced_lock(key, ttl_ms, self.now()))
    }

    // O(1): attached.
    fn release_lock(&self, key: PyKey<'_, '_>, token: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = key_arg(key, "lock_key")?;
        let token = str_arg(token, "token")?;
        Ok(self.store.release_lock(key, token, self.now()))
    }

    // O(1): attached.
    fn extend_lock(
        &self,
        key: PyKey<'_, '_>,
        token: &Bound<'_, PyAny>,
        ttl_ms: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let key = key_arg(key, "lock_key")?;
        let token = str_arg(token, "token")?;
        let ttl_ms = ms_arg(ttl_ms, "ttl_ms")?;
        Ok(self.store.extend_lock(key, token, ttl_ms, self.now()))
    }

    // --- rate limits -----------------------------------------------------------------------

    // O(1) amortized (a sliding log trims expired hits): attached.
    // `cost` and `algorithm` have no default: a default would take an explicit None for it.
    fn rate_limit(
        &self,
        key: PyKey<'_, '_>,
        limit: &Bound<'_, PyAny>,
        window: &Bound<'_, PyAny>,
        cost: &Bound<'_, PyAny>,
        algorithm: &Bound<'_, PyAny>,
    ) -> PyResult<(bool, u64, f64, f64)> {
        let key = key_arg(key, "key")?;
        let limit = positive_arg(limit, "limit")?;
        let window_ms = seconds_arg(window, "window_seconds")?;
        let cost = count_arg(cost, "cost")?;
        let algorithm = algorithm_arg(algorithm)?;
        let decision = self
            .store
            .rate_limit(key, limit, window_ms, cost, algorithm, self.now())?;
        Ok((
            decision.allowed,
            decision.remaining,
            decision.reset_after_ms as f64 / 1000.0,
            decision.retry_after_ms as f64 / 1000.0,
        ))
    }

    // O(keys) (plus the trimming of each sliding log): attached, like `rate_limit`. The store
    // holds the keys' shards together, in ascending order, for the check-then-record.
    fn rate_limit_many(
        &self,
        keys: Vec<Bound<'_, PyAny>>,
        limits: Vec<Bound<'_, PyAny>>,
        windows: Vec<Bound<'_, PyAny>>,
        cost: &Bound<'_, PyAny>,
        algorithm: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<(bool, u64, f64, f64)>> {
        if limits.len() != keys.len() || windows.len() != keys.len() {
            return Err(PyValueError::new_err(format!(
                "keys, limits and windows must have the same length, got {}, {} and {}",
                keys.len(),
                limits.len(),
                windows.len()
            )));
        }
        let mut specs = Vec::with_capacity(keys.len());
        for ((key, limit), window) in keys.iter().zip(&limits).zip(&windows) {
            let key = key_arg(key, "key")?;
            let limit = positive_arg(limit, "limit")?;
            let window_ms = seconds_arg(window, "window_seconds")?;
            specs.push(LimitSpec {
                key,
                limit,
                window_ms,
            });
        }
        let cost = count_arg(cost, "cost")?;
        let algorithm = algorithm_arg(algorithm)?;
        let decisions = self
            .store
            .rate_limit_many(&specs, cost, algorithm, self.now())?;
        Ok(decisions
            .into_iter()
            .map(|d| {
                (
                    d.allowed,
                    d.remaining,
                    d.reset_after_ms as f64 / 1000.0,
                    d.retry_after_ms as f64 / 1000.0,
                )
            })
            .collect())
    }

    // --- clock and stats -------------------------------------------------------------------

    fn now_ms(&self) -> u64 {
        self.now()
    }

    fn advance_clock(&self, ms: &Bound<'_, PyAny>) -> PyResult<()> {
        let ms = count_arg(ms, "ms")?;
        Ok(self.clock.advance(ms)?)
    }

    // O(n) (the live-key count): detached.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let now = self.now();
        let snapshot = py.detach(|| self.store.stats_snapshot(now));
        let dict = PyDict::new(py);
        for (name, value) in snapshot {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    // Joins the sweeper thread while attached: it never takes the GIL, and it stops within one
    // batch, so this cannot deadlock and returns promptly.
    fn close(&self) {
        self.background.stop();
    }
}
