"""The reaper of cycles whose worker stopped responding.

Celery beat runs :func:`reap` every ``CONCORD_WORKER["REAP_EVERY_SECONDS"]`` (config/settings.py);
training/recovery.py says why it is needed beside the broker's own redelivery. A claimed cycle
(running, with a run token) whose heartbeat and whose model's heartbeat both stopped for
``STALE_AFTER_SECONDS`` goes back to ``queued`` with a note on its page ("The worker stopped
responding at 22:41 while training and evaluating; re-queued (attempt 2 of 3).") and its chain is
queued again from the step it reached: a model already trained is not trained again, a scores file
already written is used. After ``MAX_ATTEMPTS`` runs it is failed with that reason, and its model
too if still training; the labeling queue is never touched (only the last step writes it, in one
transaction).

Two batches cannot come of it: re-queueing clears the cycle's run token, so a step of the lost
worker still somehow running stops at its next write; if the broker also redelivers the original
message, its claim and the re-queued chain's are ordinary concurrent deliveries, the later claim
wins, and the queue step writes the batch in one transaction only while it holds the claim, so the
cycle is ``done`` once and the other delivery finds nothing to do.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from training.heartbeat import worker_settings
from training.models import ModelVersion
from training.recovery import lost_note

from . import services
from .models import Cycle

logger = logging.getLogger(__name__)


def _stale(limit):
    return services.stale_cycles(limit).filter(status=Cycle.Status.RUNNING).exclude(run_token="")


def reap() -> dict:
    """Re-queue (or fail, after MAX_ATTEMPTS runs) cycles whose worker stopped; what it did."""
    limit = services.stale_limit()
    max_attempts = int(worker_settings()["MAX_ATTEMPTS"])
    done = {"requeued": [], "failed": []}
    for pk in list(_stale(limit).values_list("pk", flat=True)):
        with transaction.atomic():
            cycle = Cycle.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if cycle is None or not _stale(limit).filter(pk=pk).exists():
                continue  # it beat, finished, or another reaper has it
            attempt = cycle.recoveries + 2  # the first run was attempt 1
            note = lost_note(cycle.heartbeat_at, cycle.get_stage_display().lower(), attempt, max_attempts)
            model = ModelVersion.objects.filter(pk=cycle.model_version_id, status=ModelVersion.Status.TRAINING)
            if attempt <= max_attempts:
                Cycle.objects.filter(pk=pk).update(
                    status=Cycle.Status.QUEUED, recoveries=attempt - 1, run_token="",
                    heartbeat_at=timezone.now(), error=note,
                )  # fmt: skip
                model.update(run_token="", heartbeat_at=timezone.now(), error=note)  # its lost run stops too
                transaction.on_commit(lambda pk=pk, stage=cycle.stage: services.queue_chain(pk, stage))
                done["requeued"].append(pk)
            else:
                note = f"{note} The queue was not changed. Launch a new cycle."
                Cycle.objects.filter(pk=pk).update(status=Cycle.Status.FAILED, error=note, finished_at=timezone.now())
                model.update(status=ModelVersion.Status.FAILED, error=note, finished_at=timezone.now())
                transaction.on_commit(lambda cycle=cycle: services._remove_scores(cycle))
                done["failed"].append(pk)
            logger.warning("cycle %s of project %s: %s", cycle.number, cycle.project_id, note)
    return done
