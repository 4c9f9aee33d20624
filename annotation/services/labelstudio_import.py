"""Import labelled datasets: Label Studio JSON (tasks, annotations, predictions) and Concord JSONL.

The file is parsed into tasks by the pure `labelstudio_parse` (its docstring says which fields
are read). Then ONE transaction checks each task against the project and writes the good ones:
items (with their text, or an image found in the uploaded zip), labels by named labelers and
gold through `annotation_import`'s plan (so the rules there hold here too: one labeler account
per worker, history kept, re-import adds nothing), and predictions as `ItemPrediction` rows.
A task with any bad part (an unknown class, several choices in a single-label project, an
image not in the zip, text over the limit) is refused whole with a message naming its row and
field; the other tasks land. A file that cannot be read as a whole writes nothing.

Images: a Label Studio task points at its image by URL or path. Concord never downloads it: the
image must be inside the uploaded .zip (the zip holds one .json file and the images), found by
its path, its file name, or its file name without Label Studio's upload prefix (`1a2b3c4d-`).

Predictions name existing classes only (a model's output never creates a class). A re-import
replaces a (item, source, class) score that changed and skips an identical one. They are shown
to SMEs and MLEs and read by active learning (`prediction_scores`); no labeler view reads them.
"""

import hashlib
from collections import defaultdict
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import transaction

from ..crowd_parse import ParseError, Record, row_error
from ..errors import ImportRejected
from ..labelstudio_parse import TaskError, image_names, parse_concord_jsonl, parse_labelstudio
from ..models import DataKind, ImportBatch, Item, ItemPrediction, Project, TaskType
from ..text_rules import control_character_problem
from .annotation_import import ANNOTATION_ROLES, TRUTH_ROLES, _chunks, _Plan, _read_bytes
from .item_import import MULTI_LABEL_SEPARATOR, Entry, _check_image, _is_hidden, _open_zip, _remove_files, _Seen
from .item_import import _store_image as store_image


def import_labelstudio(project, path, *, user=None, source_name=None, create_classes=False, batch=None):
    """Import a Label Studio JSON export (.json, or a .zip holding one .json and its images).

    Returns the ImportBatch (kind `labelstudio`); raises ImportRejected, writing nothing, when
    the file as a whole cannot be read. `batch`: a queued ImportBatch to fill."""
    path = Path(path)
    name = _checked_name(source_name or path.name)
    multi = project.task_type == TaskType.MULTI_LABEL
    written, archive = [], None
    try:
        if path.suffix.lower() == ".zip":
            archive = _open_zip(path, name)
            data = _zip_json(archive, name)
        elif path.suffix.lower() == ".json":
            data = _read_bytes(path, name)
        else:
            raise ImportRejected(f"{name}: a Label Studio import is a .json file, or a .zip of one with images", "file")
        try:
            tasks, errors = parse_labelstudio(data, data_kind=project.data_kind, multi_label=multi)
        except ParseError as exc:
            raise ImportRejected(f"{name} {exc}", "file") from exc
        return _import_tasks(
            project,
            tasks,
            errors,
            name=name,
            kind=ImportBatch.Kind.LABELSTUDIO,
            fmt="labelstudio",
            user=user,
            create_classes=create_classes,
            batch=batch,
            archive=archive,
            written=written,
        )
    except BaseException:
        _remove_files(written)  # images stored for a batch that was not written
        raise
    finally:
        if archive is not None:
            archive.close()


def import_labels_jsonl(project, path, *, user=None, source_name=None, create_classes=False, batch=None):
    """Import Concord JSONL (one item a line with its labels; see labelstudio_parse). Returns the
    ImportBatch (kind `annotations`); raises ImportRejected when the file cannot be read."""
    path = Path(path)
    name = _checked_name(source_name or path.name)
    data = _read_bytes(path, name)
    try:
        tasks, errors = parse_concord_jsonl(
            data, multi_label=project.task_type == TaskType.MULTI_LABEL, max_line_chars=_max_line_chars()
        )
    except ParseError as exc:
        raise ImportRejected(f"{name} {exc}", "file") from exc
    return _import_tasks(
        project,
        tasks,
        errors,
        name=name,
        kind=ImportBatch.Kind.ANNOTATIONS,
        fmt="concord-jsonl",
        user=user,
        create_classes=create_classes,
        batch=batch,
    )


def prediction_scores(project, *, source=None) -> dict[int, dict[str, float | None]]:
    """item id -> {class name: score} of the project's imported predictions (one source, or all;
    where several sources scored a class, the latest import's score). For active learning and
    staff views; never for a labeler."""
    rows = ItemPrediction.objects.filter(item__project=project)
    if source is not None:
        rows = rows.filter(source=source)
    scores = defaultdict(dict)
    for item_id, name, score in rows.order_by("created_at", "id").values_list("item_id", "label_class__name", "score"):
        scores[item_id][name] = score
    return dict(scores)


# --- reading -------------------------------------------------------------------------------------


def _checked_name(name):
    problem = control_character_problem(name)
    if problem:
        raise ImportRejected(f"the file name {problem}", "file")
    return name


def _max_line_chars():
    # A line holds an item's text and its labels: room for the longest text and then some.
    return settings.CONCORD_IMPORT["MAX_TEXT_CHARS"] * 4 + 1_000_000


def _zip_json(archive, name):
    found = [
        i
        for i in archive.infolist()
        if not i.is_dir() and i.filename.lower().endswith(".json") and not _is_hidden(i.filename)
    ]
    if len(found) != 1:
        listed = ", ".join(i.filename for i in found[:5])
        raise ImportRejected(
            f"{name} must hold exactly one .json file (the Label Studio export); it holds {len(found)}"
            + (f": {listed}" if listed else ""),
            "file",
        )
    limit = settings.CONCORD_IMPORT["MAX_UPLOAD_BYTES"]
    with archive.open(found[0]) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ImportRejected(f"{found[0].filename} in {name} is larger than {limit:,} bytes", "file")
    return data


class _Images:
    """The uploaded zip's images, found by path, by file name, or by Label Studio's upload name."""

    def __init__(self, archive):
        self.archive = archive
        self.by_path, self.by_name = {}, defaultdict(list)
        for info in archive.infolist() if archive else ():
            if info.is_dir() or _is_hidden(info.filename) or info.filename.lower().endswith(".json"):
                continue
            self.by_path[info.filename] = info
            self.by_name[PurePosixPath(info.filename).name].append(info)

    def find(self, reference):
        if self.archive is None:
            raise TaskError(
                "data.image",
                f"{reference!r}: Concord never downloads images; upload a .zip holding the JSON file and the images",
            )
        for candidate in image_names(reference):
            if candidate in self.by_path:
                return self.by_path[candidate]
            matches = self.by_name.get(candidate, [])
            if len(matches) > 1:
                raise TaskError("data.image", f"{candidate!r} names {len(matches)} files in the zip; give the path")
            if matches:
                return matches[0]
        raise TaskError("data.image", f"{reference!r} is not in the uploaded zip")

    def entry(self, info):
        from .item_import import _read_zip_member

        return Entry(info.filename, info.file_size, lambda: _read_zip_member(self.archive, info))


# --- checking and writing ------------------------------------------------------------------------


def _import_tasks(project, tasks, errors, *, name, kind, fmt, user, create_classes, batch, archive=None, written=None):
    written = [] if written is None else written
    errors = list(errors)
    with transaction.atomic():
        # One import into a project at a time (as annotation_import does): checks and writes
        # see the same rows.
        Project.objects.select_for_update().get(pk=project.pk)
        plan = _Plan(project, create_classes)
        checker = _TaskChecker(project, plan, _Images(archive), written)
        items, records, gold_records, predictions = {}, [], [], []
        unreadable = len(errors)
        for task in tasks:
            try:
                items[task.external_id] = checker.item_fields(task)
            except TaskError as exc:
                errors.append(row_error(task.row, exc.field, exc.message))
                continue
            for label in task.labels:
                cell = MULTI_LABEL_SEPARATOR.join(label.names)
                records.append(Record(task.row, (task.external_id, label.labeler, cell), label.unsure, label.note))
            if task.gold:
                gold_records.append(Record(task.row, (task.external_id, MULTI_LABEL_SEPARATOR.join(task.gold))))
            predictions.extend((task.external_id, p) for p in task.predictions)
        rows = plan.check_labels(records, errors, ANNOTATION_ROLES)
        gold_rows = plan.check_labels(gold_records, [], TRUTH_ROLES)
        batch = plan.write(
            rows,
            gold_rows,
            truth_name=name,
            user=user,
            source_name=name,
            items=items,
            kind=kind,
            batch=batch,
            summary={"format": fmt, "tasks": len(tasks) + unreadable, "tasks_rejected": len(errors)},
        )
        counts = _write_predictions(project, batch, predictions, plan.classes)
        batch.summary.update(counts)
        batch.save(update_fields=["summary"])
    return batch


class _TaskChecker:
    """Everything about one task that needs the project: classes, content, duplicates."""

    def __init__(self, project, plan, images, written):
        self.project, self.plan, self.images, self.written = project, plan, images, written
        self.seen = _Seen(project)
        self.max_chars = settings.CONCORD_IMPORT["MAX_TEXT_CHARS"]

    def item_fields(self, task):
        """The new item's field values ({} for an item already in the project); raises TaskError."""
        for where, name in task.label_names():
            problem = self.plan.label_problem(name)
            if problem:
                raise TaskError(where, problem)
        for prediction in task.predictions:
            known = self.plan.classes.get(prediction.name)
            if known is None or not known.is_active:
                shown = ", ".join(sorted(c for c, v in self.plan.classes.items() if v.is_active))
                state = "an inactive class" if known else "an unknown class"
                raise TaskError(
                    prediction.field, f"a prediction for {state} {prediction.name!r} (the project's classes: {shown})"
                )
        if task.external_id in self.seen.ids:
            return {}  # already in the project: its content stays as it is
        fields = {"metadata": task.metadata, "split": task.split}
        if self.project.data_kind == DataKind.TEXT and task.text is not None:
            fields.update(self._text(task))
        elif self.project.data_kind == DataKind.IMAGE and task.image is not None:
            fields.update(self._image(task))
        self.seen.add(task.external_id, fields.get("sha256", ""), task.row)
        return fields

    def _text(self, task):
        where = task.text_field
        if not task.text.strip():
            raise TaskError(where, "the text is empty")
        if len(task.text) > self.max_chars:
            raise TaskError(where, f"the text has {len(task.text):,} characters; the limit is {self.max_chars:,}")
        sha = hashlib.sha256(task.text.encode()).hexdigest()
        self._unique_content(sha, where)
        return {"text": task.text, "sha256": sha}

    def _image(self, task):
        info = self.images.find(task.image)
        checked = _check_image(self.images.entry(info))
        if isinstance(checked, str):
            raise TaskError("data.image", f"{info.filename}: {checked}")
        data, image = checked
        sha = hashlib.sha256(data).hexdigest()
        self._unique_content(sha, "data.image")
        image_name, thumbnail_name = store_image(self.project, sha, data, image, info.filename, self.written)
        return {
            "image": image_name,
            "thumbnail": thumbnail_name,
            "width": image.width,
            "height": image.height,
            "sha256": sha,
        }

    def _unique_content(self, sha, where):
        other = self.seen.hashes.get(sha)
        if other is not None:
            raise TaskError(where, f"same content as item {other!r}")


def _write_predictions(project, batch, predictions, classes):
    """Create new (item, source, class) scores, replace changed ones, skip identical ones."""
    chunk = settings.CONCORD_IMPORT["CHUNK_ROWS"]
    wanted = {}  # (external id, source, class id) -> score; the file's last word wins
    for external_id, prediction in predictions:
        wanted[external_id, prediction.source, classes[prediction.name].pk] = prediction.score
    item_ids = {}
    for ids in _chunks({key[0] for key in wanted}, chunk):
        item_ids.update(Item.objects.filter(project=project, external_id__in=ids).values_list("external_id", "id"))
    existing = {}
    for ids in _chunks(item_ids.values(), chunk):
        for row in ItemPrediction.objects.filter(item_id__in=ids):
            existing[row.item_id, row.source, row.label_class_id] = row
    to_create, to_update, skipped = [], [], 0
    for (external_id, source, class_id), score in wanted.items():
        row = existing.get((item_ids[external_id], source, class_id))
        if row is None:
            to_create.append(
                ItemPrediction(
                    item_id=item_ids[external_id],
                    source=source,
                    label_class_id=class_id,
                    score=score,
                    import_batch=batch,
                )
            )
        elif row.score == score:
            skipped += 1
        else:
            row.score, row.import_batch = score, batch
            to_update.append(row)
    ItemPrediction.objects.bulk_create(to_create, batch_size=chunk)
    ItemPrediction.objects.bulk_update(to_update, ["score", "import_batch"], batch_size=chunk)
    return {
        "predictions_created": len(to_create),
        "predictions_updated": len(to_update),
        "predictions_skipped": skipped,
    }
