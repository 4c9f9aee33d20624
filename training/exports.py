"""TFLite exports of model versions: request, run (worker), override, bundle path.

``start_export`` (web) checks the request and queues ``export_model`` on commit; ``run_export``
(worker, what the task and ``manage.py export_tflite`` run) loads the Keras model, converts it
(training/tflite.py), runs the parity check on the dev split, writes the bundle atomically and
registers it. A claim token makes a second delivery of the same task harmless: only the run
holding the token may register its bundle. Failures mark the export ``failed`` with a readable
error; they never raise out of ``run_export``. While it runs, a heartbeat thread stamps the
export (training/heartbeat.py); one whose worker was killed is re-queued or failed by the reaper
(training/recovery.py).
"""

from __future__ import annotations

import logging
import uuid

import numpy as np
from django.db import transaction
from django.utils import timezone

from annotation.access import acting_user
from annotation.models import LabelClass
from annotation.tag_slices import tag_metadata, with_tags
from config import queueing

from .artifacts import artifact_root, load_model, stored_file
from .conf import training_settings
from .datasets import load_dataset
from .errors import TrainingError, checked_note, readable_error
from .heartbeat import beating
from .models import ModelExport, ModelVersion, SnapshotLabel
from .registry import queue_or_fail

logger = logging.getLogger(__name__)

EXPORTABLE_TRAINERS = ("keras_cnn",)
REPRESENTATIVE_MAX = 300  # train images calibrating the int8 quantization
DEFAULT_MAX_DROP = 0.01


class ExportError(TrainingError):
    """An export request the domain refuses (not ready, not a Keras model, classes changed...)."""


def max_drop() -> float:
    return float(training_settings().get("EXPORT_MAX_DROP", DEFAULT_MAX_DROP))


def check_exportable(version: ModelVersion, fmt: str) -> None:
    """Raise ExportError naming why ``version`` cannot be exported to ``fmt``."""
    if fmt not in ModelExport.Format.values:
        raise ExportError(f"quantize must be one of {', '.join(ModelExport.Format.values)}", "quantize")
    if version.status != ModelVersion.Status.READY:
        raise ExportError(f"model {version.short_id} is {version.status}: only a ready model can be exported")
    if version.trainer not in EXPORTABLE_TRAINERS:
        raise ExportError(f"only keras_cnn models export to TFLite; model {version.short_id} is {version.trainer}")
    snapshot = version.snapshot
    ids = [c["id"] for c in snapshot.classes]
    changed = sorted(
        LabelClass.objects.filter(pk__in=ids)
        .exclude(is_active=True, merged_into__isnull=True)
        .values_list("name", flat=True)
    )
    missing = len(ids) - LabelClass.objects.filter(pk__in=ids).count()
    if changed or missing:
        names = ", ".join(changed) or f"{missing} deleted"
        raise ExportError(
            f"the classes of model {version.short_id} changed since it was trained (merged or retired: {names}); "
            "train a new model first"
        )
    if fmt == ModelExport.Format.INT8 and not SnapshotLabel.objects.filter(snapshot=snapshot, split="train").exists():
        raise ExportError("the snapshot has no train images: the int8 representative set would be empty")


def start_export(version: ModelVersion, fmt: str, *, user=None, queue_task=True) -> ModelExport:
    """Create an ``exporting`` export and (with ``queue_task``) queue ``export_model`` on commit."""
    check_exportable(version, fmt)
    with transaction.atomic():
        export = ModelExport.objects.create(
            model_version=version,
            format=fmt,
            created_by=acting_user(user),
        )
        if queue_task:
            export_id = export.pk
            transaction.on_commit(lambda: enqueue(export_id))
    return export


def enqueue(export_id: int) -> None:
    """Queue ``export_model``; if the broker refuses, the export fails with that reason."""
    queue_or_fail(queueing.EXPORT_MODEL, export_id, ModelExport, running=ModelExport.Status.EXPORTING, what="export")


def bundle_path(export: ModelExport):
    """The absolute path of an export's bundle; refuses anything outside the artifact folder."""
    return stored_file(export.bundle, f"export {export.pk}", ExportError)


def bundle_filename(export: ModelExport) -> str:
    return f"concord-{export.model_version.short_id}-{export.format}.zip"


def override(export: ModelExport, *, user=None, note: str) -> ModelExport:
    """Accept a rejected export (an MLE's decision, with a note): it becomes ``ready``."""
    note = checked_note(note)
    if not note:
        raise ExportError("overriding a rejected export needs a note saying why", "note")
    updated = ModelExport.objects.filter(pk=export.pk, status=ModelExport.Status.REJECTED).update(
        status=ModelExport.Status.READY,
        override_note=note,
        override_by=acting_user(user),
        overridden_at=timezone.now(),
    )
    if not updated:
        raise ExportError(f"export {export.pk} is {export.status}: only a rejected export can be overridden")
    export.refresh_from_db()
    return export


# --------------------------------------------------------------------------------------------
# The run (worker)
# --------------------------------------------------------------------------------------------


def run_export(export_id: int) -> str | None:
    """Convert, check and register one export. Returns its final status, or None when it was
    already finished, gone or taken over by another delivery."""
    token = uuid.uuid4().hex
    claimed = ModelExport.objects.filter(pk=export_id, status=ModelExport.Status.EXPORTING).update(
        run_token=token, heartbeat_at=timezone.now()
    )
    if not claimed:
        return None
    export = ModelExport.objects.select_related("model_version__snapshot", "model_version__project").get(pk=export_id)
    mine = ModelExport.objects.filter(pk=export_id, run_token=token, status=ModelExport.Status.EXPORTING)
    path = None
    try:
        with beating(lambda: mine, training_settings()["STALE_AFTER_SECONDS"]):
            fields, path = _export(export, token)
        with transaction.atomic():
            if not mine.update(**fields, finished_at=timezone.now()):
                path.unlink(missing_ok=True)  # another delivery took over: its bundle counts
                return None
        return fields["status"]
    except Exception as exc:
        logger.exception("export %s of model %s failed", export_id, export.model_version.short_id)
        if path is not None:
            path.unlink(missing_ok=True)
        mine.update(status=ModelExport.Status.FAILED, error=readable_error(exc), finished_at=timezone.now())
        return ModelExport.Status.FAILED


def _export(export: ModelExport, token: str):
    from . import tflite as X

    version = export.model_version
    check_exportable(version, export.format)
    snapshot = version.snapshot
    model = load_model(version)
    size = model.image_size
    data = load_dataset(snapshot, "image")
    train_rows = np.flatnonzero(data.split == "train")
    eval_rows = np.flatnonzero(data.split == "dev")
    eval_split = "dev"
    if eval_rows.size == 0:
        eval_rows, eval_split = np.flatnonzero(data.split == "test"), "test"
    if eval_rows.size == 0:
        raise ExportError("the snapshot has no dev or test images to check the export against")
    representative = None
    if export.format == ModelExport.Format.INT8:
        if train_rows.size == 0:
            raise ExportError("the snapshot has no train images: the int8 representative set would be empty")
        rng = np.random.default_rng(version.random_state)
        pick = np.sort(rng.permutation(train_rows)[:REPRESENTATIVE_MAX])
        representative = data.inputs(pick, size)
    model_bytes = X.convert(model.model_, export.format, representative)
    X_eval, y_eval = data.inputs(eval_rows, size), data.y[eval_rows]
    keras_pred = model.predict_proba(X_eval).argmax(axis=1)
    scores, latency_ms = X.run_tflite(model_bytes, X_eval, n_threads=int(training_settings()["TF_THREADS"]) or None)
    tflite_pred = scores.argmax(axis=1)
    # Parity by slice: metadata values and tags alike (one query reads the project's tags).
    eval_meta = with_tags(data.item_ids[eval_rows], [data.metadata[i] for i in eval_rows.tolist()],
                          tag_metadata(version.project_id))  # fmt: skip
    figures = X.parity(y_eval, keras_pred, tflite_pred, eval_meta)
    figures.update(
        split=eval_split,
        size_bytes=len(model_bytes),
        latency_ms=latency_ms,
        max_drop=max_drop(),
        representative_n=0 if representative is None else len(representative),
    )
    rejected = export.format == ModelExport.Format.INT8 and figures["delta"] < -max_drop()
    io = X.io_details(model_bytes)
    created_at = timezone.now()
    labels = [c["name"] for c in snapshot.classes]
    metadata = {
        "bundle_format": X.BUNDLE_FORMAT,
        "model_version": version.short_id,
        "project": version.project.slug,
        "trainer": version.trainer,
        "format": export.format,
        "snapshot_hash": snapshot.content_hash,
        "classes": labels,
        "input": io["input"],
        "output": io["output"],
        "preprocessing": X.preprocessing(size),
        "parity": figures,
        "created_at": created_at.isoformat(),
    }
    relative = f"exports/{version.short_id}/export-{export.pk}-{export.format}-{token[:8]}.zip"
    path = artifact_root() / relative
    sha = X.write_bundle(path, model_bytes, labels, metadata)
    fields = {
        "status": ModelExport.Status.REJECTED if rejected else ModelExport.Status.READY,
        "parity": figures,
        "size_bytes": len(model_bytes),
        "sha256": sha,
        "bundle": relative,
        "error": (
            f"int8 dev accuracy {figures['tflite_accuracy']:.4f} is {-figures['delta']:.4f} below the Keras model's "
            f"{figures['keras_accuracy']:.4f} (allowed: {max_drop():.4f}); an MLE may accept it with a note"
            if rejected
            else ""
        ),
    }
    return fields, path
