"""Publish the marts atomically: copy every table of the build schema into the live schema in one transaction.

``insiders run`` has dbt build and test the marts in ``<schema>_marts_build``. Only when all of them passed
are they published to ``<schema>_marts``, all together: readers (Power BI, the report) see every mart of the
previous run or every mart of the new one, never a mix, and a failure or a kill before the commit leaves the
previous marts as they were.
"""

from __future__ import annotations

import os

from insiders.errors import InsidersError
from insiders.warehouse import Warehouse

LIVE_SUFFIX = "marts"
BUILD_SUFFIX = "marts_build"
BI_READER_ROLE_ENV = "INSIDERS_BI_READER_ROLE"
DEFAULT_BI_READER_ROLE = "insiders_bi_reader"


def bi_reader_role() -> str:
    """The role that Power BI reads with (same default as the dbt variable ``bi_reader_role``)."""
    return os.environ.get(BI_READER_ROLE_ENV, "").strip() or DEFAULT_BI_READER_ROLE


def publish_marts(wh: Warehouse, build_schema: str, live_schema: str) -> list[str]:
    """Replace every table of ``live_schema`` that ``build_schema`` has, in one transaction; return their names."""
    tables = [
        str(r[0])
        for r in wh.query(
            "select table_name from information_schema.tables "
            "where table_schema = %s and table_type = 'BASE TABLE' order by table_name",
            [build_schema],
        )
    ]
    if not tables:
        raise InsidersError(f"no marts were built in {build_schema}: nothing to publish")
    role = bi_reader_role()
    grant = wh.kind == "postgres" and bool(
        wh.query("select count(*) from pg_catalog.pg_roles where rolname = %s", [role])[0][0]
    )
    live = wh.ident(live_schema, what="marts schema name")
    with wh.transaction():
        wh.execute(f"create schema if not exists {live}")
        for table in tables:
            target = wh.ident(live_schema, table, what="mart name")
            wh.execute(f"drop table if exists {target}")
            wh.execute(f"create table {target} as select * from {wh.ident(build_schema, table, what='mart name')}")
            if grant:
                wh.execute(f"grant select on table {target} to {wh.ident(role, what='BI reader role')}")
    return tables
