"""The clusterers of the search, one unit each: how it is built from a trial's parameters, its Optuna
search space, how it places points it did not fit, and what bounds its cost — side by side, registered
by the ``@clusterer`` decorator. Adding one is one class here and its known-good parameters in
``tests/test_clustering.py`` (docs/design.md, "Adding a clusterer"). The order of the classes is the
order of the search's ``clusterer`` choice.
"""

from __future__ import annotations

import numpy as np

from selector.stages.clustering import (ApproximatePredict, Declined, NearestVote, OwnPredict, clusterer, data_scale,
                                        suggest_k)

FULL_COVARIANCE_MAX_DIM = 64  # a full-covariance GMM's EM step costs O(n·k·d²)
# Work bounds for k in the hundreds (trials above them are declined, not run for minutes): a
# mixture's EM step costs n·k·d² (full) or n·k·d multiply-adds; spectral clustering's eigen-solver
# about n·k. Measured here: spectral at 2,000 points and k = 400 took 8 s, k = 40 0.5 s.
MIXTURE_WORK = 2e9
SPECTRAL_WORK = 2e6


# Convergence notices say nothing a user can act on: the trial's score says how the fit went.
@clusterer("kmeans", OwnPredict(), known_warnings=("Number of distinct clusters .* found smaller than n_clusters",))
class KMeansClusterer:
    """k-means, three initialisations; new points go to the nearest centroid."""

    @staticmethod
    def build(p: dict, Z: np.ndarray, seed: int):
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=int(p["n_clusters"]), n_init=3, random_state=seed)

    @staticmethod
    def suggest(trial, n: int) -> dict:
        return {"n_clusters": suggest_k(trial, n)}


# n² / 2 float64 distances: 10,000 points → 0.4 GB.
@clusterer("agglomerative", NearestVote(), max_fit_points=10_000)
class AgglomerativeClusterer:
    """Agglomerative clustering cut at k clusters or at a distance threshold (scale-free: a multiple of
    the data's spread)."""

    @staticmethod
    def build(p: dict, Z: np.ndarray, seed: int):
        from sklearn.cluster import AgglomerativeClustering

        if p.get("mode", "k") == "k":
            return AgglomerativeClustering(n_clusters=int(p["n_clusters"]), linkage=p["linkage"])
        return AgglomerativeClustering(n_clusters=None, linkage=p["linkage"],
                                       distance_threshold=float(p["threshold"]) * data_scale(Z))

    @staticmethod
    def suggest(trial, n: int) -> dict:
        params = {"linkage": trial.suggest_categorical("clusterer.linkage", ["ward", "complete", "average", "single"]),
                  "mode": trial.suggest_categorical("clusterer.mode", ["k", "threshold"])}
        if params["mode"] == "k":
            params["n_clusters"] = suggest_k(trial, n)
        else:
            params["threshold"] = trial.suggest_float("clusterer.threshold", 0.05, 3.0, log=True)
        return params


# Linear memory, but its tree searches degrade towards n² in many dimensions (no reducer):
# in 256 dims 2,000 / 4,000 / 10,000 points took 1.9 / 6.3 / 38 s, in 10 dims 10,000 took 0.9 s;
# and approximate_predict placed 46,000 points in 256 dims in 30 s, so there the rest vote.
@clusterer("hdbscan", ApproximatePredict(), max_fit_points=10_000, scaled_by_sample=("min_cluster_size",),
           many_dims_fit_points=4_000, many_dims_placement=NearestVote())
class HDBSCANClusterer:
    """HDBSCAN (excess of mass or leaf clusters); noise is −1; new points by ``approximate_predict``."""

    @staticmethod
    def build(p: dict, Z: np.ndarray, seed: int):
        import hdbscan

        # No prediction data at fit time (about a third of a fit): a trial that fits every point never
        # places one; ``ApproximatePredict`` generates it the first time it places points.
        return hdbscan.HDBSCAN(min_cluster_size=int(p["min_cluster_size"]), min_samples=int(p["min_samples"]),
                               cluster_selection_method=p["cluster_selection_method"], prediction_data=False)

    @staticmethod
    def suggest(trial, n: int) -> dict:
        return {
            "min_cluster_size": trial.suggest_int("clusterer.min_cluster_size", 5, max(6, n // 5), log=True),
            "min_samples": trial.suggest_int("clusterer.min_samples", 1, 30, log=True),
            "cluster_selection_method": trial.suggest_categorical("clusterer.cluster_selection_method",
                                                                  ["eom", "leaf"]),
        }


# A sparse kNN affinity, but its eigen-solver's time grows much faster than n.
# A disconnected kNN graph makes scikit-learn warn; such a trial is scored like any other.
@clusterer("spectral", NearestVote(), max_fit_points=10_000, known_warnings=("Graph is not fully connected",))
class SpectralClusterer:
    """Spectral clustering on a k-nearest-neighbour graph; declined above k·n = ``SPECTRAL_WORK``."""

    @staticmethod
    def build(p: dict, Z: np.ndarray, seed: int):
        from sklearn.cluster import SpectralClustering

        if int(p["n_clusters"]) * len(Z) > SPECTRAL_WORK:
            raise Declined(f"spectral clustering with k={p['n_clusters']} on {len(Z)} points needs k eigenvectors "
                           f"of an n × n graph; declined above k·n = {SPECTRAL_WORK:.0e}")

        return SpectralClustering(n_clusters=int(p["n_clusters"]), affinity="nearest_neighbors",
                                  n_neighbors=max(2, min(int(p["n_neighbors"]), len(Z) - 1)),
                                  assign_labels="cluster_qr", random_state=seed)

    @staticmethod
    def suggest(trial, n: int) -> dict:
        return {"n_clusters": suggest_k(trial, n),
                "n_neighbors": trial.suggest_categorical("clusterer.n_neighbors", [5, 10, 15, 30, 50])}


def _squared_distances(points: np.ndarray, rows: int = 50) -> np.ndarray:
    """All pairwise squared distances, ``rows`` at a time: the same arithmetic, so the same numbers, as
    one n × n × d broadcast, without its memory traffic (0.4 s → 0.04 s for 1,000 points in 50 dims). A
    float64 ``pdist`` was as fast but moved the preference in the last float32 digit, which changed the
    labels of 1 fit in 54 — and the objective was chosen on these numbers."""
    out = np.empty((len(points), len(points)), dtype=np.result_type(points.dtype, np.float32))
    for start in range(0, len(points), rows):
        out[start:start + rows] = ((points[start:start + rows, None, :] - points[None, :, :]) ** 2).sum(-1)
    return out


# Three dense n × n float64 matrices and up to 300 rounds over them (scikit-learn's took ~9 s a fit at
# 2,000 points on one core, bench_scale), so it fits 1,000 and places the rest.
@clusterer("affinity_propagation", NearestVote(), max_fit_points=1_000,
           known_warnings=("Affinity propagation did not converge",))
class AffinityPropagationClusterer:
    """Affinity propagation (scikit-learn's, its message passing compiled); the preference is a
    quantile of the negative squared distances — a lower quantile, fewer clusters."""

    @staticmethod
    def build(p: dict, Z: np.ndarray, seed: int):
        from selector.stages.propagation import AffinityPropagation

        sample = Z[np.random.default_rng(seed).choice(len(Z), size=min(len(Z), 1000), replace=False)]
        sq = _squared_distances(sample)
        preference = float(np.quantile(-sq[np.triu_indices(len(sample), 1)], float(p["preference_quantile"])))
        return AffinityPropagation(damping=float(p["damping"]), preference=preference, max_iter=300,
                                   convergence_iter=20, random_state=seed)

    @staticmethod
    def suggest(trial, n: int) -> dict:
        return {"damping": trial.suggest_float("clusterer.damping", 0.5, 0.95),
                "preference_quantile": trial.suggest_float("clusterer.preference_quantile", 0.0, 0.5)}


@clusterer("gmm", OwnPredict(), known_warnings=("Best performing initialization did not converge",))
class GaussianMixtureClusterer:
    """A Gaussian mixture (full, diagonal or spherical covariance); declined above ``MIXTURE_WORK``
    multiply-adds per EM step, and full covariance above ``FULL_COVARIANCE_MAX_DIM`` dimensions."""

    @staticmethod
    def build(p: dict, Z: np.ndarray, seed: int):
        from sklearn.mixture import GaussianMixture

        if p["covariance_type"] == "full" and Z.shape[1] > FULL_COVARIANCE_MAX_DIM:
            raise Declined(f"gmm with full covariance costs O(n·k·d²) per EM step; declined for d={Z.shape[1]} > "
                           f"{FULL_COVARIANCE_MAX_DIM} (a reducer first, or diag/spherical covariance)")
        n, d = Z.shape
        work = n * int(p["n_clusters"]) * (d * d if p["covariance_type"] == "full" else d)
        if work > MIXTURE_WORK:
            raise Declined(f"gmm with k={p['n_clusters']} and {p['covariance_type']} covariance on {n} × {d} points "
                           f"costs {work:.1e} per EM step; declined above {MIXTURE_WORK:.0e}")

        return GaussianMixture(n_components=int(p["n_clusters"]), covariance_type=p["covariance_type"],
                               reg_covar=1e-4, random_state=seed)

    @staticmethod
    def suggest(trial, n: int) -> dict:
        return {"n_clusters": suggest_k(trial, n),
                "covariance_type": trial.suggest_categorical("clusterer.covariance_type", ["full", "diag", "spherical"])}
