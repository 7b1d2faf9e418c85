"""``insiders report``: one self-contained HTML file that answers the business questions from the marts.

The file needs nothing but a browser to read: inline CSS, charts drawn here as inline SVG, no script, no font or
image fetched from anywhere. Sections:

* the answers to questions 1 to 5 in plain words (how many Insiders, what sets them apart, their share of
  revenue, where the list is, who entered and left). A trait sets them apart when their mean is at least
  :data:`DISTINCT_MARGIN` (25 %) above or below everyone's; how often they buy is said in invoices per month and
  days between purchases, not in the study's invoices per day. Amounts carry their currency (GBP unless
  ``--currency`` or ``INSIDERS_CURRENCY`` says otherwise). Features added to customer_features after this
  module was written are shown under their column name;
* segment sizes and revenue share (bar charts) and the profile table;
* the customers in the model's clustering space, coloured by segment (a deterministic sample);
* monthly revenue by segment (stacked bars);
* Insiders entering and leaving per scoring run, and the latest lists.

Everything comes from the marts of the latest scoring run, except the 2-D picture, which needs the model and the
customer features (the pinned model unless one is given). The same data gives the same bytes: nothing in the
file depends on the clock, the machine or the order the warehouse returns rows in.
"""

from __future__ import annotations

import html
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from insiders.formatting import (
    CURRENCY_SYMBOLS,
    DEFAULT_CURRENCY,
    fmt_auto,
    fmt_day,
    fmt_int,
    fmt_money,
    fmt_num,
    fmt_pct,
    fmt_ratio,
    fmt_time,
    is_missing,
    resolve_currency,
)
from insiders.marts import ReportFigures, everyone_means, insider_profile, marts_schema, read_report_figures
from insiders.model import SegmentModel
from insiders.traits import (
    DISTINCT_MARGIN,
    TRAITS,
    added_features,
    characterise,
    distinctive,
)
from insiders.warehouse import Warehouse

DEFAULT_TITLE = "Insiders: customer segmentation report"
#: Insider ids listed at the top of the report (the whole list is the ``insiders`` mart).
FIRST_INSIDERS = 50
#: Customers listed per direction (entered / left) for the latest run.
CHANGES_LISTED = 50
#: Points drawn at most in the 2-D picture.
MAX_SCATTER_POINTS = 5000
#: Runs shown in the entered/left chart and table (the latest ones).
MAX_RUNS = 24

# Segment colours by rank (rank 1, Insiders, first): distinguishable for the common colour-vision deficiencies
# (the Okabe-Ito set, then Paul Tol's muted set for models with many segments).
PALETTE = (
    "#d55e00",
    "#0072b2",
    "#009e73",
    "#e69f00",
    "#56b4e9",
    "#cc79a7",
    "#882255",
    "#117733",
    "#999933",
    "#332288",
    "#44aa99",
    "#aa4499",
)
#: Colours of the revenue buckets that are not segments (see segment_monthly_revenue).
BUCKET_COLOURS = {"Anonymous": "#9a9a9a", "Unsegmented": "#d0d0d0"}
ENTERED_COLOUR = "#1b7837"
LEFT_COLOUR = "#b2182b"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def segment_colour(rank: int) -> str:
    """The colour of a segment in every chart of the report."""
    return PALETTE[(int(rank) - 1) % len(PALETTE)]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _n(x: float) -> str:
    """A coordinate in SVG: one decimal, no trailing zeros, no negative zero."""
    text = f"{x:.1f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


# ------------------------------------------------------------------------------------------------------------- SVG


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


class _Svg:
    """A small SVG writer: every chart is an accessible image with a title and a description."""

    def __init__(self, chart_id: str, width: int, height: int, title: str, desc: str, cls: str = ""):
        self.chart_id = chart_id
        self.width = width
        self.height = height
        self.parts: list[str] = [
            f'<svg class="{" ".join(["chart", cls]).strip()}" id="{_e(chart_id)}" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-labelledby="{_e(chart_id)}-title {_e(chart_id)}-desc" '
            'preserveAspectRatio="xMinYMin meet" font-family="inherit">',
            f'<title id="{_e(chart_id)}-title">{_e(title)}</title>',
            f'<desc id="{_e(chart_id)}-desc">{_e(desc)}</desc>',
        ]

    def add(self, part: str) -> None:
        self.parts.append(part)

    def text(self, x: float, y: float, content: str, anchor: str = "start", cls: str = "", extra: str = "") -> None:
        klass = f' class="{cls}"' if cls else ""
        self.parts.append(f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"{klass}{extra}>{_e(content)}</text>')

    def rect(self, x: float, y: float, w: float, h: float, fill: str, tip: str | None = None, cls: str = "") -> None:
        klass = f' class="{cls}"' if cls else ""
        body = (
            f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(max(w, 0.0))}" height="{_n(max(h, 0.0))}" fill="{fill}"{klass}'
        )
        self.parts.append(f"{body}><title>{_e(tip)}</title></rect>" if tip else f"{body}/>")

    def line(self, x1: float, y1: float, x2: float, y2: float, cls: str = "axis") -> None:
        self.parts.append(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" class="{cls}"/>')

    def render(self) -> str:
        return "\n".join([*self.parts, "</svg>"])


def _hbar_chart(
    chart_id: str,
    title: str,
    desc: str,
    rows: Sequence[tuple[str, float, str, str]],
    *,
    width: int = 540,
    max_value: float | None = None,
) -> str:
    """Horizontal bars: ``rows`` of (label, value, value text, colour)."""
    label_w, value_w, bar_h, gap, top = 160, 100, 24, 9, 6
    height = top + len(rows) * (bar_h + gap) + 4
    svg = _Svg(chart_id, width, height, title, desc, cls="bars")
    area = width - label_w - value_w
    top_value = max_value if max_value else max([v for _, v, _, _ in rows] + [0.0])
    scale = area / top_value if top_value > 0 else 0.0
    for i, (label, value, text, colour) in enumerate(rows):
        y = top + i * (bar_h + gap)
        svg.text(label_w - 8, y + bar_h / 2 + 5, label, anchor="end", cls="label")
        w = max(float(value), 0.0) * scale
        svg.rect(label_w, y, w, bar_h, colour, tip=f"{label}: {text}", cls="bar")
        svg.text(label_w + w + 6, y + bar_h / 2 + 5, text, cls="value")
    svg.line(label_w, top - 4, label_w, height - 2)
    return svg.render()


def _month_label(ts: pd.Timestamp, with_year: bool) -> str:
    return f"{_MONTHS[ts.month - 1]} {ts.year}" if with_year else _MONTHS[ts.month - 1]


def _monthly_chart(monthly: pd.DataFrame, order: Sequence[tuple[str, str]], currency: str = DEFAULT_CURRENCY) -> str:
    """Stacked bars of gross revenue per month; ``order`` is (series name, colour), bottom first."""
    months = pd.to_datetime(monthly["revenue_month"]).dt.to_period("M")
    full = pd.period_range(months.min(), months.max(), freq="M")
    table = (
        monthly.assign(month=months)
        .pivot_table(index="month", columns="segment_name", values="gross_revenue", aggfunc="sum")
        .reindex(full)
        .fillna(0.0)
    )
    names = [name for name, _ in order if name in table.columns]
    colours = dict(order)
    totals = table[names].clip(lower=0).sum(axis=1)
    width, height = 1040, 380
    left, right, top, bottom = 78, 16, 14, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    ticks = _nice_ticks(0.0, float(totals.max()) if len(totals) else 1.0)
    y_max = ticks[-1] if ticks[-1] > 0 else 1.0
    n = len(full)
    first, last = full[0], full[-1]
    svg = _Svg(
        "chart-monthly",
        width,
        height,
        "Monthly revenue by segment",
        f"Stacked bars, one per month from {first.strftime('%Y-%m')} to {last.strftime('%Y-%m')}: gross revenue "
        f"in {currency} (purchases, before returns) of each segment's customers, anonymous lines and unsegmented "
        "customers. The same figures are in the table below the chart.",
    )
    for t in ticks:
        y = top + plot_h - t / y_max * plot_h
        svg.line(left, y, left + plot_w, y, cls="grid")
        svg.text(left - 6, y + 4, _tick_label(t), anchor="end", cls="tick")
    slot = plot_w / max(n, 1)
    bar_w = min(slot * 0.72, 60)
    label_every = max(1, math.ceil(n / 16))
    for i, period in enumerate(full):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for name in names:
            value = max(float(table.at[period, name]), 0.0)
            h = value / y_max * plot_h
            if h > 0:
                svg.rect(
                    x,
                    y - h,
                    bar_w,
                    h,
                    colours[name],
                    tip=f"{period.strftime('%Y-%m')}, {name}: {fmt_money(value, currency)}",
                )
                y -= h
        if i % label_every == 0:
            ts = period.to_timestamp()
            with_year = i == 0 or ts.month == 1 or label_every > 1
            svg.text(
                left + i * slot + slot / 2, top + plot_h + 16, _month_label(ts, False), anchor="middle", cls="tick"
            )
            if with_year:
                svg.text(left + i * slot + slot / 2, top + plot_h + 30, str(ts.year), anchor="middle", cls="tick")
    svg.line(left, top + plot_h, left + plot_w, top + plot_h)
    svg.line(left, top, left, top + plot_h)
    svg.add(
        f'<text x="14" y="{_n(top + plot_h / 2)}" text-anchor="middle" class="axis-title" '
        f'transform="rotate(-90 14 {_n(top + plot_h / 2)})">Gross revenue</text>'
    )
    return svg.render()


def _legend_html(items: Iterable[tuple[str, str]]) -> str:
    entries = "".join(
        f'<li><span class="swatch" style="background:{c}" aria-hidden="true"></span>{_e(name)}</li>'
        for name, c in items
    )
    return f'<ul class="legend">{entries}</ul>'


def _sample_rows(customer_ids: np.ndarray, limit: int) -> np.ndarray:
    """Row positions of at most ``limit`` customers, chosen by a fixed hash of the customer id: the same customers
    every time, whatever the order of the rows, and each customer has the same chance."""
    ids = np.asarray(customer_ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = ids * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(31)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
    order = np.lexsort((ids, h))
    return np.sort(order[:limit]) if len(order) > limit else np.arange(len(ids))


@dataclass
class _Scatter:
    svg: str
    points: int
    customers: int
    names: list[str]


def _scatter(model: SegmentModel, features: pd.DataFrame, counts: dict[int, int]) -> _Scatter:
    """The customers in the model's clustering space (its first two principal axes), coloured by segment."""
    features = features.sort_values("customer_id", kind="stable").reset_index(drop=True)
    rows = _sample_rows(features["customer_id"].to_numpy(), MAX_SCATTER_POINTS)
    sample = features.iloc[rows].reset_index(drop=True)
    xy = np.asarray(model.embed_2d(sample), dtype=float)
    ranks = model.predict(sample)["segment_rank"].to_numpy(dtype=int)
    segments = model.segments()
    names = {int(r): str(n) for r, n in zip(segments["segment_rank"], segments["segment_name"], strict=True)}

    width, height = 1040, 560
    left, top, plot_w, plot_h = 62, 14, 700, 490
    legend_x = left + plot_w + 28
    (x_lo, y_lo), (x_hi, y_hi) = xy.min(axis=0), xy.max(axis=0)
    x_ticks, y_ticks = _nice_ticks(float(x_lo), float(x_hi)), _nice_ticks(float(y_lo), float(y_hi))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * plot_w

    def py(v: float) -> float:
        return top + plot_h - (v - y0) / (y1 - y0) * plot_h

    shown = (
        f"all {len(sample):,} customers"
        if len(sample) == len(features)
        else (
            f"a sample of {len(sample):,} of the {len(features):,} customers "
            "(drawn by customer id, the same every time)"
        )
    )
    svg = _Svg(
        "chart-space",
        width,
        height,
        "Customers in the model's clustering space, coloured by segment",
        f"Scatter plot of {shown} on the first two principal axes of the model's tree-embedded space; each dot is "
        "a customer, its colour the segment the model assigns. Segments: "
        + "; ".join(f"{names[r]} ({counts.get(r, 0):,} customers)" for r in sorted(names))
        + ".",
    )
    for t in x_ticks:
        svg.line(px(t), top, px(t), top + plot_h, cls="grid")
        svg.text(px(t), top + plot_h + 16, _tick_label(t), anchor="middle", cls="tick")
    for t in y_ticks:
        svg.line(left, py(t), left + plot_w, py(t), cls="grid")
        svg.text(left - 6, py(t) + 4, _tick_label(t), anchor="end", cls="tick")
    svg.add(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    svg.text(
        left + plot_w / 2, top + plot_h + 36, "first axis of the clustering space", anchor="middle", cls="axis-title"
    )
    svg.add(
        f'<text x="14" y="{_n(top + plot_h / 2)}" text-anchor="middle" class="axis-title" '
        f'transform="rotate(-90 14 {_n(top + plot_h / 2)})">second axis</text>'
    )
    # Big segments first, Insiders last (on top).
    for rank in sorted(names, reverse=True):
        mask = ranks == rank
        if not mask.any():
            continue
        radius = "3.4" if rank == 1 else "2.4"
        stroke = ' stroke="#ffffff" stroke-width="0.6"' if rank == 1 else ""
        svg.add(
            f'<g class="points" data-segment-rank="{rank}" fill="{segment_colour(rank)}" fill-opacity="0.8"{stroke}>'
            f"<title>{_e(names[rank])}: {int(mask.sum()):,} customers shown</title>"
        )
        svg.add("".join(f'<circle cx="{_n(px(x))}" cy="{_n(py(y))}" r="{radius}"/>' for x, y in xy[mask]))
        svg.add("</g>")
    svg.add('<g class="legend">')
    svg.text(legend_x, top + 12, "Segment (customers)", cls="legend-head")
    for i, rank in enumerate(sorted(names)):
        y = top + 34 + i * 24
        svg.rect(legend_x, y - 11, 14, 14, segment_colour(rank))
        svg.text(legend_x + 22, y, names[rank], cls="legend-name")
        svg.text(width - 8, y, fmt_int(counts.get(rank, 0)), anchor="end", cls="legend-count")
    svg.add("</g>")
    return _Scatter(
        svg=svg.render(), points=len(sample), customers=len(features), names=[names[r] for r in sorted(names)]
    )


def _runs_chart(runs: pd.DataFrame) -> str:
    """Per scoring run: customers who entered (up) and left (down) the Insiders."""
    width, height = 1040, 250
    left, right, top, bottom = 62, 16, 14, 38
    plot_w, plot_h = width - left - right, height - top - bottom
    high = max(int(runs["entered"].max()), int(runs["left"].max()), 1)
    ticks = _nice_ticks(0.0, float(high), 3)
    lim = ticks[-1]
    mid = top + plot_h / 2
    svg = _Svg(
        "chart-runs",
        width,
        height,
        "Insiders entering and leaving per scoring run",
        f"Bars per scoring run (the latest {len(runs)}): customers who entered the Insiders above the axis, "
        "customers who left below it. The same figures are in the table below the chart.",
    )
    for t in ticks:
        for sign in (1, -1) if t else (1,):
            y = mid - sign * t / lim * plot_h / 2
            svg.line(left, y, left + plot_w, y, cls="grid")
            svg.text(left - 6, y + 4, _tick_label(t), anchor="end", cls="tick")
    slot = plot_w / max(len(runs), 1)
    bar_w = min(slot * 0.6, 48)
    label_every = max(1, math.ceil(len(runs) / 24))
    for i, run in enumerate(runs.itertuples(index=False)):
        x = left + i * slot + (slot - bar_w) / 2
        up = int(run.entered) / lim * plot_h / 2
        down = int(run.left) / lim * plot_h / 2
        svg.rect(x, mid - up, bar_w, up, ENTERED_COLOUR, tip=f"run {run.run_number}: {int(run.entered):,} entered")
        svg.rect(x, mid, bar_w, down, LEFT_COLOUR, tip=f"run {run.run_number}: {int(run.left):,} left")
        if len(runs) <= MAX_RUNS:
            if int(run.entered):
                svg.text(x + bar_w / 2, mid - up - 4, fmt_int(run.entered), anchor="middle", cls="value")
            if int(run.left):
                svg.text(x + bar_w / 2, mid + down + 13, fmt_int(run.left), anchor="middle", cls="value")
        if i % label_every == 0:
            svg.text(left + i * slot + slot / 2, top + plot_h + 16, f"#{run.run_number}", anchor="middle", cls="tick")
    svg.line(left, mid, left + plot_w, mid)
    svg.text(left + plot_w / 2, top + plot_h + 32, "scoring run", anchor="middle", cls="axis-title")
    return svg.render()


# -------------------------------------------------------------------------------------------------------- the page

_CSS = """
:root { color-scheme: light; --ink: #1d2327; --muted: #58626b; --rule: #d9dee3; --band: #f4f6f8; --accent: #d55e00; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; background: #ffffff; color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 28px 30px 48px; }
header.top { border-bottom: 4px solid var(--accent); padding-bottom: 14px; margin-bottom: 22px; }
h1 { font-size: 28px; line-height: 1.2; margin: 0 0 12px; }
h2 { font-size: 21px; margin: 34px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--rule); }
h3 { font-size: 16px; margin: 20px 0 6px; }
p { margin: 6px 0 10px; }
.muted, figcaption, .note { color: var(--muted); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; font-size: 14px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.92em;
  background: var(--band); padding: 0 3px; border-radius: 3px; }
.answers { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin: 12px 0 16px; }
.kpi { background: var(--band); border-left: 4px solid var(--accent); padding: 10px 12px; }
.kpi .figure { display: block; font-size: 26px; font-weight: 700; line-height: 1.15;
  font-variant-numeric: tabular-nums; }
.kpi .label { display: block; font-size: 13px; color: var(--muted); }
ol.questions { padding-left: 22px; margin: 8px 0; }
ol.questions > li { margin: 0 0 10px; }
ol.questions strong { font-weight: 650; }
.ids { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace; font-size: 13px;
  overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 14px; font-size: 13.5px;
  font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0 6px; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--rule); vertical-align: top; }
thead th { background: var(--band); border-bottom: 2px solid #b9c1c9; text-align: left; font-size: 13px;
  line-height: 1.25; vertical-align: bottom; }
tbody th { text-align: left; font-weight: normal; white-space: nowrap; }
table.narrow { max-width: 780px; }
table.profiles { font-size: 13px; }
table.profiles th, table.profiles td { padding: 5px 6px; }
table.profiles tbody th { white-space: normal; min-width: 11.5em; }
td.num, th.num { text-align: right; }
td.num { white-space: nowrap; }
tbody tr.insiders { background: #fff3ea; }
.swatch { display: inline-block; width: 11px; height: 11px; margin-right: 6px; border-radius: 2px;
  vertical-align: -1px; }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 18px; padding: 0; margin: 4px 0 8px;
  font-size: 13.5px; }
figure { margin: 10px 0 18px; break-inside: avoid; page-break-inside: avoid; }
figcaption { font-size: 13.5px; margin-top: 4px; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg.chart text { font-size: 12px; fill: var(--ink); }
svg.chart.bars text { font-size: 13px; }
svg.chart .tick, svg.chart .legend-count { fill: var(--muted); font-variant-numeric: tabular-nums; }
svg.chart .value { font-variant-numeric: tabular-nums; }
svg.chart .axis-title { fill: var(--muted); font-size: 12px; }
svg.chart .legend-head { font-weight: 600; }
svg.chart .legend-name { font-size: 13px; }
svg.chart line.axis { stroke: #6b747c; stroke-width: 1; }
svg.chart line.grid { stroke: #e6e9ec; stroke-width: 1; }
svg.chart rect.frame { fill: none; stroke: #c3c9cf; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
.pair figure { margin: 0; }
.pair h3 { margin-top: 8px; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
.note { background: #fff8e1; border-left: 4px solid #e6a700; padding: 8px 12px; color: var(--ink); }
details { margin: 4px 0 14px; }
summary { cursor: default; color: var(--muted); font-size: 13.5px; }
footer { margin-top: 36px; font-size: 12.5px; color: var(--muted); border-top: 1px solid var(--rule);
  padding-top: 8px; }
@media (max-width: 900px) { .answers { grid-template-columns: 1fr 1fr; } .pair, .cols { grid-template-columns: 1fr; } }
@media print {
  @page { size: A4; margin: 14mm; }
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  table, .kpi, figure { break-inside: avoid; page-break-inside: avoid; }
  tr { break-inside: avoid; }
  details > summary { display: none; }
}
"""


def _table(
    caption: str,
    head: Sequence[tuple[str, bool]],
    rows: Iterable[Sequence[str]],
    row_classes: Sequence[str] = (),
    cls: str = "",
) -> str:
    """An HTML table; ``head`` is (column title, numeric?); cells arrive already escaped."""
    num_cls = ' class="num"'
    ths = "".join(f'<th scope="col"{num_cls if num else ""}>{_e(t)}</th>' for t, num in head)
    body = []
    for i, row in enumerate(rows):
        row_cls = f' class="{row_classes[i]}"' if i < len(row_classes) and row_classes[i] else ""
        cells = []
        for j, (cell, (_, num)) in enumerate(zip(row, head, strict=True)):
            tag = "th" if j == 0 else "td"
            scope = ' scope="row"' if j == 0 else ""
            cells.append(f"<{tag}{scope}{num_cls if num else ''}>{cell}</{tag}>")
        body.append(f"<tr{row_cls}>{''.join(cells)}</tr>")
    table_cls = f' class="{cls}"' if cls else ""
    return (
        f"<table{table_cls}><caption>{_e(caption)}</caption><thead><tr>{ths}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}" aria-hidden="true"></span>'


def _answers(data: ReportFigures, currency: str) -> str:
    s, every = data.summary, data.everyone
    insiders, customers = s.get("insiders"), s.get("customers")
    schema = data.schema
    n_insiders = 0 if is_missing(insiders) else int(insiders)
    kpis = [
        (fmt_int(insiders), "Insiders (customers eligible)"),
        (fmt_pct(s.get("insiders_share")), f"of the {fmt_int(customers)} segmented customers"),
        (fmt_pct(s.get("insiders_revenue_share")), "of revenue comes from Insiders"),
        (fmt_money(s.get("mean_gross_revenue"), currency), "mean spend of an Insider"),
    ]
    kpi_html = "".join(
        f'<div class="kpi"><span class="figure">{_e(f)}</span><span class="label">{_e(label)}</span></div>'
        for f, label in kpis
    )

    money = currency
    shown, not_shown = characterise(s, every, money)
    margin = f"{DISTINCT_MARGIN:.0%}"
    if not n_insiders:
        characterised = "There are no Insiders in this run, so there is nothing to characterise."
    elif shown:
        characterised = "Compared with all segmented customers, on average Insiders " + "; ".join(shown) + "."
        if not_shown:
            characterised += f" Not distinctive (within {margin} of everyone's): " + ", ".join(not_shown) + "."
    else:
        characterised = f"No trait sets the Insiders apart: every mean is within {margin} of everyone's."
    characterised = _e(characterised)

    def marked(mine: Any, all_: Any) -> str:
        return "yes" if distinctive(mine, all_) else "no"

    trait_rows = [
        [
            _e(t.label),
            _e(t.fmt(s.get(t.column), money)),
            _e(t.fmt(every.get(t.column), money)),
            _e(fmt_ratio(s.get(t.column), every.get(t.column))),
            _e(marked(s.get(t.column), every.get(t.column))),
        ]
        for t in TRAITS
    ]
    insider_row = insider_profile(data.profiles)
    for feature in added_features(data.profiles.columns):
        col = f"mean_{feature}"
        mine, all_ = insider_row.get(col), every.get(col)
        trait_rows.append(
            [_e(feature), _e(fmt_auto(mine)), _e(fmt_auto(all_)), _e(fmt_ratio(mine, all_)), _e(marked(mine, all_))]
        )
    trait_table = _table(
        f"Insiders compared with all segmented customers (means per customer; distinctive: at least {margin} "
        "above or below everyone's)",
        [
            ("Characteristic", False),
            ("Insiders", True),
            ("Everyone", True),
            ("Insiders ÷ everyone", True),
            ("Distinctive", False),
        ],
        trait_rows,
        cls="narrow",
    )
    ids = ", ".join(str(i) for i in data.first_insiders)
    more = n_insiders - len(data.first_insiders)
    ids_text = (
        f'<p class="ids" aria-label="First Insider customer ids">{_e(ids)}'
        + (f' <span class="muted">… and {_e(fmt_int(more))} more</span>' if more > 0 else "")
        + "</p>"
        if data.first_insiders
        else ""
    )
    if not data.first_insiders:
        first_words = "It is empty in this run."
    elif more > 0:
        first_words = f"The first {fmt_int(len(data.first_insiders))} by customer id:"
    else:
        first_words = "Their customer ids:"
    entered, left = s.get("entered_since_previous_run"), s.get("left_since_previous_run")
    return f"""
<section aria-labelledby="answers">
<h2 id="answers">The answers</h2>
<div class="answers">{kpi_html}</div>
<ol class="questions">
<li><strong>Who is eligible?</strong> The full, current list is the <code>insiders</code> mart
(<code>{_e(schema)}.insiders</code>): one row per Insider with their features and since when they are Insiders.
{_e(first_words)}{ids_text}</li>
<li><strong>How many?</strong> <strong>{_e(fmt_int(insiders))}</strong> of the {_e(fmt_int(customers))} segmented
customers are Insiders ({_e(fmt_pct(s.get("insiders_share")))}).</li>
<li><strong>What characterises them?</strong> {characterised}{trait_table}</li>
<li><strong>What share of revenue?</strong> Insiders bring
<strong>{_e(fmt_pct(s.get("insiders_revenue_share")))}</strong> of revenue:
{_e(fmt_money(s.get("insiders_revenue"), money))} of {_e(fmt_money(s.get("revenue"), money))}
(gross revenue of the segmented customers: purchases, returns not subtracted).</li>
<li><strong>Who entered and who left?</strong> Since the previous scoring run {_e(fmt_int(entered))} customers
entered and {_e(fmt_int(left))} left the Insiders; see <a href="#changes">Insiders entering and leaving</a>.</li>
</ol>
</section>"""


def _segments_section(data: ReportFigures, currency: str) -> str:
    p = data.profiles
    if p.empty:
        return (
            '<section aria-labelledby="segments"><h2 id="segments">Segments</h2>'
            '<p class="note" role="note">No segments: the latest scoring run published no customers.</p></section>'
        )
    ranks = [int(r) for r in p["segment_rank"]]
    names = [str(n) for n in p["segment_name"]]
    sizes = _hbar_chart(
        "chart-sizes",
        "Customers per segment",
        "Horizontal bars: number of customers in each segment and their share of all segmented customers. "
        + "; ".join(
            f"{n}: {fmt_int(c)} ({fmt_pct(sh)})"
            for n, c, sh in zip(names, p["customers"], p["customer_share"], strict=True)
        ),
        [
            (n, float(c), f"{fmt_int(c)} ({fmt_pct(sh)})", segment_colour(r))
            for r, n, c, sh in zip(ranks, names, p["customers"], p["customer_share"], strict=True)
        ],
    )
    shares = _hbar_chart(
        "chart-revenue-share",
        "Share of revenue per segment",
        "Horizontal bars: each segment's share of the gross revenue of all segmented customers. "
        + "; ".join(f"{n}: {fmt_pct(v)}" for n, v in zip(names, p["revenue_share"], strict=True)),
        [
            (n, float(0 if is_missing(v) else v), fmt_pct(v), segment_colour(r))
            for r, n, v in zip(ranks, names, p["revenue_share"], strict=True)
        ],
        max_value=max(float(p["revenue_share"].fillna(0).max()), 1e-9),
    )
    head = [
        ("Segment", False),
        ("Customers", True),
        ("Share of customers", True),
        ("Mean spend", True),
        ("Days since last buy", True),
        ("Invoices", True),
        ("Invoices per month", True),
        ("Days between purchases", True),
        ("Lines bought", True),
        ("Units returned", True),
        ("Units per invoice", True),
    ]
    added = added_features(p.columns)
    head += [(feature, True) for feature in added]
    head += [("Revenue", True), ("Share of revenue", True)]
    rows, classes = [], []
    for row in p.itertuples(index=False):
        rank = int(row.segment_rank)
        values = row._asdict()
        rows.append(
            [
                _swatch(segment_colour(rank)) + f"<strong>{_e(row.segment_name)}</strong>",
                _e(fmt_int(row.customers)),
                _e(fmt_pct(row.customer_share)),
                _e(fmt_money(row.mean_gross_revenue, currency)),
                _e(fmt_num(row.mean_recency_days, 1)),
                _e(fmt_num(row.mean_qty_invoices, 1)),
                _e(fmt_num(values.get("mean_invoices_per_month"), 2)),
                _e(fmt_num(values.get("mean_days_between_purchases"), 1)),
                _e(fmt_num(row.mean_qty_products, 1)),
                _e(fmt_num(row.mean_qty_returns, 1)),
                _e(fmt_num(row.mean_avg_basket_size, 1)),
                *(_e(fmt_auto(values.get(f"mean_{feature}"))) for feature in added),
                _e(fmt_money(row.revenue, currency)),
                _e(fmt_pct(row.revenue_share)),
            ]
        )
        classes.append("insiders" if bool(row.is_insider) else "")
    table = _table(
        "Segment profiles, by rank (means per customer; segment_profiles mart)", head, rows, classes, cls="profiles"
    )
    words = "".join(
        f"<li>{_swatch(segment_colour(r))}<strong>{_e(n)}</strong>: {_e(data.descriptions.get(r, ''))}</li>"
        for r, n in zip(ranks, names, strict=True)
    )
    return f"""
<section aria-labelledby="segments">
<h2 id="segments">Segments: size, revenue and profile</h2>
<p>Segments are ranked by mean spend; rank 1 is <strong>Insiders</strong>. Revenue is gross revenue (purchases,
returns not subtracted), the measure segments are ranked by.</p>
<div class="pair">
<figure><h3>Customers per segment</h3>{sizes}
<figcaption>Number of customers (share of all segmented customers).</figcaption></figure>
<figure><h3>Share of revenue per segment</h3>{shares}
<figcaption>Share of the segmented customers' gross revenue.</figcaption></figure>
</div>
{table}
<h3>The segments in words</h3>
<ul class="legend-list">{words}</ul>
</section>"""


def _space_section(scatter: _Scatter | None, reason: str | None, note: str | None) -> str:
    head = '<section aria-labelledby="space"><h2 id="space">Customers in the model\'s space</h2>'
    if scatter is None:
        return (
            head + f'<p class="note" role="note">The picture of the customers in the model\'s space is not shown: '
            f"{_e(reason)}</p></section>"
        )
    extra = f'<p class="note" role="note">{_e(note)}</p>' if note else ""
    shown = (
        f"all {scatter.points:,} customers"
        if scatter.points == scatter.customers
        else f"{scatter.points:,} of the {scatter.customers:,} customers, a sample drawn by customer id (the same "
        "customers every time)"
    )
    return f"""{head}
<p>The segmentation model embeds each customer with a random forest (customers that the trees find alike for
predicting spend land close together) and clusters them there. The picture shows {_e(shown)} on the first two
principal axes of that space; each dot is a customer, coloured by segment, Insiders drawn on top.</p>
{extra}
<figure>{scatter.svg}<figcaption>The study's "tree-embedded space": customers on the first two principal axes of
the model's clustering space. The axes have no unit; what matters is which customers lie close together.
</figcaption></figure>
</section>"""


def _monthly_section(data: ReportFigures, currency: str) -> str:
    head = '<section aria-labelledby="monthly"><h2 id="monthly">Monthly revenue by segment</h2>'
    m = data.monthly
    if m.empty:
        return head + '<p class="note" role="note">No sales up to the reference day.</p></section>'
    ranked = (
        m.dropna(subset=["segment_rank"])[["segment_rank", "segment_name"]]
        .drop_duplicates()
        .sort_values("segment_rank")
    )
    order = [
        (str(n), segment_colour(int(r))) for r, n in zip(ranked["segment_rank"], ranked["segment_name"], strict=True)
    ]
    present = set(m["segment_name"].astype(str))
    order += [(b, c) for b, c in BUCKET_COLOURS.items() if b in present]
    chart = _monthly_chart(m, order, currency)
    months = pd.to_datetime(m["revenue_month"]).dt.to_period("M")
    wide = (
        m.assign(month=months)
        .pivot_table(index="month", columns="segment_name", values="gross_revenue", aggfunc="sum")
        .reindex(pd.period_range(months.min(), months.max(), freq="M"))
        .fillna(0.0)
    )
    names = [n for n, _ in order if n in wide.columns]
    rows = [
        [_e(period.strftime("%Y-%m"))]
        + [_e(fmt_money(wide.at[period, n], currency)) for n in names]
        + [_e(fmt_money(wide.loc[period, names].sum(), currency))]
        for period in wide.index
    ]
    table = _table(
        f"Gross revenue per month and segment ({currency})",
        [("Month", False), *[(n, True) for n in names], ("Total", True)],
        rows,
    )
    partial = ""
    as_of = data.summary.get("as_of_date")
    if not is_missing(as_of):
        day = pd.Timestamp(as_of)
        if day.month == months.max().month and day.year == months.max().year and not day.is_month_end:
            partial = f" The last month is partial: it runs to the reference day, {fmt_day(day)}."
    unsegmented = (
        ", and customers without a segment (returns only) as <em>Unsegmented</em>" if "Unsegmented" in present else ""
    )
    return f"""{head}
<p>Gross revenue (purchases, returns not subtracted) per calendar month, up to the reference day, split by the
customers' current segment. Lines without a customer (anonymous checkouts) are real revenue but belong to no
segment; they are shown as <em>Anonymous</em>{unsegmented}.</p>
{_legend_html(order)}
<figure>{chart}<figcaption>Stacked monthly gross revenue in {_e(currency)}, Insiders at the bottom.{partial}
</figcaption></figure>
<details><summary>Monthly revenue as a table</summary>{table}</details>
</section>"""


def _changes_section(data: ReportFigures) -> str:
    head = '<section aria-labelledby="changes"><h2 id="changes">Insiders entering and leaving</h2>'
    runs = data.runs
    if runs.empty:
        return head + '<p class="note" role="note">No scoring run has been recorded yet.</p></section>'
    shown = runs.tail(MAX_RUNS)
    chart = _runs_chart(shown)
    rows = [
        [
            _e(f"#{int(r.run_number)}"),
            _e(fmt_time(r.scored_at)),
            f"<code>{_e(r.model_version)}</code>",
            _e(fmt_int(r.entered)),
            _e(fmt_int(r.left)),
            _e(fmt_int(r.insiders_after)),
        ]
        for r in shown.iloc[::-1].itertuples(index=False)
    ]
    older = len(runs) - len(shown)
    table = _table(
        "Per scoring run, latest first" + (f" (the latest {len(shown)} of {len(runs)} runs)" if older else ""),
        [
            ("Run", False),
            ("Scored at", False),
            ("Model version", False),
            ("Entered", True),
            ("Left", True),
            ("Insiders after the run", True),
        ],
        rows,
    )
    latest = runs.iloc[-1]
    lists = []
    for change, word, other, other_column in (
        ("entered", "Entered", "Came from", "previous_segment_name"),
        ("left", "Left", "Now in", "new_segment_name"),
    ):
        part = data.latest_changes[data.latest_changes["membership_change"] == change]
        listed = part.head(CHANGES_LISTED)
        caption = f"{word} the Insiders in run #{int(latest.run_number)}: {len(part):,} customers" + (
            f" (the first {len(listed)} by customer id)" if len(part) > len(listed) else ""
        )
        if part.empty:
            lists.append(f"<div><h3>{_e(word)}</h3><p>Nobody {_e(change)} the Insiders in the latest run.</p></div>")
            continue
        rows = [
            [
                _e(int(customer_id)),
                _e("–" if is_missing(segment) else segment),
                _e(reason),
            ]
            for customer_id, segment, reason in zip(
                listed["customer_id"], listed[other_column], listed["reason"], strict=True
            )
        ]
        more = len(part) - len(listed)
        tail = f'<p class="muted">… and {_e(fmt_int(more))} more.</p>' if more > 0 else ""
        lists.append(
            f"<div><h3>{_e(word)}</h3>"
            + _table(caption, [("Customer", False), (other, False), ("Reason", False)], rows)
            + tail
            + "</div>"
        )
    return f"""{head}
<p>Each scoring run compares every customer's segment with the previous run. The <code>insiders_changes</code> mart
(<code>{_e(data.schema)}.insiders_changes</code>) holds the full lists with the reason for each move.</p>
{_legend_html([("Entered", ENTERED_COLOUR), ("Left", LEFT_COLOUR)])}
<figure>{chart}
<figcaption>Customers entering (up) and leaving (down) the Insiders per scoring run.</figcaption></figure>
{table}
<div class="cols">{"".join(lists)}</div>
</section>"""


def _page(title: str, data: ReportFigures, currency: str, target: str, space: str, value: str = "") -> str:
    s = data.summary
    meta = [
        ("Model version", s.get("model_version")),
        ("Scored at", fmt_time(s.get("scored_at"))),
        ("Run id", s.get("run_id")),
        ("Reference day", fmt_day(s.get("as_of_date"))),
        ("Warehouse", target),
        ("Marts schema", data.schema),
    ]
    meta_html = "".join(f"<dt>{_e(k)}</dt><dd>{_e('–' if is_missing(v) else v)}</dd>" for k, v in meta)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<header class="top">
<h1>{_e(title)}</h1>
<dl class="meta">{meta_html}</dl>
</header>
{_answers(data, currency)}
{_segments_section(data, currency)}
{space}
{_monthly_section(data, currency)}
{value}
{_changes_section(data)}
<footer>Generated by <code>insiders report</code> from the marts of the latest scoring run. Figures are computed
over segmented customers; revenue is gross revenue (purchases, returns not subtracted) unless stated.</footer>
</main>
</body>
</html>
"""


# ---------------------------------------------------------------------------------------------------------- entry


@dataclass(frozen=True)
class ReportResult:
    """What :func:`write_report` wrote."""

    path: Path
    size_bytes: int
    run_id: str | None
    model_version: str | None
    insiders: int
    customers: int
    charts: int
    scatter_points: int
    seconds: float
    #: why a part of the report is missing (e.g. the 2-D picture without a model); empty when complete
    notes: tuple[str, ...] = field(default_factory=tuple)


def _load_model_and_features(
    wh: Warehouse, model: SegmentModel | None, features_schema: str
) -> tuple[SegmentModel, pd.DataFrame, str | None]:
    """The model (the pinned one unless given), the customer features, and the pinned version when loaded."""
    from insiders.training import read_features

    version = None
    if model is None:
        from insiders.registry import load_pinned

        loaded = load_pinned()
        model, version = loaded.model, loaded.pin.version
    features, _ = read_features(wh, features_schema)
    return model, features, version


def write_report(
    wh: Warehouse,
    out: Path,
    model: SegmentModel | None = None,
    title: str = DEFAULT_TITLE,
    *,
    schema: str | None = None,
    features_schema: str | None = None,
    currency: str | None = None,
) -> ReportResult:
    """Write the HTML report of the latest scoring run to ``out`` and say what it contains.

    ``model`` draws the 2-D picture; when None the pinned model is loaded (``registry.load_pinned``). When no model
    can be loaded or applied, the report is written without the picture and says why. ``schema`` is the marts
    schema (default: found next to the target schema, see :func:`marts_schema`); ``features_schema`` that of
    ``customer_features`` (default: the target schema). ``currency`` is that of the amounts (default
    ``$INSIDERS_CURRENCY``, else GBP; see :func:`resolve_currency`).
    """
    started = time.perf_counter()
    out = Path(out)
    schema = schema or marts_schema(wh)
    features_schema = features_schema or wh.target.schema
    currency = resolve_currency(currency)
    data = read_report_figures(wh, schema, FIRST_INSIDERS)
    counts = {int(r): int(c) for r, c in zip(data.profiles["segment_rank"], data.profiles["customers"], strict=True)}

    notes: list[str] = []
    scatter: _Scatter | None = None
    reason = note = None
    try:
        loaded_model, features, version = _load_model_and_features(wh, model, features_schema)
        scatter = _scatter(loaded_model, features, counts)
        scored_version = data.summary.get("model_version")
        if version and not is_missing(scored_version) and version != str(scored_version):
            note = (
                f"The pinned model ({version}) is not the one that scored this run ({scored_version}): the picture "
                "shows the pinned model's segments, the rest of the report those of the run."
            )
            notes.append(note)
    except Exception as exc:  # the report is still useful without the picture: say why it is missing
        reason = f"no model could be loaded or applied ({type(exc).__name__}: {exc})."
        notes.append("2-D picture omitted: " + reason)

    # Predicted value (docs/value.md): a section when the marts have segment_value.
    from insiders.value.sections import read_value_figures, section_html

    value = section_html(read_value_figures(wh, schema), currency)
    page = _page(title, data, currency, wh.target.describe(), _space_section(scatter, reason, note), value)
    body = page.encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(body)
    os.replace(tmp, out)

    s = data.summary
    return ReportResult(
        path=out,
        size_bytes=len(body),
        run_id=None if is_missing(s.get("run_id")) else str(s["run_id"]),
        model_version=None if is_missing(s.get("model_version")) else str(s["model_version"]),
        insiders=0 if is_missing(s.get("insiders")) else int(s["insiders"]),
        customers=0 if is_missing(s.get("customers")) else int(s["customers"]),
        charts=page.count('<svg class="chart'),
        scatter_points=scatter.points if scatter else 0,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )


__all__ = [
    "CURRENCY_SYMBOLS",
    "DEFAULT_CURRENCY",
    "DEFAULT_TITLE",
    "DISTINCT_MARGIN",
    "PALETTE",
    "TRAITS",
    "ReportResult",
    "added_features",
    "characterise",
    "distinctive",
    "everyone_means",
    "fmt_auto",
    "fmt_int",
    "fmt_money",
    "fmt_num",
    "fmt_pct",
    "insider_profile",
    "marts_schema",
    "resolve_currency",
    "segment_colour",
    "write_report",
]
