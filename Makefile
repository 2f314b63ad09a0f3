# Two commands a newcomer needs: `make run` (the daemon in the foreground) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Codex CLIs for the interop tests: the pinned one (every test) and the newest release (the coexistence
# tests run against both). Both are pinned exactly, so CI is reproducible; bump CODEX_NEWEST by hand.
CODEX_VERSION := 0.169.0
CODEX_NEWEST := 0.171.0
CODEX_DIR := .codex-cli
CODEX_BIN := $(CODEX_DIR)/node_modules/.bin/codex
CODEX_NEWEST_BIN := $(CODEX_DIR)/$(CODEX_NEWEST)/node_modules/.bin/codex
CODEX_BINS := $(abspath $(CODEX_BIN)):$(abspath $(CODEX_NEWEST_BIN))

# Bytecode for our own packages, written even where PYTHONDONTWRITEBYTECODE is set (as on these machines):
# without it every command compiles what it imports, and start-up doubles (~25 ms bare, ~60 → ~120 ms).
# Fresh files are skipped, so this costs ~50 ms when nothing changed.
COMPILE := $(BIN)/python -m compileall -q daemon service bench >/dev/null

.PHONY: run test bench clean

$(BIN)/session-syncd: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c requirements.lock -e .
	@touch $@

$(VENV): $(BIN)/session-syncd

$(VENV)/.test-extras: $(BIN)/session-syncd
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[test]'
	@touch $@

$(CODEX_BIN):
	npm install --silent --no-audit --no-fund --prefix $(CODEX_DIR) @openai/codex@$(CODEX_VERSION)
	@touch $@

$(CODEX_NEWEST_BIN):
	npm install --silent --no-audit --no-fund --prefix $(CODEX_DIR)/$(CODEX_NEWEST) @openai/codex@$(CODEX_NEWEST)
	@touch $@

run: $(BIN)/session-syncd
	@$(COMPILE)
	$(BIN)/session-syncd run

test: $(VENV)/.test-extras $(CODEX_BIN) $(CODEX_NEWEST_BIN)
	@$(COMPILE)
	SESSION_SYNCD_CODEX_BIN=$(abspath $(CODEX_BIN)) SESSION_SYNCD_CODEX_BINS=$(CODEX_BINS) \
	  $(BIN)/python -m pytest $(PYTEST_ARGS)

# `make bench SCALE_ARGS="--sessions 500"` for a quick scale run (the full one builds ~814 MiB, once).
bench: $(VENV)/.test-extras $(CODEX_BIN)
	@$(COMPILE)
	SESSION_SYNCD_CODEX_BIN=$(abspath $(CODEX_BIN)) $(BIN)/python bench/import_vs_codex.py --json-out bench/.work/import_vs_codex.json
	SESSION_SYNCD_CODEX_BIN=$(abspath $(CODEX_BIN)) $(BIN)/python bench/scale.py --rate-from bench/.work/import_vs_codex.json $(SCALE_ARGS)
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) $(CODEX_DIR) .pytest_cache
