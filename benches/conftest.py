"""Shared data builders, the per-op measuring helper and the end-of-session ratio report.

Method (the one of /work/shared/research/anchor-benchmarks.md, so the numbers compare):
every leg is a Python `for` loop over a key list built once per size (`n` distinct
`user:NNNNNNN` keys in shuffled order, ~200-byte 8-field dict values), one warm-up round, then a
fixed number of timed rounds, GC off while a round runs. A round is a whole loop; the report
divides by the number of operations in it, so every figure is ns per operation, loop included.

Every scenario runs at each size of `BENCH_SIZES` (default 10k, 100k and 1M keys; the session
fixture `n`, so pytest runs all the tests of one size together and builds the data once).
Populated stores are shared across a module with module-scoped fixtures.

Environment knobs: `BENCH_SIZES` ("10000,100000,1000000"), `BENCH_ROUNDS` (7; half of it,
at least 3, at 1M keys), `BENCH_SLOW_OPS` (5000: operations per round of the ~30-100 µs legs,
fakeredis and the Redis ones, over a prefix of the same shuffled keys).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import sys
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from cachebolt._bench.harness import bench_value
from cachebolt._bench.loops import RunBatch, each, pairs

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report

SIZES = tuple(int(s) for s in os.environ.get("BENCH_SIZES", "10000,100000,1000000").split(","))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
SLOW_OPS = int(os.environ.get("BENCH_SLOW_OPS", "5000"))
# Peers at 5-25 µs per call (limits, cashews, aiocache) loop over at most this many keys.
PEER_OPS = 100_000
SEED = 20261128
size_label = report.size_label

RESULTS_DIR = Path(__file__).resolve().parent.parent / ".benchmarks"


# The same values as `cachebolt bench`, so its figures and these compare.
make_value = bench_value


def rounds_for(n: int) -> int:
    """Timed rounds at size `n` (a round at 1M keys lasts 10x longer: fewer of them)."""
    return ROUNDS if n <= 100_000 else max(3, ROUNDS // 2)


def build_keys(n: int, prefix: str = "user:") -> list[str]:
    """`n` distinct keys `<prefix>NNNNNNN`, shuffled with a fixed seed."""
    keys = [f"{prefix}{i:07d}" for i in range(n)]
    random.Random(SEED).shuffle(keys)
    return keys


@pytest.fixture(scope="session", params=SIZES, ids=size_label)
def n(request: pytest.FixtureRequest) -> int:
    """The number of keys of this run of the scenario (10k, 100k, 1M)."""
    return int(request.param)


@pytest.fixture(scope="session")
def keys(n: int) -> list[str]:
    """The `n` shuffled keys every leg loops over."""
    return build_keys(n)


@pytest.fixture(scope="session")
def slow_keys(keys: list[str]) -> list[str]:
    """A prefix of `keys` for the legs too slow to loop over all of them per round."""
    return keys[:SLOW_OPS]


@pytest.fixture(scope="session")
def missing_keys(n: int) -> list[str]:
    """Keys that are never stored (same shape, other prefix)."""
    return build_keys(n, prefix="nope:")


@pytest.fixture(scope="session")
def values(keys: list[str]) -> list[dict[str, Any]]:
    """One value per key, aligned with `keys`."""
    return [make_value(int(k.rsplit(":", 1)[1])) for k in keys]


@pytest.fixture(scope="session")
def items(keys: list[str], values: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(key, value) pairs, aligned with `keys`."""
    return list(zip(keys, values, strict=True))


@pytest.fixture(scope="session")
def value() -> dict[str, Any]:
    """A single representative value (about 200 bytes as orjson)."""
    return make_value(123456)


@pytest.fixture(autouse=True)
def _gc_off() -> Iterator[None]:
    # As `timeit` and the anchors: a collection landing inside one round is noise, not cost.
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


Measure = Callable[..., float]
_NOT_LEG = {"n", "kind", "contender", "share", "scenario"}


def over(run: RunBatch, batch: list[Any]) -> Callable[[], None]:
    """One round of a batch loop (`cachebolt._bench.loops`) over a fixed batch."""
    return partial(run, batch)


def loop1(fn: Callable[[Any], object], args: list[Any]) -> Callable[[], None]:
    """`for a in args: fn(a)` - the loop shape every one-argument leg shares."""
    return over(each(fn), args)


def loop2(fn: Callable[[Any, Any], object], pairs_: list[tuple[Any, Any]]) -> Callable[[], None]:
    """`for a, b in pairs_: fn(a, b)`."""
    return over(pairs(fn), pairs_)


@pytest.fixture
def measure(benchmark: Any, request: pytest.FixtureRequest) -> Measure:
    """Time `loop()` (one round = `ops` operations) and record ns/op in `extra_info`.

    Returns a function `measure(loop, ops, *, rounds=None, setup=None, reference=None, leg=None,
    note="")` that returns the median ns per operation. The leg's name defaults to the test's
    parameter (other than the size `n`); the reference leg of every scenario is "cachebolt"
    (the memory backend, blocking service), the one the report's ratios are computed against.
    """
    params = dict((getattr(request.node, "callspec", None) and request.node.callspec.params) or {})
    size = params.get("n")
    default_leg = "-".join(str(v) for k, v in params.items() if k not in _NOT_LEG) or (
        request.node.originalname.removeprefix("test_")
    )

    def run(
        loop: Callable[..., object],
        ops: int,
        *,
        rounds: int | None = None,
        setup: Callable[[], object] | None = None,
        reference: bool | None = None,
        leg: str | None = None,
        note: str = "",
    ) -> float:
        name = leg or default_leg
        info = benchmark.extra_info
        info.update(scenario=benchmark.group, size=size, leg=name, ops=ops)
        info["reference"] = name == report.REFERENCE if reference is None else reference
        if note:
            info["note"] = note
        if rounds is None:
            rounds = rounds_for(size) if size else ROUNDS
        if setup is None:
            benchmark.pedantic(loop, rounds=rounds, iterations=1, warmup_rounds=1)
        else:
            # pedantic's setup runs untimed before every round; it may return (args, kwargs).
            benchmark.pedantic(loop, setup=setup, rounds=rounds, warmup_rounds=1)
        ns = float(benchmark.stats.stats.median) / ops * 1e9
        info["ns_per_op"] = round(ns, 1)
        info["min_ns_per_op"] = round(float(benchmark.stats.stats.min) / ops * 1e9, 1)
        return ns

    return run


def record_once(benchmark: Any, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `fn` once under the benchmark fixture (a measurement of bytes, ratios or latencies,
    not a timed loop) so `--benchmark-only` keeps it; its dict goes to `extra_info`."""
    result: dict[str, Any] = benchmark.pedantic(fn, rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    return result


# --- the ratio report --------------------------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    benchmarks = list(getattr(session, "benchmarks", None) or [])
    if not benchmarks:
        return
    dicts = [b.as_dict(include_data=False, stats=False) for b in benchmarks if not b.has_error]
    header = (
        f"# cachebolt benchmarks\n\nsizes={','.join(size_label(s) for s in SIZES)} "
        f"rounds={ROUNDS} slow_ops={SLOW_OPS}\n"
    )
    text = report.render(report.infos(dicts), header)
    terminalreporter.write_sep("=", "cachebolt ratio report")
    terminalreporter.write_line(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / "results-latest.md"
    out.write_text(text + "\n", encoding="utf-8")
    terminalreporter.write_line(f"written to {out}")


def orjson_size(value: object) -> int:
    """Size in bytes of `value` encoded with orjson."""
    return len(orjson.dumps(value))


# --- asyncio legs --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def aio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for every asyncio leg of the session."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


def aloop1(
    event_loop: asyncio.AbstractEventLoop,
    fn: Callable[[Any], Awaitable[object]],
    args: list[Any],
) -> Callable[[], None]:
    """One round = one coroutine awaiting `fn(a)` for every `a`, run to completion."""

    async def run() -> None:
        for a in args:
            await fn(a)

    return lambda: event_loop.run_until_complete(run())


def aloop2(
    event_loop: asyncio.AbstractEventLoop,
    fn: Callable[[Any, Any], Awaitable[object]],
    pairs: list[tuple[Any, Any]],
) -> Callable[[], None]:
    """One round = one coroutine awaiting `fn(a, b)` for every pair."""

    async def run() -> None:
        for a, b in pairs:
            await fn(a, b)

    return lambda: event_loop.run_until_complete(run())


def new_async_service(event_loop: asyncio.AbstractEventLoop) -> Any:
    """An `AsyncCacheService` on the memory backend, built on `event_loop` (close it there)."""
    from cachebolt import AsyncCacheService

    async def build() -> Any:
        return AsyncCacheService()

    return event_loop.run_until_complete(build())
