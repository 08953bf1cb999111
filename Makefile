# Two entry points: `make demo` and `make test`. Both build .venv from nothing;
# `make test` runs the linters (ruff, mypy; also `make lint`), then the tests.
# `make docs` builds the documentation site into docs/_build/html (warnings
# are errors); `make dist` builds the wheel and sdist into dist/ and tests
# them installed in a fresh virtual environment (.ci/run runs both after
# `make test`).
# `make bench` (slow, and part of neither) reruns every
# benchmark, one after the other, and rewrites benchmarks/RESULTS.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: test lint demo docs dist bench venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,notebooks,bench]'
	touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup --ignore=tests/test_wheel.py \
	  tests jaxloss README.md docs/choosing.md

# With JAXLOSS_EXECUTED_NOTEBOOKS set (by .ci/run), the notebooks executed by
# tests/test_notebooks.py are used and not executed again (docs/conf.py).
docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -b html -W --keep-going -q docs docs/_build/html
	$(BIN)/python docs/apidoc.py --check-site docs/_build/html

dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	JAXLOSS_DIST=dist $(BIN)/python -m pytest -q tests/test_wheel.py

demo: $(STAMP)
	$(BIN)/python -m jaxloss_examples.demo

BENCHMARKS := contrastive_chunked distributed_ring barlow_twins_sharded \
              linear_cross_entropy linear_distillation vocab_parallel \
              gradcache optax_dropin

bench: $(STAMP)
	for b in $(BENCHMARKS); do $(BIN)/python -m benchmarks.$$b || exit 1; done
	$(BIN)/python -m benchmarks.plots

clean:
	rm -rf $(VENV) out .pytest_cache dist docs/_build docs/api docs/notebooks
