"""Import existing annotations (crowd labels: item, labeler, label rows) and their gold labels.

Two phases. First both files are read and split into rows (pure parsing, `crowd_parse`); a file
that cannot be read as a whole raises ImportRejected before the database is touched. Then ONE
transaction checks the rows against the project (classes, existing items, labelers,
annotations, gold), sets bad rows aside with row-level messages and bulk-writes the good ones
in chunks, so a crash leaves either the whole batch or nothing.

Rules:
- Items are created by external_id with empty content; one labeler account per worker, which
  cannot log in. Nothing is ever derived from an id.
- Several rows for one (item, labeler) pair are all kept: the last in file order is the current
  annotation, the earlier ones are its history.
- Re-running an import adds nothing: a pair whose current annotation already has the file's
  final label is skipped; a different final label is an edit (a new current row, the old one
  kept as history). Identical gold is skipped; different gold is rejected, never overwritten.
- Gold for an item that is neither in the file nor in the project is counted and reported,
  not turned into an item: such an item has nothing to score against.
"""

import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from ..access import acting_user
from ..crowd_parse import ParseError, decode_text, parse_delimiter, read_records, row_error, sort_class_names
from ..errors import ImportRejected
from ..models import (
    Annotation,
    AnnotationLabel,
    GoldLabel,
    GoldLabelClass,
    ImportBatch,
    Item,
    LabelClass,
    Membership,
    Project,
    Role,
    Source,
    TaskType,
)
from ..splits import draw_consistency_sample, draw_split
from ..text_rules import short_label_problem
from .item_import import MAX_STORED_ERRORS, MULTI_LABEL_SEPARATOR, save_batch
from .labeling import refresh_queue_state
from .projects import add_classes

ANNOTATION_ROLES = ("item", "labeler", "label")
TRUTH_ROLES = ("item", "label")
EXAMPLES = 20
_UNSAFE_USERNAME_CHARS = re.compile(r"[^\w.+-]")  # Django's username validator also allows '@'


@dataclass
class LabelRow:
    """A checked row: one label (or, in a multi-label project, several) for an item."""

    line: int
    item: str
    labeler: str  # the worker id; empty for a truth row
    names: tuple[str, ...]
    unsure: bool = False
    note: str = ""


def import_annotations(
    project,
    path,
    *,
    columns=None,
    has_header=True,
    delimiter=",",
    truth_path=None,
    truth_columns=None,
    create_classes=False,
    user=None,
    source_name=None,
    batch=None,
) -> ImportBatch:
    """Import (item, labeler, label) rows from `path`, and gold (item, label) rows from `truth_path`.

    `columns` / `truth_columns` name the header's columns in that order; None, or
    has_header=False, takes the first three (two) columns. `delimiter` is a character or a
    name ('TAB'). `path` may also be an open binary file. Returns the ImportBatch; its
    created/skipped counts are annotation rows, rejected_count counts both files' rejected
    rows and `summary` says what the files held. Raises ImportRejected, writing nothing, when
    a file as a whole cannot be read. `batch`: a queued ImportBatch to fill instead of a new one.
    """
    try:
        delimiter = parse_delimiter(delimiter)
    except ValueError as exc:
        raise ImportRejected(str(exc), "delimiter") from exc
    name = _name_of(path)
    records, parse_errors = _read(path, name, ANNOTATION_ROLES, columns, has_header, delimiter)
    truth_records, truth_parse_errors = [], []
    truth_name = None
    if truth_path is not None:
        truth_name = _name_of(truth_path)
        truth_records, truth_parse_errors = _read(
            truth_path, truth_name, TRUTH_ROLES, truth_columns, has_header, delimiter
        )

    # ONE transaction from the first read of the project's rows to the last write: the checks
    # and the writes see the same state, and a crash leaves the whole batch or nothing.
    with transaction.atomic():
        # Lock the project row so two imports into one project run one after the other.
        Project.objects.select_for_update().get(pk=project.pk)
        plan = _Plan(project, create_classes)
        rows = plan.check_labels(records, parse_errors, ANNOTATION_ROLES)
        gold_rows = plan.check_labels(truth_records, truth_parse_errors, TRUTH_ROLES)
        return plan.write(
            rows, gold_rows, truth_name=truth_name, user=user, source_name=source_name or name, batch=batch
        )


def labeler_username(project_slug: str, worker: str) -> str:
    """`<worker>@<project slug>`: unique across projects, since a slug never holds '@'.

    A worker id that is too long or holds characters a username may not is shortened and made
    unique again with a hash of the whole id. At most 150 characters, Django's limit.
    """
    room = 150 - len(project_slug) - 1
    safe = _UNSAFE_USERNAME_CHARS.sub("_", worker)
    if safe != worker or len(safe) > room:
        digest = hashlib.sha256(worker.encode()).hexdigest()[:12]
        safe = f"{safe[: room - len(digest) - 1]}+{digest}"
    return f"{safe}@{project_slug}"


# --- reading ---------------------------------------------------------------------------------


def _name_of(path):
    return os.path.basename(getattr(path, "name", None) or os.fspath(path))


def _read(path, name, roles, columns, has_header, delimiter):
    if columns is not None and len(columns) != len(roles):
        raise ImportRejected(f"name {len(roles)} columns for {name} ({', '.join(roles)})", "columns")
    try:
        text = decode_text(_read_bytes(path, name))
        return read_records(text, roles=roles, columns=columns, has_header=has_header, delimiter=delimiter)
    except ParseError as exc:
        raise ImportRejected(f"{name} {exc}", "file") from exc


def _read_bytes(path, name):
    limit = settings.CONCORD_IMPORT["MAX_UPLOAD_BYTES"]
    try:
        if hasattr(path, "read"):
            data = path.read(limit + 1)
        else:
            with open(path, "rb") as file:
                data = file.read(limit + 1)  # one byte more than allowed tells that it is too big
    except FileNotFoundError as exc:
        raise ImportRejected(f"{name} does not exist", "file") from exc
    except OSError as exc:
        raise ImportRejected(f"{name} cannot be read ({exc.strerror})", "file") from exc
    if len(data) > limit:
        raise ImportRejected(f"{name} is larger than the upload limit of {limit:,} bytes", "file")
    return data


def _chunks(values, size):
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


# --- checking and writing ----------------------------------------------------------------------


class _Plan:
    """What one import will write, worked out from the files and the project's current rows."""

    def __init__(self, project, create_classes):
        self.project = project
        self.create_classes = create_classes
        self.chunk = settings.CONCORD_IMPORT["CHUNK_ROWS"]
        self.classes = {c.name: c for c in project.label_classes.all()}
        self.multi_label = project.task_type == TaskType.MULTI_LABEL
        self.rejected = {}  # file role tuple -> row errors

    def check_labels(self, records, errors, roles):
        """Rows whose label names are usable (known and active, or to be created); the rest rejected."""
        errors = list(errors)
        rows = []
        max_name = LabelClass._meta.get_field("name").max_length
        max_id = Item._meta.get_field("external_id").max_length
        for record in records:
            item, *labeler, cell = record.values
            if len(item) > max_id:
                errors.append(
                    row_error(record.line, "item", f"item id is longer than {max_id} characters: {item[:40]}…")
                )
                continue
            # A single-label project takes the cell as one class name, separators and all.
            names = [n.strip() for n in cell.split(MULTI_LABEL_SEPARATOR)] if self.multi_label else [cell]
            names = tuple(dict.fromkeys(n for n in names if n))
            if names:
                problem = next(filter(None, (self.label_problem(n, max_name) for n in names)), None)
            else:
                problem = "the label is empty"
            if problem:
                errors.append(row_error(record.line, "label", problem))
                continue
            rows.append(LabelRow(record.line, item, labeler[0] if labeler else "", names, record.unsure, record.note))
        self.rejected[roles] = sorted(errors, key=lambda e: e["row"])
        return rows

    def label_problem(self, name, max_name=None):
        """Why `name` cannot be used as a label in this import, or None."""
        max_name = max_name or LabelClass._meta.get_field("name").max_length
        known = self.classes.get(name)
        if known is not None:
            return None if known.is_active else f"class {name!r} is inactive (merged or retired)"
        if self.create_classes:
            if len(name) > max_name:
                return f"label is longer than {max_name} characters: {name[:40]}…"
            problem = short_label_problem(name)
            return f"label {name!r} {problem}" if problem else None
        shown = ", ".join(sorted(self.classes)[:EXAMPLES])
        return f"unknown label {name!r} (the project's classes: {shown}); use --create-classes to add it"

    def write(
        self, rows, gold_rows, *, truth_name, user, source_name, items=None, kind=ImportBatch.Kind.ANNOTATIONS,
        batch=None, summary=None,
    ):  # fmt: skip
        """Plan against the project's rows, then bulk-write the batch; returns the ImportBatch.

        `items` (external id -> Item field values, e.g. text and metadata) are the file's items,
        created with those values when new even if no row labels them; `batch` is a queued
        ImportBatch to fill instead of creating one; `summary` adds to the batch's summary."""
        project = self.project
        items = items or {}
        item_ids = self._existing_items({r.item for r in rows} | {r.item for r in gold_rows} | set(items))
        file_items = list(dict.fromkeys([*items, *(r.item for r in rows)]))
        gold_rows, gold_repeats, without_labels = self._usable_gold(gold_rows, item_ids, set(file_items))

        new_names = {n for r in rows + gold_rows for n in r.names} - self.classes.keys()
        created_classes = add_classes(project, sort_class_names(new_names)) if new_names else []
        self.classes.update({c.name: c for c in created_classes})

        usernames = {w: labeler_username(project.slug, w) for w in dict.fromkeys(r.labeler for r in rows)}
        users, new_users = self._labelers(usernames.values())
        pairs = defaultdict(list)  # (item, worker) -> its rows in file order
        for row in rows:
            pairs[row.item, row.labeler].append(row)
        current = self._current_annotations(item_ids.values())
        to_create, edited_ids, skipped = self._plan_annotations(pairs, item_ids, users, usernames, current)
        gold_to_create, gold_skipped = self._plan_gold(gold_rows, item_ids)

        errors = self.rejected[ANNOTATION_ROLES] + [{**e, "file": truth_name} for e in self.rejected[TRUTH_ROLES]]
        summary = {
            "items": len(file_items),
            "items_created": sum(i not in item_ids for i in file_items),
            "labelers": len(usernames),
            "labelers_created": len(new_users),
            "labels": len(rows),
            "classes": sort_class_names({n for r in rows + gold_rows for n in r.names}),
            "classes_created": len(created_classes),
            # Pairs labelled more than once, and the rows beyond each pair's first: the crowd
            # README's "1,570 repeated (item, worker) pairs" of S_Rel counts the latter.
            "duplicate_pairs": sum(len(group) > 1 for group in pairs.values()),
            "duplicate_rows": sum(len(group) - 1 for group in pairs.values()),
            "conflicting_duplicate_pairs": sum(len({r.names for r in group}) > 1 for group in pairs.values()),
            "annotations_created": len(to_create),
            "annotations_skipped": skipped,
            "annotations_edited": len(edited_ids),
            "rejected_rows": len(self.rejected[ANNOTATION_ROLES]),
            "truth_source": truth_name,
            "gold_loaded": len(gold_to_create),
            "gold_skipped": gold_skipped + gold_repeats,
            "gold_without_labels": len(without_labels),
            "gold_without_labels_examples": without_labels[:EXAMPLES],
            "truth_rejected_rows": len(self.rejected[TRUTH_ROLES]),
            **(summary or {}),
        }
        batch = save_batch(
            batch,
            project=project,
            kind=kind,
            source_name=source_name[:255],
            created_by=acting_user(user),
            created_count=len(to_create),
            skipped_count=skipped,
            rejected_count=len(errors),
            errors=errors[:MAX_STORED_ERRORS],
            summary=summary,
        )
        self._write_labelers(users, new_users)
        self._write_items(batch, [i for i in file_items if i not in item_ids], item_ids, items)
        self._write_annotations(batch, to_create, edited_ids, item_ids, {w: users[u] for w, u in usernames.items()})
        self._write_gold(batch, gold_to_create, item_ids)
        # New labels and gold change which items still need labels.
        refresh_queue_state(self.project)
        return batch

    def _write_labelers(self, users, new_users):
        get_user_model().objects.bulk_create(new_users, batch_size=self.chunk)
        users.update({u.username: u.pk for u in new_users})
        members = set()
        for ids in _chunks(users.values(), self.chunk):
            members.update(
                Membership.objects.filter(project=self.project, user_id__in=ids).values_list("user_id", flat=True)
            )
        # A worker who already holds another role in the project keeps it.
        Membership.objects.bulk_create(
            (
                Membership(user_id=u, project=self.project, role=Role.LABELER)
                for u in users.values()
                if u not in members
            ),
            batch_size=self.chunk,
        )

    def _write_items(self, batch, new_external_ids, item_ids, fields):
        """Create the new items (item_ids gains their ids).

        `in_consistency_sample` is the seeded draw alone: gold items need k labels anyway,
        because the queue counts gold and the sample alike (as item_import does)."""
        project = self.project
        new_items = [
            Item(
                **{
                    "split": draw_split(external_id, project.seed, project.split_fractions),
                    # The file's values (text, metadata, its own split) over the defaults.
                    **{k: v for k, v in fields.get(external_id, {}).items() if v is not None},
                },
                project=project,
                external_id=external_id,
                in_consistency_sample=draw_consistency_sample(external_id, project.seed, project.consistency_fraction),
                import_batch=batch,
                source_name=batch.source_name,
            )
            for external_id in new_external_ids
        ]
        Item.objects.bulk_create(new_items, batch_size=self.chunk)
        item_ids.update({i.external_id: i.pk for i in new_items})

    def _write_annotations(self, batch, to_create, edited_ids, item_ids, labeler_ids):
        # The edited rows step back into history first: one current row per pair is a database
        # constraint, checked row by row.
        for ids in _chunks(edited_ids, self.chunk):
            Annotation.objects.filter(pk__in=ids).update(is_current=False)
        annotations = [
            Annotation(
                item_id=item_ids[row.item],
                labeler_id=labeler_ids[row.labeler],
                source=Source.IMPORTED,
                import_batch=batch,
                is_current=is_current,
                unsure=row.unsure,
                note=row.note,
            )
            for row, is_current in to_create
        ]
        # Created in file order, so ids order a pair's history where created_at ties.
        Annotation.objects.bulk_create(annotations, batch_size=self.chunk)
        AnnotationLabel.objects.bulk_create(
            (
                AnnotationLabel(annotation_id=a.pk, label_class_id=self.classes[n].pk)
                for a, (row, _) in zip(annotations, to_create, strict=True)
                for n in row.names
            ),
            batch_size=self.chunk,
        )

    def _write_gold(self, batch, gold_rows, item_ids):
        golds = [GoldLabel(item_id=item_ids[r.item], import_batch=batch) for r in gold_rows]
        GoldLabel.objects.bulk_create(golds, batch_size=self.chunk)
        GoldLabelClass.objects.bulk_create(
            (
                GoldLabelClass(gold_id=g.pk, label_class_id=self.classes[n].pk)
                for g, r in zip(golds, gold_rows, strict=True)
                for n in r.names
            ),
            batch_size=self.chunk,
        )

    def _existing_items(self, external_ids):
        found = {}
        for ids in _chunks(external_ids, self.chunk):
            found.update(
                Item.objects.filter(project=self.project, external_id__in=ids).values_list("external_id", "id")
            )
        return found

    def _usable_gold(self, gold_rows, item_ids, file_items):
        """One gold row per item that will exist; repeats and items without labels set aside."""
        first = {}
        skipped = 0
        without_labels = []
        for row in gold_rows:
            earlier = first.get(row.item)
            if earlier is not None:
                if set(earlier.names) == set(row.names):
                    skipped += 1
                else:
                    self._reject_gold(row, f"item {row.item!r} has a different gold label on line {earlier.line}")
                continue
            first[row.item] = row
        usable = []
        for row in first.values():
            if row.item in file_items or row.item in item_ids:
                usable.append(row)
            else:
                without_labels.append(row.item)
        return usable, skipped, without_labels

    def _reject_gold(self, row, message):
        self.rejected[TRUTH_ROLES].append(row_error(row.line, "label", message))
        self.rejected[TRUTH_ROLES].sort(key=lambda e: e["row"])

    def _labelers(self, usernames):
        """username -> user id for the workers' accounts that exist, and new accounts for the rest."""
        User = get_user_model()
        users = {}
        for names in _chunks(usernames, self.chunk):
            users.update(User.objects.filter(username__in=names).values_list("username", "id"))
        new_users = []
        for username in usernames:
            if username not in users:
                account = User(username=username)
                account.set_unusable_password()  # an imported worker is a record, not a login
                new_users.append(account)
        return users, new_users

    def _current_annotations(self, item_ids):
        """(item id, labeler id) -> (annotation id, frozenset of class ids) for existing items."""
        current = {}
        labels = defaultdict(set)
        for ids in _chunks(item_ids, self.chunk):
            rows = Annotation.objects.current().filter(item_id__in=ids)
            current.update({(i, u): a for a, i, u in rows.values_list("id", "item_id", "labeler_id")})
            pairs = AnnotationLabel.objects.filter(annotation__in=rows).values_list("annotation_id", "label_class_id")
            for annotation_id, class_id in pairs:
                labels[annotation_id].add(class_id)
        return {key: (a, frozenset(labels[a])) for key, a in current.items()}

    def _plan_annotations(self, pairs, item_ids, users, usernames, current):
        """[(row, is_current)] to create in file order, ids of current rows being edited, rows skipped."""
        # Keyed by the row object: a Label Studio task (one "line") holds several labelers' rows.
        chosen = {}  # id(row) -> is_current
        edited, skipped = [], 0
        for (item, worker), group in pairs.items():
            final = group[-1]
            existing = current.get((item_ids.get(item), users.get(usernames[worker])))
            if existing is None:
                chosen.update({id(row): row is final for row in group})
                continue
            annotation_id, class_ids = existing
            if class_ids == frozenset(self.classes[n].pk for n in final.names):
                skipped += len(group)
            else:
                # The file's earlier rows for this pair were history when first imported.
                edited.append(annotation_id)
                chosen[id(final)] = True
                skipped += len(group) - 1
        to_create = [(row, chosen[id(row)]) for group in pairs.values() for row in group if id(row) in chosen]
        to_create.sort(key=lambda pair: pair[0].line)
        return to_create, edited, skipped

    def _plan_gold(self, gold_rows, item_ids):
        """Gold rows to create; identical existing gold skipped, different existing gold rejected."""
        existing = defaultdict(set)
        known_ids = [item_ids[r.item] for r in gold_rows if r.item in item_ids]
        for ids in _chunks(known_ids, self.chunk):
            found = GoldLabel.objects.filter(item_id__in=ids)
            existing.update({item_id: set() for item_id in found.values_list("item_id", flat=True)})
            for item_id, class_id in GoldLabelClass.objects.filter(gold__in=found).values_list(
                "gold__item_id", "label_class_id"
            ):
                existing[item_id].add(class_id)
        to_create, skipped = [], 0
        names_by_id = {c.pk: c.name for c in self.classes.values()}
        for row in gold_rows:
            item_id = item_ids.get(row.item)
            if item_id not in existing:
                to_create.append(row)
            elif existing[item_id] == {self.classes[n].pk for n in row.names}:
                skipped += 1
            else:
                held = MULTI_LABEL_SEPARATOR.join(sorted(names_by_id[c] for c in existing[item_id]))
                self._reject_gold(row, f"item {row.item!r} already has gold {held!r}; an import does not replace gold")
        return to_create, skipped
