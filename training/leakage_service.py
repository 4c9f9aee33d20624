"""The leakage check's writes: run it over a snapshot (before it trains) or over all of a
project's items, store a :class:`~training.models.LeakageReport`, and move a near-duplicate group
into one split for an MLE (:class:`~training.models.LeakageMove` records who, when, from where).

Why a move stays put: an item's split is drawn once, when the item is created
(annotation/splits.py), and stored on ``Item.split``; a re-import skips items that exist (same
external id or content), so nothing draws a moved item's split again. The next snapshot freezes
the new splits (its content hash covers each row's split, so it is a new snapshot).
"""

from __future__ import annotations

import logging
import time

import numpy as np
from django.db import transaction

from annotation.models import DataKind, Item, Split
from annotation.services import project_counts

from . import leakage as L
from .datasets import _gray_images
from .errors import Conflict, TrainingError
from .models import LeakageMove, LeakageReport

logger = logging.getLogger(__name__)

# A bigger group is not copies of one item but look-alikes chained by union-find (the demo's 8x8
# digit scans chain into two groups of hundreds): moving it would empty dev or test, so it is
# refused and its pairs are for a person to read.
MAX_MOVE_GROUP = 25


def fingerprints(images) -> tuple[np.ndarray, list[str]]:
    """uint64 dhash (N,) and pixel digests (N,) of PIL images."""
    hashes, digests = [], []
    for image in images:
        value, digest = L.image_fingerprint(image)
        hashes.append(value)
        digests.append(digest)
    return np.array(hashes, dtype=np.uint64).reshape(len(hashes)), digests


def _record(project, snapshot, item_ids, splits, *, images=None, texts=None) -> LeakageReport:
    started = time.perf_counter()
    item_ids = [int(i) for i in item_ids]
    if texts is not None:
        result = L.check(splits, texts=texts)
    else:
        hashes, digests = fingerprints(images)
        result = L.check(splits, image_hashes=hashes, digests=digests)
    pairs = []
    for p in result.pairs:
        row = {"a": item_ids[p.i], "b": item_ids[p.j], "kind": p.kind}
        if p.distance is not None:
            row["distance"] = p.distance
        if p.jaccard is not None:
            row["jaccard"] = p.jaccard
        pairs.append(row)
    groups = [
        {"items": [item_ids[m] for m in members], "splits": {str(item_ids[m]): str(splits[m]) for m in members}}
        for members in result.groups
    ]
    return LeakageReport.objects.create(
        project=project,
        snapshot=snapshot,
        data_kind=project.data_kind,
        thresholds=L.thresholds(),
        items_checked=len(item_ids),
        pairs=pairs,
        groups=groups,
        redundancy=result.redundancy,
        seconds=round(time.perf_counter() - started, 3),
    )


def check_snapshot(snapshot, data) -> LeakageReport | None:
    """The check over a snapshot's rows, from the inputs the trainer has just loaded
    (training.datasets.Dataset). Once per snapshot. It reports and never stops a training: a
    failure of the check is logged and the training goes on."""
    existing = LeakageReport.objects.filter(snapshot=snapshot).order_by("-pk").first()
    if existing is not None:
        return existing
    try:
        return _record(
            snapshot.project, snapshot, data.item_ids.tolist(), list(data.split), images=data.images, texts=data.texts
        )
    except Exception:
        logger.exception("leakage check of snapshot %s failed; training goes on", snapshot.pk)
        return None


def check_project(project) -> LeakageReport:
    """The check over all of the project's items (labelled or not), read from their files."""
    rows = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", "split", "text"))
    ids = [r[0] for r in rows]
    splits = [r[1] for r in rows]
    if project.data_kind == DataKind.TEXT:
        return _record(project, None, ids, splits, texts=[r[2] for r in rows])
    return _record(project, None, ids, splits, images=_gray_images(ids))


def latest_report(project, snapshot=None) -> LeakageReport | None:
    reports = LeakageReport.objects.filter(project=project)
    if snapshot is not None:
        reports = reports.filter(snapshot=snapshot)
    return reports.order_by("-created_at", "-pk").first()


def move_group(report: LeakageReport, group: int, *, user=None, split: str | None = None) -> LeakageMove:
    """Put every item of the report's group ``group`` in one split: ``split`` when given, else
    the split most of them are in now (a tie goes to train, then dev: leakage.target_split).
    Refused (Conflict) when the group was moved already."""
    if split is not None and split not in Split.values:
        raise TrainingError(f"split must be one of {', '.join(Split.values)}", "split")
    groups = report.groups or []
    if not 0 <= group < len(groups):
        raise TrainingError(f"group must be 0..{len(groups) - 1}; this report has {len(groups)} groups", "group")
    member_ids = [int(i) for i in groups[group]["items"]]
    if len(member_ids) > MAX_MOVE_GROUP:
        raise TrainingError(
            f"group {group} holds {len(member_ids):,} items, more than {MAX_MOVE_GROUP} copies of one item: "
            "these are look-alikes chained together, not copies; read its pairs instead of moving it all",
            "group",
        )
    with transaction.atomic():
        # The items' rows are locked: two MLEs moving overlapping groups apply one after the other.
        current = dict(
            Item.objects.select_for_update()
            .filter(project=report.project_id, pk__in=member_ids)
            .order_by("pk")
            .values_list("pk", "split")
        )
        if LeakageMove.objects.filter(report=report, group=group).exists():
            raise Conflict(f"group {group} of this report was moved already", "group")
        target = split or L.target_split([current[i] for i in member_ids if i in current])
        moved = [{"item": pk, "from": current[pk]} for pk in member_ids if pk in current and current[pk] != target]
        Item.objects.filter(pk__in=[m["item"] for m in moved]).update(split=target)
        record = LeakageMove.objects.create(
            report=report,
            group=group,
            to_split=target,
            moved=moved,
            by=user if user is not None and getattr(user, "is_authenticated", False) else None,
        )
        project_counts.mark_stale(report.project_id)
    return record


SNIPPET_CHARS = 160


def describe(report: LeakageReport, limit: int | None = None, item_limit: int | None = None) -> dict:
    """The report as the page and the API show it: each group's items (external id, split now,
    thumbnail or text snippet), its pairs, where it would move and whether it was moved. Three
    queries whatever the size; ``limit`` keeps the first groups, ``item_limit`` the first items
    and pairs of each (``size`` and ``pair_count`` say how many there are)."""
    groups = report.groups or []
    shown = groups if limit is None else groups[:limit]
    ids = {int(i) for g in shown for i in g["items"][:item_limit]}
    items = {
        row["pk"]: row
        for row in Item.objects.filter(project=report.project_id, pk__in=ids).values(
            "pk", "external_id", "split", "thumbnail", "text"
        )
    }
    moves = {m.group: m for m in LeakageMove.objects.filter(report=report).select_related("by")}
    group_of = {int(i): n for n, g in enumerate(shown) for i in g["items"]}
    pairs_of: dict[int, list] = {}
    for pair in report.pairs or []:
        n = group_of.get(int(pair["a"]))
        if n is not None:
            pairs_of.setdefault(n, []).append(pair)
    out = []
    for n, g in enumerate(shown):
        members = []
        for pk in g["items"][:item_limit]:
            row = items.get(int(pk))
            if row is None:
                continue  # deleted since the check
            members.append(
                {
                    "id": row["pk"],
                    "external_id": row["external_id"],
                    "split": row["split"],
                    "split_at_check": g["splits"].get(str(pk)),
                    "has_thumbnail": bool(row["thumbnail"]),
                    "snippet": (row["text"] or "")[:SNIPPET_CHARS],
                }
            )
        move = moves.get(n)
        pairs = pairs_of.get(n, [])
        out.append(
            {
                "n": n,
                "size": len(g["items"]),
                "movable": len(g["items"]) <= MAX_MOVE_GROUP,
                "items": members,
                "pair_count": len(pairs),
                "pairs": pairs[:item_limit],
                "proposed_split": L.target_split([m["split"] for m in members])
                if members and len(g["items"]) <= MAX_MOVE_GROUP
                else None,
                "moved": None
                if move is None
                else {
                    "to_split": move.to_split,
                    "by": move.by.username if move.by else None,
                    "at": move.at,
                    "items": move.moved,
                },
            }
        )
    return {
        "id": report.pk,
        "snapshot": report.snapshot_id,
        "created_at": report.created_at,
        "data_kind": report.data_kind,
        "thresholds": report.thresholds,
        "items_checked": report.items_checked,
        "pair_count": len(report.pairs or []),
        "group_count": len(groups),
        "redundancy": report.redundancy,
        "seconds": report.seconds,
        "groups": out,
    }
