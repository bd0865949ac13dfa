"""scripts/figures.py: RELIABILITY.md's figure blocks come from the recorded figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "figures.py"

DOC = """# Reliability

Hand-written text stays.

<!-- figures: locks. -->
| stale | table |
<!-- /figures -->

## Other
<!-- figures: nothing. -->
<!-- /figures -->
"""

ROWS: list[dict[str, Any]] = [
    {"name": "locks.mutual_exclusion", "soak": False, "at": 1.0, "overlaps": 3},
    {"name": "locks.mutual_exclusion", "soak": False, "at": 2.0, "overlaps": 0},
    {"name": "locks.mutual_exclusion", "soak": True, "at": 1.5, "overlaps": 0, "n": 9},
    {"name": "locks.recovery", "soak": False, "at": 2.0, "seconds": {"kill": 1.5, "drop": 0.2}},
    {"name": "locks.flags", "soak": False, "at": 2.0, "sizes": [1, 2], "ok": True, "w": "a|b"},
    {"name": "faults.chaos", "soak": False, "at": 2.0, "exceptions": 0},
]


def _records(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--figures", str(tmp_path / "f.jsonl"), "--doc", str(tmp_path / "R.md")),
            *extra,
        ],
        capture_output=True,
        text=True,
    )


def _rows(text: str, name: str) -> list[list[str]]:
    """The cells of the rows of figure `name`: its `recorded` row and one row per value."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| `{name}` |"))
    rows = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("| |"):
            break
        rows.append(line)
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_a_block_is_a_table_of_the_newest_fast_and_soak_figures(tmp_path: Path) -> None:
    (tmp_path / "R.md").write_text(DOC, encoding="utf-8")
    _records(tmp_path / "f.jsonl", ROWS)
    assert _run(tmp_path).returncode == 0
    text = (tmp_path / "R.md").read_text(encoding="utf-8")
    assert "Hand-written text stays." in text and "stale" not in text
    assert _rows(text, "locks.mutual_exclusion") == [
        ["`locks.mutual_exclusion`", "recorded", "1970-01-01", "1970-01-01"],
        ["", "overlaps", "0", "0"],
        ["", "n", "-", "9"],
    ]
    # A dict gives one row per key, a list its items; a figure without a soak record says so.
    assert _rows(text, "locks.recovery") == [
        ["`locks.recovery`", "recorded", "1970-01-01", "not recorded"],
        ["", "seconds.kill", "1.5", "-"],
        ["", "seconds.drop", "0.2", "-"],
    ]
    assert ["", "sizes", "1, 2", "-"] in _rows(text, "locks.flags")
    assert ["", "ok", "yes", "-"] in _rows(text, "locks.flags")
    assert "| | w | a\\|b | - |" in text
    assert "overlaps | 3" not in text and "faults.chaos" not in text
    assert "| nothing. | recorded | not recorded | not recorded |" in text
    # A second run changes nothing.
    assert _run(tmp_path).returncode == 0
    assert (tmp_path / "R.md").read_text(encoding="utf-8") == text


def test_a_figure_missing_from_the_file_keeps_what_the_block_showed(tmp_path: Path) -> None:
    (tmp_path / "R.md").write_text(DOC, encoding="utf-8")
    _records(tmp_path / "f.jsonl", ROWS)
    assert _run(tmp_path).returncode == 0
    # A later run of one test only: its figure is new, the others stay as last recorded.
    later = {"name": "locks.recovery", "soak": False, "at": 86400.0, "seconds": {"kill": 0.9}}
    _records(tmp_path / "f.jsonl", [later])
    assert _run(tmp_path).returncode == 0
    text = (tmp_path / "R.md").read_text(encoding="utf-8")
    assert _rows(text, "locks.recovery") == [
        ["`locks.recovery`", "recorded", "1970-01-02", "not recorded"],
        ["", "seconds.kill", "0.9", "-"],
    ]
    assert _rows(text, "locks.mutual_exclusion")[0][2:] == ["1970-01-01", "1970-01-01"]
    assert ["", "n", "-", "9"] in _rows(text, "locks.mutual_exclusion")
    # --fresh shows the figures file only.
    assert _run(tmp_path, "--fresh").returncode == 0
    text = (tmp_path / "R.md").read_text(encoding="utf-8")
    assert "locks.mutual_exclusion" not in text and "`locks.recovery`" in text


def test_check_names_a_prefix_without_figures(tmp_path: Path) -> None:
    (tmp_path / "R.md").write_text(DOC, encoding="utf-8")
    _records(tmp_path / "f.jsonl", ROWS)
    done = _run(tmp_path, "--check")
    assert done.returncode == 1 and "'nothing.'" in done.stderr
    assert (tmp_path / "R.md").read_text(encoding="utf-8") == DOC
