"""Write the figures the tests recorded into RELIABILITY.md.

Every test that measures a figure reports it with `figure(name, **values)`
(tests/reliability/_figures.py), which appends a JSON line to `.reliability/figures.jsonl`: the
test run of `make test` writes the fast figures, `make soak` (`CACHEBOLT_SOAK=1`) the soak ones.
This script rewrites each generated block of RELIABILITY.md:

    <!-- figures: failover. hazards.restart -->
    ...rewritten: the figures whose names start with one of the prefixes...
    <!-- /figures -->

A block is a table with one row per value of each figure (a dict value gives one row per key),
the newest fast record beside the newest soak record, under the day each was recorded. A figure
the file does not hold keeps the values and day the block showed (so a run of some tests, or a
fast run without a soak run, leaves the other figures as last recorded); a figure never recorded
reads "not recorded". Nothing outside the blocks changes.

    python scripts/figures.py          # rewrite RELIABILITY.md from .reliability/figures.jsonl
    python scripts/figures.py --fresh  # the same, forgetting what the blocks showed before
    python scripts/figures.py --check  # exit 1 when a block names a prefix no record has
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"(<!-- figures: (?P<prefixes>[^>]*?) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.S
)
HEADER = "| figure | value | fast run (`make test`) | soak run (`make soak`) |"
NOT_RECORDED = "not recorded"
_META = ("name", "soak", "at")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


@dataclass
class Shown:
    """One run's figure as a block shows it: the day it was recorded and its values as text."""

    day: str
    values: dict[str, str] = field(default_factory=dict)


Figures = dict[tuple[str, bool], Shown]


def newest(records: Iterable[dict[str, Any]]) -> dict[tuple[str, bool], dict[str, Any]]:
    """The newest record per (name, soak), by its `at` time."""
    kept: dict[tuple[str, bool], dict[str, Any]] = {}
    for record in records:
        key = (record["name"], bool(record.get("soak")))
        if key not in kept or record.get("at", 0) >= kept[key].get("at", 0):
            kept[key] = record
    return kept


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|")


def shown(record: dict[str, Any]) -> Shown:
    """A record as its rows show it; a dict value becomes one row per key (`value.key`)."""
    day = datetime.datetime.fromtimestamp(record.get("at", 0), datetime.timezone.utc).date()
    values: dict[str, str] = {}
    for key, value in record.items():
        if key in _META:
            continue
        if isinstance(value, dict):
            for inner, item in value.items():
                values[f"{key}.{inner}"] = _text(item)
        else:
            values[key] = _text(value)
    return Shown(str(day), values)


def parse_block(body: str) -> Figures:
    """The figures a generated block shows (the inverse of `render` for its rows)."""
    found: Figures = {}
    name = ""
    for line in body.splitlines():
        cells = [cell.strip() for cell in _CELL_SPLIT.split(line.strip())[1:-1]]
        if len(cells) != 4 or cells[0] == "figure" or cells[1].startswith("---"):
            continue
        if cells[0]:
            name = cells[0].strip("`")
        if not name:
            continue
        for soak, cell in ((False, cells[2]), (True, cells[3])):
            if cells[1] == "recorded":
                if cell != NOT_RECORDED:
                    found[(name, soak)] = Shown(cell)
            elif (name, soak) in found and cell != "-":
                found[(name, soak)].values[cells[1]] = cell
    return found


def render(prefixes: list[str], figures: Figures) -> str:
    """The table of every figure whose name starts with one of `prefixes`."""
    names = sorted({name for name, _ in figures if name.startswith(tuple(prefixes))})
    lines = [HEADER, "|---|---|---|---|"]
    for name in names:
        fast, soak = figures.get((name, False)), figures.get((name, True))
        days = [run.day if run else NOT_RECORDED for run in (fast, soak)]
        lines.append(f"| `{name}` | recorded | {days[0]} | {days[1]} |")
        keys = list((fast or Shown("")).values)
        keys += [key for key in (soak or Shown("")).values if key not in keys]
        for key in keys:
            cells = [run.values.get(key, "-") if run else "-" for run in (fast, soak)]
            lines.append(f"| | {key} | {cells[0]} | {cells[1]} |")
    if not names:
        lines.append(f"| {' '.join(prefixes)} | recorded | {NOT_RECORDED} | {NOT_RECORDED} |")
    return "\n".join(lines) + "\n"


def rewrite(
    text: str, latest: dict[tuple[str, bool], dict[str, Any]], fresh: bool = False
) -> tuple[str, list[str]]:
    """`text` with every block rewritten, and the prefixes that matched no record.

    A figure without a record in `latest` keeps what its block showed, unless `fresh`.
    """
    missing: list[str] = []
    recorded = {key: shown(record) for key, record in latest.items()}

    def block(match: re.Match[str]) -> str:
        prefixes = match.group("prefixes").split()
        for prefix in prefixes:
            if not any(name.startswith(prefix) for name, _ in latest):
                missing.append(prefix)
        figures = {} if fresh else parse_block(match.group("body"))
        figures.update(recorded)
        return match.group(1) + render(prefixes, figures) + match.group(4)

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
    parser.add_argument(
        "--fresh", action="store_true", help="show only the figures file, not the blocks' past"
    )
    args = parser.parse_args(argv)
    text, missing = rewrite(
        args.doc.read_text(encoding="utf-8"), newest(read_records(args.figures)), args.fresh
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
