"""A loopback TCP fault proxy between a client and redis-server (threads, no dependencies).

It forwards bytes both ways. `drop_reply_to(marker)` arms one fault: the next request chunk that
contains `marker` (e.g. b"EVALSHA") is forwarded to the server, and the reply is then thrown
away and both connections closed, so the server has acted and the client never hears of it
(a "lost reply", which only a proxy can produce on loopback). `dropped` counts the faults that
fired. `reply_delay` holds every reply chunk that long: a slow server whose commands have already
run when their callers give up. Every socket is the proxy's own; `close()` stops it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType

__all__ = ["FaultProxy"]

_CHUNK = 65536


class _Pair:
    """One client connection and its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.drop_reply = False

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class FaultProxy:
    """Listens on 127.0.0.1:<free port> and forwards to `upstream_port`.

    Args:
        upstream_port: the redis-server port on 127.0.0.1.
        reply_delay: seconds each reply chunk waits before it is forwarded (a connection's
            replies queue behind each other).
    """

    def __init__(self, upstream_port: int, *, reply_delay: float = 0.0) -> None:
        self._upstream_port = upstream_port
        self._reply_delay = reply_delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self._pairs: set[_Pair] = set()
        self._closed = False
        self.dropped = 0
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    def drop_reply_to(self, marker: bytes) -> None:
        """Arm the fault for the next request that contains `marker`."""
        with self._lock:
            self._marker = marker

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream_port), 5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                if self._closed:
                    pair.close()
                    return
                self._pairs.add(pair)
            threading.Thread(target=self._requests, args=(pair,), daemon=True).start()
            threading.Thread(target=self._replies, args=(pair,), daemon=True).start()

    def _requests(self, pair: _Pair) -> None:
        try:
            while data := pair.client.recv(_CHUNK):
                with self._lock:
                    if self._marker is not None and self._marker in data:
                        self._marker = None
                        pair.drop_reply = True  # set before the server can answer
                pair.upstream.sendall(data)
        except OSError:
            pass
        self._end(pair)

    def _replies(self, pair: _Pair) -> None:
        try:
            while data := pair.upstream.recv(_CHUNK):
                if pair.drop_reply:
                    with self._lock:
                        self.dropped += 1
                    break  # the reply is lost; the client sees its connection closed
                if self._reply_delay:
                    time.sleep(self._reply_delay)
                pair.client.sendall(data)
        except OSError:
            pass
        self._end(pair)

    def _end(self, pair: _Pair) -> None:
        with self._lock:
            self._pairs.discard(pair)
        pair.close()

    def close(self) -> None:
        """Stop listening and close every connection (idempotent)."""
        with self._lock:
            self._closed = True
            pairs, self._pairs = list(self._pairs), set()
        self._listener.close()
        for pair in pairs:
            pair.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
