# Kling Preflight — the two commands a new user needs are `make run` and `make test`.
# Both create the virtual environment (.venv) first if it is missing or out of date.

# The Pythons this project is tested with (pyproject.toml's requires-python says the same).
SUPPORTED := 3.13 3.12 3.11
# Without PYTHON=, the newest supported one found: python3.X on the PATH, else pyenv's install
# of 3.X (its shims answer only for the active version), for 3.13, 3.12, 3.11; then python3 if
# it is one of them. Each candidate is run once, so one that cannot start is passed over.
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null)
runs = $(shell $(1) -c "" >/dev/null 2>&1 && echo $(1))
find_python = $(firstword $(call runs,python$(1)) \
                $(foreach p,$(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(1).*/bin/python$(1)))),$(call runs,$(p))))
ifdef PYTHON
# PYTHON=python3.12 that does not start here (a pyenv shim whose version is not the active one)
# means that version wherever find_python finds it.
ifeq ($(call runs,$(PYTHON)),)
wanted := $(patsubst python%,%,$(filter python3.%,$(notdir $(PYTHON))))
override PYTHON := $(or $(if $(wanted),$(call find_python,$(wanted))),$(PYTHON))
endif
else
PYTHON := $(firstword $(foreach v,$(SUPPORTED),$(call find_python,$(v))) \
            $(shell python3 -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] not in '$(SUPPORTED)'.split())" >/dev/null 2>&1 && echo python3))
endif
PYVER  := $(shell $(or $(PYTHON),false) -c "import sys; print('%d.%d' % sys.version_info[:2])" 2>/dev/null)
VENV   ?= .venv
BIN    := $(VENV)/bin
# One stamp per Python: asking for another rebuilds the environment with it.
STAMP  := $(VENV)/.installed-py$(PYVER)

DIST_DIR := dist/kling-preflight
FROZEN   := $(DIST_DIR)/.built-stamp
SOURCES  := $(shell find core plugins desktop resources -type f -not -name '*.pyc' 2>/dev/null)
VERSION   = $(shell $(BIN)/python -c "from importlib.metadata import version; print(version('kling-preflight'))")
PLATFORM := $(shell uname -s | tr A-Z a-z)-$(shell uname -m)

.PHONY: setup run app test test-tools dist clean bench pythons

$(STAMP): pyproject.toml
	@case " $(SUPPORTED) " in *" $(PYVER) "*) ;; *) echo "Kling Preflight needs Python 3.11, 3.12 or 3.13 ($(if $(PYVER),$(PYTHON) is $(PYVER),none was found)): install one, or name it with make PYTHON=/path/to/python3.13."; exit 1;; esac
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,dist]"
	touch $(STAMP)

setup: $(STAMP)

## The supported Pythons found here, newest first, as "version command" lines (.ci/run uses them)
pythons:
	@$(foreach v,$(SUPPORTED),$(if $(call find_python,$(v)),echo "$(v) $(call find_python,$(v))";)) true

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
	$(BIN)/python -m bench.detectors $(if $(QUICK),--quick)
	$(BIN)/python -m bench.gui $(if $(QUICK),--quick)

## Build the double-click app into dist/ (PyInstaller, from build.spec) and pack a tarball
dist: $(FROZEN)

$(FROZEN): $(STAMP) build.spec $(SOURCES)
	$(BIN)/pyinstaller --noconfirm --log-level WARN build.spec
	cp resources/kling-preflight.desktop resources/icons/kling-preflight.png $(DIST_DIR)/
	tar -C dist -czf dist/kling-preflight-$(VERSION)-$(PLATFORM).tar.gz kling-preflight
	touch $(FROZEN)

clean:
	rm -rf $(VENV) .venv-* out build dist .pytest_cache
