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
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import yaml

from insiders import settings
from insiders.errors import ConfigError, WarehouseError

if TYPE_CHECKING:  # pandas and pyarrow load on first use: a run with nothing new never needs them
    import pandas as pd
    import pyarrow as pa

PROFILE_NAME = "insiders"
_MISSING = object()
RAW_SCHEMA_ENV = "INSIDERS_RAW_SCHEMA"
#: the variable that profiles.yml reads each adapter's schema from
SCHEMA_ENV = {"duckdb": "INSIDERS_DUCKDB_SCHEMA", "postgres": "INSIDERS_PG_SCHEMA", "spark": "INSIDERS_SPARK_SCHEMA"}
DEFAULT_RAW_SCHEMA = "raw"

# The only names that may reach SQL: lower-case letters, digits and underscores, starting with a letter or an
# underscore, at most 63 characters (PostgreSQL's limit). Lower case only, because PostgreSQL folds unquoted
# names to lower case: a quoted "Raw" would be another schema than the one dbt builds as raw.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


# A type in a cast: words, digits, spaces, parentheses and commas only (``decimal(18, 4)``, ``double precision``).
_SQL_TYPE = re.compile(r"[a-z][a-z0-9_ ]*(\([0-9, ]+\))?", re.IGNORECASE)


class IdentifierError(ConfigError):
    """A schema, table, column or role name that is not a plain SQL identifier."""


def validate_identifier(name: object, what: str = "identifier") -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise :class:`IdentifierError` saying which rule failed.

    ``what`` names the value in the message (for example ``"schema name from INSIDERS_RAW_SCHEMA"``). The
    value is shown with ``repr`` so that control characters and quotes are visible, and cut at 80 characters.
    """
    if not isinstance(name, str):
        raise IdentifierError(f"{what} must be text, got {type(name).__name__}")
    if _IDENTIFIER.fullmatch(name):
        return name
    shown = repr(name if len(name) <= 80 else name[:80] + "...")
    if not name:
        reason = "it is empty"
    elif len(name) > 63:
        reason = "it is longer than 63 characters"
    elif name.lower() != name and _IDENTIFIER.fullmatch(name.lower()):
        reason = "it has upper-case letters (use lower case)"
    else:
        reason = "only lower-case letters, digits and underscores are allowed, not starting with a digit"
    raise IdentifierError(f"{what} {shown} is not a valid SQL identifier: {reason}")


def quote_identifier(name: object, what: str = "identifier") -> str:
    """A validated identifier in double quotes, the same on DuckDB and PostgreSQL (not Spark: see ``ident``).

    Prefer :meth:`Warehouse.ident`, which lets the adapter quote; this one is for SQL written without a
    connection (DDL templates). Validation comes first: quoting alone is never trusted with a name.
    """
    return '"' + validate_identifier(name, what) + '"'


def raw_schema() -> str:
    """The raw schema: ``INSIDERS_RAW_SCHEMA`` or ``raw``, validated as an identifier."""
    value = settings.text(RAW_SCHEMA_ENV)
    return validate_identifier(value, f"the raw schema name ({RAW_SCHEMA_ENV})")


def validate_number(value: object, what: str, minimum: float | None = None) -> float:
    """A finite number (not a boolean, not text that merely looks like one), at least ``minimum`` when given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{what} must be at least {minimum}, got {value!r}")
    return float(value)


def project_dir() -> Path:
    """The dbt project directory: ``INSIDERS_PROJECT_DIR`` or the checkout this package lives in."""
    env = settings.text("INSIDERS_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "dbt_project.yml").is_file():
            return parent
    return Path.cwd()


def profiles_dir() -> Path:
    """Where ``profiles.yml`` is: ``DBT_PROFILES_DIR`` or the project directory."""
    env = os.environ.get("DBT_PROFILES_DIR")
    return Path(env).resolve() if env else project_dir()


def _env_var(name: str, default: Any = _MISSING) -> str:
    if name in os.environ:
        return os.environ[name]
    if default is _MISSING:
        raise ConfigError(f"environment variable {name} is required by profiles.yml and is not set")
    return str(default)


def _render(value: Any, env: jinja2.Environment) -> Any:
    """Render strings the way dbt renders profiles: after YAML parsing, value by value."""
    if isinstance(value, dict):
        return {k: _render(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, env) for v in value]
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        # Values come out as text; callers convert numbers (e.g. the port) where they use them.
        return env.from_string(value).render()
    return value


def _jinja_env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    env.globals["env_var"] = _env_var

    def as_number(value: Any) -> Any:
        text = str(value).strip()
        try:
            number: Any = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError as exc:
                raise ConfigError(f"profiles.yml: {text!r} is not a number") from exc
        return number

    def as_bool(value: Any) -> bool:
        return str(value).strip().lower() in {"1", "true", "yes", "on"}

    env.filters["as_number"] = as_number
    env.filters["as_bool"] = as_bool
    env.filters["as_text"] = str
    return env


@dataclass(frozen=True)
class Target:
    """A rendered output of the ``insiders`` profile."""

    name: str
    type: str
    settings: dict[str, Any] = field(repr=False)

    @property
    def schema(self) -> str:
        """The schema dbt builds models in (validated as an identifier by :func:`load_target`)."""
        return str(self.settings.get("schema") or ("main" if self.type == "duckdb" else "public"))

    def describe(self) -> str:
        """A one-line description without secrets, for messages and logs."""
        s = self.settings
        if self.type == "duckdb":
            return f"target '{self.name}' (DuckDB file {self.duckdb_path()})"
        if self.type == "spark":
            conf = self.spark_settings()
            return (
                f"target '{self.name}' (Spark {conf.get('spark.master', s.get('host'))}, warehouse "
                f"{conf.get('spark.sql.warehouse.dir', '-')})"
            )
        return (
            f"target '{self.name}' (PostgreSQL {s.get('user')}@{s.get('host')}:{s.get('port')}"
            f"/{s.get('dbname') or s.get('database')})"
        )

    def duckdb_path(self) -> Path:
        """Absolute path of the DuckDB file; relative paths are relative to the project directory."""
        path = Path(str(self.settings.get("path", "data/insiders.duckdb")))
        return path if path.is_absolute() else project_dir() / path

    def duckdb_settings(self) -> dict[str, str]:
        """DuckDB options of the profile's ``config_options:``, as text, exactly as dbt-duckdb gives them.

        They are the options the database is opened with; the same values on both sides also let dbt run in
        the jobs' process beside an open connection (DuckDB refuses a second configuration of one file).
        """
        raw = self.settings.get("config_options") or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"target '{self.name}': 'config_options' in profiles.yml must be a mapping")
        values: dict[str, str] = {}
        for key, value in raw.items():
            if not isinstance(key, str) or not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
                raise ConfigError(f"target '{self.name}': {key!r} is not a DuckDB option name")
            values[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return values

    def spark_settings(self) -> dict[str, str]:
        """The Spark configuration of the profile's ``server_side_parameters``, paths made absolute.

        Relative paths (the warehouse folder, the Derby metastore) are relative to the project directory, as the
        DuckDB file is, so the jobs and a dbt started in the project find the same tables.
        """
        raw = self.settings.get("server_side_parameters") or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"target '{self.name}': 'server_side_parameters' in profiles.yml must be a mapping")
        conf = {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items()}
        warehouse_dir = conf.get("spark.sql.warehouse.dir")
        if warehouse_dir and "://" not in warehouse_dir and not Path(warehouse_dir).is_absolute():
            conf["spark.sql.warehouse.dir"] = str(project_dir() / warehouse_dir)
        url = conf.get("spark.hadoop.javax.jdo.option.ConnectionURL", "")
        match = re.match(r"(jdbc:derby:;databaseName=)([^;]+)(.*)", url)
        if match and not Path(match.group(2)).is_absolute():
            conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
                f"{match.group(1)}{project_dir() / match.group(2)}{match.group(3)}"
            )
        java_options = conf.get("spark.driver.extraJavaOptions", "")
        home = re.search(r"-Dderby\.system\.home=(\S+)", java_options)
        if home and not Path(home.group(1)).is_absolute():
            conf["spark.driver.extraJavaOptions"] = java_options.replace(
                home.group(0), f"-Dderby.system.home={project_dir() / home.group(1)}"
            )
        return conf

    def spark_metastore_dir(self) -> Path | None:
        """The folder of the embedded Derby metastore (None when the profile uses another metastore)."""
        url = self.spark_settings().get("spark.hadoop.javax.jdo.option.ConnectionURL", "")
        match = re.match(r"jdbc:derby:;databaseName=([^;]+)", url)
        return Path(match.group(1)).parent if match else None


def load_target(name: str | None = None) -> Target:
    """Read ``profiles.yml`` and return the named target (default: the profile's ``target``)."""
    path = profiles_dir() / "profiles.yml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no profiles.yml in {path.parent}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"profiles.yml is not valid YAML: {exc}") from exc
    profile = (raw or {}).get(PROFILE_NAME)
    if not isinstance(profile, dict) or "outputs" not in profile:
        raise ConfigError(f"profiles.yml has no '{PROFILE_NAME}' profile with outputs")
    env = _jinja_env()
    if name is None:
        name = str(_render(profile.get("target", "local"), env))
    outputs = profile["outputs"]
    if name not in outputs:
        raise ConfigError(f"unknown target '{name}': profiles.yml defines {', '.join(sorted(outputs))}")
    config = _render(outputs[name], env)
    kind = config.get("type")
    if kind not in SCHEMA_ENV:
        raise ConfigError(f"target '{name}' has type {kind!r}; insiders supports duckdb, postgres and spark")
    if kind == "spark" and config.get("method") != "session":
        raise ConfigError(
            f"target '{name}' reaches Spark through {config.get('method')!r}, which only dbt can use; the insiders "
            "jobs need a SparkSession: use the spark target (method session) on the cluster's driver"
        )
    target = Target(name=name, type=kind, settings=config)
    validate_identifier(target.schema, f"the schema of target '{name}' (profiles.yml, usually ${SCHEMA_ENV[kind]})")
    return target


@contextlib.contextmanager
def target_in_schema(target: Target, schema: str) -> Iterator[Target]:
    """``target`` with its schema set to ``schema``, for this process and the dbt it runs, until the block ends.

    The profile's schema variable (``INSIDERS_DUCKDB_SCHEMA`` or ``INSIDERS_PG_SCHEMA``) is set for the block, so
    dbt in this process and any child sees the same schema; a profile that does not read it is refused.
    """
    variable = SCHEMA_ENV[target.type]
    schema = validate_identifier(schema, f"schema {schema!r}")
    with settings.overridden(variable, schema):
        redirected = load_target(target.name)
        if redirected.schema != schema:
            raise ConfigError(
                f"target '{target.name}' does not take its schema from ${variable}; profiles.yml must set schema "
                "from it"
            )
        yield redirected


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
