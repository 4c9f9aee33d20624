"""SME adjudication, the decisions on an item and their undo: resolve, mark ambiguous, send back.

Every decision is recorded as an AdjudicationEvent holding what the item was before, so its author
can undo it for a short window (`undo_decision`) and the item page can show the item's history.
Each write is one transaction; nothing is half-applied.

`annotation.services.adjudication` is the entry point that re-exports these names.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .. import queue
from ..errors import DomainError
from ..models import (
    AdjudicationEvent,
    Annotation,
    Assignment,
    Item,
    QueueEntry,
    Resolution,
    ResolutionLabel,
    ReviewRequest,
)
from . import labeling
from .labeling import Conflict, NotFound
from .quality import queue_quality_refresh_soon

SEND_BACK_PRIORITY = 1_000_000.0
MAX_NOTE_CHARS = 5000
UNSET = object()


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
        open_reviews = list(
            ReviewRequest.objects.filter(item=item, resolved_at__isnull=True).values_list("pk", flat=True)
        )
        ReviewRequest.objects.filter(pk__in=open_reviews).update(resolved_at=now)
        resolution.event = AdjudicationEvent.objects.create(
            item=item,
            actor=sme,
            kind=AdjudicationEvent.Kind.AMBIGUOUS if ambiguous else AdjudicationEvent.Kind.RESOLVE,
            resolution=resolution,
            details={"previous_resolution": current, "closed_reviews": open_reviews},
            created_at=now,
        )
        queue_quality_refresh_soon(project.pk)
    resolution.label_names = [c.name for c in classes]
    return resolution


def send_back(project, item_id, sme):
    """Send an item back for fresh labels; returns how many annotations stopped counting (see
    `send_back_decision`)."""
    return len(send_back_decision(project, item_id, sme).details["retired_annotations"])


def send_back_decision(project, item_id, sme, *, now=None):
    """Send an item back for fresh labels under the current guideline. Returns the recorded event.

    Its current annotations stop counting (is_current=False; the rows stay as history), its
    assignments are cleared, it joins the consistency sample so it needs `overlap` (k) new labels,
    and a queue entry serves it first. A current resolution stops being current and open review
    requests are closed: the item is reopened. The event's details keep all of it, for undo.
    """
    now = now or timezone.now()
    with transaction.atomic():
        item = _lock_item(project, item_id)
        retired = list(Annotation.objects.filter(item=item, is_current=True).values_list("pk", flat=True))
        assignments = [
            {"labeler": a.labeler_id, "status": a.status, "served_at": a.served_at.isoformat(),
             "expires_at": a.expires_at.isoformat()}
            for a in Assignment.objects.filter(item=item)
        ]  # fmt: skip
        previous = Resolution.objects.filter(item=item, is_current=True).values_list("pk", flat=True).first()
        open_reviews = list(
            ReviewRequest.objects.filter(item=item, resolved_at__isnull=True).values_list("pk", flat=True)
        )
        entries = list(QueueEntry.objects.filter(item=item, is_active=True).values_list("pk", flat=True))
        Annotation.objects.filter(pk__in=retired).update(is_current=False)
        Assignment.objects.filter(item=item).delete()
        Resolution.objects.filter(item=item, is_current=True).update(is_current=False)
        ReviewRequest.objects.filter(pk__in=open_reviews).update(resolved_at=now)
        Item.objects.filter(pk=item.pk).update(in_consistency_sample=True, queue_done=False)
        QueueEntry.objects.filter(pk__in=entries).update(is_active=False)
        entry = QueueEntry.objects.create(
            project=project,
            item=item,
            priority=SEND_BACK_PRIORITY,
            strategy="send_back",
            reason=f"sent back by {sme.get_username()}"[:200],
        )
        event = AdjudicationEvent.objects.create(
            item=item,
            actor=sme,
            kind=AdjudicationEvent.Kind.SEND_BACK,
            details={
                "retired_annotations": retired,
                "assignments": assignments,
                "previous_resolution": previous,
                "closed_reviews": open_reviews,
                "deactivated_entries": entries,
                "queue_entry": entry.pk,
                "in_consistency_sample": item.in_consistency_sample,
                "queue_done": item.queue_done,
            },
            created_at=now,
        )
        labeling.refresh_queue_state(project)
        queue_quality_refresh_soon(project.pk)
    return event


# ---- Undo ------------------------------------------------------------------------------------------


def undo_window():
    """Seconds an SME may undo a decision: the labelers' undo window (CONCORD_LABELING_UNDO_SECONDS)."""
    return labeling.config()["UNDO_SECONDS"]


def undoable(project, user, event_id, *, now=None):
    """The user's own decision `event_id` if it can still be undone (not undone, inside the
    window, the item's latest), else None: what the queue page offers after the last item."""
    try:
        event_id = int(event_id)
    except (TypeError, ValueError):
        return None
    now = now or timezone.now()
    event = (
        AdjudicationEvent.objects.filter(pk=event_id, item__project=project, actor=user, undone_at__isnull=True)
        .select_related("item", "resolution")
        .first()
    )
    if event is None or not queue.undo_allowed(event.created_at, now, undo_window()):
        return None
    if AdjudicationEvent.objects.filter(item_id=event.item_id, undone_at__isnull=True, pk__gt=event.pk).exists():
        return None
    return event


def undo_decision(project, event_id, user, *, now=None):
    """Take back the user's own resolve, ambiguous or send-back within `undo_window()` seconds.

    The item returns to the state the event recorded: the previous resolution is current again
    and closed review requests reopen; for a send-back the retired labels count again, the
    assignments and queue entries are restored and the new queue entry is withdrawn. Only the
    item's latest decision can be undone, and a send-back only while no new label has come in.
    The event stays, marked undone, in the item's history. Returns the event.
    """
    now = now or timezone.now()
    window = undo_window()
    try:
        event_id = int(event_id)
    except (TypeError, ValueError):
        raise DomainError("event must be a decision id", "event") from None
    with transaction.atomic():
        item_id = (
            AdjudicationEvent.objects.filter(pk=event_id, item__project=project).values_list("item_id", flat=True)
        ).first()
        if item_id is None:
            raise NotFound(f"there is no decision {event_id} in this project", "event")
        item = _lock_item(project, item_id)
        event = AdjudicationEvent.objects.get(pk=event_id)
        if event.actor_id != user.pk:
            raise DomainError("only the SME who made a decision can undo it", "event")
        if event.undone_at is not None:
            raise DomainError("this decision was already undone", "event")
        if not queue.undo_allowed(event.created_at, now, window):
            raise DomainError(f"a decision can be undone for {window} seconds; decide the item again instead", "event")
        if AdjudicationEvent.objects.filter(item=item, undone_at__isnull=True, pk__gt=event.pk).exists():
            raise Conflict("the item was decided again since; undo that decision first", "event")
        details = event.details or {}
        if event.kind == AdjudicationEvent.Kind.SEND_BACK:
            _undo_send_back(project, item, details)
        else:
            if not Resolution.objects.filter(pk=event.resolution_id, is_current=True).exists():
                raise Conflict("this decision is no longer the item's current one", "event")
            Resolution.objects.filter(pk=event.resolution_id).update(is_current=False)
        if details.get("previous_resolution"):
            Resolution.objects.filter(pk=details["previous_resolution"], item=item).update(is_current=True)
        reopen = details.get("closed_reviews")
        if reopen and not ReviewRequest.objects.filter(item=item, resolved_at__isnull=True).exists():
            ReviewRequest.objects.filter(pk__in=reopen[:1], item=item).update(resolved_at=None)
        event.undone_at, event.undone_by = now, user
        event.save(update_fields=["undone_at", "undone_by"])
        queue_quality_refresh_soon(project.pk)
    return event


def _undo_send_back(project, item, details):
    if Annotation.objects.filter(item=item, is_current=True).exists():
        raise Conflict("labelers have labelled the item since it was sent back; decide it again instead", "event")
    Annotation.objects.filter(pk__in=details.get("retired_annotations") or [], item=item).update(is_current=True)
    Assignment.objects.filter(item=item).delete()
    Assignment.objects.bulk_create(
        Assignment(
            item=item,
            labeler_id=a["labeler"],
            status=a["status"],
            served_at=datetime.fromisoformat(a["served_at"]),
            expires_at=datetime.fromisoformat(a["expires_at"]),
        )
        for a in details.get("assignments") or []
    )
    QueueEntry.objects.filter(pk=details.get("queue_entry"), item=item).update(is_active=False)
    QueueEntry.objects.filter(pk__in=details.get("deactivated_entries") or [], item=item).update(is_active=True)
    Item.objects.filter(pk=item.pk).update(
        in_consistency_sample=bool(details.get("in_consistency_sample")), queue_done=bool(details.get("queue_done"))
    )
    labeling.refresh_queue_state(project)
