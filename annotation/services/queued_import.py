"""Large uploads are imported by a Celery worker, not in the request.

An upload over `CONCORD_IMPORT["QUEUE_ABOVE_BYTES"]` (default 5 MB) gets an ImportBatch in
status `queued` and its files are kept under MEDIA_ROOT/imports/queued/<batch id>/; the task
(`annotation.tasks.run_queued_import`) marks it `running` (committed, so the project page's
poll sees it), runs the same import service a small upload runs synchronously into that batch,
and removes the files once the batch is done or failed. Smaller uploads stay synchronous.

Safe to run twice: the import writes its rows and marks the batch done in ONE transaction, so a
worker killed mid-import leaves the batch `running` with nothing written, and the redelivered
task imports it again; a batch already done or failed only has its files removed. (Re-import is
idempotent anyway: nothing already imported is written twice.)
"""

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import OperationalError, transaction

from config import queueing

from ..access import acting_user
from ..errors import DomainError
from ..models import ImportBatch

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_ABOVE_BYTES = 5 * 1024 * 1024
FINAL = (ImportBatch.Status.DONE, ImportBatch.Status.FAILED)


def should_queue(total_bytes: int) -> bool:
    return total_bytes > settings.CONCORD_IMPORT.get("QUEUE_ABOVE_BYTES", DEFAULT_QUEUE_ABOVE_BYTES)


def folder_of(batch_id: int) -> Path:
    return Path(settings.MEDIA_ROOT) / "imports" / "queued" / str(batch_id)


def queue_import(project, *, job: str, kind: str, uploads: dict, options: dict, user) -> ImportBatch:
    """Keep `uploads` (role -> uploaded file; role 'file' names the batch) and queue `job`
    ('items', 'annotations', 'labelstudio', 'labels_jsonl') with JSON-safe `options`."""
    main = uploads["file"]
    with transaction.atomic():
        batch = ImportBatch.objects.create(
            project=project,
            kind=kind,
            source_name=Path(main.name).name[:255],
            created_by=acting_user(user),
            status=ImportBatch.Status.QUEUED,
            summary={"progress": {"stage": "queued"}},
        )
        folder = folder_of(batch.pk)
        folder.mkdir(parents=True, exist_ok=True)
        files = {}
        for role, upload in uploads.items():
            target = folder / role
            target.mkdir(exist_ok=True)
            path = target / Path(upload.name).name
            with open(path, "wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            files[role] = str(path.relative_to(settings.MEDIA_ROOT))
        batch.summary["queued"] = {"job": job, "files": files, "options": options}
        batch.save(update_fields=["summary"])
        queue = settings.CONCORD_IMPORT.get("QUEUE") or None
        queueing.queue_on_commit(queueing.RUN_QUEUED_IMPORT, batch.pk, queue=queue)
    return batch


def run(batch_id: int) -> str | None:
    """Import a queued batch; returns its final status (None if it was deleted)."""
    batch = ImportBatch.objects.select_related("project").filter(pk=batch_id).first()
    if batch is None:
        _remove(batch_id)
        return None
    if batch.status in FINAL:
        _remove(batch_id)  # a redelivery after the import committed
        return batch.status
    job = batch.summary.get("queued") or {}
    ImportBatch.objects.filter(pk=batch_id).update(
        status=ImportBatch.Status.RUNNING, summary={**batch.summary, "progress": {"stage": "running"}}
    )
    batch.status = ImportBatch.Status.RUNNING
    try:
        _run_job(batch, job)
    except DomainError as exc:
        _fail(batch_id, exc.field or "file", exc.message)
    except (KeyError, FileNotFoundError) as exc:
        # The kept files are gone (a cleaned media folder): nothing can import this batch now.
        _fail(batch_id, "file", f"the uploaded file is no longer there ({exc}); upload it again")
    except OperationalError:
        raise  # a lost connection or a lock timeout: the task retries, the batch stays running
    except Exception as exc:
        # A bug: say so on the batch (the page stops polling), keep the traceback in the log.
        _fail(batch_id, "file", f"the import failed unexpectedly ({type(exc).__name__}); see the worker's log")
        _remove(batch_id)
        raise
    _remove(batch_id)
    return ImportBatch.objects.values_list("status", flat=True).get(pk=batch_id)


def give_up(batch_id: int, exc: BaseException) -> None:
    """The task ran out of retries (the database kept failing): fail a batch still queued or
    running with the reason, so its page stops polling, and remove its files."""
    ImportBatch.objects.filter(pk=batch_id).exclude(status__in=FINAL).update(
        status=ImportBatch.Status.FAILED,
        rejected_count=0,
        errors=[
            {
                "row": "file",
                "field": "file",
                "message": f"the import stopped after repeated database errors ({type(exc).__name__}); upload it again",
            }
        ],
    )
    _remove(batch_id)


def _run_job(batch, job):
    from .annotation_import import import_annotations
    from .item_import import import_items
    from .labelstudio_import import import_labels_jsonl, import_labelstudio

    root = Path(settings.MEDIA_ROOT)
    files = {role: root / rel for role, rel in job["files"].items()}
    options = job.get("options", {})
    common = {"source_name": batch.source_name, "batch": batch}
    if job["job"] == "items":
        import_items(batch.project, files["file"], **common)
    elif job["job"] == "labelstudio":
        import_labelstudio(batch.project, files["file"], create_classes=options.get("create_classes", False), **common)
    elif job["job"] == "labels_jsonl":
        import_labels_jsonl(batch.project, files["file"], create_classes=options.get("create_classes", False), **common)
    elif job["job"] == "annotations":
        import_annotations(batch.project, files["file"], truth_path=files.get("truth"), **options, **common)
    else:
        raise DomainError(f"unknown import job {job['job']!r}", "file")


def _fail(batch_id, field, message):
    ImportBatch.objects.filter(pk=batch_id).update(
        status=ImportBatch.Status.FAILED,
        rejected_count=0,
        errors=[{"row": "file", "field": field, "message": message}],
    )


def _remove(batch_id):
    try:
        shutil.rmtree(folder_of(batch_id))
    except FileNotFoundError:
        pass
    except OSError:
        logger.exception("could not remove the files of import batch %s", batch_id)
