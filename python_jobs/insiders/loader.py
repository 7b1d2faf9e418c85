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
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import functools
import gzip
import hashlib
import io
import re
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from insiders import layouts, raw_schema, settings
from insiders.errors import InputFileError, WarehouseError
from insiders.warehouse import Warehouse

BLOCK_BYTES = 8 << 20  # CSV bytes per batch: about 100,000 lines of the Online Retail layout
EXCEL_CHUNK_ROWS = 100_000
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
# Lines per load that may be rejected before the whole file is refused (a high share means a wrong file).
DEFAULT_MAX_REJECTED_SHARE = 0.05
# Plausible invoice dates: lines outside [earliest, latest] are quarantined in rejected_lines. The earliest day
# (YYYY-MM-DD) and the latest moment (ISO date or time) come from these variables; the latest is never later
# than the load time (a line cannot be invoiced after it was delivered), so that variable can only tighten it.
# Invoice times are the shop's local time and the load time is UTC: the load time is taken in the latest time
# zone (UTC+14), so this morning's sales east of Greenwich are not quarantined.
EARLIEST_DATE_ENV = "INSIDERS_EARLIEST_INVOICE_DATE"
LATEST_DATE_ENV = "INSIDERS_LATEST_INVOICE_DATE"
DEFAULT_EARLIEST_DATE = dt.datetime(2000, 1, 1)
LOCAL_TIME_AHEAD_OF_UTC = dt.timedelta(hours=14)
# Serialises concurrent loads on PostgreSQL (pg_advisory_xact_lock key).
LOAD_LOCK_KEY = 0x1A5D_E250

ProgressFn = Callable[[int, int], None]


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


@dataclass(frozen=True)
class FileFacts:
    """What the inspection pass learnt about a file."""

    path: Path
    kind: str  # csv, csv.gz or xlsx
    sha256: str
    encoding: str
    lines: int  # physical lines (CSV) or rows (Excel), header included
    ends_with_newline: bool = True
    # Lines that continue a record begun on an earlier line (a quoted field with line breaks, RFC 4180).
    continuation_lines: tuple[int, ...] = ()

    @property
    def records(self) -> int:
        """CSV records, header included (physical lines less the lines that continue a record)."""
        return self.lines - len(self.continuation_lines)

    @functools.cached_property
    def _record_starts(self) -> np.ndarray:
        starts = np.arange(1, self.lines + 1, dtype=np.int64)
        return starts[~np.isin(starts, np.asarray(self.continuation_lines, dtype=np.int64))]

    def physical_lines(self, records: np.ndarray) -> np.ndarray:
        """The line where each record (numbered from 1, the header) starts in the file."""
        if not self.continuation_lines:
            return records
        return self._record_starts[np.asarray(records, dtype=np.int64) - 1]


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


# ---------------------------------------------------------------------------------------------------------
# Phase 1: inspect
# ---------------------------------------------------------------------------------------------------------
def _open_binary(path: Path, kind: str) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if kind == "csv.gz" else open(path, "rb")


_NON_ASCII_LINE = re.compile(rb"^[^\n]*[\x80-\xff][^\n]*$", re.MULTILINE)
# A line with an odd number of double quotes: the only kind that can open or close a quoted field spanning lines.
_ODD_QUOTES_LINE = re.compile(rb'^(?:[^"\n]*"[^"\n]*")*[^"\n]*"[^"\n]*$', re.MULTILINE)


def _ends_inside_quotes(line: bytes, inside: bool) -> bool:
    """Whether a CSV line ends inside a quoted field, given whether it starts inside one (RFC 4180).

    A quote opens a quoted field only at the start of a field; inside one, a doubled quote is a quote.
    """
    at_field_start = not inside
    i, n = 0, len(line)
    while i < n:
        c = line[i : i + 1]
        if inside:
            if c == b'"':
                if line[i + 1 : i + 2] == b'"':
                    i += 1
                else:
                    inside = False
        elif c == b'"' and at_field_start:
            inside = True
        at_field_start = c == b"," and not inside
        i += 1
    return inside


class _LineCensus:
    """Per-line facts of a CSV byte stream, read block by block.

    Which lines are UTF-8 and which are not (a file mixing both would be stored garbled), which lines continue
    a record because a quoted field spans lines (so that line numbers stay physical), and whether a line is too
    long for the CSV reader. Only lines with non-ASCII bytes or an odd number of quotes are looked at one by
    one (regular expressions find them), so a large plain file costs little.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.carry = b""
        self.line = 1  # number of the first line in the carry
        self.utf8_lines = 0  # lines with non-ASCII bytes that are valid UTF-8
        self.other_lines = 0  # lines with bytes that are not valid UTF-8
        self.first_utf8: tuple[int, str] | None = None
        self.first_other: int | None = None
        self.inside_quotes = False  # the carry starts inside a quoted field
        self.opened_at = 0  # last line known to be part of the open quoted field
        self.opened_at_first = 0  # line where the open quoted field started
        self.continuation_lines: list[int] = []  # lines that continue a record begun on an earlier line

    def feed(self, block: bytes, final: bool = False) -> None:
        data = self.carry + block
        end = len(data) if final else data.rfind(b"\n") + 1
        part, self.carry = data[:end], data[end:]
        if len(self.carry) > BLOCK_BYTES or (len(part) > BLOCK_BYTES and part.find(b"\n") > BLOCK_BYTES):
            # The CSV reader works in blocks of this size and cannot split a line across two of them.
            raise InputFileError(
                f"{self.path}: line {self.line:,} is longer than {BLOCK_BYTES >> 20} MB; an invoice line is a few "
                "hundred bytes, so this is not an invoice file or it is damaged. Nothing was loaded"
            )
        if not part:
            return
        if not part.isascii():
            for match in _NON_ASCII_LINE.finditer(part):
                text = match.group(0)
                try:
                    decoded = text.decode("utf-8")
                except UnicodeDecodeError:
                    self.other_lines += 1
                    if self.first_other is None:
                        self.first_other = self.line + part.count(b"\n", 0, match.start())
                    continue
                self.utf8_lines += 1
                if self.first_utf8 is None:
                    self.first_utf8 = (self.line + part.count(b"\n", 0, match.start()), decoded.strip())
        if self.inside_quotes or b'"' in part:
            self._follow_quotes(part)
        self.line += part.count(b"\n")

    def _follow_quotes(self, part: bytes) -> None:
        """Record the lines that continue a record: those after a line ending inside a quoted field."""
        position, line = 0, self.line
        for match in _ODD_QUOTES_LINE.finditer(part):
            line += part.count(b"\n", position, match.start())
            position = match.start()
            was_inside = self.inside_quotes
            if was_inside:
                self.continuation_lines.extend(range(self.opened_at + 1, line + 1))
            self.inside_quotes = _ends_inside_quotes(match.group(0).rstrip(b"\r"), was_inside)
            if self.inside_quotes:
                # Opened here, or still open: the lines after this one continue the record.
                if not was_inside:
                    self.opened_at_first = line
                self.opened_at = line
        if self.inside_quotes:
            end_line = line + part.count(b"\n", position)
            self.continuation_lines.extend(range(self.opened_at + 1, end_line))
            self.opened_at = max(self.opened_at, end_line - 1)

    @property
    def mixed(self) -> bool:
        return self.utf8_lines > 0 and self.other_lines > 0


def content_sha256(path: str | Path) -> str:
    """The sha256 that identifies a file's content in the load log, as :func:`inspect_file` computes it.

    Of the decompressed bytes for gzip (the same content loads once whatever its compression), of the file's bytes
    otherwise. A single read with no other check: a run whose files are all loaded already stops after this.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    digest = hashlib.sha256()
    try:
        with _open_binary(path, "csv.gz" if magic.startswith(GZIP_MAGIC) else "csv") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputFileError(f"{path}: the gzip stream is corrupt or truncated ({exc})") from exc
    return digest.hexdigest()


def inspect_file(path: str | Path, encoding: str = "auto") -> FileFacts:
    """Hash, count and check a raw file; raise :class:`InputFileError` naming any problem."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if not path.is_file():
        raise InputFileError(f"{path}: not a file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic.startswith(ZIP_MAGIC):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return FileFacts(path, "xlsx", digest.hexdigest(), "xlsx", 0)
    kind = "csv.gz" if magic.startswith(GZIP_MAGIC) else "csv"
    if not magic:
        raise InputFileError(f"{path}: the file is empty")

    digest = hashlib.sha256()
    census = _LineCensus(path)
    utf8 = codecs.getincrementaldecoder("utf-8")()
    utf8_ok = True
    newlines = 0
    carriage_returns = 0
    first = True
    last = b""
    try:
        with _open_binary(path, kind) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                if first:
                    if block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                        raise InputFileError(
                            f"{path}: the file is UTF-16 encoded; save it as latin-1 (ISO-8859-1) or UTF-8 CSV"
                        )
                    first = False
                if b"\x00" in block:
                    raise InputFileError(
                        f"{path}: the file contains NUL bytes: it is binary or UTF-16/32 encoded, not a "
                        "latin-1 or UTF-8 CSV"
                    )
                digest.update(block)
                census.feed(block)
                newlines += block.count(b"\n")
                carriage_returns += block.count(b"\r")
                if utf8_ok:
                    try:
                        utf8.decode(block)
                    except UnicodeDecodeError:
                        utf8_ok = False
                last = block[-1:]
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputFileError(f"{path}: the gzip stream is corrupt or truncated ({exc})") from exc
    if utf8_ok:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8_ok = False

    census.feed(b"", final=True)
    if encoding == "auto":
        chosen = "utf-8" if utf8_ok else "latin-1"
        if census.mixed:
            assert census.first_utf8 is not None
            line, text = census.first_utf8
            mojibake = text.encode("utf-8").decode("latin-1")
            raise InputFileError(
                f"{path}: the file mixes encodings: {census.utf8_lines:,} lines are UTF-8 (first: line {line}) and "
                f"{census.other_lines:,} are not (first: line {census.first_other}), so one of the two groups "
                f"would be stored garbled (line {line} would read '{mojibake[:60]}'). Nothing was loaded; save the "
                "file in one encoding, or read every line as latin-1 with --encoding latin-1"
            )
    else:
        try:
            chosen = codecs.lookup(encoding).name
        except LookupError as exc:
            raise InputFileError(f"unknown encoding {encoding!r}") from exc
        if chosen == "utf-8" and not utf8_ok:
            raise InputFileError(
                f"{path}: the file is not valid UTF-8 (the Kaggle/UCI file is latin-1: use --encoding latin-1 "
                "or --encoding auto)"
            )
    lines = newlines + (0 if last in (b"\n", b"") else 1)
    if newlines == 0 and carriage_returns > 0:
        raise InputFileError(
            f"{path}: the lines end with a bare carriage return (CR, classic Mac line endings), not LF or CRLF: "
            f"{carriage_returns:,} CR and no LF. Save the file with Windows (CRLF) or Unix (LF) line endings"
        )
    if census.inside_quotes:
        raise InputFileError(
            f"{path}: the quoted field opened on line {census.opened_at_first} is never closed (a missing "
            "closing quote, or the file is truncated); nothing was loaded"
        )
    if kind == "csv" and last != b"\n":
        # Every export ends its last line; a plain file without that ending was cut short (a copy interrupted
        # inside the last field still has all its fields: 'United K'). A gzip stream checks itself above.
        raise InputFileError(
            f"{path}: the file ends in the middle of line {lines} (no line ending after it: truncated?); "
            "nothing was loaded"
        )
    return FileFacts(
        path,
        kind,
        digest.hexdigest(),
        chosen,
        lines,
        ends_with_newline=last == b"\n",
        continuation_lines=tuple(census.continuation_lines),
    )


# ---------------------------------------------------------------------------------------------------------
# Phase 2: parse
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Batch:
    """Raw text fields of consecutive data lines, as string columns, with their line numbers."""

    columns: list[pa.Array]  # one string array per field of the header, in file order
    lines: np.ndarray  # physical line number of each row (the header is line 1)
    raw_width: np.ndarray | None = None  # fields actually found, where the reader knows it


@dataclass
class _Invalid:
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
    with _open_binary(facts.path, facts.kind) as raw:
        text = io.TextIOWrapper(raw, encoding=facts.encoding, newline="")
        try:
            return next(csv.reader([text.readline()]), [])
        except csv.Error as exc:
            raise InputFileError(f"{facts.path}: cannot read the header: {exc}") from exc


def _csv_batches(facts: FileFacts, width: int, invalid: _Invalid) -> Iterator[Batch]:
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
    with _open_binary(facts.path, facts.kind) as raw:
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


def _excel_batches(facts: FileFacts, width: int) -> Iterator[Batch]:
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


def _parse_dates(values: pa.Array, fmt: str) -> pa.Array:
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
        parsed = [len(values) - _plausible(_parse_dates(values, fmt), within).null_count for fmt in candidates]
        best = max(parsed)
        if best * 2 > len(values):
            return [fmt for fmt, count in zip(candidates, parsed, strict=True) if count == best]
    return []


def choose_date_format(layout: layouts.Layout, samples: pa.Array) -> str | None:
    """The candidate format that reads most of the sampled dates (ties go to the layout's own formats)."""
    candidates = date_format_candidates(layout, samples)
    return candidates[0] if candidates else None


class _DateFormatCheck:
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
        mine = _plausible(_parse_dates(values, self.chosen), self.window)
        self.chosen_unread += mine.null_count
        for fmt, complete in self.rivals.items():
            if not complete:
                continue
            theirs = _plausible(_parse_dates(values, fmt), self.window)
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
        add(pc.not_equal(cols[extra], ""), lambda i, k=extra: f"unexpected value in column {k + 1}")
    for col, label in ((invoice, "InvoiceNo"), (stock, "StockCode"), (country, "Country")):
        add(pc.equal(col, ""), lambda i, label=label: f"{label} is empty")

    quantity_ok = pc.match_substring_regex(quantity_text, _INT_RE)
    quantity = pc.cast(
        pc.replace_substring_regex(pc.if_else(quantity_ok, quantity_text, "0"), r"\.0*$", ""), pa.int64()
    )
    add(pc.invert(quantity_ok), lambda i: f"Quantity '{quantity_text[i]}' is not a whole number")
    add(pc.greater_equal(pc.abs(quantity), 2**31), lambda i: f"Quantity '{quantity_text[i]}' is out of range")

    dates = _parse_dates(date_text, date_format)
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


# ---------------------------------------------------------------------------------------------------------
# Phase 3: write
# ---------------------------------------------------------------------------------------------------------
def ensure_raw_tables(wh: Warehouse, schema: str) -> None:
    """Create the raw schema and tables when missing.

    The schema is created only when it does not exist, so a job role without CREATE on the database can load
    into a schema prepared for it.
    """
    exists = wh.query("select count(*) from information_schema.schemata where schema_name = %s", [schema])[0][0]
    for statement in raw_schema.ddl(schema):
        if exists and statement.startswith("create schema"):
            continue
        wh.execute(statement)
    for table, column, definition in raw_schema.ADDED_COLUMNS:
        found = wh.query(
            "select count(*) from information_schema.columns where table_schema = %s and table_name = %s"
            " and column_name = %s",
            [schema, table, column],
        )[0][0]
        if not found:
            wh.execute(f"alter table {schema}.{table} add column {column} {definition}")


# The Arrow types of the lines handed to the warehouse (prices stay text: the warehouse casts them exactly).
TRANSACTION_ARROW_SCHEMA = pa.schema(
    [
        ("load_id", pa.string()),
        ("line_number", pa.int64()),
        ("invoice_no", pa.string()),
        ("stock_code", pa.string()),
        ("description", pa.string()),
        ("quantity", pa.int32()),
        ("invoice_date", pa.timestamp("s")),
        ("unit_price", pa.string()),
        ("customer_id", pa.int64()),
        ("country", pa.string()),
        ("loaded_at", pa.timestamp("s")),
    ]
)
assert tuple(TRANSACTION_ARROW_SCHEMA.names) == raw_schema.TRANSACTION_COLUMNS

# The natural key of an invoice line: the same sale delivered in two files has the same values.
LINE_KEY = "invoice_no, stock_code, quantity, unit_price, invoice_date, coalesce(customer_id, -1)"


def skip_lines_loaded_before(wh: Warehouse, schema: str, load_id: str) -> int:
    """Delete the lines of this load that earlier loads of other files already hold; return how many.

    Lines are matched on their natural key (invoice, stock code, quantity, price, invoice time, customer).
    Copies count: a line present twice in this file and once before keeps one copy, so duplicates inside one
    file stay as the file has them. Runs inside the load's transaction. Only the invoices both this load and
    earlier ones hold are numbered copy by copy, so the memory and time it takes follow the overlap, not the
    size of the file.
    """
    earlier_lines = f"select 1 from {schema}.transactions where load_id <> %s limit 1"
    if not wh.query(earlier_lines, [load_id]):
        return 0  # the first load: nothing to compare with (and no window over every line of a large file)
    fresh = f"select count(*) from {schema}.transactions where load_id = %s"
    before = wh.query(fresh, [load_id])[0][0]
    wh.execute(
        f"""
        delete from {schema}.transactions
        where load_id = %s and line_number in (
            select fresh.line_number
            from (
                select
                    line_number, invoice_no, stock_code, quantity, unit_price, invoice_date,
                    coalesce(customer_id, -1) as customer_key,
                    row_number() over (partition by {LINE_KEY} order by line_number) as copy_number
                from {schema}.transactions
                where load_id = %s
                    and invoice_no in (select invoice_no from {schema}.transactions where load_id <> %s)
            ) as fresh
            inner join (
                select
                    invoice_no, stock_code, quantity, unit_price, invoice_date,
                    coalesce(customer_id, -1) as customer_key,
                    count(*) as copies
                from {schema}.transactions
                where load_id <> %s
                    and invoice_no in (select invoice_no from {schema}.transactions where load_id = %s)
                group by {LINE_KEY}
            ) as earlier
                on fresh.invoice_no = earlier.invoice_no
                and fresh.stock_code = earlier.stock_code
                and fresh.quantity = earlier.quantity
                and fresh.unit_price = earlier.unit_price
                and fresh.invoice_date = earlier.invoice_date
                and fresh.customer_key = earlier.customer_key
            where fresh.copy_number <= earlier.copies
        )""",
        [load_id, load_id, load_id, load_id, load_id],
    )
    return before - wh.query(fresh, [load_id])[0][0]


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

    invalid = _Invalid([], [])
    batches = _excel_batches(facts, width) if facts.kind == "xlsx" else _csv_batches(facts, width, invalid)
    load_id = str(uuid.uuid4())
    loaded_at = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    window = date_window(loaded_at)
    read = loaded = 0
    total = max(facts.lines - 1, 0)
    check: _DateFormatCheck | None = None
    # Rejected lines wait in compact Arrow tables until the lines are written (on DuckDB the lines stream in one
    # statement). They cannot outgrow the allowed share of the file: past it, the file is refused at once.
    rejected_count = 0
    first_rejected: tuple[int, str] | None = None
    pending_rejects: list[pa.Table] = []

    def too_many_rejected(of_lines: str) -> InputFileError:
        assert first_rejected is not None
        return InputFileError(
            f"{facts.path}: {rejected_count:,} of {of_lines} lines cannot be read (more than "
            f"{max_rejected_share:.0%}); is this the right file? First problem: line {first_rejected[0]}: "
            f"{first_rejected[1]}. Nothing was loaded; raise --max-rejected-share to load it anyway."
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

    with wh.transaction():
        if not wh.advisory_lock(LOAD_LOCK_KEY):
            raise WarehouseError("another insiders load is writing to this warehouse; try again when it ends")
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
                    check = _DateFormatCheck(date_format, candidates[1:], window)
                    if date_format in layouts.ONLINE_RETAIL_REDATED.date_formats or width > len(layout.header):
                        layout = layouts.redated(layout)
                elif check is None:
                    check = _DateFormatCheck(date_format, [], window)
                    sample = pc.utf8_trim_whitespace(batch.columns[4][:1000])
                    sample = sample.filter(pc.not_equal(sample, ""))
                    if len(sample) and _parse_dates(sample, date_format).null_count == len(sample):
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
                    yield good.select(list(raw_schema.TRANSACTION_COLUMNS)).cast(TRANSACTION_ARROW_SCHEMA)
                if progress is not None:
                    progress(read, max(total, read))

        wh.append_batches(
            f"{schema}.transactions", TRANSACTION_ARROW_SCHEMA, typed_lines(), casts={"unit_price": "decimal(18, 4)"}
        )
        read += reject_invalid()  # those reported after the last batch
        if read == 0:
            raise InputFileError(f"{facts.path}: the file has a header but no data lines")
        if check is not None:
            check.verdict(facts.path)
        # Planner statistics that know this load's lines (PostgreSQL): the query below, and dbt after the commit,
        # are planned for the table as it now is (stale ones plan the earlier lines as a handful, and nest loops).
        wh.analyze(f"{schema}.transactions")
        # Overlapping deliveries (a month re-sent inside a larger file, a CSV and an .xlsx of the same data):
        # lines another file delivered are not stored twice.
        skipped = skip_lines_loaded_before(wh, schema, load_id) if loaded else 0
        loaded -= skipped
        if facts.kind != "xlsx" and read + 1 != facts.records:
            raise InputFileError(
                f"{facts.path}: read {read + 1:,} lines but the file has {facts.lines:,} (a quoted field "
                "spanning lines?); nothing was loaded"
            )
        if rejected_count > max_rejected_share * read:
            raise too_many_rejected(f"{read:,}")
        for table in pending_rejects:
            wh.append_arrow(f"{schema}.rejected_lines", table)
        layout_name = layout.name + ("_xlsx" if facts.kind == "xlsx" else "")
        wh.append_arrow(
            f"{schema}.load_log",
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
        wh.analyze(f"{schema}.rejected_lines", f"{schema}.load_log")
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
