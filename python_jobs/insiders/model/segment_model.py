"""The trained model, :class:`SegmentModel`: what an artifact holds and what scoring applies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline

from insiders.model.config import ID_COLUMN, TARGET, ModelConfig
from insiders.model.embedding import _matrix
from insiders.model.support import pickled_as_package, single_threaded
from insiders.model.validation import validate_features


@pickled_as_package
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

    @single_threaded
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

    @single_threaded
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


@pickled_as_package
class _PaddedProjection:
    """The picture of a one-dimensional clustering space: its one axis and a second axis of zeros."""

    def __init__(self, pca: PCA):
        self.pca = pca

    def transform(self, Z):
        one = self.pca.transform(Z)
        return np.column_stack([one[:, 0], np.zeros(len(one))])
