"""Item import, checking the rows: each row or image is checked (external id, text, gold, metadata,
an image's format, size and pixels), a duplicate of an item already in the project is skipped, and
a good image is stored. Bad rows are set aside in the report; the others become PreparedItems.

`annotation.services.item_import` is the entry point that re-exports what other modules use.
"""

import hashlib
import io
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass, field

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, UnidentifiedImageError

from ..models import Item, TaskType
from ..text_rules import control_character_problem, printable
from .item_import_sources import IMAGE_EXTENSIONS, MANIFEST_NAME, _read_manifest, _text_problem, _TooBig, limits

logger = logging.getLogger(__name__)

MULTI_LABEL_SEPARATOR = "|"


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
