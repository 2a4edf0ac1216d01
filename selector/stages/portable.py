"""A fitted pipeline as arrays and JSON, and the pipeline that serves from them — no pickle.

``export(pipeline)`` takes what serving needs out of a fitted ``ClusterPipeline``: the scaler's
statistics; PCA's components and mean; for UMAP the fitted sample's scaled inputs, their coordinates
and the layout's ``min_dist`` (new points are placed by ``neighbours.place_by_neighbours``, as trials
place them); for the clusterer what its placement rule reads — k-means' centroids, a mixture's
weights, means and covariances, the vote's fitted points and labels, HDBSCAN's prediction data (the
condensed tree, core distances, the selected clusters), with ``approximate_predict`` reimplemented
here on it. ``save`` writes them as ``pipeline.npz`` + ``pipeline.json``; ``load`` reads them with
``allow_pickle=False`` into a ``PortablePipeline``, which imports neither umap-learn nor hdbscan.
``tests/test_portable.py`` checks that it answers as the fitted objects do, for every clusterer and
reducer of the search. Training keeps using the libraries; only the fitted state is exported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT = 3  # models of formats 1 and 2 were pickles of the fitted objects
ARRAYS_FILE = "pipeline.npz"
SPEC_FILE = "pipeline.json"


class Arrays:
    """The arrays of one export, named in order (``a0``, ``a1``, …) as the spec refers to them."""

    def __init__(self):
        self.stored: dict[str, np.ndarray] = {}

    def put(self, value) -> str:
        name = f"a{len(self.stored)}"
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"cannot export an object array as {name}: only numbers are stored")
        self.stored[name] = array
        return name


# ------------------------------------------------------------------------------------- export
def export(pipeline) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON spec and the named arrays of a fitted ``ClusterPipeline``."""
    arrays = Arrays()
    steps = [_export_step(step, arrays) for _, step in pipeline.reducer_.steps]
    spec = {"format": FORMAT, "n_features_in": int(pipeline.n_features_in_), "steps": steps,
            "placement": _export_placement(pipeline.cluster_model_.placement_, arrays),
            "reducer": _plain(pipeline.reducer), "clusterer": _plain(pipeline.clusterer), "seed": int(pipeline.seed)}
    return spec, arrays.stored


def _export_step(step, arrays: Arrays) -> dict:
    from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler

    from selector.stages.reduction import ClippedPCA, GraphUMAP, Identity

    if isinstance(step, StandardScaler):
        return {"kind": "zscore", "mean": arrays.put(step.mean_), "scale": arrays.put(step.scale_)}
    if isinstance(step, Normalizer):
        return {"kind": "l2"}
    if isinstance(step, (FunctionTransformer, Identity)):
        return {"kind": "identity", "float32": isinstance(step, Identity)}
    if isinstance(step, ClippedPCA):
        if step.pca_.whiten:
            raise TypeError("a whitened PCA is not exported")
        return {"kind": "pca", "components": arrays.put(step.pca_.components_), "mean": arrays.put(step.pca_.mean_)}
    if isinstance(step, GraphUMAP):
        return {"kind": "umap", "train": arrays.put(step.train_), "embedding": arrays.put(step.embedding_),
                "k": int(step.neighbours_.n_neighbors), "metric": step.metric, "min_dist": float(step.min_dist)}
    raise TypeError(f"no portable form for the reducer step {type(step).__name__}")


def _export_placement(placement, arrays: Arrays) -> dict:
    from selector.stages.clustering import ApproximatePredict, NearestVote, OwnPredict

    estimator = placement.estimator_
    if isinstance(placement, NearestVote):
        return {"kind": "vote", "points": arrays.put(_vote_points(placement)), "labels": arrays.put(placement.labels_),
                "voters": int(placement.neighbours_.n_neighbors)}
    if isinstance(placement, ApproximatePredict):
        return _export_hdbscan(estimator, arrays)
    if isinstance(placement, OwnPredict) and hasattr(estimator, "cluster_centers_"):
        return {"kind": "centroids", "centers": arrays.put(estimator.cluster_centers_)}
    if isinstance(placement, OwnPredict) and hasattr(estimator, "precisions_cholesky_"):
        return {"kind": "mixture", "covariance_type": estimator.covariance_type,
                "weights": arrays.put(estimator.weights_), "means": arrays.put(estimator.means_),
                "covariances": arrays.put(estimator.covariances_),
                "precisions_cholesky": arrays.put(estimator.precisions_cholesky_)}
    raise TypeError(f"no portable form for placing by {type(placement).__name__} with {type(estimator).__name__}")


def _vote_points(placement) -> np.ndarray:
    points = getattr(placement, "points_", None)
    return points if points is not None else placement.neighbours_._fit_X  # fitted before points_ was kept


def _export_hdbscan(estimator, arrays: Arrays) -> dict:
    try:
        data = estimator.prediction_data_
    except AttributeError:  # the data ``prediction_data=True`` computes during the fit
        estimator.generate_prediction_data()
        data = estimator.prediction_data_
    tree = estimator.condensed_tree_._raw_tree
    clusters = sorted(data.cluster_map)
    return {"kind": "hdbscan", "raw_data": arrays.put(data.raw_data), "core_distances": arrays.put(data.core_distances),
            "tree_parent": arrays.put(tree["parent"]), "tree_child": arrays.put(tree["child"]),
            "tree_lambda": arrays.put(tree["lambda_val"]), "tree_child_size": arrays.put(tree["child_size"]),
            "map_clusters": arrays.put(np.asarray(clusters, dtype=np.int64)),
            "map_labels": arrays.put(np.asarray([data.cluster_map[c] for c in clusters], dtype=np.int64)),
            "max_lambda_clusters": arrays.put(np.asarray(sorted(data.max_lambdas), dtype=np.int64)),
            "max_lambdas": arrays.put(np.asarray([data.max_lambdas[c] for c in sorted(data.max_lambdas)],
                                                 dtype=np.float64)),
            "min_samples": int(estimator.min_samples or estimator.min_cluster_size),
            "metric": str(estimator.metric)}


def _plain(params: dict) -> dict:
    """Trial parameters as JSON holds them (NumPy scalars as Python numbers)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}


def save(pipeline, folder: str | Path) -> tuple[Path, Path]:
    """``pipeline.npz`` and ``pipeline.json`` of a fitted ``ClusterPipeline`` in ``folder``."""
    spec, arrays = export(pipeline)
    folder = Path(folder)
    np.savez(folder / ARRAYS_FILE, **arrays)
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return folder / ARRAYS_FILE, folder / SPEC_FILE


def load(arrays_path: str | Path, spec_path: str | Path) -> "PortablePipeline":
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    if spec.get("format") != FORMAT:
        raise ValueError(f"{spec_path} is a pipeline of format {spec.get('format')!r}; this version of selector "
                         f"reads format {FORMAT}.")
    with np.load(arrays_path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    return PortablePipeline(spec, arrays)


# ------------------------------------------------------------------------------------- serving
class PortablePipeline:
    """A served pipeline rebuilt from its arrays: ``transform`` into the reduced space, ``assign`` (ids,
    −1 = noise, and confidences in [0, 1]) and ``predict`` (ids), as ``ClusterPipeline`` answers."""

    def __init__(self, spec: dict, arrays: dict[str, np.ndarray]):
        self.spec = spec
        self.n_features_in_ = int(spec["n_features_in"])
        self.steps = [_step(step, arrays) for step in spec["steps"]]
        self.placement = _placement(spec["placement"], arrays)

    def transform(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        for step in self.steps:
            X = step(X)
        return np.asarray(X, dtype=np.float32)

    def assign(self, X) -> tuple[np.ndarray, np.ndarray]:
        labels, confidence = self.placement(self.transform(X))
        return np.asarray(labels, dtype=np.int64), np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)

    def predict(self, X) -> np.ndarray:
        return self.assign(X)[0]


def _step(spec: dict, arrays: dict):
    kind = spec["kind"]
    if kind == "zscore":
        mean, scale = arrays[spec["mean"]], arrays[spec["scale"]]

        def zscore(X):  # StandardScaler.transform's arithmetic: in place, in the input's dtype
            X = np.array(X, copy=True)
            X -= mean
            X /= scale
            return X

        return zscore
    if kind == "l2":
        from sklearn.preprocessing import normalize

        return lambda X: normalize(X, norm="l2")
    if kind == "identity":
        return (lambda X: np.asarray(X, dtype=np.float32)) if spec["float32"] else (lambda X: X)
    if kind == "pca":
        components, mean = arrays[spec["components"]], arrays[spec["mean"]]

        def pca(X):  # PCA.transform's arithmetic: project, then take the projected mean off
            X = np.asarray(X, dtype=np.float32 if X.dtype == np.float32 else np.float64)
            projected = X @ components.T
            projected -= np.reshape(mean, (1, -1)) @ components.T
            return projected

        return pca
    if kind == "umap":
        return _umap_step(spec, arrays)
    raise ValueError(f"unknown reducer step {kind!r} in a format-{FORMAT} pipeline")


def _umap_step(spec: dict, arrays: dict):
    from sklearn.neighbors import NearestNeighbors

    from selector.stages.neighbours import nearest_fitted, place_by_neighbours

    train, embedding = arrays[spec["train"]], arrays[spec["embedding"]]
    search = NearestNeighbors(n_neighbors=spec["k"], metric=spec["metric"], algorithm="brute").fit(train)

    def umap(X):
        idx, dist = nearest_fitted(search, train, X)
        return place_by_neighbours(embedding, idx, dist, spec["min_dist"])

    return umap


def _placement(spec: dict, arrays: dict):
    kind = spec["kind"]
    if kind == "centroids":
        return _centroids(arrays[spec["centers"]])
    if kind == "mixture":
        return _mixture(spec, arrays)
    if kind == "vote":
        return _vote(arrays[spec["points"]], arrays[spec["labels"]], spec["voters"])
    if kind == "hdbscan":
        return HDBSCANPlacement(spec, arrays)
    raise ValueError(f"unknown placement {kind!r} in a format-{FORMAT} pipeline")


def _centroids(centers: np.ndarray):
    from sklearn.metrics.pairwise import euclidean_distances

    def place(Z):  # k-means' predict and its centroid margin (``clustering.OwnPredict``)
        distances = euclidean_distances(Z, centers)
        labels = distances.argmin(axis=1)
        ordered = np.sort(distances, axis=1)
        second = ordered[:, 1] if ordered.shape[1] > 1 else ordered[:, 0]
        return labels, np.clip(1.0 - ordered[:, 0] / np.maximum(second, 1e-12), 0.0, 1.0)

    return place


def _mixture(spec: dict, arrays: dict):
    from sklearn.mixture import GaussianMixture

    # scikit-learn's own mixture, its fitted state set from the arrays (no fitting, no pickle).
    means = arrays[spec["means"]]
    mixture = GaussianMixture(n_components=len(means), covariance_type=spec["covariance_type"])
    mixture.weights_, mixture.means_ = arrays[spec["weights"]], means
    mixture.covariances_, mixture.precisions_cholesky_ = arrays[spec["covariances"]], arrays[spec["precisions_cholesky"]]
    mixture.n_features_in_ = means.shape[1]
    mixture.converged_, mixture.n_iter_, mixture.lower_bound_ = True, 0, 0.0

    def place(Z):
        return mixture.predict(Z), mixture.predict_proba(Z).max(axis=1)

    return place


def _vote(points: np.ndarray, labels: np.ndarray, voters: int):
    from sklearn.neighbors import NearestNeighbors

    search = NearestNeighbors(n_neighbors=voters).fit(points)

    def place(Z):  # ``clustering.NearestVote``: the winning share of the nearest fitted points
        _, index = search.kneighbors(Z)
        votes = labels[index]
        won = np.array([np.bincount(row - row.min()).argmax() + row.min() for row in votes], dtype=np.int64)
        return won, (votes == won[:, None]).mean(axis=1)

    return place


class HDBSCANPlacement:
    """hdbscan's ``approximate_predict`` on its exported prediction data: a new point joins the cluster
    of its nearest neighbour by mutual reachability, at the lambda of that distance, walking up the
    condensed tree to the cluster alive at that lambda; its strength is lambda / the cluster's largest."""

    def __init__(self, spec: dict, arrays: dict):
        from sklearn.neighbors import KDTree

        self.raw_data = arrays[spec["raw_data"]]
        self.core_distances = arrays[spec["core_distances"]]
        self.min_samples = int(spec["min_samples"])
        self.tree = KDTree(self.raw_data, metric=spec["metric"])  # hdbscan's prediction tree: the same queries
        parent, child = arrays[spec["tree_parent"]], arrays[spec["tree_child"]]
        lambdas, sizes = arrays[spec["tree_lambda"]], arrays[spec["tree_child_size"]]
        # A point's row (its parent cluster and the lambda it leaves at); each point is a child once.
        points = sizes == 1
        self.point_parent = np.full(len(self.raw_data), -1, dtype=np.int64)
        self.point_lambda = np.zeros(len(self.raw_data))
        self.point_parent[child[points]] = parent[points]
        self.point_lambda[child[points]] = lambdas[points]
        clusters = sizes > 1
        self.cluster_up = {int(c): (int(p), float(v)) for c, p, v in zip(child[clusters], parent[clusters],
                                                                           lambdas[clusters])}
        self.has_clusters = bool(clusters.any())
        self.root = int(parent[clusters].min()) if self.has_clusters else -1
        self.cluster_map = dict(zip(arrays[spec["map_clusters"]].tolist(), arrays[spec["map_labels"]].tolist()))
        self.max_lambdas = dict(zip(arrays[spec["max_lambda_clusters"]].tolist(), arrays[spec["max_lambdas"]].tolist()))

    def __call__(self, Z):
        Z = np.asarray(Z)
        if not self.has_clusters:  # hdbscan: no cluster was defined, every new point is noise
            return np.full(len(Z), -1, dtype=np.int64), np.zeros(len(Z))
        distances, indices = self.tree.query(np.asarray(Z, dtype=np.float64), k=2 * self.min_samples)
        labels = np.empty(len(Z), dtype=np.int64)
        strengths = np.empty(len(Z))
        for i in range(len(Z)):
            labels[i], strengths[i] = self._one(indices[i], distances[i])
        return labels, np.nan_to_num(strengths)

    def _one(self, indices: np.ndarray, distances: np.ndarray) -> tuple[int, float]:
        reach = np.vstack((self.core_distances[indices], distances[self.min_samples] * np.ones(len(indices)),
                           distances)).max(axis=0)
        nearest = reach.argmin()
        neighbour = indices[nearest]
        lambda_ = 1.0 / reach[nearest] if reach[nearest] > 0.0 else np.finfo(np.double).max
        cluster = int(self.point_parent[neighbour])
        if self.point_lambda[neighbour] > lambda_:
            while cluster > self.root:
                entry = self.cluster_up.get(cluster)
                if entry is None or not (entry[1] >= lambda_):
                    break
                cluster = entry[0]
        label = self.cluster_map.get(cluster, -1)
        if label < 0:
            return -1, 0.0
        top = self.max_lambdas[cluster]
        return label, (min(top, lambda_) / top) if top > 0.0 else 1.0
