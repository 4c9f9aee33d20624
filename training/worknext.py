"""The "where to work next" table: per slice value or tag, how much of the data and of the model's
errors it holds, how far the model is from people on it, and a priority. Pure NumPy, no Django.

The rule (stated on the model page): **priority = gap to HLP x share of all data**, where gap =
HLP - model accuracy on the slice. A large slice far below human level comes first; a slice
where the model already matches people (gap <= 0) or a tiny one waits. Rows whose HLP is unknown
have no priority and come last. The share of the model's errors is shown beside it, as the
method asks "what fraction of errors has this tag", but it does not enter the priority: a slice
can hold many errors simply because people fail on it too (gap ~ 0).

Intervals: the model's accuracy on a slice is a Wilson interval over its evaluated items (one
prediction per item, so independent); HLP comes with the label-quality report's interval, which
accounts for several labels of one item (annotation/intervals.py).
"""

from __future__ import annotations

import numpy as np

from annotation.quality_hlp import wilson_interval

RULE = "priority = gap to HLP x share of all data (gap = HLP - model accuracy); rows without HLP come last"

# Sortable columns of a row, and whether larger values come first by default.
SORT_COLUMNS = {
    "priority": True,
    "gap": True,
    "share": True,
    "error_share": True,
    "accuracy": False,
    "hlp": True,
    "n": True,
    "slice": False,
}


def work_next(y, pred, member, data_share, hlp, hlp_low=None, hlp_high=None) -> dict[str, np.ndarray]:
    """The table's figures, one per slice.

    Parameters
    ----------
    y, pred : int (R,)
        True class and predicted class of the R evaluated items.
    member : bool (S, R)
        ``member[s, r]``: evaluated item r is in slice s (a slice value or a tag).
    data_share : float (S,)
        Share of all the project's items in the slice (computed over every item, not only the
        evaluated ones).
    hlp, hlp_low, hlp_high : float (S,)
        Human-level performance on the slice and its interval; NaN where unknown.

    Returns
    -------
    dict of arrays (S,): ``n`` (evaluated items in the slice), ``errors`` (of them wrong),
    ``error_share`` (errors / all errors of the R items; NaN when the model makes none),
    ``accuracy``, ``acc_low``, ``acc_high`` (95 % Wilson; NaN for an empty slice), ``share``,
    ``hlp``, ``hlp_low``, ``hlp_high``, ``gap`` (hlp - accuracy), ``priority`` (gap x share), and
    ``order`` (int (S,): row indices by priority, largest first, unknown last, ties in given order).
    """
    y = np.asarray(y).reshape(-1)
    pred = np.asarray(pred).reshape(-1)
    if y.shape != pred.shape:
        raise ValueError("y and pred must have the same length")
    member = np.asarray(member, dtype=bool)
    if member.ndim != 2 or member.shape[1] != y.size:
        raise ValueError(f"member must have shape (S, {y.size}), got {member.shape}")
    s = member.shape[0]
    share = np.asarray(data_share, dtype=np.float64).reshape(-1)
    hlp = np.asarray(hlp, dtype=np.float64).reshape(-1)
    low = np.full(s, np.nan) if hlp_low is None else np.asarray(hlp_low, dtype=np.float64).reshape(-1)
    high = np.full(s, np.nan) if hlp_high is None else np.asarray(hlp_high, dtype=np.float64).reshape(-1)
    if not (share.size == hlp.size == low.size == high.size == s):
        raise ValueError("member, data_share and hlp must describe the same slices")
    wrong = y != pred
    n = member.sum(axis=1)
    errors = (member & wrong).sum(axis=1)
    correct = n - errors
    total_errors = int(wrong.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(n > 0, correct / np.maximum(n, 1), np.nan)
        error_share = errors / total_errors if total_errors else np.full(s, np.nan)
    acc_low, acc_high = wilson_interval(correct, n)
    gap = hlp - accuracy
    priority = gap * share
    return {
        "n": n.astype(np.int64),
        "errors": errors.astype(np.int64),
        "error_share": np.asarray(error_share, dtype=np.float64),
        "accuracy": accuracy,
        "acc_low": np.asarray(acc_low, dtype=np.float64).reshape(s),
        "acc_high": np.asarray(acc_high, dtype=np.float64).reshape(s),
        "share": share,
        "hlp": hlp,
        "hlp_low": low,
        "hlp_high": high,
        "gap": gap,
        "priority": priority,
        "order": ranked(priority),
    }


def ranked(values, descending: bool = True) -> np.ndarray:
    """Indices of ``values`` (float (S,)) sorted (largest first when ``descending``), NaN last,
    ties in the given order."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    known = np.flatnonzero(~np.isnan(values))
    key = -values[known] if descending else values[known]
    return np.concatenate([known[np.argsort(key, kind="stable")], np.flatnonzero(np.isnan(values))]).astype(np.int64)


def sort_rows(rows: list[dict], column: str, descending: bool | None = None) -> list[dict]:
    """Stored rows (dicts) sorted by ``column`` (one of SORT_COLUMNS); None values last. Raises
    ValueError naming the column when it is not sortable."""
    if column not in SORT_COLUMNS:
        raise ValueError(f"cannot sort by {column!r}; choose one of {', '.join(SORT_COLUMNS)}")
    descending = SORT_COLUMNS[column] if descending is None else descending
    if column == "slice":
        return sorted(rows, key=lambda r: str(r.get("slice", "")).lower(), reverse=descending)
    values = [r.get(column) for r in rows]
    order = ranked([np.nan if v is None else float(v) for v in values], descending)
    return [rows[i] for i in order.tolist()]
