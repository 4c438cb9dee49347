# Two commands for a newcomer:
#   make studio   set up, then launch the studio on the embedded model at http://127.0.0.1:7860
#   make test     set up (with Chromium for the browser tests), then run the whole test suite
VENV ?= .venv
# The suite runs in one process per core (at most 4; tests/conftest.py gives each its share of the cores).
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
export STUDIO_HOME ?= $(CURDIR)/.studio/home

.PHONY: setup studio test test-fast bench

setup:
	@bash scripts/setup.sh

studio: setup
	$(VENV)/bin/studio ui

test:
	@bash scripts/setup.sh --browser
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadscope

test-fast: setup
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadscope -m "not slow and not e2e"

bench: setup
	$(VENV)/bin/python bench/train_throughput.py
