"""Label quality per labeler, per project, slice and class: accuracy against ground truth with
Wilson intervals, pairwise agreement, speed, and human-level performance (HLP). Pure NumPy/SciPy;
the array conventions and definitions are in :mod:`annotation.quality`."""

import math

import numpy as np
from scipy import sparse
from scipy.special import xlogy

from annotation.agreement import class_counts_from_triples, percent_agreement_from_counts
from annotation.consensus import majority_vote_from_counts

from .intervals import INTERVAL_METHOD, clustered_wilson_interval

WILSON_Z_95 = 1.959963984540054  # the 97.5 % quantile of the standard normal distribution


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _ratio(numerator, denominator) -> np.ndarray:
    """numerator / denominator elementwise, NaN where the denominator is 0 (no warning)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    num, den = np.broadcast_arrays(num, den)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _scalar_ratio(numerator, denominator) -> float:
    return float(numerator) / float(denominator) if denominator else float("nan")


def wilson_interval(successes, n, z: float = WILSON_Z_95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion (95 % with the default ``z``).

    With p = successes / n:

        centre    = (p + z^2 / (2n)) / (1 + z^2 / n)
        halfwidth = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))

    Unlike the normal ("Wald") interval it stays inside [0, 1] and is sensible for p near 0 or 1
    and for small n. Equals ``statsmodels.stats.proportion.proportion_confint(successes, n,
    method="wilson")``.

    Parameters
    ----------
    successes, n : int or array of shape (G,)
        Counts, 0 <= successes <= n.

    Returns
    -------
    low, high : float arrays of the broadcast shape (0-d for scalars)
        NaN where n == 0 (no observation, no interval).
    """
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    s, n = np.broadcast_arrays(s, n)
    low = np.full(s.shape, np.nan)
    high = np.full(s.shape, np.nan)
    ok = n > 0
    if np.any(ok):
        nn, ss = n[ok], s[ok]
        p = ss / nn
        z2 = z * z
        denom = 1.0 + z2 / nn
        centre = (p + z2 / (2.0 * nn)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn))
        low[ok] = centre - half
        high[ok] = centre + half
    return low, high


def label_entropy(counts) -> np.ndarray:
    """Shannon entropy in bits of each item's label distribution.

    Parameters
    ----------
    counts : int array of shape (N, K)
        Per-item class counts.

    Returns
    -------
    float array of shape (N,)
        0 for unanimous items, log2(K') when K' classes are used equally often; NaN for items with
        no label.
    """
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum(axis=1, keepdims=True)
    p = _ratio(c, np.broadcast_to(n, c.shape))
    p = np.nan_to_num(p, nan=0.0)
    h = -(xlogy(p, p).sum(axis=1)) / math.log(2.0)
    h = np.where(n[:, 0] > 0, np.abs(h), np.nan)  # abs: -0.0 for unanimous items
    return h


def _check_triples(item_idx, labeler_idx, label):
    item_idx = np.asarray(item_idx, dtype=np.int64).ravel()
    labeler_idx = np.asarray(labeler_idx, dtype=np.int64).ravel()
    label = np.asarray(label, dtype=np.int64).ravel()
    if not (item_idx.shape == labeler_idx.shape == label.shape):
        raise ValueError("item_idx, labeler_idx and label must have the same length")
    return item_idx, labeler_idx, label


def _correct(item_idx, label, truth) -> tuple[np.ndarray, np.ndarray]:
    """Per label: (scored: the item has ground truth, correct: the label equals it). (L,) bools."""
    t = np.asarray(truth, dtype=np.float64)[item_idx]
    scored = ~np.isnan(t)
    correct = np.zeros(label.shape, dtype=bool)
    correct[scored] = label[scored] == t[scored]
    return scored, correct


# --------------------------------------------------------------------------------------------
# Per labeler
# --------------------------------------------------------------------------------------------


def labeler_accuracy(item_idx, labeler_idx, label, truth, n_labelers: int) -> dict[str, np.ndarray]:
    """Each labeler's accuracy against ground truth, with a 95 % Wilson interval.

    Parameters
    ----------
    item_idx, labeler_idx, label : int arrays of shape (L,)
    truth : float array of shape (N,)
        Ground-truth class per item, NaN where none.
    n_labelers : int
        M.

    Returns
    -------
    dict of arrays of shape (M,)
        ``scored`` (labels on items with truth), ``correct``, ``accuracy`` (NaN where nothing was
        scored), ``ci_low``, ``ci_high``.
    """
    item_idx, labeler_idx, label = _check_triples(item_idx, labeler_idx, label)
    scored, correct = _correct(item_idx, label, truth)
    n_scored = np.bincount(labeler_idx[scored], minlength=n_labelers)
    n_correct = np.bincount(labeler_idx[correct], minlength=n_labelers)
    low, high = wilson_interval(n_correct, n_scored)
    return {
        "scored": n_scored,
        "correct": n_correct,
        "accuracy": _ratio(n_correct, n_scored),
        "ci_low": low,
        "ci_high": high,
    }


def labeler_agreement(item_idx, labeler_idx, label, n_items: int, n_labelers: int, n_classes: int):
    """How often each labeler agrees with the other labelers of the same items.

    For labeler j, every label of j on an item with n_i labels makes n_i - 1 pairs (j with each
    other labeler of the item), of which c_il - 1 agree (c_il: labels of class l on item i, l
    being j's label).

    - ``agreement``: agreeing pairs / pairs, pooled over j's items.
    - ``kappa``: the same agreement corrected for chance like Cohen's kappa,
      (p_o - p_e) / (1 - p_e), where p_e = sum_k q_k r_k, q_k = the share of j's pairs in which j
      said k and r_k = the share in which the other labeler said k. It is Cohen's kappa of j
      against "the others", pooled: with exactly two labelers who labelled the same items it
      equals ``cohen_kappa`` of the two.

    Parameters
    ----------
    item_idx, labeler_idx, label : int arrays of shape (L,)
    n_items, n_labelers, n_classes : int
        N, M, K.

    Returns
    -------
    dict of arrays of shape (M,)
        ``pairs`` (int), ``agreeing_pairs`` (int), ``agreement`` (NaN with no pair), ``kappa``
        (NaN with fewer than 2 pairs or p_e = 1: both sides used one and the same class only).
    """
    item_idx, labeler_idx, label = _check_triples(item_idx, labeler_idx, label)
    k = n_classes
    counts = class_counts_from_triples(item_idx, label, n_items, k)
    n_i = counts.sum(axis=1)
    others = (n_i[item_idx] - 1).astype(np.float64)  # pairs each label makes
    agree = (counts[item_idx, label] - 1).astype(np.float64)
    pairs = np.bincount(labeler_idx, weights=others, minlength=n_labelers)
    agreeing = np.bincount(labeler_idx, weights=agree, minlength=n_labelers)

    # q[j, k]: pairs in which j said k; r[j, k]: pairs in which the other labeler said k.
    cell = labeler_idx * k + label
    q = np.bincount(cell, weights=others, minlength=n_labelers * k).reshape(n_labelers, k)
    on_items = sparse.csr_matrix(
        (np.ones(item_idx.size), (labeler_idx, item_idx)), shape=(n_labelers, n_items)
    )  # (M, N)
    own = np.bincount(cell, minlength=n_labelers * k).reshape(n_labelers, k)
    r = np.asarray(on_items @ counts) - own
    total = pairs[:, None]
    q_share = _ratio(q, np.broadcast_to(total, q.shape))
    r_share = _ratio(r, np.broadcast_to(total, r.shape))
    p_o = _ratio(agreeing, pairs)
    p_e = np.nan_to_num(q_share * r_share, nan=0.0).sum(axis=1)
    kappa = np.full(n_labelers, np.nan)
    defined = (pairs >= 2) & (p_e < 1.0 - 1e-12)
    np.divide(p_o - p_e, 1.0 - p_e, out=kappa, where=defined)
    return {
        "pairs": pairs.astype(np.int64),
        "agreeing_pairs": agreeing.astype(np.int64),
        "agreement": p_o,
        "kappa": kappa,
    }


def labeler_speed(labeler_idx, duration_ms, n_labelers: int) -> dict[str, np.ndarray]:
    """Labels per hour and median seconds per label, from the time spent on each label.

    Parameters
    ----------
    labeler_idx : int array of shape (L,)
    duration_ms : float array of shape (L,)
        Milliseconds spent on each label, NaN where unknown (imported labels). Zero and
        negative durations count as unknown.
    n_labelers : int

    Returns
    -------
    dict of arrays of shape (M,)
        ``timed`` (labels with a duration), ``labels_per_hour`` = 3,600,000 x timed / total
        milliseconds (NaN with no timed label), ``median_seconds`` (NaN likewise).
    """
    labeler_idx = np.asarray(labeler_idx, dtype=np.int64).ravel()
    d = np.asarray(duration_ms, dtype=np.float64).ravel()
    timed = ~np.isnan(d) & (d > 0)
    who, d = labeler_idx[timed], d[timed]
    n_timed = np.bincount(who, minlength=n_labelers)
    total = np.bincount(who, weights=d, minlength=n_labelers)
    per_hour = _ratio(3_600_000.0 * n_timed, total)
    median = np.full(n_labelers, np.nan)
    if who.size:
        order = np.lexsort((d, who))
        who_sorted, d_sorted = who[order], d[order]
        starts = np.searchsorted(who_sorted, np.arange(n_labelers), side="left")
        has = n_timed > 0
        lo = starts[has] + (n_timed[has] - 1) // 2
        hi = starts[has] + n_timed[has] // 2
        median[has] = (d_sorted[lo] + d_sorted[hi]) / 2.0 / 1000.0
    return {"timed": n_timed, "labels_per_hour": per_hour, "median_seconds": median}


# --------------------------------------------------------------------------------------------
# Project, slices, classes
# --------------------------------------------------------------------------------------------


def project_hlp(item_idx, labeler_idx, label, truth, n_items: int, n_labelers: int, n_classes: int) -> dict:
    """Project-level human-level performance.

    - With ground truth on at least one labelled item, ``basis`` is ``"ground_truth"`` and
      ``value`` is the accuracy of the labels on those items, pooled: every label counts once
      (the label-weighted mean of the labelers' accuracies, i.e. how often a human label matches
      the truth), with a 95 % Wilson interval widened by the design effect of several labels per
      item (annotation/intervals.py), since labels of one item are not independent. ``labeler_mean`` is
      the unweighted mean of the accuracies of the labelers with a scored label.
    - Without any, ``basis`` is ``"pairwise_agreement"`` and ``value`` is the chance that two
      random labelers of the same item agree (pooled over pairs): a proxy, not an accuracy.
    - ``pairwise_agreement`` is reported in both cases (the design asks for it whenever the
      truth is itself a human label), NaN without any pair; ``basis`` is None and ``value`` NaN
      when neither exists.

    Returns
    -------
    dict with keys basis, value, ci_low, ci_high, correct, scored_labels, scored_items,
    interval_method, labeler_mean, labelers_scored, pairwise_agreement, pairs.
    """
    item_idx, labeler_idx, label = _check_triples(item_idx, labeler_idx, label)
    scored, correct = _correct(item_idx, label, truth)
    n_scored, n_correct = int(scored.sum()), int(correct.sum())
    counts = class_counts_from_triples(item_idx, label, n_items, n_classes)
    n_i = counts.sum(axis=1)
    pairs = int((n_i * (n_i - 1)).sum() // 2)
    pairwise = percent_agreement_from_counts(counts)
    per_labeler = labeler_accuracy(item_idx, labeler_idx, label, truth, n_labelers)["accuracy"]
    has = ~np.isnan(per_labeler)
    labeler_mean = float(per_labeler[has].mean()) if has.any() else float("nan")
    ci_all = clustered_wilson_interval(correct[scored], item_idx[scored])
    low, high = ci_all["ci_low"][0], ci_all["ci_high"][0]
    if n_scored:
        basis, value = "ground_truth", n_correct / n_scored
        ci = (float(low), float(high))
    elif pairs:
        basis, value, ci = "pairwise_agreement", pairwise, (float("nan"), float("nan"))
    else:
        basis, value, ci = None, float("nan"), (float("nan"), float("nan"))
    scored_items = int(np.unique(item_idx[scored]).size)
    return {
        "basis": basis,
        "value": value,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "correct": n_correct,
        "scored_labels": n_scored,
        "scored_items": scored_items,
        "interval_method": INTERVAL_METHOD,
        "labeler_mean": labeler_mean,
        "labelers_scored": int(has.sum()),
        "pairwise_agreement": pairwise,
        "pairs": pairs,
    }


def reference_classes(counts, truth, random_state=0) -> np.ndarray:
    """The class each item is grouped under "per class": ground truth, else the majority vote.

    Parameters
    ----------
    counts : int array of shape (N, K)
    truth : float array of shape (N,), NaN where none

    Returns
    -------
    int array of shape (N,)
        Class index, or -1 for an item with neither truth nor label.
    """
    vote, _ = majority_vote_from_counts(counts, random_state=random_state)
    t = np.asarray(truth, dtype=np.float64)
    ref = np.where(np.isnan(t), vote, t)
    return np.where(np.isnan(ref), -1, np.nan_to_num(ref, nan=-1)).astype(np.int64)


def group_quality(item_idx, label, truth, group, n_groups: int, n_classes: int, ambiguity, unsure) -> dict:
    """Quality figures per group of items (a slice value, a reference class, ...).

    Parameters
    ----------
    item_idx, label : int arrays of shape (L,)
    truth : float array of shape (N,), NaN where none
    group : int array of shape (N,)
        Group index 0..G-1 of each item, -1 for an item in no group.
    n_groups, n_classes : int
        G, K.
    ambiguity : bool array of shape (K,)
    unsure : bool array of shape (L,)

    Returns
    -------
    dict of arrays of shape (G,)
        ``items`` (labelled items), ``labels``, ``scored`` (labels on items with truth),
        ``truth_items``, ``correct``, ``accuracy``, ``ci_low``, ``ci_high``, ``pairs``,
        ``agreeing_pairs``, ``pairwise_agreement``, ``ambiguity_labels``, ``ambiguity_share``,
        ``unsure_labels``, ``unsure_share``. Pairs are within an item, so within its group.
    """
    item_idx = np.asarray(item_idx, dtype=np.int64).ravel()
    label = np.asarray(label, dtype=np.int64).ravel()
    group = np.asarray(group, dtype=np.int64).ravel()
    n_items = group.size
    g = n_groups
    counts = class_counts_from_triples(item_idx, label, n_items, n_classes)
    n_i = counts.sum(axis=1)
    in_group = (group >= 0) & (n_i > 0)
    gi = group[in_group]
    items = np.bincount(gi, minlength=g)
    t = np.asarray(truth, dtype=np.float64)
    truth_items = np.bincount(group[in_group & ~np.isnan(t)], minlength=g)
    pairs = np.bincount(gi, weights=(n_i * (n_i - 1) // 2)[in_group], minlength=g)
    agree = np.bincount(gi, weights=((counts * (counts - 1)) // 2).sum(axis=1)[in_group], minlength=g)

    label_group = group[item_idx]
    keep = label_group >= 0
    lg = label_group[keep]
    scored, correct = _correct(item_idx, label, truth)
    amb = np.asarray(ambiguity, dtype=bool)[label]
    uns = np.asarray(unsure, dtype=bool).ravel()
    labels = np.bincount(lg, minlength=g)
    n_scored = np.bincount(lg[scored[keep]], minlength=g)
    n_correct = np.bincount(lg[correct[keep]], minlength=g)
    n_amb = np.bincount(lg[amb[keep]], minlength=g)
    n_uns = np.bincount(lg[uns[keep]], minlength=g)
    # Several labels of one item are not independent: the interval is widened by the design effect.
    sel = keep & scored
    ci = clustered_wilson_interval(correct[sel], item_idx[sel], label_group[sel], n_groups=g)
    low, high = ci["ci_low"], ci["ci_high"]
    return {
        "items": items,
        "labels": labels,
        "scored": n_scored,
        "truth_items": truth_items,
        "correct": n_correct,
        "accuracy": _ratio(n_correct, n_scored),
        "ci_low": low,
        "ci_high": high,
        "design_effect": ci["design_effect"],
        "pairs": pairs.astype(np.int64),
        "agreeing_pairs": agree.astype(np.int64),
        "pairwise_agreement": _ratio(agree, pairs),
        "ambiguity_labels": n_amb,
        "ambiguity_share": _ratio(n_amb, labels),
        "unsure_labels": n_uns,
        "unsure_share": _ratio(n_uns, labels),
    }
