"""TLS: the right CA connects (certificate verified); a wrong CA and plaintext are refused.

The server (`tls_server`) listens on TLS only with a certificate for 127.0.0.1/localhost issued by
a CA the test generated (trustme). A refused connection is a start-up failure: the service logs it,
serves from memory and keeps answering.
"""

from __future__ import annotations

import logging
import time

import pytest
from _servers import RedisServer, TLSFiles
from _suite import exercise
from cachebolt import CacheConfig, CacheService

RIGHT, WRONG = 0, 1


def test_the_right_ca_works(tls_server: RedisServer, tls_files: tuple[TLSFiles, TLSFiles]) -> None:
    config = CacheConfig(
        enabled=True,
        url=f"rediss://localhost:{tls_server.port}/0",
        tls_ca_cert=str(tls_files[RIGHT].ca_cert),
    )
    with CacheService(config) as cache:
        assert cache.is_redis_available() is True
        exercise(cache, tag="tls")


def test_tls_through_host_and_flag(
    tls_server: RedisServer, tls_files: tuple[TLSFiles, TLSFiles]
) -> None:
    config = CacheConfig(
        enabled=True,
        host="127.0.0.1",
        port=tls_server.port,
        tls=True,
        tls_ca_cert=str(tls_files[RIGHT].ca_cert),
    )
    with CacheService(config) as cache:
        assert cache.is_redis_available() is True
        cache.set("k", [1])
        assert cache.get("k") == [1]


@pytest.mark.parametrize("case", ["wrong CA", "plaintext to the TLS port", "system CAs only"])
def test_refused_connections_fall_back_to_memory(
    case: str,
    tls_server: RedisServer,
    tls_files: tuple[TLSFiles, TLSFiles],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cachebolt")
    with tls_server.client() as admin:
        admin.flushall()
    port = tls_server.port
    config = {
        "wrong CA": CacheConfig(
            enabled=True,
            url=f"rediss://127.0.0.1:{port}/0",
            tls_ca_cert=str(tls_files[WRONG].ca_cert),
            connect_timeout_ms=1000,
        ),
        "plaintext to the TLS port": CacheConfig(
            enabled=True, url=f"redis://127.0.0.1:{port}/0", connect_timeout_ms=1000
        ),
        "system CAs only": CacheConfig(
            enabled=True, url=f"rediss://127.0.0.1:{port}/0", connect_timeout_ms=1000
        ),
    }[case]
    started = time.monotonic()
    with CacheService(config) as cache:
        assert cache.is_redis_available() is False
        cache.set("k", {"v": 1})
        assert cache.get("k") == {"v": 1}
        assert cache.acquire_lock("job", 1_000) is not None
        assert cache.stats()["backend"] == "memory"
    assert time.monotonic() - started < 5
    assert [r for r in caplog.records if r.levelno >= logging.ERROR], "the refusal is logged"
    with tls_server.client() as admin:
        assert admin.exists("k") == 0
