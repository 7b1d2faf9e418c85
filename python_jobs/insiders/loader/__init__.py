"""``insiders load``: raw invoice files into the warehouse's raw tables, checked, idempotent and atomic.

The load runs in three phases:

1. **Inspect** the file without touching the warehouse: sha256 of its content (decompressed for ``.gz``, so
   the same content loads once whatever its compression), line count for progress, encoding check (mixed
   encodings included), line endings, quoted fields spanning lines, and a complete read of a gzip stream so
   that a truncated download fails here; a plain file must end with a line ending.
2. **Parse** it in chunks: every line is typed into the canonical columns or set aside with its line number
   and the reason it could not be read.
3. **Write** everything in one transaction: raw lines, rejected lines and one load-log row; lines that other
   files delivered before are then taken out again (counted as skipped), and a file whose dates read both day
   first and month first is refused before the commit. PostgreSQL receives the lines through ``COPY``;
   DuckDB scans each chunk natively. A failure anywhere rolls back, so the warehouse is exactly as it was.
   Spark has no transactions: there the load is written aside and committed partition by partition, the
   load-log row last (:mod:`insiders.loader.spark_sink` says what that guarantees).

Phase 1 is :mod:`insiders.loader.inspection`, phase 2 :mod:`insiders.loader.parsing`, phase 3 this module (its
Spark variant :mod:`insiders.loader.spark_sink`); the raw tables' contracts are in :mod:`insiders.tables`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from insiders import layouts, tables
from insiders.errors import InputFileError, WarehouseError
from insiders.loader.inspection import FileFacts, content_sha256, inspect_file
from insiders.loader.parsing import (
    DateFormatCheck,
    InvalidLines,
    csv_batches,
    date_format_candidates,
    date_window,
    excel_batches,
    parse_dates,
    read_header,
    type_batch,
)
from insiders.loader.spark_sink import SparkSink
from insiders.warehouse import Warehouse

__all__ = ["DEFAULT_MAX_REJECTED_SHARE", "FileFacts", "LoadResult", "content_sha256", "inspect_file", "load_file"]

# Lines per load that may be rejected before the whole file is refused (a high share means a wrong file).
DEFAULT_MAX_REJECTED_SHARE = 0.05
# Serialises concurrent loads on PostgreSQL (pg_advisory_xact_lock key).
LOAD_LOCK_KEY = 0x1A5D_E250

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class LoadResult:
    """The outcome of one ``insiders load``."""

    load_id: str | None
    file_name: str
    sha256: str
    layout: str
    lines_read: int
    lines_loaded: int
    lines_rejected: int
    already_loaded: bool = False
    lines_skipped: int = 0  # lines other files had already delivered (not stored again)
    previous_loaded_at: dt.datetime | None = None
    seconds: float = 0.0


def ensure_raw_tables(wh: Warehouse, schema: str) -> None:
    """Create the raw schema and tables when missing.

    The schema is created only when it does not exist, so a job role without CREATE on the database can load
    into a schema prepared for it.
    """
    if wh.kind == "spark":
        from insiders.loader.spark_sink import ensure_spark_raw_tables

        ensure_spark_raw_tables(wh, schema)
        return
    exists = wh.query("select count(*) from information_schema.schemata where schema_name = %s", [schema])[0][0]
    for statement in tables.raw_ddl(schema):
        if exists and statement.startswith("create schema"):
            continue
        wh.execute(statement)
    for table in tables.RAW_TABLES:
        for column in table.added_columns():
            found = wh.query(
                "select count(*) from information_schema.columns where table_schema = %s and table_name = %s"
                " and column_name = %s",
                [schema, table.name, column.name],
            )[0][0]
            if not found:
                default = f" default {column.default}" if column.default is not None else ""
                wh.execute(f"alter table {schema}.{table.name} add column {column.name} {column.sql}{default}")


def ensure_transactions_key(wh: Warehouse, schema: str) -> None:
    """Give ``transactions`` its primary key on PostgreSQL when it lacks it, inside the load's transaction,
    after its lines are written: the first load of a warehouse (and the first load into a table created before
    the key existed) builds the index once from the written lines (13 s at x10 on a busy 2-core machine), which
    is cheaper than keeping it up to date line by line during the ``COPY``; later loads add their lines to it.

    With the key, PostgreSQL refuses a repeated (load_id, line_number), and the dbt test of that key
    (``unique_combination`` on the source) is proven without reading the lines.
    """
    has_key = wh.query(
        "select count(*) from pg_constraint as k"
        " inner join pg_class as c on c.oid = k.conrelid"
        " inner join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relname = 'transactions' and k.contype = 'p'",
        [schema],
    )[0][0]
    if not has_key:
        wh.execute(f"alter table {schema}.transactions add primary key ({', '.join(tables.TRANSACTIONS_KEY)})")


TRANSACTION_ARROW_SCHEMA = tables.TRANSACTIONS.arrow_schema()


def skip_lines_loaded_before(wh: Warehouse, schema: str, load_id: str) -> int:
    """Delete the lines of this load that earlier loads of other files already hold; return how many.

    Lines are matched on their natural key (invoice, stock code, quantity, price, invoice time, customer).
    Copies count: a line present twice in this file and once before keeps one copy, so duplicates inside one
    file stay as the file has them. Runs inside the load's transaction. Only the invoices both this load and
    earlier ones hold are numbered copy by copy, so the memory and time it takes follow the overlap, not the
    size of the file. Earlier lines are read only from this load's first to its last invoice time: the invoice
    time is part of the key, so no line outside that window can match, and DuckDB skips the stored row groups
    outside it by their min/max (a new month on top of x100: 0.04 s instead of 9-14 s reading every earlier line).
    """
    earlier_lines = f"select 1 from {schema}.transactions where load_id <> %s limit 1"
    if not wh.query(earlier_lines, [load_id]):
        return 0  # the first load: nothing to compare with (and no window over every line of a large file)
    fresh = f"select count(*), min(invoice_date), max(invoice_date) from {schema}.transactions where load_id = %s"
    before, first, last = wh.query(fresh, [load_id])[0]
    if not before:
        return 0
    window = [first, last]
    wh.execute(
        f"""
        delete from {schema}.transactions
        where load_id = %s and line_number in (
            select fresh.line_number
            from (
                select
                    line_number, invoice_no, stock_code, quantity, unit_price, invoice_date,
                    coalesce(customer_id, -1) as customer_key,
                    row_number() over (partition by {tables.LINE_KEY} order by line_number) as copy_number
                from {schema}.transactions
                where load_id = %s
                    and invoice_no in (
                        select invoice_no
                        from {schema}.transactions
                        where load_id <> %s and invoice_date between %s and %s
                    )
            ) as fresh
            inner join (
                select
                    invoice_no, stock_code, quantity, unit_price, invoice_date,
                    coalesce(customer_id, -1) as customer_key,
                    count(*) as copies
                from {schema}.transactions
                where load_id <> %s
                    and invoice_date between %s and %s
                    and invoice_no in (select invoice_no from {schema}.transactions where load_id = %s)
                group by {tables.LINE_KEY}
            ) as earlier
                on {tables.line_key_matches("fresh", "earlier")}
            where fresh.copy_number <= earlier.copies
        )""",
        [load_id, load_id, load_id, *window, load_id, *window, load_id],
    )
    return before - wh.query(fresh, [load_id])[0][0]


class SqlSink:
    """Phase 3 on DuckDB and PostgreSQL: everything in one transaction, under the load lock (PostgreSQL)."""

    def __init__(self, wh: Warehouse, schema: str, load_id: str) -> None:
        self.wh, self.schema, self.load_id = wh, schema, load_id

    @contextlib.contextmanager
    def open(self) -> Iterator[SqlSink]:
        """The load's transaction: committed when the block ends, rolled back when it raises."""
        with self.wh.transaction():
            if not self.wh.advisory_lock(LOAD_LOCK_KEY):
                raise WarehouseError("another insiders load is writing to this warehouse; try again when it ends")
            yield self
            self.wh.analyze(f"{self.schema}.rejected_lines", f"{self.schema}.load_log")

    def append_lines(self, batches: Iterator[pa.Table]) -> None:
        """Append the typed lines (prices travel as text and are cast to numeric exactly)."""
        self.wh.append_batches(
            f"{self.schema}.transactions", TRANSACTION_ARROW_SCHEMA, batches, casts={"unit_price": "decimal(18, 4)"}
        )
        if self.wh.kind == "postgres":
            ensure_transactions_key(self.wh, self.schema)

    def skip_lines_loaded_before(self) -> int:
        """Take out the lines other loads delivered; see :func:`skip_lines_loaded_before`."""
        # Planner statistics that know this load's lines (PostgreSQL): the query below, and dbt after the commit,
        # are planned for the table as it now is (stale ones plan the earlier lines as a handful, and nest loops).
        self.wh.analyze(f"{self.schema}.transactions")
        return skip_lines_loaded_before(self.wh, self.schema, self.load_id)

    def append_rejected(self, rejected: list[pa.Table]) -> None:
        for table in rejected:
            self.wh.append_arrow(f"{self.schema}.rejected_lines", table)

    def append_log(self, row: pa.Table) -> None:
        self.wh.append_arrow(f"{self.schema}.load_log", row)


def _previous_load(wh: Warehouse, schema: str, sha256: str) -> tuple[str, dt.datetime, str] | None:
    rows = wh.query(f"select load_id, loaded_at, file_name from {schema}.load_log where file_sha256 = %s", [sha256])
    return rows[0] if rows else None


def _driver_errors() -> tuple[type[BaseException], ...]:
    """The database drivers' error classes (a lost connection, a failed statement)."""
    import duckdb

    errors: list[type[BaseException]] = [duckdb.Error]
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - psycopg2 is a dependency; DuckDB-only installs still work
        pass
    else:
        errors.append(psycopg2.Error)
    try:  # the [spark] group is optional
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException
    except ImportError:
        pass
    else:
        errors.extend([PySparkException, Py4JError])
    return tuple(errors)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_file(
    wh: Warehouse,
    path: str | Path,
    schema: str = "raw",
    encoding: str = "auto",
    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE,
    progress: ProgressFn | None = None,
    date_format: str | None = None,
) -> LoadResult:
    """Load one raw file into ``schema``; see the module docstring for the guarantees.

    ``date_format`` (a strptime pattern such as ``%d/%m/%Y %H:%M``) overrides the choice among the layout's
    formats; it is needed when the dates of a file read both day first and month first.

    Every failure is an :class:`InsidersError` naming the file: an unreadable file, a lost connection (whose
    rollback fails too) and a failed statement included.
    """
    if not 0 <= max_rejected_share <= 1:
        raise InputFileError(f"--max-rejected-share must be between 0 and 1, got {max_rejected_share}")
    try:
        return _load_file(wh, Path(path), schema, encoding, max_rejected_share, progress, date_format)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    except _driver_errors() as exc:
        cause = exc.__context__ if isinstance(exc.__context__, _driver_errors()) else None
        detail = _first_line(exc) if cause is None else f"{_first_line(cause)}; then {_first_line(exc)}"
        raise WarehouseError(
            f"{Path(path).name}: the warehouse failed during the load ({detail}); nothing of the file was "
            "committed, load it again when the warehouse is back"
        ) from exc


def _load_file(
    wh: Warehouse,
    path: Path,
    schema: str,
    encoding: str,
    max_rejected_share: float,
    progress: ProgressFn | None,
    date_format: str | None,
) -> LoadResult:
    started = dt.datetime.now()
    # A file loaded before is recognised by its content's sha256 alone, before any slower check of the file.
    try:
        with wh.transaction():
            ensure_raw_tables(wh, schema)
    except Exception as exc:
        raise WarehouseError(f"cannot create the raw tables in schema '{schema}': {exc}") from exc
    sha256 = content_sha256(path)
    previous = _previous_load(wh, schema, sha256)
    if previous is not None:
        return LoadResult(
            load_id=previous[0],
            file_name=path.name,
            sha256=sha256,
            layout="",
            lines_read=0,
            lines_loaded=0,
            lines_rejected=0,
            already_loaded=True,
            previous_loaded_at=previous[1],
            seconds=(dt.datetime.now() - started).total_seconds(),
        )
    facts = inspect_file(path, encoding)
    header = read_header(facts)
    matched = layouts.match_header(header)
    if matched is None:
        shown = ",".join(header)[:200]
        raise InputFileError(
            f"{facts.path}: unrecognised header '{shown}'. Expected one of: {layouts.describe_expected()}"
        )
    layout, width = matched

    invalid = InvalidLines([], [])
    batches = excel_batches(facts, width) if facts.kind == "xlsx" else csv_batches(facts, width, invalid)
    load_id = str(uuid.uuid4())
    loaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    window = date_window(loaded_at)
    read = loaded = 0
    total = max(facts.lines - 1, 0)
    check: DateFormatCheck | None = None
    # Rejected lines wait in compact Arrow tables until the lines are written (on DuckDB the lines stream in one
    # statement). They cannot outgrow the allowed share of the file: past it, the file is refused at once.
    rejected_count = 0
    first_rejected: tuple[int, str] | None = None
    pending_rejects: list[pa.Table] = []

    def too_many_rejected(of_lines: str) -> InputFileError:
        line, reason = first_rejected or (0, "none recorded")
        return InputFileError(
            f"{facts.path}: {rejected_count:,} of {of_lines} lines cannot be read (more than "
            f"{max_rejected_share:.0%}); is this the right file? First problem: line {line}: "
            f"{reason}. Nothing was loaded; raise --max-rejected-share to load it anyway."
        )

    def reject(rows: list[tuple[int, str, str]]) -> None:
        nonlocal rejected_count, first_rejected
        if not rows:
            return
        rejected_count += len(rows)
        first = min((r[0], r[1]) for r in rows)
        first_rejected = first if first_rejected is None else min(first_rejected, first)
        if total and rejected_count > max_rejected_share * total:
            # The file has at most `total` data lines, so the verdict at the end could only be the same.
            raise too_many_rejected(f"{total:,}")
        pending_rejects.append(
            pa.table(
                {
                    "load_id": pa.repeat(load_id, len(rows)),
                    "line_number": pa.array([r[0] for r in rows], pa.int64()),
                    "reason": pa.array([r[1] for r in rows], pa.string()),
                    "raw_line": pa.array([r[2] for r in rows], pa.string()),
                    "loaded_at": pa.repeat(pa.scalar(loaded_at, pa.timestamp("s")), len(rows)),
                }
            )
        )

    def reject_invalid() -> int:
        """Write the lines the reader could not split so far (wrong number of fields, or the last line cut)."""
        rows = []
        for record, found, text in invalid.rows:
            number = int(facts.physical_lines(np.asarray([record]))[0])
            if record == facts.records and not facts.ends_with_newline:
                raise InputFileError(
                    f"{facts.path}: the file ends in the middle of line {number} (truncated?); nothing was loaded"
                )
            rows.append((number, f"expected {width} fields, found {found}", text))
        invalid.rows.clear()
        reject(rows)
        return len(rows)

    sink = SparkSink(wh, schema, load_id) if wh.kind == "spark" else SqlSink(wh, schema, load_id)
    with sink.open():
        # Checked again under the lock: a concurrent load of the same file may have committed meanwhile.
        if _previous_load(wh, schema, facts.sha256) is not None:
            raise WarehouseError(f"{facts.path.name} was loaded by a concurrent run; nothing was written")

        def typed_lines() -> Iterator[pa.Table]:
            """The file's lines, typed batch by batch; rejected lines are set aside on the way."""
            nonlocal read, loaded, date_format, layout, check
            for batch in batches:
                if date_format is None:
                    candidates = date_format_candidates(layout, batch.columns[4][:1000], window)
                    if not candidates:
                        sample = next((v for v in batch.columns[4][:1000].to_pylist() if v.strip()), "")
                        raise InputFileError(
                            f"{facts.path}: InvoiceDate values like '{sample}' match none of the formats of the "
                            f"{layout.title} layout ({', '.join(layout.date_formats)}); name the format with "
                            "--date-format"
                        )
                    date_format = candidates[0]
                    check = DateFormatCheck(date_format, candidates[1:], window)
                    if date_format in layouts.ONLINE_RETAIL_REDATED.date_formats or width > len(layout.header):
                        layout = layouts.redated(layout)
                elif check is None:
                    check = DateFormatCheck(date_format, [], window)
                    sample = pc.utf8_trim_whitespace(batch.columns[4][:1000])
                    sample = sample.filter(pc.not_equal(sample, ""))
                    if len(sample) and parse_dates(sample, date_format).null_count == len(sample):
                        raise InputFileError(
                            f"{facts.path}: InvoiceDate values like '{sample[0]}' do not match --date-format "
                            f"'{date_format}'"
                        )
                    if date_format in layouts.ONLINE_RETAIL_REDATED.date_formats or width > len(layout.header):
                        layout = layouts.redated(layout)
                check.add(batch.columns[4])
                good, bad = type_batch(batch, date_format, window)
                read += len(batch.lines)
                reject(bad)
                read += reject_invalid()
                if good.num_rows:
                    good = good.add_column(0, "load_id", pa.repeat(load_id, good.num_rows))
                    good = good.append_column(
                        "loaded_at", pa.repeat(pa.scalar(loaded_at, pa.timestamp("s")), good.num_rows)
                    )
                    loaded += good.num_rows
                    yield good.select(list(tables.TRANSACTIONS.column_names)).cast(TRANSACTION_ARROW_SCHEMA)
                if progress is not None:
                    progress(read, max(total, read))

        sink.append_lines(typed_lines())
        read += reject_invalid()  # those reported after the last batch
        if read == 0:
            raise InputFileError(f"{facts.path}: the file has a header but no data lines")
        if check is not None:
            check.verdict(facts.path)
        # Overlapping deliveries (a month re-sent inside a larger file, a CSV and an .xlsx of the same data):
        # lines another file delivered are not stored twice.
        skipped = sink.skip_lines_loaded_before() if loaded else 0
        loaded -= skipped
        if facts.kind != "xlsx" and read + 1 != facts.records:
            raise InputFileError(
                f"{facts.path}: read {read + 1:,} lines but the file has {facts.lines:,} (a quoted field "
                "spanning lines?); nothing was loaded"
            )
        if rejected_count > max_rejected_share * read:
            raise too_many_rejected(f"{read:,}")
        sink.append_rejected(pending_rejects)
        layout_name = layout.name + ("_xlsx" if facts.kind == "xlsx" else "")
        sink.append_log(
            pa.Table.from_pylist(
                [
                    {
                        "load_id": load_id,
                        "file_name": facts.path.name,
                        "file_sha256": facts.sha256,
                        "layout": layout_name,
                        "lines_read": read,
                        "lines_loaded": loaded,
                        "lines_rejected": rejected_count,
                        "loaded_at": loaded_at,
                        "lines_skipped": skipped,
                    }
                ]
            ),
        )
    return LoadResult(
        load_id=load_id,
        file_name=facts.path.name,
        sha256=facts.sha256,
        layout=layout_name,
        lines_read=read,
        lines_loaded=loaded,
        lines_rejected=rejected_count,
        lines_skipped=skipped,
        seconds=(dt.datetime.now() - started).total_seconds(),
    )
