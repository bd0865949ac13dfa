"""The benchmark harness behind `cachebolt bench` and the scenarios of benches/.

Private: `cachebolt` never imports it (only `cachebolt.cli` and benches/ do), and it imports the
peer libraries and matplotlib only when a run asks for them. It ships in the wheel, so
`cachebolt bench --peers` works wherever the peers are installed (`pip install
'cachebolt[bench]'`).

- `harness`: the data, the timed operations per leg, `run_bench` and its `BenchResult`s.
- `peers`: the peer libraries driven through batch loops (cachetools, moka-py, theine, `limits`,
  raw redis-py), the same loops in `cachebolt bench` and in benches/.
- `plot`: the ops/s chart (matplotlib).
"""
