# Two commands: `make run` serves everything locally, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed

.PHONY: run test lint typecheck audit soak setup clean bench bench-quick protos vendor

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): requirements.txt constraints.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(TEST_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install -q --no-deps gcloud-tasks-emulator==0.6.2 pyyaml==6.0.3  # pins an old protobuf: no deps
	touch $@

setup: $(TEST_STAMP)

## make run: the service on http://127.0.0.1:4000 (SQLite under ./var, in-process bus, no cloud)
run: $(RUN_STAMP)
	$(BIN)/whispr-messaging dev

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy shared functions bench

## make audit: known vulnerabilities in the installed pinned packages (pip-audit; shared/devtools/audit.py)
audit: $(TEST_STAMP)
	$(BIN)/python -m shared.devtools.audit

## make test: lint, types, the advisory check, then the whole suite against a throwaway PostgreSQL (store tests on SQLite too)
test: lint typecheck audit
	$(BIN)/pytest

## make soak: the reliability suite's long run (docs/reliability.md): 100,000 fuzzed socket frames,
## 400 randomized hostile JSON cases per route and push, three PostgreSQL outages under load, the relay SIGKILL test
soak: $(TEST_STAMP)
	WHISPR_SOAK=1 $(BIN)/pytest -s --durations=10 tests/reliability tests/relay/test_crash.py

## make bench: the whole benchmark (B1-B6, Synapse, ceilings; long). Results in ./bench-results
bench: $(TEST_STAMP)
	$(BIN)/whispr-messaging bench $(BENCH_ARGS)

## make bench-quick: the seconds-long smoke run of every scenario (what CI runs, Synapse left out)
bench-quick: $(TEST_STAMP)
	$(BIN)/whispr-messaging bench --quick --skip-synapse $(BENCH_ARGS)

## make protos: regenerate shared/protogen/ from protos/ (committed; tests/infra/test_protos.py checks it)
protos: $(TEST_STAMP)
	$(BIN)/python -m shared.devtools.protogen

## make vendor: refresh shared/web/vendor from npm (the phoenix client, Swagger UI): versions in shared/web/package.json
vendor:
	rm -rf build/web-vendor && mkdir -p build/web-vendor
	cp shared/web/package.json build/web-vendor/
	cd build/web-vendor && npm install --no-audit --no-fund --silent
	cp build/web-vendor/node_modules/phoenix/priv/static/phoenix.min.js build/web-vendor/node_modules/phoenix/LICENSE.md shared/web/vendor/phoenix/
	cd build/web-vendor/node_modules/swagger-ui-dist && cp swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE ../../../../shared/web/vendor/swagger-ui/

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

## make checkov: checkov over terraform/ and deploy/ (its own virtualenv), failing on findings the
## baseline (deploy/checkov-baseline.json) does not accept with a reason
checkov: $(TEST_STAMP)
	test -x .venv-checkov/bin/checkov || { $(PYTHON) -m venv .venv-checkov && .venv-checkov/bin/pip install -q -r requirements-checkov.txt; }
	$(BIN)/python -m shared.devtools.checkov_gate --checkov .venv-checkov/bin/checkov

## make constraints: pin every installed package (indirect ones too) after changing requirements
constraints: $(TEST_STAMP)
	{ head -3 constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^whispr-messaging'; } > constraints.new
	mv constraints.new constraints.txt
