"""Consensus labels from several labelers: majority vote and Dawid-Skene. Pure NumPy/SciPy.

Input conventions are those of :mod:`annotation.agreement`: ``labels`` is a float array of
shape (N items, M labelers) with class indices 0..K-1 and NaN for "not labelled". Consensus
labels come back in the same convention: a float array of shape (N,) holding a class index, or
NaN for an item nobody labelled. Randomness (tie-breaking only) comes from ``random_state``:
an int, a ``numpy.random.Generator`` or None (fresh entropy, so not reproducible; pass an int
for results that repeat).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from annotation.agreement import _check_n_classes, class_counts_from_triples, label_triples

__all__ = [
    "DawidSkeneResult",
    "dawid_skene",
    "dawid_skene_from_triples",
    "majority_vote",
    "majority_vote_from_counts",
]


def _argmax_breaking_ties(scores: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise argmax of (N, K) ``scores``; exact ties go to a uniformly random tied column.

    Random numbers are drawn only for tied rows, in row order, so the result depends on the
    seed and on which rows tie, nothing else. Returns (argmax int64 (N,), tie mask bool (N,)).
    """
    if scores.shape[1] == 0:
        raise ValueError("need at least one class")
    best = scores.max(axis=1, keepdims=True)
    at_best = scores == best
    tie = at_best.sum(axis=1) > 1
    winner = scores.argmax(axis=1)
    if tie.any():
        draws = rng.random((int(tie.sum()), scores.shape[1]))
        winner[tie] = np.where(at_best[tie], draws, -1.0).argmax(axis=1)
    return winner.astype(np.int64), tie


def majority_vote_from_counts(counts, random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`majority_vote` from per-item class counts ``counts`` of shape (N, K)."""
    c = np.asarray(counts)
    if c.ndim != 2:
        raise ValueError(f"counts must be a 2-D (N items, K classes) array, got shape {c.shape}")
    return _vote(c, np.random.default_rng(random_state))


def _vote(counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Majority vote of (N, K) counts: float labels (NaN if unlabelled) and the tie mask (N,).
    Only labelled rows take part in tie-breaking, so unlabelled items consume no random draws."""
    labelled = counts.sum(axis=1) > 0
    winner, tie = _argmax_breaking_ties(counts[labelled], rng)
    votes = np.full(counts.shape[0], np.nan)
    votes[labelled] = winner
    ties = np.zeros(counts.shape[0], dtype=bool)
    ties[labelled] = tie
    return votes, ties


def majority_vote(labels, n_classes: int, random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """The most frequent label of each item.

    Parameters
    ----------
    labels : array of shape (N, M)
        Class index 0..K-1 per (item, labeler), NaN where not labelled.
    n_classes : int
        K.
    random_state : int, numpy Generator or None
        Breaks ties: among the classes sharing the top count, one is chosen uniformly at random.
        The same seed and input give the same labels.

    Returns
    -------
    labels : float array of shape (N,)
        Class index, or NaN for an item with no label.
    ties : bool array of shape (N,)
        True where two or more classes shared the top count and the label was drawn at random.
        Items with no label are not ties.
    """
    k = _check_n_classes(n_classes)
    arr = np.asarray(labels, dtype=np.float64)
    item_idx, _, label = label_triples(arr, k)
    counts = class_counts_from_triples(item_idx, label, arr.shape[0], k)
    return majority_vote_from_counts(counts, random_state)


@dataclass(frozen=True, eq=False)
class DawidSkeneResult:
    """Fitted Dawid-Skene model.

    Attributes
    ----------
    posterior : float array (N, K)
        P(true class = k | all labels of the item). An item with no label gets ``priors``; an
        item anchored by ``gold`` gets the one-hot of its gold class.
    labels : float array (N,)
        Argmax of ``posterior``; NaN for an item with no label. An exact tie (rare once EM has
        run: it needs perfectly symmetric evidence) is broken with ``random_state`` and flagged
        in ``ties``; every other label is the same for every seed.
    ties : bool array (N,)
        True where the posterior argmax was an exact tie among labelled items.
    confusion : float array (M, K, K)
        ``confusion[j, k, l]`` = P(labeler j says l | true class k); each row sums to 1. A
        labeler with no labels has uniform rows.
    priors : float array (K,)
        Class shares P(true class = k).
    log_likelihood : float
        Log-likelihood of the observed labels (and of the gold classes of anchored items) under
        the final parameters; NaN when no EM round ran.
    objective : float
        What EM maximises: ``log_likelihood`` plus the log of the smoothing prior (see
        :func:`dawid_skene`); NaN when no EM round ran.
    n_iter : int
        EM iterations run (each an M-step followed by an E-step).
    converged : bool
        Whether ``objective`` per label changed by less than ``tol`` between two rounds within
        ``max_iter`` rounds.
    """

    posterior: np.ndarray
    labels: np.ndarray
    ties: np.ndarray
    confusion: np.ndarray
    priors: np.ndarray
    log_likelihood: float
    objective: float
    n_iter: int
    converged: bool


def _check_gold(gold, n_items: int, n_classes: int) -> np.ndarray:
    """(N,) float gold classes or NaN -> (N,) int64 with -1 for "no gold"."""
    if gold is None:
        return np.full(n_items, -1, dtype=np.int64)
    g = np.asarray(gold, dtype=np.float64)
    if g.shape != (n_items,):
        raise ValueError(f"gold must have shape ({n_items},) (one entry per item), got {g.shape}")
    known = ~np.isnan(g)
    bad = known & ~((g >= 0) & (g < n_classes) & (g == np.floor(np.where(known, g, 0))))
    if bad.any():
        raise ValueError(f"gold must hold class indices 0..{n_classes - 1} or NaN; found {g[np.argmax(bad)]!r}")
    return np.where(known, g, -1).astype(np.int64)


def dawid_skene_from_triples(
    item_idx,
    labeler_idx,
    label,
    n_items: int,
    n_labelers: int,
    n_classes: int,
    max_iter: int = 200,
    tol: float = 1e-5,
    smoothing: float = 0.01,
    random_state=None,
    gold=None,
) -> DawidSkeneResult:
    """:func:`dawid_skene` from sparse labels: three int arrays of shape (L,) giving each label's
    item (0..N-1), labeler (0..M-1) and class (0..K-1). Every triple counts as one label, so
    de-duplicate repeated (item, labeler) pairs first."""
    k = _check_n_classes(n_classes)
    if max_iter < 0:
        raise ValueError("max_iter must be >= 0")
    if not smoothing > 0:
        raise ValueError("smoothing must be > 0 (it keeps every confusion entry, and its log, finite)")
    item_idx = np.asarray(item_idx, dtype=np.int64).ravel()
    labeler_idx = np.asarray(labeler_idx, dtype=np.int64).ravel()
    if labeler_idx.shape != item_idx.shape:
        raise ValueError("item_idx, labeler_idx and label must have the same length")
    if labeler_idx.size and (labeler_idx.min() < 0 or labeler_idx.max() >= n_labelers):
        raise ValueError(f"labeler_idx must lie in 0..{n_labelers - 1}")
    counts = class_counts_from_triples(item_idx, label, n_items, k)  # validates items and labels
    label = np.asarray(label).astype(np.int64).ravel()
    rng = np.random.default_rng(random_state)
    labelled = counts.sum(axis=1) > 0
    # Gold anchors only labelled items: an unlabelled item has no labels for it to explain.
    anchor = _check_gold(gold, n_items, k)
    anchored = (anchor >= 0) & labelled
    one_hot = np.zeros((int(anchored.sum()), k))
    one_hot[np.arange(one_hot.shape[0]), anchor[anchored]] = 1.0

    # evidence[i, j*K + l] = number of times labeler j said l on item i.
    evidence = sparse.csr_matrix(
        (np.ones(item_idx.size), (item_idx, labeler_idx * k + label)), shape=(n_items, n_labelers * k)
    )
    evidence_t = evidence.T.tocsr()

    # Start from the vote shares: a soft start needs no tie-breaking, so no seed reaches EM.
    totals = counts.sum(axis=1, keepdims=True)
    posterior = np.divide(counts, totals, out=np.zeros((n_items, k)), where=totals > 0)
    posterior[anchored] = one_hot

    n_labels = max(item_idx.size, 1)
    n_iter, converged = 0, False
    confusion = np.full((n_labelers, k, k), 1.0 / k)
    priors = np.full(k, 1.0 / k)
    log_lik = objective = float("nan")
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is reported)
        # M-step (MAP): expected (true k, said l) counts per labeler plus the smoothing pseudo-count.
        expected = (evidence_t @ posterior).reshape(n_labelers, k, k)  # [j, l, k]
        expected = expected.transpose(0, 2, 1) + smoothing  # [j, k, l]
        confusion = expected / expected.sum(axis=2, keepdims=True)
        class_mass = posterior[labelled].sum(axis=0) + smoothing
        priors = class_mass / class_mass.sum()
        # E-step: log P(true k) + sum over the item's labels of log P(said l | true k).
        log_conf_jkl = np.log(confusion)
        log_conf = log_conf_jkl.transpose(0, 2, 1).reshape(n_labelers * k, k)  # [j*K + l, k]
        log_priors = np.log(priors)
        joint = evidence @ log_conf + log_priors
        top = joint.max(axis=1, keepdims=True)
        weights = np.exp(joint - top)
        total = weights.sum(axis=1, keepdims=True)
        posterior = weights / total
        item_log_lik = (top + np.log(total))[:, 0]
        if anchored.any():  # a gold item's true class is observed: its term is the joint at it
            item_log_lik[anchored] = joint[anchored, anchor[anchored]]
            posterior[anchored] = one_hot
        new_log_lik = float(item_log_lik[labelled].sum())
        new_objective = new_log_lik + smoothing * (float(log_conf_jkl.sum()) + float(log_priors.sum()))
        change = abs(new_objective - objective) / n_labels  # NaN in round 1: never "converged"
        log_lik, objective = new_log_lik, new_objective
        if change < tol:
            converged = True
            break
    posterior[~labelled] = priors  # the vote-share start left them at 0 when no round ran
    winner, tie = _argmax_breaking_ties(posterior[labelled], rng)
    final = np.full(n_items, np.nan)
    final[labelled] = winner
    ties = np.zeros(n_items, dtype=bool)
    ties[labelled] = tie
    return DawidSkeneResult(
        posterior=posterior,
        labels=final,
        ties=ties,
        confusion=confusion,
        priors=priors,
        log_likelihood=log_lik,
        objective=objective,
        n_iter=n_iter,
        converged=converged,
    )


def dawid_skene(
    labels,
    n_classes: int,
    max_iter: int = 200,
    tol: float = 1e-5,
    smoothing: float = 0.01,
    random_state=None,
    gold=None,
) -> DawidSkeneResult:
    """Dawid-Skene consensus: EM over a true class per item and a confusion matrix per labeler.

    Model: item i has a hidden true class z_i ~ priors; labeler j, seeing class k, says l with
    probability confusion[j, k, l], independently of the other labelers.

    Objective. EM maximises the posterior of the parameters, with a symmetric Dirichlet(1 + s)
    prior (s = ``smoothing``) on every confusion row and on the priors::

        objective = log_likelihood + s * (sum_{j,k,l} log confusion[j, k, l] + sum_k log priors[k])
        log_likelihood = sum over labelled items i of log sum_k priors[k] prod_{(j, l) in i} confusion[j, k, l]

    (an item anchored by ``gold`` g contributes log priors[g] prod confusion[j, g, l] instead: its
    true class is observed). Each EM round cannot decrease it (Dempster, Laird & Rubin 1977),
    which is why the stopping test watches it and not the bare likelihood.

    EM (Dawid & Skene 1979):

    - start: the posterior of each item is its vote shares (counts / number of labels). Unlike a
      one-hot majority vote it needs no tie-breaking, so no random number reaches EM: the fit is
      the same for every ``random_state``. On data without majority-vote ties it climbs to the
      same optimum as the one-hot start (tests/unit/test_consensus.py keeps the old algorithm
      and checks it);
    - M-step: confusion[j, k, :] proportional to (expected count of j saying each l on items of
      true class k) + ``smoothing``; priors proportional to the posterior mass + ``smoothing``
      (the maximiser of the objective above). The pseudo-count keeps a labeler with a handful
      of labels from getting a degenerate matrix with zeros (and log(0)) in it;
    - E-step: posterior[i] proportional to priors * prod over i's labels of confusion[j, k, l];
      the posterior of an item with gold is clamped to its gold class (as crowd-kit's
      ``true_labels`` does);
    - stop when the objective divided by the number of labels changes by less than ``tol``
      between rounds, or after ``max_iter`` rounds (``converged`` says which).

    Each round is two sparse products over the L labels, so the cost is O(L K + N K + M K^2)
    per iteration, no Python loop over items or labelers.

    Parameters
    ----------
    labels : array of shape (N, M)
        Class index 0..K-1 per (item, labeler), NaN where not labelled.
    n_classes : int
        K.
    max_iter : int
        Most EM rounds (0 returns the vote-share start with ``converged=False``; its labels are
        the majority vote with the same ``random_state``).
    tol : float
        Convergence threshold on the change of the objective per label (nats). 1e-5 (as
        crowd-kit's default): on sparse real data the fit keeps creeping for hundreds of rounds
        after the labels settle (S_Rel, 766 labelers with 4x4 matrices each, drifts from 61.5 %
        to 60.6 % accuracy against gold between 1e-5 and 1e-7; benchmarks/RESULTS.md).
    smoothing : float > 0
        Additive pseudo-count on every confusion cell and every prior class.
    random_state : int, numpy Generator or None
        Breaks exact ties of the final argmax only (reported in ``.ties``).
    gold : array of shape (N,) or None
        Optional known classes (NaN where unknown). Anchors EM: the posterior of a labelled
        item with gold is its gold class throughout, so the labelers' confusions are learnt
        partly from known answers. Gold on an item nobody labelled is ignored.

    Returns
    -------
    DawidSkeneResult
        ``.posterior`` (N, K), ``.labels`` (N,), ``.ties`` (N,), ``.confusion`` (M, K, K),
        ``.priors`` (K,), ``.log_likelihood``, ``.objective``, ``.n_iter``, ``.converged``. With
        no labels at all every label is NaN, the priors are uniform and the posterior equals them.
    """
    k = _check_n_classes(n_classes)
    arr = np.asarray(labels, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"labels must be a 2-D (N items, M labelers) array, got shape {arr.shape}")
    item_idx, labeler_idx, label = label_triples(arr, k)
    return dawid_skene_from_triples(
        item_idx,
        labeler_idx,
        label,
        n_items=arr.shape[0],
        n_labelers=arr.shape[1],
        n_classes=k,
        max_iter=max_iter,
        tol=tol,
        smoothing=smoothing,
        random_state=random_state,
        gold=gold,
    )
