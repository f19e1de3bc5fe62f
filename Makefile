# Kling Preflight — the two commands a new user needs are `make run` and `make test`.
# Both create the virtual environment (.venv) first if it is missing or out of date.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

DIST_DIR := dist/kling-preflight
FROZEN   := $(DIST_DIR)/.built-stamp
SOURCES  := $(shell find core plugins desktop resources -type f -not -name '*.pyc' 2>/dev/null)
VERSION   = $(shell $(BIN)/python -c "from importlib.metadata import version; print(version('kling-preflight'))")
PLATFORM := $(shell uname -s | tr A-Z a-z)-$(shell uname -m)

.PHONY: setup run app test test-tools dist clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,dist]"
	touch $(STAMP)

setup: $(STAMP)

## Scan the sample photos with the offline provider, print a summary, write out/samples.csv
run: $(STAMP)
	@mkdir -p out
	$(BIN)/kling-preflight scan resources/samples --provider local --export out/samples.csv

## Start the desktop app
app: $(STAMP)
	$(BIN)/kling-preflight-gui

## Run ruff, the import contracts (pyproject.toml) and every test (Qt offscreen), frozen app included; non-zero exit on any failure
test: $(STAMP) $(FROZEN) test-tools
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen KLING_PREFLIGHT_FROZEN_DIR=$(DIST_DIR) $(BIN)/python -m pytest

# LibreOffice lets the reliability tests open an exported CSV as a spreadsheet would. Installed
# where we may (root with apt-get); elsewhere that one test says it was skipped and why.
test-tools:
	@command -v soffice >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    libreoffice-calc-nogui >/dev/null; } ; } || echo "LibreOffice not installed: the spreadsheet check will be skipped."

## Benchmarks: print tables of figures (about 9 min); `make bench QUICK=1` is a 1-minute smoke run
bench: $(STAMP)
	$(BIN)/python -m bench.scan $(if $(QUICK),--quick)
	$(BIN)/python -m bench.remote $(if $(QUICK),--quick)
	$(BIN)/python -m bench.memory $(if $(QUICK),--quick)
	$(BIN)/python -m bench.local $(if $(QUICK),--quick)
	$(BIN)/python -m bench.gui $(if $(QUICK),--quick)

## Build the double-click app into dist/ (PyInstaller, from build.spec) and pack a tarball
dist: $(FROZEN)

$(FROZEN): $(STAMP) build.spec $(SOURCES)
	$(BIN)/pyinstaller --noconfirm --log-level WARN build.spec
	cp resources/kling-preflight.desktop resources/icons/kling-preflight.png $(DIST_DIR)/
	tar -C dist -czf dist/kling-preflight-$(VERSION)-$(PLATFORM).tar.gz kling-preflight
	touch $(FROZEN)

clean:
	rm -rf $(VENV) out build dist .pytest_cache
