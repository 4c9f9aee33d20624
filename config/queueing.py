"""How services queue Celery work without importing the task modules.

A ``tasks.py`` imports its app's services (a task calls one service); a service that imported the
task module back, to queue it, would close an import circle. Services name the task instead, and
this module finds the registered task object by that name: the very object ``@shared_task`` made,
so its ``apply_async``, ``delay`` and ``si`` behave (and can be stubbed in tests) as if the task
module had been imported. tests/unit/test_import_cycles.py keeps the circles from coming back.
"""

from celery import current_app
from django.db import transaction

# Task names, as each tasks module registers them.
TRAIN_MODEL = "training.train_model"
EXPORT_MODEL = "training.export_model"
CYCLE_STEPS = (
    "active_learning.train_step",
    "active_learning.score_step",
    "active_learning.select_step",
    "active_learning.queue_step",
)
REFRESH_QUALITY_REPORT = "annotation.tasks.refresh_quality_report"
RUN_QUEUED_IMPORT = "annotation.tasks.run_queued_import"
RUN_DATASET_EXPORT = "annotation.tasks.run_dataset_export"


def task(name: str):
    """The registered task called ``name``. A web process may not have imported the tasks modules
    yet (only a worker imports them at start-up): the first lookup imports every installed app's
    ``tasks`` module (Celery's autodiscovery, run now; it touches no database)."""
    app = current_app
    if name not in app.tasks:
        app.autodiscover_tasks(force=True)
    return app.tasks[name]


def queue_on_commit(name: str, *args, **options) -> None:
    """Queue ``name(*args)`` once the current transaction commits (at once outside one), with
    ``apply_async`` options such as ``queue``."""
    transaction.on_commit(lambda: task(name).apply_async(args, **options))


TUNE = "training.tune"
