"""Celery tasks of the annotation app. Each takes ids, calls one service and is safe to run twice
(tasks are acknowledged late, so a worker lost mid-task means the task runs again)."""

from celery import Task, shared_task
from django.db import OperationalError

from .services import quality


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def refresh_quality_report(project_id: int, force: bool = False) -> int | None:
    """Compute and store the project's label-quality report unless the latest one is fresh.

    Retries (with backoff) only on a database OperationalError: a lost connection or a lock
    timeout, which a later try may not meet. Returns the fresh report's id, None if the project
    was deleted."""
    return quality.refresh_quality_report(project_id, force=force)


class _QueuedImportTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Retries exhausted (or a bug): without this the batch would stay `running` for ever.
        from .services import queued_import

        queued_import.give_up(args[0] if args else kwargs["batch_id"], exc)


@shared_task(
    base=_QueuedImportTask, acks_late=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3
)
def run_queued_import(batch_id: int) -> str | None:
    """Import a large upload kept under MEDIA_ROOT (services/queued_import.py), then remove the file.

    Safe to run twice: the import commits its rows and the batch's `done` together, and a batch
    already done or failed is only cleaned up. Returns the batch's final status."""
    from .services import queued_import

    return queued_import.run(batch_id)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def run_dataset_export(export_id: int) -> str | None:
    """Write a dataset export's file (annotation/services/dataset_export.py). A killed run leaves
    no file under the export's name; the redelivered task removes its leftovers and starts over."""
    from .services import dataset_export

    return dataset_export.run_export(export_id)
