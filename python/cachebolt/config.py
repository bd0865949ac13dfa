"""`CacheConfig`: every setting of the service, parsed strictly from the environment.

A bad value raises `ConfigError` naming the variable (or field) and the value, except a password,
which is never echoed: not in errors, not in `repr`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from . import _constants as C
from ._redact import MASK, mask_secrets
from .exceptions import ConfigError

__all__ = ["CacheConfig"]

_T = TypeVar("_T")


def _parse_bool(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in C.TRUE_WORDS:
        return True
    if word in C.FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (expected true/false, 1/0 or yes/no)")


def _parse_int(name: str, raw: str, bounds: tuple[int, int]) -> int:
    text = raw.strip()
    # int() would also take "1_000" and "+5"; a setting is plain decimal digits.
    if not (text.isascii() and text.lstrip("-").isdigit()):
        raise ConfigError(f"{name}={raw!r} is not an integer")
    return _check_range(name, int(text), bounds, raw)


def _check_range(name: str, value: int, bounds: tuple[int, int], shown: object = None) -> int:
    low, high = bounds
    if not low <= value <= high:
        shown = value if shown is None else shown
        raise ConfigError(f"{name}={shown!r} is out of range {low}..{high}")
    return value


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def _check_key_prefix(name: str, prefix: str) -> str:
    """A non-empty key prefix ends with the delimiter, so no other namespace can start with it."""
    if prefix and not prefix.endswith(C.KEY_PREFIX_DELIMITER):
        raise ConfigError(
            f"{name}={prefix!r} must end with {C.KEY_PREFIX_DELIMITER!r}: without it, its keys "
            f"and patterns also cover every prefix that starts with it (such as "
            f"{prefix + '0' + C.KEY_PREFIX_DELIMITER!r}); use "
            f"{prefix + C.KEY_PREFIX_DELIMITER!r}"
        )
    return prefix


def _parse_sentinels(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    """The addresses of `host:port,host:port` (an IPv6 host in brackets: `[::1]:26379`)."""
    addresses = []
    for item in raw.split(","):
        entry = item.strip()
        host, colon, port = entry.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ConfigError(f"{name}={raw!r}: write the IPv6 host of {entry!r} in brackets")
        if not (colon and host) or any(char.isspace() or char in "[]" for char in host):
            raise ConfigError(f"{name}={raw!r}: {entry!r} is not host:port")
        if not (port.isascii() and port.isdigit()):
            raise ConfigError(f"{name}={raw!r}: the port of {entry!r} is not an integer")
        addresses.append((host, _check_range(name, int(port), C.PORT_RANGE, raw)))
    return tuple(addresses)


def _check_sentinel_settings(values: Mapping[str, Any], name: Callable[[str], str]) -> None:
    """Sentinel settings that belong together: sentinels and a master name, and no cluster.

    Args:
        values: the settings by field name (absent or None: not set).
        name: how an error names a field (`CacheConfig.<field>` or its variable).
    """
    sentinels = values.get("sentinels")
    if sentinels is None:
        for key in ("sentinel_master", "sentinel_username", "sentinel_password"):
            if values.get(key) is not None:
                raise ConfigError(f"{name(key)} is set but {name('sentinels')} is not")
        return
    _parse_sentinels(name("sentinels"), sentinels)
    master = values.get("sentinel_master")
    if master is None:
        raise ConfigError(
            f"{name('sentinels')} needs {name('sentinel_master')}, the name of the master the "
            "sentinels monitor"
        )
    if not master or any(char.isspace() for char in master):
        raise ConfigError(f"{name('sentinel_master')}={master!r} is not a master name")
    if values.get("cluster"):
        raise ConfigError(
            f"{name('sentinels')} is not allowed with {name('cluster')}: a cluster fails over "
            "by itself"
        )


def _choice(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    return lambda name, raw: _check_choice(name, raw.strip().lower(), choices)


def _parsed_url(name: str, url: str, secret: str | None = None) -> dict[str, Any]:
    """Host, port, username, password, tls and db from a redis:// / rediss:// URL.

    Args:
        name: the variable or field, for errors.
        url: the URL.
        secret: a password given besides the URL, masked in errors too.
    """
    # Imported here, with the ipaddress module it loads: most configurations have no URL.
    from urllib.parse import unquote, urlsplit

    shown = mask_secrets(url, secret)
    # urllib's own messages are not shown: they can quote a piece of the password.
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise ConfigError(f"{name}={shown!r} is not a valid URL") from None
    if parts.netloc and "@" in parts.path + parts.query + parts.fragment:
        # A raw "/", "?" or "#" in the user name or password ends the host part early: the
        # parser would read a piece of the password as the host or the port.
        raise ConfigError(
            f"{name}={shown!r} is not a valid URL: percent-encode '/', '?', '#' and '@' in the "
            "user name and password"
        )
    try:
        port = parts.port
    except ValueError:
        low, high = C.PORT_RANGE
        raise ConfigError(
            f"{name}={shown!r} is not a valid URL: the port must be a number in {low}..{high}"
        ) from None
    if parts.scheme not in C.URL_SCHEMES:
        schemes = ", ".join(f"{s}://" for s in sorted(C.URL_SCHEMES))
        raise ConfigError(f"{name}={shown!r} has an unsupported scheme (expected {schemes})")
    if not parts.hostname:
        raise ConfigError(f"{name}={shown!r} has no host")
    values: dict[str, Any] = {
        "host": parts.hostname,
        "port": C.DEFAULT_PORT if port is None else _check_range(name, port, C.PORT_RANGE, shown),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "tls": parts.scheme in C.TLS_URL_SCHEMES,
        "db": C.DEFAULT_DB,
    }
    path = parts.path.strip("/")
    if path:
        if not (path.isascii() and path.isdigit()):
            raise ConfigError(f"{name}={shown!r} has a database path that is not an integer")
        values["db"] = _check_range(name, int(path), C.DB_RANGE, shown)
    return values


@dataclass(frozen=True)
class CacheConfig:
    """Settings of `CacheService` / `AsyncCacheService`; the defaults give the in-memory mode.

    Each field has the variable in parentheses; README "Configuration" states defaults and rules.

    Args:
        enabled: use Redis/Valkey (`VALKEY_ENABLED`); False serves everything from memory.
        url: redis://, rediss://, valkey:// or valkeys:// (`VALKEY_URL`); overrides host, port,
            username, password, tls and db.
        host: server host (`VALKEY_HOST`).
        port: server port (`VALKEY_PORT`).
        username: ACL user name (`VALKEY_USERNAME`).
        password: ACL password (`VALKEY_PASSWORD`); never shown by `repr` or in errors.
        tls: connect with TLS, certificates verified (`VALKEY_TLS`).
        tls_ca_cert: path of a CA bundle for TLS (`VALKEY_TLS_CA_CERT`).
        cluster: use a Redis Cluster client (`VALKEY_CLUSTER`).
        db: database number, standalone only (`VALKEY_DB`).
        key_prefix: namespace of every key and channel, empty or ending with ":"
            (`VALKEY_KEY_PREFIX`).
        connect_timeout_ms: bound on connecting (`VALKEY_CONNECT_TIMEOUT_MS`).
        command_timeout_ms: bound on each Redis command (`VALKEY_COMMAND_TIMEOUT_MS`).
        memory_max_keys: key bound of the in-memory backend (`CACHE_MEMORY_MAX_KEYS`).
        memory_max_bytes: byte bound of values and rate-limit state (`CACHE_MEMORY_MAX_BYTES`).
        memory_rate_limit_max_bytes: the share of it rate-limit state may hold
            (`CACHE_MEMORY_RATE_LIMIT_MAX_BYTES`); None: half.
        cleanup_interval_seconds: period of the expiry sweep, 0 for none
            (`CACHE_CLEANUP_INTERVAL_SECONDS`).
        feed_cache_ttl_seconds: TTL for feed pages, for applications (`FEED_CACHE_TTL_SECONDS`).
        lock_fallback: "memory" or "fail_closed" while Redis is down (`CACHE_LOCK_FALLBACK`).
        rate_limit_fallback: "memory", "fail_closed" or "fail_open" while Redis is down
            (`CACHE_RATE_LIMIT_FALLBACK`).
        sentinels: Sentinel addresses `host:port,host:port` (`VALKEY_SENTINELS`); not with
            `cluster`.
        sentinel_master: the master name the sentinels monitor (`VALKEY_SENTINEL_MASTER`).
        sentinel_username: ACL user name on the sentinels (`VALKEY_SENTINEL_USERNAME`).
        sentinel_password: password on the sentinels (`VALKEY_SENTINEL_PASSWORD`); never shown.
        required: start-up raises `BackendUnavailable` when Redis does not answer
            (`VALKEY_REQUIRED`).

    Raises:
        ConfigError: a field has a wrong type or is out of range (the message names the field).
    """

    enabled: bool = C.DEFAULT_ENABLED
    url: str | None = None
    host: str = C.DEFAULT_HOST
    port: int = C.DEFAULT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = C.DEFAULT_TLS
    tls_ca_cert: str | None = None
    cluster: bool = C.DEFAULT_CLUSTER
    db: int = C.DEFAULT_DB
    key_prefix: str = C.DEFAULT_KEY_PREFIX
    connect_timeout_ms: int = C.DEFAULT_CONNECT_TIMEOUT_MS
    command_timeout_ms: int = C.DEFAULT_COMMAND_TIMEOUT_MS
    memory_max_keys: int | None = None
    memory_max_bytes: int | None = None
    memory_rate_limit_max_bytes: int | None = None
    cleanup_interval_seconds: int = C.DEFAULT_CLEANUP_INTERVAL_SECONDS
    feed_cache_ttl_seconds: int = C.DEFAULT_FEED_CACHE_TTL_SECONDS
    lock_fallback: str = C.DEFAULT_LOCK_FALLBACK
    rate_limit_fallback: str = C.DEFAULT_RATE_LIMIT_FALLBACK
    sentinels: str | None = None
    sentinel_master: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    required: bool = C.DEFAULT_REQUIRED

    def __post_init__(self) -> None:
        if self.url is not None:
            if not isinstance(self.url, str):
                raise ConfigError(f"CacheConfig.url must be a str, not {type(self.url).__name__}")
            for name, value in _parsed_url("CacheConfig.url", self.url, self.password).items():
                object.__setattr__(self, name, value)
        self._check_types()
        _check_range("CacheConfig.port", self.port, C.PORT_RANGE)
        _check_range("CacheConfig.db", self.db, C.DB_RANGE)
        _check_range("CacheConfig.connect_timeout_ms", self.connect_timeout_ms, C.TIMEOUT_MS_RANGE)
        _check_range("CacheConfig.command_timeout_ms", self.command_timeout_ms, C.TIMEOUT_MS_RANGE)
        _check_range(
            "CacheConfig.cleanup_interval_seconds",
            self.cleanup_interval_seconds,
            C.CLEANUP_INTERVAL_RANGE,
        )
        _check_range(
            "CacheConfig.feed_cache_ttl_seconds", self.feed_cache_ttl_seconds, C.POSITIVE_RANGE
        )
        for name in ("memory_max_keys", "memory_max_bytes", "memory_rate_limit_max_bytes"):
            value = getattr(self, name)
            if value is not None:
                _check_range(f"CacheConfig.{name}", value, C.POSITIVE_RANGE)
        _check_choice("CacheConfig.lock_fallback", self.lock_fallback, C.LOCK_FALLBACK_POLICIES)
        _check_choice(
            "CacheConfig.rate_limit_fallback",
            self.rate_limit_fallback,
            C.RATE_LIMIT_FALLBACK_POLICIES,
        )
        _check_key_prefix("CacheConfig.key_prefix", self.key_prefix)
        if not self.host:
            raise ConfigError("CacheConfig.host must not be empty")
        if self.cluster and self.db != 0:
            raise ConfigError(f"CacheConfig.db={self.db} is not allowed with cluster=True (use 0)")
        _check_sentinel_settings(
            {f.name: getattr(self, f.name) for f in fields(self)}, "CacheConfig.{}".format
        )

    @property
    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        """The (host, port) of every sentinel; empty without sentinels."""
        if self.sentinels is None:
            return ()
        return _parse_sentinels("CacheConfig.sentinels", self.sentinels)

    def _check_types(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = _FIELD_TYPES[f.name]
            optional = f.name in _OPTIONAL_FIELDS
            if value is None and optional:
                continue
            # bool is an int subclass: a flag is not a port and a port is not a flag.
            if isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
                continue
            shown = MASK if f.name in _SECRET_FIELDS else repr(value)
            raise ConfigError(
                f"CacheConfig.{f.name}={shown} must be {expected.__name__}"
                + (" or None" if optional else "")
            )

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _SECRET_FIELDS:
                parts.append(f"{f.name}={MASK!r}" if value is not None else f"{f.name}=None")
            elif f.name == "url" and value is not None:
                parts.append(f"url={mask_secrets(value, self.password)!r}")
            else:
                parts.append(f"{f.name}={value!r}")
        return f"CacheConfig({', '.join(parts)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CacheConfig:
        """Read the settings from environment variables (`os.environ` by default).

        An unset or empty variable keeps its default (`VALKEY_KEY_PREFIX` keeps its raw value).

        Args:
            environ: the variables to read; `os.environ` when None.

        Returns:
            The parsed configuration.

        Raises:
            ConfigError: a variable has a bad value; the message names it (never a password).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}

        def read(name: str, key: str, parse: Callable[[str, str], _T]) -> None:
            raw = env.get(name)
            if raw is not None and raw.strip():
                values[key] = parse(name, raw)

        def ranged(bounds: tuple[int, int]) -> Callable[[str, str], int]:
            return lambda name, raw: _parse_int(name, raw, bounds)

        def text(_name: str, raw: str) -> str:
            return raw.strip()

        read(C.ENV_ENABLED, "enabled", _parse_bool)
        read(C.ENV_REQUIRED, "required", _parse_bool)
        read(C.ENV_HOST, "host", text)
        read(C.ENV_PORT, "port", ranged(C.PORT_RANGE))
        read(C.ENV_USERNAME, "username", text)
        password = env.get(C.ENV_PASSWORD)
        if password:
            values["password"] = password  # taken verbatim: spaces may be part of it
        read(C.ENV_TLS, "tls", _parse_bool)
        read(C.ENV_TLS_CA_CERT, "tls_ca_cert", text)
        read(C.ENV_CLUSTER, "cluster", _parse_bool)
        read(C.ENV_DB, "db", ranged(C.DB_RANGE))
        read(C.ENV_SENTINELS, "sentinels", text)
        read(C.ENV_SENTINEL_MASTER, "sentinel_master", text)
        read(C.ENV_SENTINEL_USERNAME, "sentinel_username", text)
        sentinel_password = env.get(C.ENV_SENTINEL_PASSWORD)
        if sentinel_password:
            values["sentinel_password"] = sentinel_password  # verbatim, as VALKEY_PASSWORD
        prefix = env.get(C.ENV_KEY_PREFIX)
        if prefix is not None:
            values["key_prefix"] = _check_key_prefix(C.ENV_KEY_PREFIX, prefix)
        read(C.ENV_CONNECT_TIMEOUT_MS, "connect_timeout_ms", ranged(C.TIMEOUT_MS_RANGE))
        read(C.ENV_COMMAND_TIMEOUT_MS, "command_timeout_ms", ranged(C.TIMEOUT_MS_RANGE))
        read(C.ENV_MEMORY_MAX_KEYS, "memory_max_keys", ranged(C.POSITIVE_RANGE))
        read(C.ENV_MEMORY_MAX_BYTES, "memory_max_bytes", ranged(C.POSITIVE_RANGE))
        read(
            C.ENV_MEMORY_RATE_LIMIT_MAX_BYTES,
            "memory_rate_limit_max_bytes",
            ranged(C.POSITIVE_RANGE),
        )
        read(
            C.ENV_CLEANUP_INTERVAL_SECONDS,
            "cleanup_interval_seconds",
            ranged(C.CLEANUP_INTERVAL_RANGE),
        )
        read(C.ENV_FEED_CACHE_TTL_SECONDS, "feed_cache_ttl_seconds", ranged(C.POSITIVE_RANGE))
        read(C.ENV_LOCK_FALLBACK, "lock_fallback", _choice(C.LOCK_FALLBACK_POLICIES))
        read(
            C.ENV_RATE_LIMIT_FALLBACK,
            "rate_limit_fallback",
            _choice(C.RATE_LIMIT_FALLBACK_POLICIES),
        )
        url = env.get(C.ENV_URL)
        if url is not None and url.strip():
            # Parsed here so an error names the variable; the URL then overrides its parts.
            values.update(_parsed_url(C.ENV_URL, url, password))
            values["url"] = url.strip()
        if values.get("cluster") and values.get("db", 0) != 0:
            raise ConfigError(f"{C.ENV_DB}={values['db']} is not allowed with {C.ENV_CLUSTER}=true")
        _check_sentinel_settings(values, _ENV_NAMES.__getitem__)
        return cls(**values)


_FIELD_TYPES: dict[str, type] = {
    "enabled": bool,
    "url": str,
    "host": str,
    "port": int,
    "username": str,
    "password": str,
    "tls": bool,
    "tls_ca_cert": str,
    "cluster": bool,
    "sentinels": str,
    "sentinel_master": str,
    "sentinel_username": str,
    "sentinel_password": str,
    "db": int,
    "key_prefix": str,
    "connect_timeout_ms": int,
    "command_timeout_ms": int,
    "memory_max_keys": int,
    "memory_max_bytes": int,
    "memory_rate_limit_max_bytes": int,
    "cleanup_interval_seconds": int,
    "feed_cache_ttl_seconds": int,
    "lock_fallback": str,
    "rate_limit_fallback": str,
    "required": bool,
}
_OPTIONAL_FIELDS = frozenset(
    {
        "url",
        "username",
        "password",
        "tls_ca_cert",
        "sentinels",
        "sentinel_master",
        "sentinel_username",
        "sentinel_password",
        "memory_max_keys",
        "memory_max_bytes",
        "memory_rate_limit_max_bytes",
    }
)
_SECRET_FIELDS = frozenset({"password", "sentinel_password"})
# Variables of the settings that `from_env` checks together, for its errors.
_ENV_NAMES = {
    "cluster": C.ENV_CLUSTER,
    "sentinels": C.ENV_SENTINELS,
    "sentinel_master": C.ENV_SENTINEL_MASTER,
    "sentinel_username": C.ENV_SENTINEL_USERNAME,
    "sentinel_password": C.ENV_SENTINEL_PASSWORD,
}
