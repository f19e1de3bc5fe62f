# Kling Preflight — the two commands a new user needs are `make run` and `make test`.
# Both create the virtual environment (.venv) first if it is missing or out of date.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

## Scan the sample photos with the offline provider, print a summary, write out/samples.csv
run: $(STAMP)
	@mkdir -p out
	$(BIN)/kling-preflight scan resources/samples --provider local --export out/samples.csv

## Run every test (Qt offscreen); non-zero exit on any failure
test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) out build dist .pytest_cache
