"""Cold start (TypiClust, active_learning/typicality.py) with known answers, the mix's switch to it
while labels are fewer than a few per class, and top-k selection by argpartition against a stable
full sort and against modAL 0.4.2.1's uncertainty sampling."""

import numpy as np
import pytest
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling
from sklearn.neighbors import NearestNeighbors

from active_learning import strategies as st
from active_learning import typicality as ty
from active_learning.sampling import COLD_START_PER_CLASS, Labeled, cold_start_weights, select_batch


def _blobs(sizes=(60, 40, 25), seed=0):
    """Well separated Gaussian blobs (centres 20 apart) and one far outlier; returns (x, blob id)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    x = np.vstack([rng.normal(c, 1.0, (n, 2)) for c, n in zip(centres, sizes, strict=True)] + [[[60.0, 60.0]]])
    blob = np.concatenate([np.full(n, b) for b, n in enumerate(sizes)] + [[-1]])
    return x, blob


def _most_typical(x, members):
    """Brute force: the member with the smallest mean distance to its 20 nearest other members."""
    nn = NearestNeighbors(n_neighbors=min(21, len(members))).fit(x[members])
    dist, _ = nn.kneighbors(x[members])
    return members[np.argmin(dist[:, 1:].mean(axis=1))]


def test_typiclust_takes_the_most_typical_item_of_each_cluster_largest_first():
    x, blob = _blobs()
    picks, typicality = ty.typiclust(x, None, 3, random_state=0)
    assert blob[picks].tolist() == [0, 1, 2]  # largest cluster first, the outlier never
    for b, pick in zip(range(3), picks, strict=True):
        assert pick == _most_typical(x, np.flatnonzero(blob == b))
    assert np.all(np.diff(typicality) != 0) and np.all(typicality > 0)


def test_typiclust_skips_clusters_already_covered_by_labels():
    x, blob = _blobs()
    labeled = np.flatnonzero(blob == 0)[:3]  # the largest blob is covered
    picks, _ = ty.typiclust(x, labeled, 2, random_state=0)
    assert blob[picks].tolist() == [1, 2]
    assert not np.isin(picks, labeled).any()


def test_typiclust_is_seeded_and_handles_edge_sizes():
    x, _ = _blobs(seed=1)
    a, _ = ty.typiclust(x, None, 5, random_state=3)
    b, _ = ty.typiclust(x, None, 5, random_state=3)
    np.testing.assert_array_equal(a, b)
    assert np.unique(a).size == 5
    everything, _ = ty.typiclust(x[:4], None, 10, random_state=0)
    assert sorted(everything.tolist()) == [0, 1, 2, 3]
    assert ty.typiclust(x, np.arange(len(x)), 3)[0].size == 0


def test_the_mix_starts_cold_below_a_few_labels_per_class():
    x, blob = _blobs()
    proba = np.full((len(x), 3), 1 / 3)
    few = np.flatnonzero(blob == 0)[:2]
    labeled = Labeled(x[few], proba[few], np.zeros(2, dtype=int))
    pool = np.setdiff1d(np.arange(len(x)), few)
    weights = (("margin", 0.5), ("diversity", 0.3), ("random", 0.2))
    selection = select_batch(
        "mix", 5, pool_proba=proba[pool], pool_features=x[pool], labeled=labeled, weights=weights, random_state=0
    )
    assert selection.notes["cold_start"] == [["typiclust", 0.8], ["random", 0.2]]
    assert selection.strategies == ["typiclust"] * 4 + ["random"]
    # Enough labels per class: the mix is the mix.
    assert cold_start_weights(weights, COLD_START_PER_CLASS * 3, 3) is None
    assert cold_start_weights((("random", 1.0),), 0, 3) is None


def test_the_cold_start_can_end_once_every_class_has_a_few_labels():
    weights = (("margin", 0.85), ("random", 0.15))
    cold = (("typiclust", 0.85), ("random", 0.15))
    # 6 labels of 3 classes (fewer than 5 per class): cold while some class has fewer than 2.
    assert cold_start_weights(weights, 6, 3, 5, 2, np.array([3, 2, 1])) == cold
    assert cold_start_weights(weights, 6, 3, 5, 2, np.array([2, 2, 2])) is None
    assert cold_start_weights(weights, 6, 3, 5, 2, None) == cold  # counts unknown: the total decides
    assert cold_start_weights(weights, 6, 3, 5, None, np.array([2, 2, 2])) == cold  # no class rule
    assert cold_start_weights(weights, 15, 3, 5, 2, np.array([15, 0, 0])) is None  # the total still ends it
    x, blob = _blobs()
    proba = np.full((len(x), 3), 1 / 3)
    few = np.flatnonzero(blob == 0)[:2]
    pool = np.setdiff1d(np.arange(len(x)), few)
    for counts, expected in [([2, 0, 0], ["typiclust"] * 4), ([1, 1, 1], ["margin"] * 4)]:
        labeled = Labeled(x[few], proba[few], np.zeros(2, dtype=int), class_counts=np.array(counts))
        selection = select_batch(
            "mix", 5, pool_proba=proba[pool], pool_features=x[pool], labeled=labeled,
            weights=(("margin", 0.8), ("random", 0.2)), cold_start_min_class=1,
        )  # fmt: skip
        assert selection.strategies == [*expected, "random"]


def test_select_top_equals_a_stable_full_sort_with_ties_and_exclusions():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 300))
        scores = rng.integers(0, 6, n).astype(float)  # many ties
        scores[rng.random(n) < 0.1] = -np.inf
        exclude = rng.random(n) < 0.3
        k = int(rng.integers(0, n + 2))
        allowed = np.flatnonzero(~exclude)
        expected = allowed[np.argsort(-scores[allowed], kind="stable")[:k]]
        np.testing.assert_array_equal(st.select_top(scores, k, exclude=exclude), expected)
        np.testing.assert_array_equal(st.select_top(scores, k), np.argsort(-scores, kind="stable")[:k])


class _Fixed:
    """A fitted 'classifier' whose predict_proba returns given probabilities (modAL calls it)."""

    def __init__(self, proba):
        self.proba = proba

    def predict_proba(self, X):
        return self.proba[np.asarray(X, dtype=int).ravel()]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("least_confidence", uncertainty_sampling), ("margin", margin_sampling), ("entropy", entropy_sampling)],
)
def test_uncertainty_picks_equal_modal(ours, theirs):
    proba = np.random.default_rng(1).dirichlet(np.ones(7), 5000)
    picked = select_batch(ours, 100, pool_proba=proba).indices
    reference, _ = theirs(_Fixed(proba), np.arange(5000)[:, None], n_instances=100)
    assert set(picked.tolist()) == set(np.asarray(reference).tolist())
