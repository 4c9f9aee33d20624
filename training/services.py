"""Training services: snapshot -> train -> evaluate -> register, and promote / roll back.

- :func:`start_training` (a request) checks the request, creates a ``training`` ModelVersion and
  queues ``train_model`` once the transaction commits.
- :func:`run_training` (the worker, or ``manage.py train --sync``) claims the version, freezes
  the labels into a :class:`~training.models.DatasetSnapshot`, fits the trainer, evaluates it,
  writes the artifact (temporary file, then rename) and only then marks the version ``ready``,
  in one conditional UPDATE. A run that dies anywhere before that UPDATE leaves the version
  ``training`` with no artifact registered; the redelivered task (``acks_late``) claims it again
  and starts over. While it runs, a heartbeat thread (training/heartbeat.py) stamps the version;
  one whose heartbeat stopped for ``STALE_AFTER_SECONDS`` (its worker was killed) is re-queued,
  up to ``MAX_ATTEMPTS`` runs, by the periodic reaper (training/recovery.py), or marked failed
  when the project's next training starts before a reaper got to it. Every write of a run is
  conditional on its ``run_token``, so two deliveries of the same task (a broker's redelivery and
  the reaper's re-queue, say) never both register a model: the later claim wins and the earlier
  run stops at its next progress write.
- :func:`promote` and :func:`rollback` change the project's current model and record it.

Evaluation is on the dev split, or by K-fold cross-validation over train + dev when the project
has fewer than ``CV_BELOW_LABELS`` labels there (or no dev label). The test split is scored once
for the final report and never used to choose anything.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation import errors
from annotation.access import acting_user
from annotation.agreement import class_counts_from_triples
from annotation.consensus import dawid_skene_from_triples, majority_vote_from_counts
from annotation.errors import DomainError
from annotation.models import (
    AnnotationLabel,
    GoldLabelClass,
    Item,
    LabelClass,
    Project,
    QualityReport,
    Resolution,
    ResolutionLabel,
    Split,
)

from . import metrics as M
from . import snapshot as S
from .heartbeat import beating
from .models import DatasetSnapshot, ModelVersion, Promotion, SnapshotLabel
from .trainers import TRAINERS, atomic_write, check_hyperparameters, get_trainer

logger = logging.getLogger(__name__)

DEFAULTS = {
    # Fewer train + dev labels than this: K-fold cross-validation instead of the dev split.
    "CV_BELOW_LABELS": 200,
    "CV_FOLDS": 5,
    # Consensus of the labelers used where an item has neither resolution nor gold.
    "CONSENSUS": "dawid_skene",  # or "majority_vote"
    "CONSENSUS_MIN_CONFIDENCE": 0.8,
    "KEEP_AMBIGUITY": False,
    "RANDOM_STATE": 0,
    "TOP_K": 12,
    "CALIBRATION_BINS": 10,
    "MAX_SLICE_VALUES": 50,
    # A `training` version with no heartbeat for this long has lost its worker: the reaper
    # re-queues it (training/recovery.py), and the project's next training fails it if none did.
    # A live run beats every few seconds (training/heartbeat.py), so minutes are plenty.
    "STALE_AFTER_SECONDS": 180,
    "UNCLAIMED_AFTER_SECONDS": 3600,  # never picked up by a worker for this long: failed at the next launch
    "TF_THREADS": 0,  # TensorFlow's intra/inter-op threads in the worker; 0 = its default
    "ARTIFACT_DIR": "",  # "" = MEDIA_ROOT / "models"
    "QUEUE": "",  # Celery queue of train_model; "" = the default queue
}
CONSENSUS_METHODS = ("dawid_skene", "majority_vote")
PROGRESS_EVERY_SECONDS = 0.5
ERROR_CHARS = 2000
# Where each stage starts and ends on the progress bar.
STAGE_SPAN = {
    ModelVersion.Stage.SNAPSHOT: (0.0, 0.05),
    ModelVersion.Stage.LOADING: (0.05, 0.15),
    ModelVersion.Stage.FITTING: (0.15, 0.85),
    ModelVersion.Stage.EVALUATING: (0.85, 0.95),
    ModelVersion.Stage.SAVING: (0.95, 1.0),
}


class TrainingError(DomainError):
    """A training request or run the domain refuses (bad trainer, no labels, ...)."""


class Conflict(TrainingError, errors.Conflict):
    """The model is not in a state that allows this (promote a failed model, roll back a model
    that is not current)."""


MAX_SEED = 2**31 - 1  # the random_state column is a 32-bit integer
MAX_NOTE_CHARS = 500  # Promotion.note and ModelExport.override_note


def checked_note(note: str) -> str:
    """A promote, roll back or override note, refused (never cut) when longer than its column."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise TrainingError(f"a note has at most {MAX_NOTE_CHARS} characters; this one has {len(note)}", "note")
    return note


class Superseded(Exception):
    """Another delivery of the same task has claimed the version; this run stops quietly."""


def training_settings() -> dict:
    """DEFAULTS overridden by ``settings.CONCORD_TRAINING``."""
    return {**DEFAULTS, **getattr(settings, "CONCORD_TRAINING", {})}


def artifact_root() -> Path:
    configured = training_settings()["ARTIFACT_DIR"]
    return Path(configured) if configured else Path(settings.MEDIA_ROOT) / "models"


def stored_file(relative: str, what: str, error=None) -> Path:
    """The absolute path of `what` (a stored artifact or bundle) at `relative` under the artifact
    folder; raises `error` (TrainingError by default) when it is missing or would leave that folder."""
    error = error or TrainingError
    if not relative:
        raise error(f"{what} has no file")
    root = artifact_root().resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise error(f"{what}'s file path leaves the artifact folder")
    return path


def artifact_path(version: ModelVersion) -> Path:
    """The absolute path of a version's artifact; refuses anything outside the artifact folder."""
    return stored_file(version.artifact, f"model {version.short_id}")


def out_of_sample_path(version: ModelVersion) -> Path:
    """Where a version keeps the predictions it was evaluated by (see :func:`out_of_sample`)."""
    return stored_file(f"{version.project_id}/{version.short_id}-oos.npz", f"model {version.short_id}'s predictions")


def _save_out_of_sample(version, item_ids, proba) -> None:
    atomic_write(out_of_sample_path(version), lambda tmp: np.savez(tmp, item_ids=item_ids, proba=proba))


def out_of_sample(version: ModelVersion) -> tuple[np.ndarray, np.ndarray]:
    """(item ids (R,), probabilities (R, K)) of the items a ready version was evaluated on, each
    predicted by a model that never trained on it: the dev split, or out-of-fold predictions under
    cross-validation. Active learning's error model learns from them."""
    path = out_of_sample_path(version)
    if not path.exists():
        raise TrainingError(f"model {version.short_id} has no stored evaluation predictions; train a new model")
    with np.load(path) as stored:
        return stored["item_ids"].astype(np.int64), stored["proba"].astype(np.float64)


def load_model(version: ModelVersion):
    """The fitted trainer of a ready version (worker-side: a Keras model imports TensorFlow)."""
    cls = get_trainer(version.trainer)
    path = artifact_path(version)
    if cls.name == "keras_cnn":
        return cls.load(path, n_threads=int(training_settings()["TF_THREADS"]))
    return cls.load(path)


# --------------------------------------------------------------------------------------------
# Requests: start, promote, roll back
# --------------------------------------------------------------------------------------------


def trainer_choices(project) -> list[tuple[str, str]]:
    """(name, label) of the trainers that can learn this project's data."""
    return [(name, cls.label) for name, cls in TRAINERS.items() if project.data_kind in cls.data_kinds]


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


def check_trainer(project, trainer: str) -> None:
    """Refuse (TrainingError on ``trainer``) a trainer that does not exist or cannot learn this project."""
    if trainer not in TRAINERS:
        raise TrainingError(f"unknown trainer {trainer!r}; choose one of {', '.join(TRAINERS)}", "trainer")
    if project.data_kind not in TRAINERS[trainer].data_kinds:
        raise TrainingError(f"{trainer} does not train on {project.data_kind} projects", "trainer")
    if project.task_type != "single_label":
        raise TrainingError("training covers single-label projects for now", "trainer")


def create_version(project, *, trainer, user=None, hyperparameters=None, policy=None, random_state=None):
    """A new ``training`` version, every setting checked; nothing is queued (see start_training)."""
    check_trainer(project, trainer)
    try:
        hp = check_hyperparameters(trainer, hyperparameters)
    except ValueError as exc:
        raise TrainingError(str(exc), "hyperparameters") from exc
    policy = check_policy(policy)
    seed = training_settings()["RANDOM_STATE"] if random_state is None else random_state
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise TrainingError(f"random_state must be a whole number in [0, {MAX_SEED}]", "random_state")
    return ModelVersion.objects.create(
        project=project,
        trainer=trainer,
        hyperparameters=hp,
        policy=policy,
        random_state=seed,
        created_by=acting_user(user),
    )


def start_training(project, *, trainer, user=None, hyperparameters=None, policy=None, random_state=None):
    """Create a ``training`` version and queue ``train_model`` for it on commit; returns it."""
    check_trainer(project, trainer)
    fail_stale_versions(project)
    with transaction.atomic():
        version = create_version(
            project,
            trainer=trainer,
            user=user,
            hyperparameters=hyperparameters,
            policy=policy,
            random_state=random_state,
        )
        version_id = version.pk
        transaction.on_commit(lambda: enqueue(version_id))
    return version


def enqueue(version_id: int) -> None:
    """Queue ``train_model``; if the broker refuses, the version fails with that reason."""
    from .tasks import train_model

    queue_or_fail(train_model, version_id, ModelVersion, running=ModelVersion.Status.TRAINING, what="training")


def queue_or_fail(task, pk: int, model, *, running, what: str) -> None:
    """Queue ``task(pk)``; if the broker refuses, the row (a ModelVersion or ModelExport still
    `running`) is marked failed with the reason, instead of waiting for a task that never comes."""
    try:
        task.apply_async((pk,), queue=training_settings()["QUEUE"] or None)
    except Exception as exc:
        logger.exception("could not queue %s of %s %s", what, model.__name__, pk)
        model.objects.filter(pk=pk, status=running).update(
            status=model.Status.FAILED,
            error=f"Could not queue the {what} (is the Celery broker reachable?): {exc}"[:ERROR_CHARS],
            finished_at=timezone.now(),
        )


def stale_limit():
    """Heartbeats older than this are a lost worker's."""
    return timezone.now() - timezone.timedelta(seconds=int(training_settings()["STALE_AFTER_SECONDS"]))


def fail_stale_versions(project) -> int:
    """Mark failed the project's ``training`` versions whose worker has been silent for
    ``STALE_AFTER_SECONDS`` (a worker died and neither the broker nor the reaper ran it again)."""
    limit = stale_limit()
    # Never picked up: it may be waiting behind long work in the queue, so it gets longer.
    unclaimed = timezone.now() - timezone.timedelta(seconds=int(training_settings()["UNCLAIMED_AFTER_SECONDS"]))
    stale = ModelVersion.objects.filter(project=project, status=ModelVersion.Status.TRAINING)
    stale = stale.filter(Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, created_at__lt=unclaimed))
    return stale.update(
        status=ModelVersion.Status.FAILED,
        error="No word from the worker for too long: it was stopped or lost while training. Start a new training.",
        finished_at=timezone.now(),
    )


@transaction.atomic
def promote(version: ModelVersion, *, user=None, note: str = "") -> Promotion | None:
    """Make a ready version the project's current model; records a Promotion. Promoting the
    current model again changes nothing and returns None."""
    Project.objects.select_for_update().filter(pk=version.project_id).first()  # one change at a time
    version.refresh_from_db()
    if version.status != ModelVersion.Status.READY:
        raise Conflict(f"model {version.short_id} is {version.status}; only a ready model can be promoted")
    current = ModelVersion.objects.filter(project_id=version.project_id, is_promoted=True).first()
    if current is not None and current.pk == version.pk:
        return None
    if current is not None:
        ModelVersion.objects.filter(pk=current.pk).update(is_promoted=False)
    ModelVersion.objects.filter(pk=version.pk).update(is_promoted=True)
    version.is_promoted = True
    return Promotion.objects.create(
        project_id=version.project_id,
        action=Promotion.Action.PROMOTE,
        model_version=version,
        previous=current,
        by=acting_user(user),
        note=checked_note(note),
    )


@transaction.atomic
def rollback(version: ModelVersion, *, user=None, note: str = "") -> Promotion:
    """Undo the promotion of the current model ``version``: the model that was current before
    it (if it is still ready) becomes current again, or none is. Records a Promotion."""
    Project.objects.select_for_update().filter(pk=version.project_id).first()
    version.refresh_from_db()
    if not version.is_promoted:
        raise Conflict(f"model {version.short_id} is not the current model, so there is nothing to roll back")
    last = (
        Promotion.objects.filter(model_version=version, action=Promotion.Action.PROMOTE)
        .select_related("previous")
        .order_by("-at", "-pk")
        .first()
    )
    previous = last.previous if last is not None else None
    if previous is not None and previous.status != ModelVersion.Status.READY:
        previous = None
    ModelVersion.objects.filter(pk=version.pk).update(is_promoted=False)
    version.is_promoted = False
    if previous is not None:
        ModelVersion.objects.filter(pk=previous.pk).update(is_promoted=True)
    return Promotion.objects.create(
        project_id=version.project_id,
        action=Promotion.Action.ROLLBACK,
        model_version=previous,
        previous=version,
        by=acting_user(user),
        note=checked_note(note),
    )


# --------------------------------------------------------------------------------------------
# Snapshot
# --------------------------------------------------------------------------------------------


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
    k = len(classes.ids)
    item_idx = np.array(items, dtype=np.int64)
    label = np.array(labels, dtype=np.int64)
    consensus, confidence = np.full(n, np.nan), np.full(n, np.nan)
    if not item_idx.size or k == 0:
        return consensus, confidence
    if method == "dawid_skene":
        result = dawid_skene_from_triples(
            item_idx, np.array(labelers, dtype=np.int64), label, n, len(labeler_pos), k, random_state=random_state
        )
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


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


class Run:
    """One worker's claim on a version: every write goes through here, conditional on the token."""

    def __init__(self, version: ModelVersion, token: str):
        self.version = version
        self.token = token
        self.stage = None
        self.last_write = 0.0
        self.timings: dict[str, float] = {}
        self._stage_started = time.perf_counter()

    def _mine(self):
        return ModelVersion.objects.filter(
            pk=self.version.pk, run_token=self.token, status=ModelVersion.Status.TRAINING
        )

    def write(self, **fields):
        if not self._mine().update(heartbeat_at=timezone.now(), **fields):
            raise Superseded(self.version.pk)
        self.last_write = time.perf_counter()

    def enter(self, stage):
        now = time.perf_counter()
        if self.stage is not None:
            self.timings[self.stage] = round(now - self._stage_started, 3)
        self.stage, self._stage_started = stage, now
        self.write(stage=stage, progress=STAGE_SPAN[stage][0] if stage in STAGE_SPAN else 1.0)

    def advance(self, fraction, epoch=None, epochs=None, force=False):
        """Progress within the current stage (0..1); written at most every half second."""
        if not force and time.perf_counter() - self.last_write < PROGRESS_EVERY_SECONDS:
            return
        low, high = STAGE_SPAN[self.stage]
        fields = {"progress": min(max(low + (high - low) * float(fraction), 0.0), 1.0)}
        if epochs is not None:
            fields.update(epoch=epoch, epochs=epochs)
        self.write(**fields)


def claim(version_id: int) -> Run | None:
    """Take the version for this run (a new token, attempts + 1); None when there is nothing to do
    (gone, ready or failed: a second delivery of a finished task is a no-op)."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().filter(pk=version_id).first()
        if version is None or version.status != ModelVersion.Status.TRAINING:
            return None
        token = uuid.uuid4().hex
        now = timezone.now()
        ModelVersion.objects.filter(pk=version.pk).update(
            run_token=token,
            attempts=version.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            stage=ModelVersion.Stage.SNAPSHOT,
            progress=0.0,
            epoch=None,
            epochs=None,
        )  # ``error`` keeps the reaper's note ("re-queued, attempt 2 of 3") while it trains again
        version.refresh_from_db()
    return Run(version, token)


def readable_error(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        text = exc.message
    elif isinstance(exc, ValueError | MemoryError):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc} (the worker log has the traceback)"
    return text[:ERROR_CHARS]


def run_training(version_id: int) -> str | None:
    """Train, evaluate and register one version (what ``train_model`` runs). Returns the final
    status, or None when there was nothing to do. Never raises for a training failure: the
    version is marked failed with a readable error instead."""
    run = claim(version_id)
    if run is None:
        return None
    version = run.version
    try:
        with beating(run._mine, training_settings()["STALE_AFTER_SECONDS"]):
            _train(run)
        return ModelVersion.Status.READY
    except Superseded:
        logger.info("model version %s: another run took over; this one stops", version_id)
        return None
    except Exception as exc:
        logger.exception("training of model version %s (%s) failed", version.short_id, version.trainer)
        run._mine().update(
            status=ModelVersion.Status.FAILED,
            error=readable_error(exc),
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            timings=run.timings,
        )
        return ModelVersion.Status.FAILED


def _new_trainer(version, n_classes, data_kind):
    cls = get_trainer(version.trainer)
    kwargs = {"random_state": version.random_state, "data_kind": data_kind, **version.hyperparameters}
    if cls.name == "keras_cnn":
        kwargs["n_threads"] = int(training_settings()["TF_THREADS"])
    return cls(n_classes, **kwargs)


def _folds(y, n_folds, random_state):
    from sklearn.model_selection import KFold, StratifiedKFold

    n_folds = max(2, min(n_folds, y.size))
    present = np.bincount(y)
    smallest = present[present > 0].min() if y.size else 0
    if smallest >= n_folds:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
        return list(splitter.split(np.zeros(y.size), y))
    return list(KFold(n_splits=n_folds, shuffle=True, random_state=random_state).split(np.zeros(y.size)))


def _train(run: Run) -> Path:
    version = run.version
    project = version.project
    config = training_settings()
    started = time.perf_counter()

    # 1. Snapshot (kept across re-runs: a redelivered task trains on the same labels).
    run.enter(ModelVersion.Stage.SNAPSHOT)
    if version.snapshot_id is None:
        snap = build_snapshot(
            project, policy=version.policy, user=version.created_by, random_state=version.random_state
        )
        run.write(snapshot=snap)
        version.snapshot = snap
    snap = version.snapshot
    names = [c["name"] for c in snap.classes]
    k = len(names)

    # 2. Data.
    run.enter(ModelVersion.Stage.LOADING)
    data = load_dataset(snap, project.data_kind)
    train = np.flatnonzero(data.split == Split.TRAIN)
    dev = np.flatnonzero(data.split == Split.DEV)
    test = np.flatnonzero(data.split == Split.TEST)
    if k < 2:
        raise TrainingError("the snapshot has fewer than two classes to learn")
    pool = np.concatenate([train, dev])
    if np.unique(data.y[pool]).size < 2:
        raise TrainingError(
            f"there are {len(pool)} usable train/dev labels, of {np.unique(data.y[pool]).size} class(es): "
            "a classifier needs labels of at least two classes (check the snapshot's left-out counts)"
        )
    use_cv = len(pool) < config["CV_BELOW_LABELS"] or len(dev) == 0 or np.unique(data.y[train]).size < 2
    model = _new_trainer(version, k, project.data_kind)
    size = model.image_size

    # 3. Fit (and, for cross-validation, the out-of-fold predictions that evaluate it).
    run.enter(ModelVersion.Stage.FITTING)
    folds = []
    if use_cv:
        folds = _folds(data.y[pool], int(config["CV_FOLDS"]), version.random_state)
        steps = len(folds) + 1
        eval_rows = pool
        eval_proba = np.zeros((len(pool), k))
        for f, (fit_idx, held_idx) in enumerate(folds):

            def fold_progress(fraction, epoch=None, epochs=None, f=f):
                run.advance((f + fraction) / steps)

            fold_model = _new_trainer(version, k, project.data_kind)
            if np.unique(data.y[pool[fit_idx]]).size < 2:
                raise TrainingError("a cross-validation fold holds labels of one class only; label more items")
            fold_model.fit(data.inputs(pool[fit_idx], size), data.y[pool[fit_idx]], progress=fold_progress)
            eval_proba[held_idx] = fold_model.predict_proba(data.inputs(pool[held_idx], size))
            run.advance((f + 1) / steps, force=True)

        def final_progress(fraction, epoch=None, epochs=None):
            run.advance((steps - 1 + fraction) / steps, epoch, epochs)

        model.fit(data.inputs(pool, size), data.y[pool], progress=final_progress)
        fit_rows = pool
    else:

        def progress(fraction, epoch=None, epochs=None):
            run.advance(fraction, epoch, epochs, force=epochs is not None)

        model.fit(data.inputs(train, size), data.y[train], data.inputs(dev, size), data.y[dev], progress=progress)
        eval_rows = dev
        eval_proba = model.predict_proba(data.inputs(dev, size))
        fit_rows = train

    # 4. Evaluate.
    run.enter(ModelVersion.Stage.EVALUATING)
    report = evaluate_model(version, project, data, model, names, eval_rows, eval_proba, fit_rows, test, folds, config)

    # 5. Save (temporary file, then rename), then register in one conditional UPDATE.
    run.enter(ModelVersion.Stage.SAVING)
    relative = Path(str(project.pk)) / f"{version.short_id}-a{version.attempts}{model.extension}"
    final = artifact_root() / relative
    for leftover in final.parent.glob(f".{version.short_id}-*"):
        leftover.unlink(missing_ok=True)  # temporary files of an earlier, killed run
    model.save(final)
    _save_out_of_sample(version, data.item_ids[eval_rows], eval_proba)
    run.timings[run.stage] = round(time.perf_counter() - run._stage_started, 3)
    run.timings["total"] = round(time.perf_counter() - started, 3)
    report["timings"] = run.timings
    registered = run._mine().update(
        status=ModelVersion.Status.READY,
        stage=ModelVersion.Stage.DONE,
        progress=1.0,
        artifact=str(relative),
        metrics=M.json_safe(report),
        timings=run.timings,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        epoch=getattr(model, "epochs_run_", None),
    )
    if not registered:
        final.unlink(missing_ok=True)
        raise Superseded(version.pk)
    for other in final.parent.glob(f"{version.short_id}-a*"):
        if other != final:
            other.unlink(missing_ok=True)  # artifacts of earlier runs that never registered
    return final


# --------------------------------------------------------------------------------------------
# Evaluation report
# --------------------------------------------------------------------------------------------


def _slice_codes(metadata: list, max_values: int) -> dict[str, tuple[np.ndarray, list[str]]]:
    """{key: (codes (R,), values)} of each scalar metadata key; values named as the quality
    report names them (str(value), JSON for booleans). Keeps the ``max_values`` largest values."""
    import json

    raw: dict[str, dict[int, str]] = {}
    for i, meta in enumerate(metadata):
        for key, value in meta.items():
            if value is None or isinstance(value, dict | list):
                continue
            raw.setdefault(str(key), {})[i] = json.dumps(value) if isinstance(value, bool) else str(value)
    out = {}
    for key, values in sorted(raw.items()):
        names, counts = np.unique(list(values.values()), return_counts=True)
        keep = sorted(names[np.argsort(-counts, kind="stable")[:max_values]].tolist())
        position = {v: j for j, v in enumerate(keep)}
        codes = np.full(len(metadata), -1, dtype=np.int64)
        for i, v in values.items():
            codes[i] = position.get(v, -1)
        out[key] = (codes, keep)
    return out


def _project_slice_shares(project, max_values):
    """{(key, value): share of the project's items}."""
    metadata = list(Item.objects.filter(project=project).values_list("metadata", flat=True).iterator(chunk_size=5000))
    metadata = [m if isinstance(m, dict) else {} for m in metadata]
    n = max(len(metadata), 1)
    shares = {}
    for key, (codes, values) in _slice_codes(metadata, max_values).items():
        counts = np.bincount(codes[codes >= 0], minlength=len(values))
        for j, value in enumerate(values):
            shares[(key, value)] = counts[j] / n
    return shares


def _quality_report(project):
    """The label-quality report for HLP: refreshed if stale (this runs in the worker), else the
    latest stored one; None when there is none."""
    try:
        from annotation.services.quality import refresh_quality_report

        report_id = refresh_quality_report(project.pk)
        if report_id is not None:
            return QualityReport.objects.filter(pk=report_id).first()
    except Exception:
        logger.exception("could not refresh the quality report of %s; using the latest stored one", project)
    return project.quality_reports.order_by("-computed_at", "-pk").first()


def _hlp_by_slice(report_data) -> tuple[dict, dict]:
    """({(key, value): (hlp, basis, scored)}, project-level HLP block) from a stored quality report."""
    by_slice = {}
    if not report_data or not report_data.get("supported", True):
        return by_slice, {}
    for key in report_data.get("slices") or []:
        for row in key.get("values") or []:
            if row.get("scored"):
                by_slice[(key["key"], str(row["value"]))] = (row.get("accuracy"), "ground_truth", row.get("scored"))
            elif row.get("pairwise_agreement") is not None:
                by_slice[(key["key"], str(row["value"]))] = (row["pairwise_agreement"], "pairwise_agreement", 0)
    hlp = report_data.get("hlp") or {}
    return by_slice, {k: hlp.get(k) for k in ("basis", "value", "ci_low", "ci_high", "label", "scored_items")}


def _previous_model(version):
    previous = ModelVersion.objects.filter(project_id=version.project_id, is_promoted=True).exclude(pk=version.pk)
    previous = previous.first() or (
        ModelVersion.objects.ready()
        .filter(project_id=version.project_id, created_at__lte=version.created_at)
        .exclude(pk=version.pk)
        .order_by("-created_at", "-pk")
        .first()
    )
    return previous


def _previous_baseline(version, data, names_ids, eval_rows):
    """The previous model (the current one, else the latest ready one) scored on the same items."""
    previous = _previous_model(version)
    if previous is None:
        return None
    block = {
        "id": previous.short_id,
        "trainer": previous.trainer,
        "promoted": previous.is_promoted,
        "reported_accuracy": (previous.metrics or {}).get("evaluation", {}).get("accuracy"),
        "accuracy": None,
        "n": 0,
    }
    try:
        prev_model = load_model(previous)
        prev_ids = [c["id"] for c in previous.snapshot.classes]
        proba = prev_model.predict_proba(data.inputs(eval_rows, prev_model.image_size))
        predicted = np.array(prev_ids, dtype=np.int64)[proba.argmax(axis=1)] if len(eval_rows) else np.zeros(0)
        truth = np.array(names_ids, dtype=np.int64)[data.y[eval_rows]]
        block.update(accuracy=M.accuracy(truth, predicted), n=len(eval_rows))
    except Exception as exc:
        logger.exception("could not score the previous model %s", previous.short_id)
        block["error"] = readable_error(exc)
    return block


def _top_k(data, rows, proba, names, k):
    """The k most confidently wrong and the k most uncertain of ``rows`` (proba aligned with rows)."""
    y = data.y[rows]

    def entry(j, score_name, score):
        i = int(rows[j])
        pred = int(proba[j].argmax())
        return {
            "item_id": int(data.item_ids[i]),
            "external_id": data.external_ids[i],
            "label": names[int(y[j])],
            "predicted": names[pred],
            "p_predicted": float(proba[j, pred]),
            "p_label": float(proba[j, int(y[j])]),
            score_name: float(score),
            "has_thumbnail": bool(data.has_thumbnail[i]),
        }

    wrong, conf = M.confidently_wrong(y, proba, k)
    unsure, margin = M.most_uncertain(proba, k)
    return {
        "confidently_wrong": [entry(j, "confidence", c) for j, c in zip(wrong.tolist(), conf.tolist(), strict=True)],
        "most_uncertain": [entry(j, "margin", m) for j, m in zip(unsure.tolist(), margin.tolist(), strict=True)],
    }


def evaluate_model(version, project, data, model, names, eval_rows, eval_proba, fit_rows, test, folds, config):
    """The stored metrics of a version: the evaluation on ``eval_rows`` (dev, or out-of-fold
    predictions when ``folds`` were used), baselines, slices, the gap to HLP, top-k lists and
    the test split's accuracy."""
    size = model.image_size
    k = len(names)
    y_eval = data.y[eval_rows]
    headline = M.evaluate(y_eval, eval_proba, n_bins=int(config["CALIBRATION_BINS"]))
    headline.update(
        method="cross_validation" if folds else "dev",
        folds=len(folds) or None,
        evaluated_on="train + dev, out of fold" if folds else "dev",
    )
    pred = eval_proba.argmax(axis=1) if len(eval_rows) else np.zeros(0, dtype=np.int64)

    # Baselines: the majority class of the training labels, and the previous model.
    fit_counts = np.bincount(data.y[fit_rows], minlength=k)
    majority = int(fit_counts.argmax())
    baselines = {
        "majority_class": {"class": names[majority], "accuracy": M.accuracy(y_eval, np.full(y_eval.size, majority))},
        "previous_model": _previous_baseline(version, data, [c["id"] for c in version.snapshot.classes], eval_rows),
    }

    # Per slice, and the gap to HLP.
    slices = []
    max_values = int(config["MAX_SLICE_VALUES"])
    eval_meta = [data.metadata[i] for i in eval_rows.tolist()]
    for key, (codes, values) in _slice_codes(eval_meta, max_values).items():
        count, acc = M.per_slice_accuracy(y_eval, pred, codes, len(values))
        slices.append(
            {
                "key": key,
                "values": [{"value": v, "n": int(count[j]), "accuracy": float(acc[j])} for j, v in enumerate(values)],
            }
        )
    quality = _quality_report(project)
    hlp_slices, hlp_project = _hlp_by_slice(quality.data if quality is not None else None)
    shares = _project_slice_shares(project, max_values)
    gap_names, gap_acc, gap_hlp, gap_share, gap_meta = [], [], [], [], []
    for block in slices:
        for row in block["values"]:
            hlp, basis, scored = hlp_slices.get((block["key"], row["value"]), (None, None, 0))
            gap_names.append(f"{block['key']}={row['value']}")
            gap_acc.append(row["accuracy"])
            gap_hlp.append(np.nan if hlp is None else hlp)
            gap_share.append(shares.get((block["key"], row["value"]), 0.0))
            gap_meta.append(
                {"key": block["key"], "value": row["value"], "n": row["n"], "basis": basis, "scored": scored}
            )
    rows = M.gap_to_hlp(gap_names, gap_acc, gap_hlp, gap_share)
    meta_by_name = dict(zip(gap_names, gap_meta, strict=True))
    for row in rows:
        row.update(meta_by_name[row["slice"]])
    gap = {
        "rows": rows,
        "hlp": hlp_project,
        "quality_report": (
            {"id": quality.pk, "computed_at": quality.computed_at.isoformat()} if quality is not None else None
        ),
        "share_of": "the project's items",
    }

    # Top-k lists: the training data and the evaluation items. Under cross-validation the
    # training rows are the evaluated rows, and their out-of-fold predictions find the label
    # errors that in-sample predictions have memorised away.
    top = int(config["TOP_K"])
    train_proba = model.predict_proba(data.inputs(fit_rows, size))
    top_k = {
        "train": _top_k(data, fit_rows, eval_proba if folds else train_proba, names, top),
        "dev": _top_k(data, eval_rows, eval_proba, names, top),
        "train_predictions": "out of fold" if folds else "in sample",
    }
    train_block = {"n": len(fit_rows), "accuracy": M.accuracy(data.y[fit_rows], train_proba.argmax(axis=1))}

    # The test split: reported once, never used to choose.
    test_block = None
    if len(test):
        test_proba = model.predict_proba(data.inputs(test, size))
        test_block = {"n": len(test), "accuracy": M.accuracy(data.y[test], test_proba.argmax(axis=1))}

    return {
        "schema": 1,
        "classes": names,
        "evaluation": headline,
        "baselines": baselines,
        "slices": slices,
        "gap_to_hlp": gap,
        "top_k": top_k,
        "train": train_block,
        "test": test_block,
        "fit": {"epochs_run": getattr(model, "epochs_run_", None), "image_size": size or None},
    }


def progress_payload(version: ModelVersion) -> dict:
    """The small JSON the pages poll for a version's progress bar. While it trains, the stage label
    carries the reaper's note, if any (its worker was lost and the training was re-queued)."""
    stage_label = version.get_stage_display()
    if version.status == ModelVersion.Status.TRAINING and version.error:
        stage_label = f"{stage_label} · {version.error}"
    return {
        "id": version.short_id,
        "status": version.status,
        "stage": version.stage,
        "stage_label": stage_label,
        "progress": round(version.progress, 4),
        "epoch": version.epoch,
        "epochs": version.epochs,
        "error": version.error,
        "accuracy": version.headline_accuracy,
    }
