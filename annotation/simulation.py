"""Simulated labelers with known confusion, for demos and benchmarks. Pure NumPy.

A labeler is a (K, K) row-stochastic confusion matrix C: C[t, j] is the chance of answering
class j when the truth is t.
"""

import numpy as np


def careful_confusion(n_classes, accuracy=0.97):
    """Right with probability `accuracy`, otherwise a uniformly random other class. Shape (K, K)."""
    off = (1 - accuracy) / (n_classes - 1)
    confusion = np.full((n_classes, n_classes), off)
    np.fill_diagonal(confusion, accuracy)
    return confusion


def mixing_confusion(n_classes, pairs, mix=0.3, accuracy=0.97):
    """Careful, except that each (a, b) in `pairs` is answered as the other one with chance `mix`."""
    confusion = careful_confusion(n_classes, accuracy)
    for a, b in pairs:
        for t, other in ((a, b), (b, a)):
            row = careful_confusion(n_classes, accuracy)[t] * (1 - mix)
            row[other] += mix
            confusion[t] = row / row.sum()
    return confusion


def noisy_confusion(n_classes, accuracy=0.75, ambiguity_index=None, ambiguity_share=0.3):
    """Often wrong; a share of its errors goes to the ambiguity class when there is one."""
    confusion = careful_confusion(n_classes, accuracy)
    if ambiguity_index is not None:
        for t in range(n_classes):
            if t == ambiguity_index:
                continue
            errors = 1 - confusion[t, t]
            confusion[t] *= 1 - ambiguity_share
            confusion[t, t] = accuracy
            confusion[t, ambiguity_index] += errors * ambiguity_share
            confusion[t] /= confusion[t].sum()
    return confusion


def assign_labelers(n_items, n_labelers, needs_overlap, overlap, other_share, rng):
    """Which labeler labels which item. Returns a bool mask of shape (N, M).

    Items with `needs_overlap` (N,) get min(overlap, M) distinct labelers; of the others, a
    share `other_share` gets one labeler each, so part of the pool is left for real people.
    """
    mask = np.zeros((n_items, n_labelers), dtype=bool)
    k = min(overlap, n_labelers)
    for i in np.flatnonzero(needs_overlap):
        mask[i, rng.choice(n_labelers, size=k, replace=False)] = True
    others = np.flatnonzero(~needs_overlap)
    chosen = others[rng.random(others.size) < other_share]
    mask[chosen, rng.integers(0, n_labelers, size=chosen.size)] = True
    return mask


def simulate_labels(truth, confusions, mask, rng):
    """Draw labels. truth (N,) int, confusions (M, K, K), mask (N, M) bool.

    Returns (N, M) float: a class index where mask is set, NaN elsewhere.
    """
    n_items, n_labelers = mask.shape
    labels = np.full((n_items, n_labelers), np.nan)
    for m in range(n_labelers):
        rows = np.flatnonzero(mask[:, m])
        cumulative = np.cumsum(confusions[m][truth[rows]], axis=1)
        draws = rng.random(rows.size)[:, None]
        labels[rows, m] = np.minimum((draws > cumulative).sum(axis=1), confusions.shape[1] - 1)
    return labels
