"""Import items (images or texts) into a project.

Two phases. First every row is read and checked, and image files are written to storage;
a bad row is set aside with a row-level message and the rest go on. Then all good rows are
written in ONE transaction together with their ImportBatch, so a crash leaves either the
whole batch or nothing. The files this import wrote are removed again when it fails (rows
rolled back, or the file refused part-way), so a failed import leaves no files behind.

Every cell is text under annotation/text_rules.py's rule: a NUL or another control character
in a cell, a cell too long for the csv module, is a row error like any other. A zip's member
count and total unpacked size are capped from its directory, before anything is unpacked
(zipfile never returns more bytes for a member than its directory entry says).

Re-running an import adds nothing: a row whose external_id or content already exists in
the project is counted as skipped.

Split by concern, with this module the entry point for all of it (import from here): reading the
files in item_import_sources.py, checking rows and storing images in item_import_rows.py, and
here the whole-file checks and writing the batch.
"""

import zipfile
from pathlib import Path

from django.db import transaction

from ..access import acting_user
from ..errors import ImportRejected
from ..models import DataKind, GoldLabel, GoldLabelClass, ImportBatch, Item
from ..splits import draw_consistency_sample, draw_split
from ..text_rules import control_character_problem
from . import project_counts
from .item_import_rows import MULTI_LABEL_SEPARATOR as MULTI_LABEL_SEPARATOR
from .item_import_rows import PreparedItem as PreparedItem
from .item_import_rows import _check_image as _check_image
from .item_import_rows import _prepare_images, _prepare_texts, _remove_files
from .item_import_rows import _Seen as _Seen
from .item_import_rows import _store_image as _store_image
from .item_import_sources import Entry as Entry
from .item_import_sources import _csv_rows, _folder_entries, _jsonl_rows, _zip_entries, limits
from .item_import_sources import _is_hidden as _is_hidden
from .item_import_sources import _read_zip_member as _read_zip_member
from .labeling import refresh_queue_state

MAX_STORED_ERRORS = 1000
# Defaults for settings.CONCORD_IMPORT's zip caps: 150 members of 20 MiB (3 GiB) from a 3 MB
# zip once held a web worker for seconds before being refused.
DEFAULT_MAX_ZIP_TOTAL_BYTES = 1024**3
DEFAULT_MAX_ZIP_MEMBERS = 100_000


class Report:
    """Collects what an import found, row by row."""

    def __init__(self):
        self.errors = []
        self.rejected = 0
        self.skipped = 0
        self.skipped_examples = []

    def reject(self, row, field_name, message):
        self.rejected += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            self.errors.append({"row": row, "field": field_name, "message": message})

    def skip(self, row, reason):
        self.skipped += 1
        if len(self.skipped_examples) < 20:
            self.skipped_examples.append({"row": row, "reason": reason})


def import_items(project, path, *, user=None, source_name=None, batch=None):
    """Import a folder or .zip of images, or a .csv/.jsonl of texts, into `project`.

    `batch`: a queued ImportBatch (services/queued_import.py) to fill instead of a new one.
    Returns the ImportBatch. Raises ImportRejected, writing nothing, when the file as a
    whole cannot be read (empty, too big, wrong kind, missing required column).
    """
    path = Path(path)
    source_name = source_name or path.name
    problem = control_character_problem(source_name)
    if problem:
        raise ImportRejected(f"the file name {problem}", "file")
    if not path.exists():
        raise ImportRejected(f"{path} does not exist", "file")
    if path.is_file():
        size = path.stat().st_size
        if size == 0:
            raise ImportRejected(f"{source_name} is empty", "file")
        if size > limits()["MAX_UPLOAD_BYTES"]:
            raise ImportRejected(
                f"{source_name} is {size:,} bytes; the limit is {limits()['MAX_UPLOAD_BYTES']:,}", "file"
            )
    suffix = path.suffix.lower()
    classes = {c.name: c for c in project.label_classes.all()}
    report = Report()

    if project.data_kind == DataKind.IMAGE:
        if not path.is_dir() and suffix != ".zip":
            raise ImportRejected(f"{source_name}: an image project imports a folder or a .zip of PNG/JPEG", "file")
        written = []  # files this import created in storage: removed again if it fails
        try:
            if path.is_dir():
                prepared = _prepare_images(project, _folder_entries(path, report), classes, report, written)
            else:
                with _open_zip(path, source_name) as archive:
                    prepared = _prepare_images(project, _zip_entries(archive, report), classes, report, written)
            return _write_batch(
                project,
                prepared,
                report,
                kind=ImportBatch.Kind.IMAGES,
                user=user,
                source_name=source_name,
                batch=batch,
            )
        except BaseException:
            _remove_files(written)
            raise
    if suffix == ".csv":
        rows = _csv_rows(path, source_name, report)
    elif suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path, source_name, report)
    else:
        raise ImportRejected(f"{source_name}: a text project imports a .csv or .jsonl file", "file")
    prepared = _prepare_texts(project, rows, classes, report)
    return _write_batch(
        project, prepared, report, kind=ImportBatch.Kind.TEXTS, user=user, source_name=source_name, batch=batch
    )


# The whole-file refusals (size above, a zip's member count and unpacked size here) stay with the
# entry point: nothing is read before they pass. labelstudio_import opens its zips here too.
def _open_zip(path, source_name):
    """The open archive, once its directory shows it within the member and total-size caps."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportRejected(f"{source_name} is not a readable zip file ({exc})", "file") from exc
    members = [info for info in archive.infolist() if not info.is_dir()]
    max_members = limits().get("MAX_ZIP_MEMBERS", DEFAULT_MAX_ZIP_MEMBERS)
    max_total = limits().get("MAX_ZIP_TOTAL_BYTES", DEFAULT_MAX_ZIP_TOTAL_BYTES)
    total = sum(info.file_size for info in members)
    if len(members) > max_members:
        archive.close()
        raise ImportRejected(f"{source_name} holds {len(members):,} files; the limit is {max_members:,}", "file")
    if total > max_total:
        archive.close()
        raise ImportRejected(
            f"{source_name} unpacks to {total:,} bytes; the limit is {max_total:,}: split it into smaller zips", "file"
        )
    return archive


# --- writing -------------------------------------------------------------------------------


def _place(project, item):
    """Seeded split and consistency-sample draws for a new item."""
    return {
        "split": draw_split(item.external_id, project.seed, project.split_fractions),
        "in_consistency_sample": draw_consistency_sample(item.external_id, project.seed, project.consistency_fraction),
    }


def save_batch(batch, **fields):
    """A new ImportBatch with `fields`, or the queued `batch` given them (and marked done). Every
    import writes through here, so here the project page's stored counts are marked stale."""
    project_counts.mark_stale(fields["project"].pk if "project" in fields else batch.project_id)
    if batch is None:
        return ImportBatch.objects.create(**fields)
    for name, value in fields.items():
        if name == "created_by" and value is None:
            continue  # a worker has no user: the batch keeps the one who uploaded
        setattr(batch, name, value)
    batch.status = ImportBatch.Status.DONE
    batch.save()
    return batch


def _write_batch(project, prepared, report, *, kind, user, source_name, batch=None):
    chunk = limits()["CHUNK_ROWS"]
    with transaction.atomic():
        batch = save_batch(
            batch,
            project=project,
            kind=kind,
            source_name=source_name[:255],
            created_by=acting_user(user),
            created_count=len(prepared),
            skipped_count=report.skipped,
            rejected_count=report.rejected,
            errors=report.errors,
            summary={
                "gold_labels": sum(1 for p in prepared if p.gold),
                "skipped_examples": report.skipped_examples,
            },
        )
        items = Item.objects.bulk_create(
            (
                Item(
                    project=project,
                    external_id=p.external_id,
                    text=p.text,
                    sha256=p.sha256,
                    image=p.image_name,
                    thumbnail=p.thumbnail_name,
                    width=p.width,
                    height=p.height,
                    metadata=p.metadata,
                    import_batch=batch,
                    source_name=source_name[:255],
                    **_place(project, p),
                )
                for p in prepared
            ),
            batch_size=chunk,
        )
        with_gold = [(item, p.gold) for item, p in zip(items, prepared, strict=True) if p.gold]
        golds = GoldLabel.objects.bulk_create(
            (GoldLabel(item=item, import_batch=batch) for item, _ in with_gold), batch_size=chunk
        )
        GoldLabelClass.objects.bulk_create(
            (
                GoldLabelClass(gold=gold, label_class=label_class)
                for gold, (_, labels) in zip(golds, with_gold, strict=True)
                for label_class in labels
            ),
            batch_size=chunk,
        )
        # New items need queue ranks, and gold items need k labels.
        refresh_queue_state(project)
    return batch
