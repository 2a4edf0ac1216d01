"""The entry points as users meet them: through `mlflow run`, and with bad input."""

import inspect
import sys

import mlflow
import numpy as np
import pytest
import yaml

from selector.jobs import ENTRY_POINTS, job

CONTRACT_ENTRY_POINTS = {"main", "embed", "tune", "register", "select", "predict"}


MLPROJECT_TYPES = {"string": str, "int": int, "float": float}


def test_mlproject_the_parsers_and_the_job_signatures_agree_both_ways(project_root):
    """Every entry point's parameters are its job's parameters, its parser's options and MLproject's
    parameters — the same names in each direction, the same defaults and types — and MLproject's command
    passes every one of them on."""
    from selector import cli

    entry_points = yaml.safe_load((project_root / "MLproject").read_text())["entry_points"]
    assert set(entry_points) == CONTRACT_ENTRY_POINTS == set(ENTRY_POINTS)
    for name in ENTRY_POINTS:
        job_of = job(name)
        assert job_of.__module__ == f"selector.jobs.{name}"  # one module per entry point
        signature = inspect.signature(job_of).parameters
        declared = entry_points[name]["parameters"]
        parser = cli.parser(name, job_of)
        options = {action.dest: action for action in parser._actions if action.dest != "help"}
        assert set(declared) == set(signature) == set(options), name
        command = " ".join(entry_points[name]["command"].split())
        for param, spec in declared.items():
            assert f"--{param} {{{param}}}" in command, f"{name}: MLproject's command does not pass {param}"
            default = signature[param].default
            option = options[param]
            if "default" not in spec:
                assert default is inspect.Parameter.empty and option.required, f"{name}.{param}"
                continue
            assert not option.required
            if isinstance(default, bool):
                assert spec["default"] == str(default).lower() and option.type("true") is True, f"{name}.{param}"
                continue
            assert MLPROJECT_TYPES[spec["type"]] is type(default) is option.type, f"{name}.{param}"
            assert type(default)(spec["default"]) == default, f"{name}.{param}: MLproject {spec['default']!r} vs {default!r}"


def test_readme_s_entry_point_table_names_every_parameter(project_root):
    rows = {line.split("|")[1].strip(" `"): line for line in (project_root / "README.md").read_text().splitlines()
            if line.startswith("| `")}
    for name in ENTRY_POINTS:
        assert name in rows, f"README's entry-point table has no row for {name}"
        missing = [p for p in inspect.signature(job(name)).parameters if f"`{p}`" not in rows[name]]
        assert not missing, f"README's row for {name} does not name {missing}"


def test_the_selector_command_runs_the_entry_points_and_lists_their_options(tmp_path, run_cli):
    listed = run_cli("selector", "--help", cwd=tmp_path)
    assert listed.returncode == 0 and all(name in listed.stdout for name in ENTRY_POINTS)
    unknown = run_cli("selector", "tuen", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown entry point 'tuen'" in unknown.stderr
    helped = run_cli("selector", "tune", "--help", cwd=tmp_path)
    assert helped.returncode == 0
    assert all(f"--{param}" in helped.stdout.replace("-", "_").replace("__", "--")
               for param in inspect.signature(job("tune")).parameters)
    refused = run_cli("selector", "embed", "--dataset", "/no/such/place", cwd=tmp_path)
    assert refused.returncode == 2 and "neither a built-in name" in refused.stderr and "Traceback" not in refused.stderr
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_a_command_ends_though_a_thread_pool_of_a_library_sits_idle(tmp_path, run_cli):
    """MLflow keeps thread pools (artifact downloads) whose idle workers never end on their own: the
    quick exit tells them to stop, as the interpreter's own exit does, instead of waiting for ever."""
    code = ("import concurrent.futures\n"
            "pool = concurrent.futures.ThreadPoolExecutor(2)\n"
            "pool.submit(print, 'worked').result()\n"
            "from selector.cli import exit_process\n"
            "exit_process(3)\n")
    done = run_cli(sys.executable, "-c", code, cwd=tmp_path, timeout=60)
    assert done.returncode == 3 and done.stdout.strip() == "worked"


def runs_in_store():
    return len(mlflow.search_runs(search_all_experiments=True))


@pytest.mark.slow
def test_mlflow_run_embed_on_digits_with_raw(tmp_path, run_cli, project_root):
    before = runs_in_store()
    done = run_cli("mlflow", "run", str(project_root), "-e", "embed", "-P", "encoder=raw", "-P", "dataset=digits",
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
def test_bad_input_exits_non_zero_with_one_clear_line_and_no_run(tmp_path, args, message, run_cli, project_root):
    before = runs_in_store()
    done = run_cli(sys.executable, str(project_root / "entrypoints" / "embed.py"), *args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert runs_in_store() == before


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".png", ".pgm"])
def test_the_readme_quick_start_runs_as_written_on_a_folder_of_photos(tmp_path, run_cli, project_root, suffix):
    """README's quick start, word for word but for the folder: `select` on a folder of images in
    sub-folders (PNG, or the PGM of scientific cameras), then `predict` with the registered champion."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    photos = tmp_path / "photos"
    for label in (0, 1, 7):
        (photos / f"class_{label}").mkdir(parents=True)
        for index in np.flatnonzero(digits.target == label)[:15]:
            image = np.round(digits.images[index] * 255 / 16).astype(np.uint8)
            Image.fromarray(image).resize((32, 32)).save(photos / f"class_{label}" / f"{index}{suffix}")
    env = {"SELECTOR_CACHE_DIR": str(tmp_path / "cache"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    done = run_cli("mlflow", "run", str(project_root), "-e", "select", "-P", f"dataset={photos}", "-P",
                   "model_name=photos", "--env-manager", "local", cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "winner" in done.stdout and "photos version 1" in done.stdout
    done = run_cli("mlflow", "run", str(project_root), "-e", "predict", "-P", "model_uri=models:/photos@champion",
                   "-P", f"dataset={photos}", "-P", f"output={tmp_path / 'photos.csv'}", "--env-manager", "local",
                   cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    import pandas as pd

    table = pd.read_csv(tmp_path / "photos.csv")
    assert len(table) == 45 and table["id"].str.endswith(suffix).all() and table["cluster"].nunique() >= 2
