"""The entry point of the sample generator: ``generate_sample`` checks its arguments, builds the calendar,
catalogue, customers and invoice plan, writes the data file chunk by chunk (a second thread writes and
compresses while the next chunk is built) and the truth file beside it, both through temporary files renamed at
the end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insiders.errors import GenerateArgumentError
from insiders.sample.catalogue import build_catalogue
from insiders.sample.dates import Calendar, window
from insiders.sample.plan import Customers, build_plan, draw_customers
from insiders.sample.segments import SEGMENTS
from insiders.sample.writer import HEADER, Formatter, open_output

TRUTH_SUFFIX = ".truth.csv"

_CHUNK_LINES = 100_000  # lines are drawn per chunk: changing this changes the data of a seed


@dataclass(frozen=True)
class GenerateResult:
    """What ``generate_sample`` wrote."""

    path: Path
    truth_path: Path
    lines: int
    customers: int
    invoices: int
    segments: dict[str, int]
    first_day: dt.date
    last_day: dt.date
    size_bytes: int = 0
    seed: int = 0
    months: int = 0


def truth_path_for(out: str | Path) -> Path:
    """The truth file of a data file: its full name followed by ``.truth.csv`` (``x.csv.gz.truth.csv``)."""
    out = Path(out)
    return out.with_name(out.name + TRUTH_SUFFIX)


def _lines_per_customer(months: int) -> float:
    # Measured: about 0.275 lines per customer per day of window plus a base of 12, at least 42 (short windows
    # are dominated by the minimum invoice counts of the small segments).
    first, last = window(dt.date(2010, 12, 1), months)
    return max(42.0, 12.0 + 0.275 * ((last - first).days + 1))


def estimate_lines(customers: int, months: int = 13) -> int:
    """About how many data lines ``customers`` customers give over ``months`` months (within about 10 %)."""
    return round(customers * _lines_per_customer(months))


def estimate_customers(lines: int, months: int = 13) -> int:
    """Customers that give about ``lines`` data lines over ``months`` months (for sizing benchmarks)."""
    return max(1, round(lines / _lines_per_customer(months)))


def _check_target(path: Path) -> None:
    parent = path.parent
    if not path.name:
        raise GenerateArgumentError(f"output path {str(path)!r} has no file name")
    if not parent.is_dir():
        raise GenerateArgumentError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GenerateArgumentError(f"cannot write {path}: directory {parent} is not writable")
    for target in (path, truth_path_for(path)):
        if target.is_dir():
            raise GenerateArgumentError(f"cannot write {target}: it is a directory")


def generate_sample(
    out: str | Path,
    customers: int = 4000,
    months: int = 13,
    seed: int = 42,
    start: dt.date = dt.date(2010, 12, 1),
    progress: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Write a synthetic Online Retail file to ``out`` and its truth file beside it.

    ``out`` gets gzip compression when its name ends in ``.gz``. The truth file is ``out`` with ``.truth.csv``
    appended (``x.csv.gz`` -> ``x.csv.gz.truth.csv``): ``customer_id,segment`` for every customer in the data.
    The same arguments give the same bytes; another ``seed`` gives other data. ``progress``, if given, is
    called after each chunk with the number of data lines produced so far (the last call equals ``lines``).

    Both files are written to temporary files in the target directory and renamed at the end, so a failure
    leaves no partial file. Bad arguments raise ``GenerateArgumentError`` (an ``InputFileError`` and a
    ``ValueError``).
    """
    for name, value in (("customers", customers), ("months", months), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise GenerateArgumentError(f"{name} must be an integer, got {value!r}")
    if customers < 1:
        raise GenerateArgumentError(f"customers must be at least 1, got {customers}")
    if months < 1:
        raise GenerateArgumentError(f"months must be at least 1, got {months}")
    if months > 1200:
        raise GenerateArgumentError(f"months must be at most 1200, got {months}")
    if seed < 0:
        raise GenerateArgumentError(f"seed must be zero or positive, got {seed}")
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise GenerateArgumentError(f"start must be a date, got {start!r}")
    path = Path(out)
    _check_target(path)
    truth = truth_path_for(path)

    seeds = np.random.SeedSequence([int(seed), 20101201])
    catalogue_seed, customer_seed, plan_seed, line_seed = seeds.spawn(4)
    cal = Calendar(start, months)
    cat = build_catalogue(np.random.default_rng(catalogue_seed))
    cust = draw_customers(np.random.default_rng(customer_seed), int(customers))
    plan = build_plan(np.random.default_rng(plan_seed), cal, cust, cat)
    number_digits = len(str(int(plan["number"][-1])))
    formatter = Formatter(cat, cal, cust, number_digits)

    bounds = _chunk_bounds(plan["lines"])
    line_seeds = line_seed.spawn(len(bounds) - 1)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp_truth = truth.with_name(f".{truth.name}.{os.getpid()}.tmp")
    written = 0
    try:
        with open_output(tmp, path.name.endswith(".gz")) as write, ThreadPoolExecutor(1) as writer:
            pending: list[Future[int]] = [writer.submit(write, (HEADER + "\r\n").encode("latin-1"))]
            for i in range(len(bounds) - 1):
                chunk = {name: column[bounds[i] : bounds[i + 1]] for name, column in plan.items()}
                data, n = formatter.lines(np.random.default_rng(line_seeds[i]), chunk)
                pending.append(writer.submit(write, data))
                while len(pending) > 2:
                    pending.pop(0).result()
                written += n
                if progress is not None:
                    progress(written)
            for f in pending:
                f.result()
        _write_truth(tmp_truth, cust)
        os.replace(tmp, path)
        os.replace(tmp_truth, truth)
    except OSError as exc:
        _remove(tmp, tmp_truth)
        raise GenerateArgumentError(f"cannot write {path}: {exc}") from exc
    except BaseException:
        _remove(tmp, tmp_truth)
        raise
    first_day, last_day = window(start, months)
    names = [s.name for s in SEGMENTS]
    counts = np.bincount(cust.segment, minlength=len(names))
    return GenerateResult(
        path=path,
        truth_path=truth,
        lines=written,
        customers=len(cust.ids),
        invoices=len(plan["number"]),
        segments={name: int(c) for name, c in zip(names, counts, strict=True)},
        first_day=first_day,
        last_day=last_day,
        size_bytes=path.stat().st_size,
        seed=int(seed),
        months=int(months),
    )


def _chunk_bounds(lines: np.ndarray) -> list[int]:
    """Invoice indices that cut the plan into chunks of about ``_CHUNK_LINES`` lines."""
    cum = np.cumsum(lines)
    total = int(cum[-1]) if len(cum) else 0
    cuts = np.searchsorted(cum, np.arange(_CHUNK_LINES, total, _CHUNK_LINES), side="left") + 1
    return [0, *sorted(set(int(c) for c in cuts if 0 < c < len(lines))), len(lines)]


def _write_truth(path: Path, cust: Customers) -> None:
    names = np.array([s.name for s in SEGMENTS])
    order = np.argsort(cust.ids, kind="stable")
    rows = [f"{i},{s}\n" for i, s in zip(cust.ids[order].tolist(), names[cust.segment[order]].tolist(), strict=True)]
    with open(path, "w", encoding="ascii", newline="") as fh:
        fh.write("customer_id,segment\n")
        fh.writelines(rows)


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
