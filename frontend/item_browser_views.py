"""The item browser (SMEs and MLEs): a project's items as tiles, filtered, a page at a time.

Pages are keyset-paginated on the item id (`?after=ID` / `?before=ID`), never OFFSET: page
1,000 costs what page 1 costs, and an import landing meanwhile does not shift the pages. Each
tile's status and final label come from correlated subqueries in the page's one item query, so a
page costs the same number of queries whatever the size of the project.

Status of an item, first match wins:
- resolved: it has a current SME resolution (a final label, or "ambiguous");
- disputed: its current labels name more than one class;
- unlabelled: no current label;
- partly: fewer current labels than it needs (overlap k in the consistency sample or with gold,
  else 1);
- complete: as many as it needs, all agreeing.
Final label: the current resolution's class, else the gold class (consensus is the quality
report's, computed by the worker, not per page).

Labelers never reach this page (the 403 page); non-members get 404 (frontend/staff.py).
"""

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models.functions import Left
from django.shortcuts import render
from django.urls import reverse

from annotation.models import DataKind, ImportBatch, LabelClass, Split, Tag
from annotation.services import tags as tag_service
from annotation.services.item_filters import (
    FILTERS,
    STATUSES,
    BadFilter,
    annotated_items,
    filter_items,
    status_of,
)

from .staff import page_context, staff_project

PAGE_SIZE = 48
SNIPPET_CHARS = 160


def _cursor(params, name):
    value = params.get(name, "")
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise BadFilter(name, f"{name} must be an item id")
    return int(value)


def _page(items, after, before):
    """One page by keyset: (rows, has_previous, has_next). PAGE_SIZE + 1 rows tell whether
    there is a page beyond."""
    if before is not None:
        rows = list(items.filter(pk__lt=before).order_by("-pk")[: PAGE_SIZE + 1])
        has_previous = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        return rows, has_previous, True
    if after is not None:
        items = items.filter(pk__gt=after)
    rows = list(items.order_by("pk")[: PAGE_SIZE + 1])
    return rows[:PAGE_SIZE], after is not None, len(rows) > PAGE_SIZE


@login_required
def item_browser(request, slug):
    project = staff_project(request, slug)
    params = request.GET
    classes = list(LabelClass.objects.filter(project=project).order_by("order", "name"))
    sources = list(
        ImportBatch.objects.filter(project=project).order_by("source_name").values_list("source_name", flat=True)
    )
    filters = {name: params.get(name, "") for name in FILTERS}
    rows, has_previous, has_next, error = [], False, False, None
    try:
        after, before = _cursor(params, "after"), _cursor(params, "before")
        items = filter_items(annotated_items(project), project, params, classes)
        if project.data_kind == DataKind.TEXT:
            items = items.annotate(snippet=Left("text", SNIPPET_CHARS + 1))
        items = items.defer("text", "metadata")
        rows, has_previous, has_next = _page(items, after, before)
        tags = tag_service.tags_by_item([item.pk for item in rows])
        for item in rows:
            item.status = status_of(item)
            item.tags = tags.get(item.pk, [])
    except BadFilter as exc:
        error = exc
    query = {k: v for k, v in filters.items() if v}
    context = {
        **page_context(project),
        "items": rows,
        "classes": classes,
        "sources": sorted(set(sources)),
        "splits": Split.choices,
        "statuses": STATUSES,
        "filters": filters,
        "project_tags": Tag.objects.filter(project=project).order_by("name"),
        "error": error,
        "previous_query": urlencode({**query, "before": rows[0].pk}) if rows and has_previous else None,
        "next_query": urlencode({**query, "after": rows[-1].pk}) if rows and has_next else None,
        "snippet_chars": SNIPPET_CHARS,
        # One reverse() each, not two per tile: the tiles append the item id.
        "item_page_prefix": reverse("adjudication:item", args=[project.slug, 0]).removesuffix("0/"),
        "item_file_prefix": reverse("item-file", args=[0, "image"]).removesuffix("0/image/"),
    }
    return render(request, "frontend/setup/item_browser.html", context, status=400 if error else 200)
