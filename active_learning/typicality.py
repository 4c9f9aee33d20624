"""Cold start by typicality (TypiClust, Hacohen, Dekel & Weinshall, ICML 2022): pure NumPy / scikit-learn.

With a few labels per class, a model's uncertainty is mostly noise, and the farthest points
(k-center) are outliers. TypiClust instead clusters the data into ``labeled + batch`` clusters and
takes, from the largest clusters that hold the fewest labeled items, each one's most *typical*
item: the one with the smallest mean distance to its ``k`` nearest neighbours in its cluster
(typicality = 1 / that distance). The batch then covers the dense regions of the data, one
representative each, which is what a model with few labels learns most from.

``features`` ``(N, D)`` should already be standardised on the whole data (see
:class:`active_learning.error_model.Standardiser`). Large inputs stay bounded: k-means runs as
MiniBatchKMeans beyond :data:`FULL_KMEANS_MAX` rows, the number of clusters is capped at
:data:`MAX_CLUSTERS`, and typicality is measured among at most :data:`TYPICALITY_SAMPLE` members of
a cluster (a seeded sample), so no distance block is larger than that squared.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans

from .strategies import _as_mask, _check_batch_size, _check_features

__all__ = ["K_NEIGHBORS", "typiclust", "typiclust_selector"]

K_NEIGHBORS = 20  # TypiClust's k
MIN_CLUSTER = 5  # smaller clusters are noise: only used when nothing else is left
MAX_CLUSTERS = 500
FULL_KMEANS_MAX = 20_000
TYPICALITY_SAMPLE = 2_000


def _typicality(x: np.ndarray) -> np.ndarray:
    """``(n,)`` 1 / mean distance to the ``min(K_NEIGHBORS, n - 1)`` nearest other rows of ``x`` ``(n, D)``."""
    n = x.shape[0]
    if n == 1:
        return np.ones(1)
    sq = np.einsum("ij,ij->i", x, x)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    np.fill_diagonal(d2, np.inf)
    k = min(K_NEIGHBORS, n - 1)
    nearest = np.partition(d2, k - 1, axis=1)[:, :k]
    return 1.0 / (np.sqrt(nearest).mean(axis=1) + 1e-12)


def _clusters(x: np.ndarray, n_clusters: int, random_state) -> np.ndarray:
    seed = int(np.random.default_rng(random_state).integers(2**31 - 1))
    if x.shape[0] > FULL_KMEANS_MAX:
        km = MiniBatchKMeans(n_clusters, random_state=seed, n_init=1, batch_size=4096)
    else:
        km = KMeans(n_clusters, random_state=seed, n_init=1)
    return km.fit_predict(x)


def typiclust(features, labeled, batch_size: int, *, random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """TypiClust's picks: ``(indices (m,), typicality (m,))`` in pick order, ``m = min(batch_size,
    #unlabeled)``.

    ``features`` ``(N, D)``; ``labeled`` an ``(N,)`` bool mask or integer indices of items already
    labeled (or chosen): they count as covering their clusters and are never picked. Seeded by
    ``random_state`` (k-means and the typicality samples)."""
    x = _check_features(features)
    k = _check_batch_size(batch_size)
    taken = _as_mask(labeled, x.shape[0], "labeled")
    free = ~taken
    k = min(k, int(free.sum()))
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    n_clusters = min(int(taken.sum()) + k, x.shape[0], MAX_CLUSTERS)
    assign = _clusters(x, n_clusters, random_state)
    size = np.bincount(assign, minlength=n_clusters)
    covered = np.bincount(assign[taken], minlength=n_clusters)
    rng = np.random.default_rng(random_state)
    picks, scores = [], []
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    while len(picks) < k:
        open_ = np.flatnonzero(np.bincount(assign[free], minlength=n_clusters) > 0)
        # Fewest labeled first, then the largest; clusters under MIN_CLUSTER only when nothing else is left.
        small = size[open_] < MIN_CLUSTER
        best = open_[np.lexsort((open_, -size[open_], covered[open_], small))[0]]
        if best not in cache:
            members = np.flatnonzero(assign == best)
            if members.size > TYPICALITY_SAMPLE:
                members = np.sort(rng.choice(members, TYPICALITY_SAMPLE, replace=False))
            cache[best] = (members, _typicality(x[members]))
        members, typ = cache[best]
        allowed = free[members]
        if not allowed.any():  # every sampled member is taken: take any free member of the cluster
            members = np.flatnonzero((assign == best) & free)
            typ = _typicality(x[members[:TYPICALITY_SAMPLE]])
            members, allowed = members[:TYPICALITY_SAMPLE], np.ones(min(members.size, TYPICALITY_SAMPLE), bool)
        j = int(np.argmax(np.where(allowed, typ, -np.inf)))
        picks.append(int(members[j]))
        scores.append(float(typ[j]))
        free[members[j]] = False
        covered[best] += 1
    return np.asarray(picks, dtype=np.int64), np.asarray(scores)


def typiclust_selector(features, labeled, *, random_state=None):
    """A selector for :func:`active_learning.strategies.mix`: items other components chose count as labeled."""
    x = _check_features(features)
    base = _as_mask(labeled, x.shape[0], "labeled")

    def select(k: int, taken: np.ndarray):
        return typiclust(x, base | taken, k, random_state=random_state)

    return select
