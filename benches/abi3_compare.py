"""The abi3 build of `cachebolt._core` against the version-specific one, interleaved.

Both wheels are built from this tree with the flags of `make wheel` (release, zig,
manylinux2014), differing only in the Cargo feature `abi3`, and unpacked side by side. A private
`redis-server` runs on a free loopback port (tests/_servers.py), stopped by its pid at the end.
Each round starts one fresh process per build, in alternating order (AB, BA, AB, ...; one
PYTHONHASHSEED for all), and each process measures four operations with the harness of `cachebolt
bench` (`cachebolt._bench.harness.run_bench`: timed batches of up to 100 calls, `--seconds` of them
per operation) through `CacheService()` (memory backend, default config) and through
`CacheService(CacheConfig(...))` on the private server. A process's figure is the median batch time
per call (the harness's p50: a burst of other work on the machine moves it less than the mean, which
goes to the JSON too). The ratio abi3 / version-specific is taken per round, then the median over
the rounds (with a bootstrap 95% interval), and also as the ratio of the per-build minima; above 1
means the abi3 build is slower.

Run: `.venv/bin/python benches/abi3_compare.py [--rounds 30] [--seconds 0.3]`; a subset with
`--backends memory --operations "get (hit),set"`; wheels built beforehand with
`--wheels ABI3.whl SPECIFIC.whl`. Raw figures go to `--json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent

OPERATIONS = ("get (hit)", "set", "check_rate_limit", "acquire_lock+release_lock")
BACKENDS = ("memory", "redis")
BUILDS = ("abi3", "specific")
FEATURES = {"abi3": "pyo3/extension-module,abi3", "specific": "pyo3/extension-module"}
BOUND = 1.03  # the rule: abi3 when no median ratio of a run exceeds this
BOOTSTRAP = 2000


def _names(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """An argparse type: a comma-separated subset of `allowed`."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in text.split(","))
        unknown = set(names) - set(allowed)
        if unknown:
            raise argparse.ArgumentTypeError(f"not in {', '.join(allowed)}: {', '.join(unknown)}")
        return names

    return parse


def build_wheels(out: Path) -> dict[str, Path]:
    """Both wheels for the running interpreter, with the `make wheel` flags."""
    # maturin finds zig as `python3 -m ziglang` on PATH: this interpreter's, which has ziglang.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    wheels = {}
    for build in BUILDS:
        target = out / build
        subprocess.run(
            [
                sys.executable, "-m", "maturin", "build", "--release", "--zig",
                "--compatibility", "manylinux2014", "--interpreter", sys.executable,
                "--features", FEATURES[build], "--out", str(target),
            ],
            cwd=ROOT,
            env=dict(os.environ, PATH=path),
            check=True,
        )  # fmt: skip
        (wheels[build],) = target.glob("*.whl")
    return wheels


def check_tags(wheels: dict[str, Path]) -> None:
    """Each wheel is the build it is said to be (maturin could merge in pyproject features)."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    if "-abi3-" not in wheels["abi3"].name:
        raise SystemExit(f"not an abi3 wheel: {wheels['abi3'].name}")
    if f"-{tag}-{tag}-" not in wheels["specific"].name:
        raise SystemExit(f"not a version-specific wheel: {wheels['specific'].name}")


def child(site: Path, args: argparse.Namespace) -> None:
    """One round of one build (run in a fresh process whose PYTHONPATH is `site`)."""
    import cachebolt
    from cachebolt import _core
    from cachebolt._bench.harness import redis_config, run_bench

    for module in (cachebolt, _core):
        if not Path(module.__file__ or "").resolve().is_relative_to(site.resolve()):
            raise SystemExit(f"{module.__name__} came from {module.__file__}, not {site}")
    env = {"VALKEY_HOST": "127.0.0.1", "VALKEY_PORT": str(args.port)}
    legs = {
        "memory": (args.keys, None),
        "redis": (args.redis_keys, redis_config(None, environ=env)),
    }
    figures = {}
    for backend in args.backends:
        n, config = legs[backend]
        results, _ = run_bench(
            n, args.seconds, backend=backend, redis=config, operations=args.operations
        )
        for r in results:
            figures[f"{backend} {r.operation}"] = {"p50": r.p50_ns, "mean": r.mean_ns}
    print(json.dumps({"core": Path(_core.__file__ or "").name, "ns": figures}))


def run_round(site: Path, args: argparse.Namespace, port: int) -> dict[str, Any]:
    # One hash seed for every process: both builds see the same dict and set layouts.
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONHASHSEED="0")
    out = subprocess.run(
        [
            sys.executable, __file__, "--child", str(site), "--port", str(port),
            "--keys", str(args.keys), "--redis-keys", str(args.redis_keys),
            "--seconds", str(args.seconds), "--backends", ",".join(args.backends),
            "--operations", ",".join(args.operations),
        ],
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"the round on {site} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


def bootstrap_median(ratios: list[float], seed: int) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of the median of `ratios`."""
    rng = random.Random(seed)
    medians = sorted(
        statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(BOOTSTRAP)
    )
    return medians[int(0.025 * BOOTSTRAP)], medians[int(0.975 * BOOTSTRAP) - 1]


def report(samples: dict[str, dict[str, list[float]]], cores: dict[str, str]) -> tuple[str, bool]:
    """The Markdown table and whether every median ratio is within the bound."""
    lines = [
        f"abi3 = `{cores['abi3']}`, version-specific = `{cores['specific']}`; ns per call "
        f"over {len(samples['abi3'][next(iter(samples['abi3']))])} rounds.",
        "",
        "| operation | abi3 median | specific median | abi3 min | specific min "
        "| ratio, median of rounds (95% CI) | ratio of minima |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    within = True
    for i, label in enumerate(samples["abi3"]):
        a, s = samples["abi3"][label], samples["specific"][label]
        ratios = [x / y for x, y in zip(a, s, strict=True)]
        median = statistics.median(ratios)
        low, high = bootstrap_median(ratios, seed=i)
        within = within and median <= BOUND
        lines.append(
            f"| {label} | {statistics.median(a):,.0f} | {statistics.median(s):,.0f} "
            f"| {min(a):,.0f} | {min(s):,.0f} | {median:.3f} ({low:.3f}-{high:.3f}) "
            f"| {min(a) / min(s):.3f} |"
        )
    verdict = "abi3" if within else "per-version wheels"
    lines += ["", f"Every median ratio <= {BOUND}: {'yes' if within else 'no'} -> {verdict}."]
    return "\n".join(lines), within


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="processes per build (30)")
    parser.add_argument("--seconds", type=float, default=0.3, help="timed s per operation (0.3)")
    parser.add_argument("--keys", type=int, default=100_000, help="memory keyspace (100000)")
    parser.add_argument("--redis-keys", type=int, default=10_000, help="Redis keyspace (10000)")
    parser.add_argument(
        "--backends", type=_names(BACKENDS), default=BACKENDS, help="memory,redis (both)"
    )
    parser.add_argument(
        "--operations", type=_names(OPERATIONS), default=OPERATIONS, help="(all four)"
    )
    parser.add_argument("--wheels", nargs=2, type=Path, metavar=("ABI3", "SPECIFIC"))
    parser.add_argument("--json", type=Path, default=ROOT / ".benchmarks" / "abi3_compare.json")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args)
        return 0

    with tempfile.TemporaryDirectory(prefix="cachebolt-abi3-") as tmp:
        work = Path(tmp)
        if args.wheels:
            wheels = dict(zip(BUILDS, args.wheels, strict=True))
        else:
            wheels = build_wheels(work / "wheels")
        check_tags(wheels)
        sites = {}
        for build, wheel in wheels.items():
            sites[build] = work / "site" / build
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(sites[build])
        samples: dict[str, dict[str, list[float]]] = {b: {} for b in BUILDS}
        means: dict[str, dict[str, list[float]]] = {b: {} for b in BUILDS}
        cores = {}
        with RedisServer(work / "redis") as server:
            for i in range(args.rounds):
                for build in BUILDS if i % 2 == 0 else BUILDS[::-1]:
                    result = run_round(sites[build], args, server.port)
                    cores[build] = result["core"]
                    for label, ns in result["ns"].items():
                        samples[build].setdefault(label, []).append(ns["p50"])
                        means[build].setdefault(label, []).append(ns["mean"])
                print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
    table, _ = report(samples, cores)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "platform": sysconfig.get_platform(),
                "wheels": {b: w.name for b, w in wheels.items()},
                "args": {
                    k: vars(args)[k]
                    for k in ("rounds", "seconds", "keys", "redis_keys", "backends", "operations")
                },
                "p50_ns": samples,
                "mean_ns": means,
            },
            indent=1,
        )
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
