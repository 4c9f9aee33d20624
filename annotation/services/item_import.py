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
"""

import csv
import hashlib
import io
import json
import logging
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image, UnidentifiedImageError

from ..access import acting_user
from ..errors import ImportRejected
from ..models import DataKind, GoldLabel, GoldLabelClass, ImportBatch, Item, TaskType
from ..splits import draw_consistency_sample, draw_split
from ..text_rules import control_character_problem, json_text_problems, printable
from . import project_counts
from .labeling import refresh_queue_state

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
MANIFEST_NAME = "manifest.csv"
MAX_STORED_ERRORS = 1000
MULTI_LABEL_SEPARATOR = "|"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Defaults for settings.CONCORD_IMPORT's zip caps: 150 members of 20 MiB (3 GiB) from a 3 MB
# zip once held a web worker for seconds before being refused.
DEFAULT_MAX_ZIP_TOTAL_BYTES = 1024**3
DEFAULT_MAX_ZIP_MEMBERS = 100_000


def limits():
    return settings.CONCORD_IMPORT


@dataclass
class PreparedItem:
    external_id: str
    row: int | str
    metadata: dict
    gold: list = field(default_factory=list)  # LabelClass objects
    text: str = ""
    sha256: str = ""
    image_name: str = ""
    thumbnail_name: str = ""
    width: int | None = None
    height: int | None = None


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


# --- reading sources -----------------------------------------------------------------------


@dataclass
class Entry:
    """One file of an image source: its path relative to the source and a bounded reader."""

    name: str
    size: int
    read: Callable[[], bytes]


def _folder_entries(folder, report):
    for file in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
        rel = file.relative_to(folder).as_posix()
        if _is_hidden(rel):
            continue
        if file.is_symlink():
            report.reject(rel, "file", "symbolic links are not imported")
            continue
        yield Entry(rel, file.stat().st_size, file.read_bytes)


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


def _zip_entries(archive, report):
    for info in archive.infolist():
        if info.is_dir():
            continue
        unsafe = _unsafe_zip_name(info)
        if unsafe:
            report.reject(info.filename, "file", unsafe)
            continue
        if _is_hidden(info.filename):
            continue
        yield Entry(info.filename, info.file_size, lambda info=info: _read_zip_member(archive, info))


def _read_zip_member(archive, info):
    # file_size in the header can lie (zip bombs): never read more than the limit allows.
    limit = limits()["MAX_IMAGE_BYTES"]
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise _TooBig(len(data))
    return data


class _TooBig(Exception):
    pass


def _unsafe_zip_name(info):
    name = info.filename
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute paths are not allowed in a zip"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "'..' is not allowed in a zip entry's path"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic links are not imported"
    return None


def _is_hidden(rel):
    parts = PurePosixPath(rel).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _open_text(path, source_name):
    try:
        raw = path.read_bytes()
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRejected(f"{source_name} is not UTF-8 text ({exc.reason} at byte {exc.start})", "file") from exc


def _csv_dicts(text, source_name, required, report, row_name=lambda line: line):
    """(line, row dict) per readable row; a row the csv module cannot read is a row error."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise ImportRejected(f"{source_name}: the header row cannot be read ({_csv_problem(exc)})", "file") from exc
    header = [h.strip() for h in (fieldnames or [])]
    if not header:
        raise ImportRejected(f"{source_name} has no header row", "file")
    for number, name in enumerate(header, start=1):
        problem = control_character_problem(name)
        if problem:
            raise ImportRejected(f"{source_name}: column {number} of the header {problem}", "file")
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportRejected(
            f"{source_name} lacks the required column(s) {', '.join(missing)}; found {', '.join(header)}", "file"
        )
    # Row numbers are the file's line numbers as a person counts them (header is line 1).
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader goes on at the next line: only this row is lost. (DictReader's own
            # line_num is not updated when its reader raises.)
            report.reject(row_name(reader.reader.line_num), "row", _csv_problem(exc))
            continue
        yield reader.line_num, row


def _csv_problem(exc):
    if "field limit" in str(exc):
        return f"a cell is longer than {csv.field_size_limit():,} characters, the most a CSV cell may hold"
    return f"cannot be read as CSV: {exc}"


def _csv_rows(path, source_name, report):
    text = _open_text(path, source_name)
    if not text.strip():
        raise ImportRejected(f"{source_name} is empty", "file")
    yield from _csv_dicts(text, source_name, ("external_id", "text"), report)


def _jsonl_rows(path, source_name, report):
    text = _open_text(path, source_name)
    if not text.strip():
        raise ImportRejected(f"{source_name} is empty", "file")
    # Line breaks only: str.splitlines() would also split at U+2028 or U+001E inside a value.
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.reject(number, "line", f"not valid JSON: {exc.msg}")
            continue
        if not isinstance(obj, dict):
            report.reject(number, "line", "each line must be a JSON object")
            continue
        yield number, obj


# --- checking rows --------------------------------------------------------------------------


def _parse_gold(value, project, classes):
    """Class objects for a gold cell, or a message saying what is wrong."""
    value = (value or "").strip() if isinstance(value, str) or value is None else str(value)
    if not value:
        return [], None
    if project.task_type == TaskType.MULTI_LABEL:
        names = [n.strip() for n in value.split(MULTI_LABEL_SEPARATOR) if n.strip()]
    else:
        names = [value]
    unknown = [n for n in names if n not in classes]
    if unknown:
        return None, f"unknown label {', '.join(map(repr, unknown))}; the project's classes are {', '.join(classes)}"
    inactive = [n for n in names if not classes[n].is_active]
    if inactive:
        return None, f"class {', '.join(map(repr, inactive))} is inactive (merged or retired)"
    return [classes[n] for n in names], None


def _text_problem(raw):
    """(field, message) for the first key or text value of a row holding a refused character."""
    return next(json_text_problems({k: v for k, v in raw.items() if k is not None}, top="row"), None)


def _clean_metadata(raw, row, report):
    metadata = {}
    for key, value in raw.items():
        if key is None:  # csv puts extra cells of a too-long row under None
            report.reject(row, "row", "the row has more cells than the header")
            return None
        if value is None or isinstance(value, (str, int, float, bool)):
            metadata[key.strip()] = value.strip() if isinstance(value, str) else value
        else:
            report.reject(row, key, "metadata values must be text, numbers or booleans")
            return None
    return metadata


def _place(project, item):
    """Seeded split and consistency-sample draws for a new item."""
    return {
        "split": draw_split(item.external_id, project.seed, project.split_fractions),
        "in_consistency_sample": draw_consistency_sample(item.external_id, project.seed, project.consistency_fraction),
    }


class _Seen:
    """External ids and content hashes already in the project or earlier in this batch."""

    def __init__(self, project):
        existing = Item.objects.filter(project=project).values_list("external_id", "sha256")
        self.ids = {}
        self.hashes = {}
        for external_id, sha in existing:
            self.ids[external_id] = "an existing item"
            if sha:
                self.hashes[sha] = external_id

    def duplicate_reason(self, external_id, sha):
        if external_id in self.ids:
            return f"external_id {external_id!r} is already {self.ids[external_id]}"
        if sha and sha in self.hashes:
            return f"same content as item {self.hashes[sha]!r}"
        return None

    def add(self, external_id, sha, row):
        self.ids[external_id] = f"imported by row {row} of this file"
        if sha:
            self.hashes[sha] = external_id


def _prepare_texts(project, rows, classes, report):
    seen = _Seen(project)
    max_chars = limits()["MAX_TEXT_CHARS"]
    prepared = []
    for row, raw in rows:
        raw = dict(raw)
        bad_text = _text_problem(raw)
        if bad_text:
            report.reject(row, *bad_text)
            continue
        external_id = str(raw.pop("external_id", "") or "").strip()
        text = raw.pop("text", "")
        gold_cell = raw.pop("gold", "")
        if not external_id:
            report.reject(row, "external_id", "external_id is empty")
            continue
        if len(external_id) > 255:
            report.reject(row, "external_id", "external_id is longer than 255 characters")
            continue
        if not isinstance(text, str) or not text.strip():
            report.reject(row, "text", "text is empty" if not text else "text must be a string")
            continue
        if len(text) > max_chars:
            report.reject(row, "text", f"text has {len(text):,} characters; the limit is {max_chars:,}")
            continue
        gold, problem = _parse_gold(gold_cell, project, classes)
        if problem:
            report.reject(row, "gold", problem)
            continue
        metadata = _clean_metadata(raw, row, report)
        if metadata is None:
            continue
        sha = hashlib.sha256(text.encode()).hexdigest()
        reason = seen.duplicate_reason(external_id, sha)
        if reason:
            report.skip(row, reason)
            continue
        seen.add(external_id, sha, row)
        prepared.append(PreparedItem(external_id, row, metadata, gold, text=text, sha256=sha))
    return prepared


def _read_manifest(entries, report):
    """Split the source into image entries and the manifest rows keyed by filename."""
    images, manifest = [], {}
    for entry in entries:
        if entry.name == MANIFEST_NAME:
            try:
                text = entry.read().decode("utf-8-sig")
            except (UnicodeDecodeError, _TooBig) as exc:
                raise ImportRejected(f"{MANIFEST_NAME} cannot be read as UTF-8 text ({exc})", "manifest") from exc
            rows = _csv_dicts(text, MANIFEST_NAME, ("filename",), report, lambda line: f"{MANIFEST_NAME}:{line}")
            for row, values in rows:
                name = (values.pop("filename") or "").strip()
                name_problem = control_character_problem(name)
                if not name:
                    report.reject(f"{MANIFEST_NAME}:{row}", "filename", "filename is empty")
                elif name_problem:
                    report.reject(f"{MANIFEST_NAME}:{row}", "filename", name_problem)
                elif name in manifest:
                    report.reject(f"{MANIFEST_NAME}:{row}", "filename", f"{name!r} is listed twice")
                else:
                    # A bad cell refuses the image it describes (landing it without its gold
                    # or metadata would be worse).
                    manifest[name] = (row, values, _text_problem(values))
        else:
            images.append(entry)
    return images, manifest


def _prepare_images(project, entries, classes, report, written):
    images, manifest = _read_manifest(entries, report)
    seen = _Seen(project)
    prepared = []
    for entry in images:
        manifest_row, values, bad_text = manifest.pop(entry.name, (None, {}, None))
        row = printable(entry.name)
        name_problem = control_character_problem(entry.name)
        if name_problem:
            report.reject(row, "file", f"the file name {name_problem}")
            continue
        if bad_text:
            report.reject(row, bad_text[0], f"{bad_text[1]} ({MANIFEST_NAME} line {manifest_row})")
            continue
        values = dict(values)
        gold, problem = _parse_gold(values.pop("gold", ""), project, classes)
        if problem:
            report.reject(row, "gold", f"{problem} ({MANIFEST_NAME} line {manifest_row})")
            continue
        metadata = _clean_metadata(values, row, report)
        if metadata is None:
            continue
        checked = _check_image(entry)
        if isinstance(checked, str):
            report.reject(row, "file", checked)
            continue
        data, image = checked
        sha = hashlib.sha256(data).hexdigest()
        reason = seen.duplicate_reason(entry.name, sha)
        if reason:
            report.skip(row, reason)
            continue
        seen.add(entry.name, sha, row)
        item = PreparedItem(entry.name, row, metadata, gold, sha256=sha, width=image.width, height=image.height)
        item.image_name, item.thumbnail_name = _store_image(project, sha, data, image, entry.name, written)
        prepared.append(item)
    for name, (line, _values, _bad) in manifest.items():
        report.reject(f"{MANIFEST_NAME}:{line}", "filename", f"{name!r} is not in the import")
    return prepared


def _check_image(entry):
    """(bytes, decoded image) for a good PNG/JPEG, or a message saying why it is refused."""
    ext = os.path.splitext(entry.name)[1].lower()
    if ext not in IMAGE_EXTENSIONS:
        return f"not a PNG or JPEG file name (only {', '.join(sorted(IMAGE_EXTENSIONS))} are imported)"
    limit = limits()["MAX_IMAGE_BYTES"]
    if entry.size > limit:
        return f"file is {entry.size:,} bytes; the limit is {limit:,}"
    try:
        data = entry.read()
    except _TooBig as exc:
        return f"file unpacks to more than {limit:,} bytes ({exc.args[0]:,} read)"
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        return f"cannot be read from the archive: {exc}"
    if not data:
        return "file is empty"
    max_pixels = limits()["MAX_IMAGE_PIXELS"]
    try:
        with Image.open(io.BytesIO(data)) as probe:
            # The header alone gives the size: refuse a decompression bomb before decoding it.
            if probe.width * probe.height > max_pixels:
                return f"image is {probe.width}x{probe.height} pixels; the limit is {max_pixels:,} pixels"
            if probe.format != IMAGE_EXTENSIONS[ext]:
                return f"content is {probe.format or 'unknown'}, not {IMAGE_EXTENSIONS[ext]} as its name says"
            probe.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except UnidentifiedImageError:
        return "not an image Pillow can read (is it really a PNG or JPEG?)"
    except Image.DecompressionBombError as exc:
        return f"refused as a decompression bomb: {exc}"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"corrupt or truncated image: {exc}"
    return data, image


def _store_image(project, sha, data, image, name, written):
    """Store the image and its thumbnail under content-addressed names; `written` gains the
    names this call created (a file already there may belong to a committed item)."""
    ext = os.path.splitext(name)[1].lower()
    image_name = f"items/{project.pk}/{sha[:2]}/{sha}{ext}"
    if not default_storage.exists(image_name):
        written.append(default_storage.save(image_name, ContentFile(data)))
    thumbnail_name = f"thumbnails/{project.pk}/{sha[:2]}/{sha}.png"
    if not default_storage.exists(thumbnail_name):
        thumb = image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")
        thumb.thumbnail((limits()["THUMBNAIL_SIZE"],) * 2)
        buffer = io.BytesIO()
        thumb.save(buffer, format="PNG", optimize=True)
        written.append(default_storage.save(thumbnail_name, ContentFile(buffer.getvalue())))
    return image_name, thumbnail_name


def _remove_files(names):
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:  # the import's own error matters more; log this one
            logger.exception("could not remove %s after a failed import", name)


# --- writing -------------------------------------------------------------------------------


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
