"""What labeling's serving (labeling.py) and its labels (labeling_submit.py) share: the settings,
an item as served, and the query pieces that say, for one item, who labelled, leased or skipped it.

`annotation.services.labeling` is the entry point that re-exports the public names.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from .. import queue
from ..models import Annotation, Assignment, GoldLabel, Guideline, Item

LEASED, DONE, SKIPPED = Assignment.Status.LEASED, Assignment.Status.DONE, Assignment.Status.SKIPPED
# What a labeler's view of an item is built from: nothing that counts labels or tells gold.
SERVED_FIELDS = ("id", "project_id", "image", "width", "height", "text", "metadata")
MAX_DURATION_MS = 24 * 3600 * 1000


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
