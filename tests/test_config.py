"""`CacheConfig`: defaults, every variable, strict parsing, and a password that never shows."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cachebolt import CacheConfig, ConfigError

SECRET = "s3cr3t-pa55"


def test_defaults() -> None:
    config = CacheConfig.from_env({})
    assert config == CacheConfig()
    assert dataclasses.asdict(config) == {
        "enabled": False,
        "url": None,
        "host": "localhost",
        "port": 6379,
        "username": None,
        "password": None,
        "tls": False,
        "tls_ca_cert": None,
        "cluster": False,
        "db": 0,
        "key_prefix": "",
        "connect_timeout_ms": 2000,
        "command_timeout_ms": 500,
        "memory_max_keys": None,
        "memory_max_bytes": None,
        "memory_rate_limit_max_bytes": None,
        "cleanup_interval_seconds": 30,
        "feed_cache_ttl_seconds": 300,
        "lock_fallback": "memory",
        "rate_limit_fallback": "memory",
        "sentinels": None,
        "sentinel_master": None,
        "sentinel_username": None,
        "sentinel_password": None,
        "required": False,
    }


def test_every_variable() -> None:
    env = {
        "VALKEY_ENABLED": "true",
        "VALKEY_HOST": "cache.internal",
        "VALKEY_PORT": "6380",
        "VALKEY_USERNAME": "app",
        "VALKEY_PASSWORD": SECRET,
        "VALKEY_TLS": "yes",
        "VALKEY_TLS_CA_CERT": "/etc/ssl/ca.pem",
        "VALKEY_CLUSTER": "0",
        "VALKEY_DB": "3",
        "VALKEY_KEY_PREFIX": "app:",
        "VALKEY_CONNECT_TIMEOUT_MS": "1500",
        "VALKEY_COMMAND_TIMEOUT_MS": "250",
        "CACHE_MEMORY_MAX_KEYS": "10000",
        "CACHE_MEMORY_MAX_BYTES": "1048576",
        "CACHE_MEMORY_RATE_LIMIT_MAX_BYTES": "262144",
        "CACHE_CLEANUP_INTERVAL_SECONDS": "5",
        "FEED_CACHE_TTL_SECONDS": "120",
    }
    assert CacheConfig.from_env(env) == CacheConfig(
        enabled=True,
        host="cache.internal",
        port=6380,
        username="app",
        password=SECRET,
        tls=True,
        tls_ca_cert="/etc/ssl/ca.pem",
        cluster=False,
        db=3,
        key_prefix="app:",
        connect_timeout_ms=1500,
        command_timeout_ms=250,
        memory_max_keys=10000,
        memory_max_bytes=1048576,
        memory_rate_limit_max_bytes=262144,
        cleanup_interval_seconds=5,
        feed_cache_ttl_seconds=120,
    )


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALKEY_PORT", "7000")
    assert CacheConfig.from_env().port == 7000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        (" Yes ", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("NO", False),
    ],
)
def test_booleans(raw: str, expected: bool) -> None:
    for name, field in [("VALKEY_ENABLED", "enabled"), ("VALKEY_TLS", "tls")]:
        assert getattr(CacheConfig.from_env({name: raw}), field) is expected
    assert CacheConfig.from_env({"VALKEY_CLUSTER": raw}).cluster is expected


@pytest.mark.parametrize("raw", ["on", "off", "y", "2", "truee", "t"])
def test_bad_boolean_names_the_variable_and_value(raw: str) -> None:
    with pytest.raises(ConfigError, match=f"VALKEY_TLS={raw!r} is not a boolean"):
        CacheConfig.from_env({"VALKEY_TLS": raw})


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("VALKEY_PORT", "abc", "is not an integer"),
        ("VALKEY_PORT", "63.5", "is not an integer"),
        ("VALKEY_PORT", "1_000", "is not an integer"),
        ("VALKEY_PORT", "0", "out of range 1..65535"),
        ("VALKEY_PORT", "65536", "out of range 1..65535"),
        ("VALKEY_DB", "-1", "out of range"),
        ("VALKEY_DB", "x", "is not an integer"),
        ("VALKEY_CONNECT_TIMEOUT_MS", "0", "out of range"),
        ("VALKEY_COMMAND_TIMEOUT_MS", "-5", "out of range"),
        ("CACHE_MEMORY_MAX_KEYS", "0", "out of range"),
        ("CACHE_MEMORY_MAX_BYTES", "lots", "is not an integer"),
        ("CACHE_MEMORY_RATE_LIMIT_MAX_BYTES", "0", "out of range"),
        ("CACHE_CLEANUP_INTERVAL_SECONDS", "-1", "out of range 0..86400"),
        ("CACHE_CLEANUP_INTERVAL_SECONDS", "86401", "out of range 0..86400"),
        ("FEED_CACHE_TTL_SECONDS", "0", "out of range"),
        ("VALKEY_ENABLED", "maybe", "is not a boolean"),
        ("VALKEY_CLUSTER", "maybe", "is not a boolean"),
    ],
)
def test_bad_values_name_the_variable(name: str, raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        CacheConfig.from_env({name: raw})
    assert str(info.value).startswith(f"{name}={raw!r}")
    assert message in str(info.value)


def test_empty_values_keep_defaults() -> None:
    env = dict.fromkeys(["VALKEY_PORT", "VALKEY_ENABLED", "VALKEY_URL", "VALKEY_PASSWORD"], "")
    assert CacheConfig.from_env(env) == CacheConfig()
    assert CacheConfig.from_env({"VALKEY_KEY_PREFIX": " p:"}).key_prefix == " p:"


def test_cleanup_interval_zero_turns_the_sweep_off() -> None:
    assert (
        CacheConfig.from_env({"CACHE_CLEANUP_INTERVAL_SECONDS": "0"}).cleanup_interval_seconds == 0
    )


def test_cluster_requires_db_zero() -> None:
    with pytest.raises(ConfigError, match="VALKEY_DB=2 is not allowed with VALKEY_CLUSTER"):
        CacheConfig.from_env({"VALKEY_CLUSTER": "true", "VALKEY_DB": "2"})
    assert CacheConfig.from_env({"VALKEY_CLUSTER": "true"}).cluster is True


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost", {"host": "localhost", "port": 6379, "tls": False, "db": 0}),
        (
            f"redis://app:{SECRET}@db.example:6390/4",
            {"host": "db.example", "port": 6390, "username": "app", "password": SECRET, "db": 4},
        ),
        ("rediss://h:7000", {"host": "h", "port": 7000, "tls": True}),
        ("valkey://h/1", {"host": "h", "db": 1, "tls": False}),
        ("valkeys://:p%40ss@h", {"host": "h", "password": "p@ss", "username": None, "tls": True}),
    ],
)
def test_url(url: str, expected: dict[str, Any]) -> None:
    config = CacheConfig.from_env({"VALKEY_URL": url})
    assert config.url == url
    for field, value in expected.items():
        assert getattr(config, field) == value, field


def test_url_overrides_the_parts() -> None:
    env = {
        "VALKEY_URL": "rediss://urluser:urlpass@urlhost:7001/5",
        "VALKEY_HOST": "envhost",
        "VALKEY_PORT": "6000",
        "VALKEY_USERNAME": "envuser",
        "VALKEY_PASSWORD": "envpass",
        "VALKEY_TLS": "false",
        "VALKEY_DB": "1",
    }
    config = CacheConfig.from_env(env)
    assert (config.host, config.port, config.username, config.password, config.tls, config.db) == (
        "urlhost",
        7001,
        "urluser",
        "urlpass",
        True,
        5,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"http://user:{SECRET}@host", "unsupported scheme"),
        (f"redis://user:{SECRET}@host:99999", "not a valid URL"),
        (f"redis://user:{SECRET}@host:0", "out of range"),
        (f"redis://user:{SECRET}@host/abc", "database path"),
        (f"redis://user:{SECRET}@:6379", "has no host"),
        ("localhost:6379", "unsupported scheme"),
    ],
)
def test_bad_url_is_named_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        CacheConfig.from_env({"VALKEY_URL": url})
    text = str(info.value)
    assert text.startswith("VALKEY_URL=") and message in text
    assert SECRET not in text
    if SECRET in url:
        assert "user:***@" in text


def test_repr_never_shows_the_password() -> None:
    config = CacheConfig.from_env(
        {"VALKEY_PASSWORD": SECRET, "VALKEY_URL": f"redis://u:{SECRET}@h:1/0"}
    )
    assert config.password == SECRET
    text = repr(config)
    assert SECRET not in text and SECRET not in str(config)
    assert "password='***'" in text and "url='redis://u:***@h:1/0'" in text
    assert "password=None" in repr(CacheConfig())


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"CacheConfig.port=0 is out of range"):
        CacheConfig(port=0)
    with pytest.raises(ConfigError, match=r"CacheConfig.port=True must be int"):
        CacheConfig(port=True)
    with pytest.raises(ConfigError, match=r"CacheConfig.enabled='yes' must be bool"):
        CacheConfig(enabled="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"CacheConfig.password=\*\*\* must be str"):
        CacheConfig(password=12345)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cluster=True"):
        CacheConfig(cluster=True, db=1)
    with pytest.raises(ConfigError, match="host must not be empty"):
        CacheConfig(host="")
    assert CacheConfig(url="rediss://h:1").tls is True


def test_config_is_frozen() -> None:
    config = CacheConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
