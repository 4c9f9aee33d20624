"""Datasets: freezing the project's labels into a :class:`~training.models.DatasetSnapshot` (the
policy is the pure :mod:`training.snapshot`), and reading a snapshot's rows back as arrays (texts,
or grayscale pixels) for a trainer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.db import transaction

from annotation.agreement import class_counts_from_triples
from annotation.consensus import dawid_skene_from_triples, majority_vote_from_counts
from annotation.models import AnnotationLabel, GoldLabelClass, Item, LabelClass, Resolution, ResolutionLabel, Split

from . import snapshot as S
from .conf import CONSENSUS_METHODS, training_settings
from .errors import TrainingError
from .models import DatasetSnapshot, SnapshotLabel


def check_policy(policy: dict | None) -> dict:
    """The snapshot policy: defaults from settings updated with ``policy``, each checked."""
    config = training_settings()
    given = dict(policy or {})
    unknown = sorted(set(given) - {"consensus", "min_confidence", "keep_ambiguity"})
    if unknown:
        raise TrainingError(f"unknown snapshot option {', '.join(unknown)}", unknown[0])
    out = {
        "consensus": given.get("consensus", config["CONSENSUS"]),
        "min_confidence": given.get("min_confidence", config["CONSENSUS_MIN_CONFIDENCE"]),
        "keep_ambiguity": given.get("keep_ambiguity", config["KEEP_AMBIGUITY"]),
    }
    if out["consensus"] not in CONSENSUS_METHODS:
        raise TrainingError(f"consensus must be one of {', '.join(CONSENSUS_METHODS)}", "consensus")
    conf = out["min_confidence"]
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
        raise TrainingError("min_confidence must be a number in [0, 1]", "min_confidence")
    out["min_confidence"] = float(conf)
    if not isinstance(out["keep_ambiguity"], bool):
        raise TrainingError("keep_ambiguity must be true or false", "keep_ambiguity")
    return out


@dataclass
class ClassIndex:
    """The project's classes for a snapshot: every live class (ambiguity ones included) by index,
    and where each database class id (a merged one too) points."""

    ids: list[int]
    names: list[str]
    ambiguity: np.ndarray  # bool (K,)
    index_of: dict[int, int] = field(default_factory=dict)


def class_index(project) -> ClassIndex:
    rows = list(
        LabelClass.objects.filter(project=project)
        .order_by("order", "name", "pk")
        .values_list("pk", "name", "is_ambiguity", "merged_into_id", "is_active")
    )
    live = [(pk, name, amb) for pk, name, amb, merged, active in rows if merged is None and active]
    index_of = {pk: i for i, (pk, _, _) in enumerate(live)}
    target = {pk: merged for pk, _, _, merged, _ in rows}
    for pk in target:
        final, seen = pk, set()
        while target.get(final) is not None and final not in seen:
            seen.add(final)
            final = target[final]
        if final in index_of:
            index_of[pk] = index_of[final]
    return ClassIndex(
        ids=[pk for pk, _, _ in live],
        names=[name for _, name, _ in live],
        ambiguity=np.array([amb for _, _, amb in live], dtype=bool).reshape(len(live)),
        index_of=index_of,
    )


def _single_class(rows, positions, classes: ClassIndex, n) -> np.ndarray:
    """(item id, class id) rows -> float (N,) class index where an item names exactly one live class."""
    found: dict[int, set] = {}
    for item_id, class_id in rows:
        found.setdefault(item_id, set()).add(classes.index_of.get(class_id, -1))
    out = np.full(n, np.nan)
    for item_id, idx in found.items():
        pos = positions.get(item_id)
        if pos is not None and len(idx) == 1 and -1 not in idx:
            out[pos] = next(iter(idx))
    return out


def _consensus(project, positions, classes: ClassIndex, n, method, random_state):
    """Consensus class and confidence (N,) from the current labels (NaN where unlabelled)."""
    rows = (
        AnnotationLabel.objects.filter(annotation__item__project=project, annotation__is_current=True)
        .order_by("annotation__item_id", "annotation__labeler_id", "label_class_id")
        .values_list("annotation__item_id", "annotation__labeler_id", "label_class_id")
    )
    items, labelers, labels, seen = [], [], [], set()
    labeler_pos: dict[int, int] = {}
    for item_id, labeler_id, class_id in rows.iterator(chunk_size=50_000):
        idx = classes.index_of.get(class_id)
        if idx is None or (item_id, labeler_id) in seen:
            continue  # a retired class, or a second label of one annotation
        seen.add((item_id, labeler_id))
        items.append(positions[item_id])
        labelers.append(labeler_pos.setdefault(labeler_id, len(labeler_pos)))
        labels.append(idx)
    return consensus_from_arrays(
        np.array(items, dtype=np.int64),
        np.array(labelers, dtype=np.int64),
        np.array(labels, dtype=np.int64),
        n,
        len(labeler_pos),
        len(classes.ids),
        method,
        random_state,
    )


def consensus_from_arrays(item_idx, labeler_idx, label, n, n_labelers, k, method, random_state):
    """Consensus class and confidence (N,) from one label per (item, labeler) as int arrays:
    item position, labeler position, class index. ``_consensus`` reads the labels into them; the
    dataset export loads them itself, in chunks, straight into NumPy arrays."""
    consensus, confidence = np.full(n, np.nan), np.full(n, np.nan)
    if not item_idx.size or k == 0:
        return consensus, confidence
    if method == "dawid_skene":
        result = dawid_skene_from_triples(item_idx, labeler_idx, label, n, n_labelers, k, random_state=random_state)
        labelled = ~np.isnan(result.labels)
        consensus[labelled] = result.labels[labelled]
        confidence[labelled] = result.posterior[labelled, result.labels[labelled].astype(np.int64)]
    else:
        counts = class_counts_from_triples(item_idx, label, n, k)
        vote, _ = majority_vote_from_counts(counts, random_state=random_state)
        labelled = ~np.isnan(vote)
        consensus[labelled] = vote[labelled]
        totals = counts.sum(axis=1)
        confidence[labelled] = counts[labelled, vote[labelled].astype(np.int64)] / totals[labelled]
    return consensus, confidence


def truth_arrays(project, positions, classes, n):
    """(gold, resolution, resolution_ambiguous), each (N,) over the items at ``positions``: the
    gold class index and the current resolution's (NaN where none or not a single class), and
    whether the SME resolved the item as ambiguous."""
    gold = _single_class(
        GoldLabelClass.objects.filter(gold__item__project=project).values_list("gold__item_id", "label_class_id"),
        positions,
        classes,
        n,
    )
    current = Resolution.objects.filter(item__project=project, is_current=True)
    resolution = _single_class(
        ResolutionLabel.objects.filter(resolution__in=current).values_list("resolution__item_id", "label_class_id"),
        positions,
        classes,
        n,
    )
    resolution_ambiguous = np.zeros(n, dtype=bool)
    for item_id in current.filter(is_ambiguous=True).values_list("item_id", flat=True):
        resolution_ambiguous[positions[item_id]] = True
    return gold, resolution, resolution_ambiguous


def build_snapshot(project, *, policy=None, user=None, random_state=0) -> DatasetSnapshot:
    """Freeze the project's training labels under ``policy`` (see :func:`check_policy` and
    training/snapshot.py for the precedence). The same labels under the same policy give the
    same snapshot: an existing one with the same content hash and policy is returned instead
    of a copy."""
    policy = check_policy(policy)
    classes = class_index(project)
    items = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", "split"))
    n = len(items)
    positions = {pk: i for i, (pk, _) in enumerate(items)}
    gold, resolution, resolution_ambiguous = truth_arrays(project, positions, classes, n)
    consensus, confidence = _consensus(project, positions, classes, n, policy["consensus"], random_state)

    amb_indices = np.flatnonzero(classes.ambiguity)
    label, status = S.select_labels(
        resolution,
        resolution_ambiguous,
        gold,
        consensus,
        confidence,
        classes.ambiguity,
        min_confidence=policy["min_confidence"],
        keep_ambiguity=policy["keep_ambiguity"],
        fallback_ambiguity_class=int(amb_indices[0]) if amb_indices.size else -1,
    )
    # The snapshot's classes: the live ones, without the ambiguity classes unless they are kept.
    vocab = [i for i in range(len(classes.ids)) if policy["keep_ambiguity"] or not classes.ambiguity[i]]
    vocab_ids = [classes.ids[i] for i in vocab]
    kept = np.flatnonzero(label >= 0)
    class_ids = [classes.ids[int(label[i])] for i in kept.tolist()]
    item_ids = [items[i][0] for i in kept.tolist()]
    splits = [items[i][1] for i in kept.tolist()]
    digest = S.content_hash(item_ids, class_ids, splits, vocab_ids)

    existing = DatasetSnapshot.objects.filter(project=project, content_hash=digest).order_by("pk")
    for candidate in existing:
        if candidate.policy == policy:
            return candidate

    names = dict(zip(classes.ids, classes.names, strict=True))
    counts = {s: {names[c]: 0 for c in vocab_ids} for s in Split.values}
    for class_id, split in zip(class_ids, splits, strict=True):
        counts[split][names[class_id]] += 1
    sources = {name: int((status == code).sum()) for code, name in enumerate(S.STATUS_NAMES)}
    with transaction.atomic():
        snap = DatasetSnapshot.objects.create(
            project=project,
            created_by=user if user is not None and getattr(user, "is_authenticated", False) else None,
            policy=policy,
            content_hash=digest,
            classes=[
                {"id": classes.ids[i], "name": classes.names[i], "is_ambiguity": bool(classes.ambiguity[i])}
                for i in vocab
            ],
            counts=counts,
            sources=sources,
            size=len(item_ids),
        )
        SnapshotLabel.objects.bulk_create(
            (
                SnapshotLabel(
                    snapshot=snap,
                    item_id=item_ids[j],
                    label_class_id=class_ids[j],
                    split=splits[j],
                    source=S.STATUS_NAMES[int(status[i])],
                    confidence=float(confidence[i]) if status[i] == S.CONSENSUS else None,
                )
                for j, i in enumerate(kept.tolist())
            ),
            batch_size=2000,
        )
    return snap


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A snapshot's rows with their inputs, ordered by item id. Shapes: R rows."""

    item_ids: np.ndarray  # int (R,)
    external_ids: list
    y: np.ndarray  # int (R,) index into the snapshot's classes
    split: np.ndarray  # str (R,)
    metadata: list  # dict per row
    has_thumbnail: np.ndarray  # bool (R,)
    texts: list | None = None
    images: list | None = None  # PIL grayscale images, resized on demand per trainer
    _cache: dict = field(default_factory=dict)

    def inputs(self, rows, size: int = 0):
        rows = np.asarray(rows, dtype=np.int64)
        if self.texts is not None:
            return [self.texts[i] for i in rows.tolist()]
        if size not in self._cache:
            self._cache[size] = np.stack([_pixels(im, size) for im in self.images]) if self.images else None
        arr = self._cache[size]
        return arr[rows] if arr is not None else np.zeros((0, size, size), dtype=np.float32)


def _pixels(image, size):
    from PIL import Image

    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0


def load_dataset(snapshot: DatasetSnapshot, data_kind: str) -> Dataset:
    index = {c["id"]: i for i, c in enumerate(snapshot.classes)}
    rows = list(
        SnapshotLabel.objects.filter(snapshot=snapshot)
        .order_by("item_id")
        .values_list("item_id", "label_class_id", "split", "item__external_id", "item__metadata", "item__thumbnail")
    )
    item_ids = np.array([r[0] for r in rows], dtype=np.int64)
    data = Dataset(
        item_ids=item_ids,
        external_ids=[r[3] for r in rows],
        y=np.array([index[r[1]] for r in rows], dtype=np.int64),
        split=np.array([r[2] for r in rows], dtype=object),
        metadata=[r[4] if isinstance(r[4], dict) else {} for r in rows],
        has_thumbnail=np.array([bool(r[5]) for r in rows], dtype=bool),
    )
    if data_kind == "text":
        texts = dict(Item.objects.filter(pk__in=item_ids.tolist()).values_list("pk", "text"))
        data.texts = [texts.get(int(i), "") for i in item_ids]
        return data
    data.images = list(_gray_images(item_ids.tolist()))
    return data


def _gray_images(item_ids):
    """The items' images as grayscale PIL images, in the order of ``item_ids``."""
    from PIL import Image

    files = {}
    for start in range(0, len(item_ids), 900):  # SQLite's limit on query parameters
        chunk = item_ids[start : start + 900]
        files.update({pk: f for pk, f in Item.objects.filter(pk__in=chunk).values_list("pk", "image")})
    storage = Item._meta.get_field("image").storage
    for pk in item_ids:
        name = files.get(pk)
        if not name:
            raise TrainingError(f"item {pk} of this image project has no image file")
        with storage.open(name, "rb") as fh, Image.open(fh) as im:
            im.draft("L", (256, 256))
            yield im.convert("L").copy()


def read_inputs(item_ids, data_kind: str, size: int = 0):
    """A trainer's inputs for ``item_ids`` (in that order): texts, or an (N, size, size) float32
    array of grayscale pixels in [0, 1]."""
    item_ids = [int(pk) for pk in item_ids]
    if data_kind == "text":
        texts = {}
        for start in range(0, len(item_ids), 900):
            texts.update(Item.objects.filter(pk__in=item_ids[start : start + 900]).values_list("pk", "text"))
        return [texts.get(pk, "") for pk in item_ids]
    if not item_ids:
        return np.zeros((0, size, size), dtype=np.float32)
    return np.stack([_pixels(image, size) for image in _gray_images(item_ids)])
