"""Intervals for HLP that know several labels of one item are not independent. Pure NumPy.

HLP per class or per slice is a share of *labels* that match the truth, but the labels come in
clusters: the three labels of a hard item tend to be wrong together, those of an easy one right
together. A Wilson interval over the labels counts 300 labels on 100 items as 300 independent
trials, and is too narrow by up to a factor sqrt(3).

Method: a **design-effect-corrected Wilson interval** (Kish's effective sample size). For one
group with labels l = 1..n on items c = 1..C, s_c of the m_c labels of item c correct and
p = sum s_c / n:

    design effect  d   = sum_c (s_c - p m_c)^2 / (n p (1 - p))     (>= 1, see below)
    effective size n_e = n / d
    interval           = Wilson(successes p n_e, trials n_e)

``sum_c (s_c - p m_c)^2 / n^2`` is the usual cluster-robust (linearised ratio) variance of p, so d
is how much the clustering inflates the binomial variance. Two cases pin it down: one label per
item gives d = 1 exactly (the plain Wilson interval); items whose labels are all right or all
wrong give d = n / C (the interval of C independent items, one trial each).

Why this and not a cluster bootstrap: it is exact, costs O(L), has no seed (the same labels always
give the same interval, in keeping with :mod:`annotation.consensus`) and keeps Wilson's good
behaviour near 0 and 1 and for small n. tests/unit/test_intervals.py checks it against a seeded
cluster bootstrap and checks its coverage by simulation.

Two conventions are conservative on purpose:

- d is floored at 1: a negative within-item correlation is implausible for "did this label match
  the truth" and, on a small group, mostly noise; with the floor the interval is never narrower
  than the independent one it replaces.
- when p is 0 or 1 the correlation cannot be estimated (0 / 0); the labels then count as C
  independent items (d = n / C), the worst case.

:func:`hlp_by_truth_source` scores labels against gold and against SME resolutions separately
(resolutions exist mostly on disputed items, so they bias HLP low) and never scores an SME
against a resolution of their own.
"""

from __future__ import annotations

import numpy as np

__all__ = ["INTERVAL_METHOD", "WILSON_Z_95", "clustered_wilson_interval", "hlp_by_truth_source"]

WILSON_Z_95 = 1.959963984540054  # the 97.5 % quantile of the standard normal distribution
INTERVAL_METHOD = "95 % Wilson interval, widened for several labels per item (design effect, Kish)"


def _wilson(successes: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for float successes / trials (G,); NaN where n == 0."""
    low, high = np.full(n.shape, np.nan), np.full(n.shape, np.nan)
    ok = n > 0
    nn, p = n[ok], successes[ok] / n[ok]
    z2 = z * z
    centre = (p + z2 / (2 * nn)) / (1 + z2 / nn)
    half = z / (1 + z2 / nn) * np.sqrt(np.maximum(p * (1 - p) / nn + z2 / (4 * nn * nn), 0.0))
    low[ok], high[ok] = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    return low, high


def clustered_wilson_interval(success, cluster, group=None, n_groups: int | None = None, z: float = WILSON_Z_95):
    """Per-group share of successes with an interval that treats each cluster as correlated.

    Parameters
    ----------
    success : bool or 0/1 array of shape (L,)
        One entry per observation (a label): did it match the truth.
    cluster : int array of shape (L,)
        The cluster (item) of each observation; any non-negative integers.
    group : int array of shape (L,) or None
        Group 0..G-1 of each observation (a class, a slice value), -1 for none. None: one group.
        Clusters are counted within a group, so an item split across groups is one cluster in each.
    n_groups : int or None
        G (default: ``group.max() + 1``, or 1 without ``group``).
    z : float
        Normal quantile (1.96 for 95 %).

    Returns
    -------
    dict of arrays of shape (G,)
        ``successes`` and ``n`` (observations), ``clusters``, ``estimate`` (successes / n, NaN
        where n == 0), ``design_effect`` (>= 1), ``effective_n`` (n / design_effect), ``ci_low``,
        ``ci_high`` (NaN where n == 0).
    """
    s = np.asarray(success).ravel()
    if s.dtype != bool and s.size and not np.isin(s, (0, 1)).all():
        raise ValueError("success must hold booleans or 0/1")
    s = s.astype(np.float64)
    c = np.asarray(cluster, dtype=np.int64).ravel()
    g = np.zeros(s.size, dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64).ravel()
    if c.shape != s.shape or g.shape != s.shape:
        raise ValueError("success, cluster and group must have the same length")
    if c.size and c.min() < 0:
        raise ValueError("cluster must hold non-negative integers")
    n_g = int(n_groups) if n_groups is not None else (int(g.max()) + 1 if g.size else 1)
    if g.size and g.max() >= n_g:
        raise ValueError(f"group must lie in -1..{n_g - 1}")
    keep = g >= 0
    s, c, g = s[keep], c[keep], g[keep]

    # One entry per (group, cluster) pair present: its successes s_c and observations m_c.
    width = int(c.max()) + 1 if c.size else 1
    pair, inverse = np.unique(g * width + c, return_inverse=True)
    s_c = np.bincount(inverse, weights=s, minlength=pair.size)
    m_c = np.bincount(inverse, minlength=pair.size).astype(np.float64)
    pair_group = pair // width

    successes = np.bincount(pair_group, weights=s_c, minlength=n_g)
    n = np.bincount(pair_group, weights=m_c, minlength=n_g)
    clusters = np.bincount(pair_group, minlength=n_g)
    estimate = np.divide(successes, n, out=np.full(n_g, np.nan), where=n > 0)
    p_c = np.nan_to_num(estimate)[pair_group]
    spread = np.bincount(pair_group, weights=(s_c - p_c * m_c) ** 2, minlength=n_g)
    binomial = n * np.nan_to_num(estimate) * (1 - np.nan_to_num(estimate))
    worst = np.divide(n, clusters, out=np.ones(n_g), where=clusters > 0)  # all labels of an item agree
    design = np.where(binomial > 0, spread / np.where(binomial > 0, binomial, 1.0), worst)
    design = np.maximum(design, 1.0)
    effective = n / design
    low, high = _wilson(np.nan_to_num(estimate) * effective, effective, z)
    return {
        "successes": successes.astype(np.int64),
        "n": n.astype(np.int64),
        "clusters": clusters.astype(np.int64),
        "estimate": estimate,
        "design_effect": design,
        "effective_n": effective,
        "ci_low": low,
        "ci_high": high,
    }


def _scored(item_idx, label, truth, keep, group_of_item, n_groups, z):
    """Labels scored against ``truth`` (N,) where it exists and ``keep`` (L,) holds, per group."""
    t = truth[item_idx]
    scored = ~np.isnan(t) & keep
    group = np.zeros(item_idx.size, dtype=np.int64) if group_of_item is None else group_of_item[item_idx]
    out = clustered_wilson_interval(label[scored] == t[scored], item_idx[scored], group[scored], n_groups, z)
    return {
        "correct": out["successes"],
        "scored_labels": out["n"],
        "scored_items": out["clusters"],
        "accuracy": out["estimate"],
        "design_effect": out["design_effect"],
        "ci_low": out["ci_low"],
        "ci_high": out["ci_high"],
    }


def hlp_by_truth_source(
    item_idx,
    labeler_idx,
    label,
    gold,
    resolution,
    resolver,
    group=None,
    n_groups: int | None = None,
    *,
    by_truth_class: int | None = None,
    z: float = WILSON_Z_95,
) -> dict:
    """HLP (share of labels that match the truth) against gold and against SME resolutions, apart.

    Resolutions are given mostly on disputed items, so HLP against them runs low; gold is drawn
    independently of disagreement. Mixing the two hides which one a figure rests on. Each source
    scores every labelled item that has it (an item with both counts in both). A label by the
    SME who gave the item's resolution is not scored against that resolution (it would be scored
    against itself); it is still scored against gold.

    Parameters
    ----------
    item_idx, labeler_idx, label : int arrays of shape (L,)
        The current labels (one per item and labeler).
    gold, resolution : float arrays of shape (N,)
        Class index, NaN where the item has none.
    resolver : int array of shape (N,)
        Labeler index (the same numbering as ``labeler_idx``) of the SME who gave the item's
        resolution, -1 where there is none or the SME never labels.
    group : int array of shape (N,) or None
        Group of each item (a slice value), -1 for none; None: one group (the project).
    n_groups : int or None
        G, with ``group``.
    by_truth_class : int or None
        K: group each source's scored items by their truth class under that source (per-class
        HLP) instead of ``group``.
    z : float
        Normal quantile.

    Returns
    -------
    dict
        ``{"gold": {...}, "resolution": {...}, "interval_method": str}``; each source maps
        ``correct``, ``scored_labels``, ``scored_items``, ``accuracy``, ``design_effect``,
        ``ci_low``, ``ci_high`` to arrays of shape (G,) (intervals from
        :func:`clustered_wilson_interval`); ``resolution`` adds ``own_labels_excluded`` (G,).
    """
    item_idx = np.asarray(item_idx, dtype=np.int64).ravel()
    labeler_idx = np.asarray(labeler_idx, dtype=np.int64).ravel()
    label = np.asarray(label, dtype=np.int64).ravel()
    if not (item_idx.shape == labeler_idx.shape == label.shape):
        raise ValueError("item_idx, labeler_idx and label must have the same length")
    gold = np.asarray(gold, dtype=np.float64).ravel()
    resolution = np.asarray(resolution, dtype=np.float64).ravel()
    resolver = np.asarray(resolver, dtype=np.int64).ravel()
    n_items = gold.size
    if resolution.shape != (n_items,) or resolver.shape != (n_items,):
        raise ValueError("gold, resolution and resolver must have one entry per item")
    if item_idx.size and (item_idx.min() < 0 or item_idx.max() >= n_items):
        raise ValueError(f"item_idx must lie in 0..{n_items - 1}")
    if group is not None:
        group = np.asarray(group, dtype=np.int64).ravel()
        if group.shape != (n_items,):
            raise ValueError("group must have one entry per item")
        if n_groups is None:
            raise ValueError("n_groups is required with group")
    else:
        n_groups = 1

    def grouping(truth):
        if by_truth_class is None:
            return group, n_groups
        return np.where(np.isnan(truth), -1, np.nan_to_num(truth, nan=-1)).astype(np.int64), int(by_truth_class)

    everyone = np.ones(item_idx.size, dtype=bool)
    own = labeler_idx == resolver[item_idx]  # resolver -1 never equals a labeler index
    g_gold, n_gold = grouping(gold)
    g_res, n_res = grouping(resolution)
    against_gold = _scored(item_idx, label, gold, everyone, g_gold, n_gold, z)
    against_resolution = _scored(item_idx, label, resolution, ~own, g_res, n_res, z)
    excluded = own & ~np.isnan(resolution[item_idx])
    eg = np.zeros(int(excluded.sum()), dtype=np.int64) if g_res is None else g_res[item_idx[excluded]]
    against_resolution["own_labels_excluded"] = np.bincount(eg[eg >= 0], minlength=n_res)
    return {"gold": against_gold, "resolution": against_resolution, "interval_method": INTERVAL_METHOD}
