"""The served model: registration and the alias, a fresh-process load, and `mlflow models serve`."""

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from registry.model import MAX_IMAGE_ROWS
from registry.promote import register_and_promote
from selector.stages.data import MAX_IMAGE_PIXELS
from selector.stages.objective import DEFAULT_OBJECTIVE
from selector.jobs.predict import predict_job
from selector.jobs.tune import tune_job
from selector.jobs.register import register_job


@pytest.fixture(scope="module")
def champion(tmp_path_factory, digit_pngs):
    """A small digits study (3 classes × 40 PNGs, raw pixels), registered as `digits-test@champion`."""
    root = tmp_path_factory.mktemp("champion")
    patch = pytest.MonkeyPatch()
    patch.chdir(root)
    patch.setenv("SELECTOR_CACHE_DIR", str(root / "cache"))
    try:
        study = tune_job(workers=1, dataset=str(digit_pngs), encoder="raw", n_trials=3, clusterers="kmeans,agglomerative")
        registration = register_job(study.parent_run_id, model_name="digits-test")
    finally:
        patch.undo()
    return {"study": study, "registration": registration, "name": "digits-test"}


def training_request(digit_pngs):
    paths = sorted(digit_pngs.rglob("*.png"))
    return pd.DataFrame({"image": [base64.b64encode(p.read_bytes()).decode() for p in paths]})


@pytest.mark.slow
def test_registered_version_has_the_contract_tags_and_the_alias(champion):
    client = mlflow.tracking.MlflowClient()
    version = client.get_model_version_by_alias(champion["name"], "champion")
    assert str(version.version) == champion["registration"].version and champion["registration"].promoted
    tags = version.tags
    assert tags["dataset"].endswith("pngs0") and tags["encoder"] == "raw"
    assert tags["study_run_id"] == champion["study"].parent_run_id
    assert float(tags["silhouette_umap"]) == pytest.approx(champion["study"].metrics["best_silhouette_umap"])
    assert tags["objective"] == DEFAULT_OBJECTIVE
    assert float(tags["objective_value"]) == pytest.approx(champion["study"].metrics["best_objective_value"])
    assert float(tags["ami"]) == pytest.approx(champion["study"].metrics["best_ami"])  # the chosen trial's AMI
    # The registered pipeline's answers for its training images, as the served model gives them.
    clusters = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="clusters.csv"))
    assert list(clusters.columns) == ["id", "cluster", "confidence", "label"] and len(clusters) == 120
    assert clusters["id"].str.endswith(".png").all() and clusters["confidence"].between(0, 1).all()


@pytest.mark.slow
def test_fresh_process_loads_the_champion_and_reproduces_the_training_assignment(champion, digit_pngs, tmp_path):
    script = f"""
import base64, json, pathlib, mlflow, pandas as pd
model = mlflow.pyfunc.load_model("models:/{champion['name']}@champion")
paths = sorted(pathlib.Path({str(digit_pngs)!r}).rglob("*.png"))
answer = model.predict(pd.DataFrame({{"image": [base64.b64encode(p.read_bytes()).decode() for p in paths]}}))
print(json.dumps({{"cluster": answer["cluster"].tolist(), "confidence": answer["confidence"].tolist()}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    clusters = np.array(answer["cluster"])
    assert len(clusters) == 120 and all(0 <= c <= 1 for c in answer["confidence"])
    # Same points, same order as the study's data set: the served model must give them their clusters back.
    from selector.stages.data import load_dataset
    from selector.stages.pipeline import ClusterPipeline
    from selector.study.trials import pipeline_params

    best = mlflow.get_run(mlflow.get_run(champion["study"].parent_run_id).data.tags["best_trial_run_id"])
    from selector.stages.embedding import embed

    vectors = embed(load_dataset(digit_pngs), "raw", progress=False).vectors
    trained = ClusterPipeline(*pipeline_params(best.data.params)).fit(vectors).labels_
    assert (clusters == trained).mean() >= 0.95


@pytest.mark.slow
def test_a_worse_version_does_not_take_the_alias_unless_forced(champion):
    client = mlflow.tracking.MlflowClient()
    name = champion["name"]
    held = client.get_model_version_by_alias(name, "champion")
    uri = f"models:/{name}/{held.version}"
    # A higher silhouette does not matter: the versions compare by their objective.
    worse = {**held.tags, "objective_value": float(held.tags["objective_value"]) - 0.5, "silhouette_umap": 0.99}
    result = register_and_promote(uri, name, "champion", worse)
    assert not result.promoted and "modularity" in result.reason and "<=" in result.reason
    assert str(client.get_model_version_by_alias(name, "champion").version) == str(held.version)
    other = register_and_promote(uri, name, "champion", {**held.tags, "dataset": "another", "objective_value": 0.99})
    assert not other.promoted and "use force=true" in other.reason
    by_another = register_and_promote(uri, name, "champion", {**held.tags, "objective": "silhouette",
                                                             "objective_value": 0.99})
    assert not by_another.promoted and "do not compare" in by_another.reason
    forced = register_and_promote(uri, name, "champion", worse, force=True)
    assert forced.promoted and str(client.get_model_version_by_alias(name, "champion").version) == forced.version
    client.set_registered_model_alias(name, "champion", held.version)  # leave the fixture as it was


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(port: int, payload) -> tuple[int, dict]:
    return post_bytes(port, json.dumps(payload).encode())


def post_bytes(port: int, data: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def huge_png() -> bytes:
    """A 30,000 × 30,000 grey PNG (900 megapixels) in under a megabyte: a decompression bomb."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (30_000, 30_000)).save(buffer, format="PNG")
    return buffer.getvalue()


def split(rows) -> dict:
    return {"dataframe_split": {"columns": ["image"], "data": [[r] for r in rows]}}


@pytest.mark.slow
def test_mlflow_models_serve_answers_images_and_refuses_bad_requests(champion, digit_pngs, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        ["mlflow", "models", "serve", "-m", f"models:/{champion['name']}@champion", "--env-manager", "local",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "w"))
    try:
        deadline = time.time() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                assert time.time() < deadline, "server did not start"
                time.sleep(1)
        images = training_request(digit_pngs)["image"].tolist()
        status, body = post(port, split(images[:5]))
        assert status == 200, body
        rows = body["predictions"]
        assert len(rows) == 5 and all(isinstance(r["cluster"], int) and 0 <= r["confidence"] <= 1 for r in rows)

        not_base64 = post(port, split(["%%% not base64 %%%"]))
        not_image = post(port, split([base64.b64encode(b"plain text, not a picture").decode()]))
        empty = post(port, {"dataframe_split": {"columns": ["image"], "data": []}})
        wrong_column = post(port, {"dataframe_split": {"columns": ["picture"], "data": [[images[0]]]}})
        huge = post(port, split([base64.b64encode(huge_png()).decode()]))
        too_many = post(port, split(images[:1] * (MAX_IMAGE_ROWS + 1)))
        number = post(port, split([12345]))
        not_json = post_bytes(port, b"{this is not json")
        for (status, body), words in [(not_base64, "not valid base64"), (not_image, "not a decodable image"),
                                      (empty, "empty batch"), (wrong_column, "image"),
                                      (huge, f"{MAX_IMAGE_PIXELS:,} pixels"), (too_many, f"{MAX_IMAGE_ROWS:,} rows"),
                                      (number, "image"), (not_json, "")]:
            assert 400 <= status < 500, (status, body)
            assert words in body.get("message", ""), body
        status, body = post(port, split(images))
        assert status == 200  # still serving
        # The `predict` job (the same model, in batches) gives every image the served model's answer.
        table = predict_job(model_uri=f"models:/{champion['name']}@champion", dataset=str(digit_pngs),
                            output=str(tmp_path / "clusters.csv"), batch_size=7)
        served = pd.DataFrame(body["predictions"])
        assert list(table["id"]) == [p.relative_to(digit_pngs).as_posix() for p in sorted(digit_pngs.rglob("*.png"))]
        assert (table["cluster"].to_numpy() == served["cluster"].to_numpy()).all()
        assert np.allclose(table["confidence"], served["confidence"])
        assert pd.read_csv(tmp_path / "clusters.csv").columns.tolist() == ["id", "cluster", "confidence", "label"]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_vector_model_checks_length_and_values(tmp_path, monkeypatch):
    from sklearn.datasets import make_blobs

    monkeypatch.chdir(tmp_path)
    X, y = make_blobs(n_samples=60, centers=3, n_features=4, random_state=0)
    pd.DataFrame(X, columns=list("abcd")).assign(label=y).to_csv(tmp_path / "v.csv", index=False)
    study = tune_job(workers=1, dataset=str(tmp_path / "v.csv"), encoder="none", n_trials=2, clusterers="hdbscan")
    registration = register_job(study.parent_run_id, model_name="vectors-test")
    model = mlflow.pyfunc.load_model(f"models:/vectors-test/{registration.version}")
    answer = model.predict(pd.DataFrame(X[:4], columns=list("abcd")))
    assert list(answer.columns) == ["cluster", "confidence"] and len(answer) == 4
    with pytest.raises(MlflowException, match="row 0: the vector contains NaN/inf"):
        model.predict(pd.DataFrame([[np.nan, 1.0, 2.0, 3.0]], columns=list("abcd")))
    # asked to, the model leaves a refused row to its own row (what the Spark UDF asks for)
    mixed = pd.DataFrame([X[0], [np.nan, 1.0, 2.0, 3.0], X[1]], columns=list("abcd"))
    rows = model.predict(mixed, params={"on_error": "row"})
    assert rows["cluster"].tolist()[1] == -1 and rows["confidence"].tolist()[1] == 0.0
    assert "NaN/inf" in rows["error"].iloc[1] and rows["error"].iloc[0] == rows["error"].iloc[2] == ""
    assert rows["cluster"].iloc[[0, 2]].tolist() == answer["cluster"].iloc[[0, 1]].tolist()
    with pytest.raises(MlflowException, match="on_error"):
        model.predict(mixed, params={"on_error": "skip"})
    with pytest.raises(MlflowException):
        model.predict(pd.DataFrame([[1.0, 2.0]], columns=list("ab")))


@pytest.mark.slow
def test_register_reads_the_trial_s_typed_parameters_from_its_study(tmp_path, monkeypatch, journal, caplog):
    """The study holds a trial's parameters typed; MLflow holds strings. Register reads the study, and
    guesses types from the strings only when the study's storage is gone (saying so)."""
    from sklearn.datasets import make_blobs

    from selector.jobs.register import _study_runs, trial_params

    monkeypatch.chdir(tmp_path)
    X, _ = make_blobs(n_samples=60, centers=3, n_features=4, random_state=0)
    pd.DataFrame(X, columns=list("abcd")).to_csv(tmp_path / "v.csv", index=False)
    study = tune_job(workers=1, dataset=str(tmp_path / "v.csv"), encoder="none", n_trials=3, clusterers="gmm,kmeans")
    parent, best = _study_runs(study.parent_run_id)
    expected = study.study.best_trial.params
    read = trial_params(parent, best)
    assert read == expected and {k: type(v) for k, v in read.items()} == {k: type(v) for k, v in expected.items()}
    assert all(isinstance(v, str) for v in best.data.params.values())  # what MLflow gives back
    journal.rename(tmp_path / "moved.log")
    guessed = trial_params(parent, best)
    assert "could not be read" in caplog.text
    assert {k: guessed[k] for k in expected} == expected
    assert not journal.exists()  # looking for the study did not create an empty one


@pytest.mark.slow
def test_select_tunes_each_encoder_logs_a_leaderboard_and_registers_the_winner(digit_pngs, tmp_path, monkeypatch):
    from selector.jobs.select import select_job

    monkeypatch.chdir(tmp_path)
    before = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(ValueError, match="unknown encoder 'nope'"):
        select_job(workers=1, dataset=str(digit_pngs), encoders="raw,nope", n_trials=1, model_name="select-test")
    with pytest.raises(ValueError, match="unknown objective 'nope'"):
        select_job(workers=1, dataset=str(digit_pngs), encoders="raw", n_trials=1, model_name="select-test", objective="nope")
    assert len(mlflow.search_runs(search_all_experiments=True)) == before  # refused before any run

    board, registration = select_job(workers=1, dataset=str(digit_pngs), encoders="raw", n_trials=2, model_name="select-test")
    assert list(board["encoder"]) == ["raw"] and board["chosen"].tolist() == [True]
    assert registration.promoted
    select_run = mlflow.search_runs(search_all_experiments=True, filter_string="tags.winner_encoder = 'raw'",
                                    order_by=["start_time DESC"]).iloc[0]
    artifacts = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(select_run["run_id"])}
    assert {"leaderboard.csv", "report.html"} <= artifacts
    assert select_run["tags.objective"] == DEFAULT_OBJECTIVE and board["objective"].tolist() == [DEFAULT_OBJECTIVE]
    assert select_run["metrics.best_objective_value"] == board["best_objective_value"].iloc[0]
    study = mlflow.get_run(board["study_run_id"].iloc[0])
    assert study.data.tags["mlflow.parentRunId"] == select_run["run_id"]  # studies nest under the select run


def test_select_ranks_encoders_by_the_objective_not_by_the_silhouette(digit_pngs, tmp_path, monkeypatch):
    """Two encoders whose best silhouette and best objective disagree: the objective decides."""
    from types import SimpleNamespace

    from selector.jobs import select as workflow

    monkeypatch.chdir(tmp_path)
    scores = {"raw": {"best_objective_value": 0.85, "best_silhouette_umap": 0.60},
              "efficientnet_lite0": {"best_objective_value": 0.70, "best_silhouette_umap": 0.95}}
    asked = {}

    def fake_study(request):
        asked.setdefault("objectives", set()).add(request.objective.name)
        best = SimpleNamespace(params={"clusterer": "kmeans"}, user_attrs={"n_clusters": 3})
        return SimpleNamespace(study=SimpleNamespace(best_trial=best, trials=[], user_attrs={}),
                               parent_run_id=f"run-{request.encoder}",
                               metrics=scores[request.encoder])

    monkeypatch.setattr(workflow, "run_study", fake_study)
    monkeypatch.setattr(workflow, "embed_many", lambda data, names: None)  # nothing is tuned here
    monkeypatch.setattr(workflow, "register_job", lambda run_id, model_name: SimpleNamespace(
        version="1", promoted=True, registered=run_id))
    # Studies that cannot be compared in each other's spaces: each encoder's own objective value decides.
    monkeypatch.setattr(workflow, "cross_space", lambda data, names, runs, objective, embedded=None, spaces=None: None)
    board, registration = workflow.select_job(dataset=str(digit_pngs), encoders="efficientnet_lite0,raw",
                                              n_trials=1, model_name="rank-test")
    assert asked["objectives"] == {DEFAULT_OBJECTIVE}
    assert board["encoder"].tolist() == ["raw", "efficientnet_lite0"] and board["chosen"].tolist() == [True, False]
    assert registration.registered == "run-raw"
    assert mlflow.get_run(mlflow.last_active_run().info.run_id).data.tags["encoder_rule"] == "best_objective_value"

    # Comparable studies: the mean over every study's space decides, against the own values.
    monkeypatch.setattr(workflow, "cross_space", lambda data, names, runs, objective, embedded=None, spaces=None: {
        "raw": 0.40, "efficientnet_lite0": 0.65})
    board, registration = workflow.select_job(dataset=str(digit_pngs), encoders="efficientnet_lite0,raw",
                                              n_trials=1, model_name="rank-test")
    assert board["encoder"].tolist() == ["efficientnet_lite0", "raw"] and registration.registered == "run-efficientnet_lite0"
    assert board["cross_objective_value"].tolist() == [0.65, 0.40]
    assert mlflow.get_run(mlflow.last_active_run().info.run_id).data.tags["encoder_rule"] == "cross_objective_value"


@pytest.mark.slow
def test_select_scores_each_study_s_clustering_in_every_study_s_space(digit_pngs, tmp_path, monkeypatch):
    """The cross-space rule on real studies: every encoder's clusters.csv is read back, aligned by id,
    and scored in each evaluation space; the leaderboard carries the means."""
    from selector.jobs import select as workflow
    from selector.stages.objective import get_objective

    monkeypatch.chdir(tmp_path)
    board, _ = workflow.select_job(workers=1, dataset=str(digit_pngs), encoders="raw,efficientnet_lite0",
                                   n_trials=3, model_name="cross-test")
    values = dict(zip(board["encoder"], board["cross_objective_value"]))
    assert set(values) == {"raw", "efficientnet_lite0"} and all(-1 <= v <= 1 for v in values.values())
    assert board["chosen"].iloc[0] and board["cross_objective_value"].is_monotonic_decreasing
    # by hand: raw's chosen clustering in both spaces
    from selector.stages.data import load_dataset
    from selector.stages.embedding import embed
    from selector.study.request import reduction_cache
    from selector.stages.objective import build_eval_space

    data = load_dataset(str(digit_pngs))
    run = board.set_index("encoder").loc["raw", "study_run_id"]
    chosen = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run, artifact_path="clusters.csv"))
    score = get_objective(DEFAULT_OBJECTIVE).score
    by_hand = []
    for name in ("raw", "efficientnet_lite0"):
        embedded = embed(data, name)
        assert (chosen["id"].astype(str).to_numpy() == np.asarray(embedded.ids).astype(str)).all()
        by_hand.append(score(build_eval_space(embedded.vectors, reduction_cache(embedded), 0),
                             chosen["cluster"].to_numpy(), 0).value)
    assert values["raw"] == pytest.approx(np.mean(by_hand))


@pytest.fixture(scope="module")
def champion_model(champion):
    return mlflow.pyfunc.load_model(f"models:/{champion['name']}@champion")


def _answers_or_refuses(model, frame: pd.DataFrame) -> None:
    """The model's whole contract with a client: an answer row per input row, or the error the
    scoring server turns into HTTP 400 — never another exception."""
    try:
        answer = model.predict(frame)
    except MlflowException as exc:
        assert 400 <= exc.get_http_status_code() < 500, (exc.error_code, exc.message)
        return
    assert len(answer) == len(frame) and answer["confidence"].between(0, 1).all()


@pytest.mark.slow
def test_the_model_answers_or_refuses_any_request(champion_model, digit_pngs):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from registry.promote import png_base64

    good = training_request(digit_pngs)["image"].tolist()[:3]
    images = st.builds(lambda a: png_base64(np.asarray(a, dtype=np.uint8)),
                       st.lists(st.lists(st.integers(0, 255), min_size=1, max_size=12), min_size=1, max_size=12)
                       .filter(lambda rows: len({len(r) for r in rows}) == 1))
    cell = st.one_of(st.sampled_from(good), images, st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
                     st.text(max_size=40), st.binary(max_size=60), st.integers(), st.floats(allow_nan=True),
                     st.none(), st.just(""))
    frames = st.one_of(
        st.lists(cell, min_size=0, max_size=6).map(lambda cells: pd.DataFrame({"image": cells})),
        st.builds(lambda name, cells: pd.DataFrame({name: cells}), st.sampled_from(["picture", "Image", "0"]),
                  st.lists(cell, min_size=1, max_size=3)))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frames)
    def check(frame):
        _answers_or_refuses(champion_model, frame)

    check()


@pytest.mark.slow
def test_mlflow_run_predict_writes_a_row_per_image(champion, digit_pngs, tmp_path, run_cli, project_root):
    output = tmp_path / "assigned.csv"
    done = run_cli("mlflow", "run", str(project_root), "-e", "predict", "-P", f"model_uri=models:/{champion['name']}@champion",
                   "-P", f"dataset={digit_pngs}", "-P", f"output={output}", "-P", "batch_size=50",
                   "--env-manager", "local", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(output)
    assert len(table) == 120 and list(table.columns) == ["id", "cluster", "confidence", "label"]
    assert "120 points" in done.stdout


@pytest.mark.slow
def test_an_alternative_of_a_study_is_listed_shown_registered_and_served(tmp_path, monkeypatch):
    """Two groups of two blobs: k = 2 and k = 4 both make sense. The study lists the best trial of each
    resolution (``alternatives.csv``, the report's section, ``choice_margin``), and ``register -P
    trial=N`` registers one that is not the choice; its served answers have that trial's clusters."""
    from sklearn.datasets import make_blobs

    from selector.study.alternatives import alternatives

    monkeypatch.chdir(tmp_path)
    centres = [[0, 0], [0, 6], [40, 0], [40, 6]]
    X, y = make_blobs(n_samples=400, centers=centres, cluster_std=1.0, random_state=0)
    pd.DataFrame(X, columns=["a", "b"]).assign(label=y).to_csv(tmp_path / "groups.csv", index=False)
    study = tune_job(workers=1, dataset=str(tmp_path / "groups.csv"), encoder="none", n_trials=14, clusterers="kmeans")
    found = alternatives(study.study)
    assert len(found) >= 2 and study.metrics["choice_margin"] == pytest.approx(found[1].gap)
    listed = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=study.parent_run_id,
                                                             artifact_path="alternatives.csv"))
    assert list(listed["trial"]) == [a.trial.number for a in found] and listed["chosen"].tolist()[0]
    page = (tmp_path / "report.html")
    page.write_text(open(mlflow.artifacts.download_artifacts(run_id=study.parent_run_id,
                                                             artifact_path="report.html")).read())
    assert 'id="alternatives"' in page.read_text() and f'data-trial="{found[1].trial.number}"' in page.read_text()

    other = found[1]
    registration = register_job(study.parent_run_id, model_name="alternative-test", trial=str(other.trial.number))
    version = mlflow.tracking.MlflowClient().get_model_version("alternative-test", registration.version)
    assert version.tags["trial"] == str(other.trial.number)
    model = mlflow.pyfunc.load_model(f"models:/alternative-test/{registration.version}")
    answer = model.predict(pd.DataFrame(X, columns=["a", "b"]))
    assert answer["cluster"].nunique() == other.k
    with pytest.raises(ValueError, match="no finished, scored trial number 999"):
        register_job(study.parent_run_id, model_name="alternative-test", trial="999")
    with pytest.raises(ValueError, match="`trial` must be a trial number"):
        register_job(study.parent_run_id, model_name="alternative-test", trial="best")


def test_select_compares_by_own_values_when_a_study_s_clusters_cannot_be_read(tmp_path, monkeypatch, caplog):
    from sklearn.datasets import make_blobs

    from selector.stages.data import load_dataset
    from selector.jobs import select as workflow

    monkeypatch.chdir(tmp_path)
    X, _ = make_blobs(n_samples=60, centers=3, n_features=4, random_state=0)
    pd.DataFrame(X, columns=list("abcd")).to_csv(tmp_path / "blobs.csv", index=False)
    data = load_dataset(str(tmp_path / "blobs.csv"))
    assert workflow.cross_space(data, ["none", "none"], ["no-such-run", "nor-this"], DEFAULT_OBJECTIVE) is None
    assert "has no readable clusters.csv" in caplog.text


@pytest.mark.slow
def test_an_image_model_takes_its_encoder_s_vectors_or_raw_bytes_instead_of_images(champion_model, digit_pngs):
    """`vector` (the image's embedding by the model's own encoder) and raw bytes in `image` answer as
    base64 images do; a vector of the wrong length is a 400 naming the length."""
    from selector.stages.data import load_dataset
    from selector.stages.embedding import embed

    paths = sorted(digit_pngs.rglob("*.png"))[:8]
    by_image = champion_model.predict(training_request(digit_pngs).iloc[:8])
    embedded = embed(load_dataset(str(digit_pngs)), "raw")
    position = {str(i): n for n, i in enumerate(embedded.ids)}
    vectors = [embedded.vectors[position[p.relative_to(digit_pngs).as_posix()]].tolist() for p in paths]
    by_vector = champion_model.predict(pd.DataFrame({"vector": vectors}))
    by_bytes = champion_model.predict(pd.DataFrame({"image": [p.read_bytes() for p in paths]}))
    for answer in (by_vector, by_bytes):
        assert answer["cluster"].tolist() == by_image["cluster"].tolist()
        np.testing.assert_allclose(answer["confidence"], by_image["confidence"], rtol=1e-6)
    with pytest.raises(MlflowException, match="must hold 1024 numbers") as refused:
        champion_model.predict(pd.DataFrame({"vector": [vectors[0][:10]]}))
    assert refused.value.get_http_status_code() == 400
