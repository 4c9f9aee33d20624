"""SME adjudication, the review queue and an item's context: which items the SMEs should look at
and why, most disputed first (`disagreement_queue`), and everything the SME item page shows
(`review_context`, `item_history`). Reads only; the decisions are in adjudication_decisions.py.

`annotation.services.adjudication` is the entry point that re-exports these names.
"""

import bisect
import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.db import transaction
from django.db.models.functions import Substr

from .. import consensus, queue
from ..errors import DomainError
from ..models import (
    AdjudicationEvent,
    Annotation,
    AnnotationLabel,
    GoldLabel,
    GoldLabelClass,
    Item,
    LabelClass,
    QualityReport,
    QueueEntry,
    Resolution,
    ReviewRequest,
    TaskType,
)
from ..models.tags import TAG_SLICE_VALUE, ItemTag, Tag
from ..quality import label_entropy
from ..tag_slices import is_tag_slice, tag_name
from .labeling import NotFound

REASONS = ("disagreement", "unsure", "ambiguity", "gold_wrong", "review")
REASON_LABELS = {
    "disagreement": "Labelers disagree",
    "unsure": "Marked unsure",
    "ambiguity": "Ambiguity class",
    "gold_wrong": "Gold item most got wrong",
    "review": "Sent for review",
}
# The longest class name (the class operations check it; a pair filter holds two).
MAX_CLASS_NAME = 100


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


def _parse_slice(project, slice_):
    """(key, value, tagged item ids or None): a tag's slice ("tag:blurry=yes") is matched by the
    item's tags, which are not in its metadata."""
    if not slice_:
        return None
    key, sep, value = str(slice_).partition("=")
    if not sep or not key.strip():
        raise DomainError("give a slice as key=value, e.g. noise=car or tag:blurry=yes", "slice")
    key, value = key.strip(), value.strip()
    if not is_tag_slice(key):
        return key, value, None
    tag = Tag.objects.filter(project=project, name__iexact=tag_name(key)).first()
    if tag is None:
        raise DomainError(f"{tag_name(key)!r} is not a tag of this project", "slice")
    if value.lower() != TAG_SLICE_VALUE:
        raise DomainError(f"a tag's slice is {key}={TAG_SLICE_VALUE}", "slice")
    return key, value, set(ItemTag.objects.filter(tag=tag).values_list("item_id", flat=True))


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
            key, value, tagged = slice
            if tagged is not None:
                if row.item_id not in tagged:
                    continue
            elif key not in row.metadata or str(row.metadata[key]) != value:
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
    return {"reason": reason or None, "pair": _parse_pair(project, pair), "slice": _parse_slice(project, slice)}


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
