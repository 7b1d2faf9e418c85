"""How the jobs write on Spark, which has no multi-statement transactions.

DuckDB and PostgreSQL give the jobs transactions: a load, a scoring run or a publication commits as a whole or
not at all. Spark's Parquet tables have no transactions, so every write is done aside and then committed by one
catalog operation, which the metastore applies at once:

- **a partition added in one statement** (the raw tables and the segment history): the rows are written as
  Parquet files into the partition's folder, which readers do not see (Spark reads only the partitions the
  metastore lists), then ``ALTER TABLE … ADD PARTITION`` makes them visible together;
- **a versioned table behind a view** (``customer_segments``, ``customer_value``, the published marts): the new
  rows are written into a new table ``<name>__v<tag>`` in the data schema, then ``CREATE OR REPLACE VIEW <name>``
  points readers at it in one statement, and the previous version is dropped.

A kill before the commit leaves the previous tables as they were, plus folders and tables nobody reads, which
the next write of the same kind removes (:func:`drop_uncommitted_partitions`, :func:`drop_old_versions`).
Where one job commits several tables (a load: lines, rejected lines, then its log row), the commits follow each
other within milliseconds, the log row last; see :mod:`insiders.loader.spark_sink` for what a load guarantees.

Two jobs never write at once: locks are files beside the metastore (local mode) or the warehouse folder,
held with ``flock`` (:func:`file_lock`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from insiders.errors import WarehouseError
from insiders.warehouse import Target, Warehouse, validate_identifier

VERSION_INFIX = "__v"
#: the data schema beside a schema of views: ``<schema>_versions`` holds the tables its views read
VERSIONS_SUFFIX = "versions"


def lock_dir(target: Target) -> Path:
    """Where the lock files of a Spark target are: beside the Derby metastore, else in the warehouse folder."""
    folder = target.spark_metastore_dir()
    if folder is None:
        warehouse = target.spark_settings().get("spark.sql.warehouse.dir", "")
        if not warehouse or "://" in warehouse:
            raise WarehouseError(
                f"{target.describe()}: the lock files need a local folder (a Derby metastore or a local warehouse)"
            )
        folder = Path(warehouse)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def file_lock(path: Path, refusal: str) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` for the block, or raise :class:`WarehouseError` with ``refusal``.

    Yields the descriptor (children inherit it, and so hold the lock until they exit).
    """
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise WarehouseError(f"{refusal} (lock file {path})") from exc
        try:
            yield handle.fileno()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def table_location(wh: Warehouse, table: str) -> str:
    """The folder (URI) of a table's files, as the metastore records it."""
    for row in wh.query(f"describe table extended {wh.qualified(table)}"):
        if str(row[0]).strip() == "Location":
            return str(row[1]).strip()
    raise WarehouseError(f"the metastore records no location for {table}")


def _filesystem(wh: Warehouse, uri: str) -> tuple[Any, Any]:
    """Hadoop's FileSystem for a URI and the Path of it: the same calls reach a local folder, HDFS or S3."""
    jvm = wh.conn.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(wh.conn.sparkContext._jsc.hadoopConfiguration()), path


def delete_folder(wh: Warehouse, uri: str) -> None:
    """Delete a folder and everything in it (nothing when it does not exist)."""
    fs, path = _filesystem(wh, uri)
    if fs.exists(path):
        fs.delete(path, True)


def list_folder(wh: Warehouse, uri: str) -> list[str]:
    """The names in a folder ([] when it does not exist)."""
    fs, path = _filesystem(wh, uri)
    if not fs.exists(path):
        return []
    return [str(status.getPath().getName()) for status in fs.listStatus(path)]


def partition_value(value: str) -> str:
    """A partition value as a SQL literal: ids and tags only (letters, digits, ``-`` and ``_``)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
        raise WarehouseError(f"{value!r} is not a partition value the jobs write")
    return f"'{value}'"


def write_partition(wh: Warehouse, frame: Any, table: str, column: str, value: str) -> str:
    """Write ``frame`` (the table's columns but ``column``) as the Parquet files of partition ``column=value``.

    Readers do not see them until :func:`add_partition`. Returns the folder written.
    """
    folder = f"{table_location(wh, table).rstrip('/')}/{column}={value}"
    partition_value(value)
    schema, name = table.split(".")
    columns = [c for c in wh.columns(schema, name) if c != column]
    frame.select(*columns).write.mode("overwrite").parquet(folder)
    return folder


def add_partition(wh: Warehouse, table: str, column: str, value: str) -> None:
    """Commit a written partition: one metastore operation, after which readers see all of its rows."""
    validate_identifier(column, "partition column")
    wh.execute(f"alter table {wh.qualified(table)} add if not exists partition ({column} = {partition_value(value)})")


def committed_partitions(wh: Warehouse, table: str, column: str) -> set[str]:
    """The values of ``column`` whose partitions the metastore lists."""
    values = set()
    for (spec,) in wh.query(f"show partitions {wh.qualified(table)}"):
        for part in str(spec).split("/"):
            key, _, val = part.partition("=")
            if key == column:
                values.add(val)
    return values


def drop_uncommitted_partitions(wh: Warehouse, table: str, column: str, keep: set[str]) -> list[str]:
    """Drop the committed partitions whose value is not in ``keep``, and the folders of partitions never committed.

    Returns the values removed. Used before a load: what a killed load left behind goes, the loads in the log stay.
    """
    removed = []
    for value in sorted(committed_partitions(wh, table, column) - keep):
        wh.execute(f"alter table {wh.qualified(table)} drop if exists partition ({column} = {partition_value(value)})")
        removed.append(value)
    location = table_location(wh, table).rstrip("/")
    committed = committed_partitions(wh, table, column)
    for name in list_folder(wh, location):
        key, _, value = name.partition("=")
        if key == column and value not in committed:
            delete_folder(wh, f"{location}/{name}")
            removed.append(value)
    return removed


# ------------------------------------------------------------------------------------------------------------------
# Versioned tables behind a view
# ------------------------------------------------------------------------------------------------------------------
def version_tag(now: dt.datetime | None = None) -> str:
    """A tag that sorts in time order: ``20261203t065311123456``."""
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dt%H%M%S%f")


def versions_schema(schema: str) -> str:
    """Where the versioned tables behind a schema's views live: ``<schema>_versions``."""
    return f"{schema}_{VERSIONS_SUFFIX}"


def write_version(wh: Warehouse, frame: Any, schema: str, name: str) -> str:
    """Write a Spark DataFrame as a new version of ``schema.name``: the Parquet table
    ``<schema>_versions.<name>__v<tag>``, which no reader sees until :func:`commit_version`. Returns its name."""
    data = versions_schema(schema)
    wh.execute(f"create database if not exists {wh.ident(data)}")
    table = f"{name}{VERSION_INFIX}{version_tag()}"
    frame.write.format("parquet").saveAsTable(wh.ident(data, table))
    return table


def commit_version(wh: Warehouse, schema: str, name: str, table: str) -> None:
    """Point the view ``schema.name`` at the version ``table`` (one statement) and drop the older versions."""
    data = versions_schema(schema)
    point_view(wh, schema, name, data, table)
    drop_old_versions(wh, data, name, keep=table)


def versions(wh: Warehouse, data_schema: str, name: str) -> list[str]:
    """The tables ``<name>__v<tag>`` of the data schema, oldest first."""
    if not wh.conn.catalog.databaseExists(data_schema):
        return []
    prefix = f"{name}{VERSION_INFIX}"
    found = [t.name for t in wh.conn.catalog.listTables(data_schema) if t.name.startswith(prefix)]
    return sorted(found)


def point_view(
    wh: Warehouse, schema: str, name: str, data_schema: str, version: str, comment: str | None = None
) -> None:
    """Commit a version: ``schema.name`` becomes a view of ``data_schema.version``, in one statement.

    A table of that name (from before the view existed) is dropped first: its readers then fail for the moment
    between the two statements instead of reading a mix.
    """
    view = wh.ident(schema, name)
    found = (
        [t for t in wh.conn.catalog.listTables(schema) if t.name == name]
        if wh.conn.catalog.databaseExists(schema)
        else []
    )
    if found and found[0].tableType != "VIEW":
        wh.execute(f"drop table {view}")
    text = f" comment {sql_text(comment)}" if comment else ""
    wh.execute(f"create or replace view {view}{text} as select * from {wh.ident(data_schema, version)}")


def drop_old_versions(wh: Warehouse, data_schema: str, name: str, keep: str) -> None:
    """Drop every version of ``name`` but ``keep`` (the one the view now reads)."""
    for version in versions(wh, data_schema, name):
        if version != keep:
            wh.execute(f"drop table if exists {wh.ident(data_schema, version)}")


def sql_text(text: str) -> str:
    """A Spark SQL string literal (backslashes and quotes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
