"""Label-quality reports: load a project's current labels into arrays, compute, store, serve.

- :func:`compute_quality_report` does the work (one service call: load, compute, store) and is
  what the Celery task and the ``quality`` command run.
- :func:`quality_for_display` is what a page or the API calls: it returns the stored report and
  whether it is stale, and queues a refresh when it is. A request never computes a report,
  except when a project has no report at all and fewer than ``INLINE_MAX_ANNOTATIONS`` (20,000)
  current annotations: then it is computed inline (well under a second at that size), so a new
  project shows its figures at once.
- A report is **fresh** when the project's "fingerprint" has not changed since: the number of
  current annotations (``QualityReport.annotation_count``) and the highest annotation,
  resolution and gold-label ids. The count alone would miss an edit (one row becomes history,
  a new one is current: same count) and a new SME resolution (new ground truth).

Ground truth per item: its gold label, else its current SME resolution when that is not marked
ambiguous and names exactly one class that is not an ambiguity class (read in quality_truth.py,
which also keeps the two apart: HLP is reported against each separately).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connections, transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from config import queueing

from .. import quality
from ..models import (
    Annotation,
    AnnotationLabel,
    Guideline,
    Item,
    LabelClass,
    Project,
    QualityReport,
    TagEvent,
    TaskType,
)
from ..tag_slices import tag_metadata, with_tags
from .quality_truth import read_truth

DEFAULTS = {
    # A request computes a missing report itself only below this many current annotations.
    "INLINE_MAX_ANNOTATIONS": 20_000,
    # A slice value (metadata key=value) is shown when it has at least this many labelled items.
    "MIN_SLICE_ITEMS": 20,
    "MAX_SLICE_VALUES": 50,
    "TOP_PAIRS": 10,
    "TOP_DISPUTED": 20,
    # Stored reports kept per project (older ones are deleted when a new one is stored).
    "KEEP_REPORTS": 30,
    # The same stale state is queued at most once in this many seconds.
    "QUEUE_THROTTLE_SECONDS": 300,
    # After labels change, the refresh runs this many seconds later, once per project per window.
    "DEBOUNCE_SECONDS": 60,
}
CHUNK_ROWS = 50_000
SCHEMA_VERSION = 1
DUPLICATE_EXAMPLES = 20


def quality_settings() -> dict:
    """DEFAULTS overridden by the optional ``CONCORD_QUALITY`` dict in Django settings."""
    return {**DEFAULTS, **getattr(settings, "CONCORD_QUALITY", {})}


# --------------------------------------------------------------------------------------------
# Freshness
# --------------------------------------------------------------------------------------------


def fingerprint(project) -> dict:
    """What a report depends on, in two aggregate queries (see the module docstring)."""
    annotations = Annotation.objects.filter(item__project=project).aggregate(
        annotations=Count("pk", filter=Q(is_current=True)), last_annotation_id=Max("pk")
    )
    truth = Item.objects.filter(project=project).aggregate(
        last_resolution_id=Max("resolutions__pk"), last_gold_id=Max("gold__pk")
    )
    # Tags are slices of the report: adding or removing one changes it.
    tagged = TagEvent.objects.filter(tag__project=project).aggregate(last_tag_event_id=Max("pk"))
    return {**annotations, **truth, **tagged}


def is_fresh(report: QualityReport | None, current: dict) -> bool:
    if report is None:
        return False
    return report.annotation_count == current["annotations"] and report.data.get("source") == current


def latest_report(project) -> QualityReport | None:
    return QualityReport.objects.filter(project=project).order_by("-computed_at", "-pk").first()


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _batches(rows, size=CHUNK_ROWS):
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _class_index(project):
    """Active and retired classes in display order; a merged class maps to its final target.

    Returns (class rows [(id, name, is_ambiguity)], {class id: index}, {class id: name})."""
    rows = list(
        LabelClass.objects.filter(project=project)
        .order_by("order", "name", "pk")
        .values_list("pk", "name", "is_ambiguity", "merged_into_id")
    )
    target = {pk: merged for pk, _, _, merged in rows}
    kept = [(pk, name, amb) for pk, name, amb, merged in rows if merged is None]
    index = {pk: i for i, (pk, _, _) in enumerate(kept)}
    for pk in target:
        final, seen = pk, set()
        while target.get(final) is not None and final not in seen:
            seen.add(final)
            final = target[final]
        if final in index:
            index[pk] = index[final]
    return kept, index, {pk: name for pk, name, _, _ in rows}


@dataclass
class Loaded:
    """A project's labels as arrays, plus what the report needs to name things."""

    input: quality.QualityInput
    label_class_ids: np.ndarray  # (L,) database class id of each loaded label (before merging)
    item_db: np.ndarray  # (L,) database item id per label
    labeler_db: np.ndarray  # (L,) database user id per label
    several_labels: int  # annotations that held more than one label (only the first is used)
    truth_skipped: int  # gold rows naming several classes (not usable in a single-label project)
    class_names_by_id: dict  # every class of the project, merged ones included: {id: name}


def _label_rows(project):
    """Every current label: (item, labeler, class, unsure, duration, guideline version) arrays.

    The ORM builds the query; its rows are read with a plain cursor in chunks and turned into
    arrays chunk by chunk (the ORM's own iterator costs twice as long at a million rows)."""
    query = (
        AnnotationLabel.objects.filter(annotation__item__project=project, annotation__is_current=True)
        .order_by()
        .values_list(
            "annotation__item_id",
            "annotation__labeler_id",
            "label_class_id",
            "annotation__unsure",
            "annotation__duration_ms",
            "annotation__guideline_id",
        )
    )
    sql, params = query.query.sql_with_params()
    parts = [[] for _ in range(6)]
    with connections[query.db].cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(CHUNK_ROWS):
            columns = list(zip(*batch, strict=True))
            parts[0].append(np.array(columns[0], dtype=np.int64))
            parts[1].append(np.array(columns[1], dtype=np.int64))
            parts[2].append(np.array(columns[2], dtype=np.int64))
            parts[3].append(np.array(columns[3], dtype=bool))
            parts[4].append(np.array(columns[4], dtype=np.float64))  # None -> NaN
            parts[5].append(np.array(columns[5], dtype=np.float64))
    kinds = [np.int64, np.int64, np.int64, bool, np.float64, np.float64]
    item, labeler, label, unsure, duration, guideline = (
        np.concatenate(p) if p else np.zeros(0, dtype=t) for p, t in zip(parts, kinds, strict=True)
    )
    versions = dict(Guideline.objects.filter(project=project).values_list("pk", "version"))
    version = np.full(guideline.shape, -1, dtype=np.int64)
    known = ~np.isnan(guideline)
    if known.any():
        version[known] = [versions.get(int(g), -1) for g in guideline[known].tolist()]
    return item, labeler, label, unsure, duration, version


def _slice_codes(metadata_rows, n_items):
    """{key: (codes (N,), [values])} from each item's metadata dict (tags merged in as
    "tag:<name>": "yes", see annotation.tag_slices); non-scalar values are skipped."""
    slices: dict[str, tuple[np.ndarray, dict]] = {}
    for i, metadata in enumerate(metadata_rows):
        if not isinstance(metadata, dict):
            continue
        for key, value in metadata.items():
            if value is None or isinstance(value, dict | list):
                continue
            text = json.dumps(value) if isinstance(value, bool) else str(value)
            if key not in slices:
                slices[key] = (np.full(n_items, -1, dtype=np.int64), {})
            codes, values = slices[key]
            codes[i] = values.setdefault(text, len(values))
    return {key: (codes, list(values)) for key, (codes, values) in slices.items()}


def _users(ids):
    User = get_user_model()
    names = {}
    for start in range(0, len(ids), 900):  # SQLite's limit on query parameters
        chunk = [int(i) for i in ids[start : start + 900]]
        names.update(User.objects.filter(pk__in=chunk).values_list("pk", User.USERNAME_FIELD))
    return [names.get(int(i), f"user {i}") for i in ids]


def load_quality_input(project) -> Loaded:
    """A project's current annotations as :class:`annotation.quality.QualityInput` arrays.

    A fixed number of queries whatever the size (the big ones read in chunks of 50,000 rows):
    classes, labels, guideline versions, labelers, items with their metadata, gold, resolutions.
    """
    kept, index, class_names_by_id = _class_index(project)
    k = len(kept)
    item_db, labeler_db, class_db, unsure, duration, version = _label_rows(project)

    # Labels of classes that no longer map anywhere (none today) are dropped with the rest.
    lookup_ids = np.array(sorted(index), dtype=np.int64)
    lookup_idx = np.array([index[i] for i in lookup_ids.tolist()], dtype=np.int64)
    pos = np.searchsorted(lookup_ids, class_db)
    known = (pos < lookup_ids.size) & (lookup_ids[np.minimum(pos, max(lookup_ids.size - 1, 0))] == class_db)
    label = np.full(class_db.shape, -1, dtype=np.int64)
    label[known] = lookup_idx[pos[known]]

    items, item_idx = np.unique(item_db, return_inverse=True)
    labelers, labeler_idx = np.unique(labeler_db, return_inverse=True)
    # A single-label annotation holds one label; if one holds several, keep the first class.
    key = item_idx.astype(np.int64) * max(labelers.size, 1) + labeler_idx
    order = np.lexsort((label, key))
    _, first = np.unique(key[order], return_index=True)
    keep = np.zeros(key.size, dtype=bool)
    keep[order[first]] = True
    several = int(key.size - first.size)
    keep &= label >= 0
    sel = np.flatnonzero(keep)
    n = items.size

    names, metadata = _item_names_and_metadata(project, items)
    metadata = with_tags(items.tolist(), metadata, tag_metadata(project.pk))  # a tag is a slice
    read = read_truth(project, items, index, kept, labelers)
    truth, source = read.combined

    inp = quality.QualityInput(
        item_idx=item_idx[sel],
        labeler_idx=labeler_idx[sel],
        label=label[sel],
        unsure=unsure[sel],
        duration_ms=duration[sel],
        version=version[sel],
        truth=truth,
        truth_source=source,
        gold=read.gold,
        resolution=read.resolution,
        resolver=read.resolver,
        class_names=[name for _, name, _ in kept],
        ambiguity=np.array([amb for _, _, amb in kept], dtype=bool).reshape(k),
        labeler_names=_users(labelers.tolist()),
        labeler_ids=labelers,
        item_ids=items,
        item_names=names,
        slices=_slice_codes(metadata, n),
    )
    return Loaded(
        input=inp,
        label_class_ids=class_db[sel],
        item_db=item_db[sel],
        labeler_db=labeler_db[sel],
        several_labels=several,
        truth_skipped=read.gold_skipped,
        class_names_by_id=class_names_by_id,
    )


def _item_names_and_metadata(project, items):
    """External ids and metadata dicts of the labelled items, aligned with ``items``.

    Metadata is read as stored text and each distinct text decoded once: items usually share a
    handful of slice combinations, and decoding 200,000 dicts one by one costs seconds."""
    query = (
        Item.objects.filter(project=project)
        .filter(Exists(Annotation.objects.filter(item=OuterRef("pk"), is_current=True)))
        .values_list("pk", "external_id", "metadata")
    )
    sql, params = query.query.sql_with_params()
    with connections[query.db].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    n = items.size
    names, metadata = [""] * n, [None] * n
    if not rows:
        return names, metadata
    pks = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    at = np.searchsorted(items, pks)
    found = (at < n) & (items[np.minimum(at, n - 1)] == pks)
    decoded = {}
    for i, (_, external_id, raw) in zip(at[found].tolist(), itertools.compress(rows, found), strict=True):
        names[i] = external_id
        if isinstance(raw, str | bytes):
            if raw not in decoded:
                decoded[raw] = json.loads(raw)
            metadata[i] = decoded[raw]
        else:  # a driver that decodes JSON itself
            metadata[i] = raw
    return names, metadata


# --------------------------------------------------------------------------------------------
# Duplicates and conflicts (history rows)
# --------------------------------------------------------------------------------------------


def duplicates_and_conflicts(project, loaded: Loaded) -> dict:
    """Earlier rows of (item, labeler) pairs, kept as history when a label is edited, re-imported
    with another answer, or repeated in an imported file. One query."""
    rows = list(
        Annotation.objects.filter(item__project=project, is_current=False)
        .order_by()
        .values_list("pk", "item_id", "labeler_id", "annotationlabel__label_class_id")
    )
    result = {
        "what": (
            "An (item, labeler) pair is edited when it has earlier annotation rows kept as history (a relabel, "
            "a re-import with another answer, or a row repeated in an imported file); it conflicts when an "
            "earlier row's label differs from its current one. history_rows counts those earlier rows."
        ),
        "history_rows": 0,
        "edited_pairs": 0,
        "conflicting_pairs": 0,
        "items_with_edits": 0,
        "items_with_conflicts": 0,
        "examples": [],
    }
    if not rows:
        return result
    columns = np.array([[-1 if v is None else v for v in r] for r in rows], dtype=np.int64).reshape(-1, 4)
    hist_pk, hist_item, hist_labeler, hist_class = columns.T
    # The current class per pair, looked up by a combined (item, labeler) key.
    width = int(max(loaded.labeler_db.max(initial=0), hist_labeler.max(initial=0))) + 1
    cur_key = loaded.item_db * width + loaded.labeler_db
    order = np.argsort(cur_key)
    cur_key, cur_class = cur_key[order], loaded.label_class_ids[order]
    hist_key = hist_item * width + hist_labeler
    if cur_key.size:
        pos = np.minimum(np.searchsorted(cur_key, hist_key), cur_key.size - 1)
        differs = (cur_key[pos] == hist_key) & (cur_class[pos] != hist_class)
    else:
        pos, differs = np.zeros(hist_key.size, dtype=np.int64), np.zeros(hist_key.size, dtype=bool)
    pairs = np.unique(hist_key)
    conflicting = np.unique(hist_key[differs])
    result.update(
        history_rows=int(np.unique(hist_pk).size),
        edited_pairs=int(pairs.size),
        conflicting_pairs=int(conflicting.size),
        items_with_edits=int(np.unique(pairs // width).size),
        items_with_conflicts=int(np.unique(conflicting // width).size),
    )
    inp = loaded.input
    labeler_names = dict(zip(inp.labeler_ids.tolist(), inp.labeler_names, strict=True))
    item_names = dict(zip(inp.item_ids.tolist(), inp.item_names, strict=True))
    for key_value in conflicting[:DUPLICATE_EXAMPLES].tolist():
        item_id, labeler_id = divmod(key_value, width)
        earlier = hist_class[hist_key == key_value]
        current = cur_class[np.searchsorted(cur_key, key_value)]
        result["examples"].append(
            {
                "item_id": item_id,
                "external_id": item_names.get(item_id, str(item_id)),
                "labeler": labeler_names.get(labeler_id, str(labeler_id)),
                "current": loaded.class_names_by_id.get(int(current), "?"),
                "earlier": [loaded.class_names_by_id.get(int(c), "(none)") for c in earlier.tolist()],
            }
        )
    return result


# --------------------------------------------------------------------------------------------
# Compute and store
# --------------------------------------------------------------------------------------------


def _project_block(project):
    return {"id": project.pk, "slug": project.slug, "name": project.name, "task_type": project.task_type}


def _report_settings(config) -> quality.ReportSettings:
    return quality.ReportSettings(
        min_slice_items=int(config["MIN_SLICE_ITEMS"]),
        max_slice_values=int(config["MAX_SLICE_VALUES"]),
        top_pairs=int(config["TOP_PAIRS"]),
        top_disputed=int(config["TOP_DISPUTED"]),
    )


def build_report(project, current: dict | None = None) -> dict:
    """The report of a project as a JSON-safe dict, computed now (no write)."""
    config = quality_settings()
    current = current if current is not None else fingerprint(project)
    head = {"schema_version": SCHEMA_VERSION, "project": _project_block(project), "source": current}
    if project.task_type != TaskType.SINGLE_LABEL:
        return {
            **head,
            "supported": False,
            "reason": (
                "Label-quality reports cover single-label projects for now; this project is "
                f"{project.get_task_type_display().lower()}, so no agreement, HLP or consensus figures are computed."
            ),
            "counts": {"annotations": current["annotations"]},
        }
    started = time.perf_counter()
    loaded = load_quality_input(project)
    loaded_at = time.perf_counter()
    report = quality.compute_report(loaded.input, _report_settings(config))
    computed_at = time.perf_counter()
    report["duplicates"] = duplicates_and_conflicts(project, loaded)
    disputed_ids = [d["item_id"] for d in report["disputed_items"]]
    thumbnails = dict(Item.objects.filter(pk__in=disputed_ids).values_list("pk", "thumbnail"))
    for row in report["disputed_items"]:
        row["has_thumbnail"] = bool(thumbnails.get(row["item_id"]))
    report["counts"].update(
        annotations_with_several_labels=loaded.several_labels,
        gold_with_several_classes=loaded.truth_skipped,
        current_annotations=current["annotations"],
    )
    report["timing"] = {
        "load_seconds": round(loaded_at - started, 4),
        "compute_seconds": round(computed_at - loaded_at, 4),
    }
    return {**head, "reason": None, **report}


def compute_quality_report(project, current: dict | None = None) -> QualityReport:
    """Compute the project's report now and store it as a new QualityReport; older reports beyond
    ``KEEP_REPORTS`` are deleted. Returns the stored row."""
    current = current if current is not None else fingerprint(project)
    data = build_report(project, current)
    keep = int(quality_settings()["KEEP_REPORTS"])
    with transaction.atomic():
        report = QualityReport.objects.create(project=project, annotation_count=current["annotations"], data=data)
        old = list(
            QualityReport.objects.filter(project=project)
            .order_by("-computed_at", "-pk")
            .values_list("pk", flat=True)[keep:]
        )
        if old:
            QualityReport.objects.filter(pk__in=old).delete()
    report.refresh_from_db(fields=["computed_at"])
    return report


def refresh_quality_report(project_id: int, *, force: bool = False) -> int | None:
    """What the Celery task runs: compute and store unless the latest report is already fresh.

    Safe to run twice (a second run finds the first one's report fresh and returns it). Returns
    the id of the fresh report, or None when the project no longer exists."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    current = fingerprint(project)
    latest = latest_report(project)
    if not force and is_fresh(latest, current):
        return latest.pk
    return compute_quality_report(project, current).pk


def _throttle_key(project, current) -> str:
    digest = hashlib.sha256(json.dumps(current, sort_keys=True).encode()).hexdigest()[:16]
    return f"concord:quality-refresh:{project.pk}:{digest}"


def schedule_quality_refresh(project, *, current: dict | None = None, report=None) -> bool:
    """Queue ``refresh_quality_report`` for the project once the current transaction commits,
    unless its latest report is fresh or this same state was queued in the last
    ``QUEUE_THROTTLE_SECONDS``. Returns whether it queued."""
    current = current if current is not None else fingerprint(project)
    report = report if report is not None else latest_report(project)
    if is_fresh(report, current):
        return False
    if not cache.add(_throttle_key(project, current), True, timeout=quality_settings()["QUEUE_THROTTLE_SECONDS"]):
        return False
    project_id = project.pk
    transaction.on_commit(lambda: queueing.task(queueing.REFRESH_QUALITY_REPORT).delay(project_id))
    return True


def queue_quality_refresh_soon(project_id: int) -> bool:
    """For code that writes labels, resolutions or gold (labeling, adjudication, imports): queue
    one refresh of the project's report ``DEBOUNCE_SECONDS`` after the transaction commits, at
    most once per project in that window, so a stream of labels costs one recomputation a minute,
    not one per label. Makes no database query. Returns whether it queued."""
    delay = int(quality_settings()["DEBOUNCE_SECONDS"])
    if not cache.add(f"concord:quality-soon:{project_id}", True, timeout=max(delay, 1)):
        return False
    transaction.on_commit(
        lambda: queueing.task(queueing.REFRESH_QUALITY_REPORT).apply_async(args=[project_id], countdown=delay)
    )
    return True


# --------------------------------------------------------------------------------------------
# Serving
# --------------------------------------------------------------------------------------------


@dataclass
class QualityStatus:
    """What a page or the API shows: the stored report (None while the first one is computed),
    whether it is stale, and whether this request queued a refresh or computed it inline."""

    report: QualityReport | None
    current: dict
    stale: bool
    refresh_queued: bool
    computed_inline: bool

    def age_seconds(self, now: datetime | None = None) -> float | None:
        if self.report is None:
            return None
        return max(0.0, ((now or timezone.now()) - self.report.computed_at).total_seconds())

    def payload(self, now: datetime | None = None) -> dict:
        """The API's and the command's JSON: the stored report plus computed_at, age_seconds,
        stale and refresh_queued; ``status`` is "ready" or "computing"."""
        if self.report is None:
            return {
                "status": "computing",
                "computed_at": None,
                "age_seconds": None,
                "stale": True,
                "refresh_queued": self.refresh_queued,
                "annotation_count": self.current["annotations"],
            }
        return {
            **self.report.data,
            "status": "ready",
            "computed_at": self.report.computed_at.isoformat(),
            "age_seconds": round(self.age_seconds(now), 3),
            "stale": self.stale,
            "refresh_queued": self.refresh_queued,
            "annotation_count": self.current["annotations"],
        }


def quality_for_display(project) -> QualityStatus:
    """The latest stored report of a project, for a page or the API (no computing, see the module
    docstring for the one exception); queues a refresh when the report is stale or missing."""
    current = fingerprint(project)
    report = latest_report(project)
    if report is None and current["annotations"] < int(quality_settings()["INLINE_MAX_ANNOTATIONS"]):
        report = compute_quality_report(project, current)
        return QualityStatus(report, current, stale=False, refresh_queued=False, computed_inline=True)
    stale = not is_fresh(report, current)
    queued = schedule_quality_refresh(project, current=current, report=report) if stale else False
    return QualityStatus(report, current, stale=stale, refresh_queued=queued, computed_inline=False)
