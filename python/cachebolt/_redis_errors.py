"""redis-py errors -> cachebolt errors, in one place, so both backends raise the same types.

docs/ARCHITECTURE.md ("Errors from Redis") lists the mapping; every message passes
`mask_secrets`.
"""

from __future__ import annotations

import asyncio
import builtins
from types import TracebackType
from typing import NoReturn

from redis import exceptions as rx

from ._redact import mask_secrets
from .exceptions import BackendUnavailable, CacheError, CapacityError, WrongTypeError

__all__ = ["BackendUnavailable", "RedisErrorMapper", "map_redis_errors"]

# The server's texts for WRONGTYPE-like errors, as the Rust store words them (redis-py strips
# the "ERR " prefix of the last two).
_WRONG_TYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
_NOT_AN_INTEGER = "value is not an integer or out of range"
_OVERFLOW = "increment or decrement would overflow"
_OUT_OF_MEMORY = (
    "Redis is out of memory (used memory > maxmemory, maxmemory-policy noeviction): "
    "the write was refused and nothing was written"
)

# Error replies that mean "no usable server right now" rather than "your command is wrong".
_UNAVAILABLE_REPLIES = (
    rx.ClusterDownError,  # CLUSTERDOWN, and MasterDownError (MASTERDOWN) below it
    rx.TryAgainError,  # TRYAGAIN: a slot is migrating
    rx.ReadOnlyError,  # READONLY: we talk to a replica (failover in progress)
)
# Client-side failures to reach a server: sockets, timeouts, cluster topology discovery.
_UNAVAILABLE = (
    rx.ConnectionError,  # also AuthenticationError, BusyLoadingError, MaxConnectionsError
    rx.TimeoutError,
    rx.RedisClusterException,  # "Redis Cluster cannot be connected", SlotNotCoveredError
    rx.ClusterError,
    builtins.TimeoutError,  # asyncio.TimeoutError is the same class on 3.11+
    asyncio.TimeoutError,
    OSError,
)


def _script_free(message: str) -> str:
    """An error reply raised inside a Lua script, without Redis's " script: ..." location."""
    cut = message.find(" script: ")
    return message if cut < 0 else message[:cut]


def _refused(exc: BaseException) -> bool:
    """A refused connection, also when redis-py rewords it ("Connect call failed")."""
    seen: BaseException | None = exc
    for _ in range(4):  # redis-py wraps the socket error once or twice
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _cause(exc: BaseException, secret: str | None, username: str | None) -> str:
    """What an outage error means, in the words of `BackendUnavailable`'s contract."""
    text = str(exc)
    if isinstance(exc, rx.AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        user = "default" if username is None else username
        missing = " (no password configured)" if secret is None else ""
        return f"authentication failed for user {user!r}{missing}: "
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return "TLS verification failed: "
    if isinstance(exc, (rx.TimeoutError, builtins.TimeoutError, asyncio.TimeoutError)):
        return "timeout: "
    if _refused(exc) or "Connection refused" in text:
        return "connection refused: "
    if isinstance(exc, rx.RedisClusterException) or text.startswith("CLUSTERDOWN"):
        return "cluster unreachable: "
    return ""


def translate(exc: BaseException, *secrets: str | None, username: str | None = None) -> CacheError:
    """The cachebolt exception for an exception raised by redis-py (or a socket).

    Args:
        secrets: passwords to mask, the server's own first (its absence is named on a refused
            login).
        username: the ACL user, named on a refused login.
    """
    if isinstance(exc, rx.ResponseError):
        if isinstance(exc, _UNAVAILABLE_REPLIES):
            cause = _cause(exc, secrets[0] if secrets else None, username)
            return BackendUnavailable(mask_secrets(f"Redis unavailable: {cause}{exc}", *secrets))
        if isinstance(exc, rx.OutOfMemoryError):
            return CapacityError(_OUT_OF_MEMORY)
        message = _script_free(str(exc))
        if message.startswith("WRONGTYPE"):
            return WrongTypeError(mask_secrets(message, *secrets))
        if message.startswith(_NOT_AN_INTEGER) or message.startswith("ERR " + _NOT_AN_INTEGER):
            return WrongTypeError(_NOT_AN_INTEGER)
        if message.startswith(_OVERFLOW) or message.startswith("ERR " + _OVERFLOW):
            return WrongTypeError(_OVERFLOW)
        return CacheError(mask_secrets(f"Redis error: {message}", *secrets))
    if isinstance(exc, _UNAVAILABLE):
        detail = str(exc) or type(exc).__name__
        cause = _cause(exc, secrets[0] if secrets else None, username)
        return BackendUnavailable(mask_secrets(f"Redis unavailable: {cause}{detail}", *secrets))
    if isinstance(exc, rx.RedisError):
        return CacheError(mask_secrets(f"Redis error: {exc}", *secrets))
    failed = f"Redis client failed: {type(exc).__name__}: {exc}"
    return BackendUnavailable(mask_secrets(failed, *secrets))


class RedisErrorMapper:
    """The context manager behind `map_redis_errors`; stateless, so one instance is reused."""

    __slots__ = ("_secrets", "_username")

    def __init__(self, *secrets: str | None, username: str | None = None) -> None:
        self._secrets = secrets
        self._username = username

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Never suppresses: an error either passes through or is replaced by ours.
        if exc is None or isinstance(exc, CacheError) or not isinstance(exc, Exception):
            return  # CancelledError, KeyboardInterrupt and our own errors pass through
        self.raise_mapped(exc)

    def raise_mapped(self, exc: Exception) -> NoReturn:
        """Raise the cachebolt error for `exc` (ours as it is): `with mapper:` as an `except`
        clause, for the per-command path, where a `try` costs nothing until something raises."""
        if isinstance(exc, CacheError):
            raise exc
        mapped = translate(exc, *self._secrets, username=self._username)
        # Chained for debugging, unless redis-py's own text would show a secret in a traceback.
        text = str(exc)
        raise mapped from (exc if mask_secrets(text, *self._secrets) == text else None)


_DEFAULT = RedisErrorMapper()


def map_redis_errors(*secrets: str | None, username: str | None = None) -> RedisErrorMapper:
    """A context manager mapping redis-py errors to cachebolt's (a plain `with`, sync or async).

    Args:
        secrets: passwords to mask in every message (the backend passes its own first, then
            the sentinels').
        username: the ACL user, named when authentication fails.
    """
    if any(secrets) or username is not None:
        return RedisErrorMapper(*secrets, username=username)
    return _DEFAULT
