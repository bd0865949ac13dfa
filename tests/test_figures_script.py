"""scripts/figures.py: RELIABILITY.md's figure blocks come from the recorded figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def _records(path: Path) -> None:
    rows = [
        {"name": "locks.mutual_exclusion", "soak": False, "at": 1.0, "overlaps": 3},
        {"name": "locks.mutual_exclusion", "soak": False, "at": 2.0, "overlaps": 0},
        {"name": "locks.mutual_exclusion", "soak": True, "at": 1.5, "overlaps": 0, "n": 9},
        {"name": "faults.chaos", "soak": False, "at": 2.0, "exceptions": 0},
    ]
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


def test_blocks_hold_the_newest_fast_and_soak_figures(tmp_path: Path) -> None:
    (tmp_path / "R.md").write_text(DOC, encoding="utf-8")
    _records(tmp_path / "f.jsonl")
    assert _run(tmp_path).returncode == 0
    text = (tmp_path / "R.md").read_text(encoding="utf-8")
    assert "Hand-written text stays." in text and "stale" not in text
    row = next(line for line in text.splitlines() if "`locks.mutual_exclusion`" in line)
    assert "overlaps=0 (1970-01-01)" in row and "overlaps=0, n=9" in row
    assert "overlaps=3" not in text and "faults.chaos" not in text
    assert "nothing. | no figures recorded yet" in text
    # A second run changes nothing.
    assert _run(tmp_path).returncode == 0
    assert (tmp_path / "R.md").read_text(encoding="utf-8") == text


def test_check_names_a_prefix_without_figures(tmp_path: Path) -> None:
    (tmp_path / "R.md").write_text(DOC, encoding="utf-8")
    _records(tmp_path / "f.jsonl")
    done = _run(tmp_path, "--check")
    assert done.returncode == 1 and "'nothing.'" in done.stderr
    assert (tmp_path / "R.md").read_text(encoding="utf-8") == DOC
