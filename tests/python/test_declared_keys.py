"""The line keys are proven, by the database's own keys where it has them and by counting elsewhere.

On PostgreSQL the loader gives ``raw.transactions`` its primary key (load_id, line_number) and
``int_sales__cleaned`` is built with a unique index on (load_id, line_number): the database refuses a repeated
key, and the ``unique_combination`` tests of those keys read nothing. On DuckDB (and on a PostgreSQL table that
lacks the key) the same tests count. Either way a repeated key cannot pass: these tests write one and watch it
refused or reported. ``not_null_columns`` reports a null in any of its columns.
"""

from __future__ import annotations

import json

import pytest
from conftest import _DBT_SCRATCH, connect, dbt_test, execute

from insiders.warehouse import Target

SALES_KEY_TEST = "unique_combination_int_sales__cleaned_load_id__line_number__load_id"
RAW_KEY_TEST = "source_unique_combination_online_retail_transactions_load_id__line_number__load_id"
PROVEN = "proven by the database's key"


def _compiled_tests() -> dict[str, str]:
    results = json.loads((_DBT_SCRATCH / "target" / "run_results.json").read_text(encoding="utf-8"))
    return {
        r["unique_id"].split(".")[2]: r.get("compiled_code") or ""
        for r in results["results"]
        if r["unique_id"].startswith("test.")
    }


def test_line_keys_are_proven_by_the_database_or_counted(features_built: Target) -> None:
    target = features_built
    compiled = _compiled_tests()
    key_tests = {name: code for name, code in compiled.items() if name.startswith((SALES_KEY_TEST, RAW_KEY_TEST))}
    assert len(key_tests) == 2, sorted(compiled)
    for name, code in key_tests.items():
        if target.type == "postgres":
            assert PROVEN in code, name
        else:
            assert PROVEN not in code and "having count(*) > 1" in code, name

    schema = target.schema
    line = (
        f"select * from {schema}.int_sales__cleaned where transaction_line_id = "
        f"(select min(transaction_line_id) from {schema}.int_sales__cleaned)"
    )
    if target.type == "postgres":
        import psycopg2

        # The database refuses a repeated key in the raw lines and in the cleaned lines.
        with pytest.raises(psycopg2.errors.UniqueViolation):
            execute(target, "insert into raw.transactions select * from raw.transactions limit 1")
        with pytest.raises(psycopg2.errors.UniqueViolation):
            execute(target, f"insert into {schema}.int_sales__cleaned {line}")
        # Without the index (a table built before it existed), the test counts, and finds the repeated key.
        indexes = (
            f"select indexrelid::regclass::text from pg_index where indrelid = '{schema}.int_sales__cleaned'::regclass"
        )
        with connect(target) as wh:
            (index,) = wh.query(indexes)[0]
        execute(target, f"drop index {index}")
    execute(target, f"insert into {schema}.int_sales__cleaned {line}")
    status, output = dbt_test(target, SALES_KEY_TEST)
    assert status != 0 and "FAIL 1" in output, output


def test_not_null_columns_reports_a_null_in_any_column(features_built: Target) -> None:
    target = features_built
    status, output = dbt_test(target, "not_null_columns_int_sales__cleaned*")
    assert status == 0, output
    execute(
        target,
        f"update {target.schema}.int_sales__cleaned set line_revenue = null where transaction_line_id = "
        f"(select max(transaction_line_id) from {target.schema}.int_sales__cleaned)",
    )
    status, output = dbt_test(target, "not_null_columns_int_sales__cleaned*")
    assert status != 0 and "FAIL 1" in output, output
