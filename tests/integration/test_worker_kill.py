"""A real worker process SIGKILLed while it trains a cycle's model: a new worker and Celery beat's
reaper finish the cycle in seconds, with exactly one batch queued.

Unlike the worker of test_cycles.py (a thread of this process), the worker here is a separate
``celery worker`` process (prefork pool, one child) on the test database and the configured broker,
with Celery beat beside it as in a deployment. Short heartbeat, stale and reap settings go to them
through the environment, so recovery takes seconds instead of the production minutes. The broker's
visibility timeout stays an hour, as in production, so Redis does not give the killed task's message
back during the test: the reaper alone recovers the cycle. (That message comes back later and finds
the cycle done; test_recovery.py races the two deliveries in one process.)
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import pytest
from django.db import connection

from active_learning import services
from active_learning.models import CycleSelection
from annotation.models import QueueEntry
from training.models import ModelVersion

ROOT = Path(__file__).resolve().parents[2]
STALE_SECONDS = 4
BATCH = 12


def children(pid):
    """Every descendant of ``pid`` (the prefork pool's processes), read from /proc."""
    by_parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        by_parent.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = by_parent.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def database_url():
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Processes:
    """The worker and beat processes the test starts; whatever is left is stopped at the end."""

    def __init__(self, env, logs):
        self.env, self.logs, self.running = env, logs, []

    def start(self, name, *args):
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel=INFO"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.running.append((process, log))
        return process

    def stop(self):
        for process, log in self.running:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    for pid in children(process.pid):
                        os.kill(pid, signal.SIGKILL)
                    process.kill()
                    process.wait()
            log.close()


def wait_for(check, timeout, what, processes):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    tails = {p.name: p.read_text()[-3000:] for p in processes.logs.glob("*.log")}
    pytest.fail(f"{what}: not after {timeout} s; logs: {tails}")


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_sigkilled_worker_s_cycle_is_finished_by_a_new_worker_with_one_batch(al_project, mle, settings, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the worker is a separate process: it needs the PostgreSQL test database")
    queue = f"concord-test-kill-{uuid4().hex[:8]}"
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "QUEUE": queue}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.integration.worker_kill_settings",
        "CONCORD_TEST_QUEUE": queue,
        "CONCORD_TEST_SLOW_FIT_SECONDS": "0.5",  # 6 fits (5-fold CV, then the final one): ~3 s of fitting
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CONCORD_WORKER_HEARTBEAT_SECONDS": "1",
        "CONCORD_WORKER_REAP_EVERY_SECONDS": "1",
        "CONCORD_TRAINING_STALE_AFTER_SECONDS": str(STALE_SECONDS),
        "CONCORD_ACTIVE_LEARNING_STALE_AFTER_SECONDS": str(STALE_SECONDS),
        "CELERY_VISIBILITY_TIMEOUT": "3600",
    }
    processes = Processes(env, tmp_path)
    worker_args = ["worker", "--pool=prefork", "--concurrency=1", "-Q", queue, "--without-gossip", "--without-mingle"]
    try:
        first = processes.start("worker-1", *worker_args, "-n", f"first-{queue}@%h")
        processes.start("beat", "beat", "--schedule", str(tmp_path / "beat-schedule"))
        cycle = services.launch(al_project, user=mle, strategy="mix", batch_size=BATCH)

        def fitting():
            cycle.refresh_from_db()
            version = cycle.model_version
            return version is not None and version.stage == ModelVersion.Stage.FITTING

        wait_for(fitting, 120, "the first worker to start fitting the cycle's model", processes)
        pool = children(first.pid)
        assert pool, "the prefork worker has a pool process"
        os.kill(first.pid, signal.SIGKILL)  # the main process first: it cannot hand the task back
        for pid in pool:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        first.wait()
        wait_for(lambda: not any(alive(pid) for pid in pool), 10, "the pool processes to die", processes)
        cycle.refresh_from_db()
        assert cycle.status == "running" and cycle.stage == "training" and cycle.recoveries == 0

        processes.start("worker-2", *worker_args, "-n", f"second-{queue}@%h")

        def requeued():
            cycle.refresh_from_db()
            return cycle.recoveries == 1

        wait_for(requeued, 120, "the reaper to re-queue the cycle", processes)
        requeued_after = time.monotonic() - killed
        assert cycle.error.endswith("while training and evaluating; re-queued (attempt 2 of 3).")

        def finished():
            cycle.refresh_from_db()
            return not cycle.is_active

        wait_for(finished, 180, "the new worker to finish the cycle", processes)
        done_after = time.monotonic() - killed
    finally:
        processes.stop()

    assert cycle.status == "done", cycle.error
    assert cycle.recoveries == 1 and "re-queued (attempt 2 of 3)" in cycle.error
    # One batch: the selection rows, and every queue entry the project has, are the batch's.
    selections = CycleSelection.objects.filter(cycle=cycle)
    entries = QueueEntry.objects.filter(project=al_project)
    assert selections.count() == entries.count() == entries.filter(is_active=True).count() == BATCH
    assert set(entries.values_list("pk", flat=True)) == set(selections.values_list("queue_entry_id", flat=True))
    assert cycle.summary["selected"] == BATCH and cycle.summary["superseded_entries"] == 0
    # The same model, trained again by the new worker.
    version = ModelVersion.objects.get(project=al_project)
    assert version.status == "ready" and version.attempts >= 2 and cycle.model_version_id == version.pk
    print(
        f"\nrecovery: re-queued {requeued_after:.1f} s after the SIGKILL, done {done_after:.1f} s after it "
        f"(heartbeat 1 s, stale after {STALE_SECONDS} s, reaper every 1 s)"
    )
