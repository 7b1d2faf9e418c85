"""The business questions, answered in plain words from the marts (``insiders answers``)."""

from __future__ import annotations

from insiders.errors import InsidersError
from insiders.formatting import fmt_auto, fmt_money, resolve_currency
from insiders.marts import (
    everyone_means,
    first_insider_ids,
    insider_profile,
    latest_summary,
    marts_schema,
    segment_profiles,
)
from insiders.traits import DISTINCT_MARGIN, added_features, characterise
from insiders.warehouse import Warehouse

SHOWN_IDS = 20


def business_answers(wh: Warehouse, currency: str | None = None) -> str:
    """Answers to questions 1-5 of the business brief for the latest scoring run, from the marts.

    Amounts are shown in ``currency`` (default ``$INSIDERS_CURRENCY``, else GBP).
    """
    money = resolve_currency(currency)
    schema = marts_schema(wh)
    s = latest_summary(wh, schema)
    if not s:
        raise InsidersError("insiders_summary is empty: no scoring run yet")
    everyone = everyone_means(wh, schema)
    ids = first_insider_ids(wh, schema, SHOWN_IDS)
    profiles = segment_profiles(wh, schema)
    insider_row = insider_profile(profiles)
    added = "; ".join(
        f"{feature} {fmt_auto(insider_row.get(f'mean_{feature}'))} vs {fmt_auto(everyone.get(f'mean_{feature}'))}"
        for feature in added_features(profiles.columns)
    )
    shown, not_shown = characterise(s, everyone, money)
    margin = f"{DISTINCT_MARGIN:.0%}"
    traits = [f"   they {phrase}{';' if i < len(shown) - 1 else '.'}" for i, phrase in enumerate(shown)] or [
        f"   nothing: every mean is within {margin} of everyone's."
    ]
    if shown and not_shown:
        traits.append(f"   not distinctive (within {margin} of everyone's): {', '.join(not_shown)}.")
    n = int(s["insiders"])
    more = f" … and {n - len(ids):,} more" if n > len(ids) else ""
    lines = [
        f"Insiders, model {s['model_version']}, scored {s['scored_at']} (features as of {str(s['as_of_date'])[:10]})",
        "",
        f"1. Who is eligible? {n:,} customers: {', '.join(str(i) for i in ids)}{more}.",
        f"   The full list is the `{schema}.insiders` table.",
        f"2. How many? {n:,} of {int(s['customers']):,} customers ({float(s['insiders_share']):.1%}).",
        "3. What characterises them (Insiders vs all customers, means)?",
        *traits,
        *([f"   other features: {added}."] if added else []),
        f"4. Revenue share: {float(s['insiders_revenue_share']):.1%} of revenue "
        f"({fmt_money(s['insiders_revenue'], money)} of {fmt_money(s['revenue'], money)}).",
        f"5. Since the previous run: {int(s['entered_since_previous_run']):,} entered, "
        f"{int(s['left_since_previous_run']):,} left (see `{schema}.insiders_changes`).",
    ]
    # Predicted value (docs/value.md): questions 6 and 7 when the marts have segment_value.
    from insiders.value.sections import answer_lines, read_value_figures

    lines += answer_lines(read_value_figures(wh, schema), money)
    return "\n".join(lines)
