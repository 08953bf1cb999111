# Two entry points: `make demo` and `make test`. Both build .venv from nothing;
# `make test` runs the linters (ruff, mypy; also `make lint`), then the tests.
# `make bench` (slow, and part of neither) reruns every
# benchmark, one after the other, and rewrites benchmarks/RESULTS.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,notebooks,bench]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests jaxloss README.md

demo: $(STAMP)
	$(BIN)/python -m jaxloss_examples.demo

BENCHMARKS := contrastive_chunked distributed_ring barlow_twins_sharded \
              linear_cross_entropy linear_distillation vocab_parallel \
              gradcache optax_dropin

bench: $(STAMP)
	for b in $(BENCHMARKS); do $(BIN)/python -m benchmarks.$$b || exit 1; done
	$(BIN)/python -m benchmarks.plots

clean:
	rm -rf $(VENV) out .pytest_cache
