"""Models registered before keep loading: stored format-2 models (tests/data/format2) answer as they did."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

STORED = Path(__file__).parent / "data" / "format2"


@pytest.fixture
def load_stored(monkeypatch):
    """``mlflow.pyfunc.load_model`` on a stored model; the model's ``code/`` copy that MLflow puts on
    ``sys.path`` is taken off again afterwards."""
    import mlflow

    import registry.model  # noqa: F401  (today's package imported first, as in a serving process)

    monkeypatch.setattr(sys, "path", list(sys.path))
    return lambda name: mlflow.pyfunc.load_model(str(STORED / name))


@pytest.mark.parametrize("name", ["raw_umap_hdbscan", "vectors_pca_agglomerative"])
def test_a_format_2_model_places_its_points_as_it_did(load_stored, name, caplog, monkeypatch):
    from selector.stages import pipeline as module

    monkeypatch.setattr(module, "_WARNED", False)
    model = load_stored(name)
    assert "re-register its study" in caplog.text  # one line on how to get the pickle-free format
    pipeline = model.unwrap_python_model().pipeline
    # Its classes were pickled under the old module paths; they load as today's classes.
    assert type(pipeline).__module__ == "selector.stages.pipeline"
    assert type(pipeline.cluster_model_).__module__ == "selector.stages.clustering"
    expected = np.load(STORED / f"{name}_expected.npz")
    labels, confidence = pipeline.assign(np.load(STORED / f"{name}_vectors.npy"))
    np.testing.assert_array_equal(labels, expected["cluster"])
    np.testing.assert_allclose(confidence, expected["confidence"], rtol=1e-6)


def test_a_format_2_image_model_answers_requests(load_stored):
    from selector.stages.data import encode_png, load_dataset

    model = load_stored("raw_umap_hdbscan")
    images = load_dataset("digits").images
    frame = pd.DataFrame({"image": [base64.b64encode(encode_png(images[i])).decode() for i in range(40)]})
    answer = model.predict(frame)
    expected = np.load(STORED / "raw_umap_hdbscan_expected.npz")
    np.testing.assert_array_equal(answer["cluster"].to_numpy(), expected["cluster"])
    np.testing.assert_allclose(answer["confidence"].to_numpy(), expected["confidence"], rtol=1e-6)


@pytest.mark.slow
def test_a_format_2_model_still_serves(tmp_path, wait_for):
    """`mlflow models serve` on the stored format-2 image model answers as it did."""
    import json
    import os
    import subprocess
    import urllib.request

    from stack import free_port

    from selector.stages.data import encode_png, load_dataset

    port = free_port()
    server = subprocess.Popen(["mlflow", "models", "serve", "-m", str(STORED / "raw_umap_hdbscan"), "--env-manager",
                               "local", "-h", "127.0.0.1", "-p", str(port)], cwd=tmp_path, env=dict(os.environ),
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "serve.log", "w"))

    def ready():
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return True
        except OSError:
            return False

    try:
        wait_for(ready, 240, "the format-2 model's server")
        images = load_dataset("digits").images
        rows = [[base64.b64encode(encode_png(images[i])).decode()] for i in range(10)]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", headers={"Content-Type": "application/json"},
                                         data=json.dumps({"dataframe_split": {"columns": ["image"], "data": rows}}).encode())
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())["predictions"]
        expected = np.load(STORED / "raw_umap_hdbscan_expected.npz")
        assert [row["cluster"] for row in answer] == expected["cluster"][:10].tolist()
    finally:
        server.terminate()
        server.wait(timeout=30)
