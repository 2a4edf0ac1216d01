"""How much of a partition a linear probe in the embedding can learn: the generalisation idea of
TURTLE (Gadetsky et al., 2024) made into a label-free score.

A partition is found in the evaluation space (UMAP of the embedding). Split every cluster in two
halves; a ridge classifier trained on one half's cluster labels, in the *embedding* (z-scored, its first
``PROBE_DIMS`` principal components), predicts the other half's, and the other way round. The score is
the mutual information, in nats, between the predicted and the given labels on the held-out halves,
minus the same for shuffled predictions (what a probe learns from a partition with no structure).

Why information and not accuracy: two far-apart groups of classes are the easiest partition to learn
(accuracy near 1) but carry at most ln 2 nats; the classes under them are learnt less accurately and
carry more. Why a probe: arbitrary pieces of one continuous cluster are not learnable across halves
the way real clusters are, and the information of many tiny clusters falls as each half holds too few
of their points to learn them.
"""

from __future__ import annotations

import numpy as np

PROBE_DIMS = 64  # principal components the probe reads: enough for the classes, cheap for any k
PROBE_ALPHA = 1.0  # ridge penalty on the z-scored components


def probe_features(vectors: np.ndarray, seed: int) -> np.ndarray:
    """The embedding as the probe reads it: z-scored, then its first ``PROBE_DIMS`` principal components."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    X = StandardScaler().fit_transform(np.asarray(vectors, dtype=np.float32))
    if X.shape[1] > PROBE_DIMS:
        X = PCA(n_components=min(PROBE_DIMS, len(X) - 1), random_state=seed).fit_transform(X)
    return X.astype(np.float32)


def halves(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random mask splitting every cluster in two (the first half one point larger for odd sizes)."""
    first = np.zeros(len(labels), dtype=bool)
    for cluster in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cluster))
        first[members[: (len(members) + 1) // 2]] = True
    return first


def probe_information(features: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, float]:
    """(information in nats above the shuffled baseline, Cohen's κ) of the probe on ``labels``, both
    halves swapped and averaged; −1 for both when neither half can be learnt from."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.metrics import mutual_info_score

    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)  # one stream: the halves, then the shuffled baselines
    first = halves(labels, rng)
    information, agreement = [], []
    for train in (first, ~first):
        test = ~train
        if len(np.unique(labels[train])) < 2 or not test.any():
            continue
        predicted = RidgeClassifier(alpha=PROBE_ALPHA).fit(features[train], labels[train]).predict(features[test])
        truth = labels[test]
        information.append(mutual_info_score(truth, predicted) - mutual_info_score(truth, rng.permutation(predicted)))
        observed = float((predicted == truth).mean())
        chance = float(sum((predicted == c).mean() * (truth == c).mean() for c in np.union1d(predicted, truth)))
        agreement.append((observed - chance) / (1 - chance) if chance < 1 else 0.0)
    if not information:
        return -1.0, -1.0
    return float(np.mean(information)), float(np.mean(agreement))
