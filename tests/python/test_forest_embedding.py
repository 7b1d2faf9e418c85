"""The forest embedding is a well-behaved scikit-learn transformer: scikit-learn's own estimator checks pass.

They cover cloning, fitting twice, input validation and its messages, the number of columns seen in fit
(``n_features_in_``), pickling and more. Few trees keep them quick; the checks clone the estimator with its
parameters, so every check runs with 10 trees.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from insiders.model import ForestLeafEmbedding


@parametrize_with_checks([ForestLeafEmbedding(n_estimators=10)])
def test_scikit_learn_estimator_checks(estimator, check) -> None:
    check(estimator)


def test_a_table_of_other_width_is_refused_with_the_widths() -> None:
    rng = np.random.default_rng(0)
    embedding = ForestLeafEmbedding(n_estimators=5, random_state=0).fit(rng.normal(size=(40, 3)))
    with pytest.raises(ValueError, match="X has 2 features, but ForestLeafEmbedding is expecting 3 features"):
        embedding.transform(rng.normal(size=(5, 2)))
    with pytest.raises(ValueError, match="at least one other column, got n_features = 1"):
        ForestLeafEmbedding(n_estimators=5).fit(rng.normal(size=(40, 1)))
