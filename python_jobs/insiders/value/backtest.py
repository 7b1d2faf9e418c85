"""``insiders value backtest``: fit as of a cut-off day, predict the next horizon, compare with what happened.

The data as of the cut-off day come from the project's own dbt models, built with ``as_of_date`` = the cut-off
day in a scratch schema (``<schema>_value_backtest``, dropped afterwards): nothing after the cut-off reaches the
fit. What happened comes from ``int_sales__cleaned`` (the same valid purchase lines): each customer's gross
revenue in the horizon after the cut-off.

Compared with two naive baselines: each customer repeats the revenue of the horizon before the cut-off
(``last_horizon``), and each customer gets the mean last-horizon revenue of their segment (``segment_mean``).
Segments as of the cut-off day: the pinned segmentation model applied to the cut-off features, or, when none is
pinned, a segmentation model trained on them. Reported: per-customer mean absolute error, total and per-segment
revenue error, and the calibration of P(alive) (by band: mean P(alive) vs the share who bought again).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pandas as pd

from insiders.dbt_session import DbtSession
from insiders.errors import InsidersError
from insiders.value.model import DEFAULT_SEED, FitResult, check_horizon, fit
from insiders.warehouse import Target, connect, load_target, target_in_schema, validate_identifier

SCRATCH_SUFFIX = "value_backtest"
METHODS = ("model", "last_horizon", "segment_mean")
METHOD_LABELS = {
    "model": "BG/NBD + Gamma-Gamma",
    "last_horizon": "last horizon repeated",
    "segment_mean": "segment mean of last horizon",
}
P_ALIVE_BANDS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0000001)


@dataclass
class BacktestResult:
    """Per-customer frame and the summary figures."""

    cutoff: dt.date
    horizon_days: int
    customers: pd.DataFrame
    fit: FitResult
    segment_source: str
    mae: dict[str, float] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)
    by_segment: pd.DataFrame = field(default_factory=pd.DataFrame)
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def actual_total(self) -> float:
        return float(self.customers["actual_revenue"].sum())

    def total_error(self, method: str) -> float:
        return self.totals[method] - self.actual_total

    def beats_baselines(self) -> bool:
        return all(
            self.mae["model"] < self.mae[b] and abs(self.total_error("model")) < abs(self.total_error(b))
            for b in ("last_horizon", "segment_mean")
        )


def evaluate(
    frame: pd.DataFrame, fitted: FitResult, cutoff: dt.date, horizon_days: int, segment_source: str
) -> BacktestResult:
    """The figures from a per-customer frame with ``actual_revenue``, ``previous_revenue``, ``segment_name``,
    ``bought_again`` and the inputs of the model."""
    predicted = fitted.model.predict(frame, horizon_days)
    customers = frame.merge(predicted, on="customer_id", validate="one_to_one")
    customers["pred_model"] = customers["expected_revenue"]
    customers["pred_last_horizon"] = customers["previous_revenue"]
    customers["pred_segment_mean"] = customers.groupby("segment_name")["previous_revenue"].transform("mean")
    result = BacktestResult(
        cutoff=cutoff, horizon_days=horizon_days, customers=customers, fit=fitted, segment_source=segment_source
    )
    actual = customers["actual_revenue"]
    for method in METHODS:
        pred = customers[f"pred_{method}"]
        result.mae[method] = float((pred - actual).abs().mean())
        result.totals[method] = float(pred.sum())
    grouped = customers.groupby("segment_name", sort=True)
    by_segment = grouped.agg(
        customers=("customer_id", "size"),
        actual=("actual_revenue", "sum"),
        **{method: (f"pred_{method}", "sum") for method in METHODS},
    ).reset_index()
    result.by_segment = by_segment
    bands = pd.cut(customers["p_alive"], P_ALIVE_BANDS, right=False, include_lowest=True)
    calibration = (
        customers.groupby(bands, observed=True)
        .agg(
            customers=("customer_id", "size"),
            mean_p_alive=("p_alive", "mean"),
            bought_again=("bought_again", "mean"),
            expected_purchases=("expected_purchases", "mean"),
            actual_purchases=("actual_purchases", "mean"),
        )
        .reset_index()
    )
    calibration["band"] = calibration["p_alive"].map(lambda i: f"{i.left:.1f}-{min(i.right, 1.0):.1f}")
    result.calibration = calibration.drop(columns="p_alive")
    return result


def to_text(result: BacktestResult, currency: str = "") -> str:
    """The figures as printed by the command."""
    actual = result.actual_total
    lines = [
        f"Backtest: fitted on data up to {result.cutoff} ({result.fit.method.upper()}, "
        f"{result.fit.seconds:.1f} s), predicting the {result.horizon_days} days after it for "
        f"{len(result.customers):,} customers; segments: {result.segment_source}.",
        f"Actual revenue of these customers in the horizon: {currency}{actual:,.0f}",
        "",
        f"{'method':<32}{'MAE per customer':>18}{'predicted total':>18}{'total error':>14}",
    ]
    for method in METHODS:
        err = result.total_error(method)
        share = err / actual if actual else float("nan")
        lines.append(
            f"{METHOD_LABELS[method]:<32}{result.mae[method]:>18,.2f}{result.totals[method]:>18,.0f}{share:>14.1%}"
        )
    lines += ["", "Per segment (revenue in the horizon; error of each method against actual):"]
    for row in result.by_segment.itertuples(index=False):
        errors = "  ".join(
            f"{m}: {getattr(row, m):,.0f} ({(getattr(row, m) - row.actual) / row.actual:+.1%})"
            if row.actual
            else f"{m}: {getattr(row, m):,.0f}"
            for m in METHODS
        )
        lines.append(f"  {row.segment_name} ({row.customers:,} customers): actual {row.actual:,.0f}; {errors}")
    lines += ["", "P(alive) calibration (band: customers, mean P(alive), share who bought again in the horizon):"]
    for row in result.calibration.itertuples(index=False):
        lines.append(
            f"  {row.band}: {row.customers:,}, {row.mean_p_alive:.2f}, {row.bought_again:.2f} "
            f"(purchases expected {row.expected_purchases:.2f}, actual {row.actual_purchases:.2f})"
        )
    verdict = "beats" if result.beats_baselines() else "does NOT beat"
    lines += ["", f"Verdict: the model {verdict} both baselines on per-customer MAE and total revenue error."]
    return "\n".join(lines)


def plot_svg(result: BacktestResult) -> str:
    """Per segment, actual and predicted revenue of each method (grouped horizontal bars), as standalone SVG."""
    from insiders.report.charts import Svg

    colours = {"actual": "#333333", "model": "#1b7837", "last_horizon": "#b2182b", "segment_mean": "#2166ac"}
    series = ("actual", *METHODS)
    rows = result.by_segment
    label_w, bar_h, group_gap, width = 170, 12, 14, 720
    top = 48
    height = top + len(rows) * (bar_h * len(series) + group_gap) + 10
    title = f"Backtest: revenue in the {result.horizon_days} days after {result.cutoff}, per segment"
    desc = "Actual revenue and the revenue predicted by the model and by the two naive baselines, per segment."
    svg = Svg("value-backtest", width, height, title, desc)
    svg.add("<style>text{font:12px sans-serif}</style>")
    svg.text(8, 16, title)
    x = 8
    for name in series:
        svg.rect(x, 26, 10, 10, colours[name])
        label = "actual" if name == "actual" else METHOD_LABELS[name]
        svg.text(x + 14, 35, label)
        x += 24 + 7 * len(label)
    top_value = max(float(rows[list(series)].to_numpy().max()), 1.0) if len(rows) else 1.0
    scale = (width - label_w - 90) / top_value
    for i, row in enumerate(rows.itertuples(index=False)):
        y0 = top + i * (bar_h * len(series) + group_gap)
        svg.text(label_w - 8, y0 + bar_h * len(series) / 2 + 4, str(row.segment_name), anchor="end")
        for j, name in enumerate(series):
            value = float(getattr(row, name))
            y = y0 + j * bar_h
            svg.rect(label_w, y, value * scale, bar_h - 2, colours[name], tip=f"{name}: {value:,.0f}")
            svg.text(label_w + value * scale + 4, y + bar_h - 3, f"{value:,.0f}")
    svg.line(label_w, top - 4, label_w, height - 4)
    return svg.render().replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1) + "\n"


# ------------------------------------------------------------------------------------------ the warehouse part


@contextlib.contextmanager
def scratch_target(target: Target) -> Iterator[Target]:
    """Point this process (and dbt in it) at ``<schema>_value_backtest``; drop it afterwards."""
    schema = validate_identifier(f"{target.schema}_{SCRATCH_SUFFIX}", "backtest schema")
    with target_in_schema(target, schema) as scratch:
        try:
            yield scratch
        finally:
            with connect(scratch) as wh:
                wh.execute(f"drop schema if exists {schema} cascade")


def _segments(features: pd.DataFrame, notice: Callable[[str], None]) -> tuple[pd.Series, str]:
    """Segment names of the cut-off customers: the pinned model, else one trained on the cut-off features."""
    from insiders.registry import load_pinned, read_pin

    if read_pin(required=False) is not None:
        loaded = load_pinned()
        out = loaded.model.predict(features)
        return out.set_index("customer_id")["segment_name"], f"pinned model {loaded.manifest['model_version']}"
    from insiders.model import ModelConfig, fit_model

    notice("notice: no segmentation model is pinned; training one on the cut-off features for the baseline")
    trained = fit_model(features, ModelConfig())
    out = trained.model.predict(features)
    return out.set_index("customer_id")["segment_name"], "a model trained on the cut-off features"


def run_backtest(
    target_name: str | None,
    cutoff_days: int = 90,
    horizon_days: int | None = None,
    method: str = "map",
    seed: int = DEFAULT_SEED,
    notice: Callable[[str], None] = print,
) -> BacktestResult:
    """Build the data as of the cut-off day aside, fit, predict and compare (see the module docstring)."""
    if int(cutoff_days) != cutoff_days or cutoff_days <= 0:
        raise InsidersError(f"--cutoff-days must be a positive whole number of days, got {cutoff_days!r}")
    horizon = int(check_horizon(horizon_days if horizon_days is not None else cutoff_days))
    if horizon > cutoff_days:
        raise InsidersError(
            f"the horizon ({horizon} days) is longer than what follows the cut-off ({cutoff_days} days): "
            "what happened cannot be compared for the whole horizon"
        )
    from insiders.training import read_features
    from insiders.value.training import read_inputs

    target = load_target(target_name)
    with scratch_target(target) as scratch:
        DbtSession(scratch, None).run(
            ["build", "--select", "+int_sales__cleaned", "--resource-type", "seed", "--resource-type", "model"]
        )
        with connect(scratch) as wh:
            last = wh.query(f"select max(invoice_day) from {scratch.schema}.int_sales__cleaned")[0][0]
        if last is None:
            raise InsidersError("no valid sales: load data first")
        last = pd.Timestamp(last).date()
        cutoff = last - dt.timedelta(days=int(cutoff_days))
        notice(f"last day {last}; cut-off {cutoff}; horizon {horizon} days")
        DbtSession(scratch, f"{{as_of_date: '{cutoff}'}}").run(
            ["run", "--select", "+customer_features +customer_value_inputs"]
        )
        with connect(scratch) as wh:
            inputs, _ = read_inputs(wh, scratch.schema)
            features, _ = read_features(wh, scratch.schema)
            start, end = cutoff - dt.timedelta(days=horizon), cutoff + dt.timedelta(days=horizon)
            outcome = wh.query_df(_outcome_sql(scratch.schema), [str(d) for d in (start, end, cutoff, cutoff, cutoff)])
    fitted = fit(inputs, method=method, seed=seed, notice=notice)
    segments, source = _segments(features, notice)
    outcome["customer_id"] = outcome["customer_id"].astype("int64")
    frame = inputs.merge(outcome, on="customer_id", how="left")
    for column in ("actual_revenue", "previous_revenue", "actual_purchases"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float).fillna(0.0)
    frame["bought_again"] = (frame["actual_purchases"] > 0).astype(float)
    frame["segment_name"] = frame["customer_id"].map(segments).fillna("Unsegmented")
    return evaluate(frame, fitted, cutoff, horizon, source)


def _outcome_sql(schema: str) -> str:
    """Per customer: gross revenue and purchase days in (cut-off, end], and revenue in (start, cut-off].

    Parameters: start, end, cut-off, cut-off, cut-off (days as text). A purchase is a day with purchase lines, as
    in customer_value_inputs.
    """
    return f"""
        with purchase_days as (
            select customer_id, invoice_day, sum(line_revenue) as spend
            from {schema}.int_sales__cleaned
            where
                not is_anonymous
                and not is_return
                and invoice_day > cast(%s as date)
                and invoice_day <= cast(%s as date)
            group by customer_id, invoice_day
        )
        select
            customer_id,
            sum(case when invoice_day > cast(%s as date) then spend else 0 end) as actual_revenue,
            sum(case when invoice_day > cast(%s as date) then 1 else 0 end) as actual_purchases,
            sum(case when invoice_day <= cast(%s as date) then spend else 0 end) as previous_revenue
        from purchase_days
        group by customer_id
    """
