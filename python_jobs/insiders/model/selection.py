"""Model selection: the candidate k compared on fit, business checks and stability, and the rule that picks one.

docs/model.md ("Choosing k") describes the rule and the selection table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN, AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from insiders.model.checks import business_checks
from insiders.model.config import TARGET, ModelConfig
from insiders.model.embedding import _Embedding, _fit_embedding, _kmeans, _matrix
from insiders.model.ranking import _insiders_mask, _mask_jaccard
from insiders.model.support import single_threaded
from insiders.model.validation import _canonical, validate_features

# Seeds used by model selection are kept apart from those used by stability() (insiders.model.stability), so that
# the stability report checks the chosen configuration on models it was not selected with.
_SELECTION_SEED_OFFSET = 1000
_SELECTION_SAMPLE_STREAM = 1
_STABILITY_SAMPLE_STREAM = 2


def _silhouette(Z: np.ndarray, labels: np.ndarray, config: ModelConfig, seed: int) -> float:
    keep = labels >= 0
    Z, labels = Z[keep], labels[keep]
    if len(np.unique(labels)) < 2 or len(labels) < 3:
        return float("nan")
    sample = config.silhouette_sample if len(labels) > config.silhouette_sample else None
    return float(silhouette_score(Z, labels, sample_size=sample, random_state=seed))


def _random_row_subset(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of a random ``fraction`` of ``n`` rows (at least two), drawn without replacement."""
    return np.sort(rng.choice(n, size=max(2, round(fraction * n)), replace=False))


@dataclass
class _Run:
    """One embedding used in model selection: the base seed, another seed, or a sample of customers."""

    kind: str  # "base", "seed" or "sample"
    seed: int
    emb: _Embedding


def _selection_runs(X: np.ndarray, config: ModelConfig) -> list[_Run]:
    runs = [_Run("base", config.seed, _fit_embedding(X, config, config.seed))]
    for i in range(config.selection_seeds):
        seed = config.seed + _SELECTION_SEED_OFFSET + i
        runs.append(_Run("seed", seed, _fit_embedding(X, config, seed)))
    rng = np.random.default_rng([config.seed, _SELECTION_SAMPLE_STREAM])
    for _ in range(config.selection_samples):
        rows = _random_row_subset(len(X), config.sample_fraction, rng)
        runs.append(_Run("sample", config.seed, _fit_embedding(X, config, config.seed, rows)))
    return runs


def _pairwise(masks: Sequence[np.ndarray]) -> list[float]:
    return [_mask_jaccard(a, b) for a, b in combinations(masks, 2)]


def _stability_figures(base: np.ndarray, seeds: list[np.ndarray], samples: list[np.ndarray]) -> dict[str, float]:
    seed_j = _pairwise([base, *seeds]) if seeds else []
    sample_j = [_mask_jaccard(base, m) for m in samples]

    def stat(values, f):
        return float(f(values)) if values else float("nan")

    return {
        "jaccard_seeds_median": stat(seed_j, np.median),
        "jaccard_seeds_min": stat(seed_j, np.min),
        "jaccard_samples_median": stat(sample_j, np.median),
        "jaccard_samples_min": stat(sample_j, np.min),
    }


def _dbscan_labels(Z: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """DBSCAN fitted on the training rows; other rows take the label of their nearest core sample within eps."""
    min_samples = 2 * Z.shape[1] + 1
    train = Z[rows]
    distances, _ = NearestNeighbors(n_neighbors=min_samples).fit(train).kneighbors(train)
    eps = max(float(np.quantile(distances[:, -1], 0.90)), 1e-9)
    model = DBSCAN(eps=eps, min_samples=min_samples).fit(train)
    labels = np.full(len(Z), -1)
    labels[rows] = model.labels_
    core = model.components_
    if len(core):
        others = np.setdiff1d(np.arange(len(Z)), rows)
        if len(others):
            d, idx = NearestNeighbors(n_neighbors=1).fit(core).kneighbors(Z[others])
            core_labels = model.labels_[model.core_sample_indices_]
            labels[others] = np.where(d[:, 0] <= eps, core_labels[idx[:, 0]], -1)
    return labels


def _comparison_labels(method: str, Z: np.ndarray, rows: np.ndarray, k: int, config: ModelConfig, seed: int):
    """Labels for every row of Z from a comparison method fitted on Z[rows] (capped for the hierarchical one)."""
    if method == "gaussian_mixture":
        gm = GaussianMixture(n_components=k, covariance_type="full", n_init=3, random_state=seed).fit(Z[rows])
        return gm.predict(Z)
    if method == "agglomerative_ward":
        fit_rows = rows
        if len(rows) > config.comparison_max_customers:
            rng = np.random.default_rng([seed, 3])
            fit_rows = np.sort(rng.choice(rows, config.comparison_max_customers, replace=False))
        agg = AgglomerativeClustering(n_clusters=k, linkage="ward").fit(Z[fit_rows])
        # Agglomerative clustering has no predict: other rows join the nearest cluster centre.
        centres = np.vstack([Z[fit_rows][agg.labels_ == c].mean(axis=0) for c in range(k)])
        return np.argmin(((Z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2), axis=1)
    if method == "dbscan":
        return _dbscan_labels(Z, rows)
    raise ValueError(method)


def _selection(features: pd.DataFrame, config: ModelConfig) -> tuple[int, pd.DataFrame, list[_Run]]:
    X = _matrix(features, config.features)
    revenue = features[TARGET].to_numpy(dtype=float)
    total_revenue = revenue.sum()
    n = len(X)
    runs = _selection_runs(X, config)
    base = runs[0]

    def describe(method: str, labels_per_run: list[np.ndarray], k: int | None) -> dict:
        masks = [
            _insiders_mask(lab, run.emb.train_rows, revenue) for lab, run in zip(labels_per_run, runs, strict=True)
        ]
        base_labels, base_mask = labels_per_run[0], masks[0]
        noise = float(np.mean(base_labels < 0))
        checks = {c.name: c for c in business_checks(features, base_mask, config)}
        failed = [name for name, c in checks.items() if c.passed is False]
        aris = [float(adjusted_rand_score(base_labels, other)) for other in labels_per_run[1:]]
        return {
            "method": method,
            "k": k,
            "clusters": len(set(base_labels[base_labels >= 0].tolist())),
            "silhouette_embedded": _silhouette(base.emb.Z, base_labels, config, config.seed),
            "insiders_customers": int(base_mask.sum()),
            "insiders_share": float(base_mask.mean()),
            "insiders_revenue_share": float(revenue[base_mask].sum() / total_revenue) if total_revenue else np.nan,
            "insiders_mean_revenue": float(revenue[base_mask].mean()) if base_mask.any() else np.nan,
            **_stability_figures(
                base_mask,
                [m for m, r in zip(masks[1:], runs[1:], strict=True) if r.kind == "seed"],
                [m for m, r in zip(masks[1:], runs[1:], strict=True) if r.kind == "sample"],
            ),
            # agreement of the whole partition (all segments), base model vs every other run, all customers
            "partition_ari_median": float(np.median(aris)) if aris else np.nan,
            "partition_ari_min": float(np.min(aris)) if aris else np.nan,
            "noise_share": noise if method == "dbscan" else np.nan,
            "useful": checks["insiders_share"].passed and checks["revenue_share"].passed,
            "defensible": not [f for f in failed if f not in ("insiders_share", "revenue_share")],
            "failed_checks": ", ".join(failed),
        }

    ks = [k for k in config.ks if k <= n]
    if not ks:
        raise ValueError(f"too few customers ({n}) for any candidate k {config.ks}")
    # within-cluster sum of squares of the base model for every k from min(ks) - 1 (k = 1: total sum of squares)
    base_z = base.emb.Z[base.emb.train_rows]
    within = {1: float(((base_z - base_z.mean(axis=0)) ** 2).sum())}
    rows = []
    for k in range(max(2, min(ks) - 1), max(ks) + 1):
        if k not in ks:
            within[k] = float(_kmeans(k, config, base.seed).fit(base_z).inertia_)
            continue
        fitted = [_kmeans(k, config, run.seed).fit(run.emb.Z[run.emb.train_rows]) for run in runs]
        within[k] = float(fitted[0].inertia_)
        rows.append(describe("kmeans", [f.predict(run.emb.Z) for f, run in zip(fitted, runs, strict=True)], k))
    table = pd.DataFrame(rows)
    table.insert(3, "within_ss", [within[k] for k in ks])
    table.insert(4, "variance_drop", [1 - within[k] / within[k - 1] if within[k - 1] else 0.0 for k in ks])
    elbow = _elbow(within, ks, config.min_variance_drop)
    chosen = _choose_k(table, config, elbow)
    table["elbow"] = table["k"] == elbow
    table["eligible"] = _eligible(table, config)
    table["chosen"] = table["k"] == chosen

    comparisons = []
    for method in ("gaussian_mixture", "agglomerative_ward", "dbscan"):
        labels = [_comparison_labels(method, run.emb.Z, run.emb.train_rows, chosen, config, run.seed) for run in runs]
        comparisons.append(describe(method, labels, None if method == "dbscan" else chosen))
    comp = pd.DataFrame(comparisons)
    comp["eligible"] = _eligible(comp, config)
    comp["chosen"] = False
    table = pd.concat([table, comp], ignore_index=True)
    table["k"] = table["k"].astype("Int64")
    return chosen, table, runs


def _stable(table: pd.DataFrame, config: ModelConfig) -> pd.Series:
    stable = pd.Series(True, index=table.index)
    for kind, floor in (("seeds", config.min_seed_jaccard), ("samples", config.min_jaccard)):
        med, low = table[f"jaccard_{kind}_median"], table[f"jaccard_{kind}_min"]
        stable &= (med.isna() | (med >= config.min_median_jaccard)) & (low.isna() | (low >= floor))
    return stable


def _eligible(table: pd.DataFrame, config: ModelConfig) -> pd.Series:
    """Useful (share and revenue share), defensible (every business check) and stable Insiders."""
    return table["useful"].astype(bool) & table["defensible"].astype(bool) & _stable(table, config)


def _elbow(within: Mapping[int, float], ks: Sequence[int], min_drop: float) -> int:
    """The largest k reached from min(ks) - 1 while each extra cluster still removes at least ``min_drop`` of the
    remaining within-cluster sum of squares; at least min(ks), at most max(ks)."""
    k = max(1, min(ks) - 1)
    while k + 1 <= max(ks) and within[k] > 0 and 1 - within[k + 1] / within[k] >= min_drop:
        k += 1
    return max(k, min(ks))


def _choose_k(table: pd.DataFrame, config: ModelConfig, elbow: int) -> int:
    """The selection rule (docs/model.md).

    Eligible: Insiders share within [min_insiders_share, max_insiders_share], revenue share >=
    min_insiders_revenue_share, every business check passed, both Jaccard medians >= min_median_jaccard, the seeds'
    minimum >= min_seed_jaccard and the samples' minimum >= min_jaccard. Choose the smallest eligible k at or above
    the elbow; else the largest eligible k below it. Without an eligible k, the same rule among the k whose Insiders
    pass every check but the two size checks and are stable (planted or small data sets whose best customers are
    fewer or bring less); else the most stable k among the defensible ones, else among the useful ones, else among
    all (ties: the smaller k).
    """
    return _choice(table, config, elbow)[0]


def _choice(table: pd.DataFrame, config: ModelConfig, elbow: int) -> tuple[int, str]:
    """``(k, why)``: the rule of :func:`_choose_k` and the sentence saying which branch of it decided."""
    if config.k is not None:
        return config.k, f"k = {config.k} was set by the user (no choice was made)."
    t = table.assign(
        eligible=_eligible(table, config),
        stable=_stable(table, config),
        worst_jaccard=table[["jaccard_seeds_min", "jaccard_samples_min"]].min(axis=1, skipna=True).fillna(1.0),
    )
    pools = (
        (t[t["eligible"]], "eligible k"),
        (t[t["defensible"] & t["stable"]], "k whose Insiders pass every check but the two size checks and are stable"),
    )
    for i, (pool, what) in enumerate(pools):
        lead = "" if i == 0 else "No k is eligible, so the rule looks among the " + what + ": "
        which = what if i == 0 else "of them"
        if (pool["k"] >= elbow).any():
            k = int(pool.loc[pool["k"] >= elbow, "k"].min())
            return (
                k,
                f"{lead}k = {k} is the smallest {which} at or above the elbow (k = {elbow}).",
            )
        if len(pool):
            k = int(pool["k"].max())
            return (
                k,
                f"{lead}k = {k} is the largest {which}, all below the elbow (k = {elbow}).",
            )
    for pool, what in ((t[t["defensible"]], "defensible"), (t[t["useful"]], "useful"), (t, "candidate")):
        if len(pool):
            k = int(pool.sort_values(["worst_jaccard", "k"], ascending=[False, True])["k"].iloc[0])
            return k, f"No k is eligible or stable and defensible: k = {k} is the most stable {what} k."
    raise ValueError("no candidate k to choose from: the selection table has no KMeans row")


def explain_choice(table: pd.DataFrame, config: ModelConfig, chosen: int) -> list[str]:
    """Sentences saying why ``chosen`` was picked, with the thresholds and how each candidate k fared."""
    km = table[table["method"] == "kmeans"]
    elbow = km.loc[km["elbow"], "k"]
    k, why = _choice(km, config, int(elbow.iloc[0]) if len(elbow) else chosen)
    lines = [why if k == chosen else f"k = {chosen}."]
    if config.k is None:
        lines.append(
            f"Candidates: k = {', '.join(str(int(k)) for k in km['k'])}. The rule: the smallest eligible k at or above "
            "the elbow (where one more segment stops removing a quarter of the remaining spread), else the largest "
            "eligible k below it."
        )
    lines.append(
        f"A k is eligible when its Insiders are {config.min_insiders_share:.0%}-{config.max_insiders_share:.0%} of "
        f"customers and bring at least {config.min_insiders_revenue_share:.0%} of revenue; when every customer in "
        f"the top {config.top_spender_share:.0%} by revenue who bought within {config.top_recent_days} days is in, "
        f"at most {config.max_below_median_share:.0%} of them spent less than the median customer, none has been "
        f"away more than {config.max_insider_recency_days} days, and the share without returns is within "
        f"{config.max_no_returns_gap:.2f} of that of as many top spenders; and when the Insiders Jaccard across "
        f"seeds and across 80 % samples has medians of at least {config.min_median_jaccard:.2f} and minimums of at "
        f"least {config.min_seed_jaccard:.2f} (seeds) and {config.min_jaccard:.2f} (samples)."
    )
    for row in km.itertuples(index=False):
        stable = _stable(pd.DataFrame([row._asdict()]), config).iloc[0]
        reasons = [r for r in str(row.failed_checks).split(", ") if r]
        if not stable:
            reasons.append("unstable")
        verdict = "eligible" if not reasons else "not eligible: " + ", ".join(_REASON_TEXT.get(r, r) for r in reasons)
        lines.append(
            f"- k = {int(row.k)}{' (chosen)' if int(row.k) == chosen else ''}: {row.insiders_customers:,} Insiders "
            f"({row.insiders_share:.1%}), {row.insiders_revenue_share:.1%} of revenue, Jaccard seeds "
            f"{row.jaccard_seeds_median:.3f}/{row.jaccard_seeds_min:.3f}, samples "
            f"{row.jaccard_samples_median:.3f}/{row.jaccard_samples_min:.3f}; {verdict}."
        )
    chosen_row = km[km["k"] == chosen]
    if len(chosen_row) and not bool(_eligible(chosen_row, config).iloc[0]):
        lines.append(
            f"Warning: the Insiders of k = {chosen} fail "
            + (str(chosen_row["failed_checks"].iloc[0]) or "the stability bar")
            + "; no candidate passed every check, so the rule fell back as docs/model.md describes."
            if config.k is None
            else f"Warning: the Insiders of the forced k = {chosen} fail: "
            + (str(chosen_row["failed_checks"].iloc[0]) or "the stability bar")
            + "."
        )
    return lines


_REASON_TEXT = {
    "insiders_share": "Insiders share out of range",
    "revenue_share": "too little revenue",
    "top_recent_spenders_in": "misses recent top spenders",
    "few_low_spenders": "includes low spenders",
    "all_recent": "includes lapsed customers",
    "returns_do_not_gate": "returns decide membership",
    "unstable": "unstable",
}


@single_threaded
def select_model(features: pd.DataFrame, config: ModelConfig | None = None) -> tuple[int, pd.DataFrame]:
    """Choose k and return ``(chosen_k, selection_table)``.

    For each candidate k, KMeans in the embedded space (the PCA-reduced forest embedding) of the model trained with
    ``config.seed``: silhouette in that space, Insiders size, share, mean revenue and revenue share, and the
    Insiders stability: Jaccard between models with ``selection_seeds`` other seeds (all pairs, with the base) and
    between the base model and models trained on ``selection_samples`` random samples of ``sample_fraction`` of
    the customers, applied to all. Comparison rows: a Gaussian mixture and Ward hierarchical clustering with the
    chosen k, and DBSCAN (noise excluded from its silhouette; ``noise_share`` reported), in the same spaces.
    Rule: see :func:`_choose_k` and docs/model.md.
    """
    config = config or ModelConfig()
    validate_features(features, config.features, allow_extra=True)
    chosen, table, _ = _selection(_canonical(features), config)
    return chosen, table
