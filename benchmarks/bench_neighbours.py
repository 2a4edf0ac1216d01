"""Nearest-neighbour search for placing points: the points outside UMAP's 10,000-point sample (and
the served model's new points) against that sample — exact brute force (scikit-learn, faiss's flat
index) against approximate indexes (faiss HNSW, pynndescent), time and recall@k against the exact answer.

    python benchmarks/bench_neighbours.py --points 200000 --dim 256 --fitted 10000 --k 50 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402


def mixture(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(12, dim))
    return (centres[rng.integers(12, size=n)] + rng.normal(size=(n, dim))).astype(np.float32)


def sklearn_brute(fitted, queries, k):
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k, algorithm="brute").fit(fitted).kneighbors(queries)[1]


def faiss_flat(fitted, queries, k):
    import faiss

    index = faiss.IndexFlatL2(fitted.shape[1])
    index.add(fitted)
    return index.search(queries, k)[1]


def faiss_hnsw(fitted, queries, k):
    import faiss

    index = faiss.IndexHNSWFlat(fitted.shape[1], 32)
    index.hnsw.efSearch = max(64, 2 * k)
    index.add(fitted)
    return index.search(queries, k)[1]


def pynndescent_index(fitted, queries, k):
    from pynndescent import NNDescent

    index = NNDescent(fitted, n_neighbors=30, random_state=0, low_memory=True)
    return index.query(queries, k=k)[0]


METHODS = {"scikit-learn brute (exact)": sklearn_brute, "faiss IndexFlatL2 (exact)": faiss_flat,
           "faiss HNSW32": faiss_hnsw, "pynndescent NNDescent": pynndescent_index}


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, b)) / len(b) for a, b in zip(found, exact)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--fitted", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()

    X = mixture(args.points, args.dim, seed=0)
    fitted, queries = X[: args.fitted], X[args.fitted:]
    exact = None
    print(f"{len(queries):,} queries × {args.dim} dims against {args.fitted:,} fitted points, k = {args.k}")
    print("| search | seconds (median of %d) | runs | recall@k |" % args.repeats)
    print("|---|---|---|---|")
    for name in args.methods.split(","):
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            found = METHODS[name](fitted, queries, args.k)
            runs.append(time.perf_counter() - start)
        exact = found if exact is None else exact
        print(f"| {name} | {statistics.median(runs):.1f} | {', '.join(f'{r:.1f}' for r in runs)} "
              f"| {recall(found[:20000], exact[:20000]):.3f} |", flush=True)


if __name__ == "__main__":
    report.run(main, "bench_neighbours: " + __doc__.strip().splitlines()[0])
