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

Split by concern, with this module the entry point for all of it (import from here): serving and
leases and the queue's bookkeeping here, taking labels (submit, skip, undo) in labeling_submit.py,
and the query pieces both share in labeling_queries.py.
"""

import functools
import secrets
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from .. import queue
from ..errors import Conflict, DomainError
from ..errors import NotFound as NotFound
from ..models import Annotation, Assignment, GoldLabel, Guideline, Item, Membership, QueueEntry
from .labeling_queries import (
    DONE,
    LEASED,
    SERVED_FIELDS,
    SKIPPED,
    Served,
    _guideline_version,
    _has_gold,
    _labelled,
    _mine_annotated,
    _rank_new_items,
    config,
)
from .labeling_queries import MAX_DURATION_MS as MAX_DURATION_MS
from .labeling_queries import visible_metadata as visible_metadata
from .labeling_submit import check_label_names as check_label_names
from .labeling_submit import classes_for as classes_for
from .labeling_submit import skip as skip
from .labeling_submit import submit as submit
from .labeling_submit import undo as undo

LEASE_ATTEMPTS = 10
_system_random = secrets.SystemRandom()


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
