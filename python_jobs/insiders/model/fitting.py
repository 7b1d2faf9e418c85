"""Fitting a model in memory: choose k, fit the pipeline on all customers, rank, name and profile the segments.

Nothing is stored here; :mod:`insiders.training` saves a fitted model as a new version.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import sklearn
from sklearn.decomposition import PCA

from insiders.model.checks import BusinessCheck, business_checks, failed_checks
from insiders.model.config import TARGET, ModelConfig
from insiders.model.embedding import _Embedding, _fit_embedding, _kmeans, _matrix
from insiders.model.ranking import _name_segments, _rank_clusters
from insiders.model.segment_model import SegmentModel, _PaddedProjection
from insiders.model.selection import _selection, _silhouette, explain_choice
from insiders.model.support import single_threaded
from insiders.model.validation import _canonical, validate_features


@dataclass
class TrainResult:
    """What :func:`fit_model` returns: the model, the selection table, the segment profiles and why this k."""

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


@single_threaded
def fit_model(features: pd.DataFrame, config: ModelConfig | None = None) -> TrainResult:
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
