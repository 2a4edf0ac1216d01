"""One trial's scoring: what every trial logs, whatever its labels."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from selector.reduction import ReductionCache
from selector.search import SearchContext, score_trial


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    X, y = make_blobs(n_samples=120, centers=3, n_features=5, random_state=0)
    return SearchContext(vectors=X.astype(np.float32), labels=y, clusterers=["kmeans"], seed=0,
                         cache=ReductionCache(tmp_path_factory.mktemp("reductions"), "blobs"), base_params={},
                         experiment_id="", parent_run_id="")


@pytest.mark.parametrize("objective", ["modularity", "modularity_silhouette", "calinski_harabasz"])
@pytest.mark.parametrize("labels, degenerate", [
    (np.zeros(120, dtype=int), "one_cluster"), (np.full(120, -1), "all_noise"), (np.arange(120), "one_cluster_per_point"),
])
def test_a_degenerate_trial_logs_the_seed_papers_silhouette_as_minus_one(context, objective, labels, degenerate):
    """Sorting trials by `silhouette_umap` in the MLflow UI must not hide the degenerate ones."""
    context.objective = objective
    value, metrics, tags = score_trial(context, labels)
    assert value == -1 and tags["degenerate"] == degenerate
    assert metrics["silhouette_umap"] == -1 and metrics["objective_value"] == -1


def test_a_good_trial_logs_its_silhouette_beside_an_objective_that_does_not_compute_it(context):
    from selector.objective import silhouette_objective

    context.objective = "modularity"
    labels = np.repeat(np.arange(3), 40)
    _, metrics, _ = score_trial(context, labels)
    expected = silhouette_objective(context.eval_space.coords, labels, seed=0).value
    assert metrics["silhouette_umap"] == pytest.approx(expected) and -1 < expected <= 1
