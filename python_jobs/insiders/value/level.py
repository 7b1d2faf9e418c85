"""The level factor: how far the model's expected total was from what happened, measured before the reference day.

BG/NBD and Gamma-Gamma assume that each customer's purchase rate and spend do not change with the calendar; a
business with seasons, or a trend, breaks that, and the model's total is then off by a level that no customer's
history shows. The factor measures that level where the outcome is already known, strictly before the reference
day D (the reference day of the training data, or the backtest's cut-off), for a horizon of H days:

1. the model is fitted on the data as of D − H (the project's dbt models built with ``as_of_date`` = D − H in a
   scratch schema, :mod:`insiders.value.asof`);
2. it predicts the H days up to D for the customers who had bought by D − H;
3. the factor is what those customers actually brought in those days divided by what was predicted: revenue
   (``revenue``: the figure the model is judged on) or purchases (``purchases``), bounded to
   [0.5, 2].

The model fitted on all the data up to D is then stored with the factor, and multiplies its expected purchases
(hence its expected revenue) by it; spend per purchase and P(alive) are unchanged. Everything used is on or
before D, so a backtest that measures the factor with its own cut-off as D sees nothing after the cut-off.

Why bounded: the factor is one ratio from one window; it is meant to correct a level (a season, a trend) that
moves a quarter's revenue by tens of percent, not by multiples. A ratio beyond ×2 or below ×½ says more about
the window (a gap in the loaded history, a one-off order, a fit on too short a history) than about the next
horizon, and multiplying every prediction by it would pass that on; so it is bounded, and the card says when.
When the history before D − H is too short to fit, there is no factor (1), and the card says why.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from insiders.errors import InsidersError
from insiders.value.model import DEFAULT_SEED, ValueInputError, ValueModel, check_horizon, fit
from insiders.warehouse import Target

LEVEL_KINDS = ("revenue", "purchases", "none")
#: the default measure of the factor, for training and the backtest alike
DEFAULT_LEVEL = "none"
LEVEL_BOUNDS = (0.5, 2.0)
SCRATCH_SUFFIX = "value_level"


@dataclass(frozen=True)
class Level:
    """A level factor and how it was measured (``kind`` ``none``: no factor, 1)."""

    kind: str
    factor: float = 1.0
    measured: float | None = None
    reference_day: dt.date | None = None
    horizon_days: int | None = None
    customers: int = 0
    predicted_revenue: float = 0.0
    actual_revenue: float = 0.0
    predicted_purchases: float = 0.0
    actual_purchases: float = 0.0
    note: str = ""

    @property
    def window(self) -> tuple[dt.date, dt.date] | None:
        """The days (start, end] whose outcome was compared: (D − H, D]."""
        if self.reference_day is None or self.horizon_days is None:
            return None
        return self.reference_day - dt.timedelta(days=self.horizon_days), self.reference_day

    @property
    def bounded(self) -> bool:
        return self.measured is not None and self.measured != self.factor

    def as_manifest(self) -> dict[str, Any]:
        """What the manifest records."""
        out: dict[str, Any] = {"kind": self.kind, "factor": self.factor}
        if self.kind == "none":
            if self.note:
                out["note"] = self.note
            return out
        window = self.window
        return {
            **out,
            "measured": self.measured,
            "bounds": list(LEVEL_BOUNDS),
            "reference_day": str(self.reference_day),
            "horizon_days": self.horizon_days,
            "fitted_as_of": str(window[0]) if window else None,
            "customers": self.customers,
            "predicted_revenue": self.predicted_revenue,
            "actual_revenue": self.actual_revenue,
            "predicted_purchases": self.predicted_purchases,
            "actual_purchases": self.actual_purchases,
        }

    def describe(self) -> str:
        """One sentence for the card and the backtest."""
        if self.kind == "none":
            return "No level factor (1)" + (f": {self.note}." if self.note else ".")
        start, end = self.window or (None, None)
        what = "revenue" if self.kind == "revenue" else "purchases"
        predicted, actual = (
            (self.predicted_revenue, self.actual_revenue)
            if self.kind == "revenue"
            else (self.predicted_purchases, self.actual_purchases)
        )
        text = (
            f"Level factor {self.factor:.4f} ({what}): fitted on the data as of {start}, the model expected "
            f"{predicted:,.0f} {'in revenue' if self.kind == 'revenue' else 'purchases'} from the {self.customers:,} "
            f"customers known then over the {self.horizon_days} days to {end}; they brought {actual:,.0f} "
            f"(ratio {self.measured:.4f}"
        )
        if self.bounded:
            text += f", bounded to [{LEVEL_BOUNDS[0]:g}, {LEVEL_BOUNDS[1]:g}]"
        return text + ")."


NO_LEVEL = Level("none")


def check_level_kind(kind: str) -> str:
    if kind not in LEVEL_KINDS:
        raise InsidersError(f"the level factor must be one of {', '.join(LEVEL_KINDS)}, got {kind!r}")
    return kind


def level_from(
    model: ValueModel,
    inputs: pd.DataFrame,
    outcome: pd.DataFrame,
    kind: str,
    reference_day: dt.date,
    horizon_days: int,
) -> Level:
    """The factor from a model fitted as of D − H, the inputs as of D − H and what those customers bought in
    (D − H, D] (``actual_revenue``, ``actual_purchases`` per customer; a customer absent bought nothing)."""
    check_level_kind(kind)
    if kind == "none":
        return NO_LEVEL
    horizon = int(check_horizon(horizon_days))
    predicted = model.with_level(1.0).predict(inputs, horizon)
    actual = predicted[["customer_id"]].merge(outcome, on="customer_id", how="left", validate="one_to_one")
    figures = {
        "predicted_revenue": float(predicted["expected_revenue"].sum()),
        "actual_revenue": float(actual["actual_revenue"].fillna(0.0).sum()),
        "predicted_purchases": float(predicted["expected_purchases"].sum()),
        "actual_purchases": float(actual["actual_purchases"].fillna(0.0).sum()),
    }
    denominator = figures[f"predicted_{kind}"]
    if not (math.isfinite(denominator) and denominator > 0):
        return Level("none", note=f"the model fitted as of {reference_day} expected no {kind} to compare with")
    measured = figures[f"actual_{kind}"] / denominator
    factor = min(max(measured, LEVEL_BOUNDS[0]), LEVEL_BOUNDS[1])
    return Level(
        kind=kind,
        factor=factor,
        measured=measured,
        reference_day=reference_day,
        horizon_days=horizon,
        customers=len(predicted),
        predicted_revenue=figures["predicted_revenue"],
        actual_revenue=figures["actual_revenue"],
        predicted_purchases=figures["predicted_purchases"],
        actual_purchases=figures["actual_purchases"],
    )


def measure_level_in(
    scratch: Target,
    reference_day: dt.date,
    horizon_days: int,
    kind: str = DEFAULT_LEVEL,
    method: str = "map",
    seed: int = DEFAULT_SEED,
    notice: Callable[[str], None] = print,
) -> Level:
    """The factor for ``reference_day``, in a scratch target whose cleaned sales are built (:func:`build_sales`).

    Rebuilds the scratch's customer_value_inputs as of D − H, fits on them and compares with (D − H, D]. A history
    before D − H too short to fit gives no factor, with the reason.
    """
    from insiders.value.asof import build_as_of, read_outcome
    from insiders.value.training import read_inputs
    from insiders.warehouse import connect

    check_level_kind(kind)
    if kind == "none":
        return NO_LEVEL
    horizon = int(check_horizon(horizon_days))
    start = reference_day - dt.timedelta(days=horizon)
    notice(f"level factor: fitting as of {start} to compare with the {horizon} days to {reference_day}")
    build_as_of(scratch, start)
    with connect(scratch) as wh:
        try:
            inputs, _ = read_inputs(wh, scratch.schema)
        except InsidersError as exc:
            return Level("none", note=f"no data as of {start} to measure it ({exc})")
        outcome = read_outcome(wh, scratch.schema, start, start, reference_day)
    try:
        fitted = fit(inputs, method=method, seed=seed, notice=notice)
    except ValueInputError as exc:
        return Level("none", note=f"the history up to {start} is too short to measure it: {exc}")
    return level_from(fitted.model, inputs, outcome, kind, reference_day, horizon)


def measure_level(
    target: Target,
    reference_day: dt.date,
    horizon_days: int,
    kind: str = DEFAULT_LEVEL,
    method: str = "map",
    seed: int = DEFAULT_SEED,
    notice: Callable[[str], None] = print,
) -> Level:
    """The factor for the training data's reference day, in a scratch schema ``<schema>_value_level``."""
    from insiders.value.asof import build_sales, scratch_target

    check_level_kind(kind)
    if kind == "none":
        return NO_LEVEL
    with scratch_target(target, SCRATCH_SUFFIX) as scratch:
        build_sales(scratch)
        return measure_level_in(scratch, reference_day, horizon_days, kind, method, seed, notice)
