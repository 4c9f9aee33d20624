"""Training services: snapshot -> train -> evaluate -> register, and promote / roll back.

- :func:`~training.registry.start_training` (a request) checks the request, creates a ``training``
  ModelVersion and queues ``train_model`` once the transaction commits.
- :func:`run_training` (the worker, or ``manage.py train --sync``) claims the version, freezes
  the labels into a :class:`~training.models.DatasetSnapshot`, fits the trainer, evaluates it,
  writes the artifact (temporary file, then rename) and only then marks the version ``ready``,
  in one conditional UPDATE. A run that dies anywhere before that UPDATE leaves the version
  ``training`` with no artifact registered; the redelivered task (``acks_late``) claims it again
  and starts over. While it runs, a heartbeat thread (training/heartbeat.py) stamps the version;
  one whose heartbeat stopped for ``STALE_AFTER_SECONDS`` (its worker was killed) is re-queued,
  up to ``MAX_ATTEMPTS`` runs, by the periodic reaper (training/recovery.py), or marked failed
  when the project's next training starts before a reaper got to it. Every write of a run is
  conditional on its ``run_token``, so two deliveries of the same task (a broker's redelivery and
  the reaper's re-queue, say) never both register a model: the later claim wins and the earlier
  run stops at its next progress write.
- :func:`~training.registry.promote` and :func:`~training.registry.rollback` change the project's
  current model and record it.

Evaluation is on the dev split, or by K-fold cross-validation over train + dev when the project
has fewer than ``CV_BELOW_LABELS`` labels there (or no dev label). The test split is scored once
for the final report and never used to choose anything.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import numpy as np
from django.db import transaction
from django.utils import timezone

from annotation.models import Split

from . import leakage_service
from . import metrics as M
from .artifacts import _save_out_of_sample, artifact_root
from .conf import PROGRESS_EVERY_SECONDS, STAGE_SPAN, training_settings
from .datasets import build_snapshot, load_dataset
from .errors import Superseded, TrainingError, readable_error
from .evaluation import evaluate_model
from .heartbeat import beating
from .models import ModelVersion
from .trainers import get_trainer

logger = logging.getLogger(__name__)


class Run:
    """One worker's claim on a version: every write goes through here, conditional on the token."""

    def __init__(self, version: ModelVersion, token: str):
        self.version = version
        self.token = token
        self.stage = None
        self.last_write = 0.0
        self.timings: dict[str, float] = {}
        self._stage_started = time.perf_counter()

    def _mine(self):
        return ModelVersion.objects.filter(
            pk=self.version.pk, run_token=self.token, status=ModelVersion.Status.TRAINING
        )

    def write(self, **fields):
        if not self._mine().update(heartbeat_at=timezone.now(), **fields):
            raise Superseded(self.version.pk)
        self.last_write = time.perf_counter()

    def enter(self, stage):
        now = time.perf_counter()
        if self.stage is not None:
            self.timings[self.stage] = round(now - self._stage_started, 3)
        self.stage, self._stage_started = stage, now
        self.write(stage=stage, progress=STAGE_SPAN[stage][0] if stage in STAGE_SPAN else 1.0)

    def advance(self, fraction, epoch=None, epochs=None, force=False, model=None):
        """Progress within the current stage (0..1); written at most every half second. With the
        fitting ``model``, its latest training and validation loss go to the progress bar too."""
        if not force and time.perf_counter() - self.last_write < PROGRESS_EVERY_SECONDS:
            return
        low, high = STAGE_SPAN[self.stage]
        fields = {"progress": min(max(low + (high - low) * float(fraction), 0.0), 1.0)}
        if epochs is not None:
            fields.update(epoch=epoch, epochs=epochs)
        if model is not None:
            fields.update(model.latest_losses())
        self.write(**fields)


def claim(version_id: int) -> Run | None:
    """Take the version for this run (a new token, attempts + 1); None when there is nothing to do
    (gone, ready or failed: a second delivery of a finished task is a no-op)."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().filter(pk=version_id).first()
        if version is None or version.status != ModelVersion.Status.TRAINING:
            return None
        token = uuid.uuid4().hex
        now = timezone.now()
        ModelVersion.objects.filter(pk=version.pk).update(
            run_token=token,
            attempts=version.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            stage=ModelVersion.Stage.SNAPSHOT,
            progress=0.0,
            epoch=None,
            epochs=None,
            loss=None,
            val_loss=None,
        )  # ``error`` keeps the reaper's note ("re-queued, attempt 2 of 3") while it trains again
        version.refresh_from_db()
    return Run(version, token)


def run_training(version_id: int) -> str | None:
    """Train, evaluate and register one version (what ``train_model`` runs). Returns the final
    status, or None when there was nothing to do. Never raises for a training failure: the
    version is marked failed with a readable error instead."""
    run = claim(version_id)
    if run is None:
        return None
    version = run.version
    try:
        with beating(run._mine, training_settings()["STALE_AFTER_SECONDS"]):
            _train(run)
        return ModelVersion.Status.READY
    except Superseded:
        logger.info("model version %s: another run took over; this one stops", version_id)
        return None
    except Exception as exc:
        logger.exception("training of model version %s (%s) failed", version.short_id, version.trainer)
        run._mine().update(
            status=ModelVersion.Status.FAILED,
            error=readable_error(exc),
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            timings=run.timings,
        )
        return ModelVersion.Status.FAILED


def _new_trainer(version, n_classes, data_kind):
    cls = get_trainer(version.trainer)
    kwargs = {"random_state": version.random_state, "data_kind": data_kind, **version.hyperparameters}
    if cls.name == "keras_cnn":
        kwargs["n_threads"] = int(training_settings()["TF_THREADS"])
    return cls(n_classes, **kwargs)


def _folds(y, n_folds, random_state):
    from sklearn.model_selection import KFold, StratifiedKFold

    n_folds = max(2, min(n_folds, y.size))
    present = np.bincount(y)
    smallest = present[present > 0].min() if y.size else 0
    if smallest >= n_folds:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
        return list(splitter.split(np.zeros(y.size), y))
    return list(KFold(n_splits=n_folds, shuffle=True, random_state=random_state).split(np.zeros(y.size)))


def _train(run: Run) -> Path:
    version = run.version
    project = version.project
    config = training_settings()
    started = time.perf_counter()

    # 1. Snapshot (kept across re-runs: a redelivered task trains on the same labels).
    run.enter(ModelVersion.Stage.SNAPSHOT)
    if version.snapshot_id is None:
        snap = build_snapshot(
            project, policy=version.policy, user=version.created_by, random_state=version.random_state
        )
        run.write(snapshot=snap)
        version.snapshot = snap
    snap = version.snapshot
    names = [c["name"] for c in snap.classes]
    k = len(names)

    # 2. Data.
    run.enter(ModelVersion.Stage.LOADING)
    data = load_dataset(snap, project.data_kind)
    leakage_service.check_snapshot(snap, data)  # near-duplicates across splits, reported on the model page
    train = np.flatnonzero(data.split == Split.TRAIN)
    dev = np.flatnonzero(data.split == Split.DEV)
    test = np.flatnonzero(data.split == Split.TEST)
    if k < 2:
        raise TrainingError("the snapshot has fewer than two classes to learn")
    pool = np.concatenate([train, dev])
    if np.unique(data.y[pool]).size < 2:
        raise TrainingError(
            f"there are {len(pool)} usable train/dev labels, of {np.unique(data.y[pool]).size} class(es): "
            "a classifier needs labels of at least two classes (check the snapshot's left-out counts)"
        )
    use_cv = len(pool) < config["CV_BELOW_LABELS"] or len(dev) == 0 or np.unique(data.y[train]).size < 2
    model = _new_trainer(version, k, project.data_kind)
    size = model.image_size

    # 3. Fit (and, for cross-validation, the out-of-fold predictions that evaluate it).
    run.enter(ModelVersion.Stage.FITTING)
    folds = []
    if use_cv:
        folds = _folds(data.y[pool], int(config["CV_FOLDS"]), version.random_state)
        steps = len(folds) + 1
        eval_rows = pool
        eval_proba = np.zeros((len(pool), k))
        for f, (fit_idx, held_idx) in enumerate(folds):
            fold_model = _new_trainer(version, k, project.data_kind)

            def fold_progress(fraction, epoch=None, epochs=None, f=f, fold_model=fold_model):
                run.advance((f + fraction) / steps, model=fold_model)

            if np.unique(data.y[pool[fit_idx]]).size < 2:
                raise TrainingError("a cross-validation fold holds labels of one class only; label more items")
            fold_model.fit(data.inputs(pool[fit_idx], size), data.y[pool[fit_idx]], progress=fold_progress)
            eval_proba[held_idx] = fold_model.predict_proba(data.inputs(pool[held_idx], size))
            run.advance((f + 1) / steps, force=True)

        def final_progress(fraction, epoch=None, epochs=None):
            run.advance((steps - 1 + fraction) / steps, epoch, epochs, model=model)

        model.fit(data.inputs(pool, size), data.y[pool], progress=final_progress)
        fit_rows = pool
    else:

        def progress(fraction, epoch=None, epochs=None):
            run.advance(fraction, epoch, epochs, force=epochs is not None, model=model)

        model.fit(data.inputs(train, size), data.y[train], data.inputs(dev, size), data.y[dev], progress=progress)
        eval_rows = dev
        eval_proba = model.predict_proba(data.inputs(dev, size))
        fit_rows = train

    # 4. Evaluate.
    run.enter(ModelVersion.Stage.EVALUATING)
    report = evaluate_model(version, project, data, model, names, eval_rows, eval_proba, fit_rows, test, folds, config)

    # 5. Save (temporary file, then rename), then register in one conditional UPDATE.
    run.enter(ModelVersion.Stage.SAVING)
    relative = Path(str(project.pk)) / f"{version.short_id}-a{version.attempts}{model.extension}"
    final = artifact_root() / relative
    for leftover in final.parent.glob(f".{version.short_id}-*"):
        leftover.unlink(missing_ok=True)  # temporary files of an earlier, killed run
    model.save(final)
    _save_out_of_sample(version, data.item_ids[eval_rows], eval_proba)
    run.timings[run.stage] = round(time.perf_counter() - run._stage_started, 3)
    run.timings["total"] = round(time.perf_counter() - started, 3)
    report["timings"] = run.timings
    report["history"] = getattr(model, "history_", None)  # the final model's learning history
    predictions = report.pop("predictions", None) or {}
    registered = run._mine().update(
        status=ModelVersion.Status.READY,
        stage=ModelVersion.Stage.DONE,
        progress=1.0,
        artifact=str(relative),
        metrics=M.json_safe(report),
        predictions=M.json_safe(predictions),
        timings=run.timings,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        epoch=getattr(model, "epochs_run_", None),
    )
    if not registered:
        final.unlink(missing_ok=True)
        raise Superseded(version.pk)
    for other in final.parent.glob(f"{version.short_id}-a*"):
        if other != final:
            other.unlink(missing_ok=True)  # artifacts of earlier runs that never registered
    return final


# --------------------------------------------------------------------------------------------
# Evaluation report
# --------------------------------------------------------------------------------------------


def progress_payload(version: ModelVersion) -> dict:
    """The small JSON the pages poll for a version's progress bar. While it trains, the stage label
    carries the reaper's note, if any (its worker was lost and the training was re-queued)."""
    stage_label = version.get_stage_display()
    if version.status == ModelVersion.Status.TRAINING and version.error:
        stage_label = f"{stage_label} · {version.error}"
    return {
        "id": version.short_id,
        "status": version.status,
        "stage": version.stage,
        "stage_label": stage_label,
        "progress": round(version.progress, 4),
        "epoch": version.epoch,
        "epochs": version.epochs,
        "error": version.error,
        "accuracy": version.headline_accuracy,
        "loss": version.loss,
        "val_loss": version.val_loss,
    }
