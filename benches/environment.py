"""The machine and the versions a benchmark run used, as Markdown (for benches/RESULTS.md).

Run: `python benches/environment.py > .benchmarks/environment.md`.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys

PACKAGES = (
    "cachebolt", "orjson", "redis", "hiredis", "fakeredis", "cachetools", "moka-py", "theine",
    "theine-core", "cashews", "aiocache", "limits", "msgspec", "lupa", "pytest-benchmark",
    "matplotlib", "psutil",
)  # fmt: skip


def _run(*cmd: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (out.stdout or out.stderr).strip()


def _lscpu() -> list[str]:
    wanted = ("Model name", "CPU(s)", "Thread(s) per core", "CPU MHz", "L2 cache", "L3 cache",
              "Hypervisor vendor", "Virtualization type")  # fmt: skip
    lines = []
    for line in _run("lscpu").splitlines():
        name, _, value = line.partition(":")
        if name.strip() in wanted:
            lines.append(f"{name.strip()}: {value.strip()}")
    return lines


def _mem_total() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "?"


def markdown() -> str:
    """The environment as a Markdown list and table."""
    lines = [
        f"- CPU (`lscpu`): {'; '.join(_lscpu()) or '?'}",
        f"- cores usable: {len(os.sched_getaffinity(0))}; RAM: {_mem_total()}",
        f"- kernel: `{platform.release()}` ({platform.machine()})",
        f"- Python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"- Rust: `{_run('rustc', '--version')}`",
        f"- redis-server: `{_run('redis-server', '--version')}`",
        "",
        "| package | version |",
        "|---|---|",
    ]
    for name in PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"| {name} | {version} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
