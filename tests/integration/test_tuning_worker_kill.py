"""A real worker process SIGKILLed in the middle of a tuning run: Celery beat's reaper re-queues the
run and a new worker searches it again and registers its best, once.

The same set-up as test_worker_kill.py (a separate ``celery worker`` process and Celery beat, short
heartbeat and stale settings through the environment, each scikit-learn fit slowed by 0.5 s so the
kill lands between two trials' fits); its helpers are reused.
"""

import os
import signal
from uuid import uuid4

import pytest
from django.db import connection

from training import tuning
from training.models import ModelVersion, TuningRun

from .test_worker_kill import STALE_SECONDS, Processes, alive, children, database_url, wait_for
from .training_data import add_digit_items


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_sigkilled_workers_tuning_run_is_finished_by_a_new_worker(project, settings, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the worker is a separate process: it needs the PostgreSQL test database")
    queue = f"concord-test-tuning-kill-{uuid4().hex[:8]}"
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "QUEUE": queue}
    add_digit_items(project, 45)  # few labels: 5-fold, so a trial is 5 slowed fits
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.integration.worker_kill_settings",
        "CONCORD_TEST_QUEUE": queue,
        "CONCORD_TEST_SLOW_FIT_SECONDS": "0.5",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CONCORD_WORKER_HEARTBEAT_SECONDS": "1",
        "CONCORD_WORKER_REAP_EVERY_SECONDS": "1",
        "CONCORD_TRAINING_STALE_AFTER_SECONDS": str(STALE_SECONDS),
        "CELERY_VISIBILITY_TIMEOUT": "3600",
    }
    processes = Processes(env, tmp_path)
    worker_args = ["worker", "--pool=prefork", "--concurrency=1", "-Q", queue, "--without-gossip", "--without-mingle"]
    space = {"C": {"low": 0.001, "high": 10.0, "log": True}, "image_size": 8}
    try:
        first = processes.start("worker-1", *worker_args, "-n", f"first-{queue}@%h")
        processes.start("beat", "beat", "--schedule", str(tmp_path / "beat-schedule"))
        run = tuning.start_tuning(project, trainer="sklearn_logreg", search="random", space=space,
                                  budget_trials=3, budget_minutes=10)  # fmt: skip

        def one_trial_listed():
            run.refresh_from_db()
            return run.status == "running" and run.trials.count() == 1

        wait_for(one_trial_listed, 120, "the first worker to list a trial", processes)
        pool = children(first.pid)
        os.kill(first.pid, signal.SIGKILL)
        for pid in pool:
            os.kill(pid, signal.SIGKILL)
        first.wait()
        wait_for(lambda: not any(alive(pid) for pid in pool), 10, "the pool processes to die", processes)
        processes.start("worker-2", *worker_args, "-n", f"second-{queue}@%h")

        def finished():
            run.refresh_from_db()
            return not run.is_active

        wait_for(finished, 240, "the new worker to finish the tuning run", processes)
    finally:
        processes.stop()

    assert run.status == "done", run.error
    assert run.recoveries == 1 and run.attempts == 2 and "re-queued (attempt 2 of 3)" in run.error
    assert [t.number for t in run.trials.all()] == [1, 2, 3]  # searched again from the start
    version = ModelVersion.objects.get(project=project)  # one model registered
    assert run.model_version_id == version.pk and version.headline_accuracy == run.best_trial.accuracy
    assert TuningRun.objects.count() == 1
