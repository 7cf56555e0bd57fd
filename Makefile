# Board: `make run` starts the board, `make test` installs what is missing and runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8888
ARTIFACTS := test-artifacts

.PHONY: run test deps venv system-deps node-deps bench clean

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

bench: $(BIN)/.runtime
	$(BIN)/pip install -q -e '.[bench]'
	@cd bench && { [ -d node_modules/ws ] || npm ci --no-audit --no-fund --silent; }
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(ARTIFACTS) tests/node/node_modules bench/node_modules
