"""One contract over every registered reducer, and the reduction cache."""

import numpy as np
import optuna
import pytest

from selector.stages.reduction import REDUCERS, SCALINGS, ReductionCache, build_reducer, fit_reduce, suggest_reducer


@pytest.fixture(scope="module")
def vectors():
    return np.random.default_rng(0).normal(size=(120, 16)).astype(np.float32)


def blobs(n: int, seed: int):
    from sklearn.datasets import make_blobs

    centres = np.random.default_rng(42).normal(scale=8.0, size=(4, 16))
    X, y = make_blobs(n_samples=n, centers=centres, n_features=16, cluster_std=1.0, random_state=seed)
    return X.astype(np.float32), y


def proposed(name: str, scaling: str, n: int = 160, dim: int = 16) -> dict:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = suggest_reducer(study.ask(), n, dim, names=[name])
    return {**params, "scaling": scaling}


@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("name", list(REDUCERS))
class TestReducerConformance:
    """Every registered reducer, with every scaling, on the paths production uses: a trial's
    ``ReductionCache.reduce`` and the served model's ``fit_reduce`` + ``transform``."""

    def test_fit_gives_finite_coordinates_of_the_proposed_size(self, name, scaling):
        X, _ = blobs(160, seed=0)
        params = proposed(name, scaling)
        reducer, reduced = fit_reduce(params, X, seed=0)
        expected = {"none": X.shape[1], "pca": min(params.get("n_components", 0), X.shape[1]),
                    "umap": params.get("n_components")}.get(name, reduced.shape[1])
        assert reduced.shape == (160, expected) and reduced.dtype == np.float32 and np.isfinite(reduced).all()

    def test_seeded_fits_are_reproducible(self, name, scaling):
        X, _ = blobs(160, seed=0)
        params = proposed(name, scaling)
        np.testing.assert_allclose(fit_reduce(params, X, 0)[1], fit_reduce(params, X, 0)[1], rtol=1e-4, atol=1e-4)

    def test_transform_places_unseen_points_among_their_own_cluster(self, name, scaling):
        from sklearn.neighbors import KNeighborsClassifier

        X, y = blobs(160, seed=0)
        X_new, y_new = blobs(60, seed=5)  # the same centres, points it never saw
        reducer, reduced = fit_reduce(proposed(name, scaling), X, seed=0)
        placed = np.asarray(reducer.transform(X_new))
        assert placed.shape == (60, reduced.shape[1]) and np.isfinite(placed).all()
        vote = KNeighborsClassifier(5).fit(reduced, y).predict(placed)
        assert (vote == y_new).mean() > 0.9

    def test_training_points_transform_to_their_fitted_coordinates(self, name, scaling):
        """A served model asked about a training image answers what the study found for it."""
        X, _ = blobs(160, seed=0)
        reducer, reduced = fit_reduce(proposed(name, scaling), X, seed=0)
        np.testing.assert_allclose(np.asarray(reducer.transform(X)), reduced, rtol=1e-4, atol=1e-4)

    def test_proposed_parameters_survive_the_trial_record(self, name, scaling):
        """What a served refit reads back from the trial's params is what the trial fitted."""
        from selector.study.trials import pipeline_params

        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(3):
            trial = study.ask()
            params = suggest_reducer(trial, 160, 16, names=[name])
            assert pipeline_params({"clusterer": "kmeans", **trial.params})[0] == params

    def test_a_joblib_round_trip_transforms_the_same(self, name, scaling, tmp_path):
        import joblib

        X, _ = blobs(160, seed=0)
        X_new, _ = blobs(30, seed=6)
        reducer, _ = fit_reduce(proposed(name, scaling), X, seed=0)
        joblib.dump(reducer, tmp_path / "reducer.joblib")
        np.testing.assert_allclose(joblib.load(tmp_path / "reducer.joblib").transform(X_new),
                                   reducer.transform(X_new), rtol=1e-5, atol=1e-5)

    def test_the_trial_path_and_the_serving_path_agree(self, name, scaling, tmp_path):
        """A trial's coordinates (through the study's cache, and UMAP's shared graph) are the ones the
        served pipeline fits: the champion clusters what the study scored."""
        X, _ = blobs(160, seed=0)
        params = proposed(name, scaling)
        in_trial = ReductionCache(tmp_path, "blobs").reduce(X, params, seed=0)
        _, served = fit_reduce(params, X, seed=0)
        np.testing.assert_allclose(in_trial, served, rtol=1e-3, atol=1e-3)


def test_a_reducer_request_names_its_reducer_and_scaling(vectors):
    with pytest.raises(ValueError, match="unknown reducer 'tsne'; valid: none, pca, umap"):
        build_reducer({"name": "tsne"}, 10, 0)
    with pytest.raises(ValueError, match="`reducer.scaling` must be one of none, zscore, l2; got 'max'"):
        build_reducer({"name": "none", "scaling": "max"}, 10, 0)
    assert REDUCERS["umap"].trial_fit is not None


def test_same_reduction_is_fitted_once_in_memory_and_across_processes(vectors, tmp_path):
    params = {"name": "pca", "scaling": "zscore", "n_components": 5}
    cache = ReductionCache(tmp_path, "data-1")
    first = cache.reduce(vectors, params, seed=0)
    assert cache.reduce(vectors, dict(params), seed=0) is first and cache.fits == 1
    cache.reduce(vectors, {**params, "n_components": 2}, seed=0)
    assert cache.fits == 2
    other_process = ReductionCache(tmp_path, "data-1")
    np.testing.assert_array_equal(other_process.reduce(vectors, params, seed=0), first)
    assert other_process.fits == 0
    assert ReductionCache(tmp_path, "data-2").key(params, 0) != cache.key(params, 0)


UMAP = {"name": "umap", "scaling": "zscore", "n_components": 3, "min_dist": 0.0, "metric": "euclidean"}


def test_the_neighbour_graph_is_built_once_per_scaling_and_metric(vectors, tmp_path):
    cache = ReductionCache(tmp_path, "data-1")
    for n_neighbors in (5, 15, 30):
        assert cache.reduce(vectors, {**UMAP, "n_neighbors": n_neighbors}, seed=0).shape == (120, 3)
    assert cache.fits == 3 and cache.graph_builds == 1
    cache.reduce(vectors, {**UMAP, "n_neighbors": 10, "n_components": 5}, seed=0)
    assert cache.graph_builds == 1  # only the layout differs
    cache.reduce(vectors, {**UMAP, "n_neighbors": 10, "metric": "cosine"}, seed=0)
    cache.reduce(vectors, {**UMAP, "n_neighbors": 10, "scaling": "l2"}, seed=0)
    assert cache.graph_builds == 3
    other_process = ReductionCache(tmp_path, "data-1")  # a resumed or parallel worker reads the graph from disk
    other_process.reduce(vectors, {**UMAP, "n_neighbors": 50}, seed=0)
    assert other_process.fits == 1 and other_process.graph_builds == 0


def test_a_slice_of_the_shared_graph_is_the_graph_umap_builds_itself(vectors):
    from selector.stages.neighbours import nearest_neighbours
    from selector.stages.reduction import _umap

    params = {"n_components": 3, "n_neighbors": 15, "min_dist": 0.0, "metric": "euclidean"}
    own = _umap(params, len(vectors), 0).fit(vectors)
    idx, dist = nearest_neighbours(vectors, 50, "euclidean", seed=0)
    shared = _umap(params, len(vectors), 0)
    shared.set_params(precomputed_knn=(idx[:, :15].copy(), dist[:, :15].copy(), None))
    shared.fit(vectors)
    assert own.graph_.nnz == shared.graph_.nnz
    assert abs(own.graph_ - shared.graph_).max() < 1e-4


def test_above_the_exact_bound_the_graph_comes_from_nn_descent(vectors, monkeypatch):
    from selector.stages import neighbours

    exact_idx, _ = neighbours.nearest_neighbours(vectors, 10, "euclidean", seed=0)
    monkeypatch.setattr(neighbours, "EXACT_KNN_BOUND", 50)
    approx_idx, approx_dist = neighbours.nearest_neighbours(vectors, 10, "euclidean", seed=0)
    assert (approx_idx[:, 0] == np.arange(len(vectors))).all() and (approx_dist[:, 0] == 0).all()  # itself first
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_idx, exact_idx)])
    assert recall > 0.9


@pytest.fixture
def small_umap_bound(monkeypatch):
    """UMAP fits at most 150 points (10,000 in the registry)."""
    import dataclasses

    from selector.stages import reduction

    monkeypatch.setitem(reduction.REDUCERS, "umap", dataclasses.replace(REDUCERS["umap"], max_fit_points=150))
    return 150


def _blobs(n=400):
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=n, centers=4, n_features=12, cluster_std=1.0, random_state=3)
    return X.astype(np.float32), y


def test_umap_above_its_bound_fits_a_sample_and_places_the_rest_near_their_neighbours(small_umap_bound, tmp_path):
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_mutual_info_score

    from selector.stages.sampling import seeded_sample

    X, y = _blobs()
    cache = ReductionCache(tmp_path, "blobs")
    reduced = cache.reduce(X, {**UMAP, "n_neighbors": 15}, seed=0)
    assert reduced.shape == (400, 3) and np.isfinite(reduced).all()
    assert cache.graph_builds == 2  # the sample's own graph, and every other point's nearest sampled points
    graph_files = sorted(p.name for p in tmp_path.glob("*.knn.npz"))
    assert len(graph_files) == 2
    labels = KMeans(4, n_init=3, random_state=0).fit_predict(reduced)
    assert adjusted_mutual_info_score(y, labels) > 0.95
    sample = seeded_sample(400, small_umap_bound, 0)
    rest = np.setdiff1d(np.arange(400), sample)
    assert adjusted_mutual_info_score(y[rest], labels[rest]) > 0.95  # the placed points too
    cache.reduce(X, {**UMAP, "n_neighbors": 30}, seed=0)
    assert cache.fits == 2 and cache.graph_builds == 2  # another layout, the same two graphs


def test_a_served_pipeline_fits_the_same_sample_and_transforms_the_rest(small_umap_bound):
    from sklearn.metrics import adjusted_mutual_info_score

    from selector.stages.pipeline import ClusterPipeline

    X, y = _blobs()
    pipeline = ClusterPipeline({**UMAP, "n_neighbors": 15}, {"name": "kmeans", "n_clusters": 4}).fit(X)
    assert pipeline.reducer_[-1].embedding_.shape == (small_umap_bound, 3)  # UMAP saw the sample only
    assert pipeline.reduced_.shape == (400, 3) and adjusted_mutual_info_score(y, pipeline.labels_) > 0.95
    labels = pipeline.predict(X[:50])
    assert (labels == pipeline.labels_[:50]).mean() > 0.95


def test_placing_new_points_refines_their_start_deterministically():
    """The epochs move the new points from their weighted start (they did nothing once, unnoticed by
    the agreement tests), the same way every time; a point equal to a fitted one stays on it."""
    from selector.stages.neighbours import place_by_neighbours

    rng = np.random.default_rng(0)
    fitted = np.concatenate([rng.normal(0, 0.3, (50, 2)), rng.normal(5, 0.3, (50, 2))]).astype(np.float32)
    idx = np.stack([rng.choice(50, 10, replace=False) for _ in range(20)])
    dist = np.sort(rng.uniform(0.5, 2.0, (20, 10)), axis=1).astype(np.float32)
    dist[0, 0] = 0.0  # the first new point equals fitted point idx[0, 0]
    start = place_by_neighbours(fitted, idx, dist, epochs=0)
    refined = place_by_neighbours(fitted, idx, dist)
    assert np.abs(refined[1:] - start[1:]).max() > 1e-3
    np.testing.assert_array_equal(refined, place_by_neighbours(fitted, idx, dist))
    np.testing.assert_array_equal(refined[0], fitted[idx[0, 0]])
    assert (np.linalg.norm(refined[1:], axis=1) < 2.5).all()  # they stay with the cluster they neighbour
    import numba

    threads = numba.get_num_threads()
    try:  # the points are placed in parallel, each with its own random stream: threads change nothing
        numba.set_num_threads(1)
        np.testing.assert_array_equal(refined, place_by_neighbours(fitted, idx, dist))
    finally:
        numba.set_num_threads(threads)


def test_umap_learn_functions_are_compiled_into_the_on_disk_cache():
    """umap-learn jits its functions without numba's disk cache: selector turns it on before the first
    fit, so the next process loads them instead of compiling (5–11 s of every process otherwise)."""
    import umap.umap_

    from selector.stages.compiled import cache_umap_compilation

    cache_umap_compilation()
    assert type(umap.umap_.smooth_knn_dist._cache).__name__ == "FunctionCache"
