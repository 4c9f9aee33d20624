"""Celery tasks of the training app. Each takes ids and is safe to run twice.

Tasks are acknowledged late and rejected when the worker is lost (config/settings.py), so a worker
killed mid-training gets its task redelivered; :func:`training.runs.run_training` then claims
the version again and starts over, and only a finished run ever marks a version ``ready``. When the
whole worker process dies, Redis gives the message back only after the visibility timeout (hours):
sooner, :func:`reap`, run by Celery beat, re-queues work whose heartbeat stopped.
"""

import os

from celery import shared_task

# Silence TensorFlow's start-up noise before anything in this worker imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@shared_task(name="training.train_model")
def train_model(model_version_id: int) -> str | None:
    """Snapshot, train, evaluate and register one ModelVersion; progress is written to the
    version as it goes, and a failure marks it ``failed`` with a readable error (no retry: a
    failed version stays failed and the MLE starts a new one). Returns the final status, or
    None when the version was already finished, gone or taken over by another delivery."""
    from .runs import run_training

    return run_training(model_version_id)


@shared_task(name="training.export_model")
def export_model(export_id: int) -> str | None:
    """Convert one ModelExport to TFLite, check it against the Keras model and register its
    bundle; a failure marks it ``failed`` with a readable error. Safe to run twice: a finished
    export is left alone, and of two concurrent deliveries only the last claim registers."""
    from .exports import run_export

    return run_export(export_id)


@shared_task(name="training.reap")
def reap() -> dict:
    """Re-queue trainings and exports whose worker stopped responding, or fail them after
    ``MAX_ATTEMPTS`` runs (training/recovery.py). Celery beat runs it (config/settings.py)."""
    from .recovery import reap

    return reap()


@shared_task(name="training.tune")
def tune(tuning_run_id: int) -> str | None:
    """Search one TuningRun, list its trials and register its best as a ModelVersion (not
    promoted); progress, cancel and failure are written to the run (training/tuning.py). Safe to
    run twice: a finished run is left alone, and of two deliveries only the last claim writes."""
    from .tuning_search import run_tuning

    return run_tuning(tuning_run_id)


@shared_task(name="training.reap_tuning")
def reap_tuning() -> dict:
    """Re-queue tuning runs whose worker stopped responding, or fail them after ``MAX_ATTEMPTS``
    runs (training/recovery.py). Celery beat runs it (config/settings.py)."""
    from .recovery import reap_tuning_runs

    return reap_tuning_runs()
