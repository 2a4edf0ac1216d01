"""The entry points as users meet them: through `mlflow run`, and with bad input."""

import inspect
import os
import subprocess
import sys

import mlflow
import pytest
import yaml

from selector import workflow as jobs

from conftest import PROJECT_ROOT

CONTRACT_ENTRY_POINTS = {"main", "embed", "tune", "register", "select"}


def mlproject() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())


def test_mlproject_has_the_contract_entry_points_and_mirrors_the_library_defaults():
    entry_points = mlproject()["entry_points"]
    assert set(entry_points) == CONTRACT_ENTRY_POINTS
    for name, job in jobs.ENTRY_POINTS.items():
        signature = inspect.signature(job).parameters
        for param, spec in entry_points[name]["parameters"].items():
            assert param in signature, f"{name}: {param} is not a parameter of {job.__name__}"
            default = signature[param].default
            if "default" not in spec:
                assert default is inspect.Parameter.empty, f"{name}.{param}"
                continue
            expected = default if not isinstance(default, bool) else str(default).lower()
            assert type(default)(spec["default"]) == default if not isinstance(default, bool) else \
                spec["default"] == expected, f"{name}.{param}: MLproject {spec['default']!r} vs {default!r}"


def run_cli(*args, cwd, env=None):
    return subprocess.run(args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=600)


def runs_in_store():
    return len(mlflow.search_runs(search_all_experiments=True))


@pytest.mark.slow
def test_mlflow_run_embed_on_digits_with_raw(tmp_path):
    before = runs_in_store()
    done = run_cli("mlflow", "run", str(PROJECT_ROOT), "-e", "embed", "-P", "encoder=raw", "-P", "dataset=digits",
                   "--env-manager", "local", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time DESC"])
    assert len(runs) == before + 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED" and run["params.encoder"] == "raw"
    assert run["metrics.n_images"] == 1797 and run["metrics.embedding_dim"] == 1024
    assert run["metrics.images_per_second"] > 0 and run["tags.cache_hit"] == "false"
    artifacts = mlflow.artifacts.download_artifacts(run_id=run["run_id"], dst_path=str(tmp_path / "a"))
    import numpy as np

    with np.load(f"{artifacts}/embeddings.npz") as stored:
        assert stored["X"].shape == (1797, 1024) and stored["y"].shape == (1797,)


@pytest.mark.parametrize("args, message", [
    (["--dataset", "/no/such/place"], "neither a built-in name"),
    (["--encoder", "not_a_model"], "unknown encoder 'not_a_model'"),
    (["--encoder", "raw", "--batch_size", "0"], "`batch_size` must be an int >= 1"),
])
def test_bad_input_exits_non_zero_with_one_clear_line_and_no_run(tmp_path, args, message):
    before = runs_in_store()
    done = run_cli(sys.executable, str(PROJECT_ROOT / "entrypoints" / "embed.py"), *args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert runs_in_store() == before
