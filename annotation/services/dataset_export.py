"""Export a project's labelled dataset with its provenance (JSONL, CSV, Label Studio JSON, Parquet).

One row per item: external id, split, metadata, the **final label** and where it came from, whether
it is ambiguous, the guideline versions its labels were made under and, when asked, every labeler's
label (current ones, or the whole history) and the promoted model's prediction. Row shape and file
formats: annotation/export_writers.py.

The final label follows the training snapshot's precedence (training/snapshot.py: resolution, then
gold, then consensus), computed with the same code the snapshot uses (training.services), so an
export and a training run never disagree on an item's label. Two differences, both because an
export shows rather than trains: ambiguity classes are kept as labels (flagged ``ambiguous``; an
SME's "ambiguous" takes the first ambiguity class, as a snapshot that keeps ambiguity does), and
every consensus counts whatever its confidence (the confidence is in the row; ``min_confidence``
filters on it).

Memory stays bounded: the per-item arrays of the precedence (a few numbers per item) are computed
once (the consensus's input, one label per labeler and item, is read in chunks into NumPy int
arrays: 24 bytes a label, not the Python tuples, lists and set of training's ``_consensus``),
then items are read in keyset chunks of ``CHUNK_ITEMS`` with at most three queries per chunk
(items, their annotations, those annotations' classes) and handed to a streaming writer. The file
is written to a temporary name beside its final one and renamed on success, so a reader (or a
killed run) never sees half a file; a re-run removes what a killed run left and starts over.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db.models import TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone

from config import queueing

from .. import export_writers as W
from ..errors import DomainError, NotFound
from ..models import (
    Annotation,
    AnnotationLabel,
    DatasetExport,
    Item,
    LabelClass,
)

CHUNK_ITEMS = 2_000
# Current labels are read for the consensus this many rows per round trip, straight into NumPy.
LABEL_CHUNK_ROWS = 50_000
_LABEL_ROW = np.dtype([("item", np.int64), ("labeler", np.int64), ("label_class", np.int64)])
# Exports of projects this small run in the request; bigger ones in the worker.
INLINE_MAX_ITEMS = 2_000
SOURCES = ("gold", "resolution", "consensus", "none")
CONSENSUS_METHODS = ("dawid_skene", "majority_vote")
SLICE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
PROGRESS_EVERY_ROWS = 10_000
URL_PLACEHOLDER = 987654321
ERROR_CHARS = 2000

DEFAULT_OPTIONS = {
    "include_labels": False,
    "include_history": False,
    "include_predictions": False,
    "pseudonymize": False,
    "consensus": "dawid_skene",
    "split": [],
    "source": [],
    "min_confidence": None,
    "slice": [],
    "label_class": [],
    "only_final": False,
}


class ExportError(DomainError):
    """An export request the domain refuses (unknown option, class or slice)."""


def check_options(project, options: dict | None) -> dict:
    """Options merged over :data:`DEFAULT_OPTIONS`; an unknown option, an unknown class, a bad slice
    or a bad value is refused naming it. The API's serializer checks shapes first; the CLI relies
    on this alone."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ExportError(f"unknown option(s): {', '.join(unknown)}", unknown[0])
    out = {**DEFAULT_OPTIONS, **given}
    for name in ("include_labels", "include_history", "include_predictions", "pseudonymize", "only_final"):
        if not isinstance(out[name], bool):
            raise ExportError(f"{name} must be true or false", name)
    if out["consensus"] not in CONSENSUS_METHODS:
        raise ExportError(f"consensus must be one of {', '.join(CONSENSUS_METHODS)}", "consensus")
    for name, allowed in (("split", ("train", "dev", "test")), ("source", SOURCES)):
        values = out[name]
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or any(v not in allowed for v in values):
            raise ExportError(f"{name} must be a list of {', '.join(allowed)}", name)
        out[name] = sorted(set(values))
    conf = out["min_confidence"]
    if conf is not None and (isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1):
        raise ExportError("min_confidence must be a number in [0, 1]", "min_confidence")
    slices = out["slice"]
    if isinstance(slices, str):
        slices = [slices]
    parsed = []
    for text in slices if isinstance(slices, list) else [None]:
        key, sep, value = str(text).partition("=") if isinstance(text, str) else ("", "", "")
        if not sep or not SLICE_KEY.match(key):
            raise ExportError(f"slice must be key=value (key: letters, digits, _ . -); got {text!r}", "slice")
        parsed.append(f"{key}={value}")
    out["slice"] = parsed
    classes = out["label_class"]
    if isinstance(classes, str):
        classes = [classes]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ExportError("label_class must be a list of class names", "label_class")
    known = set(LabelClass.objects.filter(project=project).values_list("name", flat=True))
    missing = sorted(set(classes) - known)
    if missing:
        raise ExportError(f"no class named {', '.join(missing)} in this project", "label_class")
    out["label_class"] = sorted(set(classes))
    if out["include_history"] and not out["include_labels"]:
        out["include_labels"] = True  # the history is of the labelers' labels
    return out


def check_format(fmt) -> str:
    if fmt not in W.FORMATS:
        raise ExportError(f"unknown format {fmt!r}; one of {', '.join(W.FORMATS)}", "format")
    return fmt


# --------------------------------------------------------------------------------------------
# The final label of every item (the snapshot's precedence)
# --------------------------------------------------------------------------------------------


@dataclass
class FinalLabels:
    """Per item, by position in ``positions`` (item id -> index): arrays of shape (N,)."""

    positions: dict
    label: np.ndarray  # int64, class index into `names`, -1 for none
    source: np.ndarray  # int8, index into SOURCES
    confidence: np.ndarray  # float, NaN unless the source is consensus
    ambiguous: np.ndarray  # bool
    names: list  # live class names by index
    name_of: dict = field(default_factory=dict)  # any class id of the project -> name shown


def final_labels(project, method: str) -> FinalLabels:
    """The final label of each item of ``project``: training.services' snapshot code with the
    export's two differences (module docstring)."""
    # The snapshot's own code, reused so the rule is one.
    from training.datasets import truth_arrays
    from training.services import class_index, training_settings
    from training.snapshot import AMBIGUOUS, CONSENSUS, GOLD, RESOLUTION, select_labels

    classes = class_index(project)
    item_ids = np.fromiter(
        Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True).iterator(chunk_size=50_000),
        dtype=np.int64,
    )
    n = item_ids.size
    positions = dict(zip(item_ids.tolist(), range(n), strict=True))
    gold, resolution, resolution_ambiguous = truth_arrays(project, positions, classes, n)
    random_state = training_settings()["RANDOM_STATE"]
    consensus, confidence = _consensus(project, item_ids, classes, method, random_state)
    k = len(classes.ids)
    if k:
        label, status = select_labels(
            resolution,
            resolution_ambiguous,
            gold,
            consensus,
            confidence,
            classes.ambiguity,
            min_confidence=0.0,
            keep_ambiguity=True,
            # as the snapshot does: an SME's "ambiguous" takes the first ambiguity class, if any
            fallback_ambiguity_class=int(np.flatnonzero(classes.ambiguity)[0]) if classes.ambiguity.any() else -1,
        )
    else:
        label, status = np.full(n, -1, dtype=np.int64), np.full(n, 5, dtype=np.int8)
    source = np.full(n, SOURCES.index("none"), dtype=np.int8)
    source[status == RESOLUTION] = SOURCES.index("resolution")
    source[status == AMBIGUOUS] = SOURCES.index("resolution")  # an SME's "ambiguous" with no class
    source[status == GOLD] = SOURCES.index("gold")
    source[status == CONSENSUS] = SOURCES.index("consensus")
    ambiguous = resolution_ambiguous | (status == AMBIGUOUS)
    named = label >= 0
    ambiguous[named] |= classes.ambiguity[label[named]] if k else False
    conf = np.where(status == CONSENSUS, confidence, np.nan)

    name_of = {}
    for pk, name in LabelClass.objects.filter(project=project).values_list("pk", "name"):
        idx = classes.index_of.get(pk)
        name_of[pk] = classes.names[idx] if idx is not None else name
    return FinalLabels(positions, label, source, conf, ambiguous, list(classes.names), name_of)


def current_label_arrays(project, item_ids: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(item position, labeler position, class index) int64 arrays of the project's current labels,
    one per (item, labeler), and the number of labelers; ``item_ids`` sorted ascending.

    The same selection as training.datasets._consensus (a retired class's label is skipped; of an
    annotation's several labels the one with the lowest class id counts; labelers are numbered in
    order of first appearance), read ``LABEL_CHUNK_ROWS`` rows at a time into a NumPy array."""
    rows = (
        AnnotationLabel.objects.filter(annotation__item__project=project, annotation__is_current=True)
        .order_by("annotation__item_id", "annotation__labeler_id", "label_class_id")
        .values_list("annotation__item_id", "annotation__labeler_id", "label_class_id")
    )
    triples = np.fromiter(rows.iterator(chunk_size=LABEL_CHUNK_ROWS), dtype=_LABEL_ROW)
    empty = np.zeros(0, dtype=np.int64)
    if not triples.size or not classes.index_of:
        return empty, empty, empty, 0
    # class id -> class index (-1: retired, or not this project's)
    lookup = np.full(max(classes.index_of) + 1, -1, dtype=np.int64)
    lookup[np.fromiter(classes.index_of.keys(), dtype=np.int64)] = np.fromiter(classes.index_of.values(), np.int64)
    class_ids = triples["label_class"]
    label = np.full(class_ids.size, -1, dtype=np.int64)
    known = (class_ids >= 0) & (class_ids < lookup.size)
    label[known] = lookup[class_ids[known]]
    live = label >= 0
    item, labeler, label = triples["item"][live], triples["labeler"][live], label[live]
    del triples, class_ids
    # Rows come sorted by (item, labeler): the first of each run is the one that counts.
    first = np.ones(item.size, dtype=bool)
    first[1:] = (item[1:] != item[:-1]) | (labeler[1:] != labeler[:-1])
    item, labeler, label = item[first], labeler[first], label[first]
    _, first_seen, inverse = np.unique(labeler, return_index=True, return_inverse=True)
    rank = np.empty(first_seen.size, dtype=np.int64)
    rank[np.argsort(first_seen, kind="stable")] = np.arange(first_seen.size)
    return np.searchsorted(item_ids, item), rank[inverse], label, int(first_seen.size)


def _consensus(project, item_ids: np.ndarray, classes, method: str, random_state):
    """training.datasets' consensus (same labels, same numbering, same code) from NumPy input."""
    from training.datasets import consensus_from_arrays

    item_idx, labeler_idx, label, n_labelers = current_label_arrays(project, item_ids, classes)
    return consensus_from_arrays(
        item_idx, labeler_idx, label, item_ids.size, n_labelers, len(classes.ids), method, random_state
    )


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def pseudonymizer(salt: bytes):
    """name -> a stable pseudonym under ``salt`` (HMAC-SHA256): the same name gets the same
    pseudonym within one export, unrelated ones in another (each export draws its own salt)."""

    def pseudonym(name: str) -> str:
        return "labeler-" + hmac.new(salt, name.encode("utf-8"), hashlib.sha256).hexdigest()[:12]

    return pseudonym


def _predictions(project, final: FinalLabels) -> tuple[str, dict] | None:
    """(model short id, {item id: (class name, probability)}) of the promoted model's stored
    predictions, or None when there is none. Read only."""
    from training.models import ModelVersion
    from training.services import TrainingError, out_of_sample

    version = ModelVersion.objects.filter(project=project, is_promoted=True).select_related("snapshot").first()
    if version is None or version.snapshot is None:
        return None
    try:
        item_ids, proba = out_of_sample(version)
    except TrainingError:
        return None
    names = [c["name"] for c in version.snapshot.classes]
    if proba.ndim != 2 or proba.shape[1] != len(names) or not len(item_ids):
        return None
    best = proba.argmax(axis=1)
    score = proba[np.arange(len(best)), best]
    return version.short_id, {
        int(i): (names[int(b)], float(s))
        for i, b, s in zip(item_ids.tolist(), best.tolist(), score.tolist(), strict=True)
    }


def _item_queryset(project, options):
    qs = Item.objects.filter(project=project)
    if options["split"]:
        qs = qs.filter(split__in=options["split"])
    for n, text in enumerate(options["slice"]):
        key, _, value = text.partition("=")
        # The key as a JSON key, never a lookup name ("in", "contains"); compared as text (->>).
        # Cast: on SQLite a key transform's exact lookup reads its right side as JSON ("malformed JSON").
        value_of_key = Cast(KeyTextTransform(key, "metadata"), TextField())
        qs = qs.alias(**{f"_slice{n}": value_of_key}).filter(**{f"_slice{n}": value})
    return qs


def _keep(final: FinalLabels, pos: int, options) -> bool:
    source = SOURCES[int(final.source[pos])]
    if options["only_final"] and (source == "none" or final.label[pos] < 0):
        return False
    if options["source"] and source not in options["source"]:
        return False
    threshold = options["min_confidence"]
    if threshold is not None and source == "consensus" and not final.confidence[pos] >= threshold:
        return False
    if options["label_class"]:
        label = int(final.label[pos])
        if label < 0 or final.names[label] not in options["label_class"]:
            return False
    return True


class ExportRows:
    """The rows of one export, read in keyset chunks. Iterate once; ``done`` counts items read
    (kept or not) and ``total`` is the number of items the SQL filters leave, for progress."""

    def __init__(self, project, options: dict, *, salt: bytes | None = None, chunk_items: int = CHUNK_ITEMS):
        self.project = project
        self.options = options
        self.chunk_items = chunk_items
        self.final = final_labels(project, options["consensus"])
        self.predictions = _predictions(project, self.final) if options["include_predictions"] else None
        self.pseudonym = pseudonymizer(salt or secrets.token_bytes(32)) if options["pseudonymize"] else None
        self.queryset = _item_queryset(project, options)
        self.total = self.queryset.count()
        self.done = 0
        # Concord's own URL of an item's image (members only), made once and filled in per row.
        self.image_url = reverse("item-file", args=[URL_PLACEHOLDER, "image"])

    def _labeler(self, name):
        return self.pseudonym(name) if self.pseudonym else name

    def __iter__(self):
        last = 0
        fields = ("pk", "external_id", "split", "metadata", "text", "image")
        while True:
            chunk = list(self.queryset.filter(pk__gt=last).order_by("pk").values_list(*fields)[: self.chunk_items])
            if not chunk:
                return
            last = chunk[-1][0]
            yield from self._rows(chunk)
            self.done += len(chunk)

    def _rows(self, chunk):
        final, options = self.final, self.options
        kept = [c for c in chunk if _keep(final, final.positions[c[0]], options)]
        if not kept:
            return
        ids = [c[0] for c in kept]
        versions, by_item, classes_of = defaultdict(set), defaultdict(list), defaultdict(list)
        if not options["include_labels"]:
            # Only the guideline versions: a few distinct pairs per item, not every annotation.
            for item_id, version in (
                Annotation.objects.filter(item_id__in=ids, is_current=True, guideline__isnull=False)
                .order_by()
                .values_list("item_id", "guideline__version")
                .distinct()
            ):
                versions[item_id].add(version)
        else:
            anns = Annotation.objects.filter(item_id__in=ids)
            if not options["include_history"]:
                anns = anns.filter(is_current=True)
            anns = list(
                anns.order_by("item_id", "created_at", "pk").values_list(
                    "pk",
                    "item_id",
                    "labeler__username",
                    "unsure",
                    "note",
                    "guideline__version",
                    "created_at",
                    "is_current",
                )
            )
            for ann in anns:
                if ann[7] and ann[5] is not None:
                    versions[ann[1]].add(ann[5])
                by_item[ann[1]].append(ann)
            if anns:
                for ann_id, class_id in (
                    AnnotationLabel.objects.filter(annotation_id__in=[a[0] for a in anns])
                    .order_by("annotation_id", "label_class_id")
                    .values_list("annotation_id", "label_class_id")
                ):
                    classes_of[ann_id].append(final.name_of.get(class_id, str(class_id)))
        data_kind = self.project.data_kind
        for pk, external_id, split, metadata, text, image in kept:
            pos = final.positions[pk]
            label = int(final.label[pos])
            source = SOURCES[int(final.source[pos])]
            conf = final.confidence[pos]
            row = {
                "item_id": pk,
                "external_id": external_id,
                "split": split,
                "metadata": metadata or {},
                "text": text if data_kind == "text" else None,
                "image": (image or None) if data_kind == "image" else None,
                "final_label": final.names[label] if label >= 0 else None,
                "final_label_source": None if source == "none" else source,
                "consensus_method": options["consensus"] if source == "consensus" else None,
                "confidence": None if np.isnan(conf) else round(float(conf), 6),
                "ambiguous": bool(final.ambiguous[pos]),
                "guideline_versions": sorted(versions.get(pk, ())),
            }
            if data_kind == "image":
                row["image_url"] = self.image_url.replace(str(URL_PLACEHOLDER), str(pk)) if image else None
            if options["include_labels"]:
                row["labels"] = [
                    {
                        "labeler": self._labeler(a[2]),
                        "labels": classes_of.get(a[0], []),
                        "unsure": a[3],
                        "note": a[4],
                        "guideline_version": a[5],
                        "created_at": a[6].isoformat(),
                        "current": a[7],
                    }
                    for a in by_item.get(pk, ())
                ]
            if self.predictions is not None:
                model, scores = self.predictions
                hit = scores.get(pk)
                row["prediction"] = {"model": model, "label": hit[0], "score": round(hit[1], 6)} if hit else None
            elif options["include_predictions"]:
                row["prediction"] = None
            yield row


def write_export(project, fmt: str, options: dict, out, *, salt: bytes | None = None, progress=None) -> int:
    """Write the export to the binary file ``out``; the number of rows. ``progress(done, total)``
    is called every few thousand items."""
    rows = ExportRows(project, options, salt=salt)

    def reporting():
        next_report = PROGRESS_EVERY_ROWS
        for row in rows:
            yield row
            if progress is not None and rows.done >= next_report:
                progress(rows.done, rows.total)
                next_report = rows.done + PROGRESS_EVERY_ROWS

    return W.write(fmt, reporting(), out, data_kind=project.data_kind)


def label_config(project) -> str:
    names = list(
        LabelClass.objects.filter(project=project, is_active=True, merged_into__isnull=True)
        .order_by("order", "name", "pk")
        .values_list("name", flat=True)
    )
    return W.label_studio_config(project.data_kind, names, multi_label=project.task_type == "multi_label")


# --------------------------------------------------------------------------------------------
# Stored exports
# --------------------------------------------------------------------------------------------


def export_root() -> Path:
    return Path(settings.MEDIA_ROOT) / "exports"


def file_path(export: DatasetExport) -> Path:
    """The absolute path of a finished export's file; refuses anything outside the export folder."""
    root = export_root().resolve()
    path = (Path(settings.MEDIA_ROOT) / export.file).resolve()
    if not export.file or not path.is_relative_to(root):
        raise NotFound(f"export {export.pk} has no file")
    return path


def download_name(export: DatasetExport) -> str:
    return f"{export.project.slug}-export-{export.pk}.{W.EXTENSIONS[export.format]}"


def create_export(project, fmt, options=None, *, user=None, run_inline: bool | None = None) -> DatasetExport:
    """Record an export and run it: in this call when the project is small (or ``run_inline``),
    else in the worker once the record is committed."""
    fmt = check_format(fmt)
    options = check_options(project, options)
    export = DatasetExport.objects.create(
        project=project,
        created_by=user if user is not None and getattr(user, "is_authenticated", False) else None,
        format=fmt,
        options=options,
        label_config=label_config(project) if fmt == "label_studio" else "",
    )
    if run_inline is None:
        run_inline = Item.objects.filter(project=project).count() <= INLINE_MAX_ITEMS
    if run_inline:
        run_export(export.pk)
        export.refresh_from_db()
    else:
        queueing.queue_on_commit(queueing.RUN_DATASET_EXPORT, export.pk)
    return export


def _leftovers(folder: Path, export_id: int):
    return folder.glob(f".{export_id}-*.part")


def run_export(export_id: int) -> str | None:
    """Write an export's file (the worker's and the small-export path). Safe to run twice: a done
    export is left alone, and what a killed earlier run left (a ``.part`` file) is removed before
    starting over. Returns the status, None if the export was deleted."""
    export = DatasetExport.objects.select_related("project").filter(pk=export_id).first()
    if export is None:
        return None
    if export.status == DatasetExport.Status.DONE:
        return export.status
    project = export.project
    folder = export_root() / str(project.pk)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in _leftovers(folder, export.pk):
        stale.unlink(missing_ok=True)
    DatasetExport.objects.filter(pk=export.pk).update(
        status=DatasetExport.Status.RUNNING, progress=0.0, error="", started_at=timezone.now()
    )
    final = folder / f"{export.pk}.{W.EXTENSIONS[export.format]}"
    temp = folder / f".{export.pk}-{secrets.token_hex(6)}.part"

    def progress(done, total):
        DatasetExport.objects.filter(pk=export.pk).update(progress=min(0.99, done / total) if total else 0.0)

    try:
        with open(temp, "wb") as out:
            rows = write_export(project, export.format, export.options, out, progress=progress)
            out.flush()
            os.fsync(out.fileno())
        digest, size = _sha256(temp)
        os.replace(temp, final)
    except Exception as exc:
        temp.unlink(missing_ok=True)
        message = (exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}")[:ERROR_CHARS]
        DatasetExport.objects.filter(pk=export.pk).update(
            status=DatasetExport.Status.FAILED, error=message, finished_at=timezone.now()
        )
        raise
    DatasetExport.objects.filter(pk=export.pk).update(
        status=DatasetExport.Status.DONE,
        progress=1.0,
        file=str(final.relative_to(settings.MEDIA_ROOT)),
        rows=rows,
        size_bytes=size,
        sha256=digest,
        finished_at=timezone.now(),
    )
    return DatasetExport.Status.DONE


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
