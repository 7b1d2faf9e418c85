"""The customer-value parts of ``insiders answers`` and of the HTML report, read from the marts.

Both read ``segment_value`` (and ``dim_customers`` for the Insiders at risk); when the mart is missing (marts
built before it existed) they add nothing, and when no value model has been applied they say so.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from insiders.formatting import fmt_int, fmt_money, fmt_pct
from insiders.warehouse import Warehouse

AT_RISK_BELOW = 0.5
SHOWN_AT_RISK = 20


@dataclass(frozen=True)
class ValueFigures:
    segments: pd.DataFrame
    at_risk_insiders: list[int]

    @property
    def predicted(self) -> bool:
        return bool(len(self.segments)) and int(self.segments["customers_with_value"].sum()) > 0

    @property
    def horizon(self) -> int:
        return int(self.segments["horizon_days"].dropna().max())

    def insiders(self) -> pd.Series:
        return self.segments.loc[self.segments["is_insider"].astype(bool)].iloc[0]

    @property
    def total_expected(self) -> float:
        return float(self.segments["expected_revenue"].fillna(0).sum())


def _share(part: float, whole: float) -> float | None:
    return float(part) / whole if whole and pd.notna(part) else None


def read_value_figures(wh: Warehouse, schema: str) -> ValueFigures | None:
    """segment_value and the at-risk Insiders, or None when the marts have no segment_value."""
    if not wh.relation_exists(schema, "segment_value"):
        return None
    segments = wh.query_df(f"select * from {schema}.segment_value order by segment_rank")
    for col in segments.columns:
        if col not in ("segment_name", "value_model_version", "is_insider"):
            segments[col] = pd.to_numeric(segments[col], errors="coerce").astype(float)
    rows = wh.query(
        f"select customer_id from {schema}.dim_customers where is_insider and p_alive < %s "
        f"order by p_alive, customer_id limit {SHOWN_AT_RISK}",
        [AT_RISK_BELOW],
    )
    return ValueFigures(segments=segments, at_risk_insiders=[int(r[0]) for r in rows])


def answer_lines(figures: ValueFigures | None, money: str) -> list[str]:
    """Questions 6 and 7 of ``insiders answers``."""
    if figures is None:
        return []
    if not figures.predicted or not figures.segments["is_insider"].astype(bool).any():
        return [
            "6-7. Expected revenue and Insiders at risk: no value predictions (pin a value model with "
            "`insiders value train --promote`; docs/value.md)."
        ]
    ins = figures.insiders()
    share = _share(ins["expected_revenue"], figures.total_expected)
    at_risk = int(ins["at_risk_customers"])
    ids = ", ".join(str(i) for i in figures.at_risk_insiders)
    more = f" … and {at_risk - len(figures.at_risk_insiders):,} more" if at_risk > len(figures.at_risk_insiders) else ""
    return [
        f"6. Expected revenue from Insiders over the next {figures.horizon} days: "
        f"{fmt_money(ins['expected_revenue'], money)} ({'–' if share is None else f'{share:.1%}'} of all customers' "
        f"{fmt_money(figures.total_expected, money)}; model {ins['value_model_version']}).",
        f"7. Insiders at risk (P(alive) below {AT_RISK_BELOW}): {at_risk:,} of {int(ins['customers']):,}, who spent "
        f"{fmt_money(ins['at_risk_revenue'], money)} to date" + (f": {ids}{more}." if at_risk else "."),
    ]


def section_html(figures: ValueFigures | None, money: str) -> str:
    """The report's "Predicted value" section: a chart of expected revenue per segment and a table."""
    from insiders.report.charts import hbar_chart, segment_colour

    if figures is None:
        return ""
    e = html.escape
    head = '<section aria-labelledby="value"><h2 id="value">Predicted value</h2>'
    if not figures.predicted:
        return (
            head + "<p>No value predictions in this run: no customer-value model is pinned "
            "(<code>insiders value train --promote</code>, docs/value.md).</p></section>"
        )
    segs = figures.segments
    rows = [
        (
            str(r.segment_name),
            float(r.expected_revenue or 0),
            fmt_money(r.expected_revenue, money),
            segment_colour(int(r.segment_rank)),
        )
        for r in segs.itertuples(index=False)
    ]
    chart = hbar_chart(
        "value-chart",
        f"Expected revenue per segment over the next {figures.horizon} days",
        "Horizontal bars: the revenue the customer-value model expects from each segment.",
        rows,
    )
    body = "".join(
        "<tr>"
        f"<td>{e(str(r.segment_name))}</td><td class=num>{e(fmt_int(r.customers))}</td>"
        f"<td class=num>{e(fmt_money(r.expected_revenue, money))}</td>"
        f"<td class=num>{e(fmt_pct(_share(r.expected_revenue, figures.total_expected)))}</td>"
        f"<td class=num>{e(fmt_pct(r.mean_p_alive))}</td>"
        f"<td class=num>{e(fmt_int(r.at_risk_customers))}</td>"
        f"<td class=num>{e(fmt_money(r.at_risk_revenue, money))}</td>"
        "</tr>"
        for r in segs.itertuples(index=False)
    )
    lines = answer_lines(figures, money)
    return (
        head
        + f"<p>{e(lines[0][3:])}</p><p>{e(lines[1][3:])}</p>"
        + chart
        + "<table><caption>Per segment: expected revenue over the horizon, mean P(alive), customers at risk "
        f"(P(alive) below {AT_RISK_BELOW}) and their gross revenue to date</caption><thead><tr>"
        "<th scope=col>Segment</th><th scope=col>Customers</th><th scope=col>Expected revenue</th>"
        "<th scope=col>Share</th><th scope=col>Mean P(alive)</th><th scope=col>At risk</th>"
        "<th scope=col>At-risk revenue</th></tr></thead><tbody>" + body + "</tbody></table></section>"
    )
