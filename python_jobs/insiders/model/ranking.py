"""Segments ranked and named: ranks by mean revenue, the Insiders set of a labelling, the Jaccard index that
compares two Insiders sets, and the marketer's names of the other segments."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from insiders.model.config import INSIDERS_NAME, TARGET
from insiders.model.embedding import signed_log1p


def _rank_clusters(labels: np.ndarray, revenue: np.ndarray, n_clusters: int) -> np.ndarray:
    """Rank of each cluster id (1 = highest mean revenue); clusters without customers rank last, ties by id."""
    means = np.full(n_clusters, -np.inf)
    for c in range(n_clusters):
        members = labels == c
        if members.any():
            means[c] = revenue[members].mean()
    order = sorted(range(n_clusters), key=lambda c: (-means[c], c))
    ranks = np.empty(n_clusters, dtype=int)
    ranks[order] = np.arange(1, n_clusters + 1)
    return ranks


def _insiders_mask(labels: np.ndarray, train_rows: np.ndarray, revenue: np.ndarray) -> np.ndarray:
    """Customers in the cluster with the highest mean revenue among the training rows (noise label -1 ignored)."""
    train_labels = labels[train_rows]
    train_revenue = revenue[train_rows]
    best, best_mean = None, -np.inf
    for c in np.unique(train_labels):
        if c < 0:
            continue
        mean = train_revenue[train_labels == c].mean()
        if mean > best_mean:
            best, best_mean = c, mean
    return labels == best


def jaccard(a: Iterable, b: Iterable) -> float:
    """Jaccard index of two sets (1.0 for two empty sets)."""
    a, b = set(a), set(b)
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def _mask_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def _returns_column(features: Sequence[str]) -> str | None:
    return next((c for c in ("return_rate", "qty_returns") if c in features), None)


def _segment_name(seg: pd.DataFrame, population: pd.DataFrame, features: Sequence[str]) -> str:
    """A marketer's name for a non-Insiders segment, from its medians relative to the whole population.

    Spend: high >= 2x the population median revenue, low < 0.75x, else mid. Recency (when it is a feature): recent
    <= the population median, lapsed >= 2x it, else cooling. One-off: most of the segment bought once (median
    ``qty_invoices`` of 1, or median ``frequency`` >= 1 when only that is a feature). Heavy returners (when
    ``return_rate`` or ``qty_returns`` is a feature): the segment's median reaches the population's 90th percentile.
    """
    spend_ratio = seg[TARGET].median() / max(population[TARGET].median(), 1e-9)
    spend = "high" if spend_ratio >= 2 else "low" if spend_ratio < 0.75 else "mid"
    recency = None
    if "recency_days" in features:
        median_recency = max(population["recency_days"].median(), 1.0)
        r = seg["recency_days"].median()
        recency = "recent" if r <= median_recency else "lapsed" if r >= 2 * median_recency else "cooling"
    if "qty_invoices" in features:
        one_off = seg["qty_invoices"].median() <= 1 and spend != "high"
    else:
        one_off = "frequency" in features and seg["frequency"].median() >= 1 and spend != "high"
    returns = _returns_column(features)
    if returns:
        high_returns = population[returns].quantile(0.9)
        if high_returns > 0 and seg[returns].median() >= high_returns:
            return "One-off returners" if one_off else "Heavy returners"
    if one_off:
        one_off_names = {"recent": "New one-off buyers", "cooling": "One-off buyers", "lapsed": "Lapsed one-off buyers"}
        return one_off_names.get(recency or "", "One-off buyers")
    names = {
        ("high", "recent"): "Loyal big spenders",
        ("high", "cooling"): "Big spenders cooling off",
        ("high", "lapsed"): "Big spenders at risk",
        ("mid", "recent"): "Promising",
        ("mid", "cooling"): "Need attention",
        ("mid", "lapsed"): "At risk",
        ("low", "recent"): "Recent low spenders",
        ("low", "cooling"): "Low spenders",
        ("low", "lapsed"): "Lapsed low spenders",
        ("high", None): "Big spenders",
        ("mid", None): "Average spenders",
        ("low", None): "Low spenders",
    }
    return names[(spend, recency)]


#: words for the trait that tells two segments of the same name apart: (lower median, higher median)
_TRAIT_WORDS = {
    "gross_revenue": ("lower spend", "higher spend"),
    "recency_days": ("more recent", "less recent"),
    "qty_invoices": ("fewer orders", "more orders"),
    "qty_products": ("fewer lines", "more lines"),
    "qty_items": ("fewer units", "more units"),
    "frequency": ("spread-out orders", "orders close together"),
    "qty_returns": ("few returns", "more returns"),
    "return_rate": ("few returns", "more returns"),
    "avg_ticket": ("smaller lines", "larger lines"),
    "avg_basket_size": ("smaller baskets", "larger baskets"),
    "avg_unique_basket_size": ("narrower baskets", "wider baskets"),
}


def _trait_words(feature: str) -> tuple[str, str]:
    return _TRAIT_WORDS.get(feature, (f"lower {feature}", f"higher {feature}"))


def _separate(
    groups: list[tuple[int, pd.DataFrame]], population: pd.DataFrame, features: Sequence[str]
) -> dict[int, str]:
    """Qualifiers that tell segments of one name apart: the feature whose (log-scaled, standardised) medians differ
    most between them, worded low/high; with more than two, the middle ones are told apart the same way."""
    if len(groups) < 2:
        return {rank: "" for rank, _ in groups}
    scale = {f: float(np.std(signed_log1p(population[f]))) or 1.0 for f in features}
    medians = {
        f: [float(np.median(signed_log1p(seg[f]))) / scale[f] if len(seg) else 0.0 for _, seg in groups]
        for f in features
    }
    best = max(features, key=lambda f: (max(medians[f]) - min(medians[f]), -features.index(f)))
    order = sorted(range(len(groups)), key=lambda i: (medians[best][i], groups[i][0]))
    low, high = _trait_words(best)
    out = {groups[order[0]][0]: low, groups[order[-1]][0]: high}
    middle = [groups[i] for i in order[1:-1]]
    if len(middle) == 1:
        out[middle[0][0]] = f"middle {best.replace('_', ' ')}"
    elif middle:
        for rank, word in _separate(middle, population, [f for f in features if f != best] or features).items():
            out[rank] = f"middle {best.replace('_', ' ')}, {word}"
    return out


def _name_segments(
    features: pd.DataFrame, labels: np.ndarray, ranks: np.ndarray, feature_names: Sequence[str]
) -> dict[int, str]:
    """Unique name per rank; rank 1 is Insiders; segments that would share a name are told apart by the trait
    that separates them most (e.g. "Promising, more orders" / "Promising, fewer orders")."""
    names: dict[int, str] = {}
    members: dict[int, pd.DataFrame] = {}
    for cluster, rank in enumerate(ranks):
        seg = features.loc[labels == cluster]
        members[int(rank)] = seg
        if rank == 1:
            names[int(rank)] = INSIDERS_NAME
            continue
        names[int(rank)] = _segment_name(seg, features, feature_names) if len(seg) else "Empty segment"
    for name in sorted(set(names.values())):
        same = sorted(r for r, n in names.items() if n == name)
        if len(same) < 2 or name == INSIDERS_NAME:
            continue
        words = _separate([(r, members[r]) for r in same], features, list(feature_names))
        for rank in same:
            names[rank] = f"{name}, {words[rank]}"
    # Still equal (identical medians on every feature, or empty segments): say which is bigger by revenue rank.
    seen: dict[str, int] = {}
    for rank in sorted(names):
        if names[rank] in seen:
            names[rank] = f"{names[rank]}, {'next' if rank == seen[names[rank]] + 1 else 'smaller'} by spend"
        seen.setdefault(names[rank], rank)
    return names
