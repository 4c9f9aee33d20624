"""Evaluation of a classifier on labelled items. Pure NumPy/SciPy, no Django.

Conventions: ``y`` is an int array of shape (N,) with class indices 0..K-1; ``proba`` is a float
array of shape (N, K) whose rows sum to 1; predictions are the row-wise argmax (the lowest index
on a tie, as ``numpy.argmax``). A figure that is undefined for the input (no item of a class, no
negative for a one-vs-rest AUC, an empty calibration bin) is NaN; :func:`json_safe` turns NaN
into ``None`` for storage. Every function is checked against scikit-learn in
``tests/unit/test_training_metrics.py``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from annotation.quality import json_safe  # one definition, re-exported for training code

__all__ = [
    "accuracy",
    "confidently_wrong",
    "confusion_matrix",
    "evaluate",
    "expected_calibration_error",
    "gap_to_hlp",
    "json_safe",
    "most_uncertain",
    "per_class_prf",
    "per_slice_accuracy",
    "per_slice_ece",
    "reliability_bins",
    "roc_auc_ovr",
]


def _check(y, proba=None, n_classes=None):
    y = np.asarray(y).reshape(-1)
    if y.size and (y.dtype.kind not in "iu" and not np.all(y == np.floor(y))):
        raise ValueError("y must hold class indices")
    y = y.astype(np.int64)
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        if proba.ndim != 2 or proba.shape[0] != y.size:
            raise ValueError(f"proba must have shape ({y.size}, K), got {proba.shape}")
        n_classes = proba.shape[1] if n_classes is None else n_classes
    if n_classes is None:
        n_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y must hold class indices 0..{n_classes - 1}")
    return y, proba, int(n_classes)


def _ratio(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def accuracy(y, pred) -> float:
    """Share of items with ``pred == y``; NaN for no item."""
    y = np.asarray(y).reshape(-1)
    pred = np.asarray(pred).reshape(-1)
    return float((y == pred).mean()) if y.size else float("nan")


def confusion_matrix(y, pred, n_classes: int) -> np.ndarray:
    """int64 (K, K): ``[i, j]`` = items of true class i predicted as j."""
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    pred = np.asarray(pred, dtype=np.int64).reshape(-1)
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_prf(confusion) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a (K, K) confusion matrix.

    Returns float arrays (K,) ``precision``, ``recall``, ``f1`` (NaN where undefined: nothing
    predicted as the class, no item of it, or both zero) and int ``support``. Equals
    ``sklearn.metrics.precision_recall_fscore_support(..., zero_division=np.nan)``.
    """
    c = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(c)
    predicted = c.sum(axis=0)
    support = c.sum(axis=1)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * tp, predicted + support)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def _binary_auc(positive, score) -> float:
    """ROC AUC of ``score`` for bool ``positive`` (Mann-Whitney U with average ranks for ties)."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc_ovr(y, proba) -> tuple[np.ndarray, float]:
    """One-vs-rest ROC AUC of each class and their unweighted mean.

    Returns (float (K,) per class, NaN where the class has no item or every item is of it;
    macro mean over the defined ones, NaN if none). With every class present the macro value
    equals ``sklearn.metrics.roc_auc_score(y, proba, multi_class="ovr", average="macro")``.
    """
    y, proba, k = _check(y, proba)
    per_class = np.array([_binary_auc(y == c, proba[:, c]) for c in range(k)])
    defined = ~np.isnan(per_class)
    return per_class, float(per_class[defined].mean()) if defined.any() else float("nan")


def reliability_bins(y, proba, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Top-label reliability diagram: items binned by their confidence (max probability).

    Bins are ``n_bins`` equal-width intervals of [0, 1]; bin b holds confidences in
    (b / n_bins, (b + 1) / n_bins], the first also 0 (scikit-learn's ``calibration_curve``
    binning). Returns arrays (n_bins,): ``lower``, ``upper``, ``count``, ``confidence`` (mean
    confidence in the bin) and ``accuracy`` (share correct), NaN for an empty bin.
    """
    y, proba, _ = _check(y, proba)
    confidence = proba.max(axis=1) if y.size else np.zeros(0)
    correct = (proba.argmax(axis=1) == y) if y.size else np.zeros(0, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(which, minlength=n_bins)
    return {
        "lower": edges[:-1],
        "upper": edges[1:],
        "count": count,
        "confidence": _ratio(np.bincount(which, weights=confidence, minlength=n_bins), count),
        "accuracy": _ratio(np.bincount(which, weights=correct.astype(np.float64), minlength=n_bins), count),
    }


def expected_calibration_error(bins) -> float:
    """ECE = sum over bins of (share of items in the bin) x |accuracy - mean confidence|."""
    count = np.asarray(bins["count"], dtype=np.float64)
    total = count.sum()
    if not total:
        return float("nan")
    used = count > 0
    gap = np.abs(np.asarray(bins["accuracy"])[used] - np.asarray(bins["confidence"])[used])
    return float((count[used] / total * gap).sum())


def per_slice_accuracy(y, pred, codes, n_values: int) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy per slice value.

    Parameters
    ----------
    y, pred : int (N,)
    codes : int (N,)
        Slice value index 0..V-1 of each item, -1 where the item has no value.

    Returns
    -------
    count : int (V,), accuracy : float (V,) (NaN where the slice has no item)
    """
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    has = codes >= 0
    correct = (np.asarray(y) == np.asarray(pred)).astype(np.float64)
    count = np.bincount(codes[has], minlength=n_values)
    right = np.bincount(codes[has], weights=correct[has], minlength=n_values)
    return count, _ratio(right, count)


def per_slice_ece(y, proba, codes, n_values: int, n_bins: int = 10) -> np.ndarray:
    """Calibration by slice: the expected calibration error of the items of each slice value,
    float (V,) (NaN where the slice has no item); same binning as :func:`reliability_bins`.

    ``codes`` : int (N,), the slice value index 0..V-1 of each item, -1 for none. A tag is a
    slice with one value, so a per-tag ECE is a one-value call."""
    y, proba, _ = _check(y, proba)
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    out = np.full(n_values, np.nan)
    for v in range(n_values):
        rows = np.flatnonzero(codes == v)
        if rows.size:
            out[v] = expected_calibration_error(reliability_bins(y[rows], proba[rows], n_bins))
    return out


def gap_to_hlp(names, model_accuracy, hlp, share) -> list[dict]:
    """The gap-to-HLP table: where the model is furthest from people, weighted by how much data.

    Parameters
    ----------
    names : sequence (S,) of slice names, e.g. "ink=light"
    model_accuracy, hlp, share : float (S,)
        The model's accuracy on the slice, human-level performance on it (NaN when unknown) and
        the slice's share of the data.

    Returns
    -------
    list of dicts {slice, model_accuracy, hlp, gap, share, priority} with gap = hlp -
    model_accuracy and priority = gap x share, sorted by priority (largest first); rows whose
    gap is unknown come last, in the given order.
    """
    acc = np.asarray(model_accuracy, dtype=np.float64).reshape(-1)
    hlp = np.asarray(hlp, dtype=np.float64).reshape(-1)
    share = np.asarray(share, dtype=np.float64).reshape(-1)
    if not (len(names) == acc.size == hlp.size == share.size):
        raise ValueError("names, model_accuracy, hlp and share must have the same length")
    gap = hlp - acc
    priority = gap * share
    known = ~np.isnan(priority)
    order = np.concatenate([np.flatnonzero(known)[np.argsort(-priority[known], kind="stable")], np.flatnonzero(~known)])
    return [
        {
            "slice": names[i],
            "model_accuracy": float(acc[i]),
            "hlp": float(hlp[i]),
            "gap": float(gap[i]),
            "share": float(share[i]),
            "priority": float(priority[i]),
        }
        for i in order.tolist()
    ]


def confidently_wrong(y, proba, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k wrong predictions the model was surest of: indices into y and their confidence,
    highest confidence first (ties: lower index first). On training data these are often
    labels that conflict with the rest of the data."""
    y, proba, _ = _check(y, proba)
    if not y.size:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    confidence = proba.max(axis=1)
    wrong = np.flatnonzero(proba.argmax(axis=1) != y)
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:k]
    return order.astype(np.int64), confidence[order]


def most_uncertain(proba, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k items with the smallest margin between the two most probable classes: indices and
    margins, smallest first (ties: lower index first)."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape[0] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if proba.shape[1] < 2:
        margin = np.ones(proba.shape[0])
    else:
        top2 = -np.partition(-proba, 1, axis=1)[:, :2]
        margin = top2[:, 0] - top2[:, 1]
    order = np.argsort(margin, kind="stable")[:k]
    return order.astype(np.int64), margin[order]


def evaluate(y, proba, *, n_bins: int = 10) -> dict:
    """Every headline figure of one evaluation, as arrays and floats (see :func:`json_safe`).

    Keys: n, accuracy, confusion (K, K), precision, recall, f1, support (K,), macro_f1,
    roc_auc (K,), roc_auc_macro, calibration (reliability bins), ece.
    """
    y, proba, k = _check(y, proba)
    pred = proba.argmax(axis=1) if y.size else np.zeros(0, dtype=np.int64)
    confusion = confusion_matrix(y, pred, k)
    prf = per_class_prf(confusion)
    present = (prf["support"] > 0) | (confusion.sum(axis=0) > 0)  # scikit-learn's macro: seen or predicted
    f1 = prf["f1"][present]
    auc, auc_macro = roc_auc_ovr(y, proba)
    bins = reliability_bins(y, proba, n_bins)
    return {
        "n": int(y.size),
        "accuracy": accuracy(y, pred),
        "confusion": confusion,
        **prf,
        "macro_f1": float(f1.mean()) if f1.size else float("nan"),
        "roc_auc": auc,
        "roc_auc_macro": auc_macro,
        "calibration": bins,
        "ece": expected_calibration_error(bins),
    }
