"""Targets: the connection profiles of ``profiles.yml``, rendered as dbt renders them, and the checks on every
name and number that reaches SQL (identifiers, schema names, types).

:mod:`insiders.warehouse` connects to a target; this module only reads and checks configuration.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from insiders import settings
from insiders.errors import ConfigError

PROFILE_NAME = "insiders"
_MISSING = object()
RAW_SCHEMA_ENV = "INSIDERS_RAW_SCHEMA"
#: Catalog names DuckDB keeps for itself: a database file named after one (``main.duckdb``) cannot be attached by
#: dbt-duckdb, which names the catalog after the file's stem.
DUCKDB_RESERVED_CATALOGS = frozenset({"main", "system", "temp", "memory"})
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


#: Words PostgreSQL reserves (or admits only as a function or type name) that DuckDB's list below leaves out.
_POSTGRES_ONLY_RESERVED = frozenset(
    [
        "current_catalog",
        "current_date",
        "current_role",
        "current_schema",
        "current_time",
        "current_timestamp",
        "current_user",
        "grant",
        "localtime",
        "localtimestamp",
        "session_user",
        "user",
    ]
)


@functools.cache
def _reserved_words() -> frozenset[str]:
    """SQL words a schema name cannot be without quotes: DuckDB's reserved and type-or-function keywords (its
    parser is PostgreSQL's, so these are nearly PostgreSQL's too) and the few more PostgreSQL reserves."""
    import duckdb

    with duckdb.connect() as con:
        rows = con.execute(
            "select keyword_name from duckdb_keywords() where keyword_category in ('reserved', 'type_function')"
        ).fetchall()
    return frozenset(str(r[0]).lower() for r in rows) | _POSTGRES_ONLY_RESERVED


def validate_schema_name(name: object, what: str = "schema name") -> str:
    """A schema name: a plain identifier (:func:`validate_identifier`) that is not a reserved SQL word.

    The jobs write a schema into SQL as ``schema.table``; a reserved word there (``full``, ``user``, ``order``)
    is a syntax error on DuckDB and PostgreSQL, found only when a step reaches it. It is refused up front.
    """
    schema = validate_identifier(name, what)
    if schema in _reserved_words():
        raise IdentifierError(f"{what} {schema!r} is a reserved SQL word; choose another schema name")
    return schema


def quote_identifier(name: object, what: str = "identifier") -> str:
    """A validated identifier in double quotes, the same on DuckDB and PostgreSQL (not Spark: see ``ident``).

    Prefer :meth:`Warehouse.ident`, which lets the adapter quote; this one is for SQL written without a
    connection (DDL templates). Validation comes first: quoting alone is never trusted with a name.
    """
    return '"' + validate_identifier(name, what) + '"'


def raw_schema() -> str:
    """The raw schema: ``INSIDERS_RAW_SCHEMA`` or ``raw``, validated as an identifier."""
    value = settings.text(RAW_SCHEMA_ENV)
    return validate_schema_name(value, f"the raw schema name ({RAW_SCHEMA_ENV})")


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
        # dbt-duckdb attaches the file as a catalog named after its stem; DuckDB keeps these names for itself.
        if path.stem.lower() in DUCKDB_RESERVED_CATALOGS:
            raise ConfigError(
                f"the DuckDB file {path.name!r} cannot be used: DuckDB reserves the name {path.stem!r} for its own "
                "catalogs and dbt names the database after the file; choose another file name (INSIDERS_DUCKDB_PATH)"
            )
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
    validate_schema_name(target.schema, f"the schema of target '{name}' (profiles.yml, usually ${SCHEMA_ENV[kind]})")
    return target


@contextlib.contextmanager
def target_in_schema(target: Target, schema: str) -> Iterator[Target]:
    """``target`` with its schema set to ``schema``, for this process and the dbt it runs, until the block ends.

    The profile's schema variable (``INSIDERS_DUCKDB_SCHEMA`` or ``INSIDERS_PG_SCHEMA``) is set for the block, so
    dbt in this process and any child sees the same schema; a profile that does not read it is refused.
    """
    variable = SCHEMA_ENV[target.type]
    schema = validate_schema_name(schema, f"schema {schema!r}")
    with settings.overridden(variable, schema):
        redirected = load_target(target.name)
        if redirected.schema != schema:
            raise ConfigError(
                f"target '{target.name}' does not take its schema from ${variable}; profiles.yml must set schema "
                "from it"
            )
        yield redirected
