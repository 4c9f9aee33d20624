"""SME adjudication: the disagreement queue, resolutions, send-back, and audited class operations.

Every decision on an item (resolve, ambiguous, send back) is recorded as an AdjudicationEvent
holding what the item was before, so its author can undo it for a short window (`undo_decision`)
and the item page can show the item's history.

Each write is one transaction and raises `DomainError` (400, naming the field), `labeling.NotFound`
(404) or `labeling.Conflict` (409); nothing is half-applied. Pure arithmetic (entropy, Dawid-Skene,
Krippendorff's alpha) comes from `annotation.quality`, `annotation.consensus` and
`annotation.agreement`.
"""

import bisect
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.db import transaction
from django.db.models import Count, F
from django.db.models.functions import Coalesce, Substr
from django.utils import timezone

from .. import agreement, consensus, queue
from ..errors import DomainError
from ..models import (
    AdjudicationEvent,
    Annotation,
    AnnotationLabel,
    Assignment,
    ClassOperation,
    GoldLabel,
    GoldLabelClass,
    Item,
    LabelClass,
    QualityReport,
    QueueEntry,
    Resolution,
    ResolutionLabel,
    ReviewRequest,
    TaskType,
)
from ..quality import label_entropy
from ..text_rules import short_label_problem
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

# What separates the two class names of a pair: `3,8`, `3-8`, `3 8`, `3/8`, `3 vs 8`, `3;8`, `3|8`, `3&8`.
_PAIR_SEPARATOR = re.compile(r"\s*(?:,|;|/|\||&|-|\u2013|\u2014|\bvs\.?|\bversus|\band)\s*|\s+", re.IGNORECASE)
MAX_PAIR_CHARS = 2 * MAX_CLASS_NAME + 20
SNIPPET_CHARS = 140
CONSENSUS_METHODS = {"dawid_skene": "Dawid\N{EN DASH}Skene", "majority": "majority vote"}


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
    consensus_method: str = ""
    thumbnail: str = ""
    snippet: str = ""

    @property
    def sort_key(self):
        """Most disputed first: label entropy, then Dawid-Skene uncertainty, both descending; then id."""
        return (-self.entropy, -self.uncertainty, self.item_id)

    @property
    def cursor(self):
        """The row's sort key as text: where a keyset page starts (after) or ends (before)."""
        return f"{self.entropy:.6f}:{self.uncertainty:.6f}:{self.item_id}"


@dataclass
class DisagreementQueue:
    rows: list  # the page's rows (all of them without `limit`)
    counts: dict  # per reason, over the queue before the `reason` filter
    total: int  # rows in the filtered queue, all pages
    start: int = 0  # index of rows[0] in the filtered queue
    next_cursor: str | None = None
    prev_cursor: str | None = None
    method: str = ""  # how `consensus` was computed, in words
    ids: list = field(default_factory=list)  # the filtered queue's item ids in order, all pages


def _parse_pair(project, pair):
    """Two class names in any common spelling (see _PAIR_SEPARATOR) -> their set. Class names may
    themselves hold spaces or hyphens, so every split is tried against the project's classes."""
    if not pair:
        return None
    text = " ".join(str(pair).split())
    if len(text) > MAX_PAIR_CHARS:
        raise DomainError(f"a class pair has at most {MAX_PAIR_CHARS} characters", "pair")
    names = list(LabelClass.objects.filter(project=project).values_list("name", flat=True))
    exact = set(names)
    folded = {}
    for n in names:
        folded.setdefault(n.casefold(), []).append(n)

    def known(part):
        part = part.strip()
        if part in exact:
            return part
        matches = folded.get(part.casefold(), [])
        return matches[0] if len(matches) == 1 else None

    for i in range(1, len(text)):
        for j in range(i + 1, min(len(text), i + 12)):
            if _PAIR_SEPARATOR.fullmatch(text[i:j]):
                a, b = known(text[:i]), known(text[j:])
                if a and b and a != b:
                    return {a, b}
    parts = [p for p in _PAIR_SEPARATOR.split(text) if p]
    if len(parts) == 2:
        unknown = [p for p in parts if not known(p)]
        if unknown:
            listed = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
            raise DomainError(f"{unknown[0]!r} is not a class of this project (its classes: {listed})", "pair")
        raise DomainError("give two different classes", "pair")
    raise DomainError("give two class names, e.g. 3,8 or 3-8 or 3 vs 8", "pair")


def _parse_slice(slice_):
    if not slice_:
        return None
    key, sep, value = str(slice_).partition("=")
    if not sep or not key.strip():
        raise DomainError("give a slice as key=value, e.g. noise=car", "slice")
    return key.strip(), value.strip()


def _parse_cursor(value, field_name):
    if value in (None, ""):
        return None
    try:
        entropy, uncertainty, item_id = str(value).split(":")
        key = (-float(entropy), -float(uncertainty), int(item_id))
    except ValueError:
        raise DomainError("not a page of this queue; start again from the first page", field_name) from None
    if not all(np.isfinite(key[:2])):
        raise DomainError("not a page of this queue; start again from the first page", field_name)
    return key


def consensus_of(votes, posterior, names):
    """An item's consensus (class name, confidence), by the method the whole queue uses.

    `votes` (K,) label counts per class; `posterior` (K,) the Dawid-Skene posterior when the
    project is single-label (see `_dawid_skene_posteriors`), else None: then the majority class
    and its share of the labels. The queue and the item page both call this, so they never differ.
    """
    if posterior is not None:
        k = int(np.argmax(posterior))
        return names[k], round(float(posterior[k]), 6)
    total = int(votes.sum())
    if not total:
        return None, None
    k = int(votes.argmax())
    return names[k], round(float(votes[k] / total), 6)


def _queue_rows(project, include=None):
    """Every item in the queue (each with its reasons), and the item `include` even when it is not
    in the queue (reasons empty), unsorted and unfiltered; and the consensus method's name.

    Six queries whatever the size of the project: classes, current labels, gold, open review
    requests, current resolutions, the candidate items (with a text snippet, not the text).
    """
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

        by_item = defaultdict(lambda: {"annotations": defaultdict(set), "unsure": False})
        for item_id, annotation_id, _labeler_id, class_id, unsure in rows:
            entry = by_item[item_id]
            entry["annotations"][annotation_id].add(class_id)
            entry["unsure"] = entry["unsure"] or unsure

        candidate_ids = (set(by_item) | set(reviews)) - (resolved - set(reviews))
        if include is not None:
            candidate_ids.add(include)
        items = {
            i.pk: i
            for i in Item.objects.filter(project=project, pk__in=candidate_ids)
            .only("id", "external_id", "metadata", "in_consistency_sample", "thumbnail")
            .annotate(snippet=Substr("text", 1, SNIPPET_CHARS))
        }
    item_ids = sorted(items)
    posteriors = _dawid_skene_posteriors(project, rows, index)
    method = CONSENSUS_METHODS["dawid_skene" if posteriors else "majority"]
    names = [c.name for c in classes]

    out = []
    for item_id in item_ids:
        item = items[item_id]
        entry = by_item.get(item_id)
        label_sets = list(entry["annotations"].values()) if entry else []
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
        if not reasons and item_id != include:
            continue
        total = int(votes.sum())
        entropy = float(label_entropy(votes[None, :])[0]) if total else 0.0
        posterior = posteriors.get(item_id)
        consensus_name, confidence = consensus_of(votes, posterior, names)
        text = (item.snippet or "").strip()
        out.append(
            QueueRow(
                item_id=item_id,
                external_id=item.external_id,
                reasons=reasons,
                entropy=round(entropy, 6),
                uncertainty=round(1.0 - float(posterior.max()), 6) if posterior is not None else 0.0,
                n_labels=len(label_sets),
                class_counts={names[k]: int(votes[k]) for k in np.flatnonzero(votes)},
                consensus=consensus_name,
                confidence=confidence,
                metadata=item.metadata if isinstance(item.metadata, dict) else {},
                review_reason=reviews.get(item_id, ""),
                consensus_method=method,
                thumbnail=item.thumbnail.name if item.thumbnail else "",
                snippet=text + ("…" if len(text) >= SNIPPET_CHARS - 1 else ""),
            )
        )
    return out, method


def _select(rows, *, reason=None, pair=None, slice=None):
    """The rows in the queue that pass the filters, sorted; and the counts per reason (before the
    reason filter). `pair` and `slice` come parsed."""
    counts, selected = dict.fromkeys(REASONS, 0), []
    for row in rows:
        if not row.reasons:
            continue
        if slice is not None:
            key, value = slice
            if key not in row.metadata or str(row.metadata[key]) != value:
                continue
        if pair is not None and not pair <= set(row.class_counts):
            continue
        for r in row.reasons:
            counts[r] += 1
        if reason and reason not in row.reasons:
            continue
        selected.append(row)
    selected.sort(key=lambda r: r.sort_key)
    return selected, counts


def _check_filters(project, reason, pair, slice):
    if reason and reason not in REASONS:
        raise DomainError(f"reason must be one of {', '.join(REASONS)}", "reason")
    return {"reason": reason or None, "pair": _parse_pair(project, pair), "slice": _parse_slice(slice)}


def disagreement_queue(project, *, reason=None, pair=None, slice=None, after=None, before=None, limit=None):
    """Items the SMEs should look at, each with its reasons, most disputed first.

    An item is in the queue when (a) its required labels are in and they disagree, (b) a current
    label is unsure or (c) names an ambiguity class, (d) it is a gold item most of whose labels are
    wrong, or (e) it has an open ReviewRequest. Items with a current resolution leave the queue
    unless a review request is still open for them. Sorted by label entropy, then Dawid-Skene
    posterior uncertainty (1 - max posterior), both descending. `counts` are per reason over
    the queue before the `reason` filter (with the pair and slice filters applied).

    Pages are keyset pages, not offsets: `after` / `before` is the `cursor` of a row (its sort
    key), and the page holds the `limit` rows that follow / precede that key. A page stays put
    when rows before it are resolved meanwhile; nothing is skipped or shown twice.
    """
    filters = _check_filters(project, reason, pair, slice)
    after_key, before_key = _parse_cursor(after, "after"), _parse_cursor(before, "before")
    if after_key and before_key:
        raise DomainError("give either after or before, not both", "before")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DomainError("limit must be a whole number of at least 1", "limit")
    rows, method = _queue_rows(project)
    selected, counts = _select(rows, **filters)
    keys = [r.sort_key for r in selected]
    total = len(selected)
    if limit is None:
        start, end = 0, total
    elif before_key is not None:
        end = bisect.bisect_left(keys, before_key)
        start = max(0, end - limit)
    else:
        start = bisect.bisect_right(keys, after_key) if after_key is not None else 0
        end = min(total, start + limit)
    page = selected[start:end]
    return DisagreementQueue(
        rows=page,
        counts=counts,
        total=total,
        start=start,
        next_cursor=page[-1].cursor if page and end < total else None,
        prev_cursor=page[0].cursor if page and start > 0 else None,
        method=method,
        ids=[r.item_id for r in selected],
    )


def _dawid_skene_posteriors(project, rows, index):
    """{item_id: Dawid-Skene posterior over the classes, (K,)} for single-label projects; {} otherwise."""
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
    return {pk: result.posterior[at_item[pk]] for pk in items}


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


def item_history(item):
    """The item's decisions, oldest first: each resolve, ambiguous and send-back with who, when and
    whether it was undone; resolutions and send-backs made before decisions were recorded
    (AdjudicationEvent) appear from their Resolution and QueueEntry rows."""
    events = list(
        AdjudicationEvent.objects.filter(item=item)
        .select_related("actor", "undone_by", "resolution")
        .prefetch_related("resolution__labels")
        .order_by("created_at", "pk")
    )
    out = [
        {
            "kind": e.kind,
            "what": e.get_kind_display(),
            "labels": [c.name for c in e.resolution.labels.all()] if e.resolution else [],
            "by": e.actor.get_username() if e.actor else None,
            "at": e.created_at,
            "undone_at": e.undone_at,
            "undone_by": e.undone_by.get_username() if e.undone_by else None,
            "event": e.pk,
        }
        for e in events
    ]
    recorded = {e.resolution_id for e in events}
    for r in (
        Resolution.objects.filter(item=item)
        .exclude(pk__in=recorded)
        .select_related("decided_by")
        .prefetch_related("labels")
    ):
        out.append(
            {
                "kind": "ambiguous" if r.is_ambiguous else "resolve",
                "what": "Marked ambiguous" if r.is_ambiguous else "Resolved",
                "labels": [c.name for c in r.labels.all()],
                "by": r.decided_by.get_username() if r.decided_by else None,
                "at": r.created_at,
                "undone_at": None,
                "undone_by": None,
                "event": None,
            }
        )
    # Send-backs from before decisions were recorded left only their queue entry.
    recorded_entries = {e.details.get("queue_entry") for e in events if e.kind == AdjudicationEvent.Kind.SEND_BACK}
    for entry in QueueEntry.objects.filter(item=item, strategy="send_back").exclude(pk__in=recorded_entries):
        out.append(
            {
                "kind": "send_back",
                "what": "Sent back",
                "labels": [],
                "by": entry.reason.removeprefix("sent back by ") or None,
                "at": entry.created_at,
                "undone_at": None,
                "undone_by": None,
                "event": None,
            }
        )
    return sorted(out, key=lambda e: (e["at"], e["event"] or 0))


def _labeler_accuracy(project):
    """{labeler id: {accuracy, ci_low, ci_high, scored}} from the latest stored quality report (the
    figures the quality page shows); {} when there is none yet. Reads only the report's
    `labelers` key, not the whole report."""
    rows = (
        QualityReport.objects.filter(project=project)
        .order_by("-computed_at", "-pk")
        .values_list("data__labelers", flat=True)
        .first()
    )
    return {
        r["id"]: {k: r.get(k) for k in ("accuracy", "ci_low", "ci_high", "scored")}
        for r in rows or []
        if isinstance(r, dict) and "id" in r
    }


def review_context(project, item_id, *, reason=None, pair=None, slice=None):
    """Everything the SME item page shows besides a model's prediction: the item, its labels with
    each labeler's accuracy, gold, current resolution, why it is in the queue, the consensus by
    the queue's own method, its position in the queue under the given filters, the queue's ids
    in order, and its history. NotFound for an item of another project; DomainError for a bad
    filter (as the queue)."""
    filters = _check_filters(project, reason, pair, slice)
    detail = item_detail(project, item_id)
    item = detail["item"]
    rows, method = _queue_rows(project, include=item.pk)
    selected, _counts = _select(rows, **filters)
    ids = [r.item_id for r in selected]
    row = next(r for r in rows if r.item_id == item.pk)
    accuracy = _labeler_accuracy(project)
    for a in detail["annotations"]:
        a.accuracy = accuracy.get(a.labeler_id)
    gold = GoldLabel.objects.filter(item=item).prefetch_related("labels").first()
    return {
        **detail,
        "row": row,
        "reasons": [(r, REASON_LABELS[r]) for r in row.reasons],
        "consensus_method": method,
        "gold": [c.name for c in gold.labels.all()] if gold else None,
        "position": ids.index(item.pk) + 1 if item.pk in ids else None,
        "queue_total": len(ids),
        "queue_ids": ids,
        "history": item_history(item),
    }


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
