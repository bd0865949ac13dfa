"""A redis-server in a network namespace the test creates, and a firewall that black-holes it.

`NetNamespace` makes `ip netns add <name>` plus a veth pair (host side 10.x.y.1/30, namespace side
10.x.y.2/30), so the server is reached over a real link; `drop()` adds an iptables DROP rule for
the server's port inside the namespace (packets vanish: connects and commands hang until the
client's own timeout), `undrop()` removes it. `NetnsRedisServer` is a `RedisServer` started with
`ip netns exec` (which execs, so the pid is redis-server's own) and bound to the namespace address.

Everything is removed in `close()` (the namespace, its veth and its rules go with it). Creating a
namespace needs root and the `ip`/`iptables` commands (`make system-deps`); when that is
impossible `NetNamespace()` raises `NetnsUnavailable` with the reason, and the tests that need it
fail with that message (they do not skip: a fault they cannot inject is a hole in the suite).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

from _servers import RedisServer

__all__ = ["NetNamespace", "NetnsRedisServer", "NetnsUnavailable"]

IP = shutil.which("ip")
IPTABLES = shutil.which("iptables")


class NetnsUnavailable(RuntimeError):
    """The machine does not let the test create a network namespace or firewall rules."""


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise NetnsUnavailable(f"`{' '.join(args)}` failed: {done.stderr.strip()}")


class NetNamespace:
    """A network namespace with one veth link to the host; iptables DROP on demand."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root (the tests run as root in CI)")
        if IP is None or IPTABLES is None:
            raise NetnsUnavailable("`ip` or `iptables` is missing: run `make system-deps`")
        tag = secrets.token_hex(3)
        self.name = f"cbns{tag}"
        self._host_if = f"cbh{tag}"
        self._ns_if = f"cbn{tag}"
        octet2, octet3 = 200 + secrets.randbelow(50), secrets.randbelow(250)
        self.host_address = f"10.{octet2}.{octet3}.1"
        self.address = f"10.{octet2}.{octet3}.2"
        self._rules: list[list[str]] = []
        self._made = False
        try:
            _run(IP, "netns", "add", self.name)
            self._made = True
            _run(IP, "link", "add", self._host_if, "type", "veth", "peer", "name", self._ns_if)
            _run(IP, "link", "set", self._ns_if, "netns", self.name)
            _run(IP, "addr", "add", f"{self.host_address}/30", "dev", self._host_if)
            _run(IP, "link", "set", self._host_if, "up")
            self.exec_(IP, "addr", "add", f"{self.address}/30", "dev", self._ns_if)
            self.exec_(IP, "link", "set", self._ns_if, "up")
            self.exec_(IP, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def prefix(self) -> list[str]:
        """The command prefix that runs a program inside the namespace."""
        assert IP is not None
        return [IP, "netns", "exec", self.name]

    def exec_(self, *args: str) -> None:
        _run(*self.prefix(), *args)

    def drop(self, port: int) -> None:
        """Black-hole TCP to `port` inside the namespace (no RST, no answer: packets vanish)."""
        assert IPTABLES is not None
        rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
        self.exec_(IPTABLES, "-I", *rule)
        self._rules.append(rule)

    def undrop(self) -> None:
        """Remove every DROP rule added by `drop()`."""
        assert IPTABLES is not None
        while self._rules:
            self.exec_(IPTABLES, "-D", *self._rules.pop())

    def close(self) -> None:
        """Delete the namespace (its end of the veth, hence the pair, and its rules go too)."""
        if not self._made:
            return
        assert IP is not None
        self._rules.clear()
        subprocess.run([IP, "link", "del", self._host_if], capture_output=True, check=False)
        subprocess.run([IP, "netns", "del", self.name], capture_output=True, check=False)
        self._made = False

    def __enter__(self) -> NetNamespace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NetnsRedisServer(RedisServer):
    """A `RedisServer` living in `netns`, bound to its address, on port 6379 there."""

    def __init__(self, tmp_dir: Path | str, netns: NetNamespace, **kwargs: Any) -> None:
        self.netns = netns
        super().__init__(tmp_dir, port=6379, **kwargs)

    @property
    def host(self) -> str:
        return self.netns.address

    def _command(self) -> list[str]:
        command = super()._command()
        command[command.index("--bind") + 1] = self.netns.address
        return self.netns.prefix() + command
