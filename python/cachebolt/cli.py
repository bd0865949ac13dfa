"""The `cachebolt` command line: `cachebolt bench` measures the backends, and the peers if asked.

This module parses the arguments and prints; `cachebolt._bench.harness.run_bench` measures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

from ._bench.harness import DEFAULT_DURATION, BenchResult, redis_config, run_bench
from ._bench.peers import installed
from ._redact import mask_secrets
from .exceptions import ConfigError

__all__ = ["format_table", "main"]

QUICK_DURATION = 5.0


def _fmt_ns(ns: float) -> str:
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    return f"{ns / 1_000_000:.2f} ms"


HEADER = ("operation", "leg", "ops/s", "p50", "p99", "ratio to cachebolt memory")


def format_table(results: Sequence[BenchResult]) -> str:
    """A Markdown table: operation | leg | ops/s | p50 | p99 | ratio to cachebolt memory."""
    rows = [
        (
            r.operation,
            r.leg,
            f"{r.ops_per_sec:,.0f}",
            _fmt_ns(r.p50_ns),
            _fmt_ns(r.p99_ns),
            "-" if r.ratio is None else f"{r.ratio:.2f}x",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(cells: Sequence[str]) -> str:
        left = [cells[0].ljust(widths[0]), cells[1].ljust(widths[1])]
        rest = [cell.rjust(width) for cell, width in zip(cells[2:], widths[2:], strict=True)]
        return "| " + " | ".join([*left, *rest]) + " |"

    rule = (
        "|"
        + "|".join(["-" * (w + 2) for w in widths[:2]] + ["-" * (w + 1) + ":" for w in widths[2:]])
        + "|"
    )
    return "\n".join([line(HEADER), rule, *(line(row) for row in rows)])


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {raw!r}")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0 or math.isinf(value):  # also rejects NaN
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {raw!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors (which quote the arguments) hide URL passwords."""

    def error(self, message: str) -> NoReturn:
        super().error(mask_secrets(message))


def _fail(message: str, secret: str | None = None) -> None:
    print(f"cachebolt bench: {mask_secrets(message, secret)}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cachebolt", description="cachebolt command line")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench",
        help="measure the backends (and the installed peers)",
        description=(
            "Run representative operations on cachebolt's memory backend (and Redis, and the "
            "installed peer libraries) and print ops/s, p50/p99 latency and the ratio of each "
            "leg's time per operation to cachebolt memory's (above 1: cachebolt memory is "
            "faster). Latency is timed per batch of up to 100 operations: p50/p99 are batch "
            "time / batch size."
        ),
    )
    bench.add_argument(
        "--backend",
        choices=("memory", "redis", "all"),
        default="memory",
        help="memory (default), redis (from --url or VALKEY_*), or all",
    )
    bench.add_argument("--url", help="redis:// or rediss:// URL (default: the VALKEY_* variables)")
    bench.add_argument(
        "--peers", action="store_true", help="add the installed peers (cachetools, moka-py, ...)"
    )
    bench.add_argument(
        "--keys", type=_positive_int, help="distinct keys (default 100000; 10000 with --quick)"
    )
    timing = bench.add_mutually_exclusive_group()
    timing.add_argument(
        "--duration",
        type=_positive_float,
        default=DEFAULT_DURATION,
        help=f"total timed seconds, shared by every measurement (default {DEFAULT_DURATION:g})",
    )
    timing.add_argument(
        "--seconds", type=_positive_float, help="timed seconds per (operation, leg) instead"
    )
    timing.add_argument(
        "--quick", action="store_true", help=f"{QUICK_DURATION:g} s in total, a smoke test"
    )
    bench.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    bench.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="draw ops/s per operation and leg (matplotlib)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments without the program name (None: `sys.argv[1:]`).

    Returns:
        The process exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "bench":
        parser.print_help(sys.stderr)
        return 2
    if args.plot is not None and not installed("matplotlib"):
        _fail("--plot needs matplotlib: pip install 'cachebolt[plot]'")
        return 2
    if args.url is not None and args.backend == "memory":
        parser.error("--url needs --backend redis or all")
    redis = None
    if args.backend != "memory":
        try:
            redis = redis_config(args.url)
        except ConfigError as exc:
            _fail(str(exc))
            return 2
    n_keys = args.keys or (10_000 if args.quick else 100_000)
    duration = QUICK_DURATION if args.quick else args.duration
    try:
        results, meta = run_bench(
            n_keys,
            args.seconds,
            progress=sys.stderr,
            backend=args.backend,
            redis=redis,
            peers=args.peers,
            duration=duration,
        )
    except ConnectionError as exc:
        _fail(str(exc), redis.password if redis is not None else None)
        return 1
    title = (
        f"cachebolt bench: {args.backend} backend{' + peers' if args.peers else ''}, "
        f"{n_keys:,} keys, {meta['seconds_per_measurement']:.2g} s per measurement, "
        f"Python {meta['python']}"
    )
    print(title)
    print(format_table(results))
    print("p50/p99: batch time / batch size; ratio: time per op / cachebolt memory's.")
    if args.json is not None:
        payload = {**meta, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.plot is not None:
        from ._bench.plot import write_plot

        write_plot(results, args.plot, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
