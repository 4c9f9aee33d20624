"""Reading labelled datasets as tasks: Label Studio JSON and Concord's JSONL. Pure, no Django.

Both formats come out as the same `Task` rows, which `services/labelstudio_import.py` checks
against a project and writes. A task with any bad part is refused whole, with one message
naming its row and the field at fault (`annotations[1].result[0].value.choices`): a task is
never half imported. What the parser cannot know (the project's classes, its items) the
service checks.

**Label Studio JSON** (what Label Studio exports as "JSON", and imports): a JSON array of tasks,
or one task object. Rows are the task's position in the array, from 1.
- `data`: the task's content. A task without `data` is all data, as Label Studio reads it.
  - the external id: `data.external_id`, else the task's `id`, else the image's file name;
  - text projects: `data.text`, else the first string value of `data`;
    image projects: `data.image` (a URL or path: only its file name is looked up, inside the
    uploaded zip; nothing is ever fetched from the network);
  - `data.split` (train/dev/test) keeps the item's split; the other scalar values of `data` are
    the item's metadata (slices).
- `annotations`: each one a named labeler's label (like `import_annotations`); the labeler is
  `completed_by` (a name, a number, or an object with `email`, `username` or `id`). Its
  `result` holds one item of type `choices` (other result types are ignored); its optional
  `unsure` (boolean) and `note` (string) are kept. `was_cancelled: true` is skipped.
  `ground_truth: true` makes it the item's gold label instead of a labeler's label.
- `predictions`: model scores; `model_version` names the source (default `labelstudio`), the
  score is the result item's `score`, else the prediction's, else none.
- Concord's own Label Studio export (annotation/export_writers.py) is read too: `data.metadata`
  (an object) holds the slices; `completed_by` is a number whose name is in the task's
  `meta.labelers` ({"1": "alice"}, pseudonyms when the export was pseudonymised); and gold, which
  that export carries only as `meta.final_label` with `meta.final_label_source: "gold"`, is
  imported as gold (a resolution's or a consensus's final label is derived, so it is not).

**Concord JSONL**: one object per line, rows are line numbers. `external_id` (required),
`split`, `metadata` (object of scalars), `text`, `labels`: [{labeler, label, unsure, note}]
(or, as Concord's export writes them, {labeler, labels: [names], current, ...}: an entry with
`current: false` is history and is skipped),
`final_label` with `final_label_source` (or `final_label` as {label, source}) and `gold`: the
final label is imported as gold only when its source is `gold` (consensus and resolutions are
derived, not truth), and `gold` always is. A label is a class name, or a list of them in a
multi-label project. Lines are decoded one by one, so one line in another encoding is one row
error and the others load.
"""

import codecs
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from .crowd_parse import ParseError, decode_text, row_error
from .text_rules import control_character_problem, json_text_problems

SPLITS = ("train", "dev", "test")
DEFAULT_PREDICTION_SOURCE = "labelstudio"
DEFAULT_MAX_LINE_CHARS = 2_000_000
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
# Label Studio prefixes an uploaded file's name with 8 hex digits: /data/upload/3/1a2b3c4d-cat.png
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


@dataclass
class Label:
    labeler: str
    names: tuple[str, ...]
    field: str
    unsure: bool = False
    note: str = ""


@dataclass
class Prediction:
    source: str
    name: str
    score: float | None
    field: str


@dataclass
class Task:
    row: int
    external_id: str
    id_field: str
    text: str | None = None
    text_field: str = "text"
    image: str | None = None  # the reference as written; `image_names` gives the names to look up
    split: str | None = None
    metadata: dict = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)
    gold: tuple[str, ...] | None = None
    gold_field: str = ""
    predictions: list[Prediction] = field(default_factory=list)

    def label_names(self):
        """(field, class name) for every class the task's labels and gold name."""
        for label in self.labels:
            yield from ((label.field, n) for n in label.names)
        if self.gold:
            yield from ((self.gold_field, n) for n in self.gold)


class TaskError(Exception):
    def __init__(self, field_name, message):
        super().__init__(message)
        self.field = field_name
        self.message = message


def image_names(reference: str) -> list[str]:
    """Zip member names an image reference may mean, best first: the path as written (without a
    leading '/'), its file name, and the file name without Label Studio's upload prefix."""
    path = unquote(urlsplit(reference).path if "://" in reference else reference).lstrip("/")
    base = PurePosixPath(path).name
    names = [path, base, _UPLOAD_PREFIX.sub("", base)]
    return [n for n in dict.fromkeys(names) if n]


# --- Label Studio JSON ---------------------------------------------------------------------------


def parse_labelstudio(data: bytes, *, data_kind: str, multi_label: bool) -> tuple[list[Task], list[dict]]:
    """Tasks and row errors ({row, field, message}) from a Label Studio JSON export.

    Raises ParseError (a predicate for the file's name) when the file as a whole is not one."""
    text = decode_text(data)
    if not text.strip():
        raise ParseError("is empty")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise ParseError("must hold a JSON array of Label Studio tasks")
    if not document:
        raise ParseError("holds no tasks (an empty array)")
    tasks, errors, seen = [], [], {}
    for row, raw in enumerate(document, start=1):
        try:
            task = _labelstudio_task(row, raw, data_kind, multi_label)
            _check_duplicate(task, seen)
        except TaskError as exc:
            errors.append(row_error(row, exc.field, exc.message))
            continue
        tasks.append(task)
    return tasks, errors


def _labelstudio_task(row, raw, data_kind, multi_label):
    if not isinstance(raw, dict):
        raise TaskError("task", "each task must be a JSON object")
    bad = next(json_text_problems(raw, top="task"), None)
    if bad:
        raise TaskError(*bad)
    data = raw.get("data", None)
    if data is None:
        data = {k: v for k, v in raw.items() if k not in ("annotations", "predictions", "id")}
    if not isinstance(data, dict):
        raise TaskError("data", "data must be an object")
    data = dict(data)
    external_id, id_field = _labelstudio_id(raw, data)
    task = Task(row, "", id_field)
    if data_kind == "image":
        image = data.pop("image", None)
        if not isinstance(image, str) or not image.strip():
            raise TaskError("data.image", "data.image must be the image's URL or path (a string)")
        task.image = image.strip()
        external_id = external_id or image_names(task.image)[-1]
        task.id_field = task.id_field or "data.image"
    else:
        key = "text" if "text" in data else next((k for k, v in data.items() if isinstance(v, str)), None)
        value = data.pop(key, None) if key else None
        if not isinstance(value, str) or not value.strip():
            raise TaskError(f"data.{key or 'text'}", "the task has no text (data.text, or a string value in data)")
        task.text, task.text_field = value, f"data.{key}"
    if not external_id:
        raise TaskError("id", "the task has no id (data.external_id or id)")
    task.external_id = external_id
    nested = data.pop("metadata", None) if isinstance(data.get("metadata"), dict) else None
    task.split, task.metadata = _split_and_metadata(data, "data.")
    if nested is not None:  # Concord's export: the slices as one object
        _, slices = _split_and_metadata(dict(nested), "data.metadata.")
        task.metadata = {**slices, **task.metadata}
    meta = raw.get("meta") if isinstance(raw.get("meta"), dict) else {}
    names_by_number = meta.get("labelers") if isinstance(meta.get("labelers"), dict) else {}
    for i, annotation in enumerate(_list(raw, "annotations")):
        where = f"annotations[{i}]"
        if not isinstance(annotation, dict):
            raise TaskError(where, "each annotation must be an object")
        if annotation.get("was_cancelled") is True:
            continue
        names, names_field = _choices(annotation.get("result"), f"{where}.result", multi_label)
        if annotation.get("ground_truth") is True:
            if task.gold is not None and set(task.gold) != set(names):
                raise TaskError(where, f"a second ground-truth annotation differs from {task.gold_field}")
            task.gold, task.gold_field = names, names_field
            continue
        labeler = _labeler(annotation.get("completed_by"), f"{where}.completed_by", names_by_number)
        unsure, note = _unsure_and_note(annotation, where)
        task.labels.append(Label(labeler, names, names_field, unsure, note))
    if meta.get("final_label_source") == "gold" and meta.get("final_label") not in (None, "", []):
        # Concord's export writes an item's gold only here when the labelers' labels are in it.
        names = _names(meta["final_label"], "meta.final_label", multi_label)
        if task.gold is not None and set(task.gold) != set(names):
            differs = f"the final label's source is gold but it differs from {task.gold_field}"
            raise TaskError("meta.final_label", differs)
        if task.gold is None:
            task.gold, task.gold_field = names, "meta.final_label"
    for i, prediction in enumerate(_list(raw, "predictions")):
        task.predictions.extend(_predictions(prediction, f"predictions[{i}]", multi_label))
    return task


def _labelstudio_id(raw, data):
    if "external_id" in data:
        return _id_value(data.pop("external_id"), "data.external_id"), "data.external_id"
    if raw.get("id") is not None:
        return _id_value(raw["id"], "id"), "id"
    return "", ""


def _id_value(value, where):
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TaskError(where, f"{where} must be a string or an integer")
    value = str(value).strip()
    if not value:
        raise TaskError(where, f"{where} is empty")
    if len(value) > 255:
        raise TaskError(where, f"{where} is longer than 255 characters")
    return value


def _list(raw, key):
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise TaskError(key, f"{key} must be a list")
    return value


def _choices(result, where, multi_label):
    """(class names, their field) of the one `choices` item of an annotation's result."""
    if not isinstance(result, list):
        raise TaskError(where, "result must be a list")
    found = [(j, r) for j, r in enumerate(result) if isinstance(r, dict) and r.get("type") == "choices"]
    if not found:
        raise TaskError(where, "holds no result of type 'choices' (Concord imports classification only)")
    if len(found) > 1:
        raise TaskError(where, f"holds {len(found)} results of type 'choices'; Concord takes one per annotation")
    j, item = found[0]
    value = item.get("value") if isinstance(item.get("value"), dict) else {}
    field_name = f"{where}[{j}].value.choices"
    return _names(value.get("choices"), field_name, multi_label), field_name


def _names(value, where, multi_label):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(n, str) and n.strip() for n in value):
        raise TaskError(where, "must be a non-empty list of class names")
    names = tuple(dict.fromkeys(n.strip() for n in value))
    if len(names) > 1 and not multi_label:
        shown = ", ".join(map(repr, names))
        raise TaskError(where, f"holds {len(names)} classes ({shown}); this project is single-label")
    return names


def _labeler(value, where, names_by_number=None):
    """The labeler's name; a number named in ``names_by_number`` (a task's `meta.labelers`, as
    Concord's export writes it) becomes that name."""
    if isinstance(value, dict):
        value = next((value[k] for k in ("email", "username", "id") if value.get(k) not in (None, "")), None)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise TaskError(where, "names no labeler (a name, a number, or an object with email, username or id)")
    value = str(value).strip()
    if names_by_number and value in names_by_number:
        named = names_by_number[value]
        if not isinstance(named, str) or not named.strip():
            raise TaskError(f"meta.labelers.{value}", "a labeler's name must be a non-empty string")
        value = named.strip()
    problem = control_character_problem(value)
    if problem:
        raise TaskError(where, f"the labeler {problem}")
    return value


def _unsure_and_note(obj, where):
    unsure, note = obj.get("unsure", False), obj.get("note", "")
    if not isinstance(unsure, bool):
        raise TaskError(f"{where}.unsure", "unsure must be true or false")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise TaskError(f"{where}.note", "note must be a string")
    return unsure, note


def _score(value, where):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TaskError(where, "score must be a finite number")
    return float(value)


def _predictions(prediction, where, multi_label):
    if not isinstance(prediction, dict):
        raise TaskError(where, "each prediction must be an object")
    source = prediction.get("model_version") or DEFAULT_PREDICTION_SOURCE
    if not isinstance(source, (str, int)) or isinstance(source, bool) or len(str(source)) > 255:
        raise TaskError(f"{where}.model_version", "model_version must be a string of at most 255 characters")
    source = str(source).strip() or DEFAULT_PREDICTION_SOURCE
    overall = _score(prediction.get("score"), f"{where}.score")
    result = prediction.get("result")
    if not isinstance(result, list):
        raise TaskError(f"{where}.result", "result must be a list")
    out = []
    for j, item in enumerate(result):
        if not isinstance(item, dict) or item.get("type") != "choices":
            continue
        value = item.get("value") if isinstance(item.get("value"), dict) else {}
        names = _names(value.get("choices"), f"{where}.result[{j}].value.choices", multi_label)
        score = _score(item.get("score"), f"{where}.result[{j}].score")
        score = overall if score is None else score
        out.extend(Prediction(source, n, score, f"{where}.result[{j}].value.choices") for n in names)
    return out


def _split_and_metadata(values, prefix):
    split = values.pop("split", None)
    if split is not None and split not in SPLITS:
        raise TaskError(f"{prefix}split", f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    metadata = {}
    for key, value in values.items():
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise TaskError(f"{prefix}{key}", "metadata values must be text, numbers or booleans")
        metadata[key.strip()] = value.strip() if isinstance(value, str) else value
    return split, metadata


def _check_duplicate(task, seen):
    first = seen.get(task.external_id)
    if first is not None:
        raise TaskError(task.id_field, f"duplicate id {task.external_id!r}: row {first} has it already")
    seen[task.external_id] = task.row


# --- Concord JSONL -------------------------------------------------------------------------------


def parse_concord_jsonl(
    data: bytes, *, multi_label: bool, max_line_chars: int = DEFAULT_MAX_LINE_CHARS
) -> tuple[list[Task], list[dict]]:
    """Tasks and row errors from Concord's JSONL (one item a line; see the module docstring).

    Raises ParseError when the file as a whole cannot be read (empty, no readable line)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        data = decode_text(data).encode()  # UTF-16 as a whole; then line by line as UTF-8
    elif data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    if not data.strip():
        raise ParseError("is empty")
    tasks, errors, seen = [], [], {}
    for row, line in enumerate(_LINE_BREAK.split(data), start=1):
        if not line.strip():
            continue
        try:
            task = _jsonl_task(row, line, multi_label, max_line_chars)
            _check_duplicate(task, seen)
        except TaskError as exc:
            errors.append(row_error(row, exc.field, exc.message))
            continue
        tasks.append(task)
    return tasks, errors


def _jsonl_task(row, line, multi_label, max_line_chars):
    if len(line) > max_line_chars:
        raise TaskError("line", f"the line is {len(line):,} bytes; the most a line may hold is {max_line_chars:,}")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TaskError(
            "line", f"is not UTF-8: byte {line[exc.start]:#04x} at column {exc.start + 1}; save the file as UTF-8"
        ) from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskError("line", f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(obj, dict):
        raise TaskError("line", "each line must be a JSON object")
    bad = next(json_text_problems(obj, top="line"), None)
    if bad:
        raise TaskError(*bad)
    if obj.get("external_id") in (None, ""):
        raise TaskError("external_id", "external_id is missing")
    task = Task(row, _id_value(obj["external_id"], "external_id"), "external_id")
    text_value = obj.get("text")
    if text_value is not None:
        if not isinstance(text_value, str):
            raise TaskError("text", "text must be a string")
        task.text = text_value
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise TaskError("metadata", "metadata must be an object")
    values = {**metadata, "split": obj.get("split")}
    task.split, task.metadata = _split_and_metadata(values, "metadata.")
    labels = obj.get("labels") or []
    if not isinstance(labels, list):
        raise TaskError("labels", "labels must be a list")
    for i, entry in enumerate(labels):
        where = f"labels[{i}]"
        if not isinstance(entry, dict):
            raise TaskError(where, "each label must be an object with labeler and label")
        if entry.get("current", True) is False:
            continue  # a superseded label from an export's history: the current one follows
        labeler = _labeler(entry.get("labeler"), f"{where}.labeler")
        key = "label" if "label" in entry or "labels" not in entry else "labels"  # Concord's export: labels
        names = _names(entry.get(key), f"{where}.{key}", multi_label)
        unsure, note = _unsure_and_note(entry, where)
        task.labels.append(Label(labeler, names, f"{where}.{key}", unsure, note))
    task.gold, task.gold_field = _jsonl_gold(obj, multi_label)
    return task


def _jsonl_gold(obj, multi_label):
    final, source = obj.get("final_label"), obj.get("final_label_source")
    if isinstance(final, dict):
        source = final.get("source", source)
        final = final.get("label", final.get("labels"))
    gold = None
    if obj.get("gold") not in (None, "", []):
        gold = _names(obj["gold"], "gold", multi_label)
    if final not in (None, "", []) and source == "gold":
        names = _names(final, "final_label", multi_label)
        if gold is not None and set(gold) != set(names):
            raise TaskError("final_label", "the final label's source is gold but it differs from gold")
        return names, "final_label"
    return gold, "gold" if gold else ""
