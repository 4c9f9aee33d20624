"""Did the error model find the model's mistakes? What the cycle page shows about it.

At selection (the worker's select step), :func:`selection_summary` keeps on the cycle, for every
item of the batch, the class the model predicted and the error model's chance that it is wrong
(``None`` when the error model was not used or fell back to margin), with the error model's own
report (its fallback reason, errors and right answers it learnt from, its ``C``) and the cold-start
weights when the mix started cold.

On the page, :func:`cycle_report` reads that back for the cycle shown and scores the previous
cycle's batch against the labels given since: of the items the error model called wrong (chance
>= 0.5) and that have since been labelled, how many the model really got wrong (precision), next
to the error rate of the whole labelled batch (what calling items wrong at random would score).
An item's label, in order: gold, the SME's current resolution, else the single most frequent class
among its current labels (a tie counts as not labelled yet).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .error_model import uncertainty_features

PREDICTED_WRONG = 0.5
MAX_EARLIER = 20_000  # earlier picks a cycle's error model learns from, the latest cycles first


def selection_summary(selection, pool_ids, pool_proba, class_ids) -> dict:
    """JSON-safe facts about a batch for ``Cycle.summary``: ``predictions`` {item id: [predicted
    class id, chance of wrong or None, [margin, entropy, top probability]]} (the last, the model's
    uncertainty then, is what later cycles' error models learn from once the item is labelled:
    see :func:`labelled_earlier_picks`), and ``error_model`` / ``cold_start`` from the selection's
    notes when present. ``pool_ids`` (P,), ``pool_proba`` (P, K) with columns in ``class_ids`` order."""
    idx = np.asarray(selection.indices, dtype=np.int64)
    proba = np.asarray(pool_proba)[idx]
    predicted = proba.argmax(axis=1) if idx.size else np.zeros(0, dtype=np.int64)
    uncertainty = np.round(uncertainty_features(proba), 6).tolist() if idx.size else []
    p_wrong = selection.notes.get("p_wrong")
    chances = [None] * idx.size if p_wrong is None else [None if np.isnan(p) else round(float(p), 4) for p in p_wrong]
    out = {
        "predictions": {
            str(int(pool_ids[i])): [int(class_ids[c]), chance, u]
            for i, c, chance, u in zip(idx.tolist(), predicted.tolist(), chances, uncertainty, strict=True)
        }
    }
    for key in ("error_model", "cold_start"):
        if key in selection.notes:
            out[key] = selection.notes[key]
    return out


def _labels(project, item_ids) -> dict[int, int]:
    """{item id: class index} for the items that have a label (see the module docstring)."""
    from annotation.models import AnnotationLabel, GoldLabelClass, ResolutionLabel
    from training.datasets import class_index

    index_of = class_index(project).index_of
    out: dict[int, int] = {}

    def single(rows):
        found: dict[int, set] = {}
        for item_id, class_id in rows:
            found.setdefault(item_id, set()).add(index_of.get(class_id, -1))
        return {i: next(iter(c)) for i, c in found.items() if len(c) == 1 and -1 not in c}

    gold = single(
        GoldLabelClass.objects.filter(gold__item_id__in=item_ids).values_list("gold__item_id", "label_class_id")
    )
    resolved = single(
        ResolutionLabel.objects.filter(resolution__item_id__in=item_ids, resolution__is_current=True).values_list(
            "resolution__item_id", "label_class_id"
        )
    )
    votes: dict[int, Counter] = {}
    rows = AnnotationLabel.objects.filter(annotation__item_id__in=item_ids, annotation__is_current=True).values_list(
        "annotation__item_id", "label_class_id"
    )
    for item_id, class_id in rows:
        if class_id in index_of:
            votes.setdefault(item_id, Counter())[index_of[class_id]] += 1
    for item_id, counter in votes.items():
        ranked = [*counter.most_common(2), (None, 0)]
        if ranked[1][1] < ranked[0][1]:
            out[item_id] = ranked[0][0]
    out.update(resolved)
    out.update(gold)
    return out


def score_predictions(predictions: dict, labels: dict[int, int], index_of: dict[int, int]) -> dict:
    """How the stored ``predictions`` fared against ``labels`` {item id: class index}."""
    labelled = wrong = flagged = flagged_wrong = 0
    for key, (class_id, chance, *_) in predictions.items():
        truth = labels.get(int(key))
        if truth is None:
            continue
        is_wrong = index_of.get(class_id, -1) != truth
        labelled += 1
        wrong += is_wrong
        if chance is not None and chance >= PREDICTED_WRONG:
            flagged += 1
            flagged_wrong += is_wrong
    return {
        "batch": len(predictions),
        "labelled": labelled,
        "wrong": wrong,
        "error_rate": wrong / labelled if labelled else None,
        "flagged": flagged,
        "flagged_wrong": flagged_wrong,
        "precision": flagged_wrong / flagged if flagged else None,
        "recall": flagged_wrong / wrong if wrong else None,
    }


def cycle_report(cycle) -> dict:
    """{"own": the cycle's error-model report or None, "cold_start": weights or None, "previous":
    {"number", ... :func:`score_predictions`} for the latest earlier finished cycle that kept
    predictions, or None}."""
    from training.datasets import class_index

    from .models import Cycle

    summary = cycle.summary or {}
    out = {"own": summary.get("error_model"), "cold_start": summary.get("cold_start"), "previous": None}
    if cycle.number <= 1:
        return out  # numbers start at 1: no earlier cycle to look up
    earlier = (
        Cycle.objects.filter(project_id=cycle.project_id, number__lt=cycle.number, status=Cycle.Status.DONE)
        .filter(summary__has_key="predictions")
        .order_by("-number")
        .only("number", "summary")
        .first()
    )
    if earlier is not None:
        predictions = earlier.summary["predictions"]
        labels = _labels(cycle.project, [int(k) for k in predictions])
        scored = score_predictions(predictions, labels, class_index(cycle.project).index_of)
        out["previous"] = {"number": earlier.number, "used": (earlier.summary or {}).get("error_model"), **scored}
    return out


def labelled_earlier_picks(cycle) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The items earlier finished cycles of ``cycle``'s project queued and that have a label now:
    ``(item ids (H,), uncertainty (H, 3) as the model of their cycle scored them, wrong (H,) whether
    that model's class differs from the label)``, at most :data:`MAX_EARLIER`, the latest cycles
    first; an item picked twice counts once, as its latest cycle saw it. Held-out rows for the
    error model (see :class:`active_learning.error_model.Earlier`). Cycles from before the
    uncertainty was kept are skipped."""
    from training.datasets import class_index

    from .models import Cycle

    earlier = (
        Cycle.objects.filter(project_id=cycle.project_id, number__lt=cycle.number, status=Cycle.Status.DONE)
        .filter(summary__has_key="predictions")
        .order_by("-number")
        .values_list("summary", flat=True)
    )
    picks: dict[int, tuple] = {}
    for summary in earlier.iterator(chunk_size=20):
        for key, value in summary["predictions"].items():
            if len(value) >= 3 and int(key) not in picks:
                picks[int(key)] = (value[0], value[2])
        if len(picks) >= MAX_EARLIER:
            break
    labels = _labels(cycle.project, list(picks)) if picks else {}
    index_of = class_index(cycle.project).index_of
    ids = np.array(sorted([i for i in picks if i in labels][:MAX_EARLIER]), dtype=np.int64)
    uncertainty = np.array([picks[i][1] for i in ids.tolist()], dtype=np.float64).reshape(-1, 3)
    wrong = np.array([index_of.get(picks[i][0], -1) != labels[i] for i in ids.tolist()], dtype=bool)
    return ids, uncertainty, wrong
