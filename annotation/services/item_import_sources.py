"""Item import, reading the files: the entries of an image folder or zip (bounded reads, unsafe
names refused), the rows of a CSV or JSONL file, and a zip's manifest.csv. A row the reader
cannot read is a row error in the report; a file that cannot be read at all is ImportRejected.

`annotation.services.item_import` is the entry point that re-exports what other modules use.
"""

import csv
import io
import json
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings

from ..errors import ImportRejected
from ..text_rules import control_character_problem, json_text_problems

IMAGE_EXTENSIONS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
MANIFEST_NAME = "manifest.csv"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def limits():
    return settings.CONCORD_IMPORT


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


def _text_problem(raw):
    """(field, message) for the first key or text value of a row holding a refused character."""
    return next(json_text_problems({k: v for k, v in raw.items() if k is not None}, top="row"), None)


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
