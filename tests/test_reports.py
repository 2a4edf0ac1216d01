"""The reports people open: `report.html` of a study (with and without labels) and of `select`."""

import base64
import re
import shutil
from html.parser import HTMLParser

import mlflow
import numpy as np
import pandas as pd
import pytest

from selector.study import report_html, reports
from selector.stages.clustering import ClusterModel
from selector.stages.data import load_dataset
from selector.stages.embedding import cache_dir, embed
from selector.jobs.tune import tune_job
from selector.stages.reduction import ReductionCache
from selector.study.trials import pipeline_params

STUDY_SECTIONS = {"best", "history", "importances", "cluster-map", "clusters", "gallery", "alternatives", "timings"}
LABEL_SECTIONS = {"objective-vs-ami", "paper-recipe"}


class Page(HTMLParser):
    """Section ids and gallery thumbnails (cluster, id, PNG bytes) of a report."""

    def __init__(self, text: str):
        super().__init__()
        self.sections, self.thumbs, self._figure = set(), [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.add(attrs["id"])
        elif tag == "figure" and "thumb" in attrs.get("class", ""):
            self._figure = (int(attrs["data-cluster"]), attrs["data-id"])
        elif tag == "img" and self._figure:
            png = base64.b64decode(attrs["src"].split(",", 1)[1])
            self.thumbs.append((*self._figure, png))
            self._figure = None


def report_of(run_id: str, tmp_path) -> str:
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="report.html", dst_path=str(tmp_path))
    return open(path, encoding="utf-8").read()


def best_labels(result, dataset: str, encoder: str) -> tuple[np.ndarray, object, object]:
    """The best trial's clustering, recomputed from the study's cached reduction."""
    data = load_dataset(dataset)
    embedded = embed(data, encoder, progress=False)
    reducer, clusterer = pipeline_params(result.study.best_trial.params)
    reduced = ReductionCache(cache_dir().parent / "reductions", embedded.key).reduce(embedded.vectors, reducer, 0)
    return ClusterModel(clusterer, seed=0).fit(reduced).labels_, embedded, data


@pytest.mark.slow
def test_a_labelled_study_report_has_every_section_and_a_truthful_gallery(digit_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = tune_job(workers=1, dataset=str(digit_folder), encoder="raw", n_trials=4, clusterers="kmeans,agglomerative")
    text = report_of(result.parent_run_id, tmp_path)
    page = Page(text)
    assert STUDY_SECTIONS | LABEL_SECTIONS <= page.sections

    labels, embedded, data = best_labels(result, str(digit_folder), "raw")
    cluster_of = dict(zip(embedded.ids, labels))
    position = {item_id: i for i, item_id in enumerate(data.ids)}
    assert page.thumbs and {c for c, _, _ in page.thumbs} == set(labels.tolist())  # every cluster is shown
    for cluster, item_id, png in page.thumbs:
        assert cluster_of[item_id] == cluster  # the image sits in the cluster it is shown under
        assert png == report_html.thumbnail(data.images[position[item_id]])  # and it is that image

    paper = mlflow.get_run(result.parent_run_id).data.metrics
    from selector.stages.objective import DEFAULT_OBJECTIVE, build_eval_space, get_objective, paper_recipe

    space = build_eval_space(embedded.vectors, ReductionCache(cache_dir().parent / "reductions", embedded.key), 0)
    expected = paper_recipe(space, embedded.labels, get_objective(DEFAULT_OBJECTIVE))  # recomputed from its definition
    assert paper["paper_recipe_k"] == 3 and paper["paper_recipe_ami"] == pytest.approx(expected["paper_recipe_ami"])
    assert f"{paper['paper_recipe_ami']:.4f}" in text


@pytest.mark.slow
def test_a_study_without_labels_reports_no_ami_and_does_not_crash(digit_folder, tmp_path, monkeypatch):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in digit_folder.rglob("*.png"):
        shutil.copy(path, flat / f"{path.parent.name}_{path.name}")
    monkeypatch.chdir(tmp_path)
    result = tune_job(workers=1, dataset=str(flat), encoder="raw", n_trials=3, clusterers="kmeans")
    text = report_of(result.parent_run_id, tmp_path)
    page = Page(text)
    assert STUDY_SECTIONS <= page.sections and not page.sections & LABEL_SECTIONS
    assert not re.search(r"\bami\b|adjusted mutual", text, flags=re.IGNORECASE)
    assert not [k for k in mlflow.get_run(result.parent_run_id).data.metrics if "ami" in k]
    assert page.thumbs


def test_the_select_page_marks_the_winner_and_checks_it_against_ami_only_when_labels_exist():
    board = pd.DataFrame({"encoder": ["raw", "efficientnet_lite0"], "objective": ["modularity"] * 2,
                          "best_objective_value": [0.86, 0.80], "best_silhouette_umap": [0.81, 0.63],
                          "clusterer": ["hdbscan", "hdbscan"], "n_clusters": [9, 2], "best_ami": [0.88, 0.23],
                          "oracle_ami": [0.93, 0.70], "selection_regret": [0.05, 0.47],
                          "paper_recipe_ami": [0.90, 0.65], "study_run_id": ["a", "b"], "chosen": [True, False]})
    text = reports.select_page(board, "digits")
    assert "leaderboard" in Page(text).sections and "<tr class=chosen><td>raw</td>" in text
    assert "(raw) matched the encoder with the highest AMI (raw)" in text
    assert "Chosen by the mean modularity of each study's clustering over every study's evaluation space" in text
    assert "the best modularity in each study's own space" in reports.select_page(board, "d", "best_objective_value")
    flipped = board.assign(best_ami=[0.2, 0.5])
    assert "did not match the encoder with the highest AMI (efficientnet_lite0)" in reports.select_page(flipped, "d")
    unlabelled = board.assign(best_ami=None, oracle_ami=None, selection_regret=None, paper_recipe_ami=None)
    text = reports.select_page(unlabelled, "photos")
    assert not re.search(r"\bami\b|regret", text, flags=re.IGNORECASE)


@pytest.mark.parametrize("uri, expected", [
    ("http://tracking:5000", "http://tracking:5000/#/experiments/7/runs/abc"),
    ("sqlite:////tmp/x/mlflow.db", "mlflow ui --backend-store-uri sqlite:////tmp/x/mlflow.db"),
    ("postgresql://u:secret@db/mlflow", "postgresql://u:***@db/mlflow"),
])
def test_the_terminal_summary_says_where_to_look(uri, expected, monkeypatch):
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: uri)
    text = reports.terminal_summary("s", {"best_objective_value": 0.7, "best_silhouette_umap": 0.5,
                                          "n_trials_complete": 3}, "abc", "7", "modularity")
    assert expected in text and "secret" not in text and "best_silhouette_umap" in text
    assert "(objective modularity)" in text and "best_objective_value" in text


# --------------------------------------------------------------------------- in a real browser
VIEWPORT = 1280
CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt);
  const wide = [...document.body.querySelectorAll("*")]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
    .map(e => e.tagName + (e.id ? "#" + e.id : "") + " " + Math.round(e.getBoundingClientRect().right));
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({images: images.length, broken, wide, width: window.innerWidth,
                                    scroll: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script>"""


def render(page: str, name: str, artifacts) -> dict:
    """``page`` in headless Chromium at a 1,280-pixel viewport: a screenshot saved under ``artifacts``,
    and what the page's own script measured (images loaded, elements wider than the viewport)."""
    import json
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's `chromium`)")
    artifacts.mkdir(parents=True, exist_ok=True)
    html = artifacts / f"{name}.html"
    html.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--window-size={VIEWPORT},900", "--virtual-time-budget=5000"]
    for extra in ([f"--screenshot={artifacts / f'{name}.png'}"], ["--dump-dom"]):
        done = subprocess.run([*flags, f"--user-data-dir={artifacts / f'profile-{name}-{len(extra[0])}'}", *extra,
                               html.as_uri()], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', done.stdout, flags=re.S)
    assert found, done.stdout[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.fixture(scope="module")
def browser_artifacts(tmp_path_factory):
    """Screenshots kept for a person to look at: ``$SELECTOR_TEST_ARTIFACTS`` when set, else a temp folder."""
    import os
    from pathlib import Path

    root = os.environ.get("SELECTOR_TEST_ARTIFACTS")
    return Path(root) / "reports" if root else tmp_path_factory.mktemp("browser")


@pytest.mark.slow
def test_both_report_pages_render_whole_in_a_browser_at_1280_pixels(digit_folder, tmp_path, monkeypatch,
                                                                   browser_artifacts):
    monkeypatch.chdir(tmp_path)
    result = tune_job(workers=1, dataset=str(digit_folder), encoder="raw", n_trials=4, clusterers="kmeans,hdbscan")
    study = render(report_of(result.parent_run_id, tmp_path), "study", browser_artifacts)
    assert study["images"] >= 4 and not study["broken"], study  # the plots and the gallery's thumbnails
    assert not study["wide"] and study["scroll"] <= VIEWPORT, study
    board = pd.DataFrame({"encoder": ["raw", "efficientnet_lite0", "vit_base_patch16_224.augreg_in21k_ft_in1k"],
                          "objective": ["modularity_silhouette"] * 3, "best_objective_value": [0.6933, 0.3946, 0.41],
                          "best_silhouette_umap": [0.8111, 0.5410, 0.6], "clusterer": ["hdbscan", "affinity_propagation",
                                                                                        "agglomerative"],
                          "n_clusters": [10, 9, 12], "best_ami": [0.8748, 0.6930, 0.7], "oracle_ami": [0.9118, 0.7088, 0.8],
                          "selection_regret": [0.0370, 0.0158, 0.1], "paper_recipe_ami": [0.8748, 0.6702, 0.7],
                          "study_run_id": ["93035bb156d74a8d8cfcb2c41588cd6d"] * 3, "chosen": [True, False, False]})
    select = render(reports.select_page(board, "digits"), "select", browser_artifacts)
    assert not select["broken"] and not select["wide"] and select["scroll"] <= VIEWPORT, select
