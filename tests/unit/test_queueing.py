"""config/queueing.py finds every task a service queues by name, in a fresh process that has
imported no tasks module (a web process), and queues on commit with the options given."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import queueing

ROOT = Path(__file__).resolve().parents[2]


def test_every_task_name_resolves_in_a_process_that_imported_no_tasks_module():
    code = """
import sys, django
django.setup()
apps = ("annotation", "active_learning", "training")
assert not [m for m in sys.modules if m.split(".")[0] in apps and m.endswith(".tasks")], "tasks already imported"
from config import queueing
names = [queueing.TRAIN_MODEL, queueing.EXPORT_MODEL, *queueing.CYCLE_STEPS, queueing.REFRESH_QUALITY_REPORT]
for name in names:
    task = queueing.task(name)
    print(name, task.name, task.run.__module__)
"""
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    environment["DJANGO_SETTINGS_MODULE"] = "config.settings"
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [(name, module) for name, registered, module in rows if name == registered] == [
        ("training.train_model", "training.tasks"),
        ("training.export_model", "training.tasks"),
        ("active_learning.train_step", "active_learning.tasks"),
        ("active_learning.score_step", "active_learning.tasks"),
        ("active_learning.select_step", "active_learning.tasks"),
        ("active_learning.queue_step", "active_learning.tasks"),
        ("annotation.tasks.refresh_quality_report", "annotation.tasks"),
    ]


def test_the_task_found_is_the_one_its_module_defines():
    from training import tasks

    assert queueing.task(queueing.TRAIN_MODEL) is tasks.train_model._get_current_object()


def test_an_unknown_name_is_refused():
    with pytest.raises(KeyError):
        queueing.task("training.no_such_task")


@pytest.mark.django_db
def test_queue_on_commit_queues_once_the_transaction_commits(monkeypatch, django_capture_on_commit_callbacks):
    from training import tasks

    queued = []
    monkeypatch.setattr(tasks.train_model, "apply_async", lambda args, **options: queued.append((args, options)))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        queueing.queue_on_commit(queueing.TRAIN_MODEL, 7, queue="gpu")
        assert queued == []
    assert len(callbacks) == 1 and queued == [((7,), {"queue": "gpu"})]
