"""Write the figures the tests recorded into RELIABILITY.md.

Every test of the reliability suites reports its numbers with `figure(name, **values)`
(tests/reliability/_figures.py), which appends a JSON line to `.reliability/figures.jsonl`. This
script rewrites each generated block of RELIABILITY.md:

    <!-- figures: failover. hazards.restart -->
    ...rewritten: one row per figure whose name starts with one of the prefixes...
    <!-- /figures -->

Each row holds the newest record of that name from a fast run (`make test`) and from a soak run
(`make soak`), with the day it was recorded. Nothing outside the blocks changes.

    python scripts/figures.py          # rewrite RELIABILITY.md from .reliability/figures.jsonl
    python scripts/figures.py --check  # exit 1 when a block names a prefix no record has
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"(<!-- figures: (?P<prefixes>[^>]*?) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.S
)
_META = ("name", "soak", "at")


def newest(records: Iterable[dict[str, Any]]) -> dict[tuple[str, bool], dict[str, Any]]:
    """The newest record per (name, soak), by its `at` time."""
    kept: dict[tuple[str, bool], dict[str, Any]] = {}
    for record in records:
        key = (record["name"], bool(record.get("soak")))
        if key not in kept or record.get("at", 0) >= kept[key].get("at", 0):
            kept[key] = record
    return kept


def _cell(record: dict[str, Any] | None) -> str:
    if record is None:
        return "not run"
    values = ", ".join(f"{k}={v}" for k, v in record.items() if k not in _META)
    day = datetime.datetime.fromtimestamp(record.get("at", 0), datetime.timezone.utc).date()
    return f"{values} ({day})"


def render(prefixes: list[str], latest: dict[tuple[str, bool], dict[str, Any]]) -> str:
    """The table of every figure whose name starts with one of `prefixes`."""
    names = sorted({name for name, _ in latest if name.startswith(tuple(prefixes))})
    lines = ["| figure | fast run | soak run |", "|---|---|---|"]
    for name in names:
        fast, soak = latest.get((name, False)), latest.get((name, True))
        lines.append(f"| `{name}` | {_cell(fast)} | {_cell(soak)} |")
    if not names:
        lines.append(f"| {' '.join(prefixes)} | no figures recorded yet | |")
    return "\n".join(lines) + "\n"


def rewrite(text: str, latest: dict[tuple[str, bool], dict[str, Any]]) -> tuple[str, list[str]]:
    """`text` with every block rewritten, and the prefixes that matched no figure."""
    missing: list[str] = []

    def block(match: re.Match[str]) -> str:
        prefixes = match.group("prefixes").split()
        for prefix in prefixes:
            if not any(name.startswith(prefix) for name, _ in latest):
                missing.append(prefix)
        return match.group(1) + render(prefixes, latest) + match.group(4)

    return BLOCK.sub(block, text), missing


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of the figures file (none when it does not exist yet)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", type=Path, default=ROOT / ".reliability" / "figures.jsonl")
    parser.add_argument("--doc", type=Path, default=ROOT / "RELIABILITY.md")
    parser.add_argument("--check", action="store_true", help="fail when a block matches nothing")
    args = parser.parse_args(argv)
    text, missing = rewrite(
        args.doc.read_text(encoding="utf-8"), newest(read_records(args.figures))
    )
    if args.check:
        for prefix in missing:
            print(f"no figure recorded for the prefix {prefix!r}", file=sys.stderr)
        return 1 if missing else 0
    args.doc.write_text(text, encoding="utf-8")
    print(f"rewrote the figure blocks of {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
