"""The sections of the HTML report (the answers, segments, the model's space, monthly revenue, Insiders entering
and leaving) and the page around them."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

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


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _legend_html(items: Iterable[tuple[str, str]]) -> str:
    entries = "".join(
        f'<li><span class="swatch" style="background:{c}" aria-hidden="true"></span>{_e(name)}</li>'
        for name, c in items
    )
    return f'<ul class="legend">{entries}</ul>'


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


def space_section(scatter: Scatter | None, reason: str | None, note: str | None) -> str:
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
    chart = monthly_chart(m, order, currency)
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
    chart = runs_chart(shown, MAX_RUNS)
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


def page_html(title: str, data: ReportFigures, currency: str, target: str, space: str, value: str = "") -> str:
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
