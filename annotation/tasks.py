"""Celery tasks of the annotation app. Each takes ids, calls one service and is safe to run twice
(tasks are acknowledged late, so a worker lost mid-task means the task runs again)."""

from celery import shared_task
from django.db import OperationalError

from .services import quality


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def refresh_quality_report(project_id: int, force: bool = False) -> int | None:
    """Compute and store the project's label-quality report unless the latest one is fresh.

    Retries (with backoff) only on a database OperationalError: a lost connection or a lock
    timeout, which a later try may not meet. Returns the fresh report's id, None if the project
    was deleted."""
    return quality.refresh_quality_report(project_id, force=force)


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def run_dataset_export(export_id: int) -> str | None:
    """Write a dataset export's file (annotation/services/dataset_export.py). A killed run leaves
    no file under the export's name; the redelivered task removes its leftovers and starts over."""
    from .services import dataset_export

    return dataset_export.run_export(export_id)
