"""Figures of the reliability suite: each test reports the number it proves.

`figure("locks.mutual_exclusion", overlaps=0, acquisitions_per_s=812.4)` prints one summary line
(shown by `pytest -s`, and in the `-ra`-style terminal summary at the end of the run) and appends a
JSON line to `.reliability/figures.jsonl`, so a regression is a number that can be compared.

`SOAK` is True under `make soak` (`CACHEBOLT_SOAK=1`): tests then run at their full sizes;
`size(fast, full)` picks the one for this run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

SOAK = os.environ.get("CACHEBOLT_SOAK", "") == "1"
FIGURES_DIR = Path(__file__).resolve().parents[2] / ".reliability"
_collected: list[str] = []


def size(fast: int, full: int) -> int:
    """`full` under `make soak`, else `fast`."""
    return full if SOAK else fast


def figure(name: str, **values: Any) -> None:
    """Record the figure of one test: a summary line and a JSON line in .reliability/."""
    line = f"FIGURE {name}: " + ", ".join(f"{key}={value}" for key, value in values.items())
    print(line)
    _collected.append(line)
    FIGURES_DIR.mkdir(exist_ok=True)
    record = {"name": name, "soak": SOAK, "at": time.time(), **values}
    with (FIGURES_DIR / "figures.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps(record, default=str) + "\n")


def collected() -> list[str]:
    """The summary lines recorded so far in this process (printed at the end of the run)."""
    return list(_collected)
