# Quick start: `make run` serves the gateway in front of the built-in model; `make test` runs `make lint` (the layers
# with lint-imports, docs/architecture.md, and ruff) and then the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test compile lint bench bench-fleet demo lab fleet install clean screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[postgres,lab,test,engine,fleet,spark,otel]'
	touch $(STAMP)

# The detector's hot modules compiled with mypyc beside their sources (cuirass/compiled.py; BENCHMARKS "Compiled
# hot modules"), rebuilt when one is missing or older than its source. CUIRASS_PURE=1 make ... runs them as Python
# instead, as does a machine without a C compiler (with a warning).
compile: $(STAMP)
	$(BIN)/python tools/compile.py

install: compile

run: compile
	$(BIN)/cuirass serve

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy

# Two workers (pytest-xdist), each taking one test module at a time in collection order (modules marked `heavy`
# first, tests/conftest.py): most tests wait on real servers, so two workers fit two cores. TEST_WORKERS=0 runs
# them in one process.
TEST_WORKERS ?= 2
test: lint compile
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

bench: compile
	@command -v nginx >/dev/null && command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx wrk)
	$(BIN)/python bench/gateway_overhead.py
	$(BIN)/python bench/hardening_overhead.py
	$(BIN)/python bench/rewrite_bounds.py
	CUIRASS_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest -q tests/security

# The fleet's numbers (issue 18; docs/fleet.md): PostgreSQL, Redis and NATS on their standard local ports.
screenshots: compile  # docs/console-*.png: the operator console, driven in Debian's Chromium (apt-get install chromium)
	$(BIN)/python bench/console_screenshots.py

bench-fleet: compile
	@command -v nginx >/dev/null && command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx wrk)
	$(BIN)/python bench/shared_limits.py --write BENCHMARKS.md
	$(BIN)/python bench/push_delay.py
	$(BIN)/python bench/event_bus.py
	$(BIN)/python bench/shard_throughput.py
	$(BIN)/python bench/fleet_peak.py --write BENCHMARKS.md
	$(BIN)/python bench/history_spark.py --sizes 1000000

fleet: compile
	$(BIN)/cuirass fleet

demo: compile
	$(BIN)/python -m cuirass demo

lab: compile
	$(BIN)/cuirass lab detect --out lab-out/detect
	$(BIN)/cuirass lab distill --out lab-out/distill

clean:
	rm -rf $(VENV) .cuirass lab-out bench/results
