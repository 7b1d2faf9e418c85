"""One place that knows how to reach the warehouse.

The Python jobs read the same ``profiles.yml`` as dbt and render its ``env_var()`` calls the same way, so a
target means the same database to both. Three adapters are supported: DuckDB (the embedded default),
PostgreSQL (production, Amazon RDS) and Apache Spark (a SparkSession in this process: local mode, or the driver
of a cluster; see :mod:`insiders.spark_tables` for how the jobs write without transactions there).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from insiders.errors import ConfigError, WarehouseError
from insiders.tables import spark_type
from insiders.targets import (  # noqa: F401  (re-exported: the jobs import these from here)
    _SQL_TYPE,
    IdentifierError,
    Target,
    load_target,
    profiles_dir,
    project_dir,
    quote_identifier,
    raw_schema,
    target_in_schema,
    validate_identifier,
    validate_number,
)

if TYPE_CHECKING:  # pandas and pyarrow load on first use: a run with nothing new never needs them
    import pandas as pd
    import pyarrow as pa


class Warehouse:
    """A thin connection wrapper with the few operations the jobs need, on either adapter."""

    def __init__(self, target: Target, conn: Any):
        self.target = target
        self.conn = conn
        self.kind = target.type

    # -- names ------------------------------------------------------------------------------------
    def ident(self, *parts: str, what: str = "identifier") -> str:
        """A validated, adapter-quoted (possibly qualified) name: ``ident("main", "customer_features")``.

        Every part must pass :func:`validate_identifier`; PostgreSQL's driver then quotes it for this
        connection, DuckDB gets standard double quotes.
        """
        names = [validate_identifier(p, what) for p in parts]
        if self.kind == "spark":
            return ".".join(f"`{n}`" for n in names)
        if self.kind == "postgres":
            from psycopg2.extensions import quote_ident

            return ".".join(quote_ident(n, self.conn) for n in names)
        return ".".join(f'"{n}"' for n in names)

    def sql_type(self, sql_type: str) -> str:
        """A type of the project's DDL (``double precision``, ``varchar``, ``numeric(18, 4)``, as in
        :mod:`insiders.tables`) as this warehouse names it: Spark's names on Spark (:func:`tables.spark_type`), the
        type as written on DuckDB and PostgreSQL. Queries that cast use it, so one query text serves all three."""
        if not _SQL_TYPE.fullmatch(sql_type):
            raise ConfigError(f"{sql_type!r} is not a plain SQL type name")
        return spark_type(sql_type) if self.kind == "spark" else sql_type

    def qualified(self, relation: str, what: str = "table name") -> str:
        """``schema.table`` (or ``table``) as validated, quoted parts."""
        return self.ident(*relation.split("."), what=what)

    # -- statements -------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement (``%s`` placeholders on every adapter)."""
        if self.kind == "spark":
            self._spark_sql(sql, params).collect()
            return
        if self.kind == "duckdb":
            self.conn.execute(sql.replace("%s", "?"), params or [])
        else:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)

    def execute_count(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run one insert, update or delete (``%s`` placeholders) and return the number of rows it wrote."""
        if self.kind == "spark":
            raise NotImplementedError("Spark reports no row count of a write")
        if self.kind == "duckdb":
            return int(self.conn.execute(sql.replace("%s", "?"), params or []).fetchone()[0])
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return int(cur.rowcount)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return all rows."""
        if self.kind == "spark":
            return [tuple(row) for row in self._spark_sql(sql, params).collect()]
        if self.kind == "duckdb":
            return self.conn.execute(sql.replace("%s", "?"), params or []).fetchall()
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a query and return a DataFrame."""
        import pandas as pd

        if self.kind == "spark":
            frame = self._spark_sql(sql, params).toArrow().to_pandas()
            # Spark's timestamps are instants; the other adapters give UTC wall times without a zone, as stored.
            for name in frame.columns:
                if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
                    frame[name] = frame[name].dt.tz_convert("UTC").dt.tz_localize(None)
            return frame
        if self.kind == "duckdb":
            return self.conn.execute(sql.replace("%s", "?"), params or []).df()
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            cols = [d[0] for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=cols)

    def iter_frames(self, sql: str, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """Stream a query's result as DataFrames of at most ``chunk_rows`` rows (flat memory).

        On Spark the rows come to the driver partition by partition (``toLocalIterator``).
        """
        if self.kind == "spark":
            import pandas as pd

            frame = self._spark_sql(sql)
            names = frame.columns
            rows: list[Any] = []
            for row in frame.toLocalIterator(prefetchPartitions=True):
                rows.append(tuple(row))
                if len(rows) >= chunk_rows:
                    yield pd.DataFrame(rows, columns=names)
                    rows = []
            if rows:
                yield pd.DataFrame(rows, columns=names)
            return
        if self.kind == "duckdb":
            # A cursor of its own, so that statements run while streaming do not cancel the stream.
            cursor = self.conn.cursor()
            try:
                reader = cursor.sql(sql).to_arrow_reader(chunk_rows)
                for batch in reader:
                    if batch.num_rows:
                        yield batch.to_pandas()
            finally:
                cursor.close()
            return
        import pandas as pd

        with self.conn.cursor(name=f"insiders_stream_{id(self)}") as cur:
            cur.itersize = chunk_rows
            cur.execute(sql)
            while True:
                rows = cur.fetchmany(chunk_rows)
                if not rows:
                    break
                yield pd.DataFrame(rows, columns=[d[0] for d in cur.description])

    def columns(self, schema: str, table: str) -> dict[str, str]:
        """Column name -> lower-case data type, in table order ({} when the relation does not exist)."""
        if self.kind == "spark":
            if not self.relation_exists(schema, table):
                return {}
            return {str(n): str(t).lower() for n, t in self.conn.table(self.ident(schema, table)).dtypes}
        rows = self.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            [schema, table],
        )
        return {str(name): str(kind).lower() for name, kind in rows}

    def relation_exists(self, schema: str, table: str) -> bool:
        """Whether a table or view exists."""
        if self.kind == "spark":
            validate_identifier(schema, "schema name")
            validate_identifier(table, "table name")
            return bool(self.conn.catalog.databaseExists(schema)) and bool(
                self.conn.catalog.tableExists(f"{schema}.{table}")
            )
        rows = self.query(
            "select count(*) from information_schema.tables where table_schema = %s and table_name = %s",
            [schema, table],
        )
        return bool(rows[0][0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Warehouse]:
        """All or nothing: commit on success, roll back on any exception.

        Spark has no transactions: there the block runs as it is, and the jobs make their writes atomic
        themselves (they write aside and swap, :mod:`insiders.spark_tables`).
        """
        if self.kind == "spark":
            yield self
            return
        if self.kind == "duckdb":
            self.conn.execute("begin transaction")
        try:
            yield self
        except BaseException:
            self.conn.rollback()
            raise
        else:
            self.conn.commit()

    def append_arrow(self, table: str, data: pa.Table, casts: dict[str, str] | None = None) -> None:
        """Append rows in bulk: DuckDB scans the Arrow table natively, PostgreSQL receives CSV through COPY.

        ``casts`` maps a column to the SQL type it is cast to on the way in (text to numeric, exactly).
        """
        if data.num_rows == 0:
            return
        if self.kind == "duckdb":
            self._duckdb_insert(table, data.column_names, data, casts)
            return
        if self.kind == "spark":
            self.spark_frame(data, table).write.insertInto(self.qualified(table))
            return
        import pyarrow.csv as pacsv

        target = self.qualified(table)
        col_list = ", ".join(self.ident(c, what="column name") for c in data.column_names)
        buf = io.BytesIO()
        pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False))
        buf.seek(0)
        with self.conn.cursor() as cur:
            cur.copy_expert(f"copy {target} ({col_list}) from stdin with (format csv, encoding 'utf8')", buf)

    def analyze(self, *tables: str) -> None:
        """Refresh the planner statistics of tables on PostgreSQL (after a bulk load); DuckDB keeps its own."""
        if self.kind != "postgres":
            return
        for table in tables:
            self.execute(f"analyze {self.qualified(table)}")

    def append_batches(
        self, table: str, schema: pa.Schema, batches: Iterable[pa.Table], casts: dict[str, str] | None = None
    ) -> None:
        """Append a stream of Arrow tables (all of ``schema``) in bulk, in flat memory.

        DuckDB reads the whole stream in one ``INSERT``, which writes full row groups to the database file as
        it goes; a row at a time or many small inserts would keep every appended row in memory until the
        commit. PostgreSQL receives one ``COPY`` per table. An exception raised by ``batches`` (a bad line, a
        refused file) comes out of this call as it was raised, after what was appended: the caller's
        transaction then rolls back.
        """
        if self.kind != "duckdb":
            for data in batches:
                self.append_arrow(table, data, casts)
            return
        import pyarrow as pa

        failure: list[BaseException] = []

        def stream() -> Iterator[pa.RecordBatch]:
            try:
                for data in batches:
                    yield from data.to_batches()
            except BaseException as exc:  # handed back to the caller below, not lost inside DuckDB
                failure.append(exc)

        reader = pa.RecordBatchReader.from_batches(schema, stream())
        try:
            self._duckdb_insert(table, schema.names, reader, casts)
        except Exception:
            if failure:
                raise failure[0] from None
            raise
        if failure:
            raise failure[0]

    def _duckdb_insert(
        self, table: str, names: Sequence[str], data: pa.Table | pa.RecordBatchReader, casts: dict[str, str] | None
    ) -> None:
        """``insert into table select … from`` an Arrow table or stream, casting the named columns."""
        target = self.qualified(table)
        cols = [self.ident(c, what="column name") for c in names]
        casts = casts or {}
        for sql_type in casts.values():
            if not _SQL_TYPE.fullmatch(sql_type):
                raise ConfigError(f"{sql_type!r} is not a plain SQL type name")
        select = ", ".join(f"cast({q} as {casts[c]})" if c in casts else q for c, q in zip(names, cols, strict=True))
        self.conn.register("_insiders_batch", data)
        try:
            self.conn.execute(f"insert into {target} ({', '.join(cols)}) select {select} from _insiders_batch")
        finally:
            self.conn.unregister("_insiders_batch")

    # -- Spark ----------------------------------------------------------------------------------------
    def _spark_sql(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """A Spark DataFrame of one statement; ``%s`` placeholders become Spark's positional ``?`` markers."""
        if params:
            return self.conn.sql(sql.replace("%s", "?"), args=list(params))
        return self.conn.sql(sql)

    def spark_frame(self, data: pa.Table, table: str | None = None) -> Any:
        """An Arrow table as a Spark DataFrame; with ``table``, cast and ordered as that table's columns."""
        frame = self.conn.createDataFrame(data)
        if table is None:
            return frame
        schema, name = table.split(".")
        columns = self.columns(schema, name)
        return frame.selectExpr(*(f"cast({self.ident(c)} as {t}) as {self.ident(c)}" for c, t in columns.items()))

    def advisory_lock(self, key: int) -> bool:
        """Try a transaction-level advisory lock on PostgreSQL; DuckDB's file lock already serialises."""
        if self.kind != "postgres":
            return True
        return bool(self.query("select pg_try_advisory_xact_lock(%s)", [key])[0][0])

    def close(self) -> None:
        """Close the connection. A SparkSession stays open for the rest of the process: dbt in this process and
        the next step share it (starting one takes seconds), and it ends with the process."""
        if self.kind == "spark":
            return
        with contextlib.suppress(Exception):
            self.conn.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The environment variables behind the DuckDB settings in profiles.yml, named in error messages.
DUCKDB_SETTING_ENVS = {
    "memory_limit": "INSIDERS_DUCKDB_MEMORY_LIMIT",
    "threads": "INSIDERS_DUCKDB_THREADS",
    "preserve_insertion_order": "INSIDERS_DUCKDB_PRESERVE_INSERTION_ORDER",
    "temp_directory": "INSIDERS_DUCKDB_TEMP_DIRECTORY",
}


def _bad_duckdb_option(settings: dict[str, str]) -> ConfigError | None:
    """The option DuckDB refused, tried one by one on an in-memory database; None when each is accepted."""
    import duckdb

    for key, value in settings.items():
        try:
            duckdb.connect(":memory:", config={key: value}).close()
        except duckdb.Error as one:
            source = DUCKDB_SETTING_ENVS.get(key)
            where = f" (from {source})" if source else ""
            return ConfigError(
                f"DuckDB option {key} = {value!r}{where} is not accepted: {str(one).strip().splitlines()[0]}"
            )
    return None


def connect(target: Target | str | None = None) -> Warehouse:
    """Open a connection to a target (a name, a :class:`Target`, or the profile's default)."""
    if not isinstance(target, Target):
        target = load_target(target)
    if target.type == "spark":
        return Warehouse(target, spark_session(target))
    if target.type == "duckdb":
        import duckdb

        path = target.duckdb_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        options = target.duckdb_settings()
        config: dict[str, str | bool | int | float | list[str]] = dict(options)
        try:
            duck = duckdb.connect(str(path), config=config)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WarehouseError(
                    f"the DuckDB file {path} is in use by another process (another insiders or dbt run?); "
                    "wait for it to finish and try again"
                ) from exc
            raise WarehouseError(f"cannot open the DuckDB file {path}: {exc}") from exc
        except duckdb.Error as exc:
            bad = _bad_duckdb_option(options)
            if bad is not None:
                raise bad from exc
            raise WarehouseError(f"cannot open the DuckDB file {path}: {exc}") from exc
        return Warehouse(target, duck)

    import psycopg2

    s = target.settings
    try:
        conn = psycopg2.connect(
            host=s.get("host"),
            port=int(s.get("port", 5432)),
            user=s.get("user"),
            password=s.get("password") or None,
            dbname=s.get("dbname") or s.get("database"),
            sslmode=s.get("sslmode") or "prefer",
            connect_timeout=int(s.get("connect_timeout", 10)),
            application_name="insiders",
        )
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise WarehouseError(f"cannot connect to {target.describe()}: {reason}") from exc
    return Warehouse(target, conn)


def spark_session(target: Target) -> Any:
    """The process's SparkSession for a ``spark`` target, started on first use with the profile's settings.

    dbt-spark's session method, run in this process by :mod:`insiders.dbt_session`, finds this session and uses
    it, so the jobs and dbt see the same catalog. ANSI mode is off, as dbt-spark sets it (the models' arithmetic
    and casts behave the same in both). A missing pyspark or Java is a configuration error saying what to install.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            f"{target.describe()} needs pyspark: pip install -c constraints.txt -e '.[spark]' (and Java 17)"
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    conf = target.spark_settings()
    for key in ("spark.sql.warehouse.dir",):
        folder = conf.get(key)
        if folder and "://" not in folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    metastore = target.spark_metastore_dir()
    if metastore is not None:
        metastore.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    builder = builder.config("spark.sql.ansi.enabled", "false")
    # The executors' Python (mapInPandas in scoring) is this one, with the project's packages; pyspark reads the
    # variable when the session starts (a cluster's spark-env.sh sets its own).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        session = builder.enableHiveSupport().getOrCreate()
    except Exception as exc:  # Java missing, a metastore in use by another process, a bad setting
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise WarehouseError(f"cannot start Spark for {target.describe()}: {first}") from exc
    # Failures reach the caller as exceptions with their message; Spark's own log would repeat each one with a
    # Java stack trace.
    session.sparkContext.setLogLevel("ERROR")
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    return session
