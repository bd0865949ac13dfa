"""Shared data builders, the per-op measuring helper and the end-of-session ratio report.

Method (the one of /work/shared/research/anchor-benchmarks.md, so the numbers compare):
every leg is a Python `for` loop over a key list built once per session (100k distinct
`user:NNNNNN` keys in shuffled order, ~200-byte 8-field dict values), one warm-up round, then a
fixed number of timed rounds, GC off while a round runs. A round is a whole loop; the report
divides by the number of operations in it, so every figure is ns per operation, loop included.

Environment knobs for a quick smoke run: `BENCH_KEYS` (default 100000), `BENCH_ROUNDS` (7).
"""

from __future__ import annotations

import gc
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cachebolt.cli import bench_value

N_KEYS = int(os.environ.get("BENCH_KEYS", "100000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
# Peers at ~30 µs/op (fakeredis) run over a prefix of the same key list, fewer rounds.
N_SLOW = max(1, N_KEYS // 10)
SLOW_ROUNDS = max(3, ROUNDS - 2)
SEED = 20261128

RESULTS_DIR = Path(__file__).resolve().parent.parent / ".benchmarks"


# The same values as `cachebolt bench`, so its figures and these compare.
make_value = bench_value


def build_keys(n: int, prefix: str = "user:") -> list[str]:
    """`n` distinct keys `<prefix>NNNNNN`, shuffled with a fixed seed."""
    keys = [f"{prefix}{i:06d}" for i in range(n)]
    random.Random(SEED).shuffle(keys)
    return keys


@pytest.fixture(scope="session")
def keys() -> list[str]:
    """The 100k shuffled keys every leg loops over."""
    return build_keys(N_KEYS)


@pytest.fixture(scope="session")
def slow_keys(keys: list[str]) -> list[str]:
    """A prefix of `keys` for peers too slow to loop 100k times per round."""
    return keys[:N_SLOW]


@pytest.fixture(scope="session")
def missing_keys() -> list[str]:
    """Keys that are never stored (same shape, other prefix)."""
    return build_keys(N_KEYS, prefix="nope:")


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


@pytest.fixture
def measure(benchmark: Any) -> Measure:
    """Time `loop()` (one round = `ops` operations) and record ns/op in `extra_info`.

    Returns a function `measure(loop, ops, *, rounds=ROUNDS, setup=None, reference=False,
    note="")` that returns the median ns per operation. `reference=True` marks the cachebolt leg
    the ratios of the group are computed against.
    """

    def run(
        loop: Callable[[], object],
        ops: int,
        *,
        rounds: int = ROUNDS,
        setup: Callable[[], object] | None = None,
        reference: bool = False,
        note: str = "",
    ) -> float:
        benchmark.extra_info["ops"] = ops
        benchmark.extra_info["reference"] = reference
        if note:
            benchmark.extra_info["note"] = note
        if setup is None:
            benchmark.pedantic(loop, rounds=rounds, iterations=1, warmup_rounds=1)
        else:
            # pedantic's setup runs untimed before every round; it may return (args, kwargs).
            benchmark.pedantic(loop, setup=setup, rounds=rounds, warmup_rounds=1)
        ns = float(benchmark.stats.stats.median) / ops * 1e9
        benchmark.extra_info["ns_per_op"] = round(ns, 1)
        benchmark.extra_info["min_ns_per_op"] = round(
            float(benchmark.stats.stats.min) / ops * 1e9, 1
        )
        return ns

    return run


# --- the ratio report --------------------------------------------------------------------------


def _leg_name(bench: Any) -> str:
    param = bench.param
    return str(param) if param is not None else bench.name.removeprefix("test_")


def _rows(benchmarks: list[Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for bench in benchmarks:
        info = bench.extra_info
        if "ns_per_op" not in info or bench.has_error:
            continue
        groups.setdefault(bench.group or bench.name, []).append((_leg_name(bench), info))
    return groups


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def ratio_table(benchmarks: list[Any]) -> str:
    """Markdown "scenario | leg | ns/op | ratio to cachebolt" over every measured leg.

    The ratio is leg time / cachebolt time: above 1 means cachebolt is faster by that factor.
    """
    lines = [
        "| scenario | leg | ns/op (median) | ns/op (min) | ratio to cachebolt |",
        "|---|---|---:|---:|---:|",
    ]
    for group, legs in sorted(_rows(benchmarks).items()):
        ref = next((info["ns_per_op"] for _, info in legs if info.get("reference")), None)
        for leg, info in sorted(legs, key=lambda li: li[1]["ns_per_op"]):
            ns = info["ns_per_op"]
            ratio = f"{ns / ref:.2f}x" if ref else "-"
            name = f"**{leg}**" if info.get("reference") else leg
            if info.get("note"):
                name += f" ({info['note']})"
            lines.append(
                f"| {group} | {name} | {_fmt(ns)} | {_fmt(info['min_ns_per_op'])} | {ratio} |"
            )
    return "\n".join(lines)


def _ns(groups: dict[str, list[tuple[str, dict[str, Any]]]], group: str, leg: str) -> float | None:
    for name, info in groups.get(group, []):
        if name == leg:
            return float(info["ns_per_op"])
    return None


def goals_table(benchmarks: list[Any]) -> str:
    """Markdown table of the project's performance goals, checked against this run's medians."""
    groups = _rows(benchmarks)
    lines = ["| goal | measured | met |", "|---|---|---|"]

    def add(goal: str, measured: str, met: bool | None) -> None:
        verdict = "-" if met is None else ("yes" if met else "NO")
        lines.append(f"| {goal} | {measured} | {verdict} |")

    for group in ("get-hit", "set"):
        cb = _ns(groups, group, "cachebolt")
        floor = _ns(groups, group, "floor")
        if cb is None or floor is None:
            continue
        add(f"{group}: cachebolt <= 1.10x floor", f"{cb / floor:.2f}x", cb <= 1.10 * floor)
        for peer in ("cachetools", "theine"):
            other = _ns(groups, group, peer)
            if other is not None:
                add(f"{group}: faster than {peer}", f"{other / cb:.2f}x faster", cb < other)
    for group in ("incr", "sismember", "hget"):
        cb = _ns(groups, group, "cachebolt")
        fake = _ns(groups, group, "fakeredis")
        if cb is not None and fake is not None:
            add(f"{group}: >= 50x faster than fakeredis", f"{fake / cb:.0f}x", fake >= 50 * cb)
    cb = _ns(groups, "rate-limit-under", "cachebolt")
    peers = [
        (leg, float(info["ns_per_op"]))
        for leg, info in groups.get("rate-limit-under", [])
        if leg.startswith("limits")
    ]
    if cb is not None and peers:
        leg, best = min(peers, key=lambda p: p[1])
        add(f"check_rate_limit: >= 10x faster than {leg}", f"{best / cb:.1f}x", best >= 10 * cb)
    for bench in benchmarks:
        for goal in bench.extra_info.get("goals", []):
            add(goal["goal"], goal["measured"], goal["met"])
    return "\n".join(lines)


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    benchmarks = list(getattr(session, "benchmarks", None) or [])
    if not benchmarks:
        return
    sections = ["## Ratios (ns per operation)", ratio_table(benchmarks), ""]
    sections += ["## Goals", goals_table(benchmarks), ""]
    for bench in benchmarks:
        if "report_md" in bench.extra_info:
            sections += [bench.extra_info["report_md"], ""]
    report = "\n".join(sections)
    terminalreporter.write_sep("=", "cachebolt ratio report")
    terminalreporter.write_line(report)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / "results-latest.md"
    out.write_text(
        f"# cachebolt benchmarks\n\nkeys={N_KEYS} rounds={ROUNDS}\n\n{report}\n", encoding="utf-8"
    )
    terminalreporter.write_line(f"written to {out}")


def orjson_size(value: object) -> int:
    """Size in bytes of `value` encoded with orjson."""
    return len(orjson.dumps(value))
