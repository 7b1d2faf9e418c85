"""deploy/postgres/roles.sql on a real PostgreSQL server.

The whole pipeline runs as a login user of the pipeline role (as in production), and a login user of the BI
reader role can read the marts and nothing else: no raw lines, no features, no segmentation tables, no write
anywhere, and it keeps its access after dbt rebuilds the marts.

Roles are cluster-wide in PostgreSQL, so every role of the test has a unique name (passed to roles.sql and to
dbt as variables) and is dropped afterwards; the script's defaults are the production names.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
from conftest import PROJECT, run_cli, run_dbt

from insiders.warehouse import load_target

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROLES_SQL = PROJECT / "deploy" / "postgres" / "roles.sql"
MARTS = (
    "dim_customers",
    "dim_segments",
    "dim_products",
    "fct_sales",
    "segment_profiles",
    "insiders",
    "insiders_summary",
    "segment_monthly_revenue",
    "segment_transitions",
    "insiders_changes",
    "segment_value",
)


@dataclass(frozen=True)
class Roles:
    """The roles of one test: two group roles, their login users, and the admin that runs roles.sql."""

    database: str
    reader: str
    job: str
    admin: str
    reader_user: str
    job_user: str
    password: str


def _server() -> dict[str, str]:
    return {
        "host": os.environ.get("INSIDERS_PG_HOST", "127.0.0.1"),
        "port": os.environ.get("INSIDERS_PG_PORT", "5432"),
    }


def _connect(user: str, password: str, database: str):
    return psycopg2.connect(dbname=database, user=user, password=password, connect_timeout=10, **_server())


def _superuser(database: str):
    """A connection as the server's admin user (the one the other fixtures use)."""
    return _connect(
        os.environ.get("INSIDERS_PG_USER", "postgres"), os.environ.get("INSIDERS_PG_PASSWORD", ""), database
    )


def _execute(database: str, *statements: str) -> None:
    conn = _superuser(database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def roles(pg_database: str) -> Iterator[Roles]:
    """Unique roles for one test, with an admin that owns the database and may create roles but is not a
    superuser (like the RDS master user); everything is dropped afterwards."""
    if shutil.which("psql") is None:
        if os.environ.get("INSIDERS_REQUIRE_POSTGRES", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail("psql is not installed (INSIDERS_REQUIRE_POSTGRES=1 makes this a failure)")
        pytest.skip("psql is not installed")
    suffix = uuid.uuid4().hex[:10]
    created = Roles(
        database=pg_database,
        reader=f"insiders_bi_reader_{suffix}",
        job=f"insiders_job_{suffix}",
        admin=f"insiders_admin_{suffix}",
        reader_user=f"powerbi_{suffix}",
        job_user=f"pipeline_{suffix}",
        password=secrets.token_hex(16),
    )
    _execute(
        "postgres",
        f"create role {created.admin} login createrole password '{created.password}'",
        f"alter database {pg_database} owner to {created.admin}",
    )
    try:
        yield created
    finally:
        everyone = [created.reader_user, created.job_user, created.reader, created.job, created.admin]
        _execute("postgres", f"alter database {pg_database} owner to current_user")
        existing = _existing_roles(everyone)
        if existing:
            # Objects of the test database and privileges on it (the database itself is dropped by pg_database).
            _execute(pg_database, f"drop owned by {', '.join(existing)} cascade")
        _execute("postgres", *[f"drop role if exists {name}" for name in everyone])


def _existing_roles(names: list[str]) -> list[str]:
    conn = _superuser("postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("select rolname from pg_roles where rolname = any(%s)", [names])
            found = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    return [name for name in names if name in found]


def _run_roles_sql(roles: Roles) -> subprocess.CompletedProcess[str]:
    """Apply roles.sql as the admin, the way the deployment notes say, with the test's role names."""
    server = _server()
    proc = subprocess.run(
        [
            "psql",
            "--no-psqlrc",
            "-h",
            server["host"],
            "-p",
            server["port"],
            "-U",
            roles.admin,
            "-d",
            roles.database,
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            f"reader_role={roles.reader}",
            "-v",
            f"job_role={roles.job}",
            "-f",
            str(ROLES_SQL),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PGPASSWORD": roles.password},
        check=False,
    )
    assert proc.returncode == 0, f"roles.sql failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@contextmanager
def _as_pipeline_user(roles: Roles, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of the scheduled job: the pipeline's login user, and a pin file and artifact store of the
    test's own (the repository's pinned_model.yml is never touched). Restored afterwards, so fixtures tear down
    as the admin user."""
    env = {
        "INSIDERS_PG_USER": roles.job_user,
        "INSIDERS_PG_PASSWORD": roles.password,
        "INSIDERS_PIN_FILE": str(tmp_path / "pinned_model.yml"),
        "INSIDERS_ARTIFACT_URI": str(tmp_path / "artifacts"),
    }
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _denied(conn, sql: str) -> None:
    """The statement fails for lack of privilege (and nothing else)."""
    with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn.cursor() as cur:
        cur.execute(sql)
    conn.rollback()


def _assert_reads_every_mart(roles: Roles, marts: str) -> None:
    conn = _connect(roles.reader_user, roles.password, roles.database)
    try:
        with conn.cursor() as cur:
            for mart in MARTS:
                cur.execute(f"select count(*) from {marts}.{mart}")
                assert cur.fetchone()[0] > 0, mart
    finally:
        conn.close()


def _table_oid(database: str, relation: str) -> int:
    conn = _superuser(database)
    try:
        with conn.cursor() as cur:
            cur.execute("select %s::regclass::oid", [relation])
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_bi_reader_reads_the_marts_and_nothing_else(roles: Roles, tmp_path: Path) -> None:
    schema = load_target("postgres").schema
    marts = f"{schema}_marts"
    raw = os.environ.get("INSIDERS_RAW_SCHEMA", "raw")

    # Deployment: the admin applies roles.sql (twice: it is idempotent), then creates the login users.
    _run_roles_sql(roles)
    _run_roles_sql(roles)
    _execute(
        roles.database,
        f"create role {roles.job_user} login password '{roles.password}' in role {roles.job}",
        f"alter role {roles.job_user} set role = '{roles.job}'",
        f"create role {roles.reader_user} login password '{roles.password}' in role {roles.reader}",
    )

    # The pipeline, end to end, as the pipeline's login user: it needs no more than insiders_job.
    sample = tmp_path / "sample.csv.gz"
    run_cli("generate", "--out", str(sample), "--customers", "300", "--months", "6", "--quiet")
    dbt_vars = ["--vars", f"{{bi_reader_role: {roles.reader}}}"]
    with _as_pipeline_user(roles, tmp_path) as env:
        run_cli("load", str(sample), "--target", "postgres", "--quiet")
        run_dbt("build", "--selector", "features", *dbt_vars, target="postgres", env=env)
        run_cli("train", "--target", "postgres", "--k", "4", "--promote")
        run_cli("score", "--target", "postgres", "--quiet")
        run_dbt("build", "--selector", "segments", *dbt_vars, target="postgres", env=env)
        before = _table_oid(roles.database, f"{marts}.dim_customers")
        # The next scheduled run replaces every mart with a new table; the reader must keep its access.
        run_cli("score", "--target", "postgres", "--quiet")
        run_dbt("build", "--selector", "segments", *dbt_vars, target="postgres", env=env)
    assert _table_oid(roles.database, f"{marts}.dim_customers") != before, "dbt did not rebuild the marts"
    # The rebuilt marts were granted by dbt's post-hook alone (roles.sql last ran before they existed).
    _assert_reads_every_mart(roles, marts)
    # Re-running the script on a warehouse in use changes nothing that matters (and repairs what was changed).
    _run_roles_sql(roles)
    _assert_reads_every_mart(roles, marts)

    conn = _connect(roles.reader_user, roles.password, roles.database)
    try:
        with conn.cursor() as cur:
            cur.execute(f"select insiders, customers, entered_since_previous_run from {marts}.insiders_summary")
            insiders, customers, entered = cur.fetchone()
            assert 0 < insiders < customers
            assert entered == 0  # the second run applied the same model to the same features
            cur.execute(f"select count(*) from {marts}.insiders")
            assert cur.fetchone()[0] == insiders
        conn.rollback()

        # It cannot read raw lines, staging, intermediate or features, nor the segmentation tables.
        for relation in (
            f"{raw}.transactions",
            f"{raw}.load_log",
            f"{schema}.stg_online_retail__transactions",
            f"{schema}.int_sales__cleaned",
            f"{schema}.customer_features",
            f"{schema}.customer_segments",
            f"{schema}.customer_segment_history",
        ):
            _denied(conn, f"select * from {relation} limit 1")

        # It cannot write anything: not the marts, and no new object anywhere.
        _denied(conn, f"insert into {marts}.dim_segments (segment_rank) values (99)")
        _denied(conn, f"update {marts}.dim_customers set country = 'x'")
        _denied(conn, f"delete from {marts}.fct_sales")
        _denied(conn, f"truncate {marts}.insiders")
        _denied(conn, f"drop table {marts}.insiders_summary")
        for target_schema in (marts, schema, raw, "public"):
            _denied(conn, f"create table {target_schema}.reader_was_here (i integer)")
        _denied(conn, "create temporary table reader_was_here (i integer)")
        _denied(conn, f"create schema reader_was_here_{uuid.uuid4().hex[:6]}")
    finally:
        conn.close()

    # The same, as privileges: SELECT on exactly the marts' tables, nothing else on any relation or schema.
    admin = _superuser(roles.database)
    try:
        with admin.cursor() as cur:
            cur.execute(
                """
                select n.nspname, c.relname,
                       has_table_privilege(%(role)s, c.oid, 'SELECT') as can_select,
                       has_table_privilege(%(role)s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                from pg_class as c
                join pg_namespace as n on n.oid = c.relnamespace
                where c.relkind in ('r', 'v', 'm', 'p') and n.nspname in (%(raw)s, %(schema)s, %(marts)s)
                """,
                {"role": roles.reader, "raw": raw, "schema": schema, "marts": marts},
            )
            rows = cur.fetchall()
            readable = {(nsp, rel) for nsp, rel, can_select, _ in rows if can_select}
            assert readable == {(marts, mart) for mart in MARTS}
            assert not [(nsp, rel) for nsp, rel, _, can_write in rows if can_write]
            cur.execute(
                "select has_schema_privilege(%(role)s, %(raw)s, 'USAGE'), "
                "has_schema_privilege(%(role)s, %(schema)s, 'USAGE'), "
                "has_schema_privilege(%(role)s, %(marts)s, 'USAGE'), "
                "has_schema_privilege(%(role)s, %(marts)s, 'CREATE'), "
                "has_database_privilege(%(role)s, current_database(), 'CREATE, TEMPORARY')",
                {"role": roles.reader, "raw": raw, "schema": schema, "marts": marts},
            )
            assert cur.fetchone() == (False, False, True, False, False)
            # Everything the pipeline built belongs to its group role, so any member can rebuild it.
            cur.execute(
                "select distinct tableowner from pg_tables where schemaname in (%s, %s, %s)", [raw, schema, marts]
            )
            assert [row[0] for row in cur.fetchall()] == [roles.job]
    finally:
        admin.close()


# -- publishing: bounded lock waits, the reader role checked, no grants on the build schema -------------------


def _build_marts(database: str, build: str, rows: int) -> None:
    _execute(
        database,
        f"create schema if not exists {build}",
        f"drop table if exists {build}.mart_a",
        f"drop table if exists {build}.mart_b",
        f"create table {build}.mart_a as select generate_series(1, {rows}) as n",
        f"create table {build}.mart_b as select {rows} as total",
    )


def test_an_open_reader_transaction_cannot_hang_publish(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from insiders.errors import WarehouseError
    from insiders.publish import publish_marts
    from insiders.warehouse import connect

    build, live = "s_marts_build", "s_marts"
    _build_marts(pg_database, build, 3)
    with connect("postgres") as wh:
        assert publish_marts(wh, build, live) == ["mart_a", "mart_b"]
    _build_marts(pg_database, build, 5)

    # A BI reader opens a transaction and keeps it: its lock on mart_a lasts until it ends.
    reader = _superuser(pg_database)
    reader.set_session(readonly=True)
    with reader.cursor() as cur:
        cur.execute("set application_name = 'powerbi-test'")
        cur.execute(f"select count(*) from {live}.mart_a")
        assert cur.fetchone() == (3,)

    monkeypatch.setenv("INSIDERS_PUBLISH_LOCK_TIMEOUT_S", "0.5")
    monkeypatch.setenv("INSIDERS_PUBLISH_ATTEMPTS", "3")
    pauses: list[float] = []
    lines: list[str] = []
    started = time.monotonic()
    try:
        with connect("postgres") as wh, pytest.raises(WarehouseError) as err:
            publish_marts(wh, build, live, log=lines.append, sleep=pauses.append)
        assert time.monotonic() - started < 15, "publish gave up within its bounds"
        message = str(err.value)
        assert "3 attempt(s) waited 0.5 s" in message and "application 'powerbi-test'" in message
        assert "The previous marts are still published" in message
        assert pauses == [1.0, 2.0] and len(lines) == 2 and "retrying" in lines[0]

        # The waiting publication never blocked other readers for good: a new reader reads the previous marts.
        other = _superuser(pg_database)
        try:
            with other.cursor() as cur:
                cur.execute("set statement_timeout = '5s'")
                cur.execute(f"select count(*) from {live}.mart_a")
                assert cur.fetchone() == (3,)
        finally:
            other.close()
    finally:
        reader.rollback()  # the reader's transaction ends...
        reader.close()

    with connect("postgres") as wh:  # ...and the publication goes through
        publish_marts(wh, build, live, sleep=pauses.append)
    _execute_rows = _superuser(pg_database)
    try:
        with _execute_rows.cursor() as cur:
            cur.execute(f"select count(*), (select total from {live}.mart_b) from {live}.mart_a")
            assert cur.fetchone() == (5, 5)
    finally:
        _execute_rows.close()


def test_publish_refuses_a_reader_role_that_does_not_exist(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from insiders.errors import ConfigError
    from insiders.publish import publish_marts
    from insiders.warehouse import connect

    build, live = "s_marts_build", "s_marts"
    _build_marts(pg_database, build, 3)
    monkeypatch.delenv("INSIDERS_BI_READER_ROLE", raising=False)
    with connect("postgres") as wh:  # a development database: no reader anywhere, nothing to grant
        publish_marts(wh, build, live)

    # Configured, but missing: refused, naming the variable and roles.sql.
    missing = f"no_such_reader_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("INSIDERS_BI_READER_ROLE", missing)
    with connect("postgres") as wh, pytest.raises(ConfigError, match=rf"'{missing}' \(INSIDERS_BI_READER_ROLE\)"):
        publish_marts(wh, build, live)

    # Not configured, while another role reads the marts: the reader would lose access; refused, naming it.
    reader = f"bi_reader_{uuid.uuid4().hex[:8]}"
    _execute("postgres", f"create role {reader} nologin")
    try:
        _execute(pg_database, f"grant usage on schema {live} to {reader}")
        monkeypatch.delenv("INSIDERS_BI_READER_ROLE")
        with connect("postgres") as wh, pytest.raises(ConfigError) as err:
            publish_marts(wh, build, live)
        assert f"is read by {reader}: set INSIDERS_BI_READER_ROLE to that role" in str(err.value)
        assert "Nothing was published" in str(err.value)

        monkeypatch.setenv("INSIDERS_BI_READER_ROLE", reader)
        with connect("postgres") as wh:
            publish_marts(wh, build, live)
        conn = _superuser(pg_database)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "select has_table_privilege(%s, %s, 'SELECT'), has_table_privilege(%s, %s, 'SELECT')",
                    [reader, f"{live}.mart_a", reader, f"{build}.mart_a"],
                )
                assert cur.fetchone() == (True, False)
        finally:
            conn.close()
    finally:
        _execute(pg_database, f"drop owned by {reader} cascade")
        _execute("postgres", f"drop role if exists {reader}")


def test_insiders_run_grants_the_published_marts_and_not_the_build_schema(roles: Roles, tmp_path: Path) -> None:
    """The scheduled job as the pipeline user: the reader reads every published mart and no build table; with
    the reader role left unconfigured, the next run refuses to publish instead of cutting the reader off."""
    schema = load_target("postgres").schema
    marts, build = f"{schema}_marts", f"{schema}_marts_build"
    _run_roles_sql(roles)
    _execute(
        roles.database,
        f"create role {roles.job_user} login password '{roles.password}' in role {roles.job}",
        f"alter role {roles.job_user} set role = '{roles.job}'",
        f"create role {roles.reader_user} login password '{roles.password}' in role {roles.reader}",
    )
    sample = tmp_path / "sample.csv.gz"
    run_cli("generate", "--out", str(sample), "--customers", "300", "--months", "6", "--quiet")
    with _as_pipeline_user(roles, tmp_path):
        os.environ["INSIDERS_BI_READER_ROLE"] = roles.reader
        try:
            run_cli("run", "--target", "postgres", "--source", str(sample), "--train-if-unpinned")
        finally:
            del os.environ["INSIDERS_BI_READER_ROLE"]
        refused = run_cli("run", "--target", "postgres", check=False)
    assert refused.returncode == 4, refused.stderr
    assert f"is read by {roles.reader}: set INSIDERS_BI_READER_ROLE" in refused.stderr
    assert "step 'publish' failed" in refused.stderr

    _assert_reads_every_mart(roles, marts)
    admin = _superuser(roles.database)
    try:
        with admin.cursor() as cur:
            cur.execute(
                "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = %s and c.relkind = 'r' and has_table_privilege(%s, c.oid, 'SELECT')",
                [build, roles.reader],
            )
            assert cur.fetchall() == [], "no build table is granted to the reader"
            cur.execute("select count(*) from pg_tables where schemaname = %s", [build])
            assert cur.fetchone()[0] >= len(MARTS)
    finally:
        admin.close()
