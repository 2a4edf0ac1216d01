"""selector from Python: ``selector.search`` and ``selector.select`` as a notebook user calls them."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits, make_blobs

import selector
from selector.stages.memory import as_dataset


@pytest.fixture
def blobs():
    X, y = make_blobs(n_samples=120, centers=3, n_features=5, random_state=0)
    return X.astype(np.float32), y


def digit_images(n: int) -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return np.round(digits.images[:n] * 255 / 16).astype(np.uint8), digits.target[:n]


def test_an_untracked_search_writes_nothing_but_the_cache(blobs, tmp_path, monkeypatch, cache_dir):
    """``tracking=False`` with two workers: no tracking store, no journal, nothing in the working
    directory, the home folder or the temporary folder; embeddings and reductions in the cache."""
    import mlflow

    X, y = blobs
    work, home, tmp = (tmp_path / name for name in ("work", "home", "tmp"))
    for folder in (work, home, tmp):
        folder.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # a worker that logged would fail its trials
    monkeypatch.delenv("SELECTOR_JOURNAL")

    def no_store(*args, **kwargs):
        raise AssertionError("an untracked search reached MLflow")

    monkeypatch.setattr(mlflow.tracking.MlflowClient, "__init__", no_store)
    result = selector.search(X, n_trials=4, workers=2, tracking=False, labels=y, clusterers="kmeans,hdbscan",
                             show=False)
    assert [list(folder.iterdir()) for folder in (work, home, tmp)] == [[], [], []]
    assert {p.name for p in cache_dir.iterdir()} >= {"reductions"}
    assert len(result.study_.trials) == 4 and result.run_id_ is None
    assert result.labels_.shape == (120,) and ((0 <= result.confidence_) & (result.confidence_ <= 1)).all()
    assert result.best_params_["clusterer"] in ("kmeans", "hdbscan") and result.best_value_ == result.study_.best_value
    assert result.metrics_["best_ami"] > 0.9  # labels were given: reported, never used to choose
    assert (result.pipeline_.predict(X) == result.labels_).mean() > 0.95
    assert (result.clusters()["cluster"].to_numpy() == result.labels_).all()
    page = result.report(tmp_path / "out" / "report.html")
    assert "Best pipeline" in page.read_text()
    with pytest.raises(ValueError, match="tracking=True"):
        result.register("never")


def test_the_evaluation_space_is_built_once_per_study(blobs, monkeypatch):
    from selector.stages import objective

    built = []
    real = objective.build_eval_space
    monkeypatch.setattr(objective, "build_eval_space", lambda *a, **k: built.append(1) or real(*a, **k))
    result = selector.search(blobs[0], n_trials=3, workers=1, tracking=False, clusterers="kmeans", show=False)
    assert len(built) == 1 and len(result.study_.trials) == 3


@pytest.mark.parametrize("make, kind, n", [
    (lambda tmp: np.random.default_rng(0).normal(size=(30, 4)), "vectors", 30),
    (lambda tmp: pd.DataFrame({"a": range(12), "b": range(12), "label": [0, 1] * 6, "id": list("abcdefghijkl")}),
     "vectors", 12),
    (lambda tmp: digit_images(20)[0], "images", 20),
    (lambda tmp: digit_images(20)[0] / 255.0, "images", 20),
    (lambda tmp: np.stack([digit_images(20)[0]] * 3, axis=-1), "images", 20),
    (lambda tmp: [__import__("PIL.Image").Image.fromarray(a) for a in digit_images(8)[0]], "images", 8),
    (lambda tmp: "digits", "images", 1797),
])
def test_data_may_be_an_array_a_frame_images_in_memory_or_a_name(make, kind, n, tmp_path):
    data = as_dataset(make(tmp_path))
    assert data.kind == kind and len(data) == n and len(data.ids) == n
    assert as_dataset(make(tmp_path)).fingerprint == data.fingerprint  # the cache key of the same data


def test_data_may_be_image_paths_or_a_folder(digit_folder):
    paths = sorted(digit_folder.rglob("*.png"))
    listed = as_dataset([str(p) for p in paths])
    assert listed.kind == "images" and len(listed) == len(paths) and listed.labels is None
    folder = as_dataset(digit_folder)
    assert len(folder) == len(paths) and set(folder.labels) == {"0", "1", "2"}
    assert as_dataset(digit_folder, labels="none").labels is None


def test_bad_data_is_refused_naming_what_was_wrong():
    with pytest.raises(TypeError, match="`data` must be a NumPy array"):
        as_dataset({"not": "data"})
    with pytest.raises(ValueError, match="points × features"):
        as_dataset(np.zeros(10))
    with pytest.raises(ValueError, match="NaN/inf"):
        as_dataset(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="one label per point"):
        as_dataset(np.zeros((10, 2)), labels=[0, 1])
    with pytest.raises(ValueError, match="not files"):
        as_dataset(["/no/such/image.png"] * 6)
    with pytest.raises(ValueError, match="unknown objective 'nope'"):
        selector.search(np.zeros((20, 2)), objective="nope", tracking=False)


@pytest.mark.slow
def test_a_search_on_images_in_memory_places_new_images(tmp_path):
    images, y = digit_images(90)
    result = selector.search(list(images), encoder="raw", n_trials=4, workers=1, tracking=False, labels=y,
                             show=False)
    assert result.encoder == "raw" and result.labels_.shape == (90,)
    labels, confidence = result.predict(list(images[:10]), return_confidence=True)
    assert labels.shape == (10,) and (labels == result.pipeline_.predict(
        result._outcome.request.embedded.vectors[:10])).all() and ((0 <= confidence) & (confidence <= 1)).all()


@pytest.mark.slow
def test_a_tracked_search_on_an_array_registers_a_model_that_answers_as_the_result(blobs, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    X, y = blobs
    result = selector.search(X, n_trials=4, workers=2, labels=y, clusterers="kmeans,hdbscan", show=False)
    parent = mlflow.get_run(result.run_id_)
    assert parent.data.params["dataset"] == "vectors" and parent.data.metrics["n_trials_complete"] == 4
    artifacts = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(result.run_id_)}
    assert {"clusters.csv", "report.html", "alternatives.csv"} <= artifacts
    registration = result.register("api-blobs")
    assert registration.promoted
    served = mlflow.pyfunc.load_model("models:/api-blobs@champion")
    answer = served.predict(pd.DataFrame(X[:20], columns=[f"f{i}" for i in range(5)]))
    labels, confidence = result.predict(X[:20], return_confidence=True)
    assert (answer["cluster"].to_numpy() == labels).all()
    np.testing.assert_allclose(answer["confidence"].to_numpy(), confidence, rtol=1e-5)


@pytest.mark.slow
def test_select_compares_encoders_in_every_study_s_space():
    images, y = digit_images(120)
    chosen = selector.select(list(images), encoders="raw,efficientnet_lite0", n_trials=3, workers=1,
                             tracking=False, labels=y, show=False)
    board = chosen.leaderboard_
    assert sorted(board["encoder"]) == ["efficientnet_lite0", "raw"] and board["chosen"].tolist() == [True, False]
    assert board["cross_objective_value"].is_monotonic_decreasing and board["cross_objective_value"].notna().all()
    assert chosen.encoder == board["encoder"].iloc[0]
    assert (chosen.labels_ == chosen.results_[chosen.encoder].labels_).all()


@pytest.mark.slow
def test_the_example_script_clusters_a_folder_and_registers_it(digit_folder, tmp_path, run_cli, project_root):
    done = run_cli(sys.executable, str(project_root / "examples" / "cluster_a_folder.py"), str(digit_folder),
                   "--encoder", "raw", "--n_trials", "4", "--model_name", "example-digits", cwd=tmp_path,
                   env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "registered example-digits version 1" in done.stdout and (tmp_path / "report.html").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    untracked = run_cli(sys.executable, str(project_root / "examples" / "cluster_a_folder.py"), str(digit_folder),
                        "--encoder", "raw", "--n_trials", "3", "--no-tracking", cwd=elsewhere)
    assert untracked.returncode == 0, untracked.stderr[-3000:]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["report.html"]  # no tracking store, no journal


@pytest.mark.slow
def test_a_tracked_select_nests_its_studies_under_a_select_run_with_the_leaderboard(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    images, y = digit_images(60)
    chosen = selector.select(list(images), encoders="raw,efficientnet_lite0", n_trials=2, workers=1, labels=y,
                             show=False)
    study = mlflow.get_run(chosen.run_id_)
    select_run = mlflow.get_run(study.data.tags["mlflow.parentRunId"])
    assert select_run.data.tags["winner_encoder"] == chosen.encoder == chosen.leaderboard_["encoder"].iloc[0]
    assert select_run.data.tags["encoder_rule"] == "cross_objective_value"
    artifacts = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(select_run.info.run_id)}
    assert {"leaderboard.csv", "report.html"} <= artifacts
