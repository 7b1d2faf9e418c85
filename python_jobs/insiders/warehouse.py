"""One place that knows how to reach the warehouse.

The Python jobs read the same ``profiles.yml`` as dbt and render its ``env_var()`` calls the same way, so a
target means the same database to both. Two adapters are supported: DuckDB (the embedded default) and
PostgreSQL (production, Amazon RDS).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import yaml

from insiders.errors import ConfigError, WarehouseError

if TYPE_CHECKING:  # pandas and pyarrow load on first use: a run with nothing new never needs them
    import pandas as pd
    import pyarrow as pa

PROFILE_NAME = "insiders"
_MISSING = object()
RAW_SCHEMA_ENV = "INSIDERS_RAW_SCHEMA"
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
    """A validated identifier in double quotes, the same on DuckDB and PostgreSQL.

    Prefer :meth:`Warehouse.ident`, which lets the adapter quote; this one is for SQL written without a
    connection (DDL templates). Validation comes first: quoting alone is never trusted with a name.
    """
    return '"' + validate_identifier(name, what) + '"'


def raw_schema() -> str:
    """The raw schema: ``INSIDERS_RAW_SCHEMA`` or ``raw``, validated as an identifier."""
    value = os.environ.get(RAW_SCHEMA_ENV, "").strip() or DEFAULT_RAW_SCHEMA
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
    env = os.environ.get("INSIDERS_PROJECT_DIR")
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
        return (
            f"target '{self.name}' (PostgreSQL {s.get('user')}@{s.get('host')}:{s.get('port')}"
            f"/{s.get('dbname') or s.get('database')})"
        )

    def duckdb_path(self) -> Path:
        """Absolute path of the DuckDB file; relative paths are relative to the project directory."""
        path = Path(str(self.settings.get("path", "data/insiders.duckdb")))
        return path if path.is_absolute() else project_dir() / path


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
    settings = _render(outputs[name], env)
    kind = settings.get("type")
    if kind not in {"duckdb", "postgres"}:
        raise ConfigError(f"target '{name}' has type {kind!r}; insiders supports duckdb and postgres")
    target = Target(name=name, type=kind, settings=settings)
    source = "INSIDERS_DUCKDB_SCHEMA" if kind == "duckdb" else "INSIDERS_PG_SCHEMA"
    validate_identifier(target.schema, f"the schema of target '{name}' (profiles.yml, usually ${source})")
    return target


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
        if self.kind == "postgres":
            from psycopg2.extensions import quote_ident

            return ".".join(quote_ident(n, self.conn) for n in names)
        return ".".join(f'"{n}"' for n in names)

    def qualified(self, relation: str, what: str = "table name") -> str:
        """``schema.table`` (or ``table``) as validated, quoted parts."""
        return self.ident(*relation.split("."), what=what)

    # -- statements -------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement (``%s`` placeholders on both adapters)."""
        if self.kind == "duckdb":
            self.conn.execute(sql.replace("%s", "?"), params or [])
        else:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return all rows."""
        if self.kind == "duckdb":
            return self.conn.execute(sql.replace("%s", "?"), params or []).fetchall()
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a query and return a DataFrame."""
        if self.kind == "duckdb":
            return self.conn.execute(sql.replace("%s", "?"), params or []).df()
        import pandas as pd

        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            cols = [d[0] for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=cols)

    def iter_frames(self, sql: str, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """Stream a query's result as DataFrames of at most ``chunk_rows`` rows (flat memory)."""
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
        rows = self.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            [schema, table],
        )
        return {str(name): str(kind).lower() for name, kind in rows}

    def relation_exists(self, schema: str, table: str) -> bool:
        """Whether a table or view exists."""
        rows = self.query(
            "select count(*) from information_schema.tables where table_schema = %s and table_name = %s",
            [schema, table],
        )
        return bool(rows[0][0])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Warehouse]:
        """All or nothing: commit on success, roll back on any exception."""
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
        target = self.qualified(table)
        cols = [self.ident(c, what="column name") for c in data.column_names]
        col_list = ", ".join(cols)
        if self.kind == "duckdb":
            casts = casts or {}
            for sql_type in casts.values():
                if not _SQL_TYPE.fullmatch(sql_type):
                    raise ConfigError(f"{sql_type!r} is not a plain SQL type name")
            select = ", ".join(
                f"cast({q} as {casts[c]})" if c in casts else q for c, q in zip(data.column_names, cols, strict=True)
            )
            self.conn.register("_insiders_batch", data)
            try:
                self.conn.execute(f"insert into {target} ({col_list}) select {select} from _insiders_batch")
            finally:
                self.conn.unregister("_insiders_batch")
            return
        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False))
        buf.seek(0)
        with self.conn.cursor() as cur:
            cur.copy_expert(f"copy {target} ({col_list}) from stdin with (format csv, encoding 'utf8')", buf)

    def advisory_lock(self, key: int) -> bool:
        """Try a transaction-level advisory lock on PostgreSQL; DuckDB's file lock already serialises."""
        if self.kind != "postgres":
            return True
        return bool(self.query("select pg_try_advisory_xact_lock(%s)", [key])[0][0])

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(Exception):
            self.conn.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(target: Target | str | None = None) -> Warehouse:
    """Open a connection to a target (a name, a :class:`Target`, or the profile's default)."""
    if not isinstance(target, Target):
        target = load_target(target)
    if target.type == "duckdb":
        import duckdb

        path = target.duckdb_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WarehouseError(
                    f"the DuckDB file {path} is in use by another process (another insiders or dbt run?); "
                    "wait for it to finish and try again"
                ) from exc
            raise WarehouseError(f"cannot open the DuckDB file {path}: {exc}") from exc
        return Warehouse(target, conn)

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
