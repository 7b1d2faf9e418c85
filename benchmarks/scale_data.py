"""Write a ×N copy of the Online Retail file for benchmarks: the real file repeated N times.

Copy k (0 … N-1) keeps every line as it is but for two ids, so that the copies are new invoices of new customers
rather than duplicates the loader would skip: the numeric part of ``InvoiceNo`` gets ``k * 10,000,000`` added
(a cancellation's ``C`` prefix is kept) and ``CustomerID`` gets ``k * 100,000`` added (empty stays empty). Dates,
products, quantities, prices and the encoding (Latin-1, as the real file) are unchanged, so ×N has N times the
lines, invoices and customers of the real file over the same 13 months.

    python benchmarks/scale_data.py 10 --out data/bench/online_retail_x10.csv

The output is plain CSV (``.csv``) or gzip (``.csv.gz``), written line by line: memory stays at the size of the
real file whatever N is.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
REAL_FILE = PROJECT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
INVOICE_STEP = 10_000_000
CUSTOMER_STEP = 100_000


def _shift_invoice(value: str, offset: int) -> str:
    prefix = value[:1] if value[:1].isalpha() else ""
    number = value[len(prefix) :]
    return f"{prefix}{int(number) + offset}" if number.isdigit() else value


def _shift_customer(value: str, offset: int) -> str:
    if not value:
        return value
    whole = value[:-2] if value.endswith(".0") else value
    return str(int(whole) + offset) if whole.isdigit() else value


def write_scaled(source: Path, out: Path, copies: int, log=print) -> int:
    """Write ``copies`` shifted copies of ``source`` to ``out``; return the number of data lines written."""
    if copies < 1:
        raise ValueError("the number of copies must be at least 1")
    with gzip.open(source, "rt", encoding="latin-1", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    invoice, customer = header.index("InvoiceNo"), header.index("CustomerID")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    opener = gzip.open if out.name.endswith(".gz") else open
    started = time.perf_counter()
    with opener(partial, "wt", encoding="latin-1", newline="") as raw:
        writer = csv.writer(raw, lineterminator="\n")
        writer.writerow(header)
        for k in range(copies):
            for row in body:
                shifted = list(row)
                shifted[invoice] = _shift_invoice(row[invoice], k * INVOICE_STEP)
                shifted[customer] = _shift_customer(row[customer], k * CUSTOMER_STEP)
                writer.writerow(shifted)
            elapsed = time.perf_counter() - started
            log(f"  copy {k + 1}/{copies} written ({(k + 1) * len(body):,} lines, {elapsed:.0f} s)")
    partial.replace(out)
    return copies * len(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("copies", type=int, help="how many times the real file is repeated (10 for ×10)")
    parser.add_argument("--out", type=Path, required=True, help="output file (.csv or .csv.gz)")
    parser.add_argument("--source", type=Path, default=REAL_FILE, help=f"the real file (default {REAL_FILE})")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        parser.error(f"the real file is not at {args.source}")
    lines = write_scaled(args.source, args.out, args.copies)
    print(f"{args.out}: {lines:,} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
