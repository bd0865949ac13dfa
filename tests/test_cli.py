"""`cachebolt bench`: the table, the JSON, the legs, Redis and the plot, at tiny sizes.

No timing assertion: the numbers are only required to be finite and positive.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from cachebolt import cli
from cachebolt._bench import harness, peers

OPERATIONS = list(harness.OPERATIONS)
HEADER = ["operation", "leg", "ops/s", "p50", "p99", "ratio to cachebolt memory"]
FIELDS = ("ops", "seconds", "ops_per_sec", "p50_ns", "p99_ns", "mean_ns", "batch")


def _table(out: str) -> list[list[str]]:
    lines = [line for line in out.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert rows[0] == HEADER
    assert all(set(cell) <= set("-:") for cell in rows[1])  # the rule
    return rows[2:]


def _check_payload(payload: dict[str, Any], backend: str, keys: int) -> None:
    assert payload["backend"] == backend
    assert payload["keys"] == keys
    assert "batch time / batch size" in payload["latency"]
    for result in payload["results"]:
        assert set(result) == {"operation", "leg", "ratio", *FIELDS}, result
        assert result["operation"] in OPERATIONS and result["leg"] in payload["legs"]
        for field in FIELDS:
            value = result[field]
            assert isinstance(value, int | float) and math.isfinite(value), (field, result)
            assert value > 0, (field, result)
        assert result["p50_ns"] <= result["p99_ns"]
        assert 1 <= result["batch"] <= harness.BATCH
        if result["leg"] == harness.MEMORY:
            assert result["ratio"] == pytest.approx(1.0)
        else:
            assert result["ratio"] is None or result["ratio"] > 0


def test_memory_bench_prints_every_operation_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--keys", "1000", "--quick", "--json", str(out)]) == 0

    captured = capsys.readouterr()
    rows = _table(captured.out)
    assert [row[0] for row in rows] == OPERATIONS
    assert all(row[1] == harness.MEMORY and row[5] == "1.00x" for row in rows)
    assert all(len(row) == len(HEADER) and all(row) for row in rows)
    assert "[13/13] publish (1 subscriber) - cachebolt memory" in captured.err  # progress

    payload = json.loads(out.read_text(encoding="utf-8"))
    _check_payload(payload, "memory", 1000)
    assert payload["legs"] == [harness.MEMORY]
    assert [r["operation"] for r in payload["results"]] == OPERATIONS


def test_peers_add_the_installed_libraries_per_operation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert (
        cli.main(["bench", "--keys", "50", "--seconds", "0.005", "--peers", "--json", str(out)])
        == 0
    )
    payload = json.loads(out.read_text(encoding="utf-8"))
    _check_payload(payload, "memory", 50)
    # benches' extra installs every peer; each appears only on the operations it has.
    assert payload["legs"] == [
        harness.MEMORY,
        "cachetools TTLCache",
        "moka-py",
        "theine",
        "limits (memory, fixed window)",
    ]
    legs_of = {
        op: [r["leg"] for r in payload["results"] if r["operation"] == op] for op in OPERATIONS
    }
    assert legs_of["get (hit)"] == payload["legs"][:4]
    assert legs_of["check_rate_limit"] == [harness.MEMORY, "limits (memory, fixed window)"]
    assert legs_of["incr"] == [harness.MEMORY]
    rows = _table(capsys.readouterr().out)
    assert len(rows) == len(payload["results"])


def test_fewer_keys_than_a_batch(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--keys", "7", "--seconds", "0.01"]) == 0
    assert [row[0] for row in _table(capsys.readouterr().out)] == OPERATIONS


def test_run_bench_measures_only_the_operations_asked_for() -> None:
    results, _ = harness.run_bench(20, 0.001, operations=["set", "get (hit)"])
    assert [r.operation for r in results] == ["get (hit)", "set"]  # in reporting order
    with pytest.raises(ValueError, match="unknown operations: get"):
        harness.run_bench(20, 0.001, operations=["get"])


def test_redis_and_memory_side_by_side_leave_no_key_behind(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_client.set("someone-else", "keep")
    out = tmp_path / "bench.json"
    argv = ["bench", "--backend", "all", "--url", redis_url, "--keys", "40", "--seconds", "0.005"]
    assert cli.main([*argv, "--peers", "--json", str(out)]) == 0

    payload = json.loads(out.read_text(encoding="utf-8"))
    _check_payload(payload, "all", 40)
    assert payload["legs"][:4] == [
        harness.MEMORY,
        harness.REDIS,
        "redis-py",
        "limits-redis (moving window)",
    ]
    redis_rows = [r for r in payload["results"] if r["leg"] == harness.REDIS]
    assert [r["operation"] for r in redis_rows] == OPERATIONS
    assert all(r["ratio"] > 0 for r in redis_rows)  # against memory, same run
    rows = _table(capsys.readouterr().out)
    assert {row[1] for row in rows} == set(payload["legs"])
    # Only the bench's own prefix was used, and it was cleaned up.
    assert redis_client.keys("*") == ["someone-else"]


def test_redis_from_the_valkey_environment(
    redis_client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("VALKEY_URL", redis_url)
    monkeypatch.setenv("VALKEY_KEY_PREFIX", "app:")
    assert cli.main(["bench", "--backend", "redis", "--keys", "20", "--seconds", "0.005"]) == 0
    rows = _table(capsys.readouterr().out)
    assert [row[0] for row in rows] == OPERATIONS
    # No memory leg to compare with.
    assert all(row[1] == harness.REDIS and row[5] == "-" for row in rows)
    assert redis_client.keys("*") == []


def test_unreachable_redis_fails_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    url = "redis://127.0.0.1:1/0"
    assert cli.main(["bench", "--backend", "redis", "--url", url, "--keys", "5", "--quick"]) == 1
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="--plot needs the optional extra `plot`")
    png = tmp_path / "bench.png"
    assert (
        cli.main(["bench", "--keys", "20", "--seconds", "0.005", "--peers", "--plot", str(png)])
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = cli.installed
    monkeypatch.setattr(cli, "installed", lambda name: name != "matplotlib" and real(name))
    assert cli.main(["bench", "--quick", "--plot", str(tmp_path / "x.png")]) == 2
    assert "pip install 'cachebolt[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_without_a_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "bench" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--keys", "0"],
        ["bench", "--seconds", "-1"],
        ["bench", "--seconds", "nan"],
        ["bench", "--duration", "inf"],
        ["bench", "--quick", "--seconds", "1"],
        ["bench", "--quick", "--duration", "1"],
        ["bench", "--backend", "nope"],
        ["bench", "--url", "redis://127.0.0.1:6379/0"],  # --url without a Redis backend
        ["nope"],
    ],
)
def test_bad_arguments_exit_with_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        cli.main(argv)
    assert excinfo.value.code == 2


def test_usage_errors_hide_url_passwords(capsys: pytest.CaptureFixture[str]) -> None:
    # argparse quotes the arguments it did not understand: a mistyped --url among them.
    with pytest.raises(SystemExit) as caught:
        cli.main(["bench", "--backend", "redis", "--ulr", "redis://alice:Kq7vWz4rTn@h:1/0"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --ulr redis://alice:***@h:1/0" in err
    assert "Kq7v" not in err


# --- the harness (cachebolt._bench), shared by `cachebolt bench` and benches/ ---------------------


def test_neither_the_package_nor_a_service_imports_the_harness() -> None:
    # A fresh interpreter: pytest has imported the harness already.
    code = (
        "import sys, cachebolt\n"
        "cache = cachebolt.CacheService(); cache.set('k', 1); cache.close()\n"
        "heavy = ('cachebolt.cli', 'cachebolt._bench', 'matplotlib', 'cachetools', 'limits')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "import cachebolt.cli\n"
        "print(sorted(m for m in heavy[2:] if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # The package and a service load no harness; the command loads no peer and no matplotlib.
    assert done.stdout.splitlines() == ["[]", "[]"]


@pytest.mark.parametrize("name", list(peers.PEER_CACHES))
def test_each_peer_cache_loop_stores_reads_and_deletes(name: str) -> None:
    cache = peers.peer_cache(name, 100, 60)

    def stored(key: str) -> object:
        found = cache.obj.get(key)
        return found[0] if name == "theine" else found  # theine: (value, present)

    cache.set([("a", {"v": 1}), ("b", [2])])
    assert (stored("a"), stored("b")) == ({"v": 1}, [2])
    cache.get(["a", "missing"])  # reads, a miss included, raise nothing
    cache.delete(["a", "missing"])
    assert (stored("a"), stored("b")) == (None, [2])


def test_an_unknown_peer_cache_is_named() -> None:
    with pytest.raises(ValueError, match="not a peer cache: 'lru'"):
        peers.peer_cache("lru", 10, 60)


@pytest.mark.parametrize("strategy", list(peers.LIMITS_STRATEGIES))
def test_the_limits_loop_hits_each_key_once(strategy: str) -> None:
    from limits import RateLimitItemPerSecond, strategies
    from limits.storage import MemoryStorage

    storage = MemoryStorage()
    hit = peers.limits_hit(storage, strategy, 2, 60)
    hit(["a", "b"])
    hit(["a"])
    limiter = getattr(strategies, peers.LIMITS_STRATEGIES[strategy])(storage)
    item = RateLimitItemPerSecond(2, 60)
    assert (limiter.test(item, "a"), limiter.test(item, "b")) == (False, True)


def test_the_redis_py_loops_run_the_commands_under_the_prefix(redis_client: redis.Redis) -> None:
    runs = peers.redis_py_runs(redis_client, "p:", 60, "text")
    runs["set"]([("k", {"v": 1}), ("gone", 2)])
    runs["delete"](["gone"])
    runs["incr"](["n", "n"])
    runs["sadd"]([("s", "m")])
    runs["hset"]([("h", "f")])
    runs["get"](["k", "missing"])
    runs["sismember"]([("s", "m")])
    runs["hget"]([("h", "f"), ("h", "missing")])
    assert sorted(redis_client.keys("*")) == ["p:h", "p:k", "p:n", "p:s"]
    assert redis_client.get("p:k") == '{"v":1}' and 0 < redis_client.ttl("p:k") <= 60
    assert (redis_client.get("p:n"), redis_client.hget("p:h", "f")) == ("2", "text")
    assert redis_client.smembers("p:s") == {"m"}
    # Every redis-py loop serves the operations of `cachebolt bench` that share its name.
    assert {name.split(" ")[0] for name in harness.OPERATIONS} >= set(runs)
