"""The contracts of the tables Python writes: names, columns, types, DDL and Arrow schemas, written once.

- the raw tables ``insiders load`` writes and dbt reads as the ``online_retail`` source: ``load_log``,
  ``transactions``, ``rejected_lines``;
- the tables the scoring and value jobs write and dbt reads as the ``segmentation`` source:
  ``customer_segments``, ``customer_segment_history``, ``customer_value``;
- the run-state table of ``insiders run``;
- the name of the one dbt model Python reads to train and score, ``customer_features``, and the coarse type
  families that compare a warehouse column with a model's manifest.

The same DDL runs on DuckDB and PostgreSQL. Columns added after a table's first release are marked
``added_later``: :meth:`Table.ddl` creates them with new tables, and :meth:`Table.added_columns` lists what an
older table gains. The dbt sources (``models/staging/*/_*__sources.yml``) describe the same columns for dbt;
``tests/python/test_tables.py`` checks the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pyarrow is imported when a schema is asked for: the nothing-new path never needs it
    import pyarrow as pa


@dataclass(frozen=True)
class Column:
    """One column: ``sql`` is its type in the DDL, ``arrow`` the Arrow type the writers hand to the warehouse."""

    name: str
    sql: str
    arrow: str
    nullable: bool = False
    default: str | None = None
    #: added to the table after its first release: older tables gain it with ALTER TABLE
    added_later: bool = False

    def definition(self) -> str:
        default = f" default {self.default}" if self.default is not None else ""
        return f"{self.name} {self.sql}{'' if self.nullable else ' not null'}{default}"

    @property
    def spark_sql(self) -> str:
        """The column's type in Spark SQL (``string`` for text, ``double`` for double precision, ``int``, ...)."""
        return spark_type(self.sql)


@dataclass(frozen=True)
class Table:
    """A table's contract; ``constraints`` are table constraints such as ``primary key (load_id)``."""

    name: str
    columns: tuple[Column, ...]
    constraints: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def ddl(self, schema: str, name: str | None = None) -> str:
        """``create table if not exists`` of this table (as ``name`` when given: a history or a staging copy)."""
        parts = [c.definition() for c in self.columns] + list(self.constraints)
        body = ",\n    ".join(parts)
        return f"create table if not exists {schema}.{name or self.name} (\n    {body}\n)"

    def spark_ddl(self, schema: str, name: str | None = None, partitioned_by: tuple[str, ...] = ()) -> str:
        """``create table if not exists`` of this table as a Parquet table on Spark.

        Spark's Parquet tables check neither keys nor NOT NULL: the writers guarantee them (every row is built
        from a typed frame) and the dbt sources test them. Partition columns go last, as Spark stores them.
        """
        columns = [c for c in self.columns if c.name not in partitioned_by]
        columns += [c for name in partitioned_by for c in self.columns if c.name == name]
        body = ",\n    ".join(f"{c.name} {c.spark_sql}" for c in columns)
        partitions = f" partitioned by ({', '.join(partitioned_by)})" if partitioned_by else ""
        return f"create table if not exists {schema}.{name or self.name} (\n    {body}\n) using parquet{partitions}"

    def added_columns(self) -> tuple[Column, ...]:
        """Columns an older copy of the table may lack (create them nullable, with their default)."""
        return tuple(c for c in self.columns if c.added_later)

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema the writers cast their frames to, in column order."""
        import pyarrow as pa

        types = {
            "string": pa.string(),
            "int64": pa.int64(),
            "int32": pa.int32(),
            "float64": pa.float64(),
            "bool": pa.bool_(),
            "date": pa.date32(),
            "timestamp": pa.timestamp("s"),
        }
        return pa.schema([(c.name, types[c.arrow]) for c in self.columns])


# ---------------------------------------------------------------------------------------------------- raw tables

LOAD_LOG = Table(
    "load_log",
    (
        Column("load_id", "varchar(36)", "string"),
        Column("file_name", "varchar", "string"),
        Column("file_sha256", "varchar(64)", "string"),
        Column("layout", "varchar", "string"),
        Column("lines_read", "bigint", "int64"),
        Column("lines_loaded", "bigint", "int64"),
        Column("lines_rejected", "bigint", "int64"),
        Column("loaded_at", "timestamp", "timestamp"),
        Column("lines_skipped", "bigint", "int64", default="0", added_later=True),
    ),
    constraints=("primary key (load_id)", "unique (file_sha256)"),
)

#: column order matters: the loader writes its Arrow batches in exactly this order. Prices travel as text and
#: the warehouse casts them to numeric(18, 4) exactly (no binary floating point on the way).
TRANSACTIONS = Table(
    "transactions",
    (
        Column("load_id", "varchar(36)", "string"),
        Column("line_number", "bigint", "int64"),
        Column("invoice_no", "varchar", "string"),
        Column("stock_code", "varchar", "string"),
        Column("description", "varchar", "string", nullable=True),
        Column("quantity", "integer", "int32"),
        Column("invoice_date", "timestamp", "timestamp"),
        Column("unit_price", "numeric(18, 4)", "string"),
        Column("customer_id", "bigint", "int64", nullable=True),
        Column("country", "varchar", "string"),
        Column("loaded_at", "timestamp", "timestamp"),
    ),
)

#: what identifies a stored line: its load and its line number in the file (the loader numbers a file's lines
#: once). PostgreSQL holds it as the table's primary key (``ensure_raw_tables``), so a repeated key is refused
#: when it is written and the dbt test of this key reads nothing; DuckDB and Spark leave it to that test (a key
#: index over every line would have to fit in DuckDB's memory at x100; Parquet has no keys).
TRANSACTIONS_KEY = ("load_id", "line_number")

REJECTED_LINES = Table(
    "rejected_lines",
    (
        Column("load_id", "varchar(36)", "string"),
        Column("line_number", "bigint", "int64"),
        Column("reason", "varchar", "string"),
        Column("raw_line", "varchar", "string", nullable=True),
        Column("loaded_at", "timestamp", "timestamp"),
    ),
)

RAW_TABLES = (LOAD_LOG, TRANSACTIONS, REJECTED_LINES)

#: the natural key of an invoice line (the same sale delivered in two files has the same values), in SQL
LINE_KEY = "invoice_no, stock_code, quantity, unit_price, invoice_date, coalesce(customer_id, -1)"
#: the same key as columns, ``customer_key`` being ``coalesce(customer_id, -1)``
LINE_KEY_COLUMNS = ("invoice_no", "stock_code", "quantity", "unit_price", "invoice_date", "customer_key")


def line_key_matches(left: str, right: str) -> str:
    """SQL: the lines ``left`` and ``right`` (with a ``customer_key`` column) have the same natural key."""
    return "\n    and ".join(f"{left}.{c} = {right}.{c}" for c in LINE_KEY_COLUMNS)


def raw_ddl(schema: str) -> list[str]:
    """Statements that create the raw schema and its tables if they do not exist."""
    return [f"create schema if not exists {schema}", *(t.ddl(schema) for t in RAW_TABLES)]


# ----------------------------------------------------------------------------------------- what the jobs write

#: the dbt model that training and scoring read
FEATURES_TABLE = "customer_features"

_SEGMENT_COLUMNS = (
    Column("customer_id", "bigint", "int64"),
    Column("cluster_id", "integer", "int32"),
    Column("segment_rank", "integer", "int32"),
    Column("segment_name", "varchar", "string"),
    Column("is_insider", "boolean", "bool"),
    Column("model_version", "varchar", "string"),
    Column("run_id", "varchar(36)", "string"),
    Column("scored_at", "timestamp", "timestamp"),
)

#: the segments of the latest scoring run
CUSTOMER_SEGMENTS = Table("customer_segments", _SEGMENT_COLUMNS)

#: every scoring run's segments; ``run_kind`` is ``live`` or ``backfill`` (NULL in rows written before it existed)
CUSTOMER_SEGMENT_HISTORY = Table(
    "customer_segment_history",
    (*_SEGMENT_COLUMNS, Column("run_kind", "varchar", "string", nullable=True, added_later=True)),
)
RUN_KINDS = ("live", "backfill")

#: the value job's predictions for the latest run
CUSTOMER_VALUE = Table(
    "customer_value",
    (
        Column("customer_id", "bigint", "int64"),
        Column("as_of_date", "date", "date"),
        Column("horizon_days", "integer", "int32"),
        Column("expected_purchases", "double precision", "float64"),
        Column("expected_spend", "double precision", "float64"),
        Column("expected_revenue", "double precision", "float64"),
        Column("p_alive", "double precision", "float64"),
        Column("model_version", "varchar", "string"),
        Column("run_id", "varchar(36)", "string"),
        Column("scored_at", "timestamp", "timestamp"),
    ),
)

#: one row per published run of ``insiders run``: what it was made from, for the nothing-new check
RUN_STATE = Table(
    "insiders_run_state",
    (
        Column("run_id", "varchar(36)", "string"),
        Column("published_at", "timestamp", "timestamp"),
        Column("inputs", "varchar", "string"),
    ),
)


def spark_type(sql_type: str) -> str:
    """A type of the DDL above in Spark SQL: Spark has no unbounded ``varchar`` and no ``double precision``."""
    t = sql_type.lower().strip()
    if t.startswith(("varchar", "text", "char")):
        return "string"
    if t == "double precision":
        return "double"
    if t == "integer":
        return "int"
    if t.startswith("numeric"):
        return "decimal" + t[len("numeric") :].replace(" ", "")
    return t


def type_family(data_type: str) -> str:
    """The coarse type of a warehouse column (``integer``, ``number``, ``text``, ...), so that a table can be
    compared with a model's manifest across adapters (``BIGINT`` and ``bigint``, ``DOUBLE`` and ``numeric``)."""
    t = data_type.lower()
    if any(k in t for k in ("int", "serial")):
        return "integer"
    if any(k in t for k in ("numeric", "decimal", "double", "real", "float")):
        return "number"
    if any(k in t for k in ("char", "text", "string")):
        return "text"
    if "timestamp" in t:
        return "timestamp"
    if "date" in t:
        return "date"
    if "bool" in t:
        return "boolean"
    return t
