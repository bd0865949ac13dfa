"""Names and defaults of every setting, in one place (environment variables, limits, logger)."""

from __future__ import annotations

from typing import Final

LOGGER_NAME: Final = "cachebolt"

# --- environment variables -------------------------------------------------------------------
ENV_ENABLED: Final = "VALKEY_ENABLED"
ENV_REQUIRED: Final = "VALKEY_REQUIRED"
ENV_URL: Final = "VALKEY_URL"
ENV_HOST: Final = "VALKEY_HOST"
ENV_PORT: Final = "VALKEY_PORT"
ENV_USERNAME: Final = "VALKEY_USERNAME"
ENV_PASSWORD: Final = "VALKEY_PASSWORD"
ENV_TLS: Final = "VALKEY_TLS"
ENV_TLS_CA_CERT: Final = "VALKEY_TLS_CA_CERT"
ENV_CLUSTER: Final = "VALKEY_CLUSTER"
ENV_SENTINELS: Final = "VALKEY_SENTINELS"
ENV_SENTINEL_MASTER: Final = "VALKEY_SENTINEL_MASTER"
ENV_SENTINEL_USERNAME: Final = "VALKEY_SENTINEL_USERNAME"
ENV_SENTINEL_PASSWORD: Final = "VALKEY_SENTINEL_PASSWORD"
ENV_DB: Final = "VALKEY_DB"
ENV_KEY_PREFIX: Final = "VALKEY_KEY_PREFIX"
ENV_CONNECT_TIMEOUT_MS: Final = "VALKEY_CONNECT_TIMEOUT_MS"
ENV_COMMAND_TIMEOUT_MS: Final = "VALKEY_COMMAND_TIMEOUT_MS"
ENV_MEMORY_MAX_KEYS: Final = "CACHE_MEMORY_MAX_KEYS"
ENV_MEMORY_MAX_BYTES: Final = "CACHE_MEMORY_MAX_BYTES"
ENV_MEMORY_RATE_LIMIT_MAX_BYTES: Final = "CACHE_MEMORY_RATE_LIMIT_MAX_BYTES"
ENV_CLEANUP_INTERVAL_SECONDS: Final = "CACHE_CLEANUP_INTERVAL_SECONDS"
ENV_FEED_CACHE_TTL_SECONDS: Final = "FEED_CACHE_TTL_SECONDS"
ENV_LOCK_FALLBACK: Final = "CACHE_LOCK_FALLBACK"
ENV_RATE_LIMIT_FALLBACK: Final = "CACHE_RATE_LIMIT_FALLBACK"

# --- defaults ----------------------------------------------------------------------------------
DEFAULT_ENABLED: Final = False
DEFAULT_REQUIRED: Final = False
DEFAULT_HOST: Final = "localhost"
DEFAULT_PORT: Final = 6379
DEFAULT_TLS: Final = False
DEFAULT_CLUSTER: Final = False
DEFAULT_DB: Final = 0
DEFAULT_KEY_PREFIX: Final = ""
# A non-empty key prefix ends with this, so "tenant1:" is never the start of "tenant10:".
KEY_PREFIX_DELIMITER: Final = ":"
DEFAULT_CONNECT_TIMEOUT_MS: Final = 2000
DEFAULT_COMMAND_TIMEOUT_MS: Final = 500
DEFAULT_CLEANUP_INTERVAL_SECONDS: Final = 30
DEFAULT_FEED_CACHE_TTL_SECONDS: Final = 300
DEFAULT_LOCK_FALLBACK: Final = "memory"
DEFAULT_RATE_LIMIT_FALLBACK: Final = "memory"

# --- accepted ranges (inclusive) ---------------------------------------------------------------
PORT_RANGE: Final = (1, 65535)
DB_RANGE: Final = (0, 1_000_000)
TIMEOUT_MS_RANGE: Final = (1, 3_600_000)
CLEANUP_INTERVAL_RANGE: Final = (0, 86_400)  # 0 turns the background sweep off
POSITIVE_RANGE: Final = (1, 2**63 - 1)

URL_SCHEMES: Final = frozenset({"redis", "rediss", "valkey", "valkeys"})
TLS_URL_SCHEMES: Final = frozenset({"rediss", "valkeys"})
TRUE_WORDS: Final = frozenset({"true", "1", "yes"})
FALSE_WORDS: Final = frozenset({"false", "0", "no"})

# --- rate limits and locks ---------------------------------------------------------------------
# In the order of the store's `Algorithm::ALL` (error messages list them so).
RATE_LIMIT_ALGORITHMS: Final = ("sliding_log", "fixed_window", "sliding_counter", "gcra")
DEFAULT_RATE_LIMIT_ALGORITHM: Final = "sliding_log"
# Lock waits poll: 5 ms doubling to 100 ms, each sleep jittered and cut at the deadline.
LOCK_BACKOFF_INITIAL_SECONDS: Final = 0.005
LOCK_BACKOFF_MAX_SECONDS: Final = 0.1
# How long close() waits for a pub/sub dispatcher to drain before giving up on it.
DISPATCHER_STOP_TIMEOUT_SECONDS: Final = 5.0

# --- fallback while Redis is down --------------------------------------------------------------
# What locks and rate limits do while the circuit breaker is open: "memory" serves them from the
# in-process store (local to this process), "fail_closed" refuses them, "fail_open" (rate limits
# only) allows every hit.
FALLBACK_MEMORY: Final = "memory"
FALLBACK_FAIL_CLOSED: Final = "fail_closed"
FALLBACK_FAIL_OPEN: Final = "fail_open"
LOCK_FALLBACK_POLICIES: Final = (FALLBACK_MEMORY, FALLBACK_FAIL_CLOSED)
RATE_LIMIT_FALLBACK_POLICIES: Final = (FALLBACK_MEMORY, FALLBACK_FAIL_CLOSED, FALLBACK_FAIL_OPEN)
# What a `lock()` block does when its release finds the lock expired or taken by another holder.
ON_LOST_RAISE: Final = "raise"
ON_LOST_WARN: Final = "warn"
ON_LOST_POLICIES: Final = (ON_LOST_RAISE, ON_LOST_WARN)
# Half-open probes of an open breaker: the first after 100 ms, then doubling, capped at 2 s, each
# jittered to 50..100 % of its step. Redis that comes back is in use again within about 2 s.
PROBE_INITIAL_SECONDS: Final = 0.1
PROBE_MAX_SECONDS: Final = 2.0
# The Redis pub/sub listener: how long one read waits (new subscriptions are sent between reads)
# and its reconnect backoff after a lost connection.
PUBSUB_POLL_SECONDS: Final = 0.05
PUBSUB_RECONNECT_INITIAL_SECONDS: Final = 0.05
PUBSUB_RECONNECT_MAX_SECONDS: Final = 2.0
# How long close() waits for a probe or a listener to stop.
BACKGROUND_STOP_TIMEOUT_SECONDS: Final = 5.0
# Marks a lock token issued by the in-memory backend while Redis was down, so its release and
# extension go back to memory even after Redis has returned.
MEMORY_TOKEN_TAG: Final = "mem-"
