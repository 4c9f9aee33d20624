"""annotation.consensus: majority vote (exact cases, reproducible and reported ties) and Dawid-Skene
(recovers known labeler confusions on seeded synthetic data, beats majority vote against gold on
the crowd datasets, deterministic for a fixed random_state, degenerate input without warnings)."""

import warnings
from collections import Counter

import numpy as np
import pytest

from annotation import consensus as cs
from annotation.agreement import class_counts
from tests.unit import crowd_arrays

nan = np.nan


def assert_no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def accuracy(predicted, gold):
    scored = ~np.isnan(gold) & ~np.isnan(predicted)
    return float(np.mean(predicted[scored] == gold[scored]))


# ------------------------------------------------------------------------------------------------
# Majority vote
# ------------------------------------------------------------------------------------------------


def test_majority_vote_hand_example():
    # item 0: 0,0,1 -> 0; item 1: 1,1,1 -> 1; item 2: 0,1 -> tie; item 3: nobody -> NaN, no tie;
    # item 4: 2,0,2,0 -> tie between 0 and 2 only.
    labels = np.array([[0, 0, 1, nan], [1, 1, 1, nan], [0, 1, nan, nan], [nan] * 4, [2, 0, 2, 0]])
    votes, ties = cs.majority_vote(labels, 3, random_state=0)
    np.testing.assert_array_equal(votes[:2], [0, 1])
    assert votes[2] in (0, 1)
    assert np.isnan(votes[3])
    assert votes[4] in (0, 2)
    np.testing.assert_array_equal(ties, [False, False, True, False, True])


def test_majority_vote_matches_counter_on_random_data():
    rng = np.random.default_rng(5)
    labels = rng.integers(4, size=(300, 5)).astype(float)
    labels[rng.random(labels.shape) < 0.3] = nan
    votes, ties = cs.majority_vote(labels, 4, random_state=1)
    for i, row in enumerate(labels):
        counts = Counter(row[~np.isnan(row)].astype(int).tolist())
        if not counts:
            assert np.isnan(votes[i]) and not ties[i]
            continue
        top = max(counts.values())
        winners = {label for label, c in counts.items() if c == top}
        assert votes[i] in winners
        assert ties[i] == (len(winners) > 1)


def test_majority_vote_ties_are_reproducible_and_fair():
    labels = np.array([[2, 0, 2, 0, 1]] * 3, dtype=float)  # every item ties between 0 and 2
    first = cs.majority_vote(labels, 3, random_state=42)
    second = cs.majority_vote(labels, 3, random_state=42)
    np.testing.assert_array_equal(first[0], second[0])
    generator_result = cs.majority_vote(labels, 3, random_state=np.random.default_rng(42))
    np.testing.assert_array_equal(first[0], generator_result[0])
    winners = Counter(int(cs.majority_vote(labels[:1], 3, random_state=seed)[0][0]) for seed in range(200))
    assert set(winners) == {0, 2}  # never the minority class 1
    assert min(winners.values()) >= 70  # about half each (200 fixed seeds: deterministic)


def test_majority_vote_degenerate_input():
    votes, ties = assert_no_warnings(cs.majority_vote, np.full((3, 2), nan), 2, random_state=0)
    assert np.isnan(votes).all() and not ties.any()
    votes, ties = assert_no_warnings(cs.majority_vote, np.empty((0, 4)), 2, random_state=0)
    assert votes.shape == (0,) and ties.shape == (0,)
    votes, ties = assert_no_warnings(cs.majority_vote, np.array([[1.0], [0.0]]), 2, random_state=0)
    np.testing.assert_array_equal(votes, [1, 0])
    with pytest.raises(ValueError, match="class indices"):
        cs.majority_vote(np.array([[0.0, 2.0]]), 2)


# ------------------------------------------------------------------------------------------------
# Dawid-Skene on synthetic data with known labeler confusions
# ------------------------------------------------------------------------------------------------

K = 3
EXPERT = np.full((K, K), 0.05) + np.eye(K) * 0.85
NOISY = np.full((K, K), 0.25) + np.eye(K) * 0.25
BIASED = np.array([[0.9, 0.05, 0.05], [0.7, 0.25, 0.05], [0.7, 0.05, 0.25]])  # says 0 whenever unsure
SPAMMER = np.full((K, K), 1 / 3)
TRUE_CONFUSION = np.stack([EXPERT] * 3 + [NOISY] * 4 + [BIASED] * 3 + [SPAMMER] * 2)  # (M=12, K, K)
TRUE_PRIORS = np.array([0.5, 0.3, 0.2])


def synthetic(seed, n_items=1500, per_item=5):
    """Each item gets `per_item` labels from distinct random labelers drawn from TRUE_CONFUSION."""
    rng = np.random.default_rng(seed)
    n_labelers = len(TRUE_CONFUSION)
    truth = rng.choice(K, size=n_items, p=TRUE_PRIORS)
    labels = np.full((n_items, n_labelers), nan)
    who = np.argsort(rng.random((n_items, n_labelers)), axis=1)[:, :per_item]
    for i in range(n_items):
        for j in who[i]:
            labels[i, j] = rng.choice(K, p=TRUE_CONFUSION[j, truth[i]])
    return labels, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dawid_skene_recovers_truth_and_confusions(seed):
    labels, truth = synthetic(seed)
    votes, _ = cs.majority_vote(labels, K, random_state=0)
    result = assert_no_warnings(cs.dawid_skene, labels, K, random_state=0)
    assert result.converged
    # Majority vote is fooled by the biased labelers and the spammers; DS learns to discount them
    # (seeds 0-2: MV 0.75-0.76, DS 0.87-0.88).
    assert accuracy(result.labels, truth) >= accuracy(votes, truth) + 0.05
    error = np.abs(result.confusion - TRUE_CONFUSION)
    assert error.mean() < 0.05  # about 0.025 with ~625 labels per labeler
    assert error.max() < 0.2
    np.testing.assert_allclose(result.priors, TRUE_PRIORS, atol=0.05)


def test_dawid_skene_output_is_a_valid_distribution():
    labels, _ = synthetic(3, n_items=300)
    labels[:5] = nan  # items nobody labelled
    result = cs.dawid_skene(labels, K, random_state=0)
    n, m = labels.shape
    assert result.posterior.shape == (n, K) and result.labels.shape == (n,) and result.ties.shape == (n,)
    assert result.confusion.shape == (m, K, K) and result.priors.shape == (K,)
    np.testing.assert_allclose(result.posterior.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(result.confusion.sum(axis=2), 1.0, atol=1e-12)
    assert result.priors.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(result.labels[:5]).all()
    np.testing.assert_allclose(result.posterior[:5], np.broadcast_to(result.priors, (5, K)), atol=1e-12)
    np.testing.assert_array_equal(result.labels[5:], result.posterior[5:].argmax(axis=1))
    assert 1 <= result.n_iter <= 200 and np.isfinite(result.log_likelihood)


def test_dawid_skene_smoothing_keeps_sparse_labelers_non_degenerate():
    labels, _ = synthetic(4, n_items=300)
    base = cs.dawid_skene(labels, K, random_state=0)
    labels = np.column_stack([labels, np.full(300, nan)])
    labels[0, -1] = 1  # a labeler with a single label
    result = assert_no_warnings(cs.dawid_skene, labels, K, random_state=0)
    few = result.confusion[-1]
    # No zero (log 0 = -inf would veto a class outright) ...
    assert (few > 0).all() and np.isfinite(np.log(few)).all()
    # ... and one label is too little evidence to sway the item: its posterior barely moves.
    np.testing.assert_allclose(result.posterior[0], base.posterior[0], atol=0.05)
    with pytest.raises(ValueError, match="smoothing"):
        cs.dawid_skene(labels, K, smoothing=0)


def test_dawid_skene_is_deterministic_for_a_random_state():
    labels, _ = synthetic(5, n_items=400, per_item=4)  # 4 labels per item: many majority-vote ties
    assert cs.majority_vote(labels, K, random_state=0)[1].sum() > 10
    first = cs.dawid_skene(labels, K, random_state=7)
    second = cs.dawid_skene(labels, K, random_state=7)
    third = cs.dawid_skene(labels, K, random_state=np.random.default_rng(7))
    for other in (second, third):
        np.testing.assert_array_equal(first.posterior, other.posterior)
        np.testing.assert_array_equal(first.labels, other.labels)
        np.testing.assert_array_equal(first.confusion, other.confusion)
        assert first.n_iter == other.n_iter


def test_dawid_skene_zero_iterations_is_the_majority_vote_start():
    labels, _ = synthetic(6, n_items=200, per_item=4)
    start = cs.dawid_skene(labels, K, max_iter=0, random_state=3)
    votes, ties = cs.majority_vote(labels, K, random_state=3)
    np.testing.assert_array_equal(start.labels, votes)
    assert not start.converged and start.n_iter == 0 and np.isnan(start.log_likelihood)
    assert ties.any()  # so the shared tie-breaking draws were exercised


def test_dawid_skene_from_triples_equals_dense():
    labels, _ = synthetic(8, n_items=200)
    from annotation.agreement import label_triples

    item_idx, labeler_idx, label = label_triples(labels, K)
    dense = cs.dawid_skene(labels, K, random_state=0)
    triples = cs.dawid_skene_from_triples(item_idx, labeler_idx, label, *labels.shape, K, random_state=0)
    np.testing.assert_array_equal(dense.posterior, triples.posterior)
    np.testing.assert_array_equal(dense.confusion, triples.confusion)


@pytest.mark.parametrize(
    ("labels", "n_classes"),
    [
        (np.full((4, 3), nan), 2),  # all missing
        (np.empty((0, 3)), 2),  # no items
        (np.empty((3, 0)), 2),  # no labelers
        (np.array([[0.0], [1.0], [1.0]]), 2),  # one labeler
        (np.array([[0.0, 0.0], [0.0, nan]]), 1),  # one class
    ],
)
def test_dawid_skene_degenerate_input(labels, n_classes):
    result = assert_no_warnings(cs.dawid_skene, labels, n_classes, random_state=0)
    n, m = labels.shape
    assert result.posterior.shape == (n, n_classes) and result.confusion.shape == (m, n_classes, n_classes)
    assert np.isfinite(result.posterior).all() and np.isfinite(result.priors).all()
    labelled = (~np.isnan(labels)).any(axis=1)
    assert np.isnan(result.labels[~labelled]).all()
    assert not np.isnan(result.labels[labelled]).any()
    if not labelled.any():
        np.testing.assert_allclose(result.priors, 1 / n_classes)


# ------------------------------------------------------------------------------------------------
# Crowd datasets: Dawid-Skene vs majority vote against gold (items with labels and gold only)
# ------------------------------------------------------------------------------------------------


# Observed with the defaults (random_state=0), accuracy against gold, MV -> DS:
#   D_Product 0.897 -> 0.940, D_PosSent 0.935 -> 0.960, S_Rel 0.541 -> 0.611,
#   bluebirds 0.759 -> 0.880 (0.898 if run to tol=1e-7), RTE 0.896 -> 0.928.
# Roughly what the literature reports for EM Dawid-Skene initialised from majority vote (Zheng et
# al., PVLDB 2017, for the first three; Zhang et al., NIPS 2014: bluebirds about 0.90, RTE about
# 0.93). The floors below sit a little under the observed values.
FLOORS = {"D_Product": 0.93, "D_PosSent": 0.95, "S_Rel": 0.59, "bluebirds": 0.85, "RTE": 0.92}


@pytest.mark.crowd
@pytest.mark.parametrize("name", list(FLOORS))
def test_crowd_dawid_skene_beats_majority_vote(name):
    d = crowd_arrays.load(name)
    votes, _ = cs.majority_vote(d.labels, d.n_classes, random_state=0)
    result = assert_no_warnings(cs.dawid_skene, d.labels, d.n_classes, random_state=0)
    mv_accuracy, ds_accuracy = accuracy(votes, d.gold), accuracy(result.labels, d.gold)
    assert ds_accuracy > mv_accuracy, (name, mv_accuracy, ds_accuracy)
    assert ds_accuracy >= FLOORS[name], (name, ds_accuracy)
    assert result.converged


@pytest.mark.crowd
def test_crowd_s_adult_runs_and_is_valid():
    # S_Adult is left out of the comparison (the issue does not list it): only 333 labelled gold
    # items, and plain D&S lands under majority vote there (observed 0.736 vs 0.757).
    d = crowd_arrays.load("S_Adult")
    result = assert_no_warnings(cs.dawid_skene, d.labels, d.n_classes, random_state=0)
    np.testing.assert_allclose(result.posterior.sum(axis=1), 1.0, atol=1e-12)
    assert accuracy(result.labels, d.gold) > 0.7


@pytest.mark.crowd
@pytest.mark.parametrize("name", ["RTE", "D_PosSent"])
def test_crowd_results_are_reproducible_despite_ties(name):
    d = crowd_arrays.load(name)
    votes, ties = cs.majority_vote(d.labels, d.n_classes, random_state=0)
    counts = class_counts(d.labels, d.n_classes)
    np.testing.assert_array_equal(ties, (counts == counts.max(axis=1, keepdims=True)).sum(axis=1) > 1)
    assert ties.sum() > 10  # RTE 65, D_PosSent 43 tied items
    np.testing.assert_array_equal(votes, cs.majority_vote(d.labels, d.n_classes, random_state=0)[0])
    first = cs.dawid_skene(d.labels, d.n_classes, random_state=0)
    again = cs.dawid_skene(d.labels, d.n_classes, random_state=0)
    np.testing.assert_array_equal(first.posterior, again.posterior)
    np.testing.assert_array_equal(first.labels, again.labels)
