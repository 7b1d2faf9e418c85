# insiders: developer and operator entry points.
#   make run    the whole job on the embedded DuckDB: sample data (or DATA=path/to/file) -> load ->
#               features -> train and pin a model if none is pinned -> score -> marts -> report.html ->
#               the answers to the business questions
#   make test   lint (ruff, sqlfluff) + the whole test suite
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
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,value]'
	touch $(STAMP)

$(SAMPLE): | $(STAMP)
	$(BIN)/insiders generate --out $(SAMPLE) --customers 4000 --months 13 --seed 42

sample: $(SAMPLE)

# The quick start keeps its model pin beside its data (data/ is git-ignored), so trying the project never
# changes the version-controlled pinned_model.yml that production deploys.
run: export INSIDERS_PIN_FILE ?= data/pinned_model.yml
run: $(STAMP)
	@if [ -z "$(DATA)" ]; then $(MAKE) --no-print-directory sample; fi
	$(BIN)/insiders run --target $(TARGET) --source "$(if $(DATA),$(DATA),$(SAMPLE))" --train-if-unpinned
	$(BIN)/insiders report --target $(TARGET) --out report.html
	@echo
	$(BIN)/insiders answers --target $(TARGET)

lint: $(STAMP)
	$(BIN)/ruff check python_jobs tests benchmarks
	$(BIN)/sqlfluff lint models macros tests/dbt analyses

test: $(STAMP) lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_load.py
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_score.py

clean:
	rm -rf target dbt_packages logs data
