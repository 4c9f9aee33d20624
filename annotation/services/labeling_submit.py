"""Labeling, the labels: take a label for a served item (`submit`, idempotent by client_id, an
edit when the labeler labelled the item before), `skip` it, or `undo` the latest label.

Every write happens with the item's row locked (see labeling.py on why that keeps two labelers
from taking the same slot). `annotation.services.labeling` is the entry point that re-exports
these names.
"""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from .. import queue
from ..errors import Conflict, DomainError, NotFound
from ..models import Annotation, AnnotationLabel, Assignment, Guideline, Item, LabelClass, QueueEntry, Source, TaskType
from .labeling_queries import (
    DONE,
    LEASED,
    MAX_DURATION_MS,
    SERVED_FIELDS,
    SKIPPED,
    Served,
    _guideline_version,
    _has_gold,
    _labelled,
    _leased_by_others,
    _mine_annotated,
    config,
)

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
