"""The pipeline before the clustering: signed log, scaling, the random-forest embedding and PCA.

Also the unfitted whole pipeline (:func:`build_pipeline`) and the fitted embedding of a set of customers that
model selection, fitting and stability reuse across values of k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from insiders.model.config import TARGET, ModelConfig
from insiders.model.support import pickled_as_package


@pickled_as_package
def signed_log1p(x):
    """``sign(x) * log(1 + |x|)``: compresses heavy tails, keeps 0 at 0 and works for negative values."""
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.log1p(np.abs(x))


@pickled_as_package
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
        X = validate_data(self, X, dtype=np.float64)  # sets n_features_in_
        if X.shape[1] < 2:
            raise ValueError(
                f"the forest embedding needs the target and at least one other column, got n_features = {X.shape[1]}"
            )
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
        X = validate_data(self, X, dtype=np.float64, reset=False)  # as many columns as in fit, else ValueError
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
