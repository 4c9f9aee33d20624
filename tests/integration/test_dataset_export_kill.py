"""An export process SIGKILLed midway through writing leaves no file under the export's name, and
running the export again (as Celery's late acknowledgement does after a lost worker) completes it
and removes what the killed run left."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from annotation.models import DatasetExport
from annotation.services import dataset_export as service

from .dataset_export_data import ITEMS, build_project

ROOT = Path(__file__).resolve().parents[2]

# Runs the real export, with the JSONL writer slowed after its third row so the kill lands midway.
SCRIPT = """
import sys, time, django
django.setup()
from annotation import export_writers as W
real = W.write_jsonl
def slow(rows, out):
    def paced():
        for i, row in enumerate(rows):
            yield row
            if i == 2:
                out.flush()
                time.sleep(120)
    return real(paced(), out)
W.write_jsonl = slow
from annotation.services.dataset_export import run_export
run_export(int(sys.argv[1]))
"""


def database_url():
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_killed_export_leaves_no_file_and_a_rerun_completes(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the subprocess shares the test database: PostgreSQL only")
    project = build_project()
    export = service.create_export(project, "jsonl", {"consensus": "majority_vote"}, run_inline=False)
    folder = Path(settings.MEDIA_ROOT) / "exports" / str(project.pk)
    env = {**os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(settings.MEDIA_ROOT)}
    log = open(tmp_path / "export.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", SCRIPT, str(export.pk)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            parts = list(folder.glob("*.part")) if folder.exists() else []
            if parts and parts[0].stat().st_size > 0:
                break
            assert process.poll() is None, (tmp_path / "export.log").read_text()
            time.sleep(0.1)
        else:
            pytest.fail("the export never started writing")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()

    export.refresh_from_db()
    assert export.status == "running" and not export.file  # killed midway, as a lost worker
    final = folder / f"{export.pk}.jsonl"
    assert not final.exists()
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == []  # only the hidden temp

    assert service.run_export(export.pk) == "done"
    export.refresh_from_db()
    assert export.status == DatasetExport.Status.DONE and export.rows == len(ITEMS)
    assert [p.name for p in folder.iterdir()] == [final.name]  # the killed run's temp file is gone
    rows = [json.loads(line) for line in final.read_text().splitlines()]
    assert sorted(r["external_id"] for r in rows) == sorted(ITEMS)
