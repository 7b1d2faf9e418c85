# insiders: developer and operator entry points.
#   make run    sample data (or DATA=path/to/file) -> load -> dbt build, on the embedded DuckDB
#   make test   lint + dbt build + pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?=
SAMPLE := data/sample/online_retail_sample.csv.gz
TARGET ?= local
export DBT_PROFILES_DIR := $(CURDIR)
export DBT_PROJECT_DIR := $(CURDIR)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: install run sample load build lint test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(SAMPLE): | $(STAMP)
	$(BIN)/insiders generate --out $(SAMPLE) --customers 4000 --months 13 --seed 42

sample: $(SAMPLE)

run: $(STAMP)
	@if [ -n "$(DATA)" ]; then $(BIN)/insiders load "$(DATA)" --target $(TARGET); \
	else $(MAKE) --no-print-directory sample && $(BIN)/insiders load $(SAMPLE) --target $(TARGET); fi
	$(BIN)/dbt build --selector features --target $(TARGET)

lint: $(STAMP)
	$(BIN)/ruff check python_jobs tests benchmarks
	$(BIN)/sqlfluff lint models macros tests/dbt analyses

test: $(STAMP) lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_generate.py

clean:
	rm -rf target dbt_packages logs data
