"""The business checks: what makes an Insiders list useful and defensible, measured on a customer table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from insiders.model.config import ID_COLUMN, TARGET, ModelConfig


@dataclass(frozen=True)
class BusinessCheck:
    """One question a marketing director asks of the Insiders list, with the measured answer."""

    name: str
    passed: bool | None  # None: not measurable on this table (a column is missing)
    value: str
    rule: str

    def to_text(self) -> str:
        mark = {True: "pass", False: "FAIL", None: "n/a "}[self.passed]
        return f"[{mark}] {self.rule}: {self.value}"


def _top_mask(revenue: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` customers with the highest revenue (ties broken by position, i.e. by customer id)."""
    order = np.argsort(-revenue, kind="stable")
    mask = np.zeros(len(revenue), dtype=bool)
    mask[order[:count]] = True
    return mask


def business_checks(features: pd.DataFrame, insiders: np.ndarray, config: ModelConfig) -> list[BusinessCheck]:
    """The checks that make an Insiders list useful and defensible (docs/model.md, "What a defensible list is").

    ``features`` is the customer table (every customer, any columns; ``recency_days`` and ``qty_returns`` are used
    when present, whether or not they are model features); ``insiders`` a boolean mask over its rows.
    """
    insiders = np.asarray(insiders, dtype=bool)
    n, members = len(features), int(insiders.sum())
    revenue = features[TARGET].to_numpy(dtype=float)
    total = float(revenue.sum())
    share = members / n if n else 0.0
    revenue_share = float(revenue[insiders].sum() / total) if total else 0.0
    checks = [
        BusinessCheck(
            "insiders_share",
            config.min_insiders_share <= share <= config.max_insiders_share,
            f"{members:,} customers, {share:.1%}",
            f"Insiders are {config.min_insiders_share:.0%}-{config.max_insiders_share:.0%} of customers",
        ),
        BusinessCheck(
            "revenue_share",
            revenue_share >= config.min_insiders_revenue_share,
            f"{revenue_share:.1%}",
            f"Insiders bring at least {config.min_insiders_revenue_share:.0%} of gross revenue",
        ),
    ]
    recency = features["recency_days"].to_numpy(dtype=float) if "recency_days" in features else None
    top = _top_mask(revenue, int(np.ceil(config.top_spender_share * n)))
    if recency is not None:
        wanted = top & (recency <= config.top_recent_days)
        missed = features.loc[wanted & ~insiders, ID_COLUMN].tolist()
        shown = ", ".join(str(int(c)) for c in missed[:5]) + (" ..." if len(missed) > 5 else "")
        checks.append(
            BusinessCheck(
                "top_recent_spenders_in",
                not missed,
                f"{int(wanted.sum()) - len(missed)} of {int(wanted.sum())} are Insiders"
                + (f" (missing: {shown})" if missed else ""),
                f"every customer in the top {config.top_spender_share:.0%} by revenue who bought within "
                f"{config.top_recent_days} days is an Insider",
            )
        )
    else:
        checks.append(BusinessCheck("top_recent_spenders_in", None, "no recency_days column", "top recent spenders"))
    median = float(np.median(revenue)) if n else 0.0
    below = float(np.mean(revenue[insiders] < median)) if members else 0.0
    checks.append(
        BusinessCheck(
            "few_low_spenders",
            below <= config.max_below_median_share,
            f"{int(np.sum(revenue[insiders] < median))} Insiders ({below:.1%}) spent less than the median "
            f"customer ({median:,.2f})",
            f"at most {config.max_below_median_share:.0%} of Insiders spent less than the median customer",
        )
    )
    if recency is not None:
        oldest = float(recency[insiders].max()) if members else 0.0
        checks.append(
            BusinessCheck(
                "all_recent",
                oldest <= config.max_insider_recency_days,
                f"the longest an Insider has not bought is {oldest:,.0f} days",
                f"no Insider's last purchase is more than {config.max_insider_recency_days} days old",
            )
        )
    else:
        checks.append(BusinessCheck("all_recent", None, "no recency_days column", "recent Insiders"))
    if "qty_returns" in features and members:
        no_returns = features["qty_returns"].to_numpy(dtype=float) == 0
        ins_share = float(no_returns[insiders].mean())
        top_share = float(no_returns[_top_mask(revenue, members)].mean())
        checks.append(
            BusinessCheck(
                "returns_do_not_gate",
                abs(ins_share - top_share) <= config.max_no_returns_gap,
                f"{ins_share:.1%} of Insiders never returned goods, against {top_share:.1%} of the "
                f"{members:,} top spenders",
                f"the share of Insiders without returns is within {config.max_no_returns_gap:.2f} of that share "
                "among as many top spenders",
            )
        )
    else:
        checks.append(BusinessCheck("returns_do_not_gate", None, "no qty_returns column", "returns do not gate"))
    return checks


def failed_checks(checks: Sequence[BusinessCheck]) -> list[BusinessCheck]:
    return [c for c in checks if c.passed is False]
