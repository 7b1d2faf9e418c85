"""What each section of the HTML report shows: the figures, phrases, tables and charts of the answers, the segments,
the customers in the model's space, monthly revenue and Insiders entering and leaving.

Each ``*_section`` function returns the context its template (``templates/<section>.html.j2``) renders: text as
plain strings, escaped by the template; charts as :class:`~markupsafe.Markup`, the SVG that
:mod:`insiders.report.charts` drew (and escaped) itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from markupsafe import Markup

from insiders.formatting import fmt_auto, fmt_day, fmt_int, fmt_money, fmt_num, fmt_pct, fmt_ratio, fmt_time, is_missing
from insiders.marts import ReportFigures, insider_profile
from insiders.report.charts import (
    BUCKET_COLOURS,
    ENTERED_COLOUR,
    LEFT_COLOUR,
    Scatter,
    hbar_chart,
    monthly_chart,
    runs_chart,
    segment_colour,
)
from insiders.traits import DISTINCT_MARGIN, TRAITS, added_features, characterise, distinctive

#: Customers listed per direction (entered / left) for the latest run.
CHANGES_LISTED = 50
#: Runs shown in the entered/left chart and table (the latest ones).
MAX_RUNS = 24


@dataclass(frozen=True)
class Table:
    """A table of text: ``head`` is (column title, numeric?); the first cell of a row heads it."""

    caption: str
    head: Sequence[tuple[str, bool]]
    rows: Sequence[Sequence[str]]
    cls: str = ""


@dataclass(frozen=True)
class ChangesList:
    """The customers who entered or left the Insiders in the latest run (``table`` None when there are none)."""

    word: str
    change: str
    table: Table | None
    #: how many more customers than the table lists ("" when it lists them all)
    more: str = ""


@dataclass(frozen=True)
class Page:
    """Everything the page template renders."""

    title: str
    #: (label, text) of the header
    meta: list[tuple[str, str]]
    answers: dict[str, Any]
    segments: dict[str, Any]
    space: dict[str, Any]
    monthly: dict[str, Any]
    changes: dict[str, Any]
    #: the customer-value section, written by :mod:`insiders.value.sections` ("" when the marts have none)
    value: Markup = field(default_factory=Markup)


def answers_section(data: ReportFigures, currency: str) -> dict[str, Any]:
    """Questions 1 to 5 in plain words, the key figures above them and the trait table."""
    s, every = data.summary, data.everyone
    insiders, customers = s.get("insiders"), s.get("customers")
    n_insiders = int(insiders) if insiders is not None and not is_missing(insiders) else 0
    kpis = [
        (fmt_int(insiders), "Insiders (customers eligible)"),
        (fmt_pct(s.get("insiders_share")), f"of the {fmt_int(customers)} segmented customers"),
        (fmt_pct(s.get("insiders_revenue_share")), "of revenue comes from Insiders"),
        (fmt_money(s.get("mean_gross_revenue"), currency), "mean spend of an Insider"),
    ]

    shown, not_shown = characterise(s, every, currency)
    margin = f"{DISTINCT_MARGIN:.0%}"
    if not n_insiders:
        characterised = "There are no Insiders in this run, so there is nothing to characterise."
    elif shown:
        characterised = "Compared with all segmented customers, on average Insiders " + "; ".join(shown) + "."
        if not_shown:
            characterised += f" Not distinctive (within {margin} of everyone's): " + ", ".join(not_shown) + "."
    else:
        characterised = f"No trait sets the Insiders apart: every mean is within {margin} of everyone's."

    def marked(mine: Any, all_: Any) -> str:
        return "yes" if distinctive(mine, all_) else "no"

    trait_rows = [
        [
            t.label,
            t.fmt(s.get(t.column), currency),
            t.fmt(every.get(t.column), currency),
            fmt_ratio(s.get(t.column), every.get(t.column)),
            marked(s.get(t.column), every.get(t.column)),
        ]
        for t in TRAITS
    ]
    insider_row = insider_profile(data.profiles)
    for feature in added_features(data.profiles.columns):
        col = f"mean_{feature}"
        mine, all_ = insider_row.get(col), every.get(col)
        trait_rows.append([feature, fmt_auto(mine), fmt_auto(all_), fmt_ratio(mine, all_), marked(mine, all_)])
    traits = Table(
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
    more = n_insiders - len(data.first_insiders)
    if not data.first_insiders:
        first_words = "It is empty in this run."
    elif more > 0:
        first_words = f"The first {fmt_int(len(data.first_insiders))} by customer id:"
    else:
        first_words = "Their customer ids:"
    return {
        "kpis": kpis,
        "schema": data.schema,
        "first_words": first_words,
        "ids": ", ".join(str(i) for i in data.first_insiders),
        "more": fmt_int(more) if more > 0 else "",
        "insiders": fmt_int(insiders),
        "customers": fmt_int(customers),
        "insiders_share": fmt_pct(s.get("insiders_share")),
        "characterised": characterised,
        "traits": traits,
        "revenue_share": fmt_pct(s.get("insiders_revenue_share")),
        "insiders_revenue": fmt_money(s.get("insiders_revenue"), currency),
        "revenue": fmt_money(s.get("revenue"), currency),
        "entered": fmt_int(s.get("entered_since_previous_run")),
        "left": fmt_int(s.get("left_since_previous_run")),
    }


def segments_section(data: ReportFigures, currency: str) -> dict[str, Any]:
    """Segment sizes and revenue shares (bar charts), the profile table and the segments in words."""
    p = data.profiles
    if p.empty:
        return {"empty": True}
    ranks = [int(r) for r in p["segment_rank"]]
    names = [str(n) for n in p["segment_name"]]
    sizes = hbar_chart(
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
    shares = hbar_chart(
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
    rows = []
    for row in p.itertuples(index=False):
        values = row._asdict()
        figures = [
            fmt_int(row.customers),
            fmt_pct(row.customer_share),
            fmt_money(row.mean_gross_revenue, currency),
            fmt_num(row.mean_recency_days, 1),
            fmt_num(row.mean_qty_invoices, 1),
            fmt_num(values.get("mean_invoices_per_month"), 2),
            fmt_num(values.get("mean_days_between_purchases"), 1),
            fmt_num(row.mean_qty_products, 1),
            fmt_num(row.mean_qty_returns, 1),
            fmt_num(row.mean_avg_basket_size, 1),
            *(fmt_auto(values.get(f"mean_{feature}")) for feature in added),
            fmt_money(row.revenue, currency),
            fmt_pct(row.revenue_share),
        ]
        rows.append(
            {
                "name": str(row.segment_name),
                "colour": segment_colour(int(row.segment_rank)),
                "insiders": bool(row.is_insider),
                "figures": figures,
            }
        )
    return {
        "empty": False,
        "sizes": Markup(sizes),
        "shares": Markup(shares),
        "head": head,
        "rows": rows,
        "words": [(segment_colour(r), n, data.descriptions.get(r, "")) for r, n in zip(ranks, names, strict=True)],
    }


def space_section(scatter: Scatter | None, reason: str | None, note: str | None) -> dict[str, Any]:
    """The customers in the model's space, or why the picture is missing (``reason``); ``note`` says when the
    picture's model is not the one that scored the run."""
    if scatter is None:
        return {"svg": None, "reason": reason}
    shown = (
        f"all {scatter.points:,} customers"
        if scatter.points == scatter.customers
        else f"{scatter.points:,} of the {scatter.customers:,} customers, a sample drawn by customer id (the same "
        "customers every time)"
    )
    return {"svg": Markup(scatter.svg), "shown": shown, "note": note}


def _monthly_wide(monthly: pd.DataFrame) -> pd.DataFrame:
    """Gross revenue per month (rows, every month from the first to the last) and segment or bucket (columns)."""
    months = pd.to_datetime(monthly["revenue_month"]).dt.to_period("M")
    return (
        monthly.assign(month=months)
        .pivot_table(index="month", columns="segment_name", values="gross_revenue", aggfunc="sum")
        .reindex(pd.period_range(months.min(), months.max(), freq="M"))
        .fillna(0.0)
    )


def monthly_section(data: ReportFigures, currency: str) -> dict[str, Any]:
    """Monthly gross revenue by segment: stacked bars, their legend and the same figures as a table."""
    m = data.monthly
    if m.empty:
        return {"empty": True}
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
    wide = _monthly_wide(m)
    names = [n for n, _ in order if n in wide.columns]
    rows = [
        [period.strftime("%Y-%m")]
        + [fmt_money(wide.at[period, n], currency) for n in names]
        + [fmt_money(wide.loc[period, names].sum(), currency)]
        for period in wide.index
    ]
    table = Table(
        f"Gross revenue per month and segment ({currency})",
        [("Month", False), *[(n, True) for n in names], ("Total", True)],
        rows,
    )
    partial = ""
    as_of = data.summary.get("as_of_date")
    last = wide.index.max()
    if not is_missing(as_of):
        day = pd.Timestamp(as_of)
        if day.month == last.month and day.year == last.year and not day.is_month_end:
            partial = f" The last month is partial: it runs to the reference day, {fmt_day(day)}."
    return {
        "empty": False,
        "unsegmented": "Unsegmented" in present,
        "legend": order,
        "chart": Markup(monthly_chart(m, order, currency)),
        "currency": currency,
        "partial": partial,
        "table": table,
    }


def changes_section(data: ReportFigures) -> dict[str, Any]:
    """Insiders entering and leaving: per scoring run (chart and table) and the lists of the latest run."""
    runs = data.runs
    if runs.empty:
        return {"empty": True}
    shown = runs.tail(MAX_RUNS)
    older = len(runs) - len(shown)
    table = [
        {
            "run": f"#{int(r.run_number)}",
            "scored_at": fmt_time(r.scored_at),
            "model_version": str(r.model_version),
            "figures": [fmt_int(r.entered), fmt_int(r.left), fmt_int(r.insiders_after)],
        }
        for r in shown.iloc[::-1].itertuples(index=False)
    ]
    latest = runs.iloc[-1]
    lists = []
    for change, word, other, other_column in (
        ("entered", "Entered", "Came from", "previous_segment_name"),
        ("left", "Left", "Now in", "new_segment_name"),
    ):
        part = data.latest_changes[data.latest_changes["membership_change"] == change]
        if part.empty:
            lists.append(ChangesList(word, change, None))
            continue
        listed = part.head(CHANGES_LISTED)
        caption = f"{word} the Insiders in run #{int(latest.run_number)}: {len(part):,} customers" + (
            f" (the first {len(listed)} by customer id)" if len(part) > len(listed) else ""
        )
        rows = [
            [str(int(customer_id)), "–" if is_missing(segment) else str(segment), str(reason)]
            for customer_id, segment, reason in zip(
                listed["customer_id"], listed[other_column], listed["reason"], strict=True
            )
        ]
        customers = Table(caption, [("Customer", False), (other, False), ("Reason", False)], rows)
        more = len(part) - len(listed)
        lists.append(ChangesList(word, change, customers, fmt_int(more) if more > 0 else ""))
    return {
        "empty": False,
        "schema": data.schema,
        "legend": [("Entered", ENTERED_COLOUR), ("Left", LEFT_COLOUR)],
        "chart": Markup(runs_chart(shown, MAX_RUNS)),
        "caption": "Per scoring run, latest first"
        + (f" (the latest {len(shown)} of {len(runs)} runs)" if older else ""),
        "head": [
            ("Run", False),
            ("Scored at", False),
            ("Model version", False),
            ("Entered", True),
            ("Left", True),
            ("Insiders after the run", True),
        ],
        "runs": table,
        "lists": lists,
    }


def build_page(
    title: str,
    data: ReportFigures,
    currency: str,
    target: str,
    space: dict[str, Any],
    value: str = "",
) -> Page:
    """The whole page: the header (model, run, reference day, warehouse) and the sections in reading order;
    ``space`` is the :func:`space_section` and ``value`` the customer-value section's HTML."""
    s = data.summary
    meta = [
        ("Model version", s.get("model_version")),
        ("Scored at", fmt_time(s.get("scored_at"))),
        ("Run id", s.get("run_id")),
        ("Reference day", fmt_day(s.get("as_of_date"))),
        ("Warehouse", target),
        ("Marts schema", data.schema),
    ]
    return Page(
        title=title,
        meta=[(label, "–" if is_missing(v) else str(v)) for label, v in meta],
        answers=answers_section(data, currency),
        segments=segments_section(data, currency),
        space=space,
        monthly=monthly_section(data, currency),
        changes=changes_section(data),
        value=Markup(value),
    )
