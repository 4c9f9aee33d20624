"""SME adjudication: the disagreement queue, resolutions, send-back, and audited class operations.

Every decision on an item (resolve, ambiguous, send back) is recorded as an AdjudicationEvent
holding what the item was before, so its author can undo it for a short window (`undo_decision`)
and the item page can show the item's history.

Each write is one transaction and raises `DomainError` (400, naming the field), `labeling.NotFound`
(404) or `labeling.Conflict` (409); nothing is half-applied. Pure arithmetic (entropy, Dawid-Skene,
Krippendorff's alpha) comes from `annotation.quality`, `annotation.consensus` and
`annotation.agreement`.

The module is split by concern, and this one is the entry point for all of it (import from here):
the review queue and an item's context are in adjudication_queue.py, decisions and their undo in
adjudication_decisions.py, and the class operations (merge, rename, add, deactivate, preview) here.
"""

import numpy as np
from django.db import transaction
from django.db.models import Count, F
from django.db.models.functions import Coalesce

from .. import agreement
from ..errors import DomainError
from ..models import AnnotationLabel, ClassOperation, GoldLabelClass, LabelClass, ResolutionLabel
from ..text_rules import short_label_problem
from . import labeling
from .adjudication_decisions import MAX_NOTE_CHARS as MAX_NOTE_CHARS
from .adjudication_decisions import SEND_BACK_PRIORITY as SEND_BACK_PRIORITY
from .adjudication_decisions import UNSET as UNSET
from .adjudication_decisions import resolve as resolve
from .adjudication_decisions import send_back as send_back
from .adjudication_decisions import send_back_decision as send_back_decision
from .adjudication_decisions import undo_decision as undo_decision
from .adjudication_decisions import undo_window as undo_window
from .adjudication_decisions import undoable as undoable
from .adjudication_queue import MAX_CLASS_NAME
from .adjudication_queue import REASON_LABELS as REASON_LABELS
from .adjudication_queue import REASONS as REASONS
from .adjudication_queue import DisagreementQueue as DisagreementQueue
from .adjudication_queue import QueueRow as QueueRow
from .adjudication_queue import consensus_of as consensus_of
from .adjudication_queue import disagreement_queue as disagreement_queue
from .adjudication_queue import item_detail as item_detail
from .adjudication_queue import item_history as item_history
from .adjudication_queue import review_context as review_context
from .projects import assign_shortcuts
from .quality import queue_quality_refresh_soon

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
    problem = short_label_problem(name)
    if problem:
        raise DomainError(f"the name {name!r} {problem}", field_name)
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
