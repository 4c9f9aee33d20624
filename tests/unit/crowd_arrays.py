"""Load the real crowd datasets in ``../shared/datasets/crowd/`` into label arrays (pure Python csv).

Each loader returns a :class:`Crowd` holding the dense (N items, M workers) float label matrix
(class index, NaN = not labelled), the gold labels (N,) (NaN where an item has no gold) and the
same labels as sparse triples.

Decisions, following the traps listed in the datasets' README:

- **Duplicates**: S_Rel and S_Adult repeat some (item, worker) pairs, sometimes with different
  answers. The *last* occurrence in file order is kept (a worker's latest answer); the number of
  dropped rows is kept in ``n_duplicates_dropped``.
- **Partial gold**: items are those with at least one worker label; gold for items nobody
  labelled (most of S_Adult's gold) is dropped. Score only where ``has_gold``.
- **Ids are opaque**: item and worker ids are only dictionary keys (D_Product's ids end in the
  truth: nothing is derived from them). Rows are numbered in order of first appearance.
- **Line endings**: files are opened with ``newline=""`` so the csv module accepts LF, CRLF and
  CR-only endings alike.
- RTE labels {1, 2} become {0, 1}.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache

import numpy as np

from tests.conftest import CROWD_DATASETS, CROWD_DIR, require_crowd_data

DATASETS = CROWD_DATASETS


@dataclass(frozen=True, eq=False)
class Crowd:
    name: str
    labels: np.ndarray  # (N, M) float, class index or NaN
    gold: np.ndarray  # (N,) float, class index or NaN
    n_classes: int
    item_idx: np.ndarray  # (L,) int, after de-duplication
    labeler_idx: np.ndarray  # (L,) int
    label: np.ndarray  # (L,) int
    n_duplicates_dropped: int

    @property
    def has_gold(self) -> np.ndarray:
        return ~np.isnan(self.gold)


def _rows(path, delimiter=",", header=True):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=delimiter)
        if header:
            next(reader)
        for row in reader:
            if row:
                yield row


def _build(name, answers, truth, n_classes, label_offset=0) -> Crowd:
    """answers: iterable of (item, worker, label str); truth: iterable of (item, label str)."""
    items: dict[str, int] = {}
    workers: dict[str, int] = {}
    latest: dict[tuple[int, int], int] = {}
    n_rows = 0
    for item, worker, answer in answers:
        i = items.setdefault(item, len(items))
        j = workers.setdefault(worker, len(workers))
        latest[(i, j)] = int(answer) - label_offset  # a repeated pair overwrites: last one wins
        n_rows += 1
    labels = np.full((len(items), len(workers)), np.nan)
    keys = np.array(list(latest.keys()), dtype=np.int64).reshape(-1, 2)
    values = np.array(list(latest.values()), dtype=np.int64)
    labels[keys[:, 0], keys[:, 1]] = values
    gold = np.full(len(items), np.nan)
    for item, answer in truth:
        if item in items:
            gold[items[item]] = int(answer) - label_offset
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    return Crowd(
        name=name,
        labels=labels,
        gold=gold,
        n_classes=n_classes,
        item_idx=keys[order, 0],
        labeler_idx=keys[order, 1],
        label=values[order],
        n_duplicates_dropped=n_rows - len(latest),
    )


@cache
def load(name: str) -> Crowd:
    """One dataset by folder name (cached for the test session; treat the arrays as read-only).

    Skips the calling test when the data is absent (fails it in CI): see `require_crowd_data`."""
    require_crowd_data()
    folder = CROWD_DIR / name
    if name == "RTE":
        return _build(
            name,
            _rows(folder / "rte_crowd.txt", "\t", header=False),
            _rows(folder / "rte_truth.txt", "\t", header=False),
            n_classes=2,
            label_offset=1,
        )
    n_classes = {"D_Product": 2, "D_PosSent": 2, "S_Rel": 4, "S_Adult": 4, "bluebirds": 2}[name]
    return _build(name, _rows(folder / "answer.csv"), _rows(folder / "truth.csv"), n_classes)
