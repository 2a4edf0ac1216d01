"""selector's affinity propagation against scikit-learn's, fit for fit: the compiled message passing
must give the same labels, exemplars, iteration count, warnings and attributes — a scikit-learn that
changes its algorithm fails here, not silently in a study."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import AffinityPropagation as ScikitLearn
from sklearn.datasets import load_digits, make_blobs
from sklearn.decomposition import PCA

from selector.stages.clusterers import AffinityPropagationClusterer
from selector.stages.propagation import AffinityPropagation


def digits_2d(n: int = 300) -> np.ndarray:
    X = load_digits().data[:n].astype(np.float32)
    return PCA(n_components=2, random_state=0).fit_transform(X).astype(np.float32)


DATA = {
    "digits-2d-float32": digits_2d(),
    "digits-64d": load_digits().data[:250],
    "blobs-duplicated": np.repeat(make_blobs(80, centers=4, random_state=0)[0], 3, axis=0),
}


def fit_both(X, **params):
    fitted = []
    for estimator in (ScikitLearn(**params), AffinityPropagation(**params)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            estimator.fit(X)
        fitted.append((estimator, [f"{w.category.__name__}: {w.message}" for w in caught]))
    return fitted


@pytest.mark.parametrize("data", list(DATA))
@pytest.mark.parametrize("damping,quantile", [(0.5, 0.0), (0.75, 0.25), (0.95, 0.5)])
@pytest.mark.parametrize("max_iter", [300, 12, 1])  # converged; stopped early; no exemplar at all
def test_the_same_fit_as_scikit_learn(data, damping, quantile, max_iter):
    X = DATA[data]
    preference = AffinityPropagationClusterer.build({"damping": damping, "preference_quantile": quantile}, X, 0).preference
    (theirs, their_warnings), (ours, our_warnings) = fit_both(
        X, damping=damping, preference=preference, max_iter=max_iter, convergence_iter=20, random_state=3)
    assert np.array_equal(ours.labels_, theirs.labels_)
    assert np.array_equal(ours.cluster_centers_indices_, theirs.cluster_centers_indices_)
    assert np.array_equal(ours.cluster_centers_, theirs.cluster_centers_)
    assert np.array_equal(ours.affinity_matrix_, theirs.affinity_matrix_)
    assert ours.n_iter_ == theirs.n_iter_ and our_warnings == their_warnings
    with warnings.catch_warnings():  # a fit without exemplars labels every new point -1, and says so
        warnings.simplefilter("ignore")
        assert np.array_equal(ours.predict(X[:20]), theirs.predict(X[:20]))


def test_the_grid_covers_every_ending():
    """The cases above must include a converged fit, one that stopped at ``max_iter`` with exemplars,
    and one with none — else the comparison does not cover scikit-learn's three endings."""
    endings = set()
    for max_iter in (300, 12, 1):
        _, (ours, caught) = fit_both(DATA["digits-2d-float32"], damping=0.5, max_iter=max_iter, random_state=3)
        endings.add("none" if len(ours.cluster_centers_indices_) == 0 else "stopped" if caught else "converged")
    assert endings == {"converged", "stopped", "none"}


@pytest.mark.parametrize("X", [np.zeros((5, 2)), np.ones((1, 3)), np.array([[0.0], [1.0]])])
def test_degenerate_inputs_get_scikit_learns_answer(X):
    (theirs, _), (ours, _) = fit_both(X, random_state=0)
    assert np.array_equal(ours.labels_, theirs.labels_)
    assert np.array_equal(ours.cluster_centers_indices_, theirs.cluster_centers_indices_)


def test_a_precomputed_affinity_is_scikit_learns_own_fit():
    X = DATA["digits-2d-float32"][:100]
    S = -((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    (theirs, _), (ours, _) = fit_both(S, affinity="precomputed", random_state=0)
    assert np.array_equal(ours.labels_, theirs.labels_) and ours.n_iter_ == theirs.n_iter_
