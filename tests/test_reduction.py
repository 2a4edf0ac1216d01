"""One contract over every registered reducer, and the reduction cache."""

import numpy as np
import optuna
import pytest

from selector.reduction import REDUCERS, SCALINGS, ReductionCache, build_reducer, suggest_reducer


@pytest.fixture(scope="module")
def vectors():
    return np.random.default_rng(0).normal(size=(120, 16)).astype(np.float32)


@pytest.mark.parametrize("name", list(REDUCERS))
@pytest.mark.parametrize("scaling", SCALINGS)
def test_reducer_contract(name, scaling, vectors):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = suggest_reducer(study.ask(), *vectors.shape, names=[name])
    params["scaling"] = scaling
    reduced = build_reducer(params, len(vectors), seed=0).fit_transform(vectors)
    expected = {"none": vectors.shape[1], "pca": min(params.get("n_components", 0), vectors.shape[1]),
                "umap": params.get("n_components")}[name]
    assert reduced.shape == (120, expected) and np.isfinite(reduced).all()
    again = build_reducer(params, len(vectors), seed=0).fit_transform(vectors)
    np.testing.assert_allclose(again, reduced, rtol=1e-4, atol=1e-4)  # seeded


def test_unknown_reducer_and_scaling_list_the_valid_ones(vectors):
    with pytest.raises(ValueError, match="unknown reducer 'tsne'; valid: none, pca, umap"):
        build_reducer({"name": "tsne"}, 10, 0)
    with pytest.raises(ValueError, match="`reducer.scaling` must be one of none, zscore, l2; got 'max'"):
        build_reducer({"name": "none", "scaling": "max"}, 10, 0)


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
