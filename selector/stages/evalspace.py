"""The evaluation space every objective scores a trial in (``EvalSpace``): the seed paper's UMAP (50
dims, ``n_neighbors`` 30, ``min_dist`` 0) fitted once per (data set, encoder), the fuzzy nearest-neighbour
graph UMAP builds on the way (and the same graph at other neighbour counts), and the embedded vectors
themselves. Built once per study; pipelines that reduce differently are so compared on the same ground."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


EVAL_SPACE = {"name": "umap", "scaling": "none", "n_components": 50, "n_neighbors": 30, "min_dist": 0.0,
              "metric": "euclidean"}

# The fine graph's neighbours, and the principal components the embedding silhouette reads.
FINE_NEIGHBOURS = 10
EMBEDDING_COMPONENTS = 50

# Features whose spreads differ by more than this factor (largest standard deviation over the median
# one) are taken to be in different units, and the evaluation space z-scores them first; otherwise a
# feature in large units (wine's proline, in the hundreds) decides every distance. Measured on the
# selection suite: pixels 1.0-1.8, EfficientNet-Lite features 5-16, wine 388, breast cancer 7,829 —
# one unit stays as it is, tables of mixed units are z-scored, with a wide margin on both sides.
MIXED_UNITS_RATIO = 100.0


def eval_space_params(vectors: np.ndarray) -> dict:
    """The evaluation space's reducer parameters for these vectors: the paper's UMAP, z-scored first
    when the features come in different units."""
    std = np.asarray(vectors, dtype=np.float64).std(axis=0)
    spread = std.max() / max(float(np.median(std)), 1e-12)
    return {**EVAL_SPACE, "scaling": "zscore" if spread > MIXED_UNITS_RATIO else "none"}


@dataclass
class EvalSpace:
    """One study's fixed ground: UMAP coordinates of every point and the fuzzy kNN graph of the
    points it was fitted on (all points, or its seeded sample: ``graph_points``)."""

    coords: np.ndarray
    graph: "object"  # scipy.sparse.csr_matrix, symmetric, weights in (0, 1]
    graph_points: np.ndarray | None = None  # indices the graph's rows are; None = every point
    params: dict = field(default_factory=lambda: dict(EVAL_SPACE))
    vectors: np.ndarray | None = None  # the embedded vectors, scaled as the space was built from them
    # the graph points' nearest neighbours (indices, distances) the graph was built from, when known
    neighbours: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _probe: dict = field(default_factory=dict, repr=False)  # seed -> the probe's features, computed once
    _graphs: dict = field(default_factory=dict, repr=False)  # neighbour count -> fuzzy graph, computed once
    _embedding: dict = field(default_factory=dict, repr=False)  # seed -> the embedding silhouette's coordinates

    def probe_features(self, seed: int) -> np.ndarray:
        """The vectors as the linear probe reads them (``selector.stages.probe``), computed once per seed."""
        if seed not in self._probe:
            from selector.stages.probe import probe_features

            self._probe[seed] = probe_features(self.vectors, seed)
        return self._probe[seed]

    def on_graph(self, labels: np.ndarray) -> np.ndarray:
        """``labels`` (one per point) of the points the graph's rows are."""
        labels = np.asarray(labels)
        return labels if self.graph_points is None else labels[self.graph_points]

    def graph_at(self, neighbours: int):
        """UMAP's fuzzy graph of the same points at ``neighbours`` neighbours (each computed once, from
        the neighbours the space was built with; milliseconds). At the space's own count it is ``graph``."""
        if neighbours == self.params["n_neighbors"]:
            return self.graph
        if neighbours not in self._graphs:
            points = self.vectors if self.graph_points is None else self.vectors[self.graph_points]
            if self.neighbours is None or self.neighbours[0].shape[1] < min(neighbours, len(points) - 1):
                from selector.stages.neighbours import nearest_neighbours

                self.neighbours = nearest_neighbours(points, min(max(neighbours, self.params["n_neighbors"]) + 1,
                                                                 len(points)), self.params["metric"], 0)
            self._graphs[neighbours] = _fuzzy_graph(points, self.neighbours, neighbours, self.params["metric"], 0)
        return self._graphs[neighbours]

    def embedding_coords(self, seed: int) -> np.ndarray:
        """The embedded vectors (scaled as the space was built from them) as the embedding silhouette
        reads them: their first ``EMBEDDING_COMPONENTS`` principal components (computed once per seed)."""
        if seed not in self._embedding:
            from sklearn.decomposition import PCA

            components = min(EMBEDDING_COMPONENTS, self.vectors.shape[1], len(self.vectors) - 1)
            self._embedding[seed] = PCA(components, random_state=seed).fit_transform(self.vectors).astype(np.float32)
        return self._embedding[seed]


def _fuzzy_graph(points: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray], k: int, metric: str, seed: int):
    """UMAP's fuzzy simplicial set of ``points`` on their first ``k`` precomputed neighbours (milliseconds)."""
    from numba.core.errors import NumbaWarning
    from umap.umap_ import fuzzy_simplicial_set

    from selector.quiet import known_noise

    idx, dist = neighbours
    k = min(k, len(points) - 1, idx.shape[1])
    with known_noise("", category=NumbaWarning):  # numba's notices while it first compiles UMAP's graph code
        graph, _, _ = fuzzy_simplicial_set(points, k, np.random.RandomState(seed), metric,
                                           knn_indices=idx[:, :k].copy(), knn_dists=dist[:, :k].copy())
    return graph.tocsr()


def space_vectors(vectors: np.ndarray, params: dict | None = None) -> np.ndarray:
    """The vectors as the evaluation space is built from them: scaled by its ``params`` (by default
    ``eval_space_params(vectors)``), float32."""
    from selector.stages.reduction import make_scaler

    params = eval_space_params(vectors) if params is None else params
    return np.asarray(make_scaler(params["scaling"]).fit_transform(vectors), dtype=np.float32)


def build_eval_space(vectors: np.ndarray, cache, seed: int) -> EvalSpace:
    """The study's evaluation space, through the study's ``ReductionCache``: UMAP's coordinates, and
    its fuzzy graph rebuilt from the cached neighbour graph (UMAP's ``fuzzy_simplicial_set`` on the
    same neighbours UMAP was fitted with; milliseconds). Above UMAP's fitting bound both describe
    its seeded sample and the other points are placed; the graph then covers the sample only."""
    from selector.stages.compiled import cache_umap_compilation

    cache_umap_compilation()
    from selector.stages.reduction import fit_sample

    params = eval_space_params(vectors)
    coords = cache.reduce(vectors, params, seed)
    scaled = space_vectors(vectors, params)
    sample = fit_sample(params, len(scaled), seed)
    points = scaled if sample is None else scaled[sample]
    idx, dist = cache.neighbour_graph(points, params["scaling"], params["metric"], seed)
    graph = _fuzzy_graph(points, (idx, dist), params["n_neighbors"], params["metric"], seed)
    return EvalSpace(coords=coords, graph=graph, graph_points=sample, params=params, vectors=scaled,
                     neighbours=(idx, dist))
