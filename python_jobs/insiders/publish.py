"""Publish the marts atomically: copy every table of the build schema into the live schema in one transaction.

``insiders run`` has dbt build and test the marts in ``<schema>_marts_build``. Only when all of them passed
are they published to ``<schema>_marts``, all together: readers (Power BI, the report) see every mart of the
previous run or every mart of the new one, never a mix, and a failure or a kill before the commit leaves the
previous marts as they were.

On PostgreSQL, replacing a mart needs a moment of exclusive lock on it, which an open reader transaction
holds off. Publishing therefore waits at most ``INSIDERS_PUBLISH_LOCK_TIMEOUT_S`` seconds for each lock, rolls
back and retries (``INSIDERS_PUBLISH_ATTEMPTS`` attempts in all, with a growing pause), and then fails naming
the sessions that held the locks: neither a reader can hang the publication, nor a waiting publication the
other readers for longer than the timeout.

A published mart is a copy of its built table with the same columns, keys, NOT NULL columns and comments (the
descriptions dbt persisted): Power BI reads each table's key and shows the descriptions in its field list.

The published marts are granted to the BI reader role (``INSIDERS_BI_READER_ROLE``, the ``reader_role`` of
``deploy/postgres/roles.sql``); the build schema's tables are never granted to it.

The line-level mart ``fct_sales`` is published incrementally, inside the same transaction: the lines of the
loads the live copy does not hold yet are appended to it (raw lines only ever arrive, a whole load at a time,
and no command deletes or replaces a load). It is copied in full instead on a full refresh, when it is not
published yet, when its columns differ from the built table's, when the built table was cleaned by other rules
(its ``cleaning_rules`` digest differs), when the live copy holds a load the built table does not (raw lines
deleted by hand) or holds a load with another number of lines (a table changed by hand), and when the insert
wrote another number of rows than the new loads have: whatever the path, the live table ends up with exactly the
built table's rows. Deciding reads each table once (its loads, with their digest and number of lines) and the
insert reads the new loads' rows: no count or comparison scans the tables again after the append.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from insiders import settings
from insiders.errors import ConfigError, InsidersError, WarehouseError
from insiders.warehouse import Warehouse, validate_identifier

LIVE_SUFFIX = "marts"
BUILD_SUFFIX = "marts_build"
BI_READER_ROLE_ENV = "INSIDERS_BI_READER_ROLE"
DEFAULT_BI_READER_ROLE = "insiders_bi_reader"
LOCK_TIMEOUT_ENV = "INSIDERS_PUBLISH_LOCK_TIMEOUT_S"
ATTEMPTS_ENV = "INSIDERS_PUBLISH_ATTEMPTS"
DEFAULT_LOCK_TIMEOUT_S = 10.0
DEFAULT_ATTEMPTS = 5
MAX_PAUSE_S = 30.0
#: Marts published by appending the rows of new loads (column ``load_id``), with the digest of the cleaning rules
#: they were built with in ``cleaning_rules`` (models/marts/fct_sales.sql).
INCREMENTAL_MARTS = ("fct_sales",)


def bi_reader_role() -> str:
    """The role that Power BI reads with (same default as the dbt variable ``bi_reader_role``)."""
    return settings.text(BI_READER_ROLE_ENV)


def reader_role_to_grant(wh: Warehouse, live_schema: str) -> str | None:
    """The role to grant the published marts to, or ``None`` when there is none to grant to.

    DuckDB has no roles. On PostgreSQL the configured role must exist when ``INSIDERS_BI_READER_ROLE`` is set,
    or when some other role already reads the marts schema (a reader would silently lose access at this run);
    a development database with neither publishes without grants.
    """
    if wh.kind != "postgres":
        return None
    role = validate_identifier(bi_reader_role(), f"the BI reader role ({BI_READER_ROLE_ENV})")
    if wh.query("select count(*) from pg_catalog.pg_roles where rolname = %s", [role])[0][0]:
        return role
    readers = [
        str(r[0])
        for r in wh.query(
            "select distinct grantee.rolname from pg_catalog.pg_namespace n "
            "cross join lateral aclexplode(n.nspacl) acl "
            "join pg_catalog.pg_roles grantee on grantee.oid = acl.grantee "
            "where n.nspname = %s and acl.privilege_type = 'USAGE' and acl.grantee <> n.nspowner "
            "order by 1",
            [live_schema],
        )
    ]
    configured = settings.is_set(BI_READER_ROLE_ENV)
    if not configured and not readers:
        return None
    source = f"{BI_READER_ROLE_ENV}" if configured else f"the default, {BI_READER_ROLE_ENV} being unset"
    hint = (
        f"the marts schema {live_schema} is read by {', '.join(readers)}: set {BI_READER_ROLE_ENV} to that role"
        if readers
        else f"create it with deploy/postgres/roles.sql (-v reader_role={role}) or correct {BI_READER_ROLE_ENV}"
    )
    raise ConfigError(
        f"the BI reader role '{role}' ({source}) does not exist on {wh.target.describe()}, so the published "
        f"marts could not be granted to it and Power BI would lose access; {hint}. Nothing was published"
    )


def _lock_holders(wh: Warehouse, live_schema: str) -> str:
    """Who holds locks on the live marts (user, application, since when), for the failure message."""
    try:
        rows = wh.query(
            "select distinct a.pid, a.usename, a.application_name, a.state, "
            "to_char(a.xact_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
            "from pg_catalog.pg_locks l join pg_catalog.pg_class c on c.oid = l.relation "
            "join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
            "join pg_catalog.pg_stat_activity a on a.pid = l.pid "
            "where n.nspname = %s and l.granted and l.pid <> pg_backend_pid() order by 1",
            [live_schema],
        )
    except Exception:  # only for the message: the failure itself is what matters
        return "sessions that could not be listed"
    finally:
        wh.conn.rollback()  # no transaction stays open while the publication pauses
    if not rows:
        return "sessions that have since finished"
    return "; ".join(
        f"pid {pid} user {user} application '{app or '-'}' ({state}, transaction open since {since} UTC)"
        for pid, user, app, state, since in rows
    )


def publish_marts(
    wh: Warehouse,
    build_schema: str,
    live_schema: str,
    log: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    full_refresh: bool = False,
) -> list[str]:
    """Replace every table of ``live_schema`` that ``build_schema`` has, in one transaction; return their names.

    The marts of ``INCREMENTAL_MARTS`` get only the rows of their new loads when that gives the built table's
    rows (see the module's docstring); ``full_refresh`` copies them in full too.
    """
    tables = built_tables(wh, build_schema)
    if not tables:
        raise InsidersError(f"no marts were built in {build_schema}: nothing to publish")
    if wh.kind == "spark":
        publish_marts_on_spark(wh, build_schema, live_schema, tables)
        return tables
    role = reader_role_to_grant(wh, live_schema)
    lock_timeout = settings.number(LOCK_TIMEOUT_ENV, minimum=0.001)
    attempts = settings.whole(ATTEMPTS_ENV, minimum=1)
    live = wh.ident(live_schema, what="marts schema name")
    for attempt in range(1, attempts + 1):
        try:
            with wh.transaction():
                if wh.kind == "postgres":
                    # Wait for no lock longer than this; the whole attempt is rolled back if one is not granted.
                    wh.execute(f"set local lock_timeout = {max(1, round(lock_timeout * 1000))}")
                wh.execute(f"create schema if not exists {live}")
                for table in tables:
                    target = wh.ident(live_schema, table, what="mart name")
                    appended = None
                    if table in INCREMENTAL_MARTS:
                        appended = _append_new_loads(wh, build_schema, live_schema, table, full_refresh)
                    if appended is None or not appended.done:
                        wh.execute(f"drop table if exists {target}")
                        _copy_table(wh, build_schema, live_schema, table)
                    if appended is not None and log is not None:
                        log(f"    publish: {table}: {appended.describe()}")
                    if role:
                        wh.execute(f"grant select on table {target} to {wh.ident(role, what='BI reader role')}")
            return tables
        except Exception as exc:
            if not _is_lock_timeout(exc):
                raise
            holders = _lock_holders(wh, live_schema)
            if attempt == attempts:
                raise WarehouseError(
                    f"could not publish the marts to {live_schema}: {attempts} attempt(s) waited {lock_timeout:g} s "
                    f"each for a lock held by {holders}. The previous marts are still published; end that "
                    f"transaction (or raise {LOCK_TIMEOUT_ENV} / {ATTEMPTS_ENV}) and run again"
                ) from exc
            pause = min(MAX_PAUSE_S, 2.0 ** (attempt - 1))
            if log is not None:
                log(
                    f"    publish: attempt {attempt} of {attempts} waited {lock_timeout:g} s for a lock held by "
                    f"{holders}; retrying in {pause:g} s"
                )
            sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def built_tables(wh: Warehouse, build_schema: str) -> list[str]:
    """The tables (not views) of the build schema, in name order."""
    if wh.kind == "spark":
        if not wh.conn.catalog.databaseExists(build_schema):
            return []
        return sorted(t.name for t in wh.conn.catalog.listTables(build_schema) if t.tableType != "VIEW")
    return [
        str(r[0])
        for r in wh.query(
            "select table_name from information_schema.tables "
            "where table_schema = %s and table_type = 'BASE TABLE' order by table_name",
            [build_schema],
        )
    ]


def publish_marts_on_spark(wh: Warehouse, build_schema: str, live_schema: str, tables: list[str]) -> None:
    """Publish on Spark, which has no transactions: copy every mart aside, then switch the views.

    Each mart is copied into ``<live>_versions.<mart>__v<tag>`` (the slow part; a failure or a kill here leaves
    the published marts as they were), then every view ``<live>.<mart>`` is pointed at its new copy, one
    statement each, one after the other within milliseconds, and the previous copies are dropped. Readers see
    each mart whole, of the previous run or of the new one; during those milliseconds some marts may already be
    the new run's and others still the previous one's. The table's description (dbt's persist_docs) is the
    view's comment; Parquet keeps no keys (docs/scaling.md).
    """
    from insiders.spark_tables import drop_old_versions, point_view, version_tag

    data = f"{live_schema}_versions"
    for schema in (live_schema, data):
        wh.execute(f"create database if not exists {wh.ident(schema, what='marts schema name')}")
    tag = version_tag()
    copies = {}
    for table in tables:
        copy = f"{table}__v{tag}"
        wh.execute(
            f"create table {wh.ident(data, copy, what='mart name')} using parquet as "
            f"select * from {wh.ident(build_schema, table, what='mart name')}"
        )
        comment = None
        for row in wh.query(f"describe table extended {wh.ident(build_schema, table)}"):
            if str(row[0]).strip() == "Comment":
                comment = str(row[1])
        copies[table] = (copy, comment)
    for table, (copy, comment) in copies.items():
        point_view(wh, live_schema, table, data, copy, comment)
    for table, (copy, _) in copies.items():
        drop_old_versions(wh, data, table, keep=copy)


@dataclass
class Append:
    """How an incremental mart was published: ``done`` when by appending, else why it is copied in full."""

    done: bool
    reason: str = ""
    loads: int = 0
    rows: int = 0

    def describe(self) -> str:
        if self.done:
            return f"appended {self.rows:,} rows of {self.loads} new load(s)"
        return f"copied in full: {self.reason}"


def _columns(wh: Warehouse, schema: str, table: str) -> list[tuple[str, str, str]]:
    return [
        (str(name), str(data_type).lower(), str(nullable))
        for name, data_type, nullable in wh.query(
            "select column_name, data_type, is_nullable from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            [schema, table],
        )
    ]


def _lines_by_load(wh: Warehouse, relation: str) -> dict[str, tuple[str | None, int]]:
    """Each load a table holds, with the cleaning rules its lines were built with and their number (one scan).

    The rules are None for a load whose lines carry several digests (a table changed by hand).
    """
    rows = wh.query(
        f"select load_id, min(cleaning_rules), max(cleaning_rules), count(*) from {relation} group by load_id"
    )
    return {str(load): (str(low) if low == high else None, int(lines)) for load, low, high, lines in rows}


def _append_new_loads(wh: Warehouse, build_schema: str, live_schema: str, table: str, full_refresh: bool) -> Append:
    """Append to the live ``table`` the rows of the loads it does not hold yet, inside the caller's transaction,
    when that gives exactly the built table's rows; otherwise change nothing and say why it is to be copied.

    Each table is read once (its loads, rules and lines per load) and the new loads' rows once more by the insert:
    the live copy holds exactly the built rows when it holds the same lines for every load it has, and the insert
    wrote every built line of the others.
    """
    if full_refresh:
        return Append(False, "a full refresh")
    columns = _columns(wh, build_schema, table)
    live_columns = _columns(wh, live_schema, table)
    if not live_columns:
        return Append(False, "not published yet")
    if live_columns != columns:
        return Append(False, "its columns differ from the published table's")
    source = wh.ident(build_schema, table, what="mart name")
    target = wh.ident(live_schema, table, what="mart name")
    built = _lines_by_load(wh, source)
    live = _lines_by_load(wh, target)
    built_rules = {rules for rules, _ in built.values()}
    if any(rules is None or rules not in built_rules for rules, _ in live.values()):
        return Append(False, "it was rebuilt with other cleaning rules")
    gone = live.keys() - built.keys()
    if gone:
        return Append(False, f"the published table holds {len(gone)} load(s) the built one does not")
    differ = [load for load, held in live.items() if held != built[load]]
    if differ:
        return Append(False, f"the published table holds {len(differ)} load(s) with other lines than the built one")
    new = sorted(built.keys() - live.keys())
    rows = 0
    if new:
        placeholders = ", ".join(["%s"] * len(new))
        rows = wh.execute_count(f"insert into {target} select * from {source} where load_id in ({placeholders})", new)
        expected = sum(built[load][1] for load in new)
        if rows != expected:
            return Append(False, f"{rows:,} rows appended of the new loads' {expected:,}")
    _copy_comments(wh, build_schema, live_schema, table)
    return Append(True, loads=len(new), rows=rows)


def _copy_comments(wh: Warehouse, build_schema: str, live_schema: str, table: str) -> None:
    """Give the live table the built table's comments (its description and its columns'), which may have changed."""
    target = wh.ident(live_schema, table, what="mart name")
    source = wh.ident(build_schema, table, what="mart name")
    if wh.kind == "postgres":
        comment = wh.query("select obj_description(%s::regclass, 'pg_class')", [source])[0][0]
        column_comments = wh.query(
            "select column_name, col_description(%s::regclass, ordinal_position) from information_schema.columns "
            "where table_schema = %s and table_name = %s",
            [source, build_schema, table],
        )
    else:
        comment = wh.query(
            "select comment from duckdb_tables() where schema_name = %s and table_name = %s", [build_schema, table]
        )[0][0]
        column_comments = wh.query(
            "select column_name, comment from duckdb_columns() where schema_name = %s and table_name = %s",
            [build_schema, table],
        )
    wh.execute(f"comment on table {target} is {_text_literal(comment) if comment else 'null'}")
    for column, column_comment in column_comments:
        column_name = wh.ident(column, what="column name")
        text = _text_literal(column_comment) if column_comment else "null"
        wh.execute(f"comment on column {target}.{column_name} is {text}")


def _copy_table(wh: Warehouse, build_schema: str, live_schema: str, table: str) -> None:
    """Create ``live_schema.table`` with the structure of ``build_schema.table`` (columns, primary key, NOT NULL,
    comments) and copy its rows, inside the caller's transaction."""
    target = wh.ident(live_schema, table, what="mart name")
    source = wh.ident(build_schema, table, what="mart name")
    if wh.kind == "postgres":
        # INCLUDING ALL copies defaults, constraints, indexes (the primary key) and the columns' comments.
        wh.execute(f"create table {target} (like {source} including all)")
        comment = wh.query("select obj_description(%s::regclass, 'pg_class')", [source])[0][0]
    else:
        # DuckDB keeps each table's CREATE statement; the column list and constraints follow the first "(".
        rows = wh.query(
            "select sql, comment from duckdb_tables() where schema_name = %s and table_name = %s",
            [build_schema, table],
        )
        ddl, comment = rows[0]
        wh.execute(f"create table {target} ({ddl.partition('(')[2]}")
        for column, column_comment in wh.query(
            "select column_name, comment from duckdb_columns() "
            "where schema_name = %s and table_name = %s and comment is not null",
            [build_schema, table],
        ):
            column_name = wh.ident(column, what="column name")
            wh.execute(f"comment on column {target}.{column_name} is {_text_literal(column_comment)}")
    wh.execute(f"insert into {target} select * from {source}")
    if comment:
        wh.execute(f"comment on table {target} is {_text_literal(comment)}")


def _text_literal(text: str) -> str:
    """A standard SQL string literal (COMMENT ON takes no bind parameter on DuckDB)."""
    return "'" + text.replace("'", "''") + "'"


def _is_lock_timeout(exc: BaseException) -> bool:
    return getattr(exc, "pgcode", None) == "55P03"  # lock_not_available
