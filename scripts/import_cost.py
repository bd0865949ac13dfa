"""What `import cachebolt; cachebolt.CacheService()` costs a fresh interpreter.

Prints the `-X importtime` cumulative figure of the `cachebolt` package (median over the runs),
the wall-clock medians of that statement and of `pass` in fresh processes (the runs interleaved,
so load on the machine hits both alike) and their difference, and which of asyncio, ssl and redis
the statement leaves in `sys.modules`. The bytecode of the sources is cached first, as in an
installed package.

    python scripts/import_cost.py                 # 30 runs with this interpreter
    python scripts/import_cost.py --runs 50 --python .venv/bin/python
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

STATEMENT = "import cachebolt; cachebolt.CacheService()"
BARE = "pass"
WATCHED = ("asyncio", "ssl", "redis")
# No VALKEY_* or CACHE_* variable reaches the child: the default config, memory backend.
_ISOLATED_ENV_PREFIXES = ("VALKEY_", "CACHE_")


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ISOLATED_ENV_PREFIXES)}
    # pip compiles an installed package's bytecode; without the cached .pyc files every run
    # would compile cachebolt's sources again (the warm-up run writes them).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _wall_seconds(python: str, code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([python, "-c", code], env=env, check=True)
    return time.perf_counter() - start


def _importtime_us(python: str, env: dict[str, str]) -> int:
    """The cumulative microseconds of the top-level `cachebolt` line of one `-X importtime` run."""
    done = subprocess.run(
        [python, "-X", "importtime", "-c", STATEMENT],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    for line in done.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package"; the package is not indented.
        fields = line.split("|")
        if len(fields) == 3 and fields[2].rstrip() == " cachebolt":
            return int(fields[1])
    raise RuntimeError(f"no cachebolt line in the -X importtime output:\n{done.stderr}")


def _watched_modules(python: str, env: dict[str, str]) -> list[str]:
    code = f"import sys; {STATEMENT}; print(','.join(m for m in {WATCHED!r} if m in sys.modules))"
    out = subprocess.run(
        [python, "-c", code], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    return out.split(",") if out else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="fresh processes per figure")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure")
    args = parser.parse_args(argv)
    env = _child_env()

    _wall_seconds(args.python, STATEMENT, env)  # warm the file cache and the .pyc files
    importtime = [_importtime_us(args.python, env) for _ in range(args.runs)]
    bare: list[float] = []
    loaded: list[float] = []
    for _ in range(args.runs):
        bare.append(_wall_seconds(args.python, BARE, env))
        loaded.append(_wall_seconds(args.python, STATEMENT, env))

    bare_ms = statistics.median(bare) * 1000
    loaded_ms = statistics.median(loaded) * 1000
    print(f"statement: python -c {STATEMENT!r} ({args.runs} runs each)")
    print(
        f"-X importtime cumulative for cachebolt: median {statistics.median(importtime) / 1000:.1f}"
        f" ms, min {min(importtime) / 1000:.1f} ms"
    )
    print(f"wall clock median, python -c 'pass':  {bare_ms:.1f} ms")
    print(f"wall clock median, the statement:     {loaded_ms:.1f} ms")
    print(f"difference of the medians:            {loaded_ms - bare_ms:.1f} ms")
    watched = _watched_modules(args.python, env)
    print(f"of {', '.join(WATCHED)} imported: {', '.join(watched) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
