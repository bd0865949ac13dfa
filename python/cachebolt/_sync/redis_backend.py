# generated from _async by scripts/unasync.py; do not edit
"""`RedisBackend`: the `Backend` interface on Redis/Valkey (standalone or cluster).

It answers exactly like the Rust store (`cachebolt._core.MemoryStore`): the same values, the same
exceptions for the same bad arguments (checked in Python before any I/O), `WrongTypeError` for
a command meeting another type. Every key is stored under `config.key_prefix`; locks at
`<prefix>lock:<key>`, rate limits at `<prefix>ratelimit:<key>`. Atomic read-modify-write steps
are Lua scripts (`cachebolt/lua/*.lua`), registered once per client; a rate-limit call is one
EVALSHA, one round trip. Every key passes `_key` and every command `_command`, `_script` or
`_call`: the caller's client from `ClientSource` (asyncio: the shared pooled client
for every task; threads: each thread's own connection of the shared pool, without a pool
checkout per command), one error mapping (`cachebolt._redis_errors`).

When Redis does not answer (refused, timed out, down, wrong password) a call raises
`BackendUnavailable` within about the command timeout: the client never retries (see
`cachebolt._redis`), and the service's fallback layer takes over. Constructing does no I/O;
`connect()` checks the server and reads its eviction policy (`maxmemory_policy`). A write that
Redis refuses at `maxmemory` (policy `noeviction`) raises `CapacityError`: the server is up.
"""

from __future__ import annotations

import builtins
import secrets
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from .. import _redis
from .._synchronization import undo_if_abandoned
from .._core import GlobPattern
from .._redact import get_logger
from .._redis_clients import publish
from .._redis_errors import map_redis_errors
from .._validate import (
    int_arg,
    key_arg,
    ms_arg,
    rate_limit_args,
    rate_limit_many_args,
    seconds_arg,
    str_arg,
    str_args,
)
from ..config import CacheConfig
from ..exceptions import BackendUnavailable, CacheError
from .clients import ClientSource

__all__ = ["RedisBackend"]

_logger = get_logger()

_ALGORITHMS = {
    "sliding_log": "rate_limit_sliding_log",
    "fixed_window": "rate_limit_fixed_window",
    "sliding_counter": "rate_limit_sliding_counter",
    "gcra": "rate_limit_gcra",
}
# The scripts over several keys, all or nothing: every script but the sliding log's takes one
# key or several.
_MANY_SCRIPTS = {**_ALGORITHMS, "sliding_log": "rate_limit_many_sliding_log"}


def _text(raw: bytes) -> str:
    # surrogateescape: a non-UTF-8 name written by another client still round-trips.
    return raw.decode("utf-8", "surrogateescape")


class RedisBackend:
    """The Redis/Valkey backend, with the in-memory store's semantics.

    Args:
        config: connection settings, key prefix and timeouts (`enabled` is not consulted: the
            service decides whether to use this backend).
    """

    def __init__(self, config: CacheConfig) -> None:
        self._config = config
        self._prefix = config.key_prefix
        self._prefix_bytes = len(config.key_prefix.encode("utf-8", "surrogateescape"))
        self._glob_prefix = _redis.escape_glob(config.key_prefix)
        self._errors = map_redis_errors(
            config.password, config.sentinel_password, username=config.username
        )
        # Tests pin the rate-limit clock (ms) to compare with the store's manual clock.
        self._test_clock: Callable[[], int] | None = None
        self._hits = 0
        self._misses = 0
        self._lock_acquired = 0
        self._lock_contended = 0
        self._rate_limit_allowed = 0
        self._rate_limit_denied = 0
        self._clients = ClientSource(config, self._errors)
        # Bound once: the per-command path (`_command`) looks neither up again.
        self._client = self._clients.get
        self._execute = self._clients.execute
        # Every primary's maxmemory-policy as one text, read at connect() and by stats().
        self.maxmemory_policy = _redis.UNKNOWN_POLICY
        # A cancelled lock acquire waits this long for its command and the release (seconds).
        self._abandon_wait = 2 * config.command_timeout_ms / 1000

    def __repr__(self) -> str:
        where = _redis.describe(self._config)
        return f"{type(self).__name__}({where}, key_prefix={self._prefix!r})"

    # --- connection ----------------------------------------------------------------------------

    @property
    def client(self) -> Redis | RedisCluster:
        """The shared redis-py client (created on first use in cluster mode)."""
        client: Redis | RedisCluster = self._clients.shared
        return client

    def connect(self) -> None:
        """Check that the server answers (PING), within the connect and command timeouts, and
        read its eviction policy: one WARNING when it can evict lock and rate-limit keys.

        Raises:
            BackendUnavailable: refused, timed out, loading, or the login was refused.
        """
        self._command("PING")
        evicting = _redis.evicting_nodes(self._memory_settings())
        if evicting:
            _logger.warning(
                "Redis maxmemory-policy %s evicts keys at maxmemory, lock and rate-limit keys "
                "included: a lock can then be granted twice and a rate limit reset; only "
                "noeviction keeps them",
                ", ".join(f"{node}={policy}" for node, policy in sorted(evicting.items())),
            )
        elif self.maxmemory_policy == _redis.UNKNOWN_POLICY:
            _logger.info(
                "Redis maxmemory-policy unknown (INFO and CONFIG are denied): locks and rate "
                "limits are safe from eviction only under noeviction"
            )

    # --- transport: the one path of every command ----------------------------------------------

    def _key(self, key: str, namespace: str = "", name: str | None = "key") -> str:
        """`key` stored at `<prefix><namespace><key>`, checked as the store checks it (errors
        naming `name`; None: already checked with the other arguments of its command)."""
        return self._prefix + namespace + (key if name is None else key_arg(key, name))

    def _command(self, *command: Any) -> Any:
        """One command on the caller's client: its raw reply, or redis-py's parsed one where
        redis-py sends it (cluster, a pooled sentinel client).

        Raises:
            BackendUnavailable, WrongTypeError, CapacityError, CacheError: see `_redis_errors`.
        """
        client = self._client()
        try:
            return self._execute(client, *command)
        except Exception as exc:
            self._errors.raise_mapped(exc)

    def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One EVALSHA of script `name` on the caller's client (NOSCRIPT: loaded, run again).

        Raises:
            BackendUnavailable, WrongTypeError, CapacityError, CacheError: see `_redis_errors`.
        """
        client = self._client()
        try:
            return self._clients.scripts[name](keys=keys, args=args, client=client)
        except Exception as exc:
            self._errors.raise_mapped(exc)

    def _call(self, method: str, *args: Any, **options: Any) -> Any:
        """redis-py's `method` on the caller's client, its parsed reply (INFO, CONFIG GET, and
        commands a cluster sends to several nodes: `target_nodes`).

        Raises:
            BackendUnavailable, CacheError: see `_redis_errors`.
        """
        client = self._client()
        try:
            return getattr(client, method)(*args, **options)
        except Exception as exc:
            self._errors.raise_mapped(exc)

    def _permitted(self, method: str, *args: Any, **options: Any) -> Any:
        """`_call`, or None where the server refuses the command (ACL, or a command a managed
        service renamed away).

        Raises:
            BackendUnavailable: the server did not answer.
        """
        try:
            return self._call(method, *args, **options)
        except BackendUnavailable:
            raise
        except CacheError:
            return None

    def _memory_settings(self) -> dict[str, tuple[str, int]]:
        """Each primary's (maxmemory-policy, maxmemory): from INFO memory, else from CONFIG GET
        where ACL denies INFO; empty where both are denied. Sets `maxmemory_policy`.

        Raises:
            BackendUnavailable: the server did not answer.
        """
        target = {"target_nodes": RedisCluster.PRIMARIES} if self._config.cluster else {}
        nodes: dict[str, tuple[str, int]] = {}
        for method, argument in (("info", "memory"), ("config_get", "maxmemory*")):
            reply = self._permitted(method, argument, **target)
            if reply is None:
                continue
            # A cluster answers per primary (one primary: its reply alone).
            per_node = {n: r for n, r in reply.items() if isinstance(r, dict)} if target else {}
            where = f"{self._config.host}:{self._config.port}"
            replies = per_node or {where: reply}
            nodes = {node: _redis.memory_settings(r) for node, r in replies.items()}
            break
        self.maxmemory_policy = _redis.eviction_policy(nodes)
        return nodes

    def ping(self) -> float:
        """One PING; the round trip in seconds.

        Raises:
            BackendUnavailable: the server did not answer.
        """
        started = time.perf_counter()
        self._command("PING")
        return time.perf_counter() - started

    def close(self) -> None:
        """Close the clients' connections (idempotent)."""
        try:
            with self._errors:
                self._clients.close()
        except BackendUnavailable:
            pass  # nothing left to close on a dead connection

    def publish(self, channel: str, data: bytes, node: Any = None) -> int:
        """PUBLISH `data` on `channel` (already prefixed); the receivers Redis counted.

        Args:
            node: cluster mode: the node to publish on, else redis-py routes the command.

        Raises:
            BackendUnavailable: the server did not answer.
        """
        with self._errors:
            return int(publish(self._clients.shared, channel, data, node))

    # --- strings -------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        # `lookup`'s command written out: one coroutine frame less on the hottest read.
        value: bytes | None = self._command("GET", self._key(key))
        if value is None:
            self._misses += 1
        else:
            self._hits += 1
        return value

    def lookup(self, key: str) -> bytes | None:
        value: bytes | None = self._command("GET", self._key(key))
        if value is not None:
            self._hits += 1
        return value

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        full = self._key(key)
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        if ttl is None:
            self._command("SET", full, value)
        else:
            self._command("SET", full, value, "PX", seconds_arg(ttl, "ttl"))

    def delete(self, key: str) -> bool:
        return bool(self._command("UNLINK", self._key(key)))

    def exists(self, key: str) -> bool:
        return bool(self._command("EXISTS", self._key(key)))

    def incrby(self, key: str, amount: int) -> int:
        full = self._key(key)
        amount = int_arg(amount, "amount")
        return int(self._command("INCRBY", full, amount))

    # --- expiry --------------------------------------------------------------------------------

    def ttl(self, key: str) -> int:
        return int(self._command("TTL", self._key(key)))

    def expire(self, key: str, ttl: float) -> bool:
        full = self._key(key)
        return bool(self._command("PEXPIRE", full, seconds_arg(ttl, "ttl_seconds")))

    # --- keyspace ------------------------------------------------------------------------------

    def _scan_step(
        self, client: Any, cursor: int, match: str, count: int
    ) -> tuple[int, list[bytes]]:
        """One SCAN step over the whole keyspace: every primary in turn in cluster mode."""
        if not self._config.cluster:
            next_cursor, raw = client.scan(cursor, match=match, count=count)
            return int(next_cursor), list(raw)
        primaries = client.get_primaries()
        nodes = len(primaries)
        node_cursor, index = _redis.decode_cursor(cursor, nodes)
        cursors, raw = client.scan(
            node_cursor, match=match, count=count, target_nodes=primaries[index]
        )
        node_cursor = int(next(iter(cursors.values())))
        if node_cursor == 0:
            index += 1
            if index == nodes:
                return 0, list(raw)
        return _redis.encode_cursor(node_cursor, index, nodes), list(raw)

    def scan(
        self, cursor: int = 0, pattern: str = "*", count: int = 100
    ) -> tuple[int, list[str]]:
        """One SCAN step under the prefix: (next cursor, keys without the prefix)."""
        match, rest = _redis.scan_match(self._glob_prefix, pattern)
        client = self._client()
        with self._errors:
            next_cursor, raw = self._scan_step(client, cursor, match, count)
        cut = self._prefix_bytes
        return next_cursor, [_text(name[cut:]) for name in self._passing(raw, rest)]

    def _passing(self, raw: list[bytes], rest: GlobPattern | None) -> list[bytes]:
        """The names of a SCAN step that also match the part of the pattern Redis was not sent."""
        if rest is None:
            return raw
        return [raw[i] for i in rest.matching(raw, self._prefix_bytes)]

    def _unlink(self, client: Any, raw: list[bytes]) -> int:
        """UNLINK `raw` (full keys); the count removed.

        RedisCluster splits a multi-key UNLINK by slot in a pipeline, except on the redis-py
        releases whose cluster resends are turned off (`cluster_error_retry_attempts` = 0): their
        asyncio pipeline runs that many attempts, none, so there it is one UNLINK per slot (redis-py
        5's `unlink` takes the pipeline even for one slot).
        """
        if getattr(client, "cluster_error_retry_attempts", None) != 0:
            return int(client.unlink(*raw))
        by_slot: dict[int, list[bytes]] = {}
        for key in raw:
            by_slot.setdefault(key_slot(key), []).append(key)
        removed = 0
        for keys in by_slot.values():
            removed += int(client.execute_command("UNLINK", *keys))
        return removed

    def _unlink_matching(self, pattern: str) -> int:
        """SCAN + UNLINK in batches (never KEYS or FLUSHDB); the count removed.

        In cluster mode a sweep during which the set of primaries changed (a failover) may have
        skipped a node's keys, so the sweep runs again until one sees a stable set of primaries
        (deleting is idempotent).
        """
        match, rest = _redis.scan_match(self._glob_prefix, pattern)
        client = self._client()
        removed = 0
        with self._errors:
            for _ in range(_redis.SWEEPS_PER_TOPOLOGY_CHANGE):
                before = self._topology(client)
                cursor = 0
                while True:
                    cursor, raw = self._scan_step(client, cursor, match, _redis.SCAN_BATCH)
                    raw = self._passing(raw, rest)
                    if raw:
                        removed += self._unlink(client, raw)
                    if cursor == 0:
                        break
                if self._topology(client) == before:
                    break
        return removed

    def _topology(self, client: Any) -> frozenset[str]:
        """The names of the primaries in cluster mode (empty for a standalone server)."""
        if not self._config.cluster:
            return frozenset()
        return frozenset(node.name for node in client.get_primaries())

    def del_pattern(self, pattern: str) -> int:
        """Delete every key under the prefix matching a Redis glob; the count removed."""
        return self._unlink_matching(pattern)

    def flush(self) -> int:
        """Delete every key under the prefix (everything in the db with an empty prefix)."""
        return self._unlink_matching("*")

    # --- sets ----------------------------------------------------------------------------------

    def sadd(self, key: str, *members: str) -> int:
        full = self._key(key)
        str_args(members, "member", "sadd")
        return int(self._command("SADD", full, *members))

    def srem(self, key: str, *members: str) -> int:
        full = self._key(key)
        str_args(members, "member", "srem")
        return int(self._command("SREM", full, *members))

    def sismember(self, key: str, member: str) -> bool:
        full = self._key(key)
        str_arg(member, "member")
        return bool(self._command("SISMEMBER", full, member))

    def smembers(self, key: str) -> builtins.set[str]:
        # A list, or redis-py's set where it parses the reply (see `_command`).
        raw = self._command("SMEMBERS", self._key(key))
        return {_text(member) for member in raw}

    def scard(self, key: str) -> int:
        return int(self._command("SCARD", self._key(key)))

    # --- hashes --------------------------------------------------------------------------------

    def hset(self, key: str, field: str, value: str) -> int:
        full = self._key(key)
        str_arg(field, "field")
        str_arg(value, "value")
        return int(self._command("HSET", full, field, value))

    def hget(self, key: str, field: str) -> str | None:
        full = self._key(key)
        str_arg(field, "field")
        raw = self._command("HGET", full, field)
        return None if raw is None else _text(raw)

    def hgetall(self, key: str) -> dict[str, str]:
        raw = self._command("HGETALL", self._key(key))
        # A flat [field, value, ...] list, or redis-py's dict where it parses the reply.
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
        return {_text(field): _text(value) for field, value in pairs}

    def hdel(self, key: str, *fields: str) -> int:
        full = self._key(key)
        str_args(fields, "field", "hdel")
        return int(self._command("HDEL", full, *fields))

    # --- token locks ---------------------------------------------------------------------------

    def acquire_lock(self, key: str, ttl_ms: int) -> str | None:
        """SET NX PX at `<prefix>lock:<key>` with a fresh 128-bit random token (lock_acquire.lua).

        A caller cancelled (or interrupted) after the command was sent still gets the lock
        released, by its token, before the cancellation goes on (see `_abandoned`).
        """
        full = self._key(key, _redis.LOCK_NAMESPACE, "lock_key")
        ttl_ms = ms_arg(ttl_ms, "ttl_ms")
        token = secrets.token_hex(16)
        taken = undo_if_abandoned(
            lambda: self._script("lock_acquire", [full], [token, ttl_ms]),
            lambda: self._abandoned(key, full, token),
            self._abandon_wait,
        )
        if taken:
            self._lock_acquired += 1
            return token
        self._lock_contended += 1
        return None

    def acquire_fenced_lock(self, key: str, ttl_ms: int) -> tuple[str, int] | None:
        """SET NX PX and the fence counter's increment, one script (lock_acquire_fenced.lua).

        Cancelled or interrupted after sending: released like `acquire_lock`.
        """
        full = self._key(key, _redis.LOCK_NAMESPACE, "lock_key")
        ttl_ms = ms_arg(ttl_ms, "ttl_ms")
        keys = [full, _redis.fence_key(self._prefix, key)]
        token = secrets.token_hex(16)
        fence = undo_if_abandoned(
            lambda: self._script(
                "lock_acquire_fenced", keys, [token, ttl_ms, ttl_ms + _redis.FENCE_KEEP_MS]
            ),
            lambda: self._abandoned(key, full, token),
            self._abandon_wait,
        )
        if fence is None:
            self._lock_contended += 1
            return None
        self._lock_acquired += 1
        return token, int(fence)

    def _abandoned(self, key: str, full: str, token: str) -> None:
        """Release the lock of an acquire whose caller left before its reply (compare and
        delete: another holder's lock is never removed)."""
        try:
            self._script("lock_release", [full], [token])
        except BackendUnavailable as exc:
            _logger.warning(
                "lock %r of a cancelled acquire may be held until its TTL ends: %s", key, exc
            )

    def release_lock(self, key: str, token: str) -> bool:
        full = self._key(key, _redis.LOCK_NAMESPACE, "lock_key")
        str_arg(token, "token")
        return bool(self._script("lock_release", [full], [token]))

    def extend_lock(self, key: str, token: str, ttl_ms: int) -> bool:
        full = self._key(key, _redis.LOCK_NAMESPACE, "lock_key")
        str_arg(token, "token")
        ttl_ms = ms_arg(ttl_ms, "ttl_ms")
        return bool(self._script("lock_extend", [full], [token, ttl_ms]))

    # --- rate limits ---------------------------------------------------------------------------

    def rate_limit(
        self,
        key: str,
        limit: int,
        window: float,
        cost: int = 1,
        algorithm: str = "sliding_log",
    ) -> tuple[bool, int, float, float]:
        """One EVALSHA of the algorithm's script at `<prefix>ratelimit:<key>`.

        Returns (allowed, remaining, reset_after, retry_after), times in seconds.
        """
        name, limit, window_ms, cost, algorithm = rate_limit_args(
            key, limit, window, cost, algorithm
        )
        full = self._key(name, _redis.RATE_LIMIT_NAMESPACE, None)
        script_name = _ALGORITHMS[algorithm]
        now = "" if self._test_clock is None else self._test_clock()
        allowed, remaining, reset_ms, retry_ms = self._script(
            script_name, [full], [limit, window_ms, cost, now]
        )
        if allowed:
            self._rate_limit_allowed += 1
        else:
            self._rate_limit_denied += 1
        return bool(allowed), int(remaining), reset_ms / 1000, retry_ms / 1000

    def rate_limit_many(
        self,
        keys: list[str],
        limits: list[int],
        windows: list[float],
        cost: int = 1,
        algorithm: str = "sliding_log",
    ) -> list[tuple[bool, int, float, float]]:
        """One EVALSHA of the algorithm's multi-key script over every key: all or nothing.

        In cluster mode the keys must share a slot (one hash tag): checked before any I/O.

        Returns:
            Per key (allowed, remaining, reset_after, retry_after), times in seconds.

        Raises:
            ValueError: bad arguments (see `rate_limit_many_args`), or keys in several slots.
        """
        names, limits, windows_ms, cost = rate_limit_many_args(
            keys, limits, windows, cost, algorithm
        )
        full = [self._key(name, _redis.RATE_LIMIT_NAMESPACE, None) for name in names]
        if (
            self._config.cluster
            and len({key_slot(key.encode("utf-8", "surrogateescape")) for key in full}) > 1
        ):
            raise ValueError(
                "rate_limit_many keys must share one cluster slot: put them under one hash tag, "
                f"e.g. 'domain:{{otp}}:phone:...'; got {names!r}"
            )
        args: list[int | str] = []
        for limit, window_ms in zip(limits, windows_ms, strict=True):
            args += (limit, window_ms)
        args += (cost, "" if self._test_clock is None else self._test_clock())
        flat = self._script(_MANY_SCRIPTS[algorithm], full, args)
        results = [
            (bool(flat[i]), int(flat[i + 1]), flat[i + 2] / 1000, flat[i + 3] / 1000)
            for i in range(0, len(flat), 4)
        ]
        if all(result[0] for result in results):
            self._rate_limit_allowed += 1
        else:
            self._rate_limit_denied += 1
        return results

    # --- stats ---------------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """This process's hit, lock and rate-limit counters (no I/O)."""
        return {
            "hits": self._hits,
            "misses": self._misses,
            "lock_acquired": self._lock_acquired,
            "lock_contended": self._lock_contended,
            "rate_limit_allowed": self._rate_limit_allowed,
            "rate_limit_denied": self._rate_limit_denied,
        }

    def stats(self) -> dict[str, int]:
        """The store's counters: hit/lock/limit counts of this process; keys, evictions and
        expirations from the server (DBSIZE counts the whole db, not only the prefix; the last
        two are 0 where ACL denies INFO). Reads `maxmemory_policy` again.

        Raises:
            BackendUnavailable: the server did not answer.
        """
        # One DBSIZE and one INFO per primary in a cluster, added up; INFO may be denied by ACL.
        target = {"target_nodes": RedisCluster.PRIMARIES} if self._config.cluster else {}
        sizes = self._call("dbsize", **target)
        info = self._permitted("info", "stats", **target) or {}
        self._memory_settings()
        keys = sum(sizes.values()) if isinstance(sizes, dict) else int(sizes)
        nodes = [v for v in info.values() if isinstance(v, dict)] or [info]
        return {
            "keys": int(keys),
            "used_bytes": 0,
            "evictions": sum(int(n.get("evicted_keys", 0)) for n in nodes),
            "expired": sum(int(n.get("expired_keys", 0)) for n in nodes),
            **self.counters(),
            "max_keys": 0,
            "max_bytes": 0,
        }
