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

Import from here, not from the modules, which are the package's own layout:

- :mod:`~insiders.model.config`: the feature list, the target, :class:`ModelConfig`;
- :mod:`~insiders.model.validation`: :func:`validate_features`, the checks of a customer table;
- :mod:`~insiders.model.embedding`: the pipeline before the clustering, :class:`ForestLeafEmbedding`;
- :mod:`~insiders.model.checks`: the business checks of an Insiders list;
- :mod:`~insiders.model.ranking`: ranks and names of segments, the Insiders set and :func:`jaccard`;
- :mod:`~insiders.model.segment_model`: :class:`SegmentModel`, the trained model that artifacts hold;
- :mod:`~insiders.model.selection`: :func:`select_model`, the choice of k;
- :mod:`~insiders.model.fitting`: :func:`fit_model`, a model fitted in memory (``insiders.training.train`` stores one);
- :mod:`~insiders.model.stability`: :func:`stability`, the Insiders' stability across seeds and samples;
- :mod:`~insiders.model.support`: one native thread, and the module path that pickles record.
"""

from insiders.model.checks import BusinessCheck, business_checks, failed_checks
from insiders.model.config import (
    DEFAULT_CANDIDATE_KS,
    DEFAULT_FEATURES,
    ID_COLUMN,
    INSIDERS_NAME,
    TARGET,
    ModelConfig,
)
from insiders.model.embedding import ForestLeafEmbedding, build_pipeline, signed_log1p
from insiders.model.fitting import TrainResult, fit_model
from insiders.model.ranking import jaccard
from insiders.model.segment_model import SegmentModel, _PaddedProjection
from insiders.model.selection import explain_choice, select_model
from insiders.model.stability import StabilityReport, stability
from insiders.model.validation import validate_features

# Stored artifacts are pickles that name these objects ``insiders.model.<name>`` (support.pickled_as_package):
# SegmentModel, ModelConfig, ForestLeafEmbedding, signed_log1p and the private _PaddedProjection (a model whose
# clustering space has one dimension). Each must stay importable from here under that name, or no stored model
# loads; tests/python/test_model_compat.py loads an artifact made before the package was split.
_PICKLED = (SegmentModel, ModelConfig, ForestLeafEmbedding, signed_log1p, _PaddedProjection)

__all__ = [
    "DEFAULT_CANDIDATE_KS",
    "DEFAULT_FEATURES",
    "ID_COLUMN",
    "INSIDERS_NAME",
    "TARGET",
    "BusinessCheck",
    "ForestLeafEmbedding",
    "ModelConfig",
    "SegmentModel",
    "StabilityReport",
    "TrainResult",
    "build_pipeline",
    "business_checks",
    "explain_choice",
    "failed_checks",
    "fit_model",
    "jaccard",
    "select_model",
    "signed_log1p",
    "stability",
    "validate_features",
]
