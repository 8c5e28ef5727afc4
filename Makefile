# certplane — the two commands are `make run` and `make test`; `make install` does the setup.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export POWERTOOLS_TRACE_DISABLED := 1

.PHONY: install run test lint format synth deploy clean bench

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

# The CDK CLI, pinned in package-lock.json, installed locally (no global npm install).
CDK := node_modules/.bin/cdk
$(CDK): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Templates into cdk.out/; needs no AWS credentials (stacks are environment-agnostic) and
# runs cdk-nag (context `nag` in cdk.json). `make synth SYNTH_ARGS="-c config=my.toml"`.
synth: install $(CDK)
	AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_CLI_TELEMETRY=true NPM_CONFIG_UPDATE_NOTIFIER=false \
	  npx --no-install cdk synth --no-notices -q $(SYNTH_ARGS)

# Deploys every stack with the operator's AWS credentials (README: Deploying to AWS).
deploy: install $(CDK)
	CDK_DISABLE_CLI_TELEMETRY=true npx --no-install cdk deploy --all $(SYNTH_ARGS)

clean:
	rm -rf $(VENV) node_modules cdk.out .pytest_cache .ruff_cache *.egg-info
