"""The report's charts, drawn as inline SVG: the segment colours, a small SVG writer and the five charts (segment
sizes and revenue shares as horizontal bars, monthly revenue as stacked bars, the customers in the model's
clustering space, Insiders entering and leaving per scoring run).

Every chart is an accessible image (a title and a description that label it) and depends only on its data: the
same figures give the same bytes.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from insiders.formatting import DEFAULT_CURRENCY, fmt_int, fmt_money

if TYPE_CHECKING:
    from insiders.model import SegmentModel

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
    """Text or an attribute value inside the SVG, escaped."""
    return html.escape(str(value), quote=True)


def _n(x: float) -> str:
    """A coordinate in SVG: one decimal, no trailing zeros, no negative zero."""
    text = f"{x:.1f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


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


class Svg:
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


def hbar_chart(
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
    svg = Svg(chart_id, width, height, title, desc, cls="bars")
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


def monthly_chart(monthly: pd.DataFrame, order: Sequence[tuple[str, str]], currency: str = DEFAULT_CURRENCY) -> str:
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
    svg = Svg(
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


def sample_positions_by_id_hash(customer_ids: np.ndarray, limit: int) -> np.ndarray:
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
class Scatter:
    """The 2-D picture: its SVG, the customers drawn and all customers, and the segment names in rank order."""

    svg: str
    points: int
    customers: int
    names: list[str]


def scatter_chart(model: SegmentModel, features: pd.DataFrame, counts: dict[int, int], max_points: int) -> Scatter:
    """The customers in the model's clustering space (its first two principal axes), coloured by segment: all of
    them, or a sample of ``max_points`` drawn by customer id; ``counts`` is the number of customers per rank."""
    features = features.sort_values("customer_id", kind="stable").reset_index(drop=True)
    rows = sample_positions_by_id_hash(features["customer_id"].to_numpy(), max_points)
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
    svg = Svg(
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
    return Scatter(
        svg=svg.render(), points=len(sample), customers=len(features), names=[names[r] for r in sorted(names)]
    )


def runs_chart(runs: pd.DataFrame, max_labelled: int) -> str:
    """Per scoring run: customers who entered (up) and left (down) the Insiders; the bars carry their value when
    there are at most ``max_labelled`` runs."""
    width, height = 1040, 250
    left, right, top, bottom = 62, 16, 14, 38
    plot_w, plot_h = width - left - right, height - top - bottom
    high = max(int(runs["entered"].max()), int(runs["left"].max()), 1)
    ticks = _nice_ticks(0.0, float(high), 3)
    lim = ticks[-1]
    mid = top + plot_h / 2
    svg = Svg(
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
        if len(runs) <= max_labelled:
            if int(run.entered):
                svg.text(x + bar_w / 2, mid - up - 4, fmt_int(run.entered), anchor="middle", cls="value")
            if int(run.left):
                svg.text(x + bar_w / 2, mid + down + 13, fmt_int(run.left), anchor="middle", cls="value")
        if i % label_every == 0:
            svg.text(left + i * slot + slot / 2, top + plot_h + 16, f"#{run.run_number}", anchor="middle", cls="tick")
    svg.line(left, mid, left + plot_w, mid)
    svg.text(left + plot_w / 2, top + plot_h + 32, "scoring run", anchor="middle", cls="axis-title")
    return svg.render()
