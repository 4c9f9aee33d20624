"""Which label each item trains on: the snapshot's label-source policy. Pure NumPy, no Django.

Conventions (those of :mod:`annotation.agreement`): classes are indices 0..K-1 of the project's
class list, "no label" is NaN in float arrays and -1 in int arrays; ``ambiguity`` is a bool array
of shape (K,) that is True for the "can't tell / borderline" classes.

Precedence, per item: the SME's current **resolution**, else the **gold** label, else the
**consensus** of the labelers when its confidence is at least ``min_confidence``. The first
source that has something to say decides: when it says "ambiguous" (an SME marked the item
ambiguous, or the label is an ambiguity class) the item is left out of training, and a lower
source is not consulted: the higher authority has said the item cannot be told. With
``keep_ambiguity`` those items are kept with their ambiguity class as a class of its own (an
SME's "ambiguous" with no class becomes ``fallback_ambiguity_class``).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

__all__ = [
    "LEFT_OUT",
    "SOURCE_NAMES",
    "STATUS_NAMES",
    "content_hash",
    "select_labels",
]

# Status codes of :func:`select_labels`: the first three keep the item, the others leave it out.
RESOLUTION, GOLD, CONSENSUS, AMBIGUOUS, LOW_CONFIDENCE, UNLABELLED = range(6)
STATUS_NAMES = ("resolution", "gold", "consensus", "ambiguous", "low_confidence", "unlabelled")
SOURCE_NAMES = STATUS_NAMES[:3]
LEFT_OUT = STATUS_NAMES[3:]


def _labels(values, n, name) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return arr


def select_labels(
    resolution,
    resolution_ambiguous,
    gold,
    consensus,
    consensus_confidence,
    ambiguity,
    *,
    min_confidence: float,
    keep_ambiguity: bool = False,
    fallback_ambiguity_class: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """The training label of each item and where it came from.

    Parameters
    ----------
    resolution : float array (N,)
        Class of the item's current SME resolution, NaN where there is none (or it names no
        single class).
    resolution_ambiguous : bool array (N,)
        True where the current resolution marks the item ambiguous.
    gold : float array (N,)
        Gold class, NaN where none.
    consensus : float array (N,)
        Consensus class of the labelers (majority vote or Dawid-Skene), NaN where unlabelled.
    consensus_confidence : float array (N,)
        Its confidence in [0, 1] (vote share or posterior), NaN where unlabelled.
    ambiguity : bool array (K,)
    min_confidence : float
        Consensus is used when its confidence is at least this.
    keep_ambiguity : bool
        Keep ambiguous items, labelled with their ambiguity class.
    fallback_ambiguity_class : int
        The class for an SME "ambiguous" that names no ambiguity class, when ``keep_ambiguity``;
        -1 leaves such items out even then.

    Returns
    -------
    label : int64 array (N,)
        Class index, -1 where the item is left out.
    status : int8 array (N,)
        Index into :data:`STATUS_NAMES`: resolution, gold, consensus (kept) or ambiguous,
        low_confidence, unlabelled (left out).
    """
    amb = np.asarray(ambiguity, dtype=bool).reshape(-1)
    k = amb.size
    res = np.asarray(resolution, dtype=np.float64).reshape(-1)
    n = res.size
    res_amb = np.asarray(resolution_ambiguous, dtype=bool).reshape(-1)
    if res_amb.shape != (n,):
        raise ValueError(f"resolution_ambiguous must have shape ({n},), got {res_amb.shape}")
    gold = _labels(gold, n, "gold")
    cons = _labels(consensus, n, "consensus")
    conf = _labels(consensus_confidence, n, "consensus_confidence")
    for name, arr in (("resolution", res), ("gold", gold), ("consensus", cons)):
        given = arr[~np.isnan(arr)]
        if given.size and ((given < 0) | (given >= k) | (given != np.floor(given))).any():
            raise ValueError(f"{name} must hold class indices 0..{k - 1} or NaN")
    if not -1 <= fallback_ambiguity_class < k:
        raise ValueError(f"fallback_ambiguity_class must be -1 or a class index below {k}")

    # The deciding source of each item, in precedence order.
    has_res = ~np.isnan(res) | res_amb
    has_gold = ~has_res & ~np.isnan(gold)
    has_cons = ~has_res & ~has_gold & ~np.isnan(cons)
    chosen = np.where(has_res, res, np.where(has_gold, gold, np.where(has_cons, cons, np.nan)))
    status = np.full(n, UNLABELLED, dtype=np.int8)
    status[has_res] = RESOLUTION
    status[has_gold] = GOLD
    status[has_cons] = CONSENSUS
    # An unconfident consensus decides nothing (a NaN confidence never reaches the threshold).
    with np.errstate(invalid="ignore"):
        status[has_cons & ~(conf >= min_confidence)] = LOW_CONFIDENCE

    label = np.where(np.isnan(chosen), -1, np.nan_to_num(chosen, nan=-1)).astype(np.int64)
    kept = status < AMBIGUOUS
    ambiguity_class = np.zeros(n, dtype=bool)
    named = kept & (label >= 0)
    ambiguity_class[named] = amb[label[named]]
    # An SME's "ambiguous" keeps its class only when that is an ambiguity class.
    sme_ambiguous = res_amb & ~ambiguity_class
    label[sme_ambiguous] = fallback_ambiguity_class
    ambiguous = kept & (res_amb | ambiguity_class)
    if keep_ambiguity:
        ambiguous &= label < 0  # kept as their own class, unless no class can hold them
    status[ambiguous] = AMBIGUOUS
    label[status >= AMBIGUOUS] = -1
    return label, status


def content_hash(item_ids, class_ids, splits, vocabulary) -> str:
    """SHA-256 of a snapshot's content: its rows and its class list, in a canonical order.

    Parameters
    ----------
    item_ids : int array (R,)
        Database ids of the snapshot's items.
    class_ids : int array (R,)
        Database id of each item's training class.
    splits : sequence of str (R,)
        Each item's split.
    vocabulary : sequence of int (K,)
        The snapshot's classes (database ids) in index order.

    The same rows in any order give the same hash; any change of an item's class or split, an
    item more or less, or another class list gives another one.
    """
    items = np.asarray(item_ids, dtype=np.int64).reshape(-1)
    classes = np.asarray(class_ids, dtype=np.int64).reshape(-1)
    splits = [str(s) for s in splits]
    if not (items.size == classes.size == len(splits)):
        raise ValueError("item_ids, class_ids and splits must have the same length")
    if np.unique(items).size != items.size:
        raise ValueError("an item appears twice")
    order = np.argsort(items, kind="stable")
    rows = [[int(items[i]), int(classes[i]), splits[i]] for i in order.tolist()]
    payload = json.dumps({"classes": [int(c) for c in vocabulary], "rows": rows}, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()
