"""No-I/O code shared by both Redis backends: client settings, key layout, glob escaping, Lua text.

`client_kwargs` bounds every wait by our timeouts, never retries a command and verifies TLS
certificates and host names; docs/ARCHITECTURE.md ("Redis client settings") says why.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from ._core import GlobPattern
from .config import CacheConfig
from .patterns import escape_pattern

__all__ = [
    "FENCE_KEEP_MS",
    "FENCE_NAMESPACE",
    "LOCK_NAMESPACE",
    "NO_EVICTION",
    "RATE_LIMIT_NAMESPACE",
    "SCAN_BATCH",
    "SCRIPT_NAMES",
    "SWEEPS_PER_TOPOLOGY_CHANGE",
    "UNKNOWN_POLICY",
    "client_kwargs",
    "cluster_kwargs",
    "decode_cursor",
    "describe",
    "encode_cursor",
    "escape_glob",
    "evicting_nodes",
    "eviction_policy",
    "fence_key",
    "memory_settings",
    "scan_match",
    "script_text",
    "sentinel_kwargs",
]

# Namespaces after the key prefix, as in the Rust store: "<prefix>lock:<key>".
LOCK_NAMESPACE: Final = "lock:"
RATE_LIMIT_NAMESPACE: Final = "ratelimit:"
# Fence counters of `acquire_fenced_lock` (see `fence_key` and lua/lock_acquire_fenced.lua); a
# counter lives this long after its last grant (plus the lock's TTL), then expires.
FENCE_NAMESPACE: Final = "fence:"
FENCE_KEEP_MS: Final = 86_400_000
# The one maxmemory-policy under which Redis never evicts: every other one can evict lock and
# rate-limit keys (volatile-* too, since those keys carry TTLs), granting a lock twice or
# resetting a limit. "unknown" when ACL (or a managed service) denies both INFO and CONFIG.
NO_EVICTION: Final = "noeviction"
UNKNOWN_POLICY: Final = "unknown"
# Keys asked per SCAN step and unlinked per UNLINK in del_pattern / flush.
SCAN_BATCH: Final = 1000
# Full sweeps del_pattern / flush make at most when a cluster's primaries change under them.
SWEEPS_PER_TOPOLOGY_CHANGE: Final = 3
SCRIPT_NAMES: Final = (
    "lock_acquire",
    "lock_release",
    "lock_extend",
    "lock_acquire_fenced",
    "rate_limit_sliding_log",
    "rate_limit_fixed_window",
    "rate_limit_sliding_counter",
    "rate_limit_gcra",
    "rate_limit_many_sliding_log",
)


@functools.cache
def script_text(name: str) -> str:
    """The text of `lua/<name>.lua` after `lua/prelude.lua` (the helpers every script may use),
    from the installed package (wheel or source tree)."""
    folder = resources.files("cachebolt") / "lua"
    parts = ("prelude", name)
    return "".join((folder / f"{part}.lua").read_text(encoding="utf-8") for part in parts)


def scan_match(glob_prefix: str, pattern: str) -> tuple[str, GlobPattern | None]:
    """The SCAN MATCH argument for `pattern` under the escaped prefix, and the glob left to check.

    Redis's matcher backtracks after a `*`, so the server gets the pattern only up to its first `*`
    and the store's linear-time matcher checks the rest here (None when Redis's answer is exact).
    """
    glob = GlobPattern(pattern)
    if glob.head_only:
        return glob_prefix + pattern, None
    return glob_prefix + glob.head + "*", glob


def escape_glob(literal: str) -> str:
    """`literal` as a Redis glob matching only itself (`app[1]:` must not match `app1:`)."""
    return escape_pattern(literal)


def _slot(key: str) -> int:
    return key_slot(key.encode("utf-8", "surrogateescape"))


@functools.lru_cache(maxsize=4096)
def fence_key(prefix: str, key: str) -> str:
    """The fence counter of lock `key`: under `<prefix>fence:`, in the lock key's cluster slot.

    The lock script increments it in the same step, so both keys share one slot (the three layouts
    are in docs/ARCHITECTURE.md, "Fence counters"). A counter shared by several locks is harmless.
    """
    slot = _slot(prefix + LOCK_NAMESPACE + key)
    base = prefix + FENCE_NAMESPACE
    for candidate in (base + key, base + "{" + prefix + LOCK_NAMESPACE + key + "}"):
        if _slot(candidate) == slot:
            return candidate
    # Each prefix case has a form whose slot changes with n: found after ~16k tries, cached.
    for n in itertools.count():
        for candidate in (f"{base}{{#{n}}}", f"{base}#{n}}}", f"{base}{key}#{n}"):
            if _slot(candidate) == slot:
                return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def _common_kwargs(config: CacheConfig, asyncio: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "username": config.username,
        "password": config.password,
        "socket_connect_timeout": config.connect_timeout_ms / 1000,
        "socket_timeout": config.command_timeout_ms / 1000,
        "retry": (AsyncRetry if asyncio else Retry)(NoBackoff(), 0),
        "decode_responses": False,
        "client_name": "cachebolt",
    }
    if config.tls:
        kwargs.update(
            ssl=True,
            ssl_cert_reqs="required",
            ssl_ca_certs=config.tls_ca_cert,
            ssl_check_hostname=True,
        )
    return kwargs


def client_kwargs(config: CacheConfig, *, asyncio: bool) -> dict[str, Any]:
    """Keyword arguments of `redis.Redis` (or `redis.asyncio.Redis`) for a standalone server."""
    kwargs = _common_kwargs(config, asyncio)
    kwargs.update(db=config.db, health_check_interval=0)
    return kwargs


def sentinel_kwargs(config: CacheConfig, *, asyncio: bool) -> dict[str, Any]:
    """Keyword arguments of the clients that ask the sentinels where the primary is
    (`Sentinel(sentinel_kwargs=...)`): the data nodes' timeouts, TLS and no retries, the
    sentinels' own credentials."""
    kwargs = _common_kwargs(config, asyncio)
    del kwargs["host"], kwargs["port"]
    kwargs.update(username=config.sentinel_username, password=config.sentinel_password)
    return kwargs


def cluster_kwargs(config: CacheConfig, *, asyncio: bool) -> dict[str, Any]:
    """Keyword arguments of `RedisCluster` (or its asyncio twin): no db, no retries either."""
    kwargs = _common_kwargs(config, asyncio)
    # `retry` is the cluster client's own (no re-routing retries); its nodes get none either.
    kwargs["require_full_coverage"] = True
    return kwargs


def describe(config: CacheConfig) -> str:
    """Where the backend connects, for `repr` and logs: never the password."""
    scheme = "rediss" if config.tls else "redis"
    user = f"{config.username}@" if config.username else ""
    where = f"{scheme}://{user}{config.host}:{config.port}"
    if config.sentinels is not None:
        where = f"{scheme}://{user}{config.sentinel_master} via sentinels {config.sentinels}"
    elif config.cluster:
        return f"{where} (cluster)"
    return f"{where}/{config.db}"


# --- maxmemory eviction ---------------------------------------------------------------------


def memory_settings(reply: Mapping[str, Any]) -> tuple[str, int]:
    """(maxmemory-policy, maxmemory in bytes) from one node's `INFO memory` or `CONFIG GET
    maxmemory*` reply (the first names them `maxmemory_policy`, the second `maxmemory-policy`)."""
    fields = {_str(name).replace("-", "_"): value for name, value in reply.items()}
    policy = fields.get("maxmemory_policy")
    return (UNKNOWN_POLICY if policy is None else _str(policy)), int(fields.get("maxmemory", 0))


def _str(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def eviction_policy(nodes: Mapping[str, tuple[str, int]]) -> str:
    """The policy of every primary as one text: the policy they share, else `node=policy` each."""
    policies = {policy for policy, _ in nodes.values()}
    if len(policies) == 1:
        return policies.pop()
    if not policies:
        return UNKNOWN_POLICY
    return ", ".join(f"{node}={policy}" for node, (policy, _) in sorted(nodes.items()))


def evicting_nodes(nodes: Mapping[str, tuple[str, int]]) -> dict[str, str]:
    """The primaries that can evict a key now: a known policy other than noeviction, and a
    maxmemory set (0 means no limit: nothing is ever evicted, whatever the policy)."""
    return {
        node: policy
        for node, (policy, maxmemory) in nodes.items()
        if policy not in (NO_EVICTION, UNKNOWN_POLICY) and maxmemory > 0
    }


# --- cluster SCAN cursors -------------------------------------------------------------------
# One cursor walks every primary in turn: cursor = node_cursor * nodes + node_index, so 0
# starts at the first primary and 0 is returned only after the last one is done. A topology
# change during a walk may skip or repeat keys (SCAN's own guarantee is per node).


def encode_cursor(node_cursor: int, node_index: int, nodes: int) -> int:
    """The caller's cursor for `node_cursor` on primary `node_index` of `nodes`."""
    return node_cursor * nodes + node_index


def decode_cursor(cursor: int, nodes: int) -> tuple[int, int]:
    """(node_cursor, node_index) of a caller's cursor."""
    return divmod(cursor, nodes)
