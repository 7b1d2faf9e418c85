"""What defines a model: the feature list, the target, the customer key and :class:`ModelConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from insiders.model.support import pickled_as_package

#: spend, how long since the last purchase, how many orders, and the share of units sent back (docs/model.md
#: compares this set with the study's ``gross_revenue, recency_days, qty_products, frequency, qty_returns``)
DEFAULT_FEATURES = ("gross_revenue", "recency_days", "frequency", "return_rate")
TARGET = "gross_revenue"
ID_COLUMN = "customer_id"
INSIDERS_NAME = "Insiders"
DEFAULT_CANDIDATE_KS = (3, 4, 5, 6, 7, 8, 9, 10)


@pickled_as_package
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
