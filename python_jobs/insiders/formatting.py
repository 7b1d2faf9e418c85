"""How figures are written for people: one format per kind of figure, shared by the HTML report, the text answers
and the customer-value sections (tests format figures the same way).

A missing figure (None, NaN, NaT) is written ``–``. Amounts carry their currency: GBP, the currency of the Online
Retail data set, unless ``--currency`` or ``INSIDERS_CURRENCY`` says otherwise (:func:`resolve_currency`).
"""

from __future__ import annotations

import os
import re
from typing import Any

import pandas as pd

from insiders.errors import InsidersError

#: The currency of the amounts when neither ``--currency`` nor ``INSIDERS_CURRENCY`` says otherwise: that of the
#: Online Retail data set.
DEFAULT_CURRENCY = "GBP"
#: Symbols written before an amount; any other ISO 4217 code is written as a prefix (``CHF 9,462.77``). The dbt
#: model dim_segments writes the same (macro money_prefix).
CURRENCY_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}


def is_missing(value: Any) -> bool:
    """Whether a figure is absent: None, or a value pandas counts as missing (NaN, NaT, NA)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def resolve_currency(currency: str | None = None) -> str:
    """The currency of the amounts: ``currency``, else ``$INSIDERS_CURRENCY``, else GBP; an ISO 4217 code."""
    value = (currency or os.environ.get("INSIDERS_CURRENCY") or DEFAULT_CURRENCY).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", value):
        raise InsidersError(
            f"the currency must be a three-letter ISO 4217 code such as GBP, EUR or USD (--currency or "
            f"INSIDERS_CURRENCY), got {currency or os.environ.get('INSIDERS_CURRENCY')!r}"
        )
    return value


def fmt_int(value: Any) -> str:
    """A count: ``1,234``."""
    return "–" if is_missing(value) else f"{int(value):,}"


def fmt_pct(value: Any) -> str:
    """A share: ``43.7%``."""
    return "–" if is_missing(value) else f"{float(value):.1%}"


def fmt_money(value: Any, currency: str = DEFAULT_CURRENCY) -> str:
    """An amount of revenue with its currency: ``£9,462.77``, ``-£12.50``, ``CHF 9,462.77``."""
    if is_missing(value):
        return "–"
    amount = float(value)
    prefix = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    return f"{'-' if amount < 0 else ''}{prefix}{abs(amount):,.2f}"


def fmt_num(value: Any, digits: int = 1) -> str:
    """Any other number: ``41.2``."""
    return "–" if is_missing(value) else f"{float(value):,.{digits}f}"


def fmt_auto(value: Any) -> str:
    """A number of unknown scale (a feature the report has no format for): about three significant digits."""
    if is_missing(value):
        return "–"
    v = float(value)
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def fmt_time(value: Any) -> str:
    """A scoring time (stored in UTC): ``2011-12-09 06:00:00 UTC``."""
    return "–" if is_missing(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def fmt_day(value: Any) -> str:
    """A calendar day: ``2011-12-09``."""
    return "–" if is_missing(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def fmt_ratio(a: Any, b: Any) -> str:
    """How many times ``b`` is ``a``: ``2.4×``, ``0.62×`` (``–`` when either is missing or ``b`` is zero)."""
    if is_missing(a) or is_missing(b) or float(b) == 0:
        return "–"
    ratio = float(a) / float(b)
    return f"{ratio:,.1f}×" if ratio >= 1 else f"{ratio:.2f}×"
