"""Incremental builds give exactly the tables a full refresh gives, on DuckDB and on PostgreSQL.

A file is split in two by invoice day and loaded in two deliveries, with ``dbt build`` after each: the second
build is incremental (new lines appended by load, per-customer totals recomputed for the customers the new
load touched). A full refresh of the same raw tables into another schema must then give the same rows, value
for value, in every incremental model and in customer_features. The generated sample runs in seconds; the
real file is the acceptance variant.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import re
from pathlib import Path

import pytest
from conftest import _DBT_SCRATCH, query, run_cli, run_dbt

from insiders.warehouse import Target

# Every model built incrementally, and the features table derived from them.
COMPARED_TABLES = (
    "int_sales__cleaned",
    "int_customers__aggregated",
    "int_product_customers__deduplicated",
    "int_products__aggregated_by_load",
    "quality_loads",
    "quality_lines_by_load_class",
    "customer_features",
)
FULL_SCHEMA_SUFFIX = "_full"


def split_by_day(source: Path, first_day_of_second: dt.date, folder: Path) -> tuple[Path, Path]:
    """Write the lines invoiced before ``first_day_of_second`` and the others to two files of the same layout.

    The bytes of each field are kept (latin-1 round-trips every byte); InvoiceDate is M/D/YYYY H:MM.
    """
    opener = gzip.open if source.suffix == ".gz" else open
    first, second = folder / "part1.csv", folder / "part2.csv"
    with (
        opener(source, "rt", encoding="latin-1", newline="") as reader_file,
        open(first, "w", encoding="latin-1", newline="") as first_file,
        open(second, "w", encoding="latin-1", newline="") as second_file,
    ):
        reader = csv.reader(reader_file)
        header = next(reader)
        day_column = header.index("InvoiceDate")
        writers = (csv.writer(first_file), csv.writer(second_file))
        for writer in writers:
            writer.writerow(header)
        counts = [0, 0]
        for row in reader:
            day = dt.datetime.strptime(row[day_column].split(" ")[0], "%m/%d/%Y").date()
            part = 0 if day < first_day_of_second else 1
            writers[part].writerow(row)
            counts[part] += 1
    assert min(counts) > 0, f"the split at {first_day_of_second} leaves a part empty: {counts}"
    return first, second


def full_schema_env(target: Target) -> dict[str, str]:
    """Environment that points dbt at a second schema of the same warehouse (same raw tables)."""
    name = f"{target.schema}{FULL_SCHEMA_SUFFIX}"
    return {"INSIDERS_DUCKDB_SCHEMA" if target.name == "local" else "INSIDERS_PG_SCHEMA": name}


def compiled_code(model: str) -> str:
    """The SQL dbt ran for ``model`` in the last invocation (from run_results.json)."""
    results = json.loads((_DBT_SCRATCH / "target" / "run_results.json").read_text(encoding="utf-8"))
    for result in results["results"]:
        if result["unique_id"] == f"model.insiders.{model}":
            return result.get("compiled_code") or ""
    raise AssertionError(f"{model} did not run in the last dbt invocation")


# The features step (selectors.yml) and the per-load product tables, which the marts step builds, in one dbt
# invocation, so that run_results.json holds the SQL of every compared model.
COMPARED_SELECTION = ("--select", *(f"+{table}" for table in COMPARED_TABLES), "+customer_value_inputs")


def build(target: Target, *extra: str, env: dict[str, str] | None = None) -> None:
    run_dbt("build", *COMPARED_SELECTION, *extra, target=target.name, env=env)


def assert_same_tables(target: Target) -> None:
    """Every compared table holds the same rows (with their multiplicity) in both schemas."""
    incremental, full = target.schema, f"{target.schema}{FULL_SCHEMA_SUFFIX}"
    for table in COMPARED_TABLES:
        columns = [name for (name,) in query(target, _columns_sql(target, incremental, table))]
        assert columns == [name for (name,) in query(target, _columns_sql(target, full, table))], table
        listed = ", ".join(columns)
        (rows,) = query(target, f"select count(*) from {incremental}.{table}")[0]
        assert rows > 0, f"{table} is empty"
        assert query(target, f"select count(*) from {full}.{table}") == [(rows,)], table
        differences = query(
            target,
            f"select count(*) from ("
            f"(select {listed} from {incremental}.{table} except all select {listed} from {full}.{table}) "
            f"union all "
            f"(select {listed} from {full}.{table} except all select {listed} from {incremental}.{table})"
            f") as differences",
        )
        assert differences == [(0,)], f"{table}: {differences[0][0]} rows differ between incremental and full"


def _columns_sql(target: Target, schema: str, table: str) -> str:
    return (
        "select column_name from information_schema.columns "
        f"where table_schema = '{schema}' and table_name = '{table}' order by ordinal_position"
    )


def loads_added(model: str) -> list[str]:
    """The load ids an incremental build of ``model`` filtered its lines by (macro load_id_in), in order; every
    such filter of the model names the same loads."""
    found = {
        tuple(re.findall(r"'([^']*)'", ids)) for ids in re.findall(r"load_id in \(([^)]*)\)", compiled_code(model))
    }
    assert len(found) == 1, f"{model}: expected one list of loads, found {found}"
    return list(found.pop())


def load_ids(target: Target) -> list[str]:
    return [row[0] for row in query(target, "select load_id from raw.load_log order by loaded_at")]


def load(target: Target, path: Path) -> None:
    # A month whose days are all 12 or less reads both ways; the files are month-first.
    run_cli("load", str(path), "--target", target.name, "--quiet", "--date-format", "%m/%d/%Y %H:%M")


def two_deliveries_then_full_refresh(target: Target, source: Path, second_from: dt.date, folder: Path) -> None:
    first, second = split_by_day(source, second_from, folder)
    load(target, first)
    build(target)
    load(target, second)
    build(target)
    # The second build took the incremental path, not a rebuild, and read the second load's lines only.
    assert "held_totals" in compiled_code("int_customers__aggregated")
    assert loads_added("int_sales__cleaned") == load_ids(target)[1:]
    assert loads_added("int_products__aggregated_by_load") == load_ids(target)[1:]

    build(target, "--full-refresh", env=full_schema_env(target))
    assert "held_totals" not in compiled_code("int_customers__aggregated")
    assert_same_tables(target)


@pytest.mark.slow
def test_a_new_delivery_builds_the_same_tables_as_a_full_refresh(target: Target, tmp_path: Path) -> None:
    """Generated sample: four months, then a fifth; then a back-fill in place, a normal run, a rules change."""
    sample = tmp_path / "sample.csv.gz"
    run_cli("generate", "--out", str(sample), "--customers", "200", "--months", "5", "--seed", "11", "--quiet")
    with gzip.open(sample, "rt", encoding="latin-1", newline="") as lines:
        days = sorted(
            dt.datetime.strptime(row["InvoiceDate"].split(" ")[0], "%m/%d/%Y").date() for row in csv.DictReader(lines)
        )
    last_month = days[-1].replace(day=1)
    two_deliveries_then_full_refresh(target, sample, last_month, tmp_path)

    # A run with as_of_date in the incremental schema cuts the totals at that day (a table build); the next run
    # without it finds the customers with later lines by their line count and makes the tables exact again.
    backfill_day = (last_month - dt.timedelta(days=20)).isoformat()
    build(target, "--vars", f"{{as_of_date: '{backfill_day}'}}")
    assert query(target, f"select distinct as_of_date from {target.schema}.customer_features") == [
        (dt.date.fromisoformat(backfill_day),)
    ]
    build(target)
    assert "held_totals" in compiled_code("int_customers__aggregated")
    assert_same_tables(target)

    # A change of the cleaning rules (here the minimum price) reclassifies past lines in the same incremental run.
    (valid_before,) = query(target, f"select count(*) from {target.schema}.int_sales__cleaned")[0]
    rules = "{min_unit_price: 2.5}"
    build(target, "--vars", rules)
    # Rows of other rules do not count as held: every load is added again under the new rules.
    assert loads_added("int_sales__cleaned") == sorted(load_ids(target))
    (valid_after,) = query(target, f"select count(*) from {target.schema}.int_sales__cleaned")[0]
    assert 0 < valid_after < valid_before
    build(target, "--full-refresh", "--vars", rules, env=full_schema_env(target))
    assert_same_tables(target)


@pytest.mark.realdata
@pytest.mark.slow
def test_real_file_in_two_deliveries_builds_the_same_tables_as_a_full_refresh(
    target: Target, real_data: Path, tmp_path: Path
) -> None:
    """The real file up to October 2011, then November and December 2011."""
    two_deliveries_then_full_refresh(target, real_data, dt.date(2011, 11, 1), tmp_path)
