"""The settings that let work survive a dead worker: the broker's visibility timeout, the heartbeat
and reaper tuning (fail-loud, from the environment) and the beat schedule of the reapers."""

import json
import os
import subprocess
import sys
from pathlib import Path

from config.celery import app

ROOT = Path(__file__).resolve().parents[2]


def celery_conf(**env):
    """(broker_transport_options, CONCORD_WORKER, beat_schedule) as a fresh process reads them."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "CONCORD_WORKER_"))}
    environment.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; from config.celery import app; "
        "print(json.dumps([app.conf.broker_transport_options, s.CONCORD_WORKER, "
        "{k: [v['task'], v['schedule'], v['options']] for k, v in app.conf.beat_schedule.items()}]))"
    )
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_redis_gets_a_visibility_timeout_of_hours_and_the_environment_can_change_it():
    result = celery_conf(CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert result.returncode == 0, result.stderr
    options, worker, _ = json.loads(result.stdout)
    assert options == {"visibility_timeout": 6 * 3600}
    assert worker == {"HEARTBEAT_SECONDS": 15, "REAP_EVERY_SECONDS": 60, "MAX_ATTEMPTS": 3}

    result = celery_conf(CELERY_BROKER_URL="rediss://example:6380/0", CELERY_VISIBILITY_TIMEOUT="7200")
    assert json.loads(result.stdout)[0] == {"visibility_timeout": 7200}


def test_beat_runs_both_reapers_as_often_as_configured():
    result = celery_conf(CONCORD_WORKER_REAP_EVERY_SECONDS="20", CONCORD_WORKER_HEARTBEAT_SECONDS="5")
    assert result.returncode == 0, result.stderr
    _, worker, schedule = json.loads(result.stdout)
    assert worker["REAP_EVERY_SECONDS"] == 20 and worker["HEARTBEAT_SECONDS"] == 5
    reapers = {name: entry for name, entry in schedule.items() if name.startswith("reap-")}
    assert reapers == {
        "reap-trainings-and-exports": ["training.reap", 20.0, {"expires": 20.0}],
        "reap-cycles": ["active_learning.reap", 20.0, {"expires": 20.0}],
        "reap-tuning-runs": ["training.reap_tuning", 20.0, {"expires": 20.0}],
    }
    # The other periodic work (telemetry roll-up, ...) keeps its own period.
    assert schedule["deployment-rollup-and-retention"][0] == "deployment.rollup_and_expire"


def test_bad_values_fail_loudly():
    result = celery_conf(CONCORD_WORKER_MAX_ATTEMPTS="0")
    assert result.returncode != 0 and "CONCORD_WORKER_MAX_ATTEMPTS=0 must be at least 1" in result.stderr
    result = celery_conf(CELERY_BROKER_URL="redis://127.0.0.1:6379/0", CELERY_VISIBILITY_TIMEOUT="soon")
    assert result.returncode != 0 and "CELERY_VISIBILITY_TIMEOUT='soon' is not a whole number" in result.stderr


def test_the_scheduled_tasks_exist():
    app.loader.import_default_modules()
    assert {"training.reap", "active_learning.reap"} <= set(app.tasks)
    assert {entry["task"] for entry in app.conf.beat_schedule.values()} <= set(app.tasks)
