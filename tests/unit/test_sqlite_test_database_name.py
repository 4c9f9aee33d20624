"""Each test run on SQLite gets its own test database file, so two `make test` runs started at the
same time on one machine never open (and delete) each other's file. Checked in fresh interpreters."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def sqlite_test_name(**env) -> str:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "TEST_DATABASE_NAME")
    }
    environment.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    code = "import os, django; django.setup(); from django.conf import settings as s; "
    code += "print(os.getpid(), s.DATABASES['default']['TEST']['NAME'])"
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    pid, name = result.stdout.split()
    return pid, name


def test_two_runs_get_two_files_under_var_named_by_their_process():
    (pid_a, name_a), (pid_b, name_b) = sqlite_test_name(), sqlite_test_name()
    assert name_a != name_b
    assert Path(name_a) == ROOT / "var" / f"test-{pid_a}.sqlite3"
    assert Path(name_b) == ROOT / "var" / f"test-{pid_b}.sqlite3"


def test_the_environment_names_the_file(tmp_path):
    _, name = sqlite_test_name(TEST_DATABASE_NAME=str(tmp_path / "mine.sqlite3"))
    assert name == str(tmp_path / "mine.sqlite3")
