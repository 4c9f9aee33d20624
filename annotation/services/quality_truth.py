"""The truth a quality report scores labels against, read once for a project's labelled items:
gold and SME resolutions apart (HLP is reported against each, see annotation.intervals), the
SME who gave each resolution (as a labeler index, so their own label is not scored against it),
and the combined ground truth (gold, else resolution) the rest of the report uses.

A resolution counts when it is current, not marked ambiguous, and names exactly one class that is
not an ambiguity class; a gold label counts when it names exactly one class.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..models import GoldLabelClass, ResolutionLabel

TRUTH_NONE, TRUTH_GOLD, TRUTH_RESOLUTION = 0, 1, 2


@dataclass
class Truth:
    """Arrays of shape (N,) aligned with the loaded items."""

    gold: np.ndarray  # float: class index, NaN where none
    resolution: np.ndarray  # float: class index, NaN where none
    resolver: np.ndarray  # int: labeler index of the resolving SME, -1 where none or not a labeler
    gold_skipped: int  # gold labels naming several classes (unusable in a single-label project)

    @property
    def combined(self) -> tuple[np.ndarray, np.ndarray]:
        """(truth (N,) float, source (N,) int8): gold, else resolution; TRUTH_* per item."""
        has_gold = ~np.isnan(self.gold)
        truth = np.where(has_gold, self.gold, self.resolution)
        source = np.where(has_gold, TRUTH_GOLD, np.where(np.isnan(self.resolution), TRUTH_NONE, TRUTH_RESOLUTION))
        return truth, source.astype(np.int8)


def _positions(items, ids):
    """Where each database id sits in the sorted ``items`` (N,), and which ids are there at all."""
    ids = np.asarray(ids, dtype=np.int64)
    if not items.size:
        return np.zeros(ids.size, dtype=np.int64), np.zeros(ids.size, dtype=bool)
    at = np.searchsorted(items, ids)
    found = (at < items.size) & (items[np.minimum(at, items.size - 1)] == ids)
    return at, found


def read_truth(project, items, index, kept, labelers) -> Truth:
    """Gold and current resolutions of the labelled items (two queries).

    items : int (N,) sorted database item ids; index : {class id: class index}; kept : the
    class rows [(id, name, is_ambiguity)]; labelers : int (M,) sorted database user ids of the
    labelers (the labeler index numbering)."""
    n = items.size
    gold, resolution = np.full(n, np.nan), np.full(n, np.nan)
    resolver = np.full(n, -1, dtype=np.int64)
    ambiguous_class = {pk for pk, _, amb in kept if amb}

    found_gold: dict[int, list[int]] = {}
    for item_id, class_id in GoldLabelClass.objects.filter(gold__item__project=project).values_list(
        "gold__item_id", "label_class_id"
    ):
        found_gold.setdefault(item_id, []).append(class_id)
    skipped = 0
    at, found = _positions(items, list(found_gold))
    for i, class_ids in zip(at[found].tolist(), itertools.compress(found_gold.values(), found), strict=True):
        if len(class_ids) != 1 or class_ids[0] not in index:
            skipped += 1
            continue
        gold[i] = index[class_ids[0]]

    found_res: dict[int, tuple[list[int], int | None]] = {}
    for item_id, class_id, sme_id in ResolutionLabel.objects.filter(
        resolution__item__project=project, resolution__is_current=True, resolution__is_ambiguous=False
    ).values_list("resolution__item_id", "label_class_id", "resolution__decided_by_id"):
        found_res.setdefault(item_id, ([], sme_id))[0].append(class_id)
    at, found = _positions(items, list(found_res))
    labelers = np.asarray(labelers, dtype=np.int64)
    for i, (class_ids, sme_id) in zip(at[found].tolist(), itertools.compress(found_res.values(), found), strict=True):
        if len(class_ids) != 1 or class_ids[0] not in index or class_ids[0] in ambiguous_class:
            continue
        resolution[i] = index[class_ids[0]]
        if sme_id is not None:
            j, known = _positions(labelers, [sme_id])
            resolver[i] = int(j[0]) if known[0] else -1
    return Truth(gold=gold, resolution=resolution, resolver=resolver, gold_skipped=skipped)
