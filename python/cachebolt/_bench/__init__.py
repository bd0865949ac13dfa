"""The benchmark harness behind `cachebolt bench` and the scenarios of benches/.

Private, imported only by `cachebolt.cli` and benches/; peers and matplotlib load only when asked
for. `harness` measures, `peers` drives the peer libraries, `plot` draws the ops/s chart.
"""
