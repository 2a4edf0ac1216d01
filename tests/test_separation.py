"""Whether a partition's clusters are apart where they meet (``selector.stages.separation``)."""

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from selector.stages.objective import build_eval_space
from selector.stages.reduction import ReductionCache
from selector.stages.separation import dip_apart, nearest_pairs, separation


def test_each_cluster_pairs_with_the_cluster_it_shares_most_weight_with_and_noise_joins_none():
    # a chain a - b - c: a's and c's strongest link is b, b's is c; the noise point (-1) is tied to a
    labels = np.array([0, 0, 1, 1, 2, 2, -1])
    edges = {(0, 2): 1.0, (2, 4): 3.0, (1, 3): 0.5, (5, 6): 0.2, (0, 6): 9.0}
    rows, cols = zip(*edges)
    graph = sp.coo_matrix((list(edges.values()), (rows, cols)), shape=(7, 7))
    graph = (graph + graph.T).tocsr()
    assert nearest_pairs(graph, labels) == [(0, 1), (1, 2)]
    assert nearest_pairs(graph, np.zeros(7, int)) == []


def test_the_dip_test_finds_two_modes_and_not_one_mode_cut_in_two():
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(0, 1, (300, 5)), rng.normal(0, 1, (300, 5)) + [6, 0, 0, 0, 0]])
    halves = np.arange(600) < 300
    assert dip_apart(two, halves, ~halves, seed=0)
    one = rng.normal(0, 1, (600, 5))
    cut = one[:, 0] < 0
    assert not dip_apart(one, cut, ~cut, seed=0)
    assert not dip_apart(one[:3], np.array([True, False, False]), np.array([False, True, True]), seed=0)


def test_two_blobs_are_apart_and_the_blobs_chopped_into_six_are_not():
    X, y = make_blobs(n_samples=600, centers=[[0] * 5, [30] * 5], n_features=5, cluster_std=3.0, random_state=0)
    space = build_eval_space(X.astype(np.float32), ReductionCache(None, "two-blobs"), seed=0)
    truth = separation(space, y, 0)
    assert truth.pairs == 1 and truth.separated
    chopped = separation(space, KMeans(n_clusters=6, n_init=3, random_state=0).fit_predict(space.coords), 0)
    assert chopped.pairs >= 3 and not chopped.separated and chopped.apart < chopped.pairs
