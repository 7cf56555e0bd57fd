# Board: `make run` starts the board, `make test` installs what is missing and runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8888
ARTIFACTS := test-artifacts

# The oldest and the newest Tornado that setup.cfg allows: `make test-tornado` runs the suite on each.
TORNADO_VERSIONS ?= 6.4 6.6.1

.PHONY: run test test-tornado deps venv system-deps node-deps bench clean

run: $(BIN)/.runtime
	$(BIN)/python board.py --port=$(PORT)

$(BIN)/.runtime:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	touch $@

$(BIN)/.test: setup.cfg $(BIN)/.runtime
	$(BIN)/pip install -q -e '.[test]'
	touch $@

# Debian packages for the real components the tests start: Chromium, nginx.
system-deps:
	@sh tests/install-system.sh

# npm ci again whenever package-lock.json is newer than what was installed (a package was added).
node-deps:
	@cd tests/node && { [ -f node_modules/.package-lock.json ] && [ ! package-lock.json -nt node_modules/.package-lock.json ] \
		|| npm ci --no-audit --no-fund --silent; }

deps: $(BIN)/.test system-deps node-deps

test: deps
	rm -rf $(ARTIFACTS) && mkdir -p $(ARTIFACTS)
	$(BIN)/python -m pytest -q tests
	@echo "Screenshots and logs of the browser tests: $(ARTIFACTS)/"

# One virtual environment per Tornado version, made once (and again when setup.cfg changes).
.venv-tornado-%/.ready: setup.cfg
	$(PYTHON) -m venv .venv-tornado-$*
	.venv-tornado-$*/bin/pip install -q -e '.[test]' 'tornado==$*'
	touch $@

test-tornado: $(foreach v,$(TORNADO_VERSIONS),.venv-tornado-$(v)/.ready) system-deps node-deps
	@for v in $(TORNADO_VERSIONS); do \
	  echo "== Tornado $$v"; \
	  .venv-tornado-$$v/bin/python -m pytest -q tests || exit 1; \
	done

bench: $(BIN)/.runtime
	$(BIN)/pip install -q -e '.[bench]'
	@cd bench && { [ -d node_modules/ws ] || npm ci --no-audit --no-fund --silent; }
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .venv-tornado-* $(ARTIFACTS) tests/node/node_modules bench/node_modules
