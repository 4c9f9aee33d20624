"""Inter-labeler agreement metrics: pure NumPy/SciPy, no Django.

Conventions (see DESIGN.md, "Pure algorithm modules"):

- ``labels`` is a float array of shape (N items, M labelers). A cell holds the class index
  0..K-1 the labeler gave the item, or NaN where that labeler did not label it. Anything else
  (a negative, fractional, infinite or too-large value) raises ``ValueError``: that is a bug in
  the caller, not a degenerate dataset.
- Every metric is computed from per-item class counts, an (N, K) integer array ``counts`` with
  ``counts[i, k]`` = how many labelers gave item i class k. Building it touches the dense array
  once; everything after that is O(N K). The ``*_from_counts`` variants take that array
  directly, and :func:`class_counts_from_triples` builds it from sparse
  (item_idx, labeler_idx, label) triples, so a caller holding annotation rows never needs the
  dense (N, M) array (S_Rel: 20,232 items x 766 labelers would be 124 MB of mostly NaN).
- A statistic that is undefined for the input (one labeler, no item labelled twice, a single
  class used, everything missing) is returned as NaN, and each docstring says when. These
  functions never raise or emit a NumPy RuntimeWarning for such input.

Pairs: "a pair" is always two *different* labelers who labelled the *same* item. An item
labelled by n labelers holds n(n-1)/2 unordered pairs, n(n-1) ordered ones.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

__all__ = [
    "class_counts",
    "class_counts_from_triples",
    "cohen_kappa",
    "fleiss_kappa",
    "fleiss_kappa_from_counts",
    "krippendorff_alpha",
    "krippendorff_alpha_from_counts",
    "label_triples",
    "labeler_confusion",
    "labeler_confusion_from_counts",
    "pairwise_cohen_kappa",
    "percent_agreement",
    "percent_agreement_from_counts",
    "specific_agreement",
    "specific_agreement_from_counts",
]


# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _check_n_classes(n_classes) -> int:
    if isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    return int(n_classes)


def _check_class_values(values: np.ndarray, n_classes: int | None) -> np.ndarray:
    """Validate non-missing label values (1-D float) and return them as int64."""
    if values.size:
        bad = ~(np.isfinite(values) & (values >= 0) & (values == np.floor(values)))
        if n_classes is not None:
            bad |= values >= n_classes
        if bad.any():
            example = values[np.argmax(bad)]
            limit = f"0..{n_classes - 1}" if n_classes is not None else "non-negative integers"
            raise ValueError(f"labels must be class indices ({limit}) or NaN; found {example!r}")
    return values.astype(np.int64)


def _as_label_matrix(labels) -> np.ndarray:
    arr = np.asarray(labels, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"labels must be a 2-D (N items, M labelers) array, got shape {arr.shape}")
    return arr


def label_triples(labels, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-missing cells of a dense label matrix as sparse triples.

    Parameters
    ----------
    labels : array of shape (N, M)
        Class index 0..K-1 per (item, labeler), NaN where not labelled.
    n_classes : int, optional
        K. When given, values >= K are rejected.

    Returns
    -------
    item_idx, labeler_idx, label : int64 arrays of shape (L,)
        One entry per non-missing cell, in row-major (item, then labeler) order; L is the number
        of labels.
    """
    arr = _as_label_matrix(labels)
    if n_classes is not None:
        n_classes = _check_n_classes(n_classes)
    item_idx, labeler_idx = np.nonzero(~np.isnan(arr))
    label = _check_class_values(arr[item_idx, labeler_idx], n_classes)
    return item_idx.astype(np.int64), labeler_idx.astype(np.int64), label


def class_counts_from_triples(item_idx, label, n_items: int, n_classes: int) -> np.ndarray:
    """Per-item class counts from sparse (item, label) pairs.

    Parameters
    ----------
    item_idx : int array of shape (L,)
        Item index 0..N-1 of each label.
    label : int array of shape (L,)
        Class index 0..K-1 of each label.
    n_items, n_classes : int
        N and K.

    Returns
    -------
    counts : int64 array of shape (N, K)
        ``counts[i, k]`` = number of labels of class k on item i. Every triple counts: if the
        same labeler appears twice on an item, de-duplicate before calling (the dense (N, M)
        form cannot hold duplicates, so the dense functions never see them).
    """
    n_classes = _check_n_classes(n_classes)
    item_idx = np.asarray(item_idx, dtype=np.int64).ravel()
    label = np.asarray(label).ravel()
    if item_idx.shape != label.shape:
        raise ValueError("item_idx and label must have the same length")
    if item_idx.size and (item_idx.min() < 0 or item_idx.max() >= n_items):
        raise ValueError(f"item_idx must lie in 0..{n_items - 1}")
    label = _check_class_values(label.astype(np.float64), n_classes)
    flat = np.bincount(item_idx * n_classes + label, minlength=n_items * n_classes)
    return flat.reshape(n_items, n_classes).astype(np.int64)


def class_counts(labels, n_classes: int | None = None) -> np.ndarray:
    """Per-item class counts of a dense label matrix.

    Parameters
    ----------
    labels : array of shape (N, M)
        Class index 0..K-1 per (item, labeler), NaN where not labelled.
    n_classes : int, optional
        K. Default: one more than the largest label present (at least 1).

    Returns
    -------
    counts : int64 array of shape (N, K)
        ``counts[i, k]`` = number of labelers who gave item i class k.
    """
    arr = _as_label_matrix(labels)
    item_idx, _, label = label_triples(arr, n_classes)
    if n_classes is None:
        n_classes = int(label.max()) + 1 if label.size else 1
    return class_counts_from_triples(item_idx, label, arr.shape[0], n_classes)


def _as_counts(counts) -> np.ndarray:
    arr = np.asarray(counts)
    if arr.ndim != 2:
        raise ValueError(f"counts must be a 2-D (N items, K classes) array, got shape {arr.shape}")
    if arr.size and (np.any(arr < 0) or np.any(arr != np.floor(arr))):
        raise ValueError("counts must be non-negative integers")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Pooled pair statistics
# --------------------------------------------------------------------------------------------


def labeler_confusion_from_counts(counts) -> np.ndarray:
    """:func:`labeler_confusion` from per-item class counts ``counts`` of shape (N, K)."""
    c = _as_counts(counts)
    # sum_i n_ik n_il counts ordered (labeler, labeler') pairs including a labeler with itself;
    # the diagonal term sum_i n_ik removes those self-pairs.
    return c.T @ c - np.diag(c.sum(axis=0))


def labeler_confusion(labels, n_classes: int) -> np.ndarray:
    """Which classes labelers confuse: counts of label pairs on the same item.

    Parameters
    ----------
    labels : array of shape (N, M)
        Class index 0..K-1 per (item, labeler), NaN where not labelled.
    n_classes : int
        K.

    Returns
    -------
    confusion : int64 array of shape (K, K)
        ``confusion[k, l]`` = number of *ordered* pairs (labeler a, labeler b), a != b, that
        labelled the same item with a giving k and b giving l. Each unordered pair of labelers on
        an item is therefore counted **twice**, once in each direction: a disagreement k/l adds 1
        to ``[k, l]`` and 1 to ``[l, k]``; an agreement on k adds 2 to ``[k, k]``. The matrix is
        symmetric, sums to sum_i n_i (n_i - 1) and its row k sums to sum_i n_ik (n_i - 1). It is
        Krippendorff's coincidence matrix before the 1/(n_i - 1) weighting.

        Normalise rows to read "when someone says k, how often does another labeler say l".
        Input with no pairs (one labeler, nothing labelled twice) gives an all-zero matrix: a
        count of zero is a valid answer, so this function never returns NaN.
    """
    return labeler_confusion_from_counts(class_counts(labels, _check_n_classes(n_classes)))


def percent_agreement_from_counts(counts) -> float:
    """:func:`percent_agreement` from per-item class counts ``counts`` of shape (N, K)."""
    c = _as_counts(counts).astype(np.float64)
    n = c.sum(axis=1)
    pairs = float((n * (n - 1)).sum())
    if pairs == 0:
        return float("nan")
    return float((c * (c - 1)).sum() / pairs)


def percent_agreement(labels) -> float:
    """Share of agreeing pairs among all pairs of labelers who labelled the same item.

    Pooled over items: sum_i sum_k n_ik (n_ik - 1) / sum_i n_i (n_i - 1), where n_ik is the
    number of labelers giving item i class k and n_i the number of labels on item i. An item
    with more labels therefore weighs more (it holds more pairs); items with fewer than 2 labels
    hold no pair and do not count. Equals ``trace(C) / C.sum()`` for ``C`` =
    :func:`labeler_confusion`, and for two labelers the share of shared items they agree on.

    Parameters
    ----------
    labels : array of shape (N, M)
        Class index per (item, labeler), NaN where not labelled.

    Returns
    -------
    float in [0, 1], or NaN when there is no pair at all (one labeler, or no item with at least
    two labels): agreement is then undefined rather than 0 or 1.
    """
    return percent_agreement_from_counts(class_counts(labels))


def specific_agreement_from_counts(counts) -> np.ndarray:
    """:func:`specific_agreement` from per-item class counts ``counts`` of shape (N, K)."""
    c = _as_counts(counts).astype(np.float64)
    n = c.sum(axis=1, keepdims=True)
    agree = (c * (c - 1)).sum(axis=0)
    involving = (c * (n - 1)).sum(axis=0)
    out = np.full(c.shape[1], np.nan)
    np.divide(agree, involving, out=out, where=involving > 0)
    return out


def specific_agreement(labels, n_classes: int) -> np.ndarray:
    """Positive specific agreement per class.

    For class k: given that one labeler of a pair said k, the probability that the other said k
    too. Generalised to any number of labelers per item (Uebersax 1982):

        ps_k = sum_i n_ik (n_ik - 1) / sum_i n_ik (n_i - 1)

    which for two labelers is the familiar 2a / (2a + b + c) (a: both said k; b, c: only one
    did), and equals ``C[k, k] / C[k].sum()`` for ``C`` = :func:`labeler_confusion`.

    Parameters
    ----------
    labels : array of shape (N, M)
        Class index 0..K-1 per (item, labeler), NaN where not labelled.
    n_classes : int
        K.

    Returns
    -------
    float array of shape (K,)
        NaN for a class that was never given on an item labelled by two or more labelers
        (no pair involves it, so its agreement is undefined).
    """
    return specific_agreement_from_counts(class_counts(labels, _check_n_classes(n_classes)))


# --------------------------------------------------------------------------------------------
# Chance-corrected statistics
# --------------------------------------------------------------------------------------------


def fleiss_kappa_from_counts(counts) -> float:
    """:func:`fleiss_kappa` from per-item class counts ``counts`` of shape (N, K)."""
    c = _as_counts(counts).astype(np.float64)
    n = c.sum(axis=1)
    keep = n >= 2
    if not keep.any():
        return float("nan")
    c, n = c[keep], n[keep]
    class_totals = c.sum(axis=0)
    if np.count_nonzero(class_totals) < 2:
        return float("nan")
    p_items = (c * (c - 1)).sum(axis=1) / (n * (n - 1))
    p_bar = p_items.mean()
    p_class = class_totals / class_totals.sum()
    p_e = float((p_class**2).sum())
    return float((p_bar - p_e) / (1.0 - p_e))


def fleiss_kappa(labels, n_classes: int) -> float:
    """Fleiss' kappa for any number of labelers per item.

    Items with fewer than 2 labels are left out (they hold no pair). For the remaining items:

        P_i  = sum_k n_ik (n_ik - 1) / (n_i (n_i - 1))     agreement on item i
        P    = mean_i P_i                                 each item weighs the same
        p_k  = sum_i n_ik / sum_i n_i                     pooled over all their labels
        P_e  = sum_k p_k^2
        kappa = (P - P_e) / (1 - P_e)

    With the same number of labels on every item this is exactly Fleiss (1971) and equals
    ``statsmodels.stats.inter_rater.fleiss_kappa`` (which requires equal counts). With varying
    counts it is the usual generalisation: each item's own pairwise agreement, averaged with
    equal weight per item, against the pooled class shares.

    Parameters
    ----------
    labels : array of shape (N, M)
        Class index 0..K-1 per (item, labeler), NaN where not labelled.
    n_classes : int
        K.

    Returns
    -------
    float, or NaN when no item has two labels (one labeler, everything missing) or when all the
    labels on those items are one class (P_e = 1: chance agreement is already perfect, kappa is
    0/0).
    """
    return fleiss_kappa_from_counts(class_counts(labels, _check_n_classes(n_classes)))


def krippendorff_alpha_from_counts(counts) -> float:
    """:func:`krippendorff_alpha` from per-item class counts ``counts`` of shape (N, K)."""
    c = _as_counts(counts).astype(np.float64)
    n_u = c.sum(axis=1)
    keep = n_u >= 2
    if not keep.any():
        return float("nan")
    c, n_u = c[keep], n_u[keep]
    # Coincidence matrix o_kl = sum_u (n_uk n_ul - [k = l] n_uk) / (n_u - 1); nominal alpha
    # needs only its diagonal and its margins n_k = sum_u n_uk (pairable values only).
    o_diag = ((c * (c - 1)) / (n_u - 1)[:, None]).sum(axis=0)
    n_k = c.sum(axis=0)
    n = n_k.sum()
    expected_disagreement = n * n - float((n_k**2).sum())
    if expected_disagreement == 0:
        return float("nan")
    observed_disagreement = n - o_diag.sum()
    return float(1.0 - (n - 1.0) * observed_disagreement / expected_disagreement)


def krippendorff_alpha(labels) -> float:
    """Krippendorff's alpha for nominal labels, missing values allowed.

    alpha = 1 - D_o / D_e with the coincidence matrix o_kl = sum_u (n_uk n_ul - [k=l] n_uk) /
    (n_u - 1) over units u with n_u >= 2 labels, n_k = sum_l o_kl, n = sum_k n_k:

        D_o = n - sum_k o_kk,   D_e = (n^2 - sum_k n_k^2) / (n - 1)

    Equals ``krippendorff.alpha(reliability_data=labels.T, level_of_measurement="nominal")``
    (note that package takes (M coders, N units)).

    Parameters
    ----------
    labels : array of shape (N, M)
        Class index per (item, labeler), NaN where not labelled.

    Returns
    -------
    float, or NaN when no item has two labels (nothing is pairable) or every pairable label is
    the same class (D_e = 0, alpha is 0/0). The ``krippendorff`` package raises or divides by
    zero there.
    """
    return krippendorff_alpha_from_counts(class_counts(labels))


def _kappa_from_confusion(confusion: np.ndarray) -> float:
    """Cohen's kappa of a (K, K) count matrix; NaN if fewer than 2 items or chance agreement 1."""
    n = float(confusion.sum())
    if n < 2:
        return float("nan")
    agree = float(np.trace(confusion))
    chance = float(confusion.sum(axis=1) @ confusion.sum(axis=0))  # n^2 * p_e, an exact integer
    denominator = n * n - chance
    if denominator == 0:
        return float("nan")
    return (n * agree - chance) / denominator


def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two labelers.

    kappa = (p_o - p_e) / (1 - p_e) with p_o the share of shared items they agree on and
    p_e = sum_k p_a(k) p_b(k) from each labeler's own class shares on those items. Equals
    ``sklearn.metrics.cohen_kappa_score`` on the items both labelled.

    Parameters
    ----------
    a, b : arrays of shape (N,)
        Class index per item, NaN where that labeler did not label it. Items where either is
        NaN are dropped.

    Returns
    -------
    float, or NaN when they share fewer than 2 items (one item says nothing about chance
    agreement) or when both used one and the same class on all shared items (p_e = 1, kappa is
    0/0; scikit-learn returns NaN there too, with a warning).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D arrays of the same length, got {a.shape} and {b.shape}")
    both = ~(np.isnan(a) | np.isnan(b))
    a_idx = _check_class_values(a[both], None)
    b_idx = _check_class_values(b[both], None)
    k = int(max(a_idx.max(initial=0), b_idx.max(initial=0))) + 1
    confusion = np.bincount(a_idx * k + b_idx, minlength=k * k).reshape(k, k)
    return _kappa_from_confusion(confusion)


def pairwise_cohen_kappa(labels) -> np.ndarray:
    """Cohen's kappa of every pair of labelers, on the items each pair shares.

    Computed for all pairs at once with sparse products of one-hot label matrices, so the cost
    grows with the number of co-labelled (item, labeler, labeler) triples, not with N x M^2.
    The result itself is a dense (M, M) array.

    Parameters
    ----------
    labels : array of shape (N, M)
        Class index per (item, labeler), NaN where not labelled.

    Returns
    -------
    kappa : float array of shape (M, M)
        Symmetric; ``kappa[j, l] == cohen_kappa(labels[:, j], labels[:, l])``. NaN where the two
        share fewer than 2 items or kappa is undefined (both used one and the same class
        throughout). The diagonal is each labeler against themself: 1.0, or NaN if that labeler
        labelled fewer than 2 items or used a single class. Mask it before averaging "agreement
        with the others".
    """
    arr = _as_label_matrix(labels)
    n_items, n_labelers = arr.shape
    item_idx, labeler_idx, label = label_triples(arr)
    n_classes = int(label.max()) + 1 if label.size else 1

    def one_hot(mask):
        ones = np.ones(int(mask.sum()))
        return sparse.csr_matrix((ones, (item_idx[mask], labeler_idx[mask])), shape=(n_items, n_labelers))

    observed = one_hot(np.ones(label.shape, dtype=bool))  # (N, M): 1 where labelled
    shared = (observed.T @ observed).toarray()  # (M, M): items both labelled
    agree = np.zeros((n_labelers, n_labelers))
    chance = np.zeros((n_labelers, n_labelers))  # n_jl^2 * p_e(j, l)
    for k in range(n_classes):
        x_k = one_hot(label == k)  # (N, M): 1 where the labeler said k
        agree += (x_k.T @ x_k).toarray()
        # said_k[j, l]: items labelled by both on which j said k.
        said_k = (x_k.T @ observed).toarray()
        chance += said_k * said_k.T

    denominator = shared * shared - chance
    defined = (shared >= 2) & (denominator != 0)
    kappa = np.full((n_labelers, n_labelers), np.nan)
    np.divide(shared * agree - chance, denominator, out=kappa, where=defined)
    return kappa
