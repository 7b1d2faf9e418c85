"""DuckDB's memory limit, threads, insertion order and spill directory: from the environment to dbt and the jobs.

The ``config_options:`` block of the DuckDB target in ``profiles.yml`` is read by dbt-duckdb and by
:func:`insiders.warehouse.connect` alike; these tests check that a value set in the environment is the one
DuckDB actually runs with, on both sides.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import run_dbt

from insiders.errors import ConfigError
from insiders.warehouse import connect, load_target

SETTINGS_QUERY = (
    "select current_setting('memory_limit') as memory_limit, current_setting('threads') as threads,"
    " current_setting('preserve_insertion_order') as preserve_insertion_order,"
    " current_setting('temp_directory') as temp_directory"
)


def _applied() -> dict[str, object]:
    with connect("local") as wh:
        row = wh.query(SETTINGS_QUERY)[0]
    return dict(zip(("memory_limit", "threads", "preserve_insertion_order", "temp_directory"), row, strict=True))


def test_the_defaults_bound_memory_and_spill_beside_the_database_file(duckdb_file: Path) -> None:
    settings = _applied()
    # 3GB is 3 * 10^9 bytes, which DuckDB shows in GiB.
    assert settings["memory_limit"] == "2.7 GiB"
    assert settings["threads"] == 2
    assert settings["preserve_insertion_order"] is False
    assert settings["temp_directory"] == f"{duckdb_file}.tmp"


def test_the_environment_sets_what_duckdb_runs_with(duckdb_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIDERS_DUCKDB_MEMORY_LIMIT", "1GB")
    monkeypatch.setenv("INSIDERS_DUCKDB_THREADS", "1")
    monkeypatch.setenv("INSIDERS_DUCKDB_PRESERVE_INSERTION_ORDER", "true")
    monkeypatch.setenv("INSIDERS_DUCKDB_TEMP_DIRECTORY", str(duckdb_file.parent / "spill"))
    assert _applied() == {
        "memory_limit": "953.6 MiB",
        "threads": 1,
        "preserve_insertion_order": True,
        "temp_directory": str(duckdb_file.parent / "spill"),
    }


def test_the_jobs_open_the_database_with_the_options_dbt_gets(
    duckdb_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Text exactly as rendered, so that dbt and the jobs never open one file with two configurations."""
    monkeypatch.setenv("INSIDERS_DUCKDB_TEMP_DIRECTORY", "data/spill")
    assert load_target("local").duckdb_settings() == {
        "memory_limit": "3GB",
        "threads": "2",
        "preserve_insertion_order": "false",
        "temp_directory": "data/spill",
    }


@pytest.mark.parametrize(
    ("variable", "value"),
    [("INSIDERS_DUCKDB_MEMORY_LIMIT", "lots"), ("INSIDERS_DUCKDB_THREADS", "two")],
)
def test_a_bad_value_names_its_variable(
    duckdb_file: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=rf"\(from {variable}\) is not accepted"):
        connect("local")


def test_dbt_runs_with_the_same_settings(duckdb_file: Path) -> None:
    env = {"INSIDERS_DUCKDB_MEMORY_LIMIT": "1500MB", "INSIDERS_DUCKDB_THREADS": "1"}
    proc = run_dbt("show", "--inline", SETTINGS_QUERY, "--output", "json", target="local", env=env)
    found = re.search(r'\{\s*"show".*\}', proc.stdout, re.DOTALL)
    assert found, proc.stdout
    shown = json.loads(found.group(0))["show"][0]
    assert shown["memory_limit"] == "1.3 GiB"
    assert int(shown["threads"]) == 1
    assert str(shown["preserve_insertion_order"]).lower() == "false"
    assert shown["temp_directory"] == f"{duckdb_file}.tmp"


@pytest.mark.parametrize("name", ["main.duckdb", "System.duckdb", "temp.db", "memory.duckdb"])
def test_a_database_file_named_as_a_duckdb_catalog_is_refused(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """dbt-duckdb names the catalog after the file: ``main.duckdb`` used to load, then fail every dbt node."""
    monkeypatch.setenv("INSIDERS_DUCKDB_PATH", str(tmp_path / name))
    with pytest.raises(ConfigError, match=r"DuckDB reserves the name .* choose another file name"):
        connect("local")
    assert not (tmp_path / name).exists()
