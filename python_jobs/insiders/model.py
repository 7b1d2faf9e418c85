"""The segmentation model: a random-forest embedding of customers, clustered with KMeans.

Pure functions and classes on pandas DataFrames; no warehouse or file access. The pipeline is

1. ``log`` and ``scale``: signed ``log1p`` of every feature, then standardisation (the features are heavy-tailed:
   a few customers spend a hundred times the median);
2. ``embed``: :class:`ForestLeafEmbedding`, a random forest that learns ``gross_revenue`` from the other features
   (as in the original study); each customer is mapped to the average, over the trees, of the feature centroid
   of the leaf it falls in: a forest-proximity-weighted smoothing of the customer's own features;
3. ``reduce``: PCA to a few dimensions;
4. ``cluster``: KMeans (k-means++ seeding, many restarts, fixed seed).

Segments are ranked by mean gross revenue (rank 1 = **Insiders**) and named by rules on their profile, so ranks and
names, not cluster ids, are what reports use. ``docs/model.md`` explains the choices and the measured figures.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted
from threadpoolctl import threadpool_limits

#: spend, how long since the last purchase, how many orders, and the share of units sent back (docs/model.md
#: compares this set with the study's ``gross_revenue, recency_days, qty_products, frequency, qty_returns``)
DEFAULT_FEATURES = ("gross_revenue", "recency_days", "frequency", "return_rate")
TARGET = "gross_revenue"
ID_COLUMN = "customer_id"
INSIDERS_NAME = "Insiders"
DEFAULT_CANDIDATE_KS = (3, 4, 5, 6, 7, 8, 9, 10)

# Seeds used by model selection are kept apart from those used by stability(), so that the stability report
# checks the chosen configuration on models it was not selected with.
_SELECTION_SEED_OFFSET = 1000
_SELECTION_SAMPLE_STREAM = 1
_STABILITY_SAMPLE_STREAM = 2


def _single_threaded(func):
    """Run ``func`` with native thread pools (OpenMP, BLAS) limited to one thread.

    On these small dense problems KMeans is many times faster this way, and results do not depend on the machine's
    core count (floating-point sums split over threads can differ in the last bits and flip a label). The forest
    still uses ``n_jobs`` processes' worth of joblib threads, which does not change its result.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1):
            return func(*args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a model; same data + same config => identical model and labels."""

    features: tuple[str, ...] = DEFAULT_FEATURES
    #: number of segments; ``None`` lets :func:`select_model` choose among ``candidate_ks``
    k: int | None = None
    candidate_ks: tuple[int, ...] = DEFAULT_CANDIDATE_KS
    seed: int = 42
    # random forest (the embedding)
    n_estimators: int = 300
    max_depth: int | None = None
    #: a share of the training customers (float < 1) or a count (int); large leaves make a smooth embedding
    min_samples_leaf: float | int = 0.005
    #: share of the input features tried at each split (one feature drawn at random per split with 3 or 4 inputs)
    max_features: float = 0.25
    #: keep each customer's own (scaled) target in the embedding instead of its leaves' average target: the
    #: forest smooths the behaviour features, and what the programme rewards (spend) is the customer's own
    keep_target: bool = True
    # reducer and clustering; n_components None = as many components as features (a rotation, nothing dropped)
    n_components: int | None = None
    n_init: int = 50
    # model selection (see select_model)
    selection_seeds: int = 3
    selection_samples: int = 3
    sample_fraction: float = 0.8
    # what makes Insiders useful: a minority of customers (min..max share) bringing a large share of revenue
    min_insiders_share: float = 0.05
    max_insiders_share: float = 0.16
    min_insiders_revenue_share: float = 0.50
    # what makes Insiders defensible (business_checks): the top spenders who bought recently are all in ...
    top_spender_share: float = 0.01
    top_recent_days: int = 30
    # ... nobody is in who stopped buying long ago or spent less than the median customer ...
    max_insider_recency_days: int = 90
    max_below_median_share: float = 0.01
    # ... and returning goods does not decide membership: the share of Insiders without returns stays within this
    # distance of that share among as many top spenders
    max_no_returns_gap: float = 0.10
    # what makes Insiders stable: Jaccard of the Insiders of models with other seeds and on 80 % samples
    min_median_jaccard: float = 0.95
    min_seed_jaccard: float = 0.93
    min_jaccard: float = 0.90
    #: the elbow: one more cluster must remove at least this share of the remaining within-cluster sum of squares
    min_variance_drop: float = 0.25
    #: silhouette is computed on at most this many customers (a fixed-seed sample above it)
    silhouette_sample: int = 10_000
    #: the hierarchical comparison is quadratic in memory: it runs on a fixed-seed sample above this size
    comparison_max_customers: int = 10_000
    n_jobs: int | None = None

    def __post_init__(self) -> None:
        features = tuple(self.features)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "candidate_ks", tuple(int(k) for k in self.candidate_ks))
        problems = []
        if len(set(features)) != len(features):
            problems.append(f"features are repeated: {list(features)}")
        if TARGET not in features:
            problems.append(f"features must include {TARGET!r} (the forest's target and the ranking criterion)")
        if len(features) < 2:
            problems.append("features need gross_revenue and at least one other feature")
        if ID_COLUMN in features:
            problems.append(f"{ID_COLUMN!r} is the customer key, not a feature")
        if self.k is not None and self.k < 2:
            problems.append(f"k must be at least 2, got {self.k}")
        if self.k is None and (not self.candidate_ks or min(self.candidate_ks) < 2):
            problems.append(f"candidate_ks must be non-empty and each at least 2, got {self.candidate_ks}")
        if self.n_components is not None and not 1 <= self.n_components <= len(features):
            problems.append(f"n_components must be between 1 and the number of features, got {self.n_components}")
        if not 0 < self.sample_fraction < 1:
            problems.append(f"sample_fraction must be between 0 and 1, got {self.sample_fraction}")
        if self.n_estimators < 1 or self.n_init < 1:
            problems.append("n_estimators and n_init must be positive")
        if problems:
            raise ValueError("invalid model configuration: " + "; ".join(problems))

    @property
    def components(self) -> int:
        """Number of PCA components: ``n_components`` or, when unset, one per feature."""
        return self.n_components if self.n_components is not None else len(self.features)

    @property
    def ks(self) -> tuple[int, ...]:
        """The values of k that model selection considers."""
        return (self.k,) if self.k is not None else tuple(sorted(set(self.candidate_ks)))


# ------------------------------------------------------------------------------------------------------ validation


def _is_number_dtype(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _is_integer_dtype(dtype) -> bool:
    return pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _customers(n: int) -> str:
    return f"{n:,} customer" + ("" if n == 1 else "s")


def validate_features(
    df: pd.DataFrame,
    feature_names: Sequence[str],
    dtypes: Mapping[str, str] | None = None,
    *,
    id_column: str = ID_COLUMN,
    allow_extra: bool = False,
) -> None:
    """Raise ``ValueError`` describing everything wrong with a customer feature table; return None when it is fine.

    Checks: the id column and every feature are present; no other column (unless ``allow_extra``); each feature is
    a number column (booleans, text and objects are not; a float column where an integer was trained is accepted
    only when its values are whole numbers); no NULL and no infinite value; no repeated customer id. Counts of
    affected customers are given per problem and per column.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"customer features must be a pandas DataFrame, got {type(df).__name__}")
    features = list(feature_names)
    expected = [id_column, *features]
    problems: list[str] = []

    missing = [c for c in expected if c not in df.columns]
    if missing:
        problems.append("missing columns: " + ", ".join(missing))
    if not allow_extra:
        extra = [str(c) for c in df.columns if c not in expected]
        if extra:
            problems.append("unexpected columns: " + ", ".join(extra))
    duplicated_columns = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if duplicated_columns:
        problems.append("repeated columns: " + ", ".join(duplicated_columns))

    present = [c for c in features if c in df.columns and c not in duplicated_columns]
    numeric = []
    for col in present:
        dtype = df[col].dtype
        want = (dtypes or {}).get(col)
        want_text = f" (trained as {want})" if want else ""
        if not _is_number_dtype(dtype):
            problems.append(f"column {col} has type {dtype}, expected a number{want_text}")
            continue
        numeric.append(col)
        if want is not None and _is_integer_dtype(pd.api.types.pandas_dtype(want)) and not _is_integer_dtype(dtype):
            values = df[col].to_numpy(dtype=float, na_value=np.nan)
            finite = values[np.isfinite(values)]
            fractional = int(np.count_nonzero(finite != np.round(finite)))
            if fractional:
                problems.append(
                    f"column {col} has type {dtype} with {_customers(fractional)} holding fractions, "
                    f"expected whole numbers{want_text}"
                )

    if numeric:
        values = np.column_stack([df[c].to_numpy(dtype=float, na_value=np.nan) for c in numeric])
        null = np.column_stack([df[c].isna().to_numpy() for c in numeric])
        infinite = np.isinf(values)
        for mask, what in ((null, "NULL"), (infinite, "infinite")):
            rows = int(mask.any(axis=1).sum())
            if rows:
                per_column = ", ".join(f"{c}: {int(n):,}" for c, n in zip(numeric, mask.sum(axis=0), strict=True) if n)
                problems.append(f"{_customers(rows)} with {what} values ({per_column})")

    if id_column in df.columns and id_column not in duplicated_columns:
        ids = df[id_column]
        if ids.isna().any():
            problems.append(f"{_customers(int(ids.isna().sum()))} without a {id_column}")
        repeated = int(ids.dropna().duplicated().sum())
        if repeated:
            problems.append(f"{repeated:,} repeated {id_column} values")

    if problems:
        raise ValueError(f"customer features are not valid ({len(df):,} rows): " + "; ".join(problems))


# --------------------------------------------------------------------------------------------------- pipeline parts


def signed_log1p(x):
    """``sign(x) * log(1 + |x|)``: compresses heavy tails, keeps 0 at 0 and works for negative values."""
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.log1p(np.abs(x))


class ForestLeafEmbedding(TransformerMixin, BaseEstimator):
    """Random-forest embedding: each customer becomes the tree-average of the centroids of the leaves it falls in.

    A :class:`~sklearn.ensemble.RandomForestRegressor` learns column ``target_index`` of the input from the other
    columns. Each leaf of each tree stores the mean of *all* input columns over the training rows that reach it.
    ``transform`` passes rows down every tree and averages the centroids of the leaves reached. The result has the
    input's columns, smoothed over the customers that the forest finds alike for predicting revenue (the forest
    proximity); large leaves make it smooth, many trees make it independent of the seed. With ``keep_target`` the
    target column of the result is the row's own value rather than its leaves' average: the forest never sees the
    target among its inputs, so without it a big spender with an ordinary order pattern would be described by the
    spend of ordinary customers. Row-independent.
    """

    def __init__(
        self,
        target_index: int = 0,
        n_estimators: int = 300,
        max_depth: int | None = None,
        min_samples_leaf: float | int = 0.01,
        max_features: float = 0.25,
        random_state: int | None = None,
        n_jobs: int | None = None,
        batch_size: int = 20_000,
        keep_target: bool = False,
    ):
        self.target_index = target_index
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.batch_size = batch_size
        self.keep_target = keep_target

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        return np.delete(X, self.target_index, axis=1)

    def fit(self, X, y=None):
        X = check_array(X, dtype=np.float64)
        if X.shape[1] < 2:
            raise ValueError("the forest embedding needs the target and at least one other column")
        self.n_features_in_ = X.shape[1]
        forest = RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        )
        forest.fit(self._inputs(X), X[:, self.target_index])
        self.forest_ = forest
        sizes = np.array([tree.tree_.node_count for tree in forest.estimators_], dtype=np.int64)
        self.offsets_ = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        total = int(sizes.sum())
        nodes = (forest.apply(self._inputs(X)) + self.offsets_).ravel()
        counts = np.bincount(nodes, minlength=total).astype(float)
        n_trees = len(sizes)
        sums = np.column_stack(
            [np.bincount(nodes, weights=np.repeat(X[:, j], n_trees), minlength=total) for j in range(X.shape[1])]
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            centroids = sums / counts[:, None]
        # Internal nodes are never reached by apply(); every leaf holds at least one training row.
        self.centroids_ = np.nan_to_num(centroids, nan=0.0)
        return self

    def transform(self, X):
        check_is_fitted(self, "centroids_")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} columns, got {X.shape[1]}")
        out = np.empty((X.shape[0], self.n_features_in_))
        for start in range(0, X.shape[0], self.batch_size):
            part = X[start : start + self.batch_size]
            nodes = self.forest_.apply(self._inputs(part)) + self.offsets_
            acc = np.zeros((part.shape[0], self.n_features_in_))
            for t in range(nodes.shape[1]):
                acc += self.centroids_[nodes[:, t]]
            out[start : start + part.shape[0]] = acc / nodes.shape[1]
        # Artifacts pickled before keep_target existed have no such attribute: they keep their behaviour.
        if getattr(self, "keep_target", False):
            out[:, self.target_index] = X[:, self.target_index]
        return out


def _embedding_steps(config: ModelConfig, seed: int) -> list[tuple[str, object]]:
    return [
        ("log", FunctionTransformer(signed_log1p, feature_names_out="one-to-one")),
        ("scale", StandardScaler()),
        (
            "embed",
            ForestLeafEmbedding(
                target_index=config.features.index(TARGET),
                n_estimators=config.n_estimators,
                max_depth=config.max_depth,
                min_samples_leaf=config.min_samples_leaf,
                max_features=config.max_features,
                random_state=seed,
                n_jobs=config.n_jobs,
                keep_target=config.keep_target,
            ),
        ),
        ("reduce", PCA(n_components=config.components, svd_solver="full", random_state=seed)),
    ]


def _kmeans(k: int, config: ModelConfig, seed: int) -> KMeans:
    return KMeans(n_clusters=k, init="k-means++", n_init=config.n_init, random_state=seed)


def build_pipeline(config: ModelConfig, k: int, seed: int | None = None) -> Pipeline:
    """The unfitted pipeline: log -> scale -> forest embedding -> PCA -> KMeans."""
    seed = config.seed if seed is None else seed
    return Pipeline([*_embedding_steps(config, seed), ("cluster", _kmeans(k, config, seed))])


def _matrix(features: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    return np.column_stack([features[c].to_numpy(dtype=float, na_value=np.nan) for c in names]).reshape(
        len(features), len(names)
    )


@dataclass
class _Embedding:
    """A fitted embedding (all pipeline steps but the clustering) and the training customers' coordinates."""

    steps: list[tuple[str, object]]
    train_rows: np.ndarray
    Z: np.ndarray  # coordinates of ALL customers given to _fit_embedding

    def pipeline(self, cluster: KMeans) -> Pipeline:
        return Pipeline([*self.steps, ("cluster", cluster)])


def _fit_embedding(X: np.ndarray, config: ModelConfig, seed: int, rows: np.ndarray | None = None) -> _Embedding:
    rows = np.arange(len(X)) if rows is None else rows
    head = Pipeline(_embedding_steps(config, seed))
    head.fit(X[rows])
    return _Embedding(steps=list(head.steps), train_rows=rows, Z=head.transform(X))


# ------------------------------------------------------------------------------------------------ business checks


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


# ------------------------------------------------------------------------------------------------ ranks and names


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
        return {"recent": "New one-off buyers", "cooling": "One-off buyers", "lapsed": "Lapsed one-off buyers"}.get(
            recency, "One-off buyers"
        )
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


# --------------------------------------------------------------------------------------------------------- the model


@dataclass
class SegmentModel:
    """A trained segmentation: apply it with :meth:`predict`; it is never refitted.

    Picklable with joblib (unpickling needs ``insiders.model`` importable).
    """

    pipeline: Pipeline
    features: tuple[str, ...]
    dtypes: dict[str, str]
    cluster_ranks: dict[int, int]
    segment_names: dict[int, str]
    projection_2d: PCA
    config: ModelConfig
    trained_customers: int
    silhouette_embedded: float
    sklearn_version: str = ""

    @property
    def k(self) -> int:
        return len(self.cluster_ranks)

    def segments(self) -> pd.DataFrame:
        """One row per segment: cluster_id, segment_rank, segment_name, sorted by rank."""
        rows = [
            {"cluster_id": c, "segment_rank": r, "segment_name": self.segment_names[r]}
            for c, r in self.cluster_ranks.items()
        ]
        return pd.DataFrame(rows).sort_values("segment_rank", ignore_index=True)

    def validate(self, features: pd.DataFrame) -> None:
        """Raise ValueError when ``features`` cannot be scored (extra columns are allowed and ignored)."""
        validate_features(features, self.features, self.dtypes, allow_extra=True)

    def _embedded(self, features: pd.DataFrame) -> np.ndarray:
        self.validate(features)
        X = _matrix(features, self.features)
        if len(X) == 0:
            return np.empty((0, self.config.components))
        return self.pipeline[:-1].transform(X)

    @_single_threaded
    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """customer_id, cluster_id, segment_rank, segment_name, is_insider; same rows, order and index as input.

        Each row's result depends on that row only, so scoring in chunks gives the same answer as in one go.
        """
        Z = self._embedded(features)
        clusters = self.pipeline[-1].predict(Z) if len(Z) else np.empty(0, dtype=int)
        ranks = np.array([self.cluster_ranks[int(c)] for c in clusters], dtype=int)
        return pd.DataFrame(
            {
                ID_COLUMN: features[ID_COLUMN].to_numpy(),
                "cluster_id": clusters.astype(int),
                "segment_rank": ranks,
                "segment_name": pd.Series([self.segment_names[r] for r in ranks], dtype=object).to_numpy(),
                "is_insider": ranks == 1,
            },
            index=features.index,
        )

    @_single_threaded
    def embed_2d(self, features: pd.DataFrame) -> np.ndarray:
        """(n, 2) coordinates of customers in the model's clustering space (its first two principal axes)."""
        Z = self._embedded(features)
        return self.projection_2d.transform(Z) if len(Z) else np.empty((0, 2))

    def profile(self, features: pd.DataFrame) -> pd.DataFrame:
        """Per segment: rank, name, cluster id, customers, share of customers, mean of each feature, revenue,
        revenue share. Every segment of the model appears, with zero customers when none falls in it."""
        scored = self.predict(features)
        return _profile_table(features, scored, self.features, self.segments())


def _profile_table(
    features: pd.DataFrame, scored: pd.DataFrame, feature_names: Sequence[str], segments: pd.DataFrame
) -> pd.DataFrame:
    data = pd.DataFrame({c: features[c].to_numpy(dtype=float, na_value=np.nan) for c in feature_names})
    data["segment_rank"] = scored["segment_rank"].to_numpy()
    total_customers = len(data)
    total_revenue = float(data[TARGET].sum())
    grouped = data.groupby("segment_rank")
    means = grouped[list(feature_names)].mean().add_prefix("mean_")
    table = segments.set_index("segment_rank").join(grouped.size().rename("customers")).join(means)
    table["customers"] = table["customers"].fillna(0).astype(int)
    table["revenue"] = grouped[TARGET].sum().reindex(table.index).fillna(0.0)
    table["customer_share"] = table["customers"] / total_customers if total_customers else np.nan
    table["revenue_share"] = table["revenue"] / total_revenue if total_revenue else np.nan
    columns = [
        "segment_name",
        "cluster_id",
        "customers",
        "customer_share",
        *[f"mean_{c}" for c in feature_names],
        "revenue",
        "revenue_share",
    ]
    return table[columns].reset_index()


# -------------------------------------------------------------------------------------------------- model selection


def _silhouette(Z: np.ndarray, labels: np.ndarray, config: ModelConfig, seed: int) -> float:
    keep = labels >= 0
    Z, labels = Z[keep], labels[keep]
    if len(np.unique(labels)) < 2 or len(labels) < 3:
        return float("nan")
    sample = config.silhouette_sample if len(labels) > config.silhouette_sample else None
    return float(silhouette_score(Z, labels, sample_size=sample, random_state=seed))


def _sample_rows(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
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
        rows = _sample_rows(len(X), config.sample_fraction, rng)
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
    raise AssertionError("unreachable: the table has at least one row")


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


@_single_threaded
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


# ------------------------------------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    model: SegmentModel
    selection: pd.DataFrame
    profile: pd.DataFrame
    chosen_k: int
    seconds: float
    #: the business checks of the trained model's Insiders, on the training customers
    checks: list[BusinessCheck] = field(default_factory=list)
    #: why this k, in sentences (model card and ``insiders train``)
    explanation: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[BusinessCheck]:
        return failed_checks(self.checks)


def _canonical(features: pd.DataFrame) -> pd.DataFrame:
    """Customers sorted by id: training does not depend on the order in which the warehouse returned the rows."""
    return features.sort_values(ID_COLUMN, kind="stable").reset_index(drop=True)


def _dtypes(features: pd.DataFrame, names: Sequence[str]) -> dict[str, str]:
    return {c: str(features[c].dtype) for c in names}


def _build_model(
    features: pd.DataFrame, config: ModelConfig, k: int, seed: int, emb: _Embedding | None = None
) -> tuple[SegmentModel, np.ndarray]:
    """Fit the model on ``features`` (or reuse a fitted embedding of exactly these rows); return it and the labels
    of the training rows."""
    X = _matrix(features, config.features)
    if emb is None:
        emb = _fit_embedding(X, config, seed)
    Z = emb.Z[emb.train_rows]
    train = features.iloc[emb.train_rows]
    cluster = _kmeans(k, config, seed).fit(Z)
    labels = cluster.labels_
    revenue = train[TARGET].to_numpy(dtype=float)
    ranks = _rank_clusters(labels, revenue, k)
    names = _name_segments(train.reset_index(drop=True), labels, ranks, config.features)
    projection = PCA(n_components=min(2, Z.shape[1]), svd_solver="full", random_state=seed).fit(Z)
    if projection.n_components_ < 2:  # a one-dimensional space: pad the picture with a zero axis
        projection = _PaddedProjection(projection)

    model = SegmentModel(
        pipeline=emb.pipeline(cluster),
        features=tuple(config.features),
        dtypes=_dtypes(features, config.features),
        cluster_ranks={int(c): int(r) for c, r in enumerate(ranks)},
        segment_names=names,
        projection_2d=projection,
        config=replace(config, k=k),
        trained_customers=len(train),
        silhouette_embedded=_silhouette(Z, labels, config, seed),
        sklearn_version=sklearn.__version__,
    )
    return model, labels


class _PaddedProjection:
    def __init__(self, pca: PCA):
        self.pca = pca

    def transform(self, Z):
        one = self.pca.transform(Z)
        return np.column_stack([one[:, 0], np.zeros(len(one))])


@_single_threaded
def train(features: pd.DataFrame, config: ModelConfig | None = None) -> TrainResult:
    """Select k (unless ``config.k`` is set; the selection table is then computed for that k only), fit the model
    with ``config.seed`` on all customers, name its segments and profile them."""
    started = time.perf_counter()
    config = config or ModelConfig()
    validate_features(features, config.features, allow_extra=True)
    if len(features) < 2 * max(config.ks):
        raise ValueError(f"too few customers to train: {len(features)} for k up to {max(config.ks)}")
    features = _canonical(features)
    chosen, table, runs = _selection(features, config)
    model, _ = _build_model(features, config, chosen, config.seed, emb=runs[0].emb)
    profile = model.profile(features)
    checks = business_checks(features, model.predict(features)["is_insider"].to_numpy(), config)
    return TrainResult(
        model=model,
        selection=table,
        profile=profile,
        chosen_k=chosen,
        seconds=time.perf_counter() - started,
        checks=checks,
        explanation=explain_choice(table, config, chosen),
    )


# ------------------------------------------------------------------------------------------------------- stability


@dataclass
class StabilityReport:
    """How much the Insiders membership moves when the model is retrained with other seeds or on samples."""

    k: int
    customers: int
    insiders_customers: int
    insiders_share: float
    insiders_mean_revenue: float
    insiders_revenue_share: float
    silhouette_embedded: float
    seed_pairs: list[tuple[int, int, float]] = field(default_factory=list)
    sample_runs: list[tuple[int, int, float]] = field(default_factory=list)  # (sample number, insiders, jaccard)
    seconds: float = 0.0
    #: the business checks of the full model's Insiders
    checks: list[BusinessCheck] = field(default_factory=list)

    @property
    def seed_jaccards(self) -> list[float]:
        return [j for _, _, j in self.seed_pairs]

    @property
    def sample_jaccards(self) -> list[float]:
        return [j for _, _, j in self.sample_runs]

    def summary(self) -> dict[str, float]:
        s, p = self.seed_jaccards, self.sample_jaccards
        return {
            "jaccard_seeds_median": float(np.median(s)) if s else float("nan"),
            "jaccard_seeds_min": float(np.min(s)) if s else float("nan"),
            "jaccard_samples_median": float(np.median(p)) if p else float("nan"),
            "jaccard_samples_min": float(np.min(p)) if p else float("nan"),
        }

    def passes(self, min_median: float = 0.9, min_jaccard: float = 0.8) -> bool:
        """True when both medians reach ``min_median`` and both minimums reach ``min_jaccard``."""
        s = self.summary()
        return all(
            s[f"jaccard_{kind}_median"] >= min_median and s[f"jaccard_{kind}_min"] >= min_jaccard
            for kind in ("seeds", "samples")
        )

    def shortcomings(self, config: ModelConfig) -> list[str]:
        """What falls short of the configuration's bars: stability figures and failed business checks."""
        s = self.summary()
        bars = [
            ("seeds", "median", config.min_median_jaccard),
            ("seeds", "min", config.min_seed_jaccard),
            ("samples", "median", config.min_median_jaccard),
            ("samples", "min", config.min_jaccard),
        ]
        out = [
            f"Jaccard {kind} {stat} {s[f'jaccard_{kind}_{stat}']:.3f} < {bar:.2f}"
            for kind, stat, bar in bars
            if s[f"jaccard_{kind}_{stat}"] < bar
        ]
        return out + [c.to_text() for c in failed_checks(self.checks)]

    def to_frame(self) -> pd.DataFrame:
        """One row per comparison: kind (seeds/sample), what was compared, Jaccard of the Insiders sets."""
        rows = [
            {"comparison": "seeds", "a": f"seed {a}", "b": f"seed {b}", "jaccard": j} for a, b, j in self.seed_pairs
        ]
        rows += [
            {"comparison": "sample", "a": "full model", "b": f"sample {i} ({n:,} insiders)", "jaccard": j}
            for i, n, j in self.sample_runs
        ]
        return pd.DataFrame(rows, columns=["comparison", "a", "b", "jaccard"])

    def to_text(self) -> str:
        s = self.summary()
        return "\n".join(
            [
                f"Insiders stability (k={self.k}, {self.customers:,} customers, {self.seconds:.0f} s)",
                f"  Insiders: {self.insiders_customers:,} customers ({self.insiders_share:.1%}), "
                f"mean spend {self.insiders_mean_revenue:,.2f}, {self.insiders_revenue_share:.1%} of revenue",
                f"  silhouette in the clustering space (PCA of the forest embedding): {self.silhouette_embedded:.3f}",
                f"  Jaccard across seeds ({len(self.seed_pairs)} pairs): median {s['jaccard_seeds_median']:.3f}, "
                f"min {s['jaccard_seeds_min']:.3f}",
                f"  Jaccard full model vs models trained on samples ({len(self.sample_runs)}): "
                f"median {s['jaccard_samples_median']:.3f}, min {s['jaccard_samples_min']:.3f}",
                *(["Business checks of the Insiders:"] if self.checks else []),
                *(f"  {c.to_text()}" for c in self.checks),
            ]
        )


@_single_threaded
def stability(
    features: pd.DataFrame,
    config: ModelConfig | None = None,
    seeds: int = 5,
    samples: int = 5,
    sample_fraction: float | None = None,
) -> StabilityReport:
    """Jaccard of the Insiders sets (a) between the model trained with ``config.seed`` and ``seeds`` models trained
    with other seeds, all pairs; (b) between that full model and ``samples`` models trained with the same seed on
    random samples of ``sample_fraction`` (default ``config.sample_fraction``) of the customers, applied to ALL
    customers. k is ``config.k`` or, when unset, chosen once by :func:`select_model` on all customers. The seeds
    and samples differ from those model selection uses."""
    started = time.perf_counter()
    config = config or ModelConfig()
    validate_features(features, config.features, allow_extra=True)
    fraction = config.sample_fraction if sample_fraction is None else sample_fraction
    k = config.k if config.k is not None else select_model(features, config)[0]
    features = _canonical(features)
    revenue = features[TARGET].to_numpy(dtype=float)

    base, _ = _build_model(features, config, k, config.seed)
    masks = {config.seed: base.predict(features)["is_insider"].to_numpy()}
    for i in range(1, seeds + 1):
        seed = config.seed + i
        model, _ = _build_model(features, config, k, seed)
        masks[seed] = model.predict(features)["is_insider"].to_numpy()
    seed_pairs = [(a, b, _mask_jaccard(masks[a], masks[b])) for a, b in combinations(masks, 2)]

    rng = np.random.default_rng([config.seed, _STABILITY_SAMPLE_STREAM])
    sample_runs = []
    for i in range(1, samples + 1):
        rows = _sample_rows(len(features), fraction, rng)
        model, _ = _build_model(features.iloc[rows], config, k, config.seed)
        mask = model.predict(features)["is_insider"].to_numpy()
        sample_runs.append((i, int(mask.sum()), _mask_jaccard(masks[config.seed], mask)))

    insiders = masks[config.seed]
    total = revenue.sum()
    return StabilityReport(
        k=k,
        customers=len(features),
        insiders_customers=int(insiders.sum()),
        insiders_share=float(insiders.mean()),
        insiders_mean_revenue=float(revenue[insiders].mean()) if insiders.any() else float("nan"),
        insiders_revenue_share=float(revenue[insiders].sum() / total) if total else float("nan"),
        silhouette_embedded=base.silhouette_embedded,
        seed_pairs=seed_pairs,
        sample_runs=sample_runs,
        seconds=time.perf_counter() - started,
        checks=business_checks(features, insiders, config),
    )


__all__ = [
    "DEFAULT_FEATURES",
    "BusinessCheck",
    "ForestLeafEmbedding",
    "ModelConfig",
    "SegmentModel",
    "StabilityReport",
    "TrainResult",
    "build_pipeline",
    "business_checks",
    "explain_choice",
    "jaccard",
    "select_model",
    "signed_log1p",
    "stability",
    "train",
    "validate_features",
]
