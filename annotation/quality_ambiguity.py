"""Ambiguity analysis: the class pairs labelers confuse (with a suggested action: merge, write a
borderline rule, or review) and the most disputed items. Pure NumPy; conventions in
:mod:`annotation.quality`."""

import math

import numpy as np

from .quality_hlp import _ratio, _scalar_ratio, label_entropy

# Thresholds of the suggested action for a confused class pair (see :func:`confused_pairs`).
MERGE_MIN_RATE = 0.3
BORDERLINE_MIN_UNCERTAIN = 0.25
MIN_PAIR_DISAGREEMENTS = 3
MIN_PAIR_RATE = 0.05


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
