# faro: every target installs what it needs first (`make setup` is idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.faro-installed

.PHONY: help setup browser demo demo-stop test test-spark35 test-flink120 lint bench clean cluster-up cluster-down submit

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install faro with every extra (quick when done)

# Each venv is built by one rule, from the packages its stamp names (the engine-version
# venvs below name theirs too).
$(STAMP): PACKAGES = '.[all,dev]'
%/.faro-installed: pyproject.toml
	@test -x $(@D)/bin/python || $(PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install --quiet --upgrade pip
	$(@D)/bin/python -m pip install --quiet -e $(PACKAGES)
	@touch $@

# The UI tests drive the Debian package chromium, installed here when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: ## install headless Chromium (Debian package) when it is missing
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing chromium (apt-get) for the UI tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

demo: setup ## start broker + materializer + API, run both Flink jobs, print curl commands that answer
	$(BIN)/python -m faro._dev.demo up

demo-stop: setup ## stop what `make demo` left running
	$(BIN)/python -m faro._dev.demo down

test: setup browser ## run the whole test suite against real Kafka, Flink, Spark, Faust and Chromium
	$(BIN)/python -m pytest

# The adapters also support older engine releases: their tests run again there, each
# in a venv of its own (.venv keeps apache-flink 2.3 and pyspark 4). On apache-flink
# 1.20 the Flink -> API tests are left out: the API needs pyarrow >= 16, which 1.20
# excludes (through apache-beam 2.48).
.venv-spark35/.faro-installed: PACKAGES = '.[spark,kafka,api,dev]' 'pyspark>=3.5,<3.6'
.venv-flink120/.faro-installed: PACKAGES = '.[kafka,otel,test]' 'apache-flink>=1.20,<1.21'

test-spark35: .venv-spark35/.faro-installed ## run the Spark tests on pyspark 3.5 (installs .venv-spark35)
	.venv-spark35/bin/python -m pytest tests/spark

test-flink120: .venv-flink120/.faro-installed ## run the PyFlink tests on apache-flink 1.20 (installs .venv-flink120)
	.venv-flink120/bin/python -m pytest tests/flink --ignore tests/flink/test_flink_to_api.py

lint: setup ## ruff, mypy, and vermin: nothing newer than Python 3.10, the oldest faro supports
	$(BIN)/ruff check faro tests bench jobs
	$(BIN)/mypy
	$(BIN)/vermin --no-tips --violations --eval-annotations -t=3.10- faro tests bench jobs

cluster-up: setup ## start the standalone Flink cluster from the apache-flink wheel (web UI :8081)
	$(BIN)/python -m faro._dev.flink_cluster up

cluster-down: ## stop the standalone Flink cluster
	@test ! -x $(BIN)/python || $(BIN)/python -m faro._dev.flink_cluster down

submit: setup ## submit a job: make submit JOB=jobs/flink_order_pipeline.py ARGS="--sink stdout"
	@test -n "$(JOB)" || { echo 'usage: make submit JOB=jobs/flink_order_pipeline.py ARGS="..."'; exit 2; }
	$(BIN)/python -m faro._dev.flink_cluster submit $(JOB) -- $(ARGS)

bench: setup ## run every benchmark in bench/ and print its ratios
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .venv-spark35 .venv-flink120 .pytest_cache .mypy_cache .ruff_cache .hypothesis
