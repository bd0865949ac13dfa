"""The redis-py glue of both Redis backends: what differs between redis-py's asyncio and
blocking clients, as pairs named so one substitution of scripts/unasync.py maps them.

How commands, scripts, idle checks and the one resend work: docs/ARCHITECTURE.md, "Redis
connections".
"""

from __future__ import annotations

import contextlib
import inspect
import select
import socket
import struct
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.exceptions import NoScriptError

from . import _redis
from ._redact import get_logger
from .config import CacheConfig

__all__ = [
    "AsyncCallerClients",
    "AsyncScript",
    "CallerClients",
    "Generation",
    "Script",
    "async_run_command",
    "open_pubsub",
    "publish",
    "run_command",
    "sentinel_clients",
    "shared_client",
]

# A thread's connection unused for this long is polled (`can_read`) before its next command.
_IDLE_CHECK_SECONDS: Final = 0.01
_logger = get_logger()
_monotonic = time.monotonic


def _pack_py(args: tuple[Any, ...]) -> bytes:
    """One command in RESP (arguments `bytes`, `str` or `int`), as redis-py would send it."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        elif not isinstance(arg, bytes):
            raise TypeError(f"cannot send a {type(arg).__name__} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


_pack: Callable[[tuple[Any, ...]], bytes] = _pack_py
try:  # the C packer of redis[hiredis]: the same bytes
    from hiredis import pack_command

    _pack = pack_command
except ImportError:  # pragma: no cover - hiredis is an optional extra
    pass


def _run(conn: Any, command: tuple[Any, ...], load: tuple[Any, ...] | None = None) -> Any:
    """`command` on `conn`, its raw reply; on NOSCRIPT, `load` first and `command` once more.

    The connection disconnects itself on a timeout, a connection error or any exception while
    writing or reading; an error reply is read whole and raised, the connection stays usable.
    """
    try:
        _send(conn, [_pack(command)])
        return conn.read_response()
    except NoScriptError:
        if load is None:
            raise
        _run(conn, load)
        return _run(conn, command)


def _send(conn: Any, packed: Any, check_health: bool = False) -> None:
    """Write one command on `conn`; once more on a new connection if the write found it closed.

    A write that met a closed connection (`_closed_on_write`) did not deliver the whole
    command, so the server did not run it. A write that timed out, a failed connect, or
    anything after the write (a lost reply: the command may have run) is not retried.
    """
    was_connected = _was_connected(conn)
    try:
        conn.send_packed_command(packed, check_health=check_health)
    except redis.exceptions.ConnectionError as exc:
        if not (was_connected and _closed_on_write(exc)):
            raise
        conn.send_packed_command(packed, check_health=check_health)


async def _async_send(conn: Any, packed: Any, check_health: bool = False) -> None:
    """`_send` for redis.asyncio connections."""
    was_connected = _was_connected(conn)
    try:
        await conn.send_packed_command(packed, check_health=check_health)
    except redis.exceptions.ConnectionError as exc:
        if not (was_connected and _closed_on_write(exc)):
            raise
        await conn.send_packed_command(packed, check_health=check_health)


def _was_connected(conn: Any) -> bool:
    """Whether `conn` has a connection (False when that cannot be read)."""
    try:
        return _is_connected(conn)
    except Exception:
        return False


def _closed_on_write(exc: BaseException) -> bool:
    """Whether a failed write met a connection already closed (reset, broken pipe, or closed
    before the write): not a timeout, not a failed connect."""
    cause = exc.__cause__ or exc.__context__
    return cause is None or isinstance(cause, _CLOSED_ERRORS)


_CLOSED_ERRORS: Final = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


async def _async_run(
    pool: Any, command: tuple[Any, ...], load: tuple[Any, ...] | None = None
) -> Any:
    """`_run` on a connection lent by `pool` (the asyncio client's, as redis-py would)."""
    conn = await pool.get_connection(*_GET_CONNECTION_ARGS)
    try:
        try:
            await _async_send(conn, [_pack(command)])
            return await conn.read_response()
        except NoScriptError:
            if load is None:
                raise
            for step in (load, command):
                await _async_send(conn, [_pack(step)])
                reply = await conn.read_response()
            return reply
    finally:
        await pool.release(conn)


def _get_connection_args() -> tuple[str, ...]:
    """What redis.asyncio's `ConnectionPool.get_connection` is called with.

    Before redis-py 5.3 it takes a command name (unused); from 5.3 passing one is deprecated.
    """
    signature = inspect.signature(redis.asyncio.ConnectionPool.get_connection)
    name = signature.parameters.get("command_name")
    return ("EVALSHA",) if name is not None and name.default is name.empty else ()


_GET_CONNECTION_ARGS: Final = _get_connection_args()


class Script:
    """A registered Lua script, called as redis-py's `Script` is: `(keys=, args=, client=)`.

    On a standalone server's per-thread client the call is direct (see the module docstring);
    on any other client (the cluster client) it is redis-py's `Script`.
    """

    __slots__ = ("_load", "_script", "_sha")

    def __init__(self, script: Any) -> None:
        self._script = script
        self._sha = script.sha.encode()
        self._load = (b"SCRIPT", b"LOAD", script.script)

    def __call__(self, keys: list[Any], args: list[Any], client: Any) -> Any:
        conn = getattr(client, "connection", None)  # a single-connection client's own
        if conn is None:
            return self._script(keys=keys, args=args, client=client)
        return _run(conn, (b"EVALSHA", self._sha, len(keys), *keys, *args), self._load)


class AsyncScript(Script):
    """`Script` for redis.asyncio: direct on a standalone client's pooled connections."""

    __slots__ = ()

    async def __call__(self, keys: list[Any], args: list[Any], client: Any) -> Any:
        pool = getattr(client, "connection_pool", None)
        if pool is None or client.connection is not None:
            return await self._script(keys=keys, args=args, client=client)
        command = (b"EVALSHA", self._sha, len(keys), *keys, *args)
        return await _async_run(pool, command, self._load)


# SO_LINGER on, 0 s: closing the socket resets the connection and drops the bytes not yet sent.
_RESET_ON_CLOSE: Final = struct.pack("ii", 1, 0)


def _reset_on_close(conn: Any) -> None:
    """Connect hook of the blocking client's connections (standalone): reset on close.

    A command that timed out is given up: redis-py closes its connection. Without this, the
    kernel keeps retransmitting the unsent command after the close, so a server behind a
    firewall that dropped packets for a while would run it when the path heals - after the
    commands the service has sent since, on a new connection (a `set` going back in time).
    With it, closing discards the command and resets the connection.
    """
    _set_reset_on_close(conn)
    conn.on_connect()


def _set_reset_on_close(conn: Any) -> None:
    _set_linger(getattr(conn, "_sock", None))


async def _async_reset_on_close(conn: Any) -> None:
    """`_reset_on_close` for redis.asyncio connections."""
    transport = getattr(getattr(conn, "_writer", None), "transport", None)
    _set_linger(transport.get_extra_info("socket") if transport is not None else None)
    await conn.on_connect()


def _set_linger(sock: Any) -> None:
    """Reset-on-close for `sock`, the connection's socket as redis-py keeps it.

    redis-py has no public accessor for a connection's socket: it is read from the connection's
    private attributes (`_sock`, `_writer.transport`), present in every supported release. Where
    a release keeps it elsewhere, the connection works as redis-py made it (a close lingers as
    usual) and one WARNING says so.
    """
    if hasattr(sock, "setsockopt"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    else:
        _warn_once(
            "linger",
            "redis-py %s keeps its sockets where cachebolt cannot reach them: connections close "
            "without a reset, so a command given up after a timeout may still reach the server",
            redis.__version__,
        )


_warned: set[str] = set()


def _warn_once(topic: str, message: str, *args: Any) -> None:
    """Log `message` at WARNING the first time `topic` comes up in this process."""
    if topic not in _warned:
        _warned.add(topic)
        _logger.warning(message, *args)


def _hook_async_cluster(client: Any, generation: Generation) -> None:
    """Give redis.asyncio's `RedisCluster`, which takes no connect hook, `_async_reset_on_close`
    and connections checked before use (`_checked_class`).

    Its nodes make their connections with the keyword arguments they were built with: the
    startup nodes' own copies, and the client's dict, which the nodes it discovers copy. No
    connection exists yet (construction does no I/O).
    """
    # `nodes_manager.startup_nodes` (a dict by node name) is where every redis-py release from 5.0
    # keeps the startup nodes; 8.x also lists them as `client.startup_nodes`.
    nodes = client.nodes_manager.startup_nodes.values()
    for kwargs in (client.get_connection_kwargs(), *(n.connection_kwargs for n in nodes)):
        if "redis_connect_func" in kwargs:  # the client's own (read_from_replicas), not used here
            raise RuntimeError("the asyncio cluster client has a connect hook of its own")
        kwargs["redis_connect_func"] = _async_reset_on_close
    kwargs = client.get_connection_kwargs()
    kwargs["connection_class"] = _checked_class(kwargs["connection_class"], generation)
    for node in nodes:
        node.connection_class = _checked_class(node.connection_class, generation)


class _CheckedConnection:
    """Mixin of a redis.asyncio connection class: a connection the server closed is not used.

    redis.asyncio's own check at checkout differs by release: 5.x reads a closed socket as
    empty, 8.1 skips it when maintenance notifications are on (the default), the cluster
    client's nodes have none, and none sees a close the event loop has not processed yet. So
    before a command is written on a connection idle for over `_IDLE_CHECK_SECONDS`, the
    connection is asked (`_async_is_stale`), and a stale one is closed: the send connects anew.
    """

    _cachebolt_used = 0.0
    _generation: Generation

    async def connect(self) -> None:
        self._generation.check()
        await super().connect()  # type: ignore[misc]

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        self._generation.check()  # redis-py 8 connects through this
        await super().connect_check_health(*args, **kwargs)  # type: ignore[misc]

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        now = _monotonic()
        if _async_is_stale(self, poll=now - self._cachebolt_used > _IDLE_CHECK_SECONDS):
            await self.disconnect()  # type: ignore[attr-defined]
        self._cachebolt_used = now
        await super().send_packed_command(command, check_health)  # type: ignore[misc]

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        packed = self.pack_command(*args)  # type: ignore[attr-defined]
        await _async_send(self, packed, kwargs.get("check_health", True))


class _ResentConnection:
    """Mixin of a blocking redis-py connection class: one command goes through `_send`, and
    nothing connects once `close()` has closed the connection's generation.

    (The blocking connections are checked before use by `CallerClients.get()`.)
    """

    _generation: Generation

    def connect(self) -> None:
        self._generation.check()
        super().connect()  # type: ignore[misc]

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        self._generation.check()  # redis-py 8 connects through this
        super().connect_check_health(*args, **kwargs)  # type: ignore[misc]

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        packed = self.pack_command(*args)  # type: ignore[attr-defined]
        _send(self, packed, kwargs.get("check_health", True))


def _async_is_stale(conn: Any, *, poll: bool) -> bool:
    """Whether redis.asyncio connection `conn` was closed by the server (or has unread bytes).

    The event loop's view first (EOF or an error on the stream: no system call), then, when
    `poll`, the socket itself: readable while no command is pending means EOF, a reset or
    bytes nobody asked for. The stream and transport are read from redis-py's private
    `_reader` / `_writer` (present in every supported release); where they are missing the
    connection is used unchecked and one WARNING says so.
    """
    try:
        reader = conn._reader
        if reader is None:
            return False  # not connected: the send connects
        if reader.at_eof() or reader.exception() is not None:
            return True
        if not poll:
            return False
        sock = conn._writer.transport.get_extra_info("socket")
        return _readable(sock.fileno())
    except AttributeError:
        _warn_once(
            "stale",
            "redis-py %s keeps its streams where cachebolt cannot reach them: an asyncio "
            "connection the server closed is found only when a command fails on it",
            redis.__version__,
        )
        return False
    except Exception:  # a socket error: the connection is not worth keeping
        return True


def _readable(fd: int) -> bool:
    """Whether socket `fd` has something to read (or is closed), without waiting."""
    if fd < 0:
        return True
    if _poll is None:  # pragma: no cover - Windows has no poll()
        return bool(select.select([fd], [], [], 0)[0])
    poller = _poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


_poll = getattr(select, "poll", None)


def _checked_class(base: type, generation: Generation) -> type:
    """`base`, a redis-py connection class, with `_CheckedConnection` (asyncio) or
    `_ResentConnection` (blocking) in front, its connections of `generation`."""
    asyncio = issubclass(base, redis.asyncio.connection.AbstractConnection)
    mixin = _CheckedConnection if asyncio else _ResentConnection
    return type(base.__name__, (mixin, base), {"__module__": __name__, "_generation": generation})


class Generation:
    """The connections of one shared client. Once `close()` has closed them, none connects
    again: a command that got the client before `close()` and writes after it fails
    (`BackendUnavailable`) instead of opening a connection nobody would close."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False

    def check(self) -> None:
        """Raise redis-py's `ConnectionError` when closed.

        Raises:
            redis.exceptions.ConnectionError: the client was closed.
        """
        if self.closed:
            raise redis.exceptions.ConnectionError("the client was closed (close())")


def shared_client(
    config: CacheConfig,
    standalone: Any,
    cluster: Any,
    script_type: type[Script],
    generation: Generation,
) -> tuple[Any, dict[str, Any]]:
    """The shared client and its registered scripts (a cluster client connects here).

    Every connection resets on close (`_reset_on_close`); the standalone clients' connections
    and the asyncio cluster's are of `_checked_class` and of `generation`. With sentinels, the
    client is redis-py's `Sentinel.master_for`: each new connection asks the sentinels for the
    primary, and a connection to a primary that was demoted (READONLY) disconnects, so the next
    command finds the promoted one.
    """
    asyncio = script_type is AsyncScript
    if config.sentinel_master is not None:  # set with sentinels (CacheConfig checks)
        sentinel = (redis.asyncio.sentinel.Sentinel if asyncio else redis.sentinel.Sentinel)(
            config.sentinel_addresses,
            sentinel_kwargs=_redis.sentinel_kwargs(config, asyncio=asyncio),
        )
        kwargs = _redis.client_kwargs(config, asyncio=asyncio)
        del kwargs["host"], kwargs["port"]  # the sentinels' answer
        client = sentinel.master_for(
            config.sentinel_master,
            redis_class=standalone,
            redis_connect_func=_async_reset_on_close if asyncio else _reset_on_close,
            **kwargs,
        )
    elif config.cluster:
        kwargs = _redis.cluster_kwargs(config, asyncio=asyncio)
        if not asyncio:  # called after the cluster client's own hook
            kwargs["redis_connect_func"] = _set_reset_on_close
        client = cluster(**kwargs)
        if getattr(client, "cluster_error_retry_attempts", 0):
            # redis-py 5.x sends a failed command again (timeouts too) apart from `retry`.
            client.cluster_error_retry_attempts = 0
        if asyncio:
            _hook_async_cluster(client, generation)
        else:  # the nodes found now (public attributes); a node found later keeps redis-py's
            for node in client.get_nodes():
                pool = node.redis_connection.connection_pool
                pool.connection_class = _checked_class(pool.connection_class, generation)
    else:
        hook = _async_reset_on_close if asyncio else _reset_on_close
        client = standalone(
            **_redis.client_kwargs(config, asyncio=asyncio), redis_connect_func=hook
        )
        # A public attribute: the pool makes its connections with it.
        pool = client.connection_pool
        pool.connection_class = _checked_class(pool.connection_class, generation)
    scripts = {
        name: script_type(client.register_script(_redis.script_text(name)))
        for name in _redis.SCRIPT_NAMES
    }
    return client, scripts


def async_run_command(client: Any, *command: Any) -> Awaitable[Any]:
    """`command` on `client`: an awaitable of its raw reply (no redis-py response callback).

    Standalone: straight on a connection of the pool (docs/ARCHITECTURE.md, "Redis
    connections"). A plain function: no coroutine frame of its own on every command.
    """
    pool = getattr(client, "connection_pool", None)
    if pool is None or client.connection is not None:
        return client.execute_command(*command)  # type: ignore[no-any-return]
    return _async_run(pool, command)


def run_command(client: Any, *command: Any) -> Any:
    """`command` on `client`, its raw reply (no redis-py response callback).

    Standalone: straight on the thread's connection (see the module docstring).
    """
    conn = getattr(client, "connection", None)
    if conn is None:
        return client.execute_command(*command)
    return _run(conn, command)


class AsyncCallerClients:
    """The client of every asyncio task: the shared one.

    Its pool lends each concurrent command its own connection (one asyncio connection would
    serialise the tasks); its connections are checked before use (`_CheckedConnection`).
    """

    __slots__ = ()

    def __init__(self, config: CacheConfig) -> None:
        del config  # the same client for every setting

    def get(self, shared: Any) -> Any:
        """The calling task's client: `shared` (None when there is none yet)."""
        return shared

    def open(self, shared: Any) -> Any:
        """A client for the calling task: `shared`."""
        return shared

    def keep(self, client: Any, shared: Any) -> None:
        """Nothing to keep: every task uses `shared`."""

    def drop(self, client: Any, shared: Any) -> None:
        """Nothing to close: `client` is `shared`."""

    def reset(self) -> list[Any]:
        """No client of its own to close."""
        return []


class CallerClients:
    """The clients of the blocking backend's threads: one single-connection client per thread.

    Standalone only; cluster and Sentinel threads share one client (docs/ARCHITECTURE.md,
    "Redis connections").
    """

    def __init__(self, config: CacheConfig) -> None:
        self._own = not config.cluster and config.sentinels is None
        self._local = threading.local()
        self._threads: weakref.WeakSet[Any] = weakref.WeakSet()

    def get(self, shared: Any) -> Any:
        """The calling thread's client, None before its first command (or after `reset()`)."""
        local = self._local
        try:
            client = local.client
        except AttributeError:
            return None
        now = _monotonic()
        if now - local.used > _IDLE_CHECK_SECONDS:
            _drop_if_stale(local.connection)
        local.used = now
        return client

    def open(self, shared: Any) -> Any:
        """A client for the calling thread: its own on `shared`'s pool (connected now), or `shared`.

        Raises:
            redis.exceptions.RedisError: the thread's connection could not be made.
        """
        # Takes one connection of the shared pool (and connects it) for good.
        return shared.client() if self._own else shared

    def keep(self, client: Any, shared: Any) -> None:
        """Make `client` (from `open(shared)`) the calling thread's."""
        if client is not shared:
            self._threads.add(client)
        self._local.client = client
        # None for a shared client (its pools check their connections themselves).
        self._local.connection = client.connection if client is not shared else None
        self._local.used = _monotonic()

    def drop(self, client: Any, shared: Any) -> None:
        """Close `client` (from `open(shared)`), whose source was closed meanwhile."""
        if client is not shared:
            client.connection.disconnect()
            client.close()

    def reset(self) -> list[Any]:
        """Forget every thread's client; returns those to close (each gives back its connection)."""
        threads, self._threads = list(self._threads), weakref.WeakSet()
        self._local = threading.local()
        return threads


def sentinel_clients(client: Any) -> list[Any]:
    """The clients that ask the sentinels for the primary of `client` (none without sentinels):
    closing `client` leaves their connections open."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(manager.sentinels) if manager is not None else []


def _drop_if_stale(conn: Any) -> None:
    """Disconnect `conn` when the server closed it or left bytes on it (the pool's check)."""
    try:
        if conn is None or not _is_connected(conn):
            return
        stale = conn.can_read()
    except Exception:  # a socket error, or a redis-py release without what is read here
        stale = True
    if stale:
        with contextlib.suppress(Exception):
            conn.disconnect()  # the next command connects again


def _is_connected(conn: Any) -> bool:
    """Whether `conn` has a socket: `is_connected` from redis-py 8, the socket itself before."""
    connected = getattr(conn, "is_connected", None)
    if connected is None:
        return getattr(conn, "_sock", None) is not None
    return bool(connected)


def open_pubsub(client: Any) -> tuple[Any, Any]:
    """A redis-py `PubSub` for `client`, and the cluster node it is on once known (else None).

    redis.asyncio's `RedisCluster` has `pubsub()` from redis-py 8.0; before, the connection is a
    plain `PubSub` on one node of the cluster (a message PUBLISHed on any node reaches the
    subscribers of every node), made with that node's own connection settings.
    """
    if hasattr(client, "pubsub"):
        return client.pubsub(), None
    node = client.get_random_node()
    pool = redis.asyncio.ConnectionPool(
        connection_class=node.connection_class, **node.connection_kwargs
    )
    return redis.asyncio.client.PubSub(pool), node


def publish(client: Any, channel: str, data: bytes, node: Any) -> Any:
    """PUBLISH `data` on `channel` (on `node` of a cluster when given); awaitable when async.

    redis.asyncio's `RedisCluster` has no `publish()` before redis-py 8.0: the command is sent
    to `node` (or a random node), where every release routes it.
    """
    if node is None and hasattr(client, "publish"):
        return client.publish(channel, data)
    node = node or client.get_random_node()  # no node yet: only the asyncio cluster before 8.0
    return client.execute_command("PUBLISH", channel, data, target_nodes=node)
