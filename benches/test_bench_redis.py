"""cachebolt in Redis mode vs raw redis-py and `limits` on one private, local redis-server.

The session starts its own `redis-server` (`--save '' --appendonly no`) on a free loopback port
(tests/_servers.py, imported by path) and stops it by its pid. For each size `n` of the suite
the server is flushed and filled (pipelined, untimed) with `n` shuffled keys (conftest's
builders) holding ~200-byte orjson dicts; every leg loops over the first `BENCH_SLOW_OPS` of
them (one client, one connection, a `for` loop; ns per operation, loop included). The scenario
groups are the memory backend's (`get-hit`, `set`, ...), so the report shows the Redis legs next
to cachebolt memory; the goals compare them with raw redis-py and `limits` on Redis.

Legs (the parser is named in every leg: `[hiredis]` = `_HiredisParser`, `[py]` =
`_RESP3Parser`, the pure-Python parser of RESP3, which redis-py 8 speaks by default; redis-py picks
- `cachebolt redis [hiredis]` - `CacheService(CacheConfig(enabled=True, url=...))`.
- `cachebolt redis [py]` - the same service, its pool switched to the pure-Python parser.
- `redis-py 1conn [...]` - `Redis(single_connection_client=True)` doing the same command plus
  the same orjson encode/decode: the floor the <= 1.10x goal is measured against.
- `redis-py pooled [hiredis]` - the default pooled client; cachebolt's blocking client skips its
  per-command checkout (each thread holds its own connection of the pool).
- rate limits: `limits-redis` RedisStorage MovingWindow / FixedWindow (its own pooled client).
- locks: redis-py `Lock` (`client.lock(name, timeout=10)`, `acquire(blocking=False)`,
  `release()`) on a single-connection client.

Placement: run the client pinned (`taskset -c 1 ...`); the server is pinned to
`BENCH_REDIS_SERVER_CPU` (default: the client's CPU set, i.e. the same vCPU; every thread of
the server). Knob: `BENCH_REDIS_ROUNDS` (5).

Run: `taskset -c 1 .venv/bin/python -m pytest benches/test_bench_redis.py --benchmark-only
-p no:cacheprovider -o addopts="" -o timeout=0`
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from cachebolt import CacheConfig, CacheService
from conftest import SIZES, SLOW_OPS, Measure, build_keys, make_value, size_label
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from redis._parsers import _HiredisParser, _RESP2Parser, _RESP3Parser
from redis.connection import DEFAULT_RESP_VERSION
from redis.utils import HIREDIS_AVAILABLE


def _load_servers() -> Any:
    """tests/_servers.py by path (tests/ is not a package and has its own conftest)."""
    if "_servers" in sys.modules:
        return sys.modules["_servers"]
    path = Path(__file__).resolve().parent.parent / "tests" / "_servers.py"
    spec = importlib.util.spec_from_file_location("_servers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_servers"] = module  # dataclasses look the module up while it executes
    spec.loader.exec_module(module)
    return module


_servers = _load_servers()

ROUNDS = int(os.environ.get("BENCH_REDIS_ROUNDS", "5"))
TTL = 3600  # longer than a whole run: a key must not expire mid-module
TTL_MS = TTL * 1000
LIMIT = 1_000_000  # never reached: every hit is under the limit
LIMIT_WINDOW = 60
LOCK_TTL_MS = 10_000
# The pure-Python parser of the protocol redis-py speaks by default (RESP3 in redis-py 8).
PY_PARSER = _RESP3Parser if DEFAULT_RESP_VERSION == 3 else _RESP2Parser
PARSERS: dict[str, type] = {"py": PY_PARSER}
if HIREDIS_AVAILABLE:
    PARSERS["hiredis"] = _HiredisParser
MAIN = "hiredis" if HIREDIS_AVAILABLE else "py"
REF = f"cachebolt redis [{MAIN}]"

Item = tuple[str, dict[str, Any]]
Loop = Callable[[], object]

# --- the server ---------------------------------------------------------------------------------


def _pin_all_threads(pid: int, cpus: set[int]) -> None:
    """`taskset -a -p`: the main thread and every background thread of `pid`."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cpus)


class Bench:
    """The server, the data, and one client of every kind (created once per session)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.url = f"redis://127.0.0.1:{server.port}/0"
        client_cpus, server_cpus = os.sched_getaffinity(0), os.sched_getaffinity(server.pid)
        self.placement = (
            f"client CPUs {sorted(client_cpus)}, server (pid {server.pid}, all threads) "
            f"CPUs {sorted(server_cpus)}: "
            + ("same vCPU" if server_cpus == client_cpus else "cross vCPU")
        )
        self.admin = server.client()  # untimed checks only (its own connection)
        self.sentinel = server.client(single_connection_client=True)  # ends a MONITOR window
        self.sentinel.ping()
        self._closers: list[Callable[[], object]] = []
        self.services: dict[str, CacheService] = {}
        self.raw: dict[str, redis.Redis] = {}
        self.load(SLOW_OPS)

    def load(self, n: int) -> None:
        """Flush, then store `n` keys (untimed); the legs loop over the first SLOW_OPS."""
        self.n = n
        self.admin.flushall()
        all_keys = build_keys(n)
        dumps = orjson.dumps
        for start in range(0, n, 10_000):
            pipe = self.admin.pipeline(transaction=False)
            for k in all_keys[start : start + 10_000]:
                pipe.set(k, dumps(make_value(int(k.rsplit(":", 1)[1]))), px=TTL_MS)
            pipe.execute()
        self.keys = all_keys[:SLOW_OPS]
        self.items: list[Item] = [(k, make_value(int(k.rsplit(":", 1)[1]))) for k in self.keys]
        self.lock_keys = self.keys[: max(1, len(self.keys) // 2)]  # two round trips per op
        self.members = [k.rsplit(":", 1)[1] for k in self.keys]
        pipe = self.admin.pipeline(transaction=False)
        pipe.sadd("bench:set", *self.members)
        pipe.hset("bench:hash", mapping={m: f"v{m}" for m in self.members})
        pipe.execute()

    def service(self, parser: str) -> CacheService:
        if parser not in self.services:
            service = CacheService(CacheConfig(enabled=True, url=self.url))
            self._closers.append(service.close)
            # The calling thread's own single-connection client (cachebolt._redis_clients).
            backend: Any = service._fallback._primary  # type: ignore[union-attr]
            client = backend._clients.get()
            if type(client.connection._parser) is not PARSERS[parser]:
                # Bench-only: this thread's connection reconnects with the chosen parser.
                client.connection.disconnect()
                client.connection.set_parser(PARSERS[parser])
            assert service.connect()
            assert_on_redis(service)
            assert parser_of(client) == PARSERS[parser].__name__, parser_of(client)
            self.services[parser] = service
        return self.services[parser]

    def client(self, parser: str, *, single: bool = True) -> redis.Redis:
        name = f"{parser}{'' if single else '-pooled'}"
        if name not in self.raw:
            client = redis.Redis.from_url(
                self.url,
                single_connection_client=single,
                parser_class=PARSERS[parser],
                health_check_interval=0,
            )
            client.ping()
            assert parser_of(client) == PARSERS[parser].__name__
            self._closers.append(client.close)
            self.raw[name] = client
        return self.raw[name]

    def limits_storage(self, parser: str) -> RedisStorage:
        storage = RedisStorage(self.url, parser_class=PARSERS[parser])
        assert storage.check()
        assert parser_of(storage.storage) == PARSERS[parser].__name__
        self._closers.append(storage.storage.close)
        return storage

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()
        self.admin.close()
        self.sentinel.close()


def parser_of(client: redis.Redis) -> str:
    """The parser class of the one live connection `client` talks through (asserts: one)."""
    if client.connection is not None:
        conns = [client.connection]
    else:
        pool = client.connection_pool
        conns = [*pool._available_connections, *pool._in_use_connections]
    assert len(conns) == 1, f"{len(conns)} connections"
    return type(conns[0]._parser).__name__


def assert_on_redis(service: CacheService) -> None:
    """The service serves from Redis, and memory has served nothing."""
    assert service.is_redis_available()
    stats = service.stats()
    assert stats["backend"] == "redis", stats
    assert stats["redis_available"], stats
    assert stats["fallback_calls"] == 0, stats
    assert stats["fallback_locks"] == 0, stats
    assert stats["fallback_rate_limits"] == 0, stats


def round_trips(bench: Bench, op: Callable[[int], object], n: int = 20) -> str:
    """The commands `op` sends to the server, per call, as MONITOR sees them.

    Client commands are the round trips; commands run inside a Lua script (MONITOR marks their
    client as `lua`) are listed apart, in brackets.
    """
    op(-1)  # scripts loaded, connection open
    sentinel = f"bench-sentinel-{os.getpid()}-{id(op)}"
    sent: dict[str, int] = {}
    inner: dict[str, int] = {}
    with bench.admin.monitor() as monitor:
        for i in range(n):
            op(i)
        bench.sentinel.echo(sentinel)
        for event in monitor.listen():
            command = str(event["command"])
            if sentinel in command:
                break
            name = command.split(" ", 1)[0].upper()
            where = inner if event.get("client_type") == "lua" else sent
            where[name] = where.get(name, 0) + 1

    def fmt(counts: dict[str, int]) -> str:
        return " + ".join(f"{v / n:g} {k}" for k, v in sorted(counts.items()))

    return fmt(sent) + (f" [script: {fmt(inner)}]" if inner else "")


@pytest.fixture(scope="session")
def redis_session() -> Iterator[Bench]:
    client_cpus = os.sched_getaffinity(0)
    cpu_env = os.environ.get("BENCH_REDIS_SERVER_CPU")
    server_cpus = {int(c) for c in cpu_env.split(",")} if cpu_env else set(client_cpus)
    with tempfile.TemporaryDirectory(prefix="cachebolt-bench-redis-") as tmp:
        server = _servers.RedisServer(tmp)
        server.start()
        try:
            _pin_all_threads(server.pid, server_cpus)
            state = Bench(server)
            try:
                yield state
            finally:
                state.close()
        finally:
            server.stop()


@pytest.fixture(scope="module")
def bench(redis_session: Bench, n: int) -> Bench:
    """The server holding `n` keys for this module's size."""
    if redis_session.n != n:
        redis_session.load(n)
    return redis_session


# --- legs ---------------------------------------------------------------------------------------


def _legs(*kinds: str) -> list[str]:
    out = []
    for kind in kinds:
        out += [kind.format(p=p) for p in PARSERS] if "{p}" in kind else [kind]
    return out


def _parser(leg: str) -> str:
    return leg.rsplit("[", 1)[1].rstrip("]")


def _run(
    benchmark: Any,
    measure: Measure,
    bench: Bench,
    group: str,
    leg: str,
    loop: Loop,
    ops: int,
    service: CacheService | None = None,
) -> None:
    if service is not None:
        assert_on_redis(service)
    measure(loop, ops, rounds=ROUNDS, note=benchmark.extra_info.get("note", ""))
    if service is not None:
        assert_on_redis(service)


GET_LEGS = _legs("cachebolt redis [{p}]", "redis-py 1conn [{p}]", f"redis-py pooled [{MAIN}]")


@pytest.mark.benchmark(group="get-hit")
@pytest.mark.parametrize("leg", GET_LEGS)
def test_get_hit(leg: str, bench: Bench, benchmark: Any, measure: Measure) -> None:
    keys, parser = bench.keys, _parser(leg)
    service = None
    if leg.startswith("cachebolt"):
        service = bench.service(parser)
        get = service.get

        def loop() -> None:
            for k in keys:
                get(k)

        assert get(keys[0]) == bench.items[0][1]
    else:
        rget = bench.client(parser, single="1conn" in leg).get
        loads = orjson.loads

        def loop() -> None:
            for k in keys:
                b = rget(k)
                if b is not None:
                    loads(b)

    _run(benchmark, measure, bench, "get-hit", leg, loop, len(keys), service)


@pytest.mark.benchmark(group="set")
@pytest.mark.parametrize("leg", GET_LEGS)
def test_set(leg: str, bench: Bench, benchmark: Any, measure: Measure) -> None:
    """Overwrite with a TTL (SET k v PX 3600000), value orjson-encoded on every call."""
    items, parser = bench.items, _parser(leg)
    service = None
    if leg.startswith("cachebolt"):
        service = bench.service(parser)
        put = service.set

        def loop() -> None:
            for k, v in items:
                put(k, v, TTL)

    else:
        rset = bench.client(parser, single="1conn" in leg).set
        dumps = orjson.dumps

        def loop() -> None:
            for k, v in items:
                rset(k, dumps(v), px=TTL_MS)

    _run(benchmark, measure, bench, "set", leg, loop, len(items), service)
    assert orjson.loads(bench.admin.get(items[0][0])) == items[0][1]


RATE_LEGS = _legs(
    "cachebolt redis [{p}]", "limits-redis MovingWindow [{p}]", f"limits-redis FixedWindow [{MAIN}]"
)


@pytest.mark.benchmark(group="rate-limit-under")
@pytest.mark.parametrize("leg", RATE_LEGS)
def test_rate_limit_under(leg: str, bench: Bench, benchmark: Any, measure: Measure) -> None:
    """One hit per id per round, 10k ids, far under the limit (every hit allowed)."""
    ids, parser = [f"rl{RATE_LEGS.index(leg)}:{k}" for k in bench.keys], _parser(leg)
    service = None
    if leg.startswith("cachebolt"):
        service = bench.service(parser)
        check = service.check_rate_limit
        cost = round_trips(bench, lambda i: check(f"probe:{i}", LIMIT, LIMIT_WINDOW))
        benchmark.extra_info["note"] = f"per call: {cost}"
        print(f"\n{leg}: check_rate_limit costs {cost} per call")

        def loop() -> None:
            for k in ids:
                if not check(k, LIMIT, LIMIT_WINDOW):
                    raise AssertionError(k)

    else:
        storage = bench.limits_storage(parser)
        strategy = MovingWindowRateLimiter if "Moving" in leg else FixedWindowRateLimiter
        hit = strategy(storage).hit
        item = RateLimitItemPerMinute(LIMIT)
        cost = round_trips(bench, lambda i: hit(item, f"probe{RATE_LEGS.index(leg)}", str(i)))
        benchmark.extra_info["note"] = f"per call: {cost}"

        def loop() -> None:
            for k in ids:
                if not hit(item, k):
                    raise AssertionError(k)

    _run(benchmark, measure, bench, "rate-limit-under", leg, loop, len(ids), service)


LOCK_LEGS = _legs("cachebolt redis [{p}]", "redis-py Lock 1conn [{p}]")


def _cachebolt_lock_once(service: Any) -> Callable[[str], None]:
    """acquire (free lock) + release of one name on the service."""
    acquire, release = service.acquire_lock, service.release_lock

    def one(name: str) -> None:
        token = acquire(name, LOCK_TTL_MS)
        if token is None or not release(name, token):
            raise AssertionError(name)

    return one


def _redis_py_lock_once(client: Any) -> Callable[[str], None]:
    """The same with redis-py's `Lock` on `client`."""
    lock = client.lock

    def one(name: str) -> None:
        held = lock(name, timeout=10)
        if not held.acquire(blocking=False):
            raise AssertionError(name)
        held.release()

    return one


@pytest.mark.benchmark(group="lock-acquire-release")
@pytest.mark.parametrize("leg", LOCK_LEGS)
def test_lock(leg: str, bench: Bench, benchmark: Any, measure: Measure) -> None:
    """acquire (free lock) + release, one lock name per key."""
    names, parser = [f"lk{LOCK_LEGS.index(leg)}:{k}" for k in bench.lock_keys], _parser(leg)
    service = None
    if leg.startswith("cachebolt"):
        service = bench.service(parser)
        one = _cachebolt_lock_once(service)
    else:
        one = _redis_py_lock_once(bench.client(parser))

    cost = round_trips(bench, lambda i: one(f"probe{LOCK_LEGS.index(leg)}:{i}"))
    benchmark.extra_info["note"] = f"per acquire+release: {cost}"

    def loop() -> None:
        for name in names:
            one(name)

    _run(benchmark, measure, bench, "lock-acquire-release", leg, loop, len(names), service)


REF_LEGS = _legs(f"cachebolt redis [{MAIN}]", "redis-py 1conn [{p}]")


@pytest.mark.benchmark(group="incr")
@pytest.mark.parametrize("leg", REF_LEGS)
def test_incr(leg: str, bench: Bench, benchmark: Any, measure: Measure) -> None:
    keys, parser = [f"cnt:{k}" for k in bench.keys], _parser(leg)
    service = bench.service(parser) if leg.startswith("cachebolt") else None
    incr = service.incr if service is not None else bench.client(parser).incr

    def loop() -> None:
        for k in keys:
            incr(k)

    _run(benchmark, measure, bench, "incr", leg, loop, len(keys), service)


@pytest.mark.benchmark(group="sismember")
@pytest.mark.parametrize("leg", REF_LEGS)
def test_sismember(leg: str, bench: Bench, benchmark: Any, measure: Measure) -> None:
    members, parser = bench.members, _parser(leg)
    service = bench.service(parser) if leg.startswith("cachebolt") else None
    ismember = service.sismember if service is not None else bench.client(parser).sismember

    def loop() -> None:
        for m in members:
            ismember("bench:set", m)

    assert ismember("bench:set", members[0])
    _run(benchmark, measure, bench, "sismember", leg, loop, len(members), service)


@pytest.mark.benchmark(group="hget")
@pytest.mark.parametrize("leg", REF_LEGS)
def test_hget(leg: str, bench: Bench, benchmark: Any, measure: Measure) -> None:
    members, parser = bench.members, _parser(leg)
    service = bench.service(parser) if leg.startswith("cachebolt") else None
    hget = service.hget if service is not None else bench.client(parser).hget

    def loop() -> None:
        for m in members:
            hget("bench:hash", m)

    assert hget("bench:hash", members[0]) in (f"v{members[0]}", f"v{members[0]}".encode())
    _run(benchmark, measure, bench, "hget", leg, loop, len(members), service)
    if bench.n != max(SIZES) or leg != REF_LEGS[0]:
        return
    benchmark.extra_info["report_md"] = (
        f"Redis legs: keyspaces of {', '.join(size_label(s) for s in SIZES)} keys, "
        f"{len(bench.keys):,} ops per round, {ROUNDS} rounds; {bench.placement}; "
        f"redis-server {bench.admin.info('server')['redis_version']}, "
        f"redis-py {redis.__version__}, hiredis {'yes' if HIREDIS_AVAILABLE else 'no'}."
    )


# --- interleaved cross-check ---------------------------------------------------------------------


def _interleaved(rounds: int, n: int) -> None:  # pragma: no cover - manual
    """Every round runs each leg once, in turn; per-round ratio to cachebolt, then the median.

    Also the server-side cost of each rate-limit script (`INFO commandstats` usec_per_call of
    EVALSHA after `CONFIG RESETSTAT`), which the client sees as part of every round trip.
    """
    import statistics
    import time

    with tempfile.TemporaryDirectory(prefix="cachebolt-bench-redis-") as tmp:
        server = _servers.RedisServer(tmp).start()
        try:
            _pin_all_threads(server.pid, os.sched_getaffinity(0))
            state = Bench(server)
            keys, items = state.keys[:n], state.items[:n]
            svc, raw1, rawp = (
                state.service(MAIN),
                state.client(MAIN),
                state.client(MAIN, single=False),
            )
            moving = MovingWindowRateLimiter(state.limits_storage(MAIN)).hit
            item = RateLimitItemPerMinute(LIMIT)
            loads, dumps = orjson.loads, orjson.dumps

            def get_loop(get: Callable[[str], Any], decode: bool) -> Loop:
                def loop() -> None:
                    for k in keys:
                        b = get(k)
                        if decode and b is not None:
                            loads(b)

                return loop

            def set_loop(put: Callable[..., Any], raw: bool) -> Loop:
                def loop() -> None:
                    for k, v in items:
                        if raw:
                            put(k, dumps(v), px=TTL_MS)
                        else:
                            put(k, v, TTL)

                return loop

            def cb_rl() -> None:
                for k in keys:
                    svc.check_rate_limit(f"irl:{k}", LIMIT, LIMIT_WINDOW)

            def limits_rl() -> None:
                for k in keys:
                    moving(item, f"ilm:{k}")

            def lock_loop(one: Callable[[str], None], prefix: str) -> Loop:
                def loop() -> None:
                    for k in keys:
                        one(f"{prefix}:{k}")

                return loop

            groups: dict[str, dict[str, Loop]] = {
                "get-hit": {
                    REF: get_loop(svc.get, False),
                    f"redis-py 1conn [{MAIN}]": get_loop(raw1.get, True),
                    f"redis-py pooled [{MAIN}]": get_loop(rawp.get, True),
                },
                "set": {
                    REF: set_loop(svc.set, False),
                    f"redis-py 1conn [{MAIN}]": set_loop(raw1.set, True),
                    f"redis-py pooled [{MAIN}]": set_loop(rawp.set, True),
                },
                "rate-limit-under": {REF: cb_rl, f"limits MovingWindow [{MAIN}]": limits_rl},
                "lock-acquire-release": {
                    REF: lock_loop(_cachebolt_lock_once(svc), "ilk"),
                    f"redis-py Lock 1conn [{MAIN}]": lock_loop(_redis_py_lock_once(raw1), "ilr"),
                },
            }
            print(f"{state.placement}; {n} ops per round, {rounds} rounds")
            for group, legs in groups.items():
                times: dict[str, list[float]] = {leg: [] for leg in legs}
                for r in range(rounds + 1):
                    for leg, loop in legs.items():
                        t0 = time.perf_counter()
                        loop()
                        if r:  # round 0 warms up
                            times[leg].append((time.perf_counter() - t0) / n * 1e9)
                ref = times[REF]
                for leg, ts in times.items():
                    per_round = statistics.median(t / c for t, c in zip(ts, ref, strict=True))
                    print(
                        f"{group:17} {leg:28} median {statistics.median(ts):9,.0f} ns "
                        f"min {min(ts):9,.0f} ns  ratio/cachebolt: per-round median "
                        f"{per_round:.2f}x, of minima {min(ts) / min(ref):.2f}x"
                    )
            for name, loop in (("cachebolt sliding_log", cb_rl), ("limits moving", limits_rl)):
                state.admin.config_resetstat()
                loop()
                stats = state.admin.info("commandstats")["cmdstat_evalsha"]
                print(f"server-side EVALSHA {name}: {stats['usec_per_call']} us/call")
            assert_on_redis(svc)
            state.close()
        finally:
            server.stop()


if __name__ == "__main__":  # pragma: no cover
    import argparse

    parser = argparse.ArgumentParser(description=_interleaved.__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--keys", type=int, default=2000)
    args = parser.parse_args()
    _interleaved(args.rounds, args.keys)
