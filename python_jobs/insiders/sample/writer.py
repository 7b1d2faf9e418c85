"""The sample's fast CSV writer: turns a chunk of the invoice plan into the bytes of its lines, and opens the
output file (gzip without timestamp or name when asked).

Each field is a block of bytes, NUL-padded; a line is the concatenation of its blocks with the NULs squeezed
out. Regular lines get their product, pack size and price here, from the chunk's own random generator.
"""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from insiders.sample.catalogue import Catalogue
from insiders.sample.dates import MINUTE_TEXT, Calendar
from insiders.sample.plan import Customers
from insiders.sample.segments import ANON, COUNTRY_NAMES, PACK_SHIFT, PACKS, RET_HI, RET_LO

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"

_GZIP_LEVEL = 1


def _digits(values: np.ndarray, width: int, sign: bool = False) -> np.ndarray:
    """Right-aligned decimal text of integers in a ``(n, width)`` uint8 block, NUL-padded on the left.

    With ``sign`` a ``-`` precedes negative numbers (``width`` counts it)."""
    v = np.abs(values).astype(np.int64)
    block = np.zeros((len(v), width), dtype=np.uint8)
    ndig = np.ones(len(v), dtype=np.int64)
    x = v.copy()
    for j in range(width - 1, -1, -1):
        block[:, j] = x % 10 + 48
        x //= 10
    for k in range(1, width):
        ndig += v >= 10**k
    block[np.arange(width)[None, :] < (width - ndig)[:, None]] = 0
    if sign:
        neg = np.flatnonzero(values < 0)
        block[neg, width - 1 - ndig[neg]] = ord("-")
    return block


def _price_block(mills: np.ndarray, width: int) -> np.ndarray:
    """Shortest decimal text of prices given in thousandths: ``2550`` -> ``2.55``, ``18000`` -> ``18``."""
    whole = np.abs(mills) // 1000 * np.sign(mills)
    frac = np.abs(mills) % 1000
    block = np.zeros((len(mills), width + 4), dtype=np.uint8)
    block[:, :width] = _digits(whole, width, sign=True)
    neg_fraction_only = np.flatnonzero((mills < 0) & (whole == 0))
    block[neg_fraction_only, width - 2] = ord("-")
    block[:, width] = np.where(frac > 0, ord("."), 0)
    block[:, width + 1] = np.where(frac > 0, frac // 100 + 48, 0)
    block[:, width + 2] = np.where(frac % 100 > 0, frac // 10 % 10 + 48, 0)
    block[:, width + 3] = np.where(frac % 10 > 0, frac % 10 + 48, 0)
    return block


def _as_block(strings: np.ndarray) -> np.ndarray:
    return strings.view(np.uint8).reshape(len(strings), strings.dtype.itemsize)


class Formatter:
    """Turns a chunk of invoices into the bytes of their lines."""

    def __init__(self, cat: Catalogue, cal: Calendar, cust: Customers, number_digits: int) -> None:
        self.cat = cat
        self.entries = _as_block(cat.entries)
        self.days = _as_block(cal.text)
        self.minutes = _as_block(MINUTE_TEXT)
        width = max(len(c) for c in COUNTRY_NAMES)
        self.countries = _as_block(np.array([c.encode("latin-1") for c in COUNTRY_NAMES], dtype=f"S{width}"))
        self.cust = cust
        self.id_digits = len(str(int(cust.ids.max()))) if len(cust.ids) else 5
        self.number_digits = number_digits
        self.bulk_level = 15

    def lines(self, rng: np.random.Generator, inv: dict[str, np.ndarray]) -> tuple[bytes, int]:
        """The text of every line of the invoices ``inv`` (a slice of the plan) and their number."""
        cat = self.cat
        nreg = inv["nreg"]
        nline = inv["lines"]
        total = int(nline.sum())
        start = np.cumsum(nline) - nline
        # Regular lines: random products and pack sizes; a possible extra line closes the invoice.
        owner = np.repeat(np.arange(len(nreg)), nreg)
        pos = np.arange(len(owner)) + (start - (np.cumsum(nreg) - nreg))[owner]
        profile = inv["profile"][owner]
        product = np.minimum(np.searchsorted(cat.cdf, rng.random(len(owner)), side="right"), cat.products - 1)
        price = cat.price[product]
        level = 5.0 - 1.8 * np.log(price / 1000.0) + PACK_SHIFT[profile] + rng.normal(0.0, 1.3, len(owner))
        level = np.clip(np.rint(level), 0, len(PACKS) - 1).astype(np.int64)
        returned = inv["prefix"][owner] == ord("C")
        ret_level = rng.integers(RET_LO[profile], RET_HI[profile] + 1)
        qty = np.where(returned, -PACKS[ret_level], PACKS[level])
        price = np.where(profile == ANON, np.rint(price * 1.17 / 10) * 10, price)
        price = np.where(level >= self.bulk_level, np.rint(price * 0.85 / 10) * 10, price).astype(np.int64)

        entry = np.empty(total, dtype=np.int64)
        quantity = np.empty(total, dtype=np.int64)
        unit = np.empty(total, dtype=np.int64)
        line_inv = np.empty(total, dtype=np.int64)
        entry[pos], quantity[pos], unit[pos], line_inv[pos] = product, qty, price, owner
        has_x = np.flatnonzero(inv["xentry"] >= 0)
        xpos = start[has_x] + nreg[has_x]
        entry[xpos], quantity[xpos] = inv["xentry"][has_x], inv["xqty"][has_x]
        unit[xpos], line_inv[xpos] = inv["xprice"][has_x], has_x

        # Per-invoice blocks.
        head = np.zeros((len(nreg), 1 + self.number_digits), dtype=np.uint8)
        head[:, 0] = inv["prefix"]
        head[:, 1:] = _digits(inv["number"], self.number_digits)
        date = np.concatenate([self.days[inv["day"]], self.minutes[inv["minute"]]], axis=1)
        has_cust = inv["cust"] >= 0
        ids = np.where(has_cust, self.cust.ids[np.maximum(inv["cust"], 0)], 0)
        tail = np.concatenate(
            [
                _digits(ids, self.id_digits),
                np.full((len(nreg), 1), ord(","), dtype=np.uint8),
                self.countries[inv["country"]],
                np.tile(np.frombuffer(b"\r\n", dtype=np.uint8), (len(nreg), 1)),
            ],
            axis=1,
        )
        tail[~has_cust, : self.id_digits] = 0

        comma = np.full((total, 1), ord(","), dtype=np.uint8)
        matrix = np.concatenate(
            [
                head[line_inv],
                comma,
                self.entries[entry],
                comma,
                _digits(quantity, 7, sign=True),
                comma,
                date[line_inv],
                comma,
                _price_block(unit, 7),
                comma,
                tail[line_inv],
            ],
            axis=1,
        )
        flat = matrix.ravel()
        return np.compress(flat != 0, flat).tobytes(), total


@contextlib.contextmanager
def open_output(path: Path, compress: bool) -> Iterator[Callable[[bytes], int]]:
    """The ``write`` of a new binary file, gzip-compressed without timestamp or file name when asked."""
    with open(path, "wb") as raw:
        if compress:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0) as gz:
                yield gz.write
        else:
            yield raw.write
