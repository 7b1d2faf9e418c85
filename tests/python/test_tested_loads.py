"""The line-level data tests of a run read the new loads only, and still catch what is wrong in them.

``insiders run`` names, in ``INSIDERS_TESTED_LOADS``, the loads its last published run tested with the same code
and variables (``already_tested_loads`` in pipeline/run_state.py); the ``load_column`` argument of the
``unique_combination`` and ``not_null_columns`` tests leaves exactly those loads out (macros/tested_loads.sql).
Here: a repeated line and a missing value planted in two different loads are each found unless their own load is
listed, and a plain ``dbt test`` finds both; the list is the last published run's loads only when nothing but new
loads changed since, and empty otherwise.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import os
from pathlib import Path

import pytest
from conftest import execute, query, run_cli, run_dbt
from test_incremental import load, load_ids, split_by_day

from insiders import tables
from insiders.pipeline.run_state import already_tested_loads, previous_run_inputs, record_run_inputs, run_inputs
from insiders.pipeline.run_vars import RunVars
from insiders.warehouse import Target, connect, load_target

CLEANED = "int_sales__cleaned"


def _tests_pass(env: dict[str, str] | None, test_name: str) -> bool:
    """Whether ``dbt test`` of int_sales__cleaned's test ``test_name`` passes with ``env``."""
    proc = run_dbt("test", "--select", f"{CLEANED},test_name:{test_name}", target="local", check=False, env=env)
    assert "Nothing to do" not in proc.stdout, proc.stdout
    return proc.returncode == 0


def test_the_line_tests_leave_out_exactly_the_listed_loads(duckdb_file: Path, tmp_path: Path) -> None:
    target = load_target("local")
    sample = tmp_path / "sample.csv.gz"
    run_cli("generate", "--out", str(sample), "--customers", "60", "--months", "2", "--seed", "5", "--quiet")
    with gzip.open(sample, "rt", encoding="latin-1", newline="") as lines:
        days = sorted(
            {dt.datetime.strptime(row["InvoiceDate"].split(" ")[0], "%m/%d/%Y").date() for row in csv.DictReader(lines)}
        )
    first_file, second_file = split_by_day(sample, days[len(days) // 2], tmp_path)
    load(target, first_file)
    load(target, second_file)
    run_dbt("build", "--selector", "features", target="local")
    first, second = load_ids(target)
    assert _tests_pass(None, "unique_combination") and _tests_pass(None, "not_null_columns")

    # A line of the first load written twice; a line of the second load without its invoice number.
    schema = target.schema
    execute(
        target,
        f"insert into {schema}.{CLEANED} select * from {schema}.{CLEANED} where load_id = '{first}' limit 1",
        f"update {schema}.{CLEANED} set invoice_no = null where load_id = '{second}' and line_number = "
        f"(select min(line_number) from {schema}.{CLEANED} where load_id = '{second}')",
    )

    # Unset (a plain dbt test) or empty (what a run with nothing to vouch for passes): every line is read.
    for env in (None, {"INSIDERS_TESTED_LOADS": ""}):
        assert not _tests_pass(env, "unique_combination")
        assert not _tests_pass(env, "not_null_columns")
    # The first load listed: its repeated line is left out, the second load's missing value is still found.
    assert _tests_pass({"INSIDERS_TESTED_LOADS": first}, "unique_combination")
    assert not _tests_pass({"INSIDERS_TESTED_LOADS": first}, "not_null_columns")
    # The other way round.
    assert not _tests_pass({"INSIDERS_TESTED_LOADS": second}, "unique_combination")
    assert _tests_pass({"INSIDERS_TESTED_LOADS": second}, "not_null_columns")
    # Both listed (spaces and an empty item are ignored): nothing is read, both pass.
    both = {"INSIDERS_TESTED_LOADS": f" {first}, {second},"}
    assert _tests_pass(both, "unique_combination") and _tests_pass(both, "not_null_columns")
    # An id with a quote is read as a literal, not as SQL.
    assert not _tests_pass({"INSIDERS_TESTED_LOADS": f"{second}' or '1' = '1"}, "not_null_columns")


def _log_a_load(target: Target, load_id: str, sha: str, at: dt.datetime) -> None:
    execute(
        target,
        f"insert into raw.load_log (load_id, file_name, file_sha256, layout, lines_read, lines_loaded, "
        f"lines_rejected, lines_skipped, loaded_at) values ('{load_id}', '{load_id}.csv', '{sha}', 'csv', 1, 1, 0, "
        f"0, '{at:%Y-%m-%d %H:%M:%S}')",
    )


def test_the_tested_loads_are_the_last_published_run_s_when_only_loads_were_added(target: Target) -> None:
    with connect(target) as wh, wh.transaction():
        wh.execute(f"create schema if not exists {target.schema}")
        wh.execute("create schema if not exists raw")
        wh.execute(tables.LOAD_LOG.ddl("raw"))
    start = dt.datetime(2026, 1, 1)
    _log_a_load(target, "a", "1" * 64, start)
    _log_a_load(target, "b", "2" * 64, start + dt.timedelta(days=31))
    same = RunVars.parse(None)

    def now() -> dict[str, str]:
        return run_inputs(target, same)

    assert already_tested_loads(target, now(), False, previous_run_inputs(target)) == (
        [],
        "no published run in this schema: the data tests read every line",
    )
    record_run_inputs(target, "run-1", now())
    loads, why = already_tested_loads(target, now(), False, previous_run_inputs(target))
    assert loads == ["a", "b"] and "read the 0 load(s) added since run run-1" in why, why

    # A new month: the two loads of run-1 are left out, the new one is read.
    _log_a_load(target, "c", "3" * 64, start + dt.timedelta(days=62))
    loads, why = already_tested_loads(target, now(), False, previous_run_inputs(target))
    assert loads == ["a", "b"] and "read the 1 load(s) added since run run-1, which tested the other 2" in why, why

    # Anything else that changed means every line is read.
    assert already_tested_loads(target, now(), True, previous_run_inputs(target)) == (
        [],
        "full refresh: the data tests read every line",
    )
    for name in ("code", "vars"):
        loads, why = already_tested_loads(target, {**now(), name: "other"}, False, previous_run_inputs(target))
        assert loads == [] and why.startswith(f"{name} changed since run run-1"), why
    # A load of run-1 removed from the log since (and one added): no prefix of the log is run-1's loads.
    execute(target, "delete from raw.load_log where load_id = 'a'")
    loads, why = already_tested_loads(target, now(), False, previous_run_inputs(target))
    assert loads == [] and "not the one of run run-1 plus new loads" in why, why
    assert query(target, "select count(*) from raw.load_log") == [(2,)]


@pytest.mark.parametrize("listed", ["", "some-load"])
def test_a_run_s_dbt_sees_the_tested_loads_only_while_it_runs(listed: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session sets the variable for its dbt commands and restores what was there."""
    from insiders.dbt_session import _environment

    monkeypatch.setenv("INSIDERS_TESTED_LOADS", "from the shell")
    with _environment({"INSIDERS_TESTED_LOADS": listed}):
        assert os.environ["INSIDERS_TESTED_LOADS"] == listed
    assert os.environ["INSIDERS_TESTED_LOADS"] == "from the shell"
    monkeypatch.delenv("INSIDERS_TESTED_LOADS")
    with _environment({"INSIDERS_TESTED_LOADS": listed}):
        assert os.environ["INSIDERS_TESTED_LOADS"] == listed
    assert "INSIDERS_TESTED_LOADS" not in os.environ
