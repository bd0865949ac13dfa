"""`cachebolt bench`: runs every operation on the memory backend, prints the table, writes JSON.

Tiny sizes only, and no timing assertion: the numbers are only required to be positive.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cachebolt import cli

OPERATIONS = [
    "get (hit)",
    "get (miss)",
    "set",
    "get_or_set (hit)",
    "delete",
    "incr",
    "sadd",
    "sismember",
    "hset",
    "hget",
    "check_rate_limit",
    "acquire_lock+release_lock",
    "publish (1 subscriber)",
]


def test_bench_prints_every_operation_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--keys", "1000", "--quick", "--json", str(out)]) == 0

    captured = capsys.readouterr()
    table = [line for line in captured.out.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header == ["operation", "ops/s", "p50", "p99"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert [row[0] for row in rows] == OPERATIONS
    assert all(len(row) == 4 and all(row) for row in rows)
    assert "[13/13]" in captured.err  # the progress line

    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["backend"] == "memory"
    assert payload["keys"] == 1000
    assert [r["operation"] for r in payload["results"]] == OPERATIONS
    for result in payload["results"]:
        for field in ("ops", "seconds", "ops_per_sec", "p50_ns", "p99_ns", "mean_ns"):
            value = result[field]
            assert isinstance(value, int | float) and math.isfinite(value), (field, result)
            assert value > 0, (field, result)
        assert result["p50_ns"] <= result["p99_ns"]


def test_bench_with_fewer_keys_than_a_batch(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--keys", "7", "--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    assert all(op in out for op in OPERATIONS)


def test_without_a_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "bench" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--keys", "0"],
        ["bench", "--seconds", "-1"],
        ["bench", "--seconds", "nan"],
        ["bench", "--quick", "--seconds", "1"],
        ["nope"],
    ],
)
def test_bad_arguments_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    assert excinfo.value.code == 2
