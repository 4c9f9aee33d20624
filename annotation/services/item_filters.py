"""Which items of a project match the item browser's filters (split, slice, status, label, gold,
source, tag, text): one queryset, so the browser's pages and a bulk action ("tag every item
matching") select the very same items. Status rules: see frontend/item_browser_views.py.
"""

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
from django.db.models.functions import Cast, Coalesce

from ..errors import DomainError
from ..models import (
    Annotation,
    AnnotationLabel,
    DataKind,
    GoldLabel,
    GoldLabelClass,
    Item,
    ItemTag,
    LabelClass,
    Resolution,
    ResolutionLabel,
    Split,
    Tag,
)
from ..text_rules import control_character_problem

STATUSES = ("unlabelled", "partly", "complete", "disputed", "resolved")
FILTERS = ("split", "slice", "status", "label", "gold", "source", "tag", "q")
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


class BadFilter(DomainError):
    """A filter that makes no sense; `name` (and `field`) is the filter's."""

    def __init__(self, name, message):
        super().__init__(message, name)
        self.name = name


def annotated_items(project):
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


def filter_items(items, project, params, classes=None):
    """Apply the request's filters (a dict-like of text); BadFilter names the one that makes no
    sense. `items` comes from `annotated_items` (the status and gold filters read its columns)."""
    if classes is None:
        classes = list(LabelClass.objects.filter(project=project))
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
    tag = _text_filter(params, "tag")
    if tag:
        chosen = Tag.objects.filter(project=project, name__iexact=tag).first()
        if chosen is None:
            raise BadFilter("tag", f"there is no tag {tag!r} in this project")
        items = items.filter(Exists(ItemTag.objects.filter(item=OuterRef("pk"), tag=chosen)))
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
