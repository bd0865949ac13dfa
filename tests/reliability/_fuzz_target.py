"""Fuzz targets run by test_security.py in a subprocess (atheris ends its process when done).

`python _fuzz_target.py decode|glob RUNS` runs atheris (libFuzzer, coverage-guided) for RUNS inputs:

* decode: the bytes are planted as a stored value and read through `CacheService.get` (memory
  store: the same decode path as Redis mode); the read must return a value or raise
  `SerializationError`, and pub/sub decoding the same way must not raise anything else.
* glob: the input is split into a pattern and keys; `MemoryStore.keys(pattern)` and `del_pattern`
  must agree with the Python port of Redis's matcher (`_glob_oracle.py`).

Any other exception, a disagreement or a crash (a signal in the Rust code) ends the run with a
non-zero status and the input that caused it.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports():
    from _glob_oracle import scan_matches
    from cachebolt import CacheService, SerializationError
    from cachebolt._core import MemoryStore

STORE = MemoryStore(cleanup_interval_seconds=None)
CACHE = CacheService(store=STORE)


def decode(data: bytes) -> None:
    STORE.set("k", data)
    with contextlib.suppress(SerializationError):
        CACHE.get("k")


def glob(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    pattern = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 24))
    keys = {
        provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(1, 24)) for _ in range(4)
    }
    keys.discard("")
    if not pattern:
        return
    STORE.flush()
    for key in keys:
        STORE.set(key, b"1")
    expected = {key for key in keys if scan_matches(pattern, key)}
    got = set(STORE.keys(pattern))
    if got != expected:
        raise AssertionError(f"pattern {pattern!r}: store {got!r} != oracle {expected!r}")
    if STORE.del_pattern(pattern) != len(expected):
        raise AssertionError(f"del_pattern {pattern!r} count differs")


if __name__ == "__main__":
    target = {"decode": decode, "glob": glob}[sys.argv[1]]
    atheris.Setup([sys.argv[0], f"-runs={sys.argv[2]}", "-seed=1"], target)
    atheris.Fuzz()
