"""The marts of an incremental run and their incremental publication equal those of a full refresh.

``insiders run`` on a history and then on a new month: the second run appends the new load's lines to
``fct_sales`` in the build schema and to its published copy. A full refresh of the same raw tables, in a schema of
its own, must publish the same line-level marts, row for row; so must a run after a change of the cleaning rules,
which rebuilds ``fct_sales`` and copies it in full. ``dim_products`` is added up from per-load totals: the new
month must add its own without recomputing the history's, and a product renamed in it must show its new name.
The publish step's choices (append, or copy in full and why) and its atomicity are checked on hand-made tables,
on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import pytest
from conftest import execute, query, run_cli
from test_incremental import split_by_day

from insiders.publish import publish_marts
from insiders.warehouse import Target, connect

# The marts computed from the lines, compared whole (dim_customers without the scoring run's time).
COMPARED_MARTS = {
    "fct_sales": (),
    "dim_products": (),
    "segment_monthly_revenue": (),
    "dim_customers": ("scored_at",),
}
FULL = "refreshed"  # a schema of its own ("full" is an SQL keyword)


def _schema_env(target: Target, schema: str) -> dict[str, str]:
    return {"INSIDERS_DUCKDB_SCHEMA" if target.name == "local" else "INSIDERS_PG_SCHEMA": schema}


def _run(target: Target, source: Path, *extra: str, monkeypatch: pytest.MonkeyPatch, schema: str) -> str:
    with monkeypatch.context() as patch:
        for name, value in _schema_env(target, schema).items():
            patch.setenv(name, value)
        done = run_cli(
            "run", "--target", target.name, "--source", str(source), "--date-format", "%m/%d/%Y %H:%M", *extra
        )
    assert "Run succeeded" in done.stdout, done.stdout
    return done.stdout


def _columns(target: Target, schema: str, table: str) -> list[str]:
    return [
        name
        for (name,) in query(
            target,
            "select column_name from information_schema.columns "
            f"where table_schema = '{schema}' and table_name = '{table}' order by ordinal_position",
        )
    ]


def assert_same_rows(target: Target, table: str, left: str, right: str, leave_out: tuple[str, ...] = ()) -> None:
    """``left.table`` and ``right.table`` hold the same rows, with their multiplicity."""
    columns = _columns(target, left, table)
    assert columns == _columns(target, right, table), table
    listed = ", ".join(c for c in columns if c not in leave_out)
    (rows,) = query(target, f"select count(*) from {left}.{table}")[0]
    assert rows > 0, f"{left}.{table} is empty"
    assert query(target, f"select count(*) from {right}.{table}") == [(rows,)], f"{table}: {left} and {right}"
    differences = query(
        target,
        f"select count(*) from ("
        f"(select {listed} from {left}.{table} except all select {listed} from {right}.{table}) union all "
        f"(select {listed} from {right}.{table} except all select {listed} from {left}.{table})) as differences",
    )
    assert differences == [(0,)], f"{table}: {differences[0][0]} rows differ between {left} and {right}"


RENAMED = "RENAMED IN THE NEW MONTH"


def _rename_a_product(history: Path, month: Path) -> str:
    """Give the new month's lines of a product sold in both files a description no history line has; its code.

    The product with the most month lines, so that some of them survive the cleaning rules.
    """
    with open(history, encoding="latin-1", newline="") as lines:
        sold_before = {row["StockCode"] for row in csv.DictReader(lines)}
    with open(month, encoding="latin-1", newline="") as lines:
        reader = csv.DictReader(lines)
        header, rows = reader.fieldnames, list(reader)
    counts: dict[str, int] = {}
    for row in rows:
        if row["StockCode"] in sold_before and row["StockCode"].isdigit():
            counts[row["StockCode"]] = counts.get(row["StockCode"], 0) + 1
    code = max(counts, key=lambda c: (counts[c], c))
    with open(month, "w", encoding="latin-1", newline="") as lines:
        writer = csv.DictWriter(lines, fieldnames=header)
        writer.writeheader()
        writer.writerows({**row, "Description": RENAMED} if row["StockCode"] == code else row for row in rows)
    return code


def assert_same_marts(target: Target, schema: str) -> None:
    """The incremental schema's published marts are those of the full refresh, and its live fct_sales is its
    built one."""
    for table, leave_out in COMPARED_MARTS.items():
        assert_same_rows(target, table, f"{schema}_marts", f"{FULL}_marts", leave_out)
    assert_same_rows(target, "fct_sales", f"{schema}_marts", f"{schema}_marts_build")


@pytest.mark.slow
def test_a_new_month_publishes_the_marts_of_a_full_refresh(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSIDERS_PIN_FILE", str(tmp_path / "pinned_model.yml"))
    monkeypatch.setenv("INSIDERS_ARTIFACT_URI", str(tmp_path / "artifacts"))
    sample = tmp_path / "sample.csv.gz"
    run_cli("generate", "--out", str(sample), "--customers", "200", "--months", "5", "--seed", "11", "--quiet")
    with gzip.open(sample, "rt", encoding="latin-1", newline="") as lines:
        last = max(
            dt.datetime.strptime(row["InvoiceDate"].split(" ")[0], "%m/%d/%Y").date() for row in csv.DictReader(lines)
        )
    landing = tmp_path / "landing"
    landing.mkdir()
    history, month = split_by_day(sample, last.replace(day=1), tmp_path)
    renamed = _rename_a_product(history, month)
    schema = target.schema

    history.rename(landing / history.name)
    first = _run(target, landing, "--train-if-unpinned", monkeypatch=monkeypatch, schema=schema)
    assert "publish: fct_sales: copied in full: not published yet" in first
    assert "no published run in this schema: the data tests read every line" in first
    # dim_products adds up per-load totals (int_products__aggregated_by_load): the new month must add its own
    # rows and leave the history's alone. valid_lines is read by no mart: negated here, it shows whether the
    # history's rows were recomputed, and is set back after the run.
    by_load = f"{schema}.int_products__aggregated_by_load"
    history_rows = query(target, f"select count(*) from {by_load}")
    query_update = f"update {by_load} set valid_lines = -valid_lines"
    execute(target, query_update)
    month.rename(landing / month.name)
    second = _run(target, landing, monkeypatch=monkeypatch, schema=schema)
    assert "publish: fct_sales: appended" in second and "of 1 new load(s)" in second, second
    # The line-level data tests read the new month's lines only: the first run tested the history's.
    assert "the line-level data tests read the 1 load(s) added since run" in second, second
    assert query(target, f"select count(*) from {by_load} where valid_lines < 0") == history_rows
    assert query(target, f"select count(distinct load_id) from {by_load} where valid_lines > 0") == [(1,)]
    execute(target, f"{query_update} where valid_lines < 0")
    assert query(
        target, f"select product_description from {schema}_marts.dim_products where stock_code = '{renamed}'"
    ) == [(RENAMED,)]

    # The same raw tables, every model rebuilt and every mart copied, in another schema.
    full = _run(target, landing, "--full-refresh", monkeypatch=monkeypatch, schema=FULL)
    assert "publish: fct_sales: copied in full: a full refresh" in full
    assert "full refresh: the data tests read every line" in full
    assert_same_marts(target, schema)

    # Nothing new: the next forced run appends nothing and the tables stay equal.
    again = _run(target, landing, "--force", monkeypatch=monkeypatch, schema=schema)
    assert "publish: fct_sales: appended 0 rows of 0 new load(s)" in again
    assert "the line-level data tests read the 0 load(s) added since run" in again
    assert_same_marts(target, schema)

    # Other cleaning rules reclassify past lines: fct_sales is rebuilt and copied in full, and equals a full
    # refresh under the same rules.
    rules = ("--vars", "{min_unit_price: 2.5}")
    (lines_before,) = query(target, f"select count(*) from {schema}_marts.fct_sales")[0]
    changed = _run(target, landing, *rules, monkeypatch=monkeypatch, schema=schema)
    assert "publish: fct_sales: copied in full: it was rebuilt with other cleaning rules" in changed, changed
    assert "vars changed since run" in changed and "the data tests read every line" in changed, changed
    (lines_after,) = query(target, f"select count(*) from {schema}_marts.fct_sales")[0]
    assert 0 < lines_after < lines_before
    _run(target, landing, *rules, "--full-refresh", monkeypatch=monkeypatch, schema=FULL)
    assert_same_marts(target, schema)


# -- the publish step's choices, on hand-made marts -----------------------------------------------------------

BUILD, LIVE = "s_marts_build", "s_marts"


def _build(target: Target, loads: list[int], rules: str = "r1", extra_column: bool = False) -> None:
    """A fct_sales of two lines per load, and another mart."""
    lines = ", ".join(f"('{load}:{n}', '{load}', '{rules}')" for load in loads for n in (1, 2))
    execute(
        target,
        f"create schema if not exists {BUILD}",
        f"drop table if exists {BUILD}.fct_sales",
        f"drop table if exists {BUILD}.other_mart",
        f"create table {BUILD}.fct_sales (transaction_line_id varchar primary key, load_id varchar not null, "
        f"cleaning_rules varchar not null{', note varchar' if extra_column else ''})",
        f"insert into {BUILD}.fct_sales (transaction_line_id, load_id, cleaning_rules) values {lines}",
        f"comment on table {BUILD}.fct_sales is 'lines, {len(loads)} loads'",
        f"create table {BUILD}.other_mart as select {len(loads)} as loads",
    )


def _publish(target: Target, full_refresh: bool = False) -> list[str]:
    said: list[str] = []
    with connect(target) as wh:
        publish_marts(wh, BUILD, LIVE, log=said.append, full_refresh=full_refresh)
    return said


def _live(target: Target) -> list[tuple]:
    return query(target, f"select transaction_line_id, load_id, cleaning_rules from {LIVE}.fct_sales order by 1")


def _built(target: Target) -> list[tuple]:
    return query(target, f"select transaction_line_id, load_id, cleaning_rules from {BUILD}.fct_sales order by 1")


def test_publish_appends_new_loads_and_copies_in_full_when_it_must(target: Target) -> None:
    _build(target, [1, 2])
    assert _publish(target) == ["    publish: fct_sales: copied in full: not published yet"]
    assert _live(target) == _built(target)

    _build(target, [1, 2, 3])
    assert _publish(target) == ["    publish: fct_sales: appended 2 rows of 1 new load(s)"]
    assert _live(target) == _built(target)
    assert query(target, f"select loads from {LIVE}.other_mart") == [(3,)]
    # The description follows the built table even when the rows are appended.
    with connect(target) as wh:
        if wh.kind == "postgres":
            comment = wh.query(f"select obj_description('{LIVE}.fct_sales'::regclass, 'pg_class')")[0][0]
        else:
            comment = wh.query(
                f"select comment from duckdb_tables() where schema_name = '{LIVE}' and table_name = 'fct_sales'"
            )[0][0]
    assert comment == "lines, 3 loads"

    assert _publish(target, full_refresh=True) == ["    publish: fct_sales: copied in full: a full refresh"]
    assert _live(target) == _built(target)

    _build(target, [1, 2, 3], rules="r2")
    assert _publish(target) == ["    publish: fct_sales: copied in full: it was rebuilt with other cleaning rules"]
    assert _live(target) == _built(target)

    # A load gone from the build (raw lines deleted by hand, then a full refresh of the models).
    _build(target, [1, 3, 4], rules="r2")
    assert _publish(target) == [
        "    publish: fct_sales: copied in full: the published table holds 1 load(s) the built one does not"
    ]
    assert _live(target) == _built(target)

    _build(target, [1, 3, 4, 5], rules="r2", extra_column=True)
    assert _publish(target) == ["    publish: fct_sales: copied in full: its columns differ from the published table's"]
    assert _live(target) == _built(target)

    # A load the live copy holds only in part (a table changed by hand), beside a new load.
    _build(target, [1, 3, 4, 5, 6], rules="r2", extra_column=True)
    execute(target, f"delete from {LIVE}.fct_sales where transaction_line_id = '5:2'")
    reason = "the published table holds 1 load(s) with other lines than the built one"
    assert _publish(target) == [f"    publish: fct_sales: copied in full: {reason}"]
    assert _live(target) == _built(target)


def test_a_publish_failing_after_the_append_leaves_the_previous_marts(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    import insiders.publish as publish

    _build(target, [1, 2])
    _publish(target)
    before = _live(target)
    _build(target, [1, 2, 3])
    copy = publish._copy_table

    def failing_copy(wh, build_schema: str, live_schema: str, table: str) -> None:  # type: ignore[no-untyped-def]
        if table == "other_mart":  # after fct_sales (name order): its new lines are appended by then
            raise RuntimeError("the connection dropped")
        copy(wh, build_schema, live_schema, table)

    monkeypatch.setattr(publish, "_copy_table", failing_copy)
    with pytest.raises(RuntimeError, match="the connection dropped"):
        _publish(target)
    assert _live(target) == before
    assert query(target, f"select loads from {LIVE}.other_mart") == [(2,)]

    monkeypatch.setattr(publish, "_copy_table", copy)
    assert _publish(target) == ["    publish: fct_sales: appended 2 rows of 1 new load(s)"]
    assert _live(target) == _built(target)
