"""Paired comparison of two classifiers on the same evaluation items: McNemar's test.

Two models scored on the same N items are paired: what matters is only the items where exactly
one of them is right (the *discordant* pairs, b and c below). McNemar's test asks whether b and c
differ by more than chance. The choice between its two forms is made here, once:

- fewer than ``EXACT_BELOW`` (25) discordant pairs: the **exact** binomial test (two-sided, b
  ~ Binomial(b + c, 1/2)), as the chi-square approximation is poor there;
- otherwise the **chi-square** statistic with continuity correction, (|b - c| - 1)^2 / (b + c),
  on one degree of freedom.

Both equal ``statsmodels.stats.contingency_tables.mcnemar`` (``exact=True``, and ``exact=False,
correction=True``) — tests/unit/test_compare.py proves it. NumPy and SciPy only; no Django.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ALPHA", "EXACT_BELOW", "align", "contingency", "curve_summary", "mcnemar", "paired_comparison"]

EXACT_BELOW = 25  # discordant pairs below which the exact binomial test is used
ALPHA = 0.05  # "beyond noise": p below this


def align(ids_a, ids_b) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ia, ib) of the item ids both arrays hold, so ``ids_a[ia] == ids_b[ib]``,
    in increasing id order. Ids within one array are unique."""
    _, ia, ib = np.intersect1d(np.asarray(ids_a), np.asarray(ids_b), assume_unique=True, return_indices=True)
    return ia, ib


def contingency(a_correct, b_correct) -> np.ndarray:
    """The 2 x 2 table of two boolean arrays (N,): [[both right, only A right], [only B right,
    both wrong]], ints."""
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} and {b.shape}")
    return np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]], dtype=np.int64)


def mcnemar(table, exact: bool | None = None) -> dict:
    """McNemar's test of a 2 x 2 paired table. ``exact`` None chooses by the count of discordant
    pairs (see the module docstring). Returns {statistic, pvalue, method, discordant}; with no
    discordant pair at all the models never disagree and p is 1."""
    table = np.asarray(table, dtype=np.int64)
    if table.shape != (2, 2) or (table < 0).any():
        raise ValueError("McNemar's test takes a 2 x 2 table of counts")
    from scipy import stats

    b, c = int(table[0, 1]), int(table[1, 0])
    n = b + c
    if exact is None:
        exact = n < EXACT_BELOW
    if exact:
        statistic = float(min(b, c))
        pvalue = 1.0 if n == 0 else float(min(1.0, 2.0 * stats.binom.cdf(min(b, c), n, 0.5)))
        method = "exact binomial"
    elif n == 0:
        statistic, pvalue, method = 0.0, 1.0, "chi-square, continuity-corrected"
    else:
        statistic = float((abs(b - c) - 1) ** 2 / n)
        pvalue = float(stats.chi2.sf(statistic, 1))
        method = "chi-square, continuity-corrected"
    return {"statistic": statistic, "pvalue": pvalue, "method": method, "discordant": n}


def paired_comparison(a_correct, b_correct, alpha: float = ALPHA) -> dict:
    """Accuracy of A and B on the same items, B - A, McNemar's test, and the verdict.

    ``better`` is "b" or "a" when that model is right more often *and* p < ``alpha``, else None
    (a difference within the noise)."""
    table = contingency(a_correct, b_correct)
    n = int(table.sum())
    acc_a = float((table[0, 0] + table[0, 1]) / n) if n else None
    acc_b = float((table[0, 0] + table[1, 0]) / n) if n else None
    test = mcnemar(table)
    beyond = bool(n and test["pvalue"] < alpha)
    better = None
    if beyond and table[1, 0] != table[0, 1]:
        better = "b" if table[1, 0] > table[0, 1] else "a"
    return {
        "n": n,
        "accuracy_a": acc_a,
        "accuracy_b": acc_b,
        "difference": None if n == 0 else acc_b - acc_a,
        "table": table.tolist(),
        **test,
        "alpha": alpha,
        "beyond_noise": beyond,
        "better": better,
    }


def curve_summary(history: dict | None) -> dict | None:
    """What a learning history says at a glance: the point of lowest validation loss, the final
    validation loss, and whether it rose after its minimum (over-fitting past the best point).
    None without a validation series."""
    if not history:
        return None
    val = [v for v in (history.get("series") or {}).get("val_loss") or []]
    finite = [(v, i) for i, v in enumerate(val) if v is not None]
    if not finite:
        return None
    best_value, best_index = min(finite)
    last_value, last_index = finite[-1][0], finite[-1][1]
    points = history.get("points") or []
    return {
        "best_index": best_index,
        "best_x": points[best_index] if best_index < len(points) else None,
        "best_val_loss": best_value,
        "final_val_loss": last_value,
        "rise_after_best": last_value - best_value,
        "rose_after_best": last_index > best_index and last_value > best_value,
    }
