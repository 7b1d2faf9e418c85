"""Phase 2 of a load: parse a raw file in chunks, typing every line into the canonical columns or setting it
aside with its line number and the reason it could not be read; choose and check the invoice date format."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from insiders import layouts, settings
from insiders.errors import InputFileError
from insiders.loader.inspection import BLOCK_BYTES, FileFacts, open_binary

EXCEL_CHUNK_ROWS = 100_000
# Plausible invoice dates: lines outside [earliest, latest] are quarantined in rejected_lines. The earliest day
# (YYYY-MM-DD) and the latest moment (ISO date or time) come from these variables; the latest is never later
# than the load time (a line cannot be invoiced after it was delivered), so that variable can only tighten it.
# Invoice times are the shop's local time and the load time is UTC: the load time is taken in the latest time
# zone (UTC+14), so this morning's sales east of Greenwich are not quarantined.
EARLIEST_DATE_ENV = "INSIDERS_EARLIEST_INVOICE_DATE"
LATEST_DATE_ENV = "INSIDERS_LATEST_INVOICE_DATE"
DEFAULT_EARLIEST_DATE = dt.datetime(2000, 1, 1)
LOCAL_TIME_AHEAD_OF_UTC = dt.timedelta(hours=14)


@dataclass(frozen=True)
class DateWindow:
    """Invoice dates a load accepts; lines dated outside it are rejected with the reason."""

    earliest: dt.datetime
    latest: dt.datetime

    def describe(self) -> str:
        return f"{self.earliest:%Y-%m-%d} .. {self.latest:%Y-%m-%d %H:%M:%S}"


def _window_bound(name: str, default: dt.datetime, day_only: bool) -> dt.datetime:
    if not settings.is_set(name):
        return default
    text = settings.text(name)
    try:
        if day_only:
            return dt.datetime.strptime(text, "%Y-%m-%d")
        return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError as exc:
        raise InputFileError(f"{name}={text!r} is not an ISO date such as 2000-01-01") from exc


def date_window(load_time: dt.datetime) -> DateWindow:
    """The configured window of plausible invoice dates for a load at ``load_time`` (naive UTC)."""
    latest = load_time + LOCAL_TIME_AHEAD_OF_UTC
    window = DateWindow(
        _window_bound(EARLIEST_DATE_ENV, DEFAULT_EARLIEST_DATE, day_only=True),
        min(_window_bound(LATEST_DATE_ENV, latest, day_only=False), latest),
    )
    if window.earliest >= window.latest:
        raise InputFileError(
            f"the window of plausible invoice dates is empty ({window.describe()}); check {EARLIEST_DATE_ENV} "
            f"and {LATEST_DATE_ENV}"
        )
    return window


@dataclass
class Batch:
    """Raw text fields of consecutive data lines, as string columns, with their line numbers."""

    columns: list[pa.Array]  # one string array per field of the header, in file order
    lines: np.ndarray  # physical line number of each row (the header is line 1)
    raw_width: np.ndarray | None = None  # fields actually found, where the reader knows it


@dataclass
class InvalidLines:
    """Lines the CSV reader could not split into the header's number of fields."""

    numbers: list[int]
    rows: list[tuple[int, int, str]]

    def handler(self, row: pacsv.InvalidRow) -> str:
        self.numbers.append(int(row.number))
        self.rows.append((int(row.number), int(row.actual_columns), row.text or ""))
        return "skip"


def read_header(facts: FileFacts) -> list[str]:
    """The header fields of a CSV file (or of the first sheet of a workbook)."""
    if facts.kind == "xlsx":
        return _excel_header(facts)
    with open_binary(facts.path, facts.kind) as raw:
        text = io.TextIOWrapper(raw, encoding=facts.encoding, newline="")
        try:
            return next(csv.reader([text.readline()]), [])
        except csv.Error as exc:
            raise InputFileError(f"{facts.path}: cannot read the header: {exc}") from exc


def csv_batches(facts: FileFacts, width: int, invalid: InvalidLines) -> Iterator[Batch]:
    """Stream a CSV file as string batches; malformed lines go to ``invalid`` with their numbers."""
    names = [f"f{i}" for i in range(width)]
    read_options = pacsv.ReadOptions(
        encoding=facts.encoding, use_threads=False, block_size=BLOCK_BYTES, skip_rows=1, column_names=names
    )
    # Empty lines are kept (and rejected as such) so that line numbers stay exact. Quoted fields with line
    # breaks need the slower reader mode that does not split blocks at any line break.
    parse_options = pacsv.ParseOptions(
        invalid_row_handler=invalid.handler,
        ignore_empty_lines=False,
        newlines_in_values=bool(facts.continuation_lines),
    )
    convert_options = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, strings_can_be_null=False, quoted_strings_can_be_null=False
    )
    next_line = 2
    with open_binary(facts.path, facts.kind) as raw:
        try:
            reader = pacsv.open_csv(
                raw, read_options=read_options, parse_options=parse_options, convert_options=convert_options
            )
            for record_batch in reader:
                n = record_batch.num_rows
                if n == 0:
                    continue
                # Rows come in file order; skip the numbers of lines the reader set aside. The reader has
                # always reported every malformed line up to the end of the batch it returns.
                # Numbers are the reader's record numbers; they are the line numbers unless a quoted field
                # spans lines, and are turned into the line where each record starts.
                known = np.asarray(invalid.numbers, dtype=np.int64)
                candidates = np.arange(next_line, next_line + n + int((known >= next_line).sum()))
                lines = candidates[~np.isin(candidates, known)][:n]
                next_line = int(lines[-1]) + 1
                invalid.numbers[:] = [k for k in invalid.numbers if k >= next_line]  # only later ones matter now
                yield Batch([record_batch.column(i) for i in range(width)], facts.physical_lines(lines))
        except pa.ArrowInvalid as exc:
            if "straddl" in str(exc):  # one record larger than a whole reader block
                line = int(facts.physical_lines(np.asarray([min(next_line, facts.records)]))[0])
                raise InputFileError(
                    f"{facts.path}: a line longer than {BLOCK_BYTES >> 20} MB starts at or after line {line:,}; an "
                    "invoice line is a few hundred bytes, so this is not an invoice file or it is damaged. "
                    "Nothing was loaded"
                ) from exc
            raise InputFileError(f"{facts.path}: cannot parse the file as CSV: {exc}") from exc


def _excel_header(facts: FileFacts) -> list[str]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(facts.path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged workbook
        raise InputFileError(f"{facts.path}: cannot open the Excel workbook ({exc})") from exc
    try:
        for row in book.worksheets[0].iter_rows(max_row=1, values_only=True):
            return [_cell_text(v) for v in row]
    finally:
        book.close()
    raise InputFileError(f"{facts.path}: the workbook is empty")


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        text = repr(value)
        return f"{value:.10f}".rstrip("0") if "e" in text else text
    return str(value)


def excel_batches(facts: FileFacts, width: int) -> Iterator[Batch]:
    """Every sheet of a workbook (Online Retail II has one per year), rows numbered across sheets."""
    import openpyxl

    book = openpyxl.load_workbook(facts.path, read_only=True, data_only=True)
    try:
        line = 1
        header: list[str] | None = None
        for ws in book.worksheets:
            rows = ws.iter_rows(values_only=True)
            sheet_header = [_cell_text(v) for v in next(rows, ())]
            if header is None:
                header = sheet_header
            elif sheet_header != header:
                raise InputFileError(f"{facts.path}: sheet '{ws.title}' has another header than the first sheet")
            buffer: list[list[str]] = []
            numbers: list[int] = []
            for row in rows:
                line += 1
                fields = [_cell_text(v) for v in row]
                if not any(fields):
                    continue
                buffer.append((fields + [""] * width)[:width])
                numbers.append(line)
                if len(buffer) >= EXCEL_CHUNK_ROWS:
                    yield _batch_from_rows(buffer, numbers, width)
                    buffer, numbers = [], []
            if buffer:
                yield _batch_from_rows(buffer, numbers, width)
    finally:
        book.close()


def _batch_from_rows(rows: list[list[str]], numbers: list[int], width: int) -> Batch:
    columns = [pa.array([r[i] for r in rows], type=pa.string()) for i in range(width)]
    return Batch(columns, np.asarray(numbers, dtype=np.int64))


_INT_RE = r"^[+-]?[0-9]+(\.0*)?$"
_NUM_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_PLAIN_DECIMAL_RE = r"^[+-]?[0-9]*\.?[0-9]*$"


def parse_dates(values: pa.Array, fmt: str) -> pa.Array:
    return pc.strptime(values, format=fmt, unit="s", error_is_null=True)


def _plausible(dates: pa.Array, window: DateWindow | None) -> pa.Array:
    """``dates`` with the values outside ``window`` turned to null."""
    if window is None:
        return dates
    inside = pc.and_(
        pc.greater_equal(dates, pa.scalar(window.earliest, pa.timestamp("s"))),
        pc.less_equal(dates, pa.scalar(window.latest, pa.timestamp("s"))),
    )
    return pc.if_else(inside, dates, pa.scalar(None, pa.timestamp("s")))


def date_format_candidates(layout: layouts.Layout, samples: pa.Array, window: DateWindow | None = None) -> list[str]:
    """The formats that read the most sampled dates, preferred first (the layout's own formats first).

    A date counts as read when the format parses it to a day inside ``window`` (so ``29-Nov-16`` is not the
    year 16); when no format reads more than half that way, plain parsing decides, and the lines outside the
    window are rejected afterwards. Empty when no format reads more than half of the samples: a few unreadable
    dates do not decide the format, they are rejected line by line.
    """
    values = pc.utf8_trim_whitespace(samples)
    values = values.filter(pc.not_equal(values, ""))
    if len(values) == 0:
        return []
    candidates = list(layout.date_formats) + [
        f for f in layouts.ONLINE_RETAIL_REDATED.date_formats if f not in layout.date_formats
    ]
    for within in (window, None):
        parsed = [len(values) - _plausible(parse_dates(values, fmt), within).null_count for fmt in candidates]
        best = max(parsed)
        if best * 2 > len(values):
            return [fmt for fmt, count in zip(candidates, parsed, strict=True) if count == best]
    return []


def choose_date_format(layout: layouts.Layout, samples: pa.Array) -> str | None:
    """The candidate format that reads most of the sampled dates (ties go to the layout's own formats)."""
    candidates = date_format_candidates(layout, samples)
    return candidates[0] if candidates else None


class DateFormatCheck:
    """Follows, over every line of a file, whether other formats than the chosen one read every date too.

    When two formats read every date of a file to plausible days that differ (``01/12/2010`` as 12 January or
    1 December), the file does not say which it means: the load is refused and the user names the format.
    When the chosen format leaves lines unreadable but another reads them all, the choice was wrong.
    """

    def __init__(self, chosen: str, rivals: list[str], window: DateWindow | None) -> None:
        self.chosen = chosen
        self.window = window
        self.chosen_unread = 0
        self.rivals = {fmt: True for fmt in rivals}  # format -> still reads every date
        self.example: dict[str, tuple[str, dt.datetime, dt.datetime]] = {}  # first date read differently

    def add(self, date_text: pa.Array) -> None:
        if not any(self.rivals.values()):
            return
        values = pc.utf8_trim_whitespace(date_text)
        values = values.filter(pc.not_equal(values, ""))
        mine = _plausible(parse_dates(values, self.chosen), self.window)
        self.chosen_unread += mine.null_count
        for fmt, complete in self.rivals.items():
            if not complete:
                continue
            theirs = _plausible(parse_dates(values, fmt), self.window)
            if theirs.null_count:
                self.rivals[fmt] = False
                continue
            if fmt not in self.example:
                differ = pc.fill_null(pc.not_equal(mine, theirs), False)
                if pc.any(differ).as_py():
                    i = int(np.flatnonzero(differ.to_numpy(zero_copy_only=False))[0])
                    self.example[fmt] = (values[i].as_py(), mine[i].as_py(), theirs[i].as_py())

    def verdict(self, path: Path) -> None:
        """Raise :class:`InputFileError` when the file's dates do not settle one format."""
        if self.chosen_unread == 0:
            readers = [fmt for fmt, complete in self.rivals.items() if complete and fmt in self.example]
            if not readers:
                return
            other = readers[0]
            text, mine, theirs = self.example[other]
            options = " or ".join(f"--date-format '{fmt}'" for fmt in [self.chosen, *readers])
            raise InputFileError(
                f"{path}: every InvoiceDate reads both as {self.chosen} and as {other}, to different days (e.g. "
                f"'{text}' is {mine:%Y-%m-%d} or {theirs:%Y-%m-%d}): the file does not say whether the day or "
                f"the month comes first. Nothing was loaded; say which with {options}"
            )
        readers = [fmt for fmt, complete in self.rivals.items() if complete]
        if not readers:
            return
        other = readers[0]
        raise InputFileError(
            f"{path}: {self.chosen_unread:,} InvoiceDate values do not read as {self.chosen}, but every one "
            f"reads as {other}. Nothing was loaded; if that is the file's format, load it with "
            f"--date-format '{other}'"
        )


def _unexpected_value(i: int, column: int) -> str:
    return f"unexpected value in column {column}"


def _empty_field(i: int, label: str) -> str:
    return f"{label} is empty"


def type_batch(
    batch: Batch, date_format: str, window: DateWindow | None = None
) -> tuple[pa.Table, list[tuple[int, str, str]]]:
    """Type a batch into the canonical columns; return (good rows, rejected (line, reason, text)).

    With a ``window``, lines dated outside it are rejected (a date in 2101 would move the reference day of
    every customer's features).
    """
    cols = [pc.utf8_trim_whitespace(c) for c in batch.columns]
    (invoice, stock, description, quantity_text, date_text, price_text, customer_text, country) = cols[:8]
    n = len(batch.lines)
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = []

    def add(failed: pa.Array | np.ndarray, why: Callable[[int], str]) -> None:
        mask = failed if isinstance(failed, np.ndarray) else pc.fill_null(failed, True).to_numpy(False)
        checks.append((np.asarray(mask, dtype=bool), why))

    blank = np.ones(n, dtype=bool)
    for col in cols:
        blank &= pc.equal(col, "").to_numpy(False)
    add(blank, lambda i: "empty line")
    for extra in range(8, len(cols)):
        add(pc.not_equal(cols[extra], ""), functools.partial(_unexpected_value, column=extra + 1))
    for col, label in ((invoice, "InvoiceNo"), (stock, "StockCode"), (country, "Country")):
        add(pc.equal(col, ""), functools.partial(_empty_field, label=label))

    quantity_ok = pc.match_substring_regex(quantity_text, _INT_RE)
    quantity = pc.cast(
        pc.replace_substring_regex(pc.if_else(quantity_ok, quantity_text, "0"), r"\.0*$", ""), pa.int64()
    )
    add(pc.invert(quantity_ok), lambda i: f"Quantity '{quantity_text[i]}' is not a whole number")
    add(pc.greater_equal(pc.abs(quantity), 2**31), lambda i: f"Quantity '{quantity_text[i]}' is out of range")

    dates = parse_dates(date_text, date_format)
    add(pc.is_null(dates), lambda i: f"InvoiceDate '{date_text[i]}' does not match the format {date_format}")
    if window is not None:
        earliest = pa.scalar(window.earliest, pa.timestamp("s"))
        latest = pa.scalar(window.latest, pa.timestamp("s"))
        add(
            pc.or_(pc.less(dates, earliest), pc.greater(dates, latest)),
            lambda i: f"InvoiceDate '{date_text[i]}' is outside the plausible window {window.describe()}",
        )

    price_ok = pc.match_substring_regex(price_text, _NUM_RE)
    price = pc.cast(pc.if_else(price_ok, price_text, "0"), pa.float64())
    add(pc.invert(price_ok), lambda i: f"UnitPrice '{price_text[i]}' is not a number")
    add(pc.greater_equal(pc.abs(price), 1e14), lambda i: f"UnitPrice '{price_text[i]}' is out of range")

    customer_ok = pc.or_(pc.equal(customer_text, ""), pc.match_substring_regex(customer_text, r"^[0-9]+(\.0*)?$"))
    add(pc.invert(customer_ok), lambda i: f"CustomerID '{customer_text[i]}' is not a whole number")

    failed = np.zeros(n, dtype=bool)
    for mask, _ in checks:
        failed |= mask
    rejected: list[tuple[int, str, str]] = []
    for i in np.flatnonzero(failed):
        why = next(explain(int(i)) for mask, explain in checks if mask[i])
        text = ",".join(str(c[int(i)]) for c in batch.columns)
        rejected.append((int(batch.lines[i]), why, text))

    keep = pa.array(~failed)
    price_kept = price_text.filter(keep)
    # Prices stay text so the warehouse casts them to numeric exactly; exponent notation is expanded first.
    plain = pc.match_substring_regex(price_kept, _PLAIN_DECIMAL_RE)
    if not pc.all(plain).as_py():
        expanded = pa.array([_decimal_text(v) for v in price.filter(keep).to_pylist()], type=pa.string())
        price_kept = pc.if_else(plain, price_kept, expanded)
    customer_kept = customer_text.filter(keep)
    customer_ids = pc.cast(
        pc.replace_substring_regex(
            pc.if_else(pc.equal(customer_kept, ""), pa.scalar(None, pa.string()), customer_kept), r"\.0*$", ""
        ),
        pa.int64(),
    )
    description_kept = description.filter(keep)
    good = pa.table(
        {
            "line_number": pa.array(batch.lines[~failed], type=pa.int64()),
            "invoice_no": invoice.filter(keep),
            "stock_code": stock.filter(keep),
            "description": pc.if_else(pc.equal(description_kept, ""), pa.scalar(None, pa.string()), description_kept),
            "quantity": pc.cast(quantity.filter(keep), pa.int32()),
            "invoice_date": dates.filter(keep),
            "unit_price": price_kept,
            "customer_id": customer_ids,
            "country": country.filter(keep),
        }
    )
    return good, rejected


def _decimal_text(value: float) -> str:
    text = repr(float(value))
    return f"{value:.10f}".rstrip("0") if "e" in text else text
