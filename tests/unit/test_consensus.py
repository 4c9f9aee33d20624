"""annotation.consensus: majority vote (exact cases, reproducible and reported ties) and Dawid-Skene
(recovers known labeler confusions on seeded synthetic data, climbs its stated objective every round,
reaches the previous one-hot start's optimum where nothing ties, the same for every seed, beats
majority vote and the published figures against gold on the crowd datasets, gold anchoring,
degenerate input without warnings)."""

import warnings
from collections import Counter

import numpy as np
import pytest
from scipy import sparse

from annotation import consensus as cs
from annotation.agreement import class_counts, class_counts_from_triples, label_triples
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


def test_dawid_skene_is_the_same_for_every_random_state():
    labels, _ = synthetic(5, n_items=400, per_item=4)  # 4 labels per item: many majority-vote ties
    assert cs.majority_vote(labels, K, random_state=0)[1].sum() > 10
    first = cs.dawid_skene(labels, K, random_state=7)
    assert not first.ties.any()
    for state in (0, 1, 123, np.random.default_rng(7)):
        other = cs.dawid_skene(labels, K, random_state=state)
        np.testing.assert_array_equal(first.posterior, other.posterior)
        np.testing.assert_array_equal(first.labels, other.labels)
        np.testing.assert_array_equal(first.confusion, other.confusion)
        assert first.n_iter == other.n_iter


def test_dawid_skene_exact_posterior_ties_are_seeded_and_reported():
    # Two labelers who always disagree on two classes, symmetric: every posterior is exactly 1/2.
    labels = np.array([[0.0, 1.0], [1.0, 0.0]] * 3)
    result = assert_no_warnings(cs.dawid_skene, labels, 2, random_state=0)
    np.testing.assert_allclose(result.posterior, 0.5)
    assert result.ties.all()
    np.testing.assert_array_equal(result.labels, cs.dawid_skene(labels, 2, random_state=0).labels)
    drawn = {tuple(cs.dawid_skene(labels, 2, random_state=seed).labels) for seed in range(10)}
    assert len(drawn) > 1  # the seed decides exact ties only, and they are flagged


def test_dawid_skene_zero_iterations_is_the_vote_share_start():
    labels, _ = synthetic(6, n_items=200, per_item=4)
    start = cs.dawid_skene(labels, K, max_iter=0, random_state=3)
    votes, ties = cs.majority_vote(labels, K, random_state=3)
    counts = class_counts(labels, K)
    np.testing.assert_allclose(start.posterior, counts / counts.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(start.labels, votes)  # the same seeded tie-breaks as majority vote
    np.testing.assert_array_equal(start.ties, ties)
    assert not start.converged and start.n_iter == 0
    assert np.isnan(start.log_likelihood) and np.isnan(start.objective)
    assert ties.any()  # so the shared tie-breaking draws were exercised


def test_dawid_skene_objective_is_the_stated_formula():
    labels, _ = synthetic(9, n_items=60, per_item=3)
    s = 0.3
    r = cs.dawid_skene(labels, K, max_iter=4, smoothing=s, random_state=0)
    log_lik = 0.0
    for row in labels:
        said = [(j, int(v)) for j, v in enumerate(row) if not np.isnan(v)]
        log_lik += np.log(sum(r.priors[k] * np.prod([r.confusion[j, k, v] for j, v in said]) for k in range(K)))
    prior = s * (np.log(r.confusion).sum() + np.log(r.priors).sum())
    assert r.log_likelihood == pytest.approx(log_lik, rel=1e-12)
    assert r.objective == pytest.approx(log_lik + prior, rel=1e-12)


def test_dawid_skene_never_lowers_its_objective_and_stops_on_it():
    # EM for a MAP estimate climbs the objective every round (the bare likelihood need not).
    labels, _ = synthetic(10, n_items=300, per_item=3)
    objectives = [cs.dawid_skene(labels, K, max_iter=n, tol=0, smoothing=0.5).objective for n in range(1, 30)]
    assert np.all(np.diff(objectives) >= -1e-9), objectives
    assert objectives[-1] > objectives[0]
    # The stopping rule: the first round whose objective per label moved by less than tol.
    per_label = np.diff(objectives) / np.isfinite(labels).sum()
    tol = 1e-4
    stop = int(np.argmax(np.abs(per_label) < tol)) + 2  # rounds are 1-based; diff i compares i+1 with i+2
    fitted = cs.dawid_skene(labels, K, tol=tol, smoothing=0.5)
    assert fitted.converged and fitted.n_iter == stop


# The previous algorithm, kept here only as the reference: EM started from the one-hot majority
# vote (ties drawn with the seed), stopped on the change of the bare log-likelihood per label.
def previous_dawid_skene(labels, n_classes, max_iter=200, tol=1e-6, smoothing=0.01, random_state=None):
    k = n_classes
    item_idx, labeler_idx, label = label_triples(labels, k)
    n_items, n_labelers = labels.shape
    counts = class_counts_from_triples(item_idx, label, n_items, k)
    evidence = sparse.csr_matrix(
        (np.ones(item_idx.size), (item_idx, labeler_idx * k + label)), shape=(n_items, n_labelers * k)
    )
    evidence_t = evidence.T.tocsr()
    labelled = counts.sum(axis=1) > 0
    vote, _ = cs.majority_vote_from_counts(counts, random_state)
    posterior = np.zeros((n_items, k))
    posterior[labelled, vote[labelled].astype(np.int64)] = 1.0
    log_lik = -np.inf
    for _ in range(max_iter):
        expected = (evidence_t @ posterior).reshape(n_labelers, k, k).transpose(0, 2, 1) + smoothing
        confusion = expected / expected.sum(axis=2, keepdims=True)
        class_mass = posterior[labelled].sum(axis=0) + smoothing
        priors = class_mass / class_mass.sum()
        joint = evidence @ np.log(confusion).transpose(0, 2, 1).reshape(n_labelers * k, k) + np.log(priors)
        top = joint.max(axis=1, keepdims=True)
        weights = np.exp(joint - top)
        total = weights.sum(axis=1, keepdims=True)
        posterior = weights / total
        new_log_lik = float((top + np.log(total))[labelled].sum())
        change, log_lik = abs(new_log_lik - log_lik) / max(item_idx.size, 1), new_log_lik
        if change < tol:
            break
    return posterior, confusion


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dawid_skene_reaches_the_previous_optimum_where_nothing_ties(seed):
    # Without majority-vote ties the old start was seed-free too, but one-hot where the new one is
    # soft, so the two walk different paths up the same hill: compared where both have arrived
    # (500 rounds, no early stop), the posteriors agree to 1e-6 (observed: 1e-12 or better). At
    # the default tolerances they stop at slightly different rounds, so they are not compared there.
    labels, _ = synthetic(seed, n_items=600, per_item=5)
    counts = class_counts(labels, K)
    labels = labels[(counts == counts.max(axis=1, keepdims=True)).sum(axis=1) == 1]
    assert not cs.majority_vote(labels, K, random_state=0)[1].any()
    old_posterior, old_confusion = previous_dawid_skene(labels, K, max_iter=500, tol=0, random_state=seed)
    new = cs.dawid_skene(labels, K, max_iter=500, tol=0)
    np.testing.assert_allclose(new.posterior, old_posterior, atol=1e-6, rtol=0)
    np.testing.assert_allclose(new.confusion, old_confusion, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(new.labels, old_posterior.argmax(axis=1))
    # ... and the reference differs from the new start where something does tie (so it can tell).
    tied, _ = synthetic(5, n_items=400, per_item=4)
    old_early, _ = previous_dawid_skene(tied, K, max_iter=1, random_state=0)
    assert not np.allclose(old_early, cs.dawid_skene(tied, K, max_iter=1).posterior, atol=1e-6)


def test_dawid_skene_gold_anchors_items_and_helps_the_others_on_average():
    free_scores, anchored_scores = [], []
    for seed in range(11, 16):
        labels, truth = synthetic(seed, n_items=800, per_item=3)
        known = np.random.default_rng(seed + 100).random(len(truth)) < 0.2  # not synthetic()'s stream
        gold = np.where(known, truth, nan)
        free = cs.dawid_skene(labels, K)
        anchored = assert_no_warnings(cs.dawid_skene, labels, K, gold=gold)
        np.testing.assert_array_equal(anchored.labels[known], truth[known])
        np.testing.assert_array_equal(anchored.posterior[known], np.eye(K)[truth[known]])
        # Held out: scored only on items whose gold the fit did not see.
        free_scores.append(accuracy(free.labels[~known], truth[~known]))
        anchored_scores.append(accuracy(anchored.labels[~known], truth[~known]))
    # Not on every seed (two of these five lose about a point), but on average: observed +0.5 points.
    assert np.mean(anchored_scores) > np.mean(free_scores) + 0.002, (free_scores, anchored_scores)
    # All-NaN gold is no gold; bad gold is refused.
    np.testing.assert_array_equal(cs.dawid_skene(labels, K, gold=np.full(len(truth), nan)).posterior, free.posterior)
    with pytest.raises(ValueError, match="gold must have shape"):
        cs.dawid_skene(labels, K, gold=gold[:-1])
    with pytest.raises(ValueError, match="gold must hold class indices"):
        cs.dawid_skene(labels, K, gold=np.where(known, 3.0, nan))


def test_dawid_skene_from_triples_equals_dense():
    labels, _ = synthetic(8, n_items=200)
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

# Dawid-Skene accuracy published by Zheng et al. (PVLDB 2017, Table 6). Their EM runs exactly 20
# rounds from a fixed 0.7-diagonal confusion, without smoothing, and keeps duplicate answers.
PUBLISHED = {"D_Product": 0.9366, "D_PosSent": 0.9600, "S_Rel": 0.6130}
# Observed with the defaults, accuracy against gold, MV (seed 0) -> DS (any seed):
#   D_Product 0.897 -> 0.939, D_PosSent 0.935 -> 0.960, S_Rel 0.541 -> 0.615,
#   bluebirds 0.759 -> 0.898, RTE 0.896 -> 0.928, S_Adult 0.757 -> 0.739 (left out of the comparison).
# Floors for the two datasets with no published figure sit a little under the observed values.
FLOORS = {**PUBLISHED, "bluebirds": 0.88, "RTE": 0.92}


@pytest.mark.crowd
@pytest.mark.parametrize("name", list(FLOORS))
def test_crowd_dawid_skene_beats_majority_vote_and_the_published_figure(name):
    d = crowd_arrays.load(name)
    votes, _ = cs.majority_vote(d.labels, d.n_classes, random_state=0)
    result = assert_no_warnings(cs.dawid_skene, d.labels, d.n_classes, random_state=0)
    mv_accuracy, ds_accuracy = accuracy(votes, d.gold), accuracy(result.labels, d.gold)
    assert ds_accuracy > mv_accuracy, (name, mv_accuracy, ds_accuracy)
    assert ds_accuracy >= FLOORS[name], (name, ds_accuracy)
    assert result.converged and result.n_iter <= 200


@pytest.mark.crowd
def test_crowd_s_adult_converges_within_the_report_limit():
    # S_Adult is left out of the accuracy comparison (the issue does not list it): only 333
    # labelled gold items, and plain D&S lands under majority vote there (0.739 vs 0.757).
    # The old one-hot start needed 145 rounds here, past the report's former cap of 100.
    d = crowd_arrays.load("S_Adult")
    result = assert_no_warnings(
        cs.dawid_skene_from_triples, d.item_idx, d.labeler_idx, d.label, *d.labels.shape, d.n_classes
    )
    np.testing.assert_allclose(result.posterior.sum(axis=1), 1.0, atol=1e-12)
    assert result.converged and result.n_iter <= 200
    assert accuracy(result.labels, d.gold) > 0.7


@pytest.mark.crowd
@pytest.mark.parametrize("name", crowd_arrays.DATASETS)
def test_crowd_dawid_skene_is_the_same_for_seeds_0_to_9(name):
    d = crowd_arrays.load(name)
    args = (d.item_idx, d.labeler_idx, d.label, *d.labels.shape, d.n_classes)
    first = cs.dawid_skene_from_triples(*args, random_state=0)
    assert not first.ties.any()  # so no seed has anything to decide
    for seed in range(1, 10):
        other = cs.dawid_skene_from_triples(*args, random_state=seed)
        np.testing.assert_array_equal(other.labels, first.labels, err_msg=f"{name}, seed {seed}")
        np.testing.assert_array_equal(other.posterior, first.posterior)


@pytest.mark.crowd
@pytest.mark.parametrize("name", ["RTE", "D_PosSent"])
def test_crowd_majority_vote_ties_are_reported_and_reproducible(name):
    d = crowd_arrays.load(name)
    votes, ties = cs.majority_vote(d.labels, d.n_classes, random_state=0)
    counts = class_counts(d.labels, d.n_classes)
    np.testing.assert_array_equal(ties, (counts == counts.max(axis=1, keepdims=True)).sum(axis=1) > 1)
    assert ties.sum() > 10  # RTE 65, D_PosSent 43 tied items
    np.testing.assert_array_equal(votes, cs.majority_vote(d.labels, d.n_classes, random_state=0)[0])
    # The seed moves tied items only.
    other, _ = cs.majority_vote(d.labels, d.n_classes, random_state=1)
    np.testing.assert_array_equal(other[~ties], votes[~ties])
    assert (other[ties] != votes[ties]).any()
