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
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, Left
from django.shortcuts import render
from django.urls import reverse

from annotation.models import (
    Annotation,
    AnnotationLabel,
    DataKind,
    GoldLabel,
    GoldLabelClass,
    ImportBatch,
    Item,
    LabelClass,
    Resolution,
    ResolutionLabel,
    Split,
)
from annotation.text_rules import control_character_problem

from .staff import page_context, staff_project

PAGE_SIZE = 48
SNIPPET_CHARS = 160
STATUSES = ("unlabelled", "partly", "complete", "disputed", "resolved")
FILTERS = ("split", "slice", "status", "label", "gold", "source", "q")
MAX_FILTER_CHARS = 200


# Each status as its own condition, cheapest test first, instead of filtering on the `status`
# CASE (which would compute every subquery for every row scanned). Same rules as the CASE.
STATUS_CONDITIONS = {
    "resolved": Q(resolved=True),
    "disputed": Q(resolved=False, n_classes__gt=1),
    "unlabelled": Q(resolved=False, has_labels=False),
    "partly": Q(resolved=False, has_labels=True, n_classes__lte=1, n_labels__lt=F("needed")),
    "complete": Q(resolved=False, has_labels=True, n_classes__lte=1, n_labels__gte=F("needed")),
}


class BadFilter(Exception):
    def __init__(self, name, message):
        super().__init__(message)
        self.name = name
        self.message = message


def _annotated_items(project):
    """The project's items with `n_labels`, `n_classes`, `resolved`, `has_labels`, `has_gold`,
    `needed` and `final_label`, all computed in the one query (`status_of` reads them)."""
    current = Annotation.objects.filter(item=OuterRef("pk"), is_current=True).order_by()
    n_labels = current.values("item").annotate(n=Count("pk")).values("n")
    n_classes = (
        AnnotationLabel.objects.filter(annotation__item=OuterRef("pk"), annotation__is_current=True)
        .order_by()
        .values("annotation__item")
        .annotate(n=Count("label_class", distinct=True))
        .values("n")
    )
    resolution = Resolution.objects.filter(item=OuterRef("pk"), is_current=True)
    resolved_class = ResolutionLabel.objects.filter(resolution__item=OuterRef("pk"), resolution__is_current=True)
    gold_class = GoldLabelClass.objects.filter(gold__item=OuterRef("pk"))
    return (
        Item.objects.filter(project=project)
        .annotate(
            n_labels=Coalesce(Subquery(n_labels, output_field=IntegerField()), 0),
            n_classes=Coalesce(Subquery(n_classes, output_field=IntegerField()), 0),
            resolved=Exists(resolution),
            has_labels=Exists(current),
            has_gold=Exists(GoldLabel.objects.filter(item=OuterRef("pk"))),
        )
        .annotate(
            needed=Case(
                When(Q(in_consistency_sample=True) | Q(has_gold=True), then=Value(project.overlap)),
                default=Value(1),
                output_field=IntegerField(),
            ),
        )
        .annotate(
            final_label=Coalesce(
                Subquery(resolved_class.order_by("label_class__order").values("label_class__name")[:1]),
                Case(When(resolved=True, then=Value("ambiguous")), default=None, output_field=CharField()),
                Subquery(gold_class.order_by("label_class__order").values("label_class__name")[:1]),
            ),
        )
    )


def status_of(item):
    """The tile's status from the page query's columns: the rules of the module docstring, which
    STATUS_CONDITIONS filters on."""
    if item.resolved:
        return "resolved"
    if item.n_classes > 1:
        return "disputed"
    if item.n_labels == 0:
        return "unlabelled"
    return "partly" if item.n_labels < item.needed else "complete"


def _text_filter(params, name):
    value = params.get(name, "").strip()
    if len(value) > MAX_FILTER_CHARS:
        raise BadFilter(name, f"{name} is longer than {MAX_FILTER_CHARS} characters")
    problem = control_character_problem(value)
    if problem:
        raise BadFilter(name, f"{name} {problem}")
    return value


def _filter(items, project, params, classes):
    """Apply the request's filters; BadFilter names the one that makes no sense."""
    split = _text_filter(params, "split")
    if split:
        if split not in Split.values:
            raise BadFilter("split", f"split must be one of {', '.join(Split.values)}")
        items = items.filter(split=split)
    status = _text_filter(params, "status")
    if status:
        if status not in STATUSES:
            raise BadFilter("status", f"status must be one of {', '.join(STATUSES)}")
        items = items.filter(STATUS_CONDITIONS[status])
    gold = _text_filter(params, "gold")
    if gold:
        if gold not in ("yes", "no"):
            raise BadFilter("gold", "gold must be yes or no")
        items = items.filter(has_gold=gold == "yes")
    label = _text_filter(params, "label")
    if label:
        chosen = next((c for c in classes if c.name == label), None)
        if chosen is None:
            raise BadFilter("label", f"there is no class {label!r} in this project")
        by_resolution = ResolutionLabel.objects.filter(
            resolution__item=OuterRef("pk"), resolution__is_current=True, label_class=chosen
        )
        by_gold = GoldLabelClass.objects.filter(gold__item=OuterRef("pk"), label_class=chosen)
        items = items.filter(Exists(by_resolution) | (Q(resolved=False) & Exists(by_gold)))
    slice_ = _text_filter(params, "slice")
    if slice_:
        key, sep, value = slice_.partition("=")
        if not sep or not key.strip():
            raise BadFilter("slice", "slice must look like key=value, e.g. noise=car")
        # KeyTextTransform takes the key as data, never as part of a lookup path.
        # Cast: on SQLite a key transform's exact lookup reads its right side as JSON ("malformed JSON").
        value_of_key = Cast(KeyTextTransform(key.strip(), "metadata"), TextField())
        items = items.alias(slice_value=value_of_key).filter(slice_value=value.strip())
    source = _text_filter(params, "source")
    if source:
        items = items.filter(source_name=source)
    q = _text_filter(params, "q")
    if q:
        if project.data_kind == DataKind.TEXT:
            items = items.filter(Q(text__icontains=q) | Q(external_id=q))
        else:
            items = items.filter(external_id__icontains=q)
    return items


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
        items = _filter(_annotated_items(project), project, params, classes)
        if project.data_kind == DataKind.TEXT:
            items = items.annotate(snippet=Left("text", SNIPPET_CHARS + 1))
        items = items.defer("text", "metadata")
        rows, has_previous, has_next = _page(items, after, before)
        for item in rows:
            item.status = status_of(item)
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
        "error": error,
        "previous_query": urlencode({**query, "before": rows[0].pk}) if rows and has_previous else None,
        "next_query": urlencode({**query, "after": rows[-1].pk}) if rows and has_next else None,
        "snippet_chars": SNIPPET_CHARS,
        # One reverse() each, not two per tile: the tiles append the item id.
        "item_page_prefix": reverse("adjudication:item", args=[project.slug, 0]).removesuffix("0/"),
        "item_file_prefix": reverse("item-file", args=[0, "image"]).removesuffix("0/image/"),
    }
    return render(request, "frontend/setup/item_browser.html", context, status=400 if error else 200)
