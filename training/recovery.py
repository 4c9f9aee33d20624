"""The reaper of trainings and exports whose worker stopped responding.

Celery beat runs :func:`reap` every ``CONCORD_WORKER["REAP_EVERY_SECONDS"]`` (config/settings.py).
Why it is needed beside the broker's own redelivery: a task is acknowledged late, but with Redis
the message of a SIGKILLed worker comes back only after the visibility timeout, which must outlast
the longest task, i.e. hours. A running task's heartbeat (training/heartbeat.py) tells a dead
worker from a busy one in seconds, so work silent for ``STALE_AFTER_SECONDS`` is re-queued here,
with a note on the page ("The worker stopped responding at 22:41 while fitting; re-queued
(attempt 2 of 3)."), and failed with the reason once it has had ``MAX_ATTEMPTS`` runs.

Only work a worker had claimed (a run token is set) is reaped: work still waiting in a long queue
has no heartbeat yet and is not lost. Re-queueing clears the run token, so a run of the lost worker
that is somehow still alive stops at its next write, and stamps the heartbeat, so the row is not
reaped again while its new message waits. If the broker later redelivers the original message as
well, the two are ordinary concurrent deliveries: the later claim wins and the other run stops at
its next write (training/runs.py), so one model or bundle is ever registered.

A cycle's model is left to the cycle's reaper (active_learning/recovery.py), which re-queues the
cycle from the step it reached.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from .heartbeat import worker_settings
from .models import ModelExport, ModelVersion

logger = logging.getLogger(__name__)


def lost_note(heartbeat_at, doing: str, attempt: int, max_attempts: int) -> str:
    """The reason shown on the page: when the worker went silent, and what happens next.
    ``attempt`` is the number of the run about to start; beyond ``max_attempts`` none does."""
    at = timezone.localtime(heartbeat_at).strftime("%H:%M")
    said = f"The worker stopped responding at {at} while {doing}"
    if attempt <= max_attempts:
        return f"{said}; re-queued (attempt {attempt} of {max_attempts})."
    return f"{said}; gave up after {max_attempts} attempts."


def _stale(model, running, limit):
    """Claimed rows of ``model`` in status ``running`` whose heartbeat is older than ``limit``."""
    return model.objects.filter(status=running, heartbeat_at__lt=limit).exclude(run_token="")


def reap_versions() -> dict:
    """Re-queue (or fail, after MAX_ATTEMPTS runs) stand-alone trainings whose worker stopped."""
    from .services import enqueue, stale_limit

    limit = stale_limit()
    max_attempts = int(worker_settings()["MAX_ATTEMPTS"])
    done = {"requeued": [], "failed": []}
    running = ModelVersion.Status.TRAINING
    # A cycle's model is the cycle's business (its reaper re-queues the cycle's steps).
    candidates = _stale(ModelVersion, running, limit).filter(cycles__isnull=True).values_list("pk", flat=True)
    for pk in list(candidates):
        with transaction.atomic():
            version = _stale(ModelVersion, running, limit).select_for_update(skip_locked=True).filter(pk=pk).first()
            if version is None:
                continue  # it beat, finished, or another reaper has it
            attempt = version.recoveries + 2  # the first run was attempt 1
            note = lost_note(version.heartbeat_at, version.get_stage_display().lower(), attempt, max_attempts)
            rows = ModelVersion.objects.filter(pk=pk)
            if attempt <= max_attempts:
                rows.update(recoveries=attempt - 1, run_token="", heartbeat_at=timezone.now(), error=note)
                transaction.on_commit(lambda pk=pk: enqueue(pk))
                done["requeued"].append(version.short_id)
            else:
                rows.update(status=ModelVersion.Status.FAILED, error=f"{note} Start a new training.",
                            finished_at=timezone.now())  # fmt: skip
                done["failed"].append(version.short_id)
            logger.warning("model %s: %s", version.short_id, note)
    return done


def reap_exports() -> dict:
    """Re-queue (or fail, after MAX_ATTEMPTS runs) exports whose worker stopped."""
    from .exports import enqueue
    from .services import stale_limit

    limit = stale_limit()
    max_attempts = int(worker_settings()["MAX_ATTEMPTS"])
    done = {"requeued": [], "failed": []}
    running = ModelExport.Status.EXPORTING
    for pk in list(_stale(ModelExport, running, limit).values_list("pk", flat=True)):
        with transaction.atomic():
            export = _stale(ModelExport, running, limit).select_for_update(skip_locked=True).filter(pk=pk).first()
            if export is None:
                continue
            attempt = export.recoveries + 2
            note = lost_note(export.heartbeat_at, f"exporting to {export.format}", attempt, max_attempts)
            rows = ModelExport.objects.filter(pk=pk)
            if attempt <= max_attempts:
                rows.update(recoveries=attempt - 1, run_token="", heartbeat_at=timezone.now(), error=note)
                transaction.on_commit(lambda pk=pk: enqueue(pk))
                done["requeued"].append(pk)
            else:
                rows.update(status=ModelExport.Status.FAILED, error=f"{note} Export the model again.",
                            finished_at=timezone.now())  # fmt: skip
                done["failed"].append(pk)
            logger.warning("export %s: %s", pk, note)
    return done


def reap() -> dict:
    """Both reapers; what they did, for the task's result and the log."""
    return {"models": reap_versions(), "exports": reap_exports()}


def reap_tuning_runs() -> dict:
    """Re-queue (or fail, after MAX_ATTEMPTS runs) tuning runs whose worker stopped. A re-queued
    run starts its search over (training/tuning.py), on the snapshot it had frozen."""
    from .models import TuningRun
    from .services import stale_limit
    from .tuning import enqueue

    limit = stale_limit()
    max_attempts = int(worker_settings()["MAX_ATTEMPTS"])
    done = {"requeued": [], "failed": []}
    running = TuningRun.Status.RUNNING
    for pk in list(_stale(TuningRun, running, limit).values_list("pk", flat=True)):
        with transaction.atomic():
            run = _stale(TuningRun, running, limit).select_for_update(skip_locked=True).filter(pk=pk).first()
            if run is None:
                continue
            attempt = run.recoveries + 2
            note = lost_note(run.heartbeat_at, run.get_stage_display().lower(), attempt, max_attempts)
            rows = TuningRun.objects.filter(pk=pk)
            if attempt <= max_attempts:
                rows.update(recoveries=attempt - 1, run_token="", heartbeat_at=timezone.now(), error=note)
                transaction.on_commit(lambda pk=pk: enqueue(pk))
                done["requeued"].append(pk)
            else:
                rows.update(status=TuningRun.Status.FAILED, error=f"{note} Start a new tuning run.",
                            finished_at=timezone.now())  # fmt: skip
                done["failed"].append(pk)
            logger.warning("tuning run %s: %s", pk, note)
    return done
