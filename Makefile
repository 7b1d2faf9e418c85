# insiders: developer and operator entry points. `make` (or `make help`) lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?=
# Optional groups installed into .venv (CI adds spark: EXTRAS=dev,value,spark).
EXTRAS ?= dev,value
SAMPLE := data/sample/online_retail_sample.csv.gz
TARGET ?= local
export DBT_PROFILES_DIR := $(CURDIR)
export DBT_PROJECT_DIR := $(CURDIR)
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: help install run sample lint test test-fast bench bench-real bench-x10 bench-x100 bench-table bench-readme \
	bench-load bench-generate bench-score bench-all clean
.DEFAULT_GOAL := help

# Every target with a "## " comment is listed by `make help`.
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## create .venv and install the project with its dev and value groups (EXTRAS=dev,value,spark adds Spark)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

$(SAMPLE): | $(STAMP)
	$(BIN)/insiders generate --out $(SAMPLE) --customers 4000 --months 13 --seed 42

sample: $(SAMPLE) ## generate the sample data file (13 months, 4,000 customers)

# The quick start keeps its model pin beside its data (data/ is git-ignored), so trying the project never
# changes the version-controlled pinned_model.yml that production deploys.
run: export INSIDERS_PIN_FILE ?= data/pinned_model.yml
run: $(STAMP) ## the whole job on DuckDB (sample data, or DATA=file), then report.html and the answers
	@if [ -z "$(DATA)" ]; then $(MAKE) --no-print-directory sample; fi
	$(BIN)/insiders run --target $(TARGET) --source "$(if $(DATA),$(DATA),$(SAMPLE))" --train-if-unpinned
	$(BIN)/insiders report --target $(TARGET) --out report.html
	@echo
	$(BIN)/insiders answers --target $(TARGET)

lint: $(STAMP) ## ruff, mypy and sqlfluff
	$(BIN)/ruff check python_jobs tests benchmarks
	$(BIN)/mypy
	$(BIN)/sqlfluff lint models macros tests/dbt analyses

test: $(STAMP) lint ## lint + the whole test suite (needs PostgreSQL, the real file, Chromium, Spark; CI runs it)
	$(BIN)/pytest

# The developer loop: no server, no real file, no browser, no slow end-to-end runs.
test-fast: $(STAMP) ## unit tests on DuckDB and generated data, in a few minutes
	$(BIN)/ruff check python_jobs tests benchmarks
	$(BIN)/pytest -m "not slow and not postgres and not realdata" -q

# Benchmarks (figures, not tests). bench_pipeline.py measures every step of the pipeline on DuckDB and
# PostgreSQL beside the bare DuckDB query, appends to benchmarks/results/pipeline.csv and redraws
# docs/benchmark_pipeline.svg. The ×N files go to BENCH_DIR (default $INSIDERS_BENCH_DIR or
# ~/.cache/insiders-bench) and are reused. BENCH_TARGETS=local runs DuckDB only.
BENCH_TARGETS ?= local,postgres
BENCH_DIR ?= $(or $(INSIDERS_BENCH_DIR),$(HOME)/.cache/insiders-bench)
BENCH_PIPELINE = $(BIN)/python benchmarks/bench_pipeline.py --targets $(BENCH_TARGETS) --data-dir "$(BENCH_DIR)"

bench: $(STAMP) ## pipeline benchmark, real file and ×10, DuckDB and PostgreSQL
	$(BENCH_PIPELINE) --sizes real,x10

bench-real: $(STAMP) ## pipeline benchmark, real file only
	$(BENCH_PIPELINE) --sizes real

bench-x10: $(STAMP) ## pipeline benchmark, ×10 lines
	$(BENCH_PIPELINE) --sizes x10

bench-x100: $(STAMP) ## pipeline benchmark, ×100 lines (54 M; needs about 10 GB of disk)
	$(BENCH_PIPELINE) --sizes x100

bench-table: $(STAMP) ## print the benchmark figures as a Markdown table
	$(BIN)/python benchmarks/bench_pipeline.py --markdown

bench-readme: $(STAMP) ## rewrite the README's performance table from the figures
	$(BIN)/python benchmarks/bench_pipeline.py --update-readme

# The single-command benchmarks: loading alone, the sample generator, scoring alone.
bench-load: $(STAMP)
	$(BIN)/python benchmarks/bench_load.py --targets $(BENCH_TARGETS)

bench-generate: $(STAMP)
	$(BIN)/python benchmarks/bench_generate.py

bench-score: $(STAMP)
	$(BIN)/python benchmarks/bench_score.py

bench-all: bench bench-load bench-generate bench-score ## every benchmark

clean: ## remove dbt's target/, logs and data/ (the DuckDB file, the sample, the quick start's pin)
	rm -rf target dbt_packages logs data
