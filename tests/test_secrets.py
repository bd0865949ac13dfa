"""No secret in any output, and no raw control character in any log record.

Part one: a table of URL and password shapes, each driven through every output path (ConfigError
from `CacheConfig` and from the environment, `repr`/`str`, the backend's `BackendUnavailable`
and log records at every level when the server is closed, `cachebolt bench` in a subprocess).
The password may appear in none of them, nor any 4-character piece of it.

Part two: keys, channels and client names written into log lines with newlines, escapes and
Unicode line separators come out escaped, on every cachebolt logger.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _servers import RedisServer
from _web import open_harness
from cachebolt import CacheConfig, CacheService, ConfigError, LockNotAcquired
from cachebolt._redact import escape_controls, get_logger, mask_secrets
from cachebolt.exceptions import BackendUnavailable
from cachebolt.fastapi import admin_router
from conftest import ACL_USER

CLOSED = "127.0.0.1:1"  # nothing listens on port 1: every connection is refused at once
PW = "Kq7vWz4rTn"


@dataclass(frozen=True)
class Shape:
    """How a password reaches the configuration."""

    name: str
    secret: str  # the password as its owner knows it
    url: str | None = None  # the URL as written, the password in it raw or percent-encoded
    separate: bool = False  # the password is also given as VALKEY_PASSWORD / password=

    def forms(self) -> list[str]:
        """The secret and every way it is written in this shape."""
        return [self.secret, quote(self.secret, safe=""), quote(self.secret)]


SHAPES = [
    Shape("plain", PW, f"redis://alice:{PW}@{CLOSED}/0"),
    Shape("raw '/' in password", "Kq7v/Wz4rTn", f"redis://alice:Kq7v/Wz4rTn@{CLOSED}/0"),
    Shape("raw '?' in password", "Kq7v?Wz4rTn", f"redis://alice:Kq7v?Wz4rTn@{CLOSED}/0"),
    Shape("raw '#' in password", "Kq7v#Wz4rTn", f"redis://alice:Kq7v#Wz4rTn@{CLOSED}/0"),
    Shape("raw '@' in password", "Kq7v@Wz4rTn", f"redis://alice:Kq7v@Wz4rTn@{CLOSED}/0"),
    Shape("raw ' ' in password", "Kq7v Wz4rTn", f"redis://alice:Kq7v Wz4rTn@{CLOSED}/0"),
    Shape("%-encoded password", "Kq7v/Wz4r@Tn", f"redis://alice:Kq7v%2FWz4r%40Tn@{CLOSED}/0"),
    Shape("one slash after the scheme", PW, f"redis:/alice:{PW}@{CLOSED}/0"),
    Shape("no slash after the scheme", PW, f"redis:alice:{PW}@{CLOSED}/0"),
    Shape("upper-case scheme", PW, f"REDIS://alice:{PW}@{CLOSED}/0"),
    Shape("rediss://", PW, f"rediss://alice:{PW}@{CLOSED}/0"),
    Shape("unix:// with user info", PW, f"unix://:{PW}@/tmp/cachebolt-none.sock"),
    Shape("unix:// ?password=", PW, f"unix:///tmp/cachebolt-none.sock?password={PW}"),
    Shape("password only", PW, f"redis://:{PW}@{CLOSED}/0"),
    Shape("username only + VALKEY_PASSWORD", PW, f"redis://alice@{CLOSED}/0", separate=True),
    Shape("VALKEY_PASSWORD only", "Kq7v/Wz?4r#Tn@", separate=True),
]
PATHS = ("ConfigError", "ConfigError (env)", "repr/str", "BackendUnavailable", "logs", "CLI")


def leaks(text: str, shape: Shape) -> list[str]:
    """Every piece of the secret (4 characters or more) that `text` shows."""
    pieces = {p for form in shape.forms() for p in [form, *re.split(r"[/?#@%: ]", form)]}
    return sorted({p[i : i + 4] for p in pieces for i in range(len(p) - 3) if p[i : i + 4] in text})


def _broken(url: str) -> str:
    # A database path that is not a number: every shape then raises a ConfigError.
    return url[: -len("/0")] + "/x" if url.endswith("/0") else url


def _format(exc: BaseException) -> str:
    """The exception as a traceback prints it, causes included."""
    import traceback

    return "".join(traceback.format_exception(exc))


def config_error(shape: Shape) -> str:
    kwargs: dict[str, Any] = {"password": shape.secret} if shape.separate else {}
    if shape.url is None:
        kwargs.update(host="127.0.0.1", port=0)  # out of range
    else:
        kwargs["url"] = _broken(shape.url)
    with pytest.raises(ConfigError) as caught:
        CacheConfig(enabled=True, **kwargs)
    return _format(caught.value)


def env_error(shape: Shape) -> str:
    env = {"VALKEY_ENABLED": "true", **_env(shape)}
    if shape.url is None:
        env["VALKEY_PORT"] = "0"
    else:
        env["VALKEY_URL"] = _broken(shape.url)
    with pytest.raises(ConfigError) as caught:
        CacheConfig.from_env(env)
    return _format(caught.value)


def _env(shape: Shape) -> dict[str, str]:
    env = {"VALKEY_PASSWORD": shape.secret} if shape.separate else {}
    if shape.url is not None:
        env["VALKEY_URL"] = shape.url
    else:
        env.update(VALKEY_HOST="127.0.0.1", VALKEY_PORT="1")
    return env


def built(shape: Shape) -> CacheConfig | None:
    """The configuration of the shape, or None when it is refused (a ConfigError)."""
    try:
        return CacheConfig.from_env({"VALKEY_ENABLED": "true", **_env(shape)})
    except ConfigError:
        return None


def backend_error(config: CacheConfig) -> str:
    """The Redis backend's error on a closed port, and the service's log while it falls back."""
    fast = dataclasses.replace(config, connect_timeout_ms=200)
    with CacheService(fast) as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1  # served by memory
        with pytest.raises(BackendUnavailable) as caught:
            cache._fallback._primary.ping()  # type: ignore[union-attr]
        return _format(caught.value)


def cli_output(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VALKEY_")}
    command = [sys.executable, "-m", "cachebolt.cli", "bench", "--backend", "redis", *argv]
    command += ["--keys", "5", "--quick"]
    return subprocess.Popen(
        command,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def cli_outputs(shape: Shape) -> str:
    """`cachebolt bench` with the shape from --url and from the environment (run together)."""
    runs = [cli_output([], _env(shape))]
    if shape.url is not None and not shape.separate:
        runs.append(cli_output(["--url", shape.url], {}))
    texts = []
    for run in runs:
        out, _ = run.communicate(timeout=60)
        assert run.returncode != 0, out
        texts.append(out)
    return "\n".join(texts)


def outputs(shape: Shape, log_text: Callable[[], str]) -> dict[str, str | None]:
    """The text of every output path (None: the path does not exist, the config is refused)."""
    config = built(shape)
    texts: dict[str, str | None] = {
        "ConfigError": config_error(shape),
        "ConfigError (env)": env_error(shape),
        "repr/str": None if config is None else repr(config) + str(config),
        "BackendUnavailable": None if config is None else backend_error(config),
    }
    texts["logs"] = log_text()
    texts["CLI"] = cli_outputs(shape)
    return texts


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_no_secret_in_any_output(shape: Shape, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every level, every logger

    def log_text() -> str:
        return caplog.text + "\n".join(r.getMessage() for r in caplog.records)

    texts = outputs(shape, log_text)
    for path, text in texts.items():
        if text is not None:
            assert leaks(text, shape) == [], f"{path} shows the password: {text}"
    config = built(shape)
    if config is not None and config.password is not None:
        assert "password='***'" in repr(config)


def test_raw_delimiters_in_the_password_are_refused_clearly() -> None:
    for char in "/?#":
        with pytest.raises(ConfigError, match="percent-encode '/', '\\?', '#' and '@'"):
            CacheConfig(url=f"redis://alice:Kq7v{char}Wz4rTn@h:6379/0")
    assert CacheConfig(url="redis://alice:Kq7v%2FWz4rTn@h/0").password == "Kq7v/Wz4rTn"


def test_wrong_password_on_a_real_server_names_only_the_user(
    acl_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shape = Shape("wrong password", "Wr0ngPa55/Zq9x")
    config = CacheConfig(
        enabled=True,
        host=acl_server.host,
        port=acl_server.port,
        username=ACL_USER,
        password=shape.secret,
    )
    with CacheService(config) as cache:
        assert cache.is_redis_available() is False
        with pytest.raises(BackendUnavailable) as caught:
            cache._fallback._primary.ping()  # type: ignore[union-attr]
    text = _format(caught.value) + caplog.text
    assert leaks(text, shape) == []
    assert "invalid username-password pair" in text or "WRONGPASS" in text
    url = f"redis://{ACL_USER}:{quote(shape.secret, safe='')}@{acl_server.host}:{acl_server.port}"
    run = cli_output(["--url", url], {})
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 1 and leaks(out, shape) == []
    assert f"redis://{ACL_USER}:***@" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://alice:pw@h:1/0", "redis://alice:***@h:1/0"),
        ("at redis://alice:p@w@h and x@y", "at redis://alice:***@h and x@y"),
        ("redis://alice:p w@h", "redis://alice:***@h"),
        ("redis:/alice:pw@h", "redis:/alice:***@h"),
        ("valkeys:alice:pw@h", "valkeys:alice:***@h"),
        ("HTTP://u:pw@h", "HTTP://u:***@h"),
        ("unix:///s.sock?db=1&password=pw&x=1", "unix:///s.sock?db=1&password=***&x=1"),
        ("redis://alice@h:1/0", "redis://alice@h:1/0"),  # a user name is no secret
        ("key user:42:x@y", "key user:42:x@y"),  # a key, not a URL
    ],
)
def test_mask_secrets_hides_every_url_password(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected
    assert mask_secrets(expected) == expected  # masking twice changes nothing


def test_mask_secrets_hides_a_known_secret_in_every_form() -> None:
    text = "pw=a/b c, encoded a%2Fb%20c or a/b%20c"
    assert mask_secrets(text, "a/b c") == "pw=***, encoded *** or ***"
    assert mask_secrets(text, None, "") == text


# --- log records --------------------------------------------------------------------------------

FORGED = "WARNING cachebolt admin API: 10.0.0.1 deleted 0 keys"
# Every way to end or rewrite a line: LF, CR, VT, FF, NEL, ESC, the Unicode separators.
BREAKS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\x1b[2K\r", "\u2028", "\u2029"]
_FORMAT = logging.Formatter("%(levelname)s %(name)s %(message)s")


def assert_clean(records: list[logging.LogRecord], must_show: str) -> None:
    """Every record, formatted, stays on its lines and shows no forged line; one names the key."""
    shown = []
    for record in records:
        text = _FORMAT.format(record)
        lines = text.split("\n")
        assert not any(re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", line) for line in lines)
        assert not any(line.startswith(FORGED) for line in text.splitlines()), text
        if record.exc_info is None:
            assert len(lines) == 1, text
        shown.append(text)
    assert any(must_show in text for text in shown), shown


@pytest.mark.parametrize("brk", BREAKS, ids=[repr(b) for b in BREAKS])
def test_escape_controls(brk: str) -> None:
    escaped = escape_controls(f"a{brk}{FORGED}")
    assert escaped.isprintable() and FORGED in escaped and not escaped.startswith(FORGED)
    assert escape_controls("é ü 鍵 \\n") == "é ü 鍵 \\n"  # printable text is left alone


def test_lock_key_in_the_log_is_escaped(cache: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cachebolt")
    key = "order:1" + "".join(f"{brk}{FORGED}" for brk in BREAKS)
    assert cache.acquire_lock(key, 60_000) is not None
    with pytest.raises(LockNotAcquired), cache.lock(key, 60_000):
        pass
    assert_clean(caplog.records, "failed to acquire lock: order:1\\nWARNING")


def test_rate_limit_key_in_the_log_is_escaped(cache: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cachebolt")
    key = f"login:ip\r\n{FORGED}\u2028{FORGED}"
    assert cache.hit_rate_limit(key, 1, 60).allowed
    assert not cache.hit_rate_limit(key, 1, 60).allowed
    assert not cache.check_rate_limit(key, 1, 60)
    assert_clean(caplog.records, "rate limit exceeded: login:ip\\r\\nWARNING")


@pytest.fixture(params=["sync", "async"])
def admin_app(
    request: pytest.FixtureRequest, store: Any, service_config: CacheConfig | None
) -> Iterator[Any]:
    with open_harness(request.param, store, service_config) as made:
        made.app.include_router(admin_router(made.service, token="t" * 32))
        yield made


def test_admin_audit_line_is_escaped(admin_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cachebolt")
    # A transport that names its peer (a Unix socket, a test client) is shown by that name.
    client = admin_app.start(client=(f"s\n{FORGED}", 1))
    assert client.delete("/cache/keys", params={"pattern": f"x\n{FORGED}"}).status_code == 401
    good = {"Authorization": "Bearer " + "t" * 32}
    response = client.delete("/cache/keys", params={"pattern": f"x\n{FORGED}"}, headers=good)
    assert response.status_code == 200
    assert client.post("/cache/clear-locks", headers=good).status_code == 200
    records = [r for r in caplog.records if r.name == "cachebolt.fastapi"]
    assert len(records) == 3
    assert_clean(records, "admin API: s\\nWARNING")


def test_pubsub_channel_in_a_failing_callback_is_escaped(
    cache: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="cachebolt")
    channel = f"news\n{FORGED}"
    done = threading.Event()

    def failing(message: Any) -> None:
        # The exception's text carries the channel and the message: the traceback shows both.
        raise ValueError(f"cannot handle {message} on {channel}\u2028{FORGED}")

    cache.subscribe(channel, failing)
    cache.subscribe(channel, lambda message: done.set())
    cache.publish(channel, f"m\r\n{FORGED}")
    assert done.wait(10)
    cache.close()  # delivery to every callback is over: the failure is logged
    assert_clean(caplog.records, "cannot handle m\\r\\nWARNING")


def test_every_cachebolt_logger_cleans_its_records(caplog: pytest.LogCaptureFixture) -> None:
    import cachebolt.cli
    import cachebolt.decorators
    import cachebolt.fastapi

    names = [n for n in logging.Logger.manager.loggerDict if n.split(".")[0] == "cachebolt"]
    assert "cachebolt" in names and "cachebolt.fastapi" in names
    for name in names:
        logger = logging.getLogger(name)
        assert [type(f).__name__ for f in logger.filters] == ["_CleanRecords"], name
    # A module that took its logger from logging.getLogger would log uncleaned records.
    package = Path(cachebolt.__file__).parent
    for source in package.rglob("*.py"):
        if source.name != "_redact.py":
            assert "getLogger(" not in source.read_text(encoding="utf-8"), source
    caplog.set_level(logging.DEBUG, logger="cachebolt")
    get_logger("anything").info("%s %r %d %.1f", "a\nb", "c\nd", 3, 1.25)
    get_logger().info("%(key)s at %(url)s", {"key": "k\n", "url": "redis://u:pw@h"})
    assert [r.getMessage() for r in caplog.records] == [
        "a\\nb 'c\\nd' 3 1.2",
        "k\\n at redis://u:***@h",
    ]
