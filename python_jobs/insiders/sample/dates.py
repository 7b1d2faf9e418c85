"""The sample's calendar: the data window, trading days with their seasonal weights, and times of day.

The shop trades Sunday to Friday, 7:00 to 20:59, and is closed on Saturdays and from 24 December to 3 January;
``Calendar`` draws seasonally weighted trading days and holds their ``M/D/YYYY`` text, ``random_minutes`` draws
times of day and ``MINUTE_TEXT`` holds their ``H:MM`` text.
"""

from __future__ import annotations

import calendar
import datetime as dt

import numpy as np

from insiders.errors import GenerateArgumentError

_MONTH_WEIGHT = (0.75, 0.70, 0.85, 0.80, 0.90, 0.90, 0.90, 0.85, 1.30, 1.55, 2.20, 1.60)
_WEEKDAY_WEIGHT = (1.0, 1.05, 1.0, 1.05, 0.85, 0.0, 0.70)  # Monday .. Sunday; closed on Saturdays
_HOUR_FIRST = 7
_HOUR_WEIGHT = (0.5, 9.0, 34.0, 49.0, 58.0, 79.0, 72.0, 67.0, 78.0, 55.0, 29.0, 8.0, 4.0, 1.0)  # 7:00 .. 20:59


def _add_months(day: dt.date, months: int) -> dt.date:
    year, month0 = divmod(day.month - 1 + months, 12)
    year += day.year
    return dt.date(year, month0 + 1, min(day.day, calendar.monthrange(year, month0 + 1)[1]))


def window(start: dt.date, months: int) -> tuple[dt.date, dt.date]:
    """First and last calendar day of the data window: ``months`` months from ``start``, the last one cut
    after its 9th day (2010-12-01 and 13 months give 2010-12-01 .. 2011-12-09)."""
    return start, _add_months(start, months - 1) + dt.timedelta(days=8)


class Calendar:
    """Trading days of the window with their seasonal weights."""

    def __init__(self, start: dt.date, months: int) -> None:
        first, last = window(start, months)
        n = (last - first).days + 1
        days = [first + dt.timedelta(days=i) for i in range(n)]
        closed = np.array([(d.month == 12 and d.day >= 24) or (d.month == 1 and d.day <= 3) for d in days])
        weight = (
            np.array([_MONTH_WEIGHT[d.month - 1] for d in days])
            * np.array([_WEEKDAY_WEIGHT[d.weekday()] for d in days])
            * ~closed
        )
        if not (weight > 0).any():
            raise GenerateArgumentError(f"the window {first} .. {last} has no trading day (closed days only)")
        self.n = n
        self.weight = weight
        self.cdf = np.cumsum(weight)
        idx = np.arange(n)
        is_open = weight > 0
        prev_open = np.maximum.accumulate(np.where(is_open, idx, -1))
        next_open = np.minimum.accumulate(np.where(is_open, idx, n)[::-1])[::-1]
        self.prev_open = np.where(prev_open < 0, next_open, prev_open)
        self.next_open = np.where(next_open >= n, prev_open, next_open)
        self.first_open = int(self.next_open[0])
        self.last_open = int(self.prev_open[-1])
        self.text = np.array([f"{d.month}/{d.day}/{d.year} ".encode() for d in days], dtype="S11")

    def snap_back(self, day: np.ndarray) -> np.ndarray:
        """The trading day on or before ``day`` (or the first trading day)."""
        return self.prev_open[np.clip(day, 0, self.n - 1)]

    def snap_forward(self, day: np.ndarray) -> np.ndarray:
        """The trading day on or after ``day`` (or the last trading day)."""
        return self.next_open[np.clip(day, 0, self.n - 1)]

    def sample(self, rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Seasonally weighted random trading days in ``[lo, hi]`` (trading days, inclusive)."""
        a = self.cdf[lo] - self.weight[lo]
        b = self.cdf[hi]
        day = np.searchsorted(self.cdf, a + rng.random(len(a)) * (b - a), side="left")
        return np.clip(day, lo, hi)

    def sample_all(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` seasonally weighted random trading days of the whole window."""
        lo = np.full(n, self.first_open)
        return self.sample(rng, lo, np.full(n, self.last_open))


def random_minutes(rng: np.random.Generator, n: int) -> np.ndarray:
    cdf = np.cumsum(_HOUR_WEIGHT) / sum(_HOUR_WEIGHT)
    hour = _HOUR_FIRST + np.searchsorted(cdf, rng.random(n), side="right")
    return hour * 60 + rng.integers(0, 60, n)


MINUTE_TEXT = np.array([f"{m // 60}:{m % 60:02d}".encode() for m in range(1440)], dtype="S5")
