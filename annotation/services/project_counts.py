"""The project page's counts, kept in one row per project (`ProjectCounts`) instead of being
recomputed per request.

Why a row and not the cache: counting a project's items per split and its current annotations
(distinct items, distinct labelers, the most active labelers) costs ~0.3 s at 100k items and
1M annotations, far over a page's budget. A database row is shared by every web worker (a
per-process cache is not, so an invalidation in one gunicorn worker would not reach the others),
costs one indexed read, and a write marks it stale with one UPDATE that every worker sees.

Freshness: a row is recomputed on the next read when it is `stale` or older than MAX_AGE seconds.
- Imports and setup changes call `mark_stale` (after their transaction commits): the MLE who just
  uploaded sees the new items on the next page.
- Labels and SME decisions do not: under twenty labelers every label would invalidate the row
  and every page view would count again. Their counts show within MAX_AGE; the page says how old
  the counts are. (Per-user figures, e.g. a labeler's own count, are read live.)
"""

from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.utils import timezone

from ..models import Annotation, Item, ProjectCounts, Split

MAX_AGE = timedelta(seconds=30)
LABELER_ROWS = 25


def compute(project):
    """Count the project now: a dict of ProjectCounts' fields. Four queries, no COUNT(DISTINCT)
    over the annotations (at 1M annotations two of those took 2 s): one GROUP BY labeler gives
    the total, the number of labelers and the most active ones; labelled items are counted as
    items with a current annotation."""
    items = Item.objects.filter(project=project).aggregate(
        items=Count("pk"),
        **{s.value: Count("pk", filter=Q(split=s.value)) for s in Split},
        consistency=Count("pk", filter=Q(in_consistency_sample=True)),
        gold=Count("gold"),
    )
    current = Annotation.objects.current().filter(item__project=project)
    per_labeler = list(
        current.values("labeler")
        .annotate(n=Count("pk"), unsure=Count("pk", filter=Q(unsure=True)), last=Max("created_at"))
        .order_by("-n", "labeler")
    )
    top = per_labeler[:LABELER_ROWS]
    names = dict(get_user_model().objects.filter(pk__in=[r["labeler"] for r in top]).values_list("pk", "username"))
    labeler_rows = [
        {
            "labeler__username": names.get(r["labeler"], ""),
            "n": r["n"],
            "unsure": r["unsure"],
            "last": r["last"].isoformat(),
        }
        for r in top
    ]
    labeler_rows.sort(key=lambda r: (-r["n"], r["labeler__username"]))
    labelled = Item.objects.filter(project=project).filter(Exists(current.filter(item=OuterRef("pk")))).count()
    return {
        **items,
        "annotations": sum(r["n"] for r in per_labeler),
        "labelled_items": labelled,
        "labelers": len(per_labeler),
        "labeler_rows": labeler_rows,
    }


def refresh(project):
    """Recompute and store the project's counts; returns the row."""
    row = ProjectCounts(project=project, **compute(project), computed_at=timezone.now(), stale=False)
    fields = [f.name for f in ProjectCounts._meta.concrete_fields if not f.primary_key]
    # An upsert: two requests refreshing at once both succeed (the later write wins).
    ProjectCounts.objects.bulk_create([row], update_conflicts=True, unique_fields=["project"], update_fields=fields)
    return row


def counts_for(project, *, now=None):
    """The project's counts, recomputed only when missing, stale or older than MAX_AGE.

    Reads `project.counts`: select_related("counts") on the project's query saves a query."""
    now = now or timezone.now()
    try:
        row = project.counts  # no query where the caller select_related("counts")
    except ProjectCounts.DoesNotExist:
        row = None
    if row is None or row.stale or now - row.computed_at > MAX_AGE:
        row = refresh(project)
    for r in row.labeler_rows:
        if isinstance(r.get("last"), str):
            r["last"] = datetime.fromisoformat(r["last"])
    return row


def mark_stale(project_id):
    """Have the next read recount `project_id`. Marked now and again once the current transaction
    (if any) commits: a reader that recounted between the two saw the writes uncommitted, i.e.
    not at all, and must not keep those figures for MAX_AGE."""

    def mark():
        ProjectCounts.objects.filter(project_id=project_id).update(stale=True)

    mark()
    transaction.on_commit(mark)
