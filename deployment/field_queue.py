"""Field items back to labelling, and what their labels say about the bundles that made them.

**Queueing.** A field item is an input a device sent back (telemetry ingestion makes it an Item
and links its record to it). :func:`queue_field_items` gives every unlabelled field item that is
not already queued a ``QueueEntry`` with strategy ``field``, ordered by
:func:`deployment.drift.field_priority` (low confidence and far-out inputs first). The entries sit
next to a cycle's: in the band ``FIELD_PRIORITY_BASE`` + rank, above every cycle entry (a cycle's
band is 1,000 + rank: a field item is evidence from where the model runs, and there are few of
them) and below an SME's send-back (1,000,000), which is a correction of a label already given.
A cycle does not supersede them (``write_batch`` only retires entries that a cycle wrote).

**Field accuracy.** Per bundle: the share of its labelled field items on which its prediction
matched the truth (gold, else the SME's resolution, else the majority of the current labels;
ties, ambiguity labels and items without a label are left out), with a 95 % Wilson interval,
beside the bundle's dev accuracy from its parity check (``ModelExport.parity``) with its own
Wilson interval. **Concept drift** is flagged when the whole field interval lies below the dev
interval (field high < dev low): the two could not both hold the same accuracy. A lone point
below the dev interval with a wide field interval is not flagged; it is shown.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
from django.db import transaction
from django.db.models import Exists, OuterRef

from annotation.intervals import WILSON_Z_95, clustered_wilson_interval
from annotation.models import Annotation, AnnotationLabel, GoldLabelClass, Item, QueueEntry, ResolutionLabel

from . import drift
from .models import TelemetryRecord
from .monitoring_models import MonitoringReference
from .monitoring_reference import stats_of_files

FIELD_STRATEGY = "field"
FIELD_PRIORITY_BASE = 500_000.0
QUEUE_AT_MOST = 500  # entries one run writes; the rest wait for the next


def field_item_ids(project):
    """The ids of the project's field items: those a telemetry record links to."""
    return TelemetryRecord.objects.filter(project=project, item__isnull=False).values("item_id")


def queue_field_items(project, *, limit: int = QUEUE_AT_MOST) -> dict:
    """Queue the unlabelled, unqueued field items by the ``field`` strategy; returns
    {queued, candidates}."""
    from django.core.files.storage import default_storage

    current = Annotation.objects.filter(item=OuterRef("pk"), is_current=True)
    queued = QueueEntry.objects.filter(item=OuterRef("pk"), is_active=True)
    candidates = (
        Item.objects.filter(project=project, pk__in=field_item_ids(project), queue_done=False)
        .exclude(Exists(current))
        .exclude(Exists(queued))
        .values_list("pk", "image")
    )
    rows = list(candidates)
    if not rows:
        return {"queued": 0, "candidates": 0}
    ids = [pk for pk, _ in rows]
    # The least confident prediction made on each item, and the bundle that made it.
    confidence, export_of = {}, {}
    for item_id, conf, export_id in (
        TelemetryRecord.objects.filter(item_id__in=ids)
        .order_by("confidence")
        .values_list("item_id", "confidence", "export_id")
    ):
        if item_id not in confidence:
            confidence[item_id], export_of[item_id] = conf, export_id
    references = {
        r.export_id: np.asarray(r.image_stats, dtype=np.float64)
        for r in MonitoringReference.objects.filter(export_id__in=set(export_of.values()))
        if r.image_stats
    }
    far = np.full(len(rows), np.nan)
    for j, (pk, image) in enumerate(rows):
        ref = references.get(export_of.get(pk))
        if ref is not None and image:
            stats = stats_of_files([default_storage.path(image)])
            if len(stats):
                far[j] = drift.outlyingness(ref, stats)[0]
    conf = np.array([confidence.get(pk, 1.0) for pk in ids])
    score = drift.field_priority(conf, far)
    order = np.argsort(-score, kind="stable")[:limit]
    n = len(order)
    with transaction.atomic():
        QueueEntry.objects.bulk_create(
            [
                QueueEntry(
                    project=project,
                    item_id=ids[j],
                    priority=FIELD_PRIORITY_BASE + (n - position),
                    strategy=FIELD_STRATEGY,
                    score=float(score[j]),
                    reason=(
                        f"field: confidence {conf[j]:.2f}"
                        + ("" if np.isnan(far[j]) else f", outlyingness {far[j]:.2f}")
                    )[:200],
                )
                for position, j in enumerate(order.tolist())
            ],
            ignore_conflicts=True,  # an item queued meanwhile by someone else keeps that entry
        )
    return {"queued": n, "candidates": len(rows)}


def _truth(project, item_ids) -> dict[int, int]:
    """{item id: true class id} for the items that have one (see the module docstring)."""
    truth = {}
    for item_id, class_id in GoldLabelClass.objects.filter(gold__item_id__in=item_ids).values_list(
        "gold__item_id", "label_class_id"
    ):
        truth.setdefault(item_id, set()).add(class_id)
    gold = {k: next(iter(v)) for k, v in truth.items() if len(v) == 1}
    resolved = defaultdict(set)
    for item_id, class_id in ResolutionLabel.objects.filter(
        resolution__item_id__in=item_ids, resolution__is_current=True, resolution__is_ambiguous=False
    ).values_list("resolution__item_id", "label_class_id"):
        resolved[item_id].add(class_id)
    votes = defaultdict(Counter)
    for item_id, class_id in AnnotationLabel.objects.filter(
        annotation__item_id__in=item_ids, annotation__is_current=True, label_class__is_ambiguity=False
    ).values_list("annotation__item_id", "label_class_id"):
        votes[item_id][class_id] += 1
    out = {}
    for item_id in item_ids:
        if item_id in gold:
            out[item_id] = gold[item_id]
        elif len(resolved.get(item_id, ())) == 1:
            out[item_id] = next(iter(resolved[item_id]))
        elif votes.get(item_id):
            ranked = votes[item_id].most_common(2)
            if len(ranked) == 1 or ranked[1][1] < ranked[0][1]:  # a tie has no majority
                out[item_id] = ranked[0][0]
    return out


def wilson(successes: int, n: int, z: float = WILSON_Z_95) -> tuple[float | None, float | None]:
    """The Wilson interval of successes out of n independent trials (None, None when n = 0)."""
    if n <= 0:
        return None, None
    out = clustered_wilson_interval(np.r_[np.ones(successes), np.zeros(n - successes)], np.arange(n), z=z)
    return float(out["ci_low"][0]), float(out["ci_high"][0])


def field_accuracy(project) -> list[dict]:
    """Per bundle with labelled field items: field accuracy and interval beside the dev accuracy
    and interval, and whether that is concept drift. One row per export, newest first."""
    from training.models import ModelExport

    pairs = {}
    for item_id, export_id, class_id in (
        TelemetryRecord.objects.filter(project=project, item__isnull=False)
        .order_by("id")
        .values_list("item_id", "export_id", "predicted_class_id")
    ):
        pairs.setdefault((item_id, export_id), class_id)  # the first prediction on the item
    truth = _truth(project, {item for item, _ in pairs})
    per_export = defaultdict(lambda: [0, 0])
    for (item_id, export_id), predicted in pairs.items():
        if item_id in truth:
            per_export[export_id][0] += int(predicted == truth[item_id])
            per_export[export_id][1] += 1
    rows = []
    exports = ModelExport.objects.filter(pk__in=list(per_export)).select_related("model_version")
    for export in sorted(exports, key=lambda e: -e.pk):
        correct, n = per_export[export.pk]
        low, high = wilson(correct, n)
        parity = export.parity or {}
        dev_acc, dev_n = parity.get("tflite_accuracy"), int(parity.get("n") or 0)
        dev_low, dev_high = (None, None)
        if dev_acc is not None and dev_n:
            dev_low, dev_high = wilson(round(dev_acc * dev_n), dev_n)
        rows.append(
            {
                "export": export.pk,
                "bundle": f"{export.model_version.short_id} {export.format}",
                "sha256": export.sha256,
                "labelled": n,
                "correct": correct,
                "accuracy": correct / n if n else None,
                "ci_low": low,
                "ci_high": high,
                "dev_accuracy": dev_acc,
                "dev_n": dev_n,
                "dev_ci_low": dev_low,
                "dev_ci_high": dev_high,
                "concept_drift": bool(high is not None and dev_low is not None and high < dev_low),
            }
        )
    return rows
