"""Every ``INSIDERS_*`` environment variable in one table: its name, default, meaning and who reads it.

Python code reads a variable only through this module (:func:`text`, :func:`number`, :func:`whole`,
:func:`is_set`); ``profiles.yml`` reads the connection variables itself with dbt's ``env_var`` and the cron
wrapper ``deploy/run-insiders.sh`` its own few, so those rows record the defaults those files write.
``tests/python/test_settings.py`` checks that every ``INSIDERS_*`` name in the code, ``profiles.yml`` and
``deploy/`` is declared here, that the defaults agree with ``profiles.yml``, and that ``docs/operations.md``
documents each one. ``insiders settings`` prints the table with the values in effect (secrets masked).

The environment is read when a value is asked for, not once at import: a test or a back-fill that sets a
variable for a while is seen by the next read.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from insiders.errors import ConfigError

PYTHON = "insiders"
PROFILES = "profiles.yml"
DBT_TESTS = "dbt tests"
WRAPPER = "deploy/run-insiders.sh"


@dataclass(frozen=True)
class Setting:
    """One environment variable: ``default`` is what an unset or blank variable means (``""``: nothing)."""

    name: str
    default: str
    help: str
    read_by: str = PYTHON
    secret: bool = False


_TABLE = (
    # ---------------------------------------------------------------------------------------------- warehouse
    Setting("INSIDERS_TARGET", "local", "profiles.yml target: local (DuckDB), postgres or spark", PROFILES),
    Setting(
        "INSIDERS_DUCKDB_PATH",
        "data/insiders.duckdb",
        "the DuckDB database file (not main, system, temp or memory.duckdb: DuckDB keeps those names)",
        PROFILES,
    ),
    Setting("INSIDERS_DUCKDB_SCHEMA", "main", "DuckDB schema of the models (dbt's target schema)", PROFILES),
    Setting("INSIDERS_DUCKDB_MEMORY_LIMIT", "3GB", "DuckDB memory_limit (dbt and the Python steps)", PROFILES),
    Setting("INSIDERS_DUCKDB_THREADS", "2", "DuckDB threads", PROFILES),
    Setting("INSIDERS_DUCKDB_PRESERVE_INSERTION_ORDER", "false", "DuckDB preserve_insertion_order", PROFILES),
    Setting("INSIDERS_DUCKDB_TEMP_DIRECTORY", "", "where DuckDB spills (default: beside the database file)", PROFILES),
    Setting("INSIDERS_PG_HOST", "127.0.0.1", "PostgreSQL host", PROFILES),
    Setting("INSIDERS_PG_PORT", "5432", "PostgreSQL port", PROFILES),
    Setting("INSIDERS_PG_USER", "postgres", "PostgreSQL user", PROFILES),
    Setting("INSIDERS_PG_PASSWORD", "", "PostgreSQL password (or a .pgpass file)", PROFILES, secret=True),
    Setting("INSIDERS_PG_DATABASE", "insiders", "PostgreSQL database", PROFILES),
    Setting("INSIDERS_PG_SCHEMA", "analytics", "PostgreSQL schema of the models (dbt's target schema)", PROFILES),
    Setting("INSIDERS_PG_SSLMODE", "prefer", "PostgreSQL sslmode", PROFILES),
    Setting(
        "INSIDERS_SPARK_MASTER", "local[2]", "Spark master of the spark target: local[N], yarn, spark://…", PROFILES
    ),
    Setting("INSIDERS_SPARK_SCHEMA", "analytics", "Spark database of the models (dbt's target schema)", PROFILES),
    Setting("INSIDERS_SPARK_WAREHOUSE_DIR", "data/spark/warehouse", "where Spark keeps the Parquet files", PROFILES),
    Setting("INSIDERS_SPARK_METASTORE_DIR", "data/spark/metastore", "folder of the embedded Derby metastore", PROFILES),
    Setting("INSIDERS_SPARK_DRIVER_MEMORY", "2g", "memory of the Spark driver (local mode: of all of Spark)", PROFILES),
    Setting("INSIDERS_SPARK_SHUFFLE_PARTITIONS", "2", "spark.sql.shuffle.partitions (about 2-3 per core)", PROFILES),
    Setting("INSIDERS_SPARK_METHOD", "thrift", "spark_thrift target (dbt only): thrift or http", PROFILES),
    Setting("INSIDERS_SPARK_HOST", "127.0.0.1", "spark_thrift target: Thrift server or HTTP host", PROFILES),
    Setting("INSIDERS_SPARK_PORT", "10000", "spark_thrift target: port (10000 Thrift, 443 HTTP)", PROFILES),
    Setting("INSIDERS_SPARK_USER", "insiders", "spark_thrift target: user (Thrift)", PROFILES),
    Setting(
        "INSIDERS_SPARK_AUTH",
        "NONE",
        "spark_thrift target: the Thrift server's hive.server2.authentication, NONE or NOSASL",
        PROFILES,
    ),
    Setting("INSIDERS_SPARK_TOKEN", "", "spark_thrift target: access token (HTTP)", PROFILES, secret=True),
    Setting("INSIDERS_SPARK_ORGANIZATION", "0", "spark_thrift target: organization id in the HTTP path", PROFILES),
    Setting("INSIDERS_SPARK_CLUSTER", "", "spark_thrift target: cluster id in the HTTP path", PROFILES),
    Setting("INSIDERS_SPARK_ENDPOINT", "", "spark_thrift target: SQL endpoint id (odbc method only)", PROFILES),
    Setting("INSIDERS_RAW_SCHEMA", "raw", "schema of the raw tables the loader writes and dbt reads"),
    Setting("INSIDERS_PROJECT_DIR", "", "the dbt project (default: the checkout the package lives in)"),
    Setting("INSIDERS_DBT", "", "a dbt executable to run as a child instead of dbt in this process"),
    Setting(
        "INSIDERS_TESTED_LOADS",
        "",
        "set by insiders run for its own dbt commands: loads its line-level data tests leave out (not set by hand)",
        DBT_TESTS,
    ),
    # -------------------------------------------------------------------------------------------------- loading
    Setting("INSIDERS_EARLIEST_INVOICE_DATE", "2000-01-01", "lines dated before this day are rejected"),
    Setting("INSIDERS_LATEST_INVOICE_DATE", "", "an earlier upper bound than the load time for invoice dates"),
    # ------------------------------------------------------------------------------------------------ the model
    Setting("INSIDERS_ARTIFACT_URI", "", "artifact store: a folder or s3://bucket/prefix (default: artifacts/)"),
    Setting("INSIDERS_S3_ENDPOINT_URL", "", "an S3-compatible endpoint (default: AWS, or AWS_ENDPOINT_URL)"),
    Setting("INSIDERS_PIN_FILE", "", "the pin file (default: pinned_model.yml in the project)"),
    Setting("INSIDERS_MODEL_VERSION", "", "overrides the pinned segmentation model version"),
    Setting("INSIDERS_MODEL_SHA256", "", "overrides the pinned segmentation model's sha256"),
    Setting("INSIDERS_MODEL_MANIFEST_SHA256", "", "overrides the pinned segmentation manifest's sha256"),
    Setting(
        "INSIDERS_SPARK_TRAIN_MAX_CUSTOMERS",
        "100000",
        "on Spark, training reads at most this many customers (a seeded sample above it)",
    ),
    Setting("INSIDERS_VALUE_MODEL_VERSION", "", "overrides the pinned value model version"),
    Setting("INSIDERS_VALUE_MODEL_SHA256", "", "overrides the pinned value model's sha256"),
    Setting("INSIDERS_VALUE_MODEL_MANIFEST_SHA256", "", "overrides the pinned value manifest's sha256"),
    Setting("INSIDERS_VALUE_HORIZON_DAYS", "90", "horizon of the scheduled run's value predictions, in days"),
    # ------------------------------------------------------------------------------------------------ publishing
    Setting("INSIDERS_BI_READER_ROLE", "insiders_bi_reader", "the PostgreSQL role Power BI reads the marts with"),
    Setting("INSIDERS_PUBLISH_LOCK_TIMEOUT_S", "10", "seconds publish waits for each lock before it retries"),
    Setting("INSIDERS_PUBLISH_ATTEMPTS", "5", "how many times publish tries before it gives up"),
    Setting("INSIDERS_CURRENCY", "GBP", "currency of the amounts in the report and the answers (ISO 4217)"),
    # --------------------------------------------------------------------------------------------- the wrapper
    Setting("INSIDERS_ENV_FILE", "/etc/insiders/env", "the KEY=value file the cron wrapper reads", WRAPPER),
    Setting("INSIDERS_HOME", "", "the project checkout (default: the folder above the wrapper)", WRAPPER),
    Setting("INSIDERS_SOURCE", "", "raw files the scheduled run loads: a folder or s3://bucket/prefix", WRAPPER),
    Setting("INSIDERS_LOG_DIR", "", "where the wrapper writes run logs (default: logs/runs in the checkout)", WRAPPER),
    Setting("INSIDERS_KEEP_LOGS", "90", "how many run logs the wrapper keeps", WRAPPER),
)

SETTINGS: dict[str, Setting] = {s.name: s for s in _TABLE}


def setting(name: str) -> Setting:
    """The declared setting ``name``; an undeclared name is a bug, not a user error."""
    try:
        return SETTINGS[name]
    except KeyError:
        raise KeyError(f"{name} is not declared in insiders.settings") from None


def is_set(name: str) -> bool:
    """Whether the variable is set to something other than blanks."""
    return bool(os.environ.get(setting(name).name, "").strip())


def text(name: str) -> str:
    """The variable's value without surrounding blanks, else its default (``""`` for none)."""
    return os.environ.get(setting(name).name, "").strip() or SETTINGS[name].default


def _parsed(name: str, convert: Callable[[str], float], kind: str, minimum: float | None) -> float:
    value = text(name)
    try:
        result = convert(value)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind}, got {value!r}") from None
    if not math.isfinite(result):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and result < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {value!r}")
    return result


def number(name: str, minimum: float | None = None) -> float:
    """The variable as a finite number, at least ``minimum``; a clear configuration error otherwise."""
    return _parsed(name, float, "number", minimum)


def whole(name: str, minimum: int | None = None) -> int:
    """The variable as a whole number, at least ``minimum``; a clear configuration error otherwise."""
    return int(_parsed(name, int, "whole number", minimum))


@contextlib.contextmanager
def overridden(name: str, value: str) -> Iterator[None]:
    """Set the variable for the duration of the block (this process and its children), then restore it."""
    previous = os.environ.get(setting(name).name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def effective() -> Iterator[tuple[Setting, str, bool]]:
    """Each setting with the value in effect (a secret masked) and whether the environment set it."""
    for s in _TABLE:
        raw = os.environ.get(s.name, "").strip()
        shown = ("********" if raw else "") if s.secret else (raw or s.default)
        yield s, shown, bool(raw)
