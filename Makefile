# certplane — the two commands are `make run` and `make test`; `make install` does the setup.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export POWERTOOLS_TRACE_DISABLED := 1

.PHONY: install run test lint format synth clean bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[deploy,test,hsm,acme]'
	touch $(STAMP)

run: install
	$(BIN)/certplane dev $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# --dist loadgroup: tests marked xdist_group share one worker (tests/deploy deploys once).
test: lint
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider

# Performance measurements (issue 8): writes bench/results.json; not part of `make test`.
bench: install
	$(BIN)/python -m bench.run

synth: install
	$(BIN)/python app.py

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache *.egg-info
