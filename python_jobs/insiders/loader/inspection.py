"""Phase 1 of a load: inspect a raw file without touching the warehouse.

The sha256 of its content (decompressed for ``.gz``, so the same content loads once whatever its compression),
its line count for progress, its encoding (mixed encodings included), line endings, quoted fields spanning lines,
and a complete read of a gzip stream so that a truncated download fails here; a plain file must end with a line
ending.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import hashlib
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insiders.errors import InputFileError

# CSV bytes per batch, and so the longest line a file may have: about 100,000 lines of the Online Retail layout
BLOCK_BYTES = 8 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


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


def open_binary(path: Path, kind: str) -> gzip.GzipFile | io.BufferedReader:
    """The file's bytes, decompressed when it is a ``.gz``."""
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
        with open_binary(path, "csv.gz" if magic.startswith(GZIP_MAGIC) else "csv") as fh:
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
        with open_binary(path, kind) as fh:
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
            line, text = census.first_utf8 or (0, "")
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
