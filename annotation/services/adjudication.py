"""SME adjudication: the disagreement queue, resolutions, send-back, and audited class operations.

Each write is one transaction and raises `DomainError` (400, naming the field), `labeling.NotFound`
(404) or `labeling.Conflict` (409); nothing is half-applied. Pure arithmetic (entropy, Dawid-Skene,
Krippendorff's alpha) comes from `annotation.quality`, `annotation.consensus` and
`annotation.agreement`.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction
from django.db.models import Count, F
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import agreement, consensus, queue
from ..errors import DomainError
from ..models import (
    Annotation,
    AnnotationLabel,
    Assignment,
    ClassOperation,
    GoldLabelClass,
    Item,
    LabelClass,
    QueueEntry,
    Resolution,
    ResolutionLabel,
    ReviewRequest,
    TaskType,
)
from ..quality import label_entropy
from . import labeling
from .labeling import Conflict, NotFound
from .projects import assign_shortcuts
from .quality import queue_quality_refresh_soon

REASONS = ("disagreement", "unsure", "ambiguity", "gold_wrong", "review")
REASON_LABELS = {
    "disagreement": "Labelers disagree",
    "unsure": "Marked unsure",
    "ambiguity": "Ambiguity class",
    "gold_wrong": "Gold item most got wrong",
    "review": "Sent for review",
}
SEND_BACK_PRIORITY = 1_000_000.0
MAX_NOTE_CHARS = 5000
MAX_CLASS_NAME = 100
UNSET = object()


# ---- The disagreement queue ---------------------------------------------------------------------


@dataclass
class QueueRow:
    item_id: int
    external_id: str
    reasons: list
    entropy: float
    uncertainty: float
    n_labels: int
    class_counts: dict
    consensus: str | None
    confidence: float | None
    metadata: dict = field(default_factory=dict)
    review_reason: str = ""


@dataclass
class DisagreementQueue:
    rows: list
    counts: dict
    total: int


def _parse_pair(project, pair):
    if not pair:
        return None
    names = [p.strip() for p in str(pair).split(",")]
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise DomainError("give two different class names separated by a comma, e.g. crow,dove", "pair")
    found = set(LabelClass.objects.filter(project=project, name__in=names).values_list("name", flat=True))
    missing = [n for n in names if n not in found]
    if missing:
        raise DomainError(f"{missing[0]!r} is not a class of this project", "pair")
    return set(names)


def _parse_slice(slice_):
    if not slice_:
        return None
    key, sep, value = str(slice_).partition("=")
    if not sep or not key.strip():
        raise DomainError("give a slice as key=value, e.g. noise=car", "slice")
    return key.strip(), value.strip()


def disagreement_queue(project, *, reason=None, pair=None, slice=None):
    """Items the SMEs should look at, each with its reasons, most disputed first.

    An item is in the queue when (a) its required labels are in and they disagree, (b) a current
    label is unsure or (c) names an ambiguity class, (d) it is a gold item most of whose labels are
    wrong, or (e) it has an open ReviewRequest. Items with a current resolution leave the queue
    unless a review request is still open for them. Sorted by label entropy, then Dawid-Skene
    posterior uncertainty (1 - max posterior), both descending. `counts` are per reason over
    the queue before the `reason` filter (with the pair and slice filters applied).
    """
    if reason and reason not in REASONS:
        raise DomainError(f"reason must be one of {', '.join(REASONS)}", "reason")
    wanted_pair = _parse_pair(project, pair)
    wanted_slice = _parse_slice(slice)
    with transaction.atomic():
        classes = list(LabelClass.objects.filter(project=project).order_by("order", "name", "pk"))
        index = {c.pk: i for i, c in enumerate(classes)}
        ambiguity = {c.pk for c in classes if c.is_ambiguity}
        rows = list(
            AnnotationLabel.objects.filter(annotation__item__project=project, annotation__is_current=True)
            .order_by("annotation_id", "label_class_id")
            .values_list(
                "annotation__item_id", "annotation_id", "annotation__labeler_id", "label_class_id", "annotation__unsure"
            )
        )
        gold = defaultdict(set)
        for item_id, class_id in GoldLabelClass.objects.filter(gold__item__project=project).values_list(
            "gold__item_id", "label_class_id"
        ):
            gold[item_id].add(class_id)
        reviews = dict(
            ReviewRequest.objects.filter(item__project=project, resolved_at__isnull=True).values_list(
                "item_id", "reason"
            )
        )
        resolved = set(
            Resolution.objects.filter(item__project=project, is_current=True).values_list("item_id", flat=True)
        )

        by_item = defaultdict(lambda: {"annotations": defaultdict(set), "unsure": False, "labelers": {}})
        for item_id, annotation_id, labeler_id, class_id, unsure in rows:
            entry = by_item[item_id]
            entry["annotations"][annotation_id].add(class_id)
            entry["labelers"][annotation_id] = labeler_id
            entry["unsure"] = entry["unsure"] or unsure

        candidate_ids = (set(by_item) | set(reviews)) - (resolved - set(reviews))
        items = {
            i.pk: i
            for i in Item.objects.filter(pk__in=candidate_ids).only(
                "id", "external_id", "metadata", "in_consistency_sample"
            )
        }
    item_ids = sorted(items)
    uncertainty = _dawid_skene_uncertainty(project, rows, index, item_ids)

    out, counts = [], dict.fromkeys(REASONS, 0)
    names = {c.pk: c.name for c in classes}
    for item_id in item_ids:
        item = items[item_id]
        entry = by_item.get(item_id)
        annotations = entry["annotations"] if entry else {}
        label_sets = list(annotations.values())
        votes = np.zeros(len(classes), dtype=np.int64)
        for label_set in label_sets:
            for class_id in label_set:
                votes[index[class_id]] += 1
        reasons = []
        needed = queue.labels_needed(
            in_consistency_sample=item.in_consistency_sample, has_gold=item_id in gold, overlap=project.overlap
        )
        if len(label_sets) >= max(needed, 2) and len({frozenset(s) for s in label_sets}) > 1:
            reasons.append("disagreement")
        if entry and entry["unsure"]:
            reasons.append("unsure")
        if any(class_id in ambiguity for s in label_sets for class_id in s):
            reasons.append("ambiguity")
        if item_id in gold and label_sets:
            wrong = sum(1 for s in label_sets if s != gold[item_id])
            if wrong * 2 > len(label_sets):
                reasons.append("gold_wrong")
        if item_id in reviews:
            reasons.append("review")
        if not reasons:
            continue
        if wanted_slice is not None:
            key, value = wanted_slice
            metadata = item.metadata if isinstance(item.metadata, dict) else {}
            if key not in metadata or str(metadata[key]) != value:
                continue
        used = {names[classes[k].pk] for k in np.flatnonzero(votes)}
        if wanted_pair is not None and not wanted_pair <= used:
            continue
        for r in reasons:
            counts[r] += 1
        if reason and reason not in reasons:
            continue
        total = int(votes.sum())
        entropy = float(label_entropy(votes[None, :])[0]) if total else 0.0
        top = int(votes.argmax()) if total else None
        ds_unc = uncertainty.get(item_id)
        out.append(
            QueueRow(
                item_id=item_id,
                external_id=item.external_id,
                reasons=reasons,
                entropy=round(entropy, 6),
                uncertainty=round(ds_unc, 6) if ds_unc is not None else 0.0,
                n_labels=len(label_sets),
                class_counts={classes[k].name: int(votes[k]) for k in np.flatnonzero(votes)},
                consensus=classes[top].name if top is not None else None,
                confidence=(
                    round(1.0 - ds_unc, 6) if ds_unc is not None else (float(votes[top] / total) if total else None)
                ),
                metadata=item.metadata if isinstance(item.metadata, dict) else {},
                review_reason=reviews.get(item_id, ""),
            )
        )
    out.sort(key=lambda r: (-r.entropy, -r.uncertainty, r.item_id))
    return DisagreementQueue(rows=out, counts=counts, total=sum(1 for _ in out))


def _dawid_skene_uncertainty(project, rows, index, item_ids):
    """{item_id: 1 - max Dawid-Skene posterior} for single-label projects; {} otherwise."""
    if project.task_type != TaskType.SINGLE_LABEL or not rows or not index:
        return {}
    items = sorted({r[0] for r in rows})
    labelers = sorted({r[2] for r in rows})
    at_item = {pk: i for i, pk in enumerate(items)}
    at_labeler = {pk: j for j, pk in enumerate(labelers)}
    seen, triples = set(), []
    for item_id, _annotation_id, labeler_id, class_id, _unsure in rows:
        if (item_id, labeler_id) in seen:
            continue
        seen.add((item_id, labeler_id))
        triples.append((at_item[item_id], at_labeler[labeler_id], index[class_id]))
    t = np.asarray(triples, dtype=np.int64)
    result = consensus.dawid_skene_from_triples(
        t[:, 0], t[:, 1], t[:, 2], len(items), len(labelers), len(index), random_state=0
    )
    post = result.posterior.max(axis=1)
    return {pk: float(1.0 - post[at_item[pk]]) for pk in item_ids if pk in at_item}


def item_detail(project, item_id):
    """An item for the SME page: the item, its current labels with labeler names, its current
    resolution and open review request. NotFound for an item of another project."""
    item = Item.objects.filter(project=project, pk=item_id).first()
    if item is None:
        raise NotFound(f"there is no item {item_id} in this project", "item")
    annotations = list(
        Annotation.objects.filter(item=item, is_current=True)
        .select_related("labeler", "guideline")
        .prefetch_related("labels")
        .order_by("created_at", "pk")
    )
    resolution = (
        Resolution.objects.filter(item=item, is_current=True).select_related("decided_by").prefetch_related("labels")
    ).first()
    review = ReviewRequest.objects.filter(item=item, resolved_at__isnull=True).first()
    return {"item": item, "annotations": annotations, "resolution": resolution, "review": review}


# ---- Resolutions and send-back -------------------------------------------------------------------


def _lock_item(project, item_id):
    try:
        item_id = int(item_id)
    except (TypeError, ValueError):
        raise DomainError("item must be an item id", "item") from None
    item = Item.objects.select_for_update().filter(project=project, pk=item_id).order_by("pk").first()
    if item is None:
        raise DomainError(f"there is no item {item_id} in this project", "item")
    return item


def _resolution_classes(project, labels):
    labeling.check_label_names(project, labels)
    return labeling.classes_for(project, list(labels))


def resolve(project, item_id, sme, *, labels=(), ambiguous=False, note="", expected_current=UNSET, now=None):
    """Decide an item: its final label(s), or `ambiguous` (no labels). Returns the new current
    Resolution; the previous one stays as history. Open review requests of the item are closed.

    `expected_current` is the id of the resolution the SME saw (None: none). When another SME
    decided the item meanwhile, Conflict (409) and nothing is written; the item's row lock makes
    two simultaneous decisions run one after the other, so the second always sees the first.
    """
    labels = list(labels or [])
    note = note or ""
    if ambiguous and labels:
        raise DomainError("an ambiguous item takes no labels; send either labels or ambiguous", "labels")
    if not ambiguous and not labels:
        raise DomainError("give the final label(s), or mark the item ambiguous", "labels")
    if len(note) > MAX_NOTE_CHARS:
        raise DomainError(f"the note has {len(note):,} characters; the limit is {MAX_NOTE_CHARS:,}", "note")
    now = now or timezone.now()
    with transaction.atomic():
        item = _lock_item(project, item_id)
        classes = _resolution_classes(project, labels) if labels else []
        current = Resolution.objects.filter(item=item, is_current=True).values_list("pk", flat=True).first()
        if expected_current is not UNSET and expected_current != current:
            raise Conflict("another SME decided this item meanwhile; reload it and decide again", "expected_current")
        Resolution.objects.filter(item=item, is_current=True).update(is_current=False)
        resolution = Resolution.objects.create(
            item=item, decided_by=sme, is_ambiguous=bool(ambiguous), note=note, created_at=now
        )
        ResolutionLabel.objects.bulk_create(ResolutionLabel(resolution=resolution, label_class=c) for c in classes)
        ReviewRequest.objects.filter(item=item, resolved_at__isnull=True).update(resolved_at=now)
        queue_quality_refresh_soon(project.pk)
    resolution.label_names = [c.name for c in classes]
    return resolution


def send_back(project, item_id, sme):
    """Send an item back for fresh labels under the current guideline.

    Its current annotations stop counting (is_current=False; the rows stay as history), its
    assignments are cleared, it joins the consistency sample so it needs `overlap` (k) new labels,
    and a queue entry serves it first. A current resolution stops being current and open review
    requests are closed: the item is reopened. Returns how many annotations stopped counting.
    """
    with transaction.atomic():
        item = _lock_item(project, item_id)
        retired = Annotation.objects.filter(item=item, is_current=True).update(is_current=False)
        Assignment.objects.filter(item=item).delete()
        Resolution.objects.filter(item=item, is_current=True).update(is_current=False)
        ReviewRequest.objects.filter(item=item, resolved_at__isnull=True).update(resolved_at=timezone.now())
        Item.objects.filter(pk=item.pk).update(in_consistency_sample=True, queue_done=False)
        QueueEntry.objects.filter(item=item, is_active=True).update(is_active=False)
        QueueEntry.objects.create(
            project=project,
            item=item,
            priority=SEND_BACK_PRIORITY,
            strategy="send_back",
            reason=f"sent back by {sme.get_username()}"[:200],
        )
        labeling.refresh_queue_state(project)
        queue_quality_refresh_soon(project.pk)
    return retired


# ---- Class operations ----------------------------------------------------------------------------

_THROUGH = (
    ("annotation_labels", AnnotationLabel, "annotation_id"),
    ("gold_labels", GoldLabelClass, "gold_id"),
    ("resolution_labels", ResolutionLabel, "resolution_id"),
)


def class_counts(project):
    """{class name: {annotation_labels, current_annotation_labels, gold_labels, resolution_labels}}."""
    out = {
        c.name: {"annotation_labels": 0, "current_annotation_labels": 0, "gold_labels": 0, "resolution_labels": 0}
        for c in LabelClass.objects.filter(project=project)
    }
    names = dict(LabelClass.objects.filter(project=project).values_list("pk", "name"))
    for key, model, _parent in _THROUGH:
        for class_id, n in (
            model.objects.filter(label_class__project=project)
            .values("label_class_id")
            .annotate(n=Count("pk"))
            .values_list("label_class_id", "n")
        ):
            out[names[class_id]][key] = n
    for class_id, n in (
        AnnotationLabel.objects.filter(label_class__project=project, annotation__is_current=True)
        .values("label_class_id")
        .annotate(n=Count("pk"))
        .values_list("label_class_id", "n")
    ):
        out[names[class_id]]["current_annotation_labels"] = n
    return out


def _class(project, class_id, field_name):
    try:
        class_id = int(class_id)
    except (TypeError, ValueError):
        raise DomainError("give a class id", field_name) from None
    label_class = LabelClass.objects.select_for_update().filter(project=project, pk=class_id).first()
    if label_class is None:
        raise DomainError(f"class {class_id} is not a class of this project", field_name)
    return label_class


def _check_name(project, name, field_name="name", exclude_pk=None):
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise DomainError("a class name may not be empty", field_name)
    if len(name) > MAX_CLASS_NAME:
        raise DomainError(f"a class name has at most {MAX_CLASS_NAME} characters", field_name)
    taken = LabelClass.objects.filter(project=project, name=name)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
    if taken.exists():
        raise DomainError(f"this project already has a class named {name!r}", field_name)
    return name


def _merge_plan(project, sources, target=None, new_target=None):
    """(source classes, target class or None, new target name or None), validated."""
    if not isinstance(sources, list | tuple) or not sources:
        raise DomainError("give the ids of the classes to merge", "sources")
    source_classes = [_class(project, pk, "sources") for pk in sources]
    if len({c.pk for c in source_classes}) != len(source_classes):
        raise DomainError("a class is named twice", "sources")
    for c in source_classes:
        if not c.is_active:
            raise DomainError(f"{c.name!r} is inactive (or already merged) and cannot be merged", "sources")
    if (target is None) == (new_target is None or new_target == ""):
        raise DomainError("give either target (an existing class id) or new_target (a new class name)", "target")
    if target is not None:
        target_class = _class(project, target, "target")
        if target_class.pk in {c.pk for c in source_classes}:
            raise DomainError("a class cannot be merged into itself", "target")
        if not target_class.is_active:
            raise DomainError(f"{target_class.name!r} is inactive; merge into an active class", "target")
        return source_classes, target_class, None
    if len(source_classes) < 2:
        raise DomainError("merging into a new class needs at least two classes", "sources")
    return source_classes, None, _check_name(project, new_target, "new_target")


def _alpha_on_current(project, mapping=None):
    """Krippendorff's alpha on the current labels (one per item and labeler), with class ids
    remapped by `mapping` first."""
    rows = AnnotationLabel.objects.filter(annotation__item__project=project, annotation__is_current=True).values_list(
        "annotation__item_id", "annotation__labeler_id", "label_class_id"
    )
    mapping = mapping or {}
    cells, items, labelers, classes = {}, {}, {}, {}
    for item_id, labeler_id, class_id in rows.order_by("annotation_id", "label_class_id"):
        class_id = mapping.get(class_id, class_id)
        i = items.setdefault(item_id, len(items))
        j = labelers.setdefault(labeler_id, len(labelers))
        cells.setdefault((i, j), classes.setdefault(class_id, len(classes)))
    if not cells:
        return None
    labels = np.full((len(items), len(labelers)), np.nan)
    for (i, j), k in cells.items():
        labels[i, j] = k
    alpha = agreement.krippendorff_alpha(labels)
    return None if np.isnan(alpha) else round(float(alpha), 6)


def merge_preview(project, *, sources, target=None, new_target=None):
    """What a merge would change: labels that move per kind and alpha before and after."""
    with transaction.atomic():
        source_classes, target_class, new_name = _merge_plan(project, sources, target, new_target)
        ids = [c.pk for c in source_classes]
        moves = {key: model.objects.filter(label_class_id__in=ids).count() for key, model, _ in _THROUGH}
        moves["current_annotation_labels"] = AnnotationLabel.objects.filter(
            label_class_id__in=ids, annotation__is_current=True
        ).count()
        merged_id = target_class.pk if target_class else -1
        return {
            "sources": [c.name for c in source_classes],
            "target": target_class.name if target_class else new_name,
            "target_is_new": target_class is None,
            "moves": moves,
            "alpha_before": _alpha_on_current(project),
            "alpha_after": _alpha_on_current(project, dict.fromkeys(ids, merged_id)),
        }


def merge(project, actor, *, sources, target=None, new_target=None):
    """Merge classes into `target` (existing) or a new class `new_target`, in one transaction.

    Every AnnotationLabel, GoldLabelClass and ResolutionLabel row of a source class is remapped to
    the target; its `original_label_class` keeps the class first given. A row that would repeat
    the target on the same annotation/gold/resolution (multi-label) is deleted instead, and the
    audit row lists it. Sources become inactive with `merged_into` = target (as do classes merged
    into them earlier). Returns the ClassOperation.
    """
    with transaction.atomic():
        source_classes, target_class, new_name = _merge_plan(project, sources, target, new_target)
        before = class_counts(project)
        alpha_before = _alpha_on_current(project)
        ids = [c.pk for c in source_classes]
        freed_key = next((c.shortcut for c in source_classes if c.shortcut), "")
        LabelClass.objects.filter(pk__in=ids).update(shortcut="")
        if target_class is None:
            target_class = LabelClass.objects.create(
                project=project,
                name=new_name,
                shortcut=freed_key,
                is_ambiguity=all(c.is_ambiguity for c in source_classes),
                order=min(c.order for c in source_classes),
            )
        remapped, removed = {}, {}
        for key, model, parent in _THROUGH:
            with_target = set(model.objects.filter(label_class=target_class).values_list(parent, flat=True))
            keep, drop = [], []
            for pk, parent_id, class_id in (
                model.objects.filter(label_class_id__in=ids).order_by("pk").values_list("pk", parent, "label_class_id")
            ):
                if parent_id in with_target:
                    drop.append({"id": pk, "parent": parent_id, "class": class_id})
                else:
                    with_target.add(parent_id)
                    keep.append(pk)
            model.objects.filter(pk__in=[d["id"] for d in drop]).delete()
            model.objects.filter(pk__in=keep).update(
                original_label_class=Coalesce(F("original_label_class"), F("label_class")), label_class=target_class
            )
            remapped[key], removed[key] = keep, drop
        LabelClass.objects.filter(merged_into_id__in=ids).update(merged_into=target_class)
        LabelClass.objects.filter(pk__in=ids).update(is_active=False, merged_into=target_class)
        operation = ClassOperation.objects.create(
            project=project,
            actor=actor,
            operation=ClassOperation.Kind.MERGE,
            details={
                "sources": [{"id": c.pk, "name": c.name} for c in source_classes],
                "target": {"id": target_class.pk, "name": target_class.name, "new": new_name is not None},
                "remapped_ids": remapped,
                "removed_duplicates": removed,
                "alpha_before": alpha_before,
                "alpha_after": _alpha_on_current(project),
            },
            before=before,
            after=class_counts(project),
        )
        labeling.refresh_queue_state(project)
        queue_quality_refresh_soon(project.pk)
    return operation


def rename_class(project, actor, *, class_id, name):
    with transaction.atomic():
        label_class = _class(project, class_id, "class")
        name = _check_name(project, name, "name", exclude_pk=label_class.pk)
        counts = class_counts(project)
        old = label_class.name
        LabelClass.objects.filter(pk=label_class.pk).update(name=name)
        counts_after = {(name if k == old else k): v for k, v in counts.items()}
        return ClassOperation.objects.create(
            project=project,
            actor=actor,
            operation=ClassOperation.Kind.RENAME,
            details={"class": label_class.pk, "from": old, "to": name},
            before=counts,
            after=counts_after,
        )


def add_class(project, actor, *, name, is_ambiguity=False):
    with transaction.atomic():
        name = _check_name(project, name)
        before = class_counts(project)
        taken = LabelClass.objects.filter(project=project).exclude(shortcut="").values_list("shortcut", flat=True)
        order = (LabelClass.objects.filter(project=project).order_by("-order").values_list("order", flat=True).first()
                 or 0) + 1  # fmt: skip
        label_class = LabelClass.objects.create(
            project=project,
            name=name,
            is_ambiguity=bool(is_ambiguity),
            shortcut=assign_shortcuts([name], taken=set(taken))[0],
            order=order,
        )
        operation = ClassOperation.objects.create(
            project=project,
            actor=actor,
            operation=ClassOperation.Kind.ADD,
            details={"class": label_class.pk, "name": name, "is_ambiguity": bool(is_ambiguity)},
            before=before,
            after=class_counts(project),
        )
    return label_class, operation


def deactivate_class(project, actor, *, class_id):
    """No new labels of the class; the old ones are kept."""
    with transaction.atomic():
        label_class = _class(project, class_id, "class")
        if not label_class.is_active:
            raise DomainError(f"{label_class.name!r} is already inactive", "class")
        counts = class_counts(project)
        LabelClass.objects.filter(pk=label_class.pk).update(is_active=False)
        return ClassOperation.objects.create(
            project=project,
            actor=actor,
            operation=ClassOperation.Kind.DEACTIVATE,
            details={"class": label_class.pk, "name": label_class.name},
            before=counts,
            after=counts,
        )
