"""Label quality: human-level performance (HLP), ambiguity analysis, disputed items and agreement
per guideline version. Pure NumPy/SciPy, no Django.

Conventions (those of :mod:`annotation.agreement`, in their sparse form):

- Labels come as triples of int arrays of shape (L,): ``item_idx`` (0..N-1), ``labeler_idx``
  (0..M-1) and ``label`` (class index 0..K-1), one entry per *current* label, at most one per
  (item, labeler) pair. Per-label attributes (``unsure``, ``duration_ms``, ``version``) are
  arrays of shape (L,) aligned with them.
- ``truth`` is a float array of shape (N,): the ground-truth class of each item, NaN where there
  is none. Ground truth is decided by the caller (Concord: gold, else an SME's resolution).
- ``ambiguity`` is a bool array of shape (K,): True for the "can't tell / borderline" classes.
- Shares and rates that are undefined (nothing to score, no pair, no timed label) are NaN, never a
  division warning. :func:`compute_report` turns them into ``None`` in its JSON-safe output.

Definitions used throughout:

- **accuracy** of a set of labels: the share of them, among labels on items with ground truth,
  that equal the item's truth. A label of an ambiguity class never equals the truth of a real
  class, so it counts as a miss (a model has to choose); the ambiguity share is reported beside.
- **pair**: two different labelers' labels on the same item; an item with n labels holds
  n (n - 1) / 2 pairs. **Pairwise agreement** is the share of pairs with the same label.
- **reference class** of an item, used to group labels "per class": its ground truth where there
  is one, else the majority vote of its labels (ties broken with ``random_state``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.special import xlogy

from annotation.agreement import (
    class_counts_from_triples,
    fleiss_kappa_from_counts,
    krippendorff_alpha_from_counts,
    labeler_confusion_from_counts,
    percent_agreement_from_counts,
    specific_agreement_from_counts,
)
from annotation.consensus import dawid_skene_from_triples, majority_vote_from_counts

__all__ = [
    "WILSON_Z_95",
    "QualityInput",
    "ReportSettings",
    "agreement_by_version",
    "compute_report",
    "confused_pairs",
    "disputed_items",
    "group_quality",
    "json_safe",
    "label_entropy",
    "labeler_accuracy",
    "labeler_agreement",
    "labeler_speed",
    "project_hlp",
    "reference_classes",
    "wilson_interval",
]

WILSON_Z_95 = 1.959963984540054  # the 97.5 % quantile of the standard normal distribution

# Thresholds of the suggested action for a confused class pair (see :func:`confused_pairs`).
MERGE_MIN_RATE = 0.3
BORDERLINE_MIN_UNCERTAIN = 0.25
MIN_PAIR_DISAGREEMENTS = 3
MIN_PAIR_RATE = 0.05


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
      the truth), with a 95 % Wilson interval. The interval treats labels as independent; labels
      on one item are not, so read it as a lower bound on the uncertainty. ``labeler_mean`` is
      the unweighted mean of the accuracies of the labelers with a scored label.
    - Without any, ``basis`` is ``"pairwise_agreement"`` and ``value`` is the chance that two
      random labelers of the same item agree (pooled over pairs): a proxy, not an accuracy.
    - ``pairwise_agreement`` is reported in both cases (the design asks for it whenever the
      truth is itself a human label), NaN without any pair; ``basis`` is None and ``value`` NaN
      when neither exists.

    Returns
    -------
    dict with keys basis, value, ci_low, ci_high, correct, scored_labels, scored_items,
    labeler_mean, labelers_scored, pairwise_agreement, pairs.
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
    low, high = wilson_interval(n_correct, n_scored)
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
    low, high = wilson_interval(n_correct, n_scored)
    return {
        "items": items,
        "labels": labels,
        "scored": n_scored,
        "truth_items": truth_items,
        "correct": n_correct,
        "accuracy": _ratio(n_correct, n_scored),
        "ci_low": low,
        "ci_high": high,
        "pairs": pairs.astype(np.int64),
        "agreeing_pairs": agree.astype(np.int64),
        "pairwise_agreement": _ratio(agree, pairs),
        "ambiguity_labels": n_amb,
        "ambiguity_share": _ratio(n_amb, labels),
        "unsure_labels": n_uns,
        "unsure_share": _ratio(n_uns, labels),
    }


# --------------------------------------------------------------------------------------------
# Ambiguity analysis
# --------------------------------------------------------------------------------------------


def confused_pairs(
    confusion,
    ambiguity,
    uncertain_per_item=None,
    labels_per_item=None,
    counts=None,
    top: int = 10,
    min_disagreements: int = MIN_PAIR_DISAGREEMENTS,
    min_rate: float = MIN_PAIR_RATE,
    merge_min_rate: float = MERGE_MIN_RATE,
    borderline_min_uncertain: float = BORDERLINE_MIN_UNCERTAIN,
) -> list[dict]:
    """The class pairs labelers confuse most, each with a suggested action and its evidence.

    Evidence, from C = :func:`annotation.agreement.labeler_confusion` (ordered label pairs of two
    different labelers on the same item; ambiguity classes are left out of the pairs but feed the
    uncertainty evidence):

    - ``disagreements`` = C[a, b]: labeler pairs on one item where one said a and the other b;
    - ``p_b_given_a`` = C[a, b] / sum_l C[a, l]: when a labeler says a, how often another
      labeler of the same item says b (``p_a_given_b`` likewise);
    - ``rate`` = C[a, b] / (pairs involving a or b): the share of all labeler pairs touching a
      or b that are an a-versus-b disagreement. Pairs are ranked by it; a pair is listed only
      with at least ``min_disagreements`` (3) disagreements and a ``rate`` of at least
      ``min_rate`` (5 %): below that, confusion is the background noise every project has;
    - ``uncertain_share`` (when per-item uncertainty is given): on the items where a and b were
      both given, the share of labels that were an ambiguity class or flagged unsure.

    The rule, first match wins:

    1. **borderline** — ``uncertain_share`` >= ``borderline_min_uncertain`` (0.25): labelers
       themselves say these items are hard, so the items are genuinely in between. Suggest using
       the project's ambiguity class for them (remind labelers it exists), or adding one if the
       project has none.
    2. **merge** — both ``p_b_given_a`` and ``p_a_given_b`` >= ``merge_min_rate`` (0.3), and the
       project has more than two non-ambiguity classes: the two classes are used
       interchangeably in both directions, so as defined they cannot be told apart; merge them
       (or redefine both). Never suggested for a two-class project, where merging leaves nothing
       to label.
    3. **clarify** — otherwise: the confusion is moderate or one-sided, which is what an
       unclear boundary in the guideline looks like; add a rule that tells a from b, with
       examples taken from the disputed items.

    Parameters
    ----------
    confusion : int array of shape (K, K)
    ambiguity : bool array of shape (K,)
    uncertain_per_item, labels_per_item : int arrays of shape (N,), optional
        Per item: labels that are an ambiguity class or flagged unsure, and all labels.
    counts : int array of shape (N, K), optional
        Per-item class counts; needed with the two above to find the items where a and b met.
    top : int
        How many pairs to return at most.

    Returns
    -------
    list of dicts, most confused first: a, b (class indices, a < b), disagreements, rate,
    p_b_given_a, p_a_given_b, items (where both were given; None without ``counts``),
    uncertain_share (NaN without the per-item arrays), action ("borderline", "merge",
    "clarify"), reason (one sentence naming the rule that fired).
    """
    c = np.asarray(confusion, dtype=np.float64)
    amb = np.asarray(ambiguity, dtype=bool)
    k = c.shape[0]
    real = np.flatnonzero(~amb)
    if real.size < 2:
        return []
    row = c.sum(axis=1)
    # Unordered pairs involving class a: agreements on a (C[a, a] / 2) plus a-vs-other pairs.
    involving = c.diagonal() / 2.0 + (row - c.diagonal())
    a_idx, b_idx = np.triu_indices(k, 1)
    keep = ~amb[a_idx] & ~amb[b_idx]
    a_idx, b_idx = a_idx[keep], b_idx[keep]
    d = c[a_idx, b_idx]
    enough = d >= max(min_disagreements, 1)
    a_idx, b_idx, d = a_idx[enough], b_idx[enough], d[enough]
    if not d.size:
        return []
    rate = _ratio(d, involving[a_idx] + involving[b_idx] - d)
    strong = rate >= min_rate
    a_idx, b_idx, d, rate = a_idx[strong], b_idx[strong], d[strong], rate[strong]
    order = np.lexsort((b_idx, a_idx, -d, -rate))[:top]
    pairs = []
    can_merge = real.size > 2
    has_ambiguity_class = bool(amb.any())
    for o in order:
        a, b = int(a_idx[o]), int(b_idx[o])
        p_ba = _scalar_ratio(c[a, b], row[a])
        p_ab = _scalar_ratio(c[b, a], row[b])
        items = None
        uncertain = float("nan")
        if counts is not None:
            cnt = np.asarray(counts)
            met = (cnt[:, a] > 0) & (cnt[:, b] > 0)
            items = int(met.sum())
            if uncertain_per_item is not None and labels_per_item is not None:
                uncertain = _scalar_ratio(
                    np.asarray(uncertain_per_item)[met].sum(), np.asarray(labels_per_item)[met].sum()
                )
        if not math.isnan(uncertain) and uncertain >= borderline_min_uncertain:
            action = "borderline"
            reason = (
                f"{uncertain:.0%} of the labels on the items where both were given are unsure or an "
                f"ambiguity class (rule: >= {borderline_min_uncertain:.0%}): the items are genuinely in "
                + (
                    "between; remind labelers to use the ambiguity class for them."
                    if has_ambiguity_class
                    else "between; add a borderline class for them."
                )
            )
        elif can_merge and min(p_ba, p_ab) >= merge_min_rate:
            action = "merge"
            reason = (
                f"Used interchangeably both ways ({p_ba:.0%} and {p_ab:.0%}; rule: both >= "
                f"{merge_min_rate:.0%}): as defined they cannot be told apart; merge or redefine them."
            )
        else:
            action = "clarify"
            reason = (
                f"Confused {p_ba:.0%} / {p_ab:.0%} of the time (below the merge rule, {merge_min_rate:.0%} both "
                "ways): add a guideline rule that tells them apart, with examples from the disputed items."
            )
        pairs.append(
            {
                "a": a,
                "b": b,
                "disagreements": int(d[o]),
                "rate": float(rate[o]),
                "p_b_given_a": p_ba,
                "p_a_given_b": p_ab,
                "items": items,
                "uncertain_share": uncertain,
                "action": action,
                "reason": reason,
            }
        )
    return pairs


def disputed_items(counts, top: int = 20, min_labels: int = 2) -> np.ndarray:
    """The items whose labels disagree most: highest label entropy first.

    Parameters
    ----------
    counts : int array of shape (N, K)
    top : int
        How many to return at most.
    min_labels : int
        Only items with at least this many labels (one label cannot disagree).

    Returns
    -------
    int array of shape (<= top,)
        Item indices; unanimous items (entropy 0) are never returned. Ties in entropy go to the
        item with more labels, then to the lower index.
    """
    c = np.asarray(counts)
    n = c.sum(axis=1)
    eligible = np.flatnonzero(n >= max(min_labels, 2))
    if not eligible.size:
        return np.zeros(0, dtype=np.int64)
    h = label_entropy(c[eligible])
    disputed = h > 1e-12
    eligible, h = eligible[disputed], h[disputed]
    order = np.lexsort((eligible, -n[eligible], -h))[:top]
    return eligible[order].astype(np.int64)


# --------------------------------------------------------------------------------------------
# Agreement by guideline version
# --------------------------------------------------------------------------------------------


def agreement_by_version(
    item_idx, labeler_idx, label, version, truth, n_items: int, n_classes: int, ambiguity, unsure
) -> list[dict]:
    """Every agreement metric computed separately on the labels made under each guideline version.

    Only labels of the same version form pairs: that is what tells whether new instructions
    raised agreement. Labels made under no guideline have version code -1 and form their own
    group.

    Parameters
    ----------
    item_idx, labeler_idx, label : int arrays of shape (L,)
    version : int array of shape (L,)
        Guideline version code of each label (any integers; -1: none).
    truth : float array of shape (N,)
    n_items, n_classes : int
    ambiguity : bool array of shape (K,)
    unsure : bool array of shape (L,)

    Returns
    -------
    list of dicts, one per version in ascending order: version, labels, labelers, items,
    paired_items (items with >= 2 labels of that version), pairs, percent_agreement,
    fleiss_kappa, krippendorff_alpha, accuracy, correct, scored, ci_low, ci_high,
    ambiguity_share, unsure_share.
    """
    item_idx, labeler_idx, label = _check_triples(item_idx, labeler_idx, label)
    version = np.asarray(version, dtype=np.int64).ravel()
    amb = np.asarray(ambiguity, dtype=bool)
    uns = np.asarray(unsure, dtype=bool).ravel()
    out = []
    for v in np.unique(version):
        sel = version == v
        it, lab = item_idx[sel], label[sel]
        counts = class_counts_from_triples(it, lab, n_items, n_classes)
        n_i = counts.sum(axis=1)
        scored, correct = _correct(it, lab, truth)
        low, high = wilson_interval(int(correct.sum()), int(scored.sum()))
        out.append(
            {
                "version": int(v),
                "labels": int(sel.sum()),
                "labelers": int(np.unique(labeler_idx[sel]).size),
                "items": int((n_i > 0).sum()),
                "paired_items": int((n_i >= 2).sum()),
                "pairs": int((n_i * (n_i - 1)).sum() // 2),
                "percent_agreement": percent_agreement_from_counts(counts),
                "fleiss_kappa": fleiss_kappa_from_counts(counts),
                "krippendorff_alpha": krippendorff_alpha_from_counts(counts),
                "correct": int(correct.sum()),
                "scored": int(scored.sum()),
                "accuracy": _scalar_ratio(correct.sum(), scored.sum()),
                "ci_low": float(low),
                "ci_high": float(high),
                "ambiguity_share": _scalar_ratio(amb[lab].sum(), lab.size),
                "unsure_share": _scalar_ratio(uns[sel].sum(), lab.size),
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# The whole report
# --------------------------------------------------------------------------------------------


def json_safe(value):
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts: NumPy scalars and
    arrays become Python numbers and lists, NaN and infinities become None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


@dataclass(frozen=True, eq=False)
class QualityInput:
    """Everything :func:`compute_report` needs, as arrays. Shapes: L labels, N items, M labelers,
    K classes.

    item_idx, labeler_idx, label : int (L,)   the current labels, one per (item, labeler)
    unsure : bool (L,)                        flagged "unsure" by the labeler
    duration_ms : float (L,)                  time spent, NaN where unknown
    version : int (L,)                        guideline version, -1 where none
    truth : float (N,)                        ground-truth class, NaN where none
    truth_source : int (N,)                   0 none, 1 gold, 2 SME resolution
    class_names : list[str] (K), ambiguity : bool (K,)
    labeler_names : list[str] (M), labeler_ids : int (M,)   database ids, for links
    item_ids : int (N,), item_names : list[str] (N)         database ids and external ids
    slices : {key: (codes int (N,) with -1 = no value, [value names])}
    """

    item_idx: np.ndarray
    labeler_idx: np.ndarray
    label: np.ndarray
    unsure: np.ndarray
    duration_ms: np.ndarray
    version: np.ndarray
    truth: np.ndarray
    truth_source: np.ndarray
    class_names: list
    ambiguity: np.ndarray
    labeler_names: list
    labeler_ids: np.ndarray
    item_ids: np.ndarray
    item_names: list
    slices: dict = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return int(self.truth.shape[0])

    @property
    def n_labelers(self) -> int:
        return len(self.labeler_names)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class ReportSettings:
    min_slice_items: int = 20  # a slice value needs this many labelled items to be shown
    max_slice_values: int = 50  # per metadata key, the largest values are kept
    top_pairs: int = 10
    top_disputed: int = 20
    random_state: int = 0  # ties in majority vote and Dawid-Skene
    dawid_skene_max_iter: int = 200  # the function's own default: S_Adult needed 145 rounds under the old start


HLP_LABELS = {
    "ground_truth": "Accuracy of labels against ground truth (gold, else SME resolution)",
    "pairwise_agreement": "Proxy: chance that two labelers of the same item agree (no ground truth yet)",
    None: "Not enough labels: no ground truth and no item labelled twice",
}


def _rows(columns: dict, names: list[str]) -> list[dict]:
    """Dict of equal-length arrays -> list of row dicts."""
    return [{k: v[i] for k, v in columns.items()} for i in range(len(names))]


def _consensus(inp: QualityInput, counts, settings: ReportSettings):
    k = inp.n_classes
    mv, mv_ties = majority_vote_from_counts(counts, random_state=settings.random_state)
    ds = dawid_skene_from_triples(
        inp.item_idx,
        inp.labeler_idx,
        inp.label,
        n_items=inp.n_items,
        n_labelers=inp.n_labelers,
        n_classes=k,
        max_iter=settings.dawid_skene_max_iter,
        random_state=settings.random_state,
    )
    labelled = counts.sum(axis=1) > 0
    gold = (inp.truth_source == 1) & labelled
    t = inp.truth[gold]

    def scored(pred):
        correct = int((pred[gold] == t).sum())
        n = int(gold.sum())
        low, high = wilson_interval(correct, n)
        return {"correct": correct, "scored": n, "accuracy": _scalar_ratio(correct, n),
                "ci_low": float(low), "ci_high": float(high)}  # fmt: skip

    # Estimated accuracy of each labeler under the model: sum_k prior_k * P(says k | true k).
    ds_accuracy = np.einsum("k,mkk->m", ds.priors, ds.confusion) if inp.n_labelers else np.zeros(0)
    counted = np.bincount(inp.labeler_idx, minlength=inp.n_labelers)
    ds_accuracy = np.where(counted > 0, ds_accuracy, np.nan)
    report = {
        "scored_against": "gold",
        "gold_items": int(gold.sum()),
        "majority_vote": {
            **scored(mv),
            "ties": int(mv_ties.sum()),
            "ties_on_gold": int(mv_ties[gold].sum()),
            "tie_break": "uniform random among the tied classes, seeded",
        },
        "dawid_skene": {**scored(ds.labels), "n_iter": ds.n_iter, "converged": ds.converged},
        "items_where_they_differ": int(((mv != ds.labels) & labelled).sum()),
    }
    return report, ds_accuracy


def _slices(inp, truth, settings):
    out = []
    for key in sorted(inp.slices):
        codes, values = inp.slices[key]
        codes = np.asarray(codes, dtype=np.int64)
        g = group_quality(inp.item_idx, inp.label, truth, codes, len(values), inp.n_classes, inp.ambiguity, inp.unsure)
        shown = np.flatnonzero(g["items"] >= settings.min_slice_items)
        dropped = int(((g["items"] > 0) & (g["items"] < settings.min_slice_items)).sum())
        if shown.size > settings.max_slice_values:
            shown = shown[np.argsort(-g["items"][shown], kind="stable")[: settings.max_slice_values]]
        shown = sorted(shown.tolist(), key=lambda i: str(values[i]))
        rows = []
        for i in shown:
            row = {name: arr[i] for name, arr in g.items()}
            rows.append({"value": values[i], **row})
        out.append(
            {
                "key": key,
                "values": rows,
                "values_below_min_items": dropped,
                "values_not_shown": max(0, int((g["items"] >= settings.min_slice_items).sum()) - len(rows)),
            }
        )
    return out


def compute_report(inp: QualityInput, settings: ReportSettings | None = None) -> dict:
    """The whole label-quality report of one single-label project, JSON-safe (NaN -> None).

    Costs O(L K + N K + M K^2) for everything but Dawid-Skene (O(L K) per EM round) and the
    per-version loop (one pass over the labels per version); a million labels take seconds.

    Top-level keys: supported, counts, agreement, hlp, labelers, classes, confusion, ambiguity,
    slices, disputed_items, guideline_versions, consensus, settings.
    """
    settings = settings or ReportSettings()
    k, n, m = inp.n_classes, inp.n_items, inp.n_labelers
    item_idx, labeler_idx, label = _check_triples(inp.item_idx, inp.labeler_idx, inp.label)
    amb = np.asarray(inp.ambiguity, dtype=bool)
    unsure = np.asarray(inp.unsure, dtype=bool)
    truth = np.asarray(inp.truth, dtype=np.float64)
    counts = class_counts_from_triples(item_idx, label, n, k)
    n_i = counts.sum(axis=1)
    labelled = n_i > 0

    # --- headline agreement -----------------------------------------------------------------
    confusion = labeler_confusion_from_counts(counts)
    agreement = {
        "krippendorff_alpha": krippendorff_alpha_from_counts(counts),
        "fleiss_kappa": fleiss_kappa_from_counts(counts),
        "percent_agreement": percent_agreement_from_counts(counts),
        "paired_items": int((n_i >= 2).sum()),
        "paired_labels": int(n_i[n_i >= 2].sum()),
        "pairs": int((n_i * (n_i - 1)).sum() // 2),
        "labelers": int(np.unique(labeler_idx).size),
        "items_with_disagreement": int(((counts > 0).sum(axis=1) >= 2).sum()),
    }

    # --- per labeler --------------------------------------------------------------------------
    acc = labeler_accuracy(item_idx, labeler_idx, label, truth, m)
    agr = labeler_agreement(item_idx, labeler_idx, label, n, m, k)
    speed = labeler_speed(labeler_idx, inp.duration_ms, m)
    n_labels = np.bincount(labeler_idx, minlength=m)
    n_amb = np.bincount(labeler_idx[amb[label]], minlength=m)
    n_uns = np.bincount(labeler_idx[unsure], minlength=m)
    consensus, ds_accuracy = _consensus(inp, counts, settings)
    labeler_columns = {
        "id": np.asarray(inp.labeler_ids),
        "name": list(inp.labeler_names),
        "labels": n_labels,
        "pairs": agr["pairs"],
        "agreement": agr["agreement"],
        "kappa": agr["kappa"],
        "scored": acc["scored"],
        "correct": acc["correct"],
        "accuracy": acc["accuracy"],
        "ci_low": acc["ci_low"],
        "ci_high": acc["ci_high"],
        "dawid_skene_accuracy": ds_accuracy,
        "timed": speed["timed"],
        "labels_per_hour": speed["labels_per_hour"],
        "median_seconds": speed["median_seconds"],
        "ambiguity_share": _ratio(n_amb, n_labels),
        "unsure_share": _ratio(n_uns, n_labels),
    }
    labelers = [r for r in _rows(labeler_columns, inp.labeler_names) if r["labels"] > 0]
    labelers.sort(key=lambda r: (-r["labels"], r["name"]))

    # --- per class ----------------------------------------------------------------------------
    ref = reference_classes(counts, truth, settings.random_state)
    by_ref = group_quality(item_idx, label, truth, ref, k, k, amb, unsure)
    given = np.bincount(label, minlength=k)
    specific = specific_agreement_from_counts(counts)
    classes = []
    for c in range(k):
        classes.append(
            {
                "index": c,
                "name": inp.class_names[c],
                "is_ambiguity": bool(amb[c]),
                "given": int(given[c]),
                "specific_agreement": specific[c],
                "reference_items": by_ref["items"][c],
                "truth_items": by_ref["truth_items"][c],
                "scored": by_ref["scored"][c],
                "correct": by_ref["correct"][c],
                "accuracy": by_ref["accuracy"][c],
                "ci_low": by_ref["ci_low"][c],
                "ci_high": by_ref["ci_high"][c],
                "labels": by_ref["labels"][c],
                "ambiguity_share": by_ref["ambiguity_share"][c],
                "unsure_share": by_ref["unsure_share"][c],
            }
        )

    # --- ambiguity ------------------------------------------------------------------------------
    uncertain_labels = amb[label] | unsure
    uncertain_per_item = np.bincount(item_idx[uncertain_labels], minlength=n)
    pairs = confused_pairs(confusion, amb, uncertain_per_item, n_i, counts, top=settings.top_pairs)
    for p in pairs:
        p["a_name"], p["b_name"] = inp.class_names[p["a"]], inp.class_names[p["b"]]
    row_sum = confusion.sum(axis=1, keepdims=True)
    ambiguity = {
        "ambiguity_classes": [inp.class_names[c] for c in np.flatnonzero(amb)],
        "ambiguity_labels": int(amb[label].sum()),
        "ambiguity_share": _scalar_ratio(amb[label].sum(), label.size),
        "unsure_labels": int(unsure.sum()),
        "unsure_share": _scalar_ratio(unsure.sum(), label.size),
        "confused_pairs": pairs,
        "rule": {
            "borderline": f"uncertain_share >= {BORDERLINE_MIN_UNCERTAIN}",
            "merge": f"p_b_given_a and p_a_given_b >= {MERGE_MIN_RATE}, more than two classes",
            "clarify": "otherwise",
            "min_disagreements": MIN_PAIR_DISAGREEMENTS,
            "min_rate": MIN_PAIR_RATE,
        },
    }

    # --- disputed items -------------------------------------------------------------------------
    chosen = disputed_items(counts, top=settings.top_disputed)
    entropy = label_entropy(counts[chosen])
    unsure_per_item = np.bincount(item_idx[unsure], minlength=n)
    disputed = []
    for idx, h in zip(chosen.tolist(), entropy.tolist(), strict=True):
        given_here = sorted(np.flatnonzero(counts[idx]).tolist(), key=lambda c: (-counts[idx, c], c))
        disputed.append(
            {
                "item_id": int(inp.item_ids[idx]),
                "external_id": inp.item_names[idx],
                "entropy_bits": h,
                "labels": int(n_i[idx]),
                "counts": [[inp.class_names[c], int(counts[idx, c])] for c in given_here],
                "unsure": int(unsure_per_item[idx]),
                "truth": inp.class_names[int(truth[idx])] if not np.isnan(truth[idx]) else None,
            }
        )

    # --- guideline versions ---------------------------------------------------------------------
    versions = agreement_by_version(item_idx, labeler_idx, label, inp.version, truth, n, k, amb, unsure)

    report = {
        "supported": True,
        "counts": {
            "annotations": int(label.size),
            "items": int(labelled.sum()),
            "labelers": agreement["labelers"],
            "classes": k,
            "truth_items": int((labelled & ~np.isnan(truth)).sum()),
            "gold_items": int((labelled & (inp.truth_source == 1)).sum()),
            "resolution_items": int((labelled & (inp.truth_source == 2)).sum()),
        },
        "agreement": agreement,
        "hlp": {
            **project_hlp(item_idx, labeler_idx, label, truth, n, m, k),
        },
        "labelers": labelers,
        "classes": classes,
        "confusion": {
            "classes": list(inp.class_names),
            "counts": confusion,
            "row_share": _ratio(confusion, np.broadcast_to(row_sum, confusion.shape)),
        },
        "ambiguity": ambiguity,
        "slices": _slices(inp, truth, settings),
        "disputed_items": disputed,
        "guideline_versions": versions,
        "consensus": consensus,
        "settings": {
            "min_slice_items": settings.min_slice_items,
            "max_slice_values": settings.max_slice_values,
            "top_pairs": settings.top_pairs,
            "top_disputed": settings.top_disputed,
            "random_state": settings.random_state,
        },
    }
    report["hlp"]["label"] = HLP_LABELS[report["hlp"]["basis"]]
    return json_safe(report)
