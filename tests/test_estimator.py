"""``selector.AutoCluster`` as scikit-learn sees it: its own estimator checks, clone, pickle, pipelines."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.utils.estimator_checks import parametrize_with_checks

from selector import AutoCluster

# Checks that cannot apply to a label-free search, with the reason (scikit-learn's expected-failure
# mechanism): none today — every check scikit-learn runs on a clusterer passes. README lists this.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks([AutoCluster(n_trials=3)], expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_scikit_learn_s_estimator_checks(estimator, check):
    check(estimator)


def test_it_clusters_like_a_scikit_learn_clusterer_and_survives_clone_and_pickle():
    X, y = make_blobs(n_samples=150, centers=3, n_features=4, random_state=1)
    model = AutoCluster(n_trials=4, clusterers="kmeans,hdbscan", seed=3)
    labels = model.fit_predict(X)
    from sklearn.metrics import adjusted_mutual_info_score

    assert adjusted_mutual_info_score(y, labels) > 0.9 and model.n_clusters_ == 3
    assert model.best_params_["clusterer"] in ("kmeans", "hdbscan") and len(model.study_.trials) == 4
    assert clone(model).get_params() == model.get_params() and not hasattr(clone(model), "labels_")
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(X[:30]), model.predict(X[:30]))
    confidence = model.predict_confidence(X[:30])
    assert confidence.shape == (30,) and ((0 <= confidence) & (confidence <= 1)).all()
    with pytest.raises(ValueError, match="4 features"):
        model.predict(X[:5, :3])


def test_with_an_encoder_it_clusters_images():
    digits = load_digits()
    images = np.round(digits.images[:80] * 255 / 16).astype(np.uint8)
    model = AutoCluster(n_trials=3, encoder="raw").fit(images)
    assert model.labels_.shape == (80,)
    assert model.predict(images[:10]).shape == (10,)
