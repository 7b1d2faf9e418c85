"""The table contracts in insiders.tables are what the dbt sources declare and what the warehouse gets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from insiders import tables
from insiders.tables import type_family

PROJECT = Path(__file__).resolve().parents[2]
SOURCES = {
    "online_retail": PROJECT / "models/staging/online_retail/_online_retail__sources.yml",
    "segmentation": PROJECT / "models/staging/segmentation/_segmentation__sources.yml",
}
CONTRACTS = {
    "online_retail": tables.RAW_TABLES,
    "segmentation": (tables.CUSTOMER_SEGMENTS, tables.CUSTOMER_SEGMENT_HISTORY, tables.CUSTOMER_VALUE),
}


def source_tables(source: str) -> dict[str, dict]:
    document = yaml.safe_load(SOURCES[source].read_text(encoding="utf-8"))
    (entry,) = [s for s in document["sources"] if s["name"] == source]
    return {t["name"]: t for t in entry["tables"]}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_dbt_sources_declare_the_contracted_tables_and_columns(source: str) -> None:
    declared = source_tables(source)
    assert sorted(declared) == sorted(t.name for t in CONTRACTS[source])
    for contract in CONTRACTS[source]:
        columns = [c["name"] for c in declared[contract.name].get("columns", [])]
        assert set(columns) <= set(contract.column_names), contract.name
        for test in declared[contract.name].get("data_tests", []):
            if isinstance(test, dict) and "has_column_types" in test:
                expected = test["has_column_types"]["arguments"]["columns"]
                actual = {c.name: type_family(c.sql) for c in contract.columns if c.name in expected}
                assert actual == expected, contract.name


def test_ddl_creates_the_contract_on_duckdb(tmp_path: Path) -> None:
    import duckdb

    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    for statement in tables.raw_ddl("raw"):
        con.execute(statement)
    for contract in (tables.CUSTOMER_SEGMENTS, tables.CUSTOMER_SEGMENT_HISTORY, tables.CUSTOMER_VALUE):
        con.execute(contract.ddl("main"))
    for schema, contract in [("raw", t) for t in tables.RAW_TABLES] + [
        ("main", tables.CUSTOMER_SEGMENT_HISTORY),
        ("main", tables.CUSTOMER_VALUE),
    ]:
        rows = con.execute(
            "select column_name, data_type, is_nullable from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, contract.name],
        ).fetchall()
        assert [r[0] for r in rows] == list(contract.column_names)
        assert [type_family(r[1]) for r in rows] == [type_family(c.sql) for c in contract.columns]
        assert [r[2] == "YES" for r in rows] == [c.nullable for c in contract.columns]
        # The Arrow schema the writers cast to has the same columns in the same order.
        assert contract.arrow_schema().names == list(contract.column_names)
    # load_log's keys: a second file with the same content is refused by the unique digest.
    con.execute("insert into raw.load_log values ('a', 'f', 'x', 'l', 1, 1, 0, now(), 0)")
    with pytest.raises(duckdb.ConstraintException):
        con.execute("insert into raw.load_log values ('b', 'g', 'x', 'l', 1, 1, 0, now(), 0)")
