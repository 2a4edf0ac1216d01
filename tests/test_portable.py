"""The pickle-free pipeline (selector.stages.portable) answers as the fitted objects do, for every
clusterer and reducer of the search, on its training points and on new ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from selector.stages import portable
from selector.stages.clustering import CLUSTERERS
from selector.stages.pipeline import ClusterPipeline

from test_clustering import GOOD

REDUCERS = {
    "none": {"name": "none", "scaling": "zscore"},
    "pca": {"name": "pca", "scaling": "l2", "n_components": 3},
    "umap": {"name": "umap", "scaling": "none", "n_components": 3, "n_neighbors": 15, "min_dist": 0.1,
             "metric": "euclidean"},
}


def data(n: int, seed: int, dims: int = 6):
    centres = np.zeros((3, dims))
    centres[1, :2], centres[2, 2:4] = 6.0, 6.0
    X, _ = make_blobs(n_samples=n, centers=centres, cluster_std=0.7, random_state=seed)
    return X.astype(np.float32)


def round_trip(pipeline, tmp_path):
    arrays, spec = portable.save(pipeline, tmp_path)
    assert json.loads(spec.read_text())["format"] == portable.FORMAT
    return portable.load(arrays, spec)


@pytest.mark.parametrize("reducer", list(REDUCERS))
@pytest.mark.parametrize("clusterer", list(CLUSTERERS))
def test_the_portable_pipeline_answers_as_the_fitted_one(clusterer, reducer, tmp_path):
    train, new = data(150, 1), data(60, 2)
    far = train.mean(axis=0) + 50 * train.std(axis=0)
    fitted = ClusterPipeline(REDUCERS[reducer], {"name": clusterer, **GOOD[clusterer]}, seed=0).fit(train)
    served = round_trip(fitted, tmp_path)
    for points in (train, new, far[None]):
        ours, theirs = served.assign(points), fitted.assign(points)
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(served.transform(new), fitted.transform(new), rtol=1e-6, atol=1e-6)


def test_hdbscan_in_many_dimensions_and_on_a_sample_exports_its_other_rule(tmp_path, monkeypatch):
    import dataclasses

    from selector.stages import clustering

    # above MANY_DIMS without a reducer HDBSCAN fits a sample and the rest vote; below, a capped fit
    # places the rest by approximate_predict: both rules export
    wide = data(300, 3, dims=clustering.MANY_DIMS + 2)
    monkeypatch.setitem(clustering.CLUSTERERS, "hdbscan", dataclasses.replace(
        CLUSTERERS["hdbscan"], max_fit_points=120, many_dims_fit_points=120))
    for train, reducer in ((wide, REDUCERS["none"]), (data(300, 4), REDUCERS["pca"])):
        fitted = ClusterPipeline(reducer, {"name": "hdbscan", **GOOD["hdbscan"]}, seed=0).fit(train)
        assert fitted.cluster_model_.fit_sample_size_ == 120
        served = round_trip(fitted, tmp_path)
        for ours, theirs in zip(served.assign(train), fitted.assign(train)):
            np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_hdbscan_s_placement_is_hdbscan_s_approximate_predict(tmp_path):
    """The reimplementation against the library, strengths included, on points near and far."""
    import hdbscan

    train = data(200, 5, dims=3)
    model = hdbscan.HDBSCAN(min_cluster_size=10, min_samples=4, prediction_data=True).fit(train)
    new = np.vstack([data(80, 6, dims=3), train.mean(axis=0) + 40 * train.std(axis=0)])
    arrays = portable.Arrays()
    spec = portable._export_hdbscan(model, arrays)
    ours = portable.HDBSCANPlacement(json.loads(json.dumps(spec)), arrays.stored)(new)
    theirs = hdbscan.approximate_predict(model, new)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12)


def test_a_portable_pipeline_is_read_without_pickle(tmp_path, monkeypatch):
    import pickle

    fitted = ClusterPipeline(REDUCERS["umap"], {"name": "hdbscan", **GOOD["hdbscan"]}, seed=0).fit(data(150, 1))
    arrays, spec = portable.save(fitted, tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("a portable pipeline was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    served = portable.load(arrays, spec)
    assert served.predict(data(10, 9)).shape == (10,)
    with np.load(arrays, allow_pickle=False) as stored:
        assert all(stored[name].dtype != object for name in stored.files)


@pytest.mark.slow
def test_a_registered_model_serves_with_pickle_disabled_and_without_umap_or_hdbscan(tmp_path, monkeypatch, run_cli):
    """Loading and predicting never unpickles (pickle, joblib and torch.load made to raise), and a
    serving process imports neither umap-learn nor hdbscan (nor pynndescent)."""
    import pickle
    import sys

    import joblib
    import mlflow
    import pandas as pd
    import torch

    from selector.jobs.register import register_job
    from selector.jobs.tune import tune_job

    monkeypatch.chdir(tmp_path)
    X = data(150, 1)
    pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])]).to_csv(tmp_path / "v.csv", index=False)
    study = tune_job(workers=1, dataset=str(tmp_path / "v.csv"), encoder="none", n_trials=3,
                     clusterers="hdbscan", study_name="portable")
    registration = register_job(study.parent_run_id, model_name="portable-test")
    uri = f"models:/portable-test/{registration.version}"
    artifacts = mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model"))
    names = {p.name for p in (tmp_path / "model" / "artifacts").iterdir()}
    assert names == {"pipeline.npz", "pipeline.json", "encoder.json"}, names

    def refuse(*args, **kwargs):
        raise AssertionError("serving unpickled something")

    with monkeypatch.context() as blocked:
        for module, name in ((pickle, "load"), (pickle, "loads"), (joblib, "load"), (torch, "load")):
            blocked.setattr(module, name, refuse)
        answer = mlflow.pyfunc.load_model(artifacts).predict(pd.DataFrame(X[:5], columns=[f"c{i}" for i in range(6)]))
    assert len(answer) == 5 and set(answer.columns) == {"cluster", "confidence"}

    script = ("import sys, mlflow, pandas as pd, numpy as np\n"
              f"m = mlflow.pyfunc.load_model({artifacts!r})\n"
              "print(m.predict(pd.DataFrame(np.zeros((2, 6)), columns=[f'c{i}' for i in range(6)])).shape)\n"
              "print(sorted({n.split('.')[0] for n in sys.modules} & {'umap', 'hdbscan', 'pynndescent'}))\n")
    done = run_cli(sys.executable, "-c", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


@pytest.mark.slow
def test_register_refuses_a_model_that_fails_its_pre_deployment_check(tmp_path, monkeypatch):
    """A logged model that cannot answer its own input example (here: a pipeline saved in a format this
    version cannot read) is not registered, and the champion stays where it was."""
    import mlflow
    import pandas as pd

    from registry.promote import ValidationFailed
    from selector.jobs.register import register_job
    from selector.jobs.tune import tune_job

    monkeypatch.chdir(tmp_path)
    X = data(150, 1)
    pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])]).to_csv(tmp_path / "v.csv", index=False)
    study = tune_job(workers=1, dataset=str(tmp_path / "v.csv"), encoder="none", n_trials=2, clusterers="kmeans")
    first = register_job(study.parent_run_id, model_name="checked", force=True)
    real = portable.export

    def unreadable(pipeline):
        spec, arrays = real(pipeline)
        return {**spec, "format": portable.FORMAT + 96}, arrays

    monkeypatch.setattr(portable, "export", unreadable)
    with pytest.raises(ValidationFailed, match="pre-deployment check.*format"):
        register_job(study.parent_run_id, model_name="checked", force=True)
    client = mlflow.tracking.MlflowClient()
    assert [str(v.version) for v in client.search_model_versions("name = 'checked'")] == [first.version]
    assert str(client.get_model_version_by_alias("checked", "champion").version) == first.version
