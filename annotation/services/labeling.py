"""The labeling workflow: serve the next item under a lease, take a label, skip, undo, edit.

The rules live in `annotation/queue.py`; this module asks the database for what they need in a
fixed number of queries, whatever the size of the project:

- `next_item`: 1 query to resume a live lease; otherwise 1 to rank new items, 1 to find the best
  available item of each source (queue entries / shuffled ordinary / shuffled gold), 1 to re-count the
  chosen item's slots under its row lock and 1 to write the lease (plus a savepoint).
- `submit`: 1 to lock and read the item, 1 for an idempotent replay, 1 for the classes, 5 writes.

Concurrency. Each source walks the project's open items in queue order with
`SELECT ... FOR UPDATE OF item SKIP LOCKED LIMIT 1` on PostgreSQL, so labelers asking at the same
moment take different items instead of waiting for each other. The lock alone is not enough (a
query whose snapshot predates another labeler's commit may still see a free slot), so the chosen
item's slots are counted again by a *new* statement once its lock is held, and the lease is
written only when a slot is still free; otherwise the attempt's savepoint is rolled back, which
releases its locks, and the walk runs again. Every write of a lease or a label happens with that
item's row locked, so two labelers never take the same slot. When the walk finds nothing, it is
made once more without locks: an item that turns up is held by someone this instant, so the
labeler waits for that one lock (holding no other, so no deadlock) instead of being told the
queue is empty. On SQLite, `transaction.atomic` opens an IMMEDIATE transaction (see settings):
writers run one at a time, which gives the same guarantee.

Blind labeling. What a labeler is served says nothing of other labelers or gold: the same fields,
the same queries (all three sources are always searched) whatever the item.
"""

import functools
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import queue
from ..errors import Conflict, DomainError, NotFound
from ..models import (
    Annotation,
    AnnotationLabel,
    Assignment,
    GoldLabel,
    Guideline,
    Item,
    LabelClass,
    Membership,
    QueueEntry,
    Source,
    TaskType,
)

LEASED, DONE, SKIPPED = Assignment.Status.LEASED, Assignment.Status.DONE, Assignment.Status.SKIPPED
# What a labeler's view of an item is built from: nothing that counts labels or tells gold.
SERVED_FIELDS = ("id", "project_id", "image", "width", "height", "text", "metadata")
MAX_DURATION_MS = 24 * 3600 * 1000
LEASE_ATTEMPTS = 10
_system_random = secrets.SystemRandom()


def config():
    return settings.CONCORD_LABELING


@dataclass(frozen=True)
class Served:
    """An item as a labeler sees it, with their lease and the guideline version in force."""

    item: Item
    expires_at: datetime
    guideline_version: int | None


def visible_metadata(metadata):
    """The item's metadata without keys a labeler must not see (`_private`, gold-like names)."""
    hidden = {key.lower() for key in config()["HIDDEN_METADATA_KEYS"]}
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if not k.startswith("_") and k.lower() not in hidden}


# ---- Query pieces ------------------------------------------------------------------------------


def _count(queryset):
    """COUNT of a queryset correlated to the outer item, 0 when there are none."""
    counted = queryset.order_by().values("item").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _labelled(exclude_user=None):
    current = Annotation.objects.filter(item=OuterRef("pk"), is_current=True)
    if exclude_user is not None:
        current = current.exclude(labeler=exclude_user)
    return _count(current)


def _leased_by_others(user, now):
    return _count(
        Assignment.objects.filter(item=OuterRef("pk"), status=LEASED, expires_at__gt=now).exclude(labeler=user)
    )


def _has_gold():
    return Exists(GoldLabel.objects.filter(item=OuterRef("pk")))


def _mine_annotated(user):
    return Exists(Annotation.objects.filter(item=OuterRef("pk"), labeler=user, is_current=True))


def _mine_blocking(user, now):
    """The labeler finished, skipped or still leases the item (an expired lease does not block)."""
    return Exists(
        Assignment.objects.filter(item=OuterRef("pk"), labeler=user).exclude(status=LEASED, expires_at__lte=now)
    )


def _guideline_version(project):
    published = Guideline.objects.filter(project=project, published_at__isnull=False).order_by("-version")
    return Subquery(published.values("version")[:1], output_field=IntegerField())


def _rank_new_items(project):
    """Give items that have none their place in the shuffled order and their pool (gold or not).

    `queue.seeded_rank` in SQL: integer *, + and % only (each product below 2**63), so PostgreSQL
    and SQLite compute exactly the pure function's numbers. One cheap statement when nothing is new.
    """
    a, b, c = queue.rank_coefficients(project.seed)
    item, gold = Item._meta.db_table, GoldLabel._meta.db_table
    x = "((id * %(a)s + %(b)s) %% %(p)s)"
    sql = (
        f"UPDATE {item} SET queue_rank = (((({x} * {x}) %% %(p)s) * %(c)s + {x}) %% %(p)s),"  # noqa: S608 - constants
        f" queue_gold = EXISTS (SELECT 1 FROM {gold} g WHERE g.item_id = {item}.id)"
        " WHERE project_id = %(project)s AND queue_rank IS NULL"
    )
    params = {"a": a, "b": b, "c": c, "p": queue.RANK_MODULUS, "project": project.pk}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# The hot path of `next_item` as one statement: the best available item of each source. Written
# as SQL (not the ORM) so it costs one round trip and no query building; it says what `_labelled`,
# `_leased_by_others`, `_mine_annotated`, `_mine_blocking` and `_has_gold` say for one item, and
# tests check it against the pure rule (`queue.reference_next`). `{lock}` is PostgreSQL's row lock
# that passes over rows other transactions hold; SQLite has none (one transaction at a time).
_CANDIDATES_SQL = """
WITH prioritized AS (
    SELECT i.id FROM {entry} e JOIN {item} i ON i.id = e.item_id
    WHERE e.project_id = %(project)s AND e.is_active AND {available} AND {taken} < {needed}
    ORDER BY e.priority DESC, i.queue_rank, i.id LIMIT 1 {lock}
), ranked_plain AS (
    SELECT i.id FROM {item} i
    WHERE {available} AND NOT i.queue_gold AND i.queue_rank IS NOT NULL AND {taken} < {needed}
    ORDER BY i.queue_rank, i.id LIMIT 1 {lock}
), ranked_gold AS (
    SELECT i.id FROM {item} i
    WHERE {available} AND i.queue_gold AND i.queue_rank IS NOT NULL AND {taken} < {needed}
    ORDER BY i.queue_rank, i.id LIMIT 1 {lock}
)
SELECT (SELECT id FROM prioritized), (SELECT id FROM ranked_plain), (SELECT id FROM ranked_gold)
"""
# open, not labelled by the user, and not done, skipped or still leased by them
_AVAILABLE_SQL = """i.project_id = %(project)s AND NOT i.queue_done
        AND NOT EXISTS (SELECT 1 FROM {annotation} a WHERE a.item_id = i.id AND a.labeler_id = %(user)s
                        AND a.is_current)
        AND NOT EXISTS (SELECT 1 FROM {assignment} s WHERE s.item_id = i.id AND s.labeler_id = %(user)s
                        AND NOT (s.status = 'leased' AND s.expires_at <= %(now)s))"""
# current labels plus other labelers' live leases
_TAKEN_SQL = """((SELECT COUNT(*) FROM {annotation} a WHERE a.item_id = i.id AND a.is_current)
        + (SELECT COUNT(*) FROM {assignment} s WHERE s.item_id = i.id AND s.status = 'leased'
           AND s.expires_at > %(now)s AND s.labeler_id <> %(user)s))"""
# k for the consistency sample and gold items (from the gold table itself), else 1
_NEEDED_SQL = """CASE WHEN i.in_consistency_sample OR EXISTS (SELECT 1 FROM {goldlabel} g WHERE g.item_id = i.id)
        THEN %(overlap)s ELSE 1 END"""


@functools.cache
def _tables():
    """Table names for the SQL of the hot path (the only things formatted into its text)."""
    models = {"item": Item, "entry": QueueEntry, "annotation": Annotation, "assignment": Assignment,
              "goldlabel": GoldLabel, "guideline": Guideline}  # fmt: skip
    return {name: model._meta.db_table for name, model in models.items()}


@functools.cache
def _candidates_sql(vendor, lock):
    """The candidate query for a database vendor, with or without row locks."""
    tables = _tables()
    parts = {
        "available": _AVAILABLE_SQL.format(**tables),
        "taken": _TAKEN_SQL.format(**tables),
        "needed": _NEEDED_SQL.format(**tables),
    }
    lock_clause = "FOR UPDATE OF i SKIP LOCKED" if lock and vendor == "postgresql" else ""
    # Only constants and table names go into the text; every value is a query parameter.
    return _CANDIDATES_SQL.format(lock=lock_clause, **parts, **tables)


def _candidates(project, user, now, *, lock=True):
    """Each source's best available item for the user (one query, the same whatever the item).

    With `lock`, the items found are row-locked (PostgreSQL), passing over rows that other
    transactions hold instead of waiting for them."""
    params = {
        "project": project.pk,
        "user": user.pk,
        "now": connection.ops.adapt_datetimefield_value(now),
        "overlap": project.overlap,
    }
    with connection.cursor() as cursor:
        cursor.execute(_candidates_sql(connection.vendor, lock), params)
        return queue.Candidates(*cursor.fetchone())


_LEASE_SQL = """
SELECT i.id, i.project_id, i.image, i.width, i.height, i.text, i.metadata, i.in_consistency_sample,
    EXISTS (SELECT 1 FROM {goldlabel} g WHERE g.item_id = i.id) AS has_gold,
    (SELECT COUNT(*) FROM {annotation} a WHERE a.item_id = i.id AND a.is_current) AS labelled,
    (SELECT COUNT(*) FROM {assignment} s WHERE s.item_id = i.id AND s.status = 'leased'
        AND s.expires_at > %(now)s AND s.labeler_id <> %(user)s) AS leased,
    EXISTS (SELECT 1 FROM {annotation} a WHERE a.item_id = i.id AND a.labeler_id = %(user)s AND a.is_current)
    OR EXISTS (SELECT 1 FROM {assignment} s WHERE s.item_id = i.id AND s.labeler_id = %(user)s
        AND NOT (s.status = 'leased' AND s.expires_at <= %(now)s)) AS mine,
    (SELECT v.version FROM {guideline} v WHERE v.project_id = i.project_id AND v.published_at IS NOT NULL
        ORDER BY v.version DESC LIMIT 1) AS guideline_version
FROM {item} i WHERE i.id = %(item)s
"""
_LEASE_WRITE_SQL = """
INSERT INTO {assignment} (item_id, labeler_id, status, served_at, expires_at)
VALUES (%(item)s, %(user)s, 'leased', %(now)s, %(expires)s)
ON CONFLICT (item_id, labeler_id)
DO UPDATE SET status = excluded.status, served_at = excluded.served_at, expires_at = excluded.expires_at
"""


def _lease(project, user, item_id, now):
    """Lease `item_id` to the user if a slot is still free, counted by a statement that runs after
    the item's row lock is held; the item (as served) or None when the race was lost.

    Two statements of SQL, like `_candidates` (the same counts as `_labelled`, `_leased_by_others`,
    `_mine_annotated` and `_mine_blocking`); the write renews the user's own expired lease in place.
    """
    tables = _tables()
    expires_at = now + timedelta(seconds=config()["LEASE_SECONDS"])
    params = {
        "item": item_id,
        "user": user.pk,
        "now": connection.ops.adapt_datetimefield_value(now),
        "expires": connection.ops.adapt_datetimefield_value(expires_at),
    }
    item = next(iter(Item.objects.raw(_LEASE_SQL.format(**tables), params)), None)
    if item is None or item.mine:
        return None
    needed = queue.labels_needed(
        in_consistency_sample=item.in_consistency_sample, has_gold=bool(item.has_gold), overlap=project.overlap
    )
    if queue.open_slots(needed, item.labelled, item.leased) <= 0:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_LEASE_WRITE_SQL.format(**tables), params)
    return Served(item, expires_at, item.guideline_version)


# ---- Serving -----------------------------------------------------------------------------------


def next_item(project, user, *, exclude=(), now=None, rng=None):
    """The item the user should label now, leased to them; None when nothing is left for them.

    A live lease the user already holds comes back first (a reload does not lose it), except the
    ids in `exclude`: the page passes the item on screen to prefetch the one after it.
    """
    now = now or timezone.now()
    rng = rng or _system_random
    exclude = [int(i) for i in exclude][: config()["MAX_EXCLUDE"]]
    with transaction.atomic():
        held = (
            Assignment.objects.filter(labeler=user, item__project=project, status=LEASED, expires_at__gt=now)
            .exclude(item_id__in=exclude)
            .select_related("item")
            .only("expires_at", "item", *(f"item__{f}" for f in SERVED_FIELDS))
            .annotate(guideline_version=_guideline_version(project))
            .order_by("served_at", "pk")
            .first()
        )
        if held is not None:
            return Served(held.item, held.expires_at, held.guideline_version)

        _rank_new_items(project)
        draw = rng.random()
        for _attempt in range(LEASE_ATTEMPTS):
            try:
                # A savepoint per attempt: a lost race rolls it back, which releases its row locks.
                with transaction.atomic():
                    return _serve(project, user, now, draw)
            except _LostRace:
                continue
    raise Conflict("the queue is busy; ask again", "item")


class _LostRace(Exception):
    """Another labeler took the chosen item's last slot first."""


def _serve(project, user, now, draw):
    """One attempt at leasing the best item: Served, None when nothing is left, or _LostRace."""
    tuning = getattr(project, "tuning", None)  # set when the project was created in the browser
    gold_rate = tuning.gold_rate if tuning is not None else config()["GOLD_RATE"]
    chosen = queue.choose(_candidates(project, user, now), gold_rate=gold_rate, draw=draw)
    if chosen is None:
        if not connection.features.has_select_for_update_skip_locked:
            return None  # SQLite: nothing was passed over
        # Nothing free, or only items other labelers hold locked this instant? Look without locks;
        # if an item turns up, wait for its holder to finish (holding no other lock, so no deadlock).
        chosen = queue.choose(_candidates(project, user, now, lock=False), gold_rate=gold_rate, draw=draw)
        if chosen is None:
            return None
        list(Item.objects.select_for_update().filter(pk=chosen).order_by().values_list("pk"))
    served = _lease(project, user, chosen, now)
    if served is None:
        raise _LostRace
    return served


# ---- Labels ------------------------------------------------------------------------------------


def check_label_names(project, labels):
    """The shape of a list of class names, before any query: text, no repeats, one on a
    single-label project. Labels and SME resolutions both go through here."""
    if not isinstance(labels, list | tuple) or any(not isinstance(name, str) or not name for name in labels):
        raise DomainError("labels are class names (non-empty text)", "labels")
    repeated = sorted({name for name in labels if labels.count(name) > 1})
    if repeated:
        raise DomainError(f"labels repeat: {', '.join(repeated)}", "labels")
    if project.task_type == TaskType.SINGLE_LABEL and len(labels) > 1:
        raise DomainError(f"this project takes exactly one label per item; got {len(labels)}", "labels")


def _check_fields(project, labels, note, duration_ms):
    if not labels:
        raise DomainError("give at least one label", "labels")
    check_label_names(project, labels)
    limit = config()["MAX_NOTE_CHARS"]
    if note is not None and len(note) > limit:
        raise DomainError(f"the note has {len(note):,} characters; the limit is {limit:,}", "note")
    if duration_ms is not None and not 0 <= duration_ms <= MAX_DURATION_MS:
        raise DomainError("duration_ms must be between 0 and a day (86,400,000)", "duration_ms")


def classes_for(project, labels):
    """The project's active classes named by `labels`, in their order; a DomainError naming `labels`
    for a name that is not a class here, or a merged or inactive one."""
    found = {
        c.name: c for c in LabelClass.objects.filter(project=project, name__in=labels).select_related("merged_into")
    }
    classes = []
    for name in labels:
        label_class = found.get(name)
        if label_class is None:
            raise DomainError(f"{name!r} is not a class of this project", "labels")
        if label_class.merged_into is not None:
            raise DomainError(
                f"{name!r} was merged into {label_class.merged_into.name!r}; label with that instead", "labels"
            )
        if not label_class.is_active:
            raise DomainError(f"{name!r} is no longer in use in this project", "labels")
        classes.append(label_class)
    return classes


def submit(project, user, *, item_id, labels, client_id, unsure=False, note="", duration_ms=None, now=None):
    """Record the user's label(s) for an item they were served: (annotation, created).

    The same `client_id` again returns the first annotation unchanged (created=False). A new
    label for an item the user already labelled is an edit: the old annotation stays, no longer
    current. Nothing is written when anything is wrong.
    """
    note = note or ""
    _check_fields(project, labels, note, duration_ms)
    try:
        return _submit(project, user, item_id, labels, client_id, unsure, note, duration_ms, now or timezone.now())
    except IntegrityError:
        # The same client_id sent for two items at the same moment: the other request won, and
        # this transaction was rolled back whole.
        if Annotation.objects.filter(labeler=user, client_id=client_id).exists():
            raise DomainError(f"client_id {client_id} was already used for another item", "client_id") from None
        raise


def _submit(project, user, item_id, labels, client_id, unsure, note, duration_ms, now):
    with transaction.atomic():
        item = (
            Item.objects.select_for_update()
            .filter(pk=item_id, project=project)
            .annotate(
                has_gold=_has_gold(),
                others=_labelled(exclude_user=user),
                leased=_leased_by_others(user, now),
                my_status=Subquery(Assignment.objects.filter(item=OuterRef("pk"), labeler=user).values("status")[:1]),
                my_expiry=Subquery(
                    Assignment.objects.filter(item=OuterRef("pk"), labeler=user).values("expires_at")[:1]
                ),
                my_current=Subquery(
                    Annotation.objects.filter(item=OuterRef("pk"), labeler=user, is_current=True).values("pk")[:1]
                ),
                guideline_id=Subquery(
                    Guideline.objects.filter(project=project, published_at__isnull=False)
                    .order_by("-version")
                    .values("pk")[:1]
                ),
                guideline_version=_guideline_version(project),
            )
            .only("id", "project_id", "in_consistency_sample")
            .order_by("pk")
            .first()
        )
        if item is None:
            raise DomainError(f"there is no item {item_id} in this project", "item")

        replay = (
            Annotation.objects.filter(labeler=user, client_id=client_id)
            .annotate(guideline_version=F("guideline__version"))
            .order_by("pk")
            .first()
        )
        if replay is not None:
            if replay.item_id != item.pk:
                raise DomainError(f"client_id {client_id} was already used for another item", "client_id")
            replay.label_names = list(
                AnnotationLabel.objects.filter(annotation=replay)
                .order_by("label_class__order", "label_class__name")
                .values_list("label_class__name", flat=True)
            )
            return replay, False

        classes = classes_for(project, labels)
        needed = queue.labels_needed(
            in_consistency_sample=item.in_consistency_sample, has_gold=item.has_gold, overlap=project.overlap
        )
        if item.my_current is None:
            if item.my_status is None:
                raise DomainError("you were not served this item; ask next-item for work", "item")
            if item.my_status == SKIPPED:
                raise DomainError("you skipped this item", "item")
            if not queue.lease_is_live(item.my_status, item.my_expiry, now) and (
                queue.open_slots(needed, item.others, item.leased) <= 0
            ):
                raise Conflict("your lease on this item ran out and its label slots went to others", "item")

        Annotation.objects.filter(item=item, labeler=user, is_current=True).update(is_current=False)
        annotation = Annotation.objects.create(
            item_id=item.pk,
            labeler=user,
            unsure=bool(unsure),
            note=note,
            duration_ms=duration_ms,
            guideline_id=item.guideline_id,
            source=Source.HUMAN,
            client_id=client_id,
            created_at=now,
        )
        AnnotationLabel.objects.bulk_create(AnnotationLabel(annotation=annotation, label_class=c) for c in classes)
        Assignment.objects.filter(item=item, labeler=user).update(status=DONE)
        Item.objects.filter(pk=item.pk).update(queue_done=item.others + 1 >= needed)
        # A queue entry whose item got all its labels has done its work: it leaves the queue.
        QueueEntry.objects.filter(item=item, is_active=True, item__queue_done=True).update(is_active=False)
    annotation.label_names = [c.name for c in classes]
    annotation.guideline_version = item.guideline_version
    return annotation, True


def skip(project, user, *, item_id, now=None):
    """Pass on a served item: it is not served to this user again, and its slot is free."""
    with transaction.atomic():
        item = (
            Item.objects.select_for_update()
            .filter(pk=item_id, project=project)
            .annotate(
                my_status=Subquery(Assignment.objects.filter(item=OuterRef("pk"), labeler=user).values("status")[:1]),
                mine=_mine_annotated(user),
            )
            .only("id")
            .order_by("pk")
            .first()
        )
        if item is None:
            raise DomainError(f"there is no item {item_id} in this project", "item")
        if item.mine or item.my_status == DONE:
            raise DomainError("you already labelled this item; change your label in My work instead", "item")
        if item.my_status is None:
            raise DomainError("you were not served this item", "item")
        Assignment.objects.filter(item=item, labeler=user).update(status=SKIPPED)


def undo(project, user, *, annotation_id, now=None):
    """Take back the user's latest label of an item within UNDO_SECONDS of giving it.

    The annotation is deleted (it never counted); an older version, if any, is current again;
    otherwise the item is leased to the user again. Returns the item as served, to label anew.
    """
    now = now or timezone.now()
    window = config()["UNDO_SECONDS"]
    with transaction.atomic():
        annotation = (
            Annotation.objects.filter(pk=annotation_id, labeler=user, item__project=project).order_by("pk").first()
        )
        if annotation is None:
            raise NotFound("you have no such annotation in this project", "annotation")
        item = (
            Item.objects.select_for_update()
            .filter(pk=annotation.item_id)
            .annotate(has_gold=_has_gold(), guideline_version=_guideline_version(project))
            .only(*SERVED_FIELDS, "in_consistency_sample")
            .order_by("pk")
            .get()
        )
        if not annotation.is_current:
            raise DomainError("this label was already changed or undone", "annotation")
        if not queue.undo_allowed(annotation.created_at, now, window):
            raise DomainError(f"a label can be undone for {window} seconds; change it in My work instead", "annotation")
        previous = (
            Annotation.objects.filter(item=item, labeler=user, is_current=False).order_by("-created_at", "-pk").first()
        )
        AnnotationLabel.objects.filter(annotation=annotation).delete()
        Annotation.objects.filter(pk=annotation.pk).delete()
        expires_at = now + timedelta(seconds=config()["LEASE_SECONDS"])
        if previous is not None:
            Annotation.objects.filter(pk=previous.pk).update(is_current=True)
            Assignment.objects.filter(item=item, labeler=user).update(status=DONE)
        else:
            Assignment.objects.bulk_create(
                [Assignment(item=item, labeler=user, status=LEASED, served_at=now, expires_at=expires_at)],
                update_conflicts=True,
                unique_fields=["item", "labeler"],
                update_fields=["status", "served_at", "expires_at"],
            )
        needed = queue.labels_needed(
            in_consistency_sample=item.in_consistency_sample, has_gold=item.has_gold, overlap=project.overlap
        )
        labelled = Annotation.objects.filter(item=item, is_current=True).count()
        Item.objects.filter(pk=item.pk).update(queue_done=labelled >= needed)
    return Served(item, expires_at, item.guideline_version)


# ---- Around the queue --------------------------------------------------------------------------


def progress(project, user, *, now=None):
    """{'done_today': the user's current labels given today (local time), 'left': items that still
    need labels and that the user has neither labelled nor skipped}."""
    now = now or timezone.now()
    start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    done_today = Annotation.objects.filter(
        labeler=user, item__project=project, is_current=True, created_at__gte=start
    ).count()
    left = (
        Item.objects.filter(project=project, queue_done=False)
        .filter(
            ~_mine_annotated(user),
            ~Exists(Assignment.objects.filter(item=OuterRef("pk"), labeler=user, status__in=[DONE, SKIPPED])),
        )
        .count()
    )
    return {"done_today": done_today, "left": left}


def current_guideline(project):
    """The latest published guideline, or None."""
    return (
        Guideline.objects.filter(project=project, published_at__isnull=False)
        .order_by("-version")
        .only("version", "text", "published_at")
        .first()
    )


def mark_guideline_seen(project, user, version):
    """Record that the user read guideline `version` (no later than the latest published one)."""
    latest = current_guideline(project)
    if latest is None or not 1 <= int(version) <= latest.version:
        raise DomainError("no such published guideline version", "version")
    Membership.objects.filter(project=project, user=user).update(last_seen_guideline_version=int(version))


def refresh_queue_state(project):
    """Recompute every item's queue bookkeeping (`queue_gold`, `queue_done`, and ranks of new items)
    from the annotations and gold.

    Call after writing annotations or gold outside this module (imports, simulations), or after
    changing the overlap or the consistency sample: an item wrongly marked done would never be
    served again; a wrong pool only serves it at the other kind's rate; an item wrongly marked open
    only costs the queue a little time.
    """
    k = project.overlap
    items = Item.objects.filter(project=project).annotate(labelled=_labelled(), with_gold=_has_gold())
    full = Q(labelled__gte=k) | Q(labelled__gte=1, in_consistency_sample=False, with_gold=False)
    with transaction.atomic():
        _rank_new_items(project)
        Item.objects.filter(pk__in=items.filter(with_gold=True, queue_gold=False).values("pk")).update(queue_gold=True)
        Item.objects.filter(pk__in=items.filter(with_gold=False, queue_gold=True).values("pk")).update(queue_gold=False)
        closed = Item.objects.filter(pk__in=items.filter(full).values("pk"), queue_done=False).update(queue_done=True)
        opened = Item.objects.filter(pk__in=items.exclude(full).values("pk"), queue_done=True).update(queue_done=False)
    return {"closed": closed, "opened": opened}
