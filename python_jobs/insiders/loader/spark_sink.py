"""Phase 3 of a load on Spark: the lines written aside, then committed partition by partition, the log row last.

Spark has no transaction to put a load in. The raw tables are Parquet tables partitioned by ``load_id``, and a
load is written so that readers see all of it or nothing of it:

1. under the load lock (a file beside the metastore), what an earlier killed load left behind is removed: the
   partitions of loads that have no ``load_log`` row, and folders never committed;
2. the typed lines are written batch by batch as Parquet files into a staging folder of the warehouse, which no
   table reads (a refused or failed file stops here: the staging folder is deleted, nothing else changed);
3. lines that earlier loads already delivered are taken out (the same rule as on the other warehouses), and
   the kept lines, the rejected lines and the load-log row are written as the files of this load's partition of
   each table, still invisible to readers;
4. the commit: ``ALTER TABLE … ADD PARTITION`` of ``transactions``, then ``rejected_lines``, then ``load_log``
   (three metastore operations that follow each other within milliseconds).

What a load guarantees on Spark, then: a failure or a kill at any moment before the commit leaves the raw
tables exactly as they were (the tests kill a load with SIGKILL while it writes its lines); a file loaded
before is recognised by its sha256 in ``load_log``, so loading it again adds nothing; and a kill inside the
milliseconds of the commit can leave a load's lines without its ``load_log`` row, which the next load removes
before it writes anything (step 1), so the file is loaded again in full. The load log is the commit record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from insiders import tables
from insiders.spark_tables import (
    add_partition,
    committed_partitions,
    delete_folder,
    drop_uncommitted_partitions,
    file_lock,
    list_folder,
    lock_dir,
    partition_value,
    write_partition,
)
from insiders.warehouse import Warehouse

PARTITION = "load_id"
STAGING_FOLDER = "_insiders_staging"
_STAGED_VIEW = "_insiders_staged_lines"


def ensure_spark_raw_tables(wh: Warehouse, schema: str) -> None:
    """Create the raw database and its three tables (Parquet, partitioned by load) when missing."""
    wh.execute(f"create database if not exists {wh.ident(schema, what='raw schema name')}")
    for table in tables.RAW_TABLES:
        wh.execute(table.spark_ddl(schema, partitioned_by=(PARTITION,)))


class SparkSink:
    """Writes one load aside and commits it; see the module docstring."""

    def __init__(self, wh: Warehouse, schema: str, load_id: str) -> None:
        self.wh, self.schema, self.load_id = wh, schema, load_id
        warehouse = str(wh.conn.conf.get("spark.sql.warehouse.dir")).rstrip("/")
        self.staging_root = f"{warehouse}/{STAGING_FOLDER}"
        self.staging = f"{self.staging_root}/{load_id}"
        self.written: list[str] = []  # tables whose partition of this load is written, in commit order
        self.folders: list[str] = []
        self.committed: list[str] = []  # tables whose partition of this load was added
        self.lines_staged = False

    def _table(self, name: str) -> str:
        return f"{self.schema}.{name}"

    @contextlib.contextmanager
    def open(self) -> Iterator[SparkSink]:
        """Hold the load lock, clean up after a killed load, and commit when the block ends without an error."""
        with file_lock(
            lock_dir(self.wh.target) / "insiders.load.lock",
            "another insiders load is writing to this warehouse; try again when it ends",
        ):
            self.recover()
            try:
                yield self
                if self.lines_staged and self._table("transactions") not in self.written:
                    self._write_lines(self._staged())
                self.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    self.discard()
                raise
            finally:
                with contextlib.suppress(Exception):
                    delete_folder(self.wh, self.staging)

    def recover(self) -> None:
        """Remove what a killed load left: partitions of loads without a log row, uncommitted folders, staging."""
        log = self._table("load_log")
        logged = {str(r[0]) for r in self.wh.query(f"select distinct load_id from {self.wh.qualified(log)}")}
        for name in ("transactions", "rejected_lines"):
            drop_uncommitted_partitions(self.wh, self._table(name), PARTITION, logged)
        drop_uncommitted_partitions(self.wh, log, PARTITION, committed_partitions(self.wh, log, PARTITION))
        for leftover in list_folder(self.wh, self.staging_root):
            delete_folder(self.wh, f"{self.staging_root}/{leftover}")

    def append_lines(self, batches: Iterator[pa.Table]) -> None:
        """Write the typed lines into the staging folder, batch by batch (flat memory), cast to the table's types."""
        target = self._table("transactions")
        for batch in batches:
            if batch.num_rows:
                self.wh.spark_frame(batch, target).write.mode("append").parquet(f"{self.staging}/lines")
                self.lines_staged = True

    def _staged(self) -> Any:
        return self.wh.conn.read.parquet(f"{self.staging}/lines")

    def _write_lines(self, frame: Any) -> None:
        table = self._table("transactions")
        self.folders.append(write_partition(self.wh, frame, table, PARTITION, self.load_id))
        self.written.append(table)

    def skip_lines_loaded_before(self) -> int:
        """Keep the lines of this load that earlier loads did not deliver (copies counted, as on the other
        warehouses), write them as this load's partition, and return how many were left out."""
        staged = self._staged()
        staged.createOrReplaceTempView(_STAGED_VIEW)
        held = self.wh.qualified(self._table("transactions"))
        # Earlier lines only from this load's first to its last invoice time (part of the key), as literals, so
        # that Parquet's row-group statistics skip the rest (see loader.skip_lines_loaded_before). Read as text in
        # the session's time zone and written back as literals in it: no trip through Python's local time.
        first, last = self.wh.conn.sql(
            f"select cast(min(invoice_date) as string), cast(max(invoice_date) as string) from {_STAGED_VIEW}"
        ).first()
        window = f"invoice_date between timestamp '{first}' and timestamp '{last}'" if first is not None else "1 = 0"
        kept = self.wh.conn.sql(
            f"""
            with fresh as (
                select
                    staged.*,
                    coalesce(customer_id, -1) as customer_key,
                    row_number() over (partition by {tables.LINE_KEY} order by line_number) as copy_number
                from {_STAGED_VIEW} as staged
            ),
            earlier as (
                select
                    invoice_no, stock_code, quantity, unit_price, invoice_date,
                    coalesce(customer_id, -1) as customer_key,
                    count(*) as copies
                from {held}
                where {window} and invoice_no in (select invoice_no from {_STAGED_VIEW})
                group by {tables.LINE_KEY}
            )
            select fresh.*
            from fresh
            left join earlier
                on {tables.line_key_matches("fresh", "earlier")}
            where earlier.copies is null or fresh.copy_number > earlier.copies
            """
        ).drop("customer_key", "copy_number")
        self._write_lines(kept)
        self.wh.conn.catalog.dropTempView(_STAGED_VIEW)
        total = staged.count()
        stored = self.wh.conn.read.parquet(self.folders[-1]).count()
        return total - stored

    def append_rejected(self, rejected: list[pa.Table]) -> None:
        """Write the rejected lines as this load's partition of ``rejected_lines``."""
        rows = [t for t in rejected if t.num_rows]
        if not rows:
            return
        table = self._table("rejected_lines")
        frame = self.wh.spark_frame(pa.concat_tables(rows), table)
        self.folders.append(write_partition(self.wh, frame, table, PARTITION, self.load_id))
        self.written.append(table)

    def append_log(self, row: pa.Table) -> None:
        """Write the load-log row as this load's partition of ``load_log`` (committed last)."""
        table = self._table("load_log")
        frame = self.wh.spark_frame(row, table)
        self.folders.append(write_partition(self.wh, frame, table, PARTITION, self.load_id))
        self.written.append(table)

    def commit(self) -> None:
        """Add the written partitions, the log row last: from then on readers see the whole load."""
        log = self._table("load_log")
        for table in sorted(self.written, key=lambda t: t == log):
            add_partition(self.wh, table, PARTITION, self.load_id)
            self.committed.append(table)

    def discard(self) -> None:
        """Delete what this load wrote; a partition already added (a failure inside the commit) is dropped."""
        for table in self.committed:
            self.wh.execute(
                f"alter table {self.wh.qualified(table)} drop if exists partition "
                f"({PARTITION} = {partition_value(self.load_id)})"
            )
        for folder in self.folders:
            delete_folder(self.wh, folder)
