"""What sets a segment apart: the measures (traits) the Insiders are compared with everyone on, the rule that says
a difference is large enough to characterise them, and the features the report and the answers know no name for.

Shared by the HTML report (its answers section and trait table) and ``insiders answers``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from insiders.formatting import DEFAULT_CURRENCY, fmt_money, fmt_num, fmt_pct, is_missing

#: A trait characterises the Insiders only when their mean differs from everyone's by at least this share:
#: Insiders ÷ everyone at least 1.25, or at most 1 / 1.25 = 0.8. Closer than that, it is listed as not distinctive.
DISTINCT_MARGIN = 0.25


@dataclass(frozen=True)
class Trait:
    """A measure that may characterise a segment: its label, its column (``mean_…`` of insiders_summary, of
    segment_profiles and of :func:`insiders.marts.everyone_means`), its format, and how the answers phrase it
    (``{v}``: the Insiders' value, ``{all}``: everyone's)."""

    label: str
    column: str
    #: (value, currency) -> text
    fmt: Any
    phrase: str


#: What characterises a segment, in the order the answers read. The study's ``frequency`` (invoices per day of
#: the active span) is not among them: it makes one-day buyers look the most frequent; invoices per month as a
#: customer and days between purchases say how often a customer buys in words a marketer reads correctly.
TRAITS = (
    Trait("Spend (gross revenue)", "mean_gross_revenue", fmt_money, "spend {v} (everyone: {all})"),
    Trait(
        "Invoices per month (as a customer)",
        "mean_invoices_per_month",
        lambda v, _c: fmt_num(v, 2),
        "buy {v} times a month (everyone: {all})",
    ),
    Trait(
        "Days between purchases",
        "mean_days_between_purchases",
        lambda v, _c: fmt_num(v, 1),
        "come back every {v} days (everyone: {all})",
    ),
    Trait(
        "Days since last purchase",
        "mean_recency_days",
        lambda v, _c: fmt_num(v, 1),
        "last bought {v} days before the reference day (everyone: {all})",
    ),
    Trait("Invoices", "mean_qty_invoices", lambda v, _c: fmt_num(v, 1), "bought on {v} invoices (everyone: {all})"),
    Trait(
        "Products bought (invoice lines)",
        "mean_qty_products",
        lambda v, _c: fmt_num(v, 1),
        "bought {v} invoice lines (everyone: {all})",
    ),
    Trait("Units returned", "mean_qty_returns", lambda v, _c: fmt_num(v, 1), "returned {v} units (everyone: {all})"),
    Trait(
        "Share of units returned",
        "mean_return_rate",
        lambda v, _c: fmt_pct(v),
        "sent back {v} of the units they bought (everyone: {all})",
    ),
    Trait(
        "Basket size (units per invoice)",
        "mean_avg_basket_size",
        lambda v, _c: fmt_num(v, 1),
        "fill baskets of {v} units per invoice (everyone: {all})",
    ),
    Trait("Average line value", "mean_avg_ticket", fmt_money, "pay {v} per line (everyone: {all})"),
)


def distinctive(value: Any, everyone: Any, margin: float = DISTINCT_MARGIN) -> bool:
    """Whether a group's mean differs from everyone's by at least ``margin`` (relative, either way)."""
    if is_missing(value) or is_missing(everyone) or float(everyone) == 0:
        return False
    ratio = float(value) / float(everyone)
    return ratio >= 1 + margin or ratio <= 1 / (1 + margin)


def characterise(
    group: dict[str, Any], everyone: dict[str, Any], currency: str = DEFAULT_CURRENCY
) -> tuple[list[str], list[str]]:
    """The phrases of the traits that distinguish ``group`` from ``everyone``, and the labels of those that do not."""
    shown, not_shown = [], []
    for t in TRAITS:
        mine, all_ = group.get(t.column), everyone.get(t.column)
        if distinctive(mine, all_):
            shown.append(t.phrase.format(v=t.fmt(mine, currency), all=t.fmt(all_, currency)))
        elif not (is_missing(mine) and is_missing(all_)):
            not_shown.append(t.label.lower())
    return shown, not_shown


#: Features the report presents under a name of its own; any other ``mean_<feature>`` column of segment_profiles
#: is a feature added to customer_features later, shown under its column name (see :func:`added_features`).
PRESENTED_FEATURES = frozenset(
    {
        "gross_revenue",
        "recency_days",
        "qty_invoices",
        "qty_items",
        "qty_products",
        "avg_ticket",
        "avg_recency_days",
        "frequency",
        "qty_returns",
        "return_rate",
        "avg_basket_size",
        "avg_unique_basket_size",
        # Computed in the marts from the features (dim_customers).
        "invoices_per_month",
        "days_between_purchases",
    }
)


def added_features(profile_columns: Iterable[str]) -> list[str]:
    """Features with a ``mean_<feature>`` column in segment_profiles that the report has no name for, in order."""
    return [
        c[len("mean_") :]
        for c in profile_columns
        if c.startswith("mean_") and c[len("mean_") :] not in PRESENTED_FEATURES
    ]
