"""Retrain-and-sample cycles: launch, the four steps the worker runs, cancel.

:func:`launch` (a request, the CLI) checks the request, creates the project's one active
:class:`~active_learning.models.Cycle` and, once that commits, queues a Celery chain of four
steps (``active_learning/tasks.py``):

1. **train** — snapshot → train → evaluate, by ``training.services.run_training`` on a new
   ModelVersion (its own claims make a redelivered training start over safely);
2. **score** — predict the unlabeled pool in chunks (probabilities and embeddings), plus what the
   error model and diversity need of the labeled set, into a scores file;
3. **select** — ``active_learning.sampling.select_batch`` on the scores file; the batch is kept on
   the cycle in queue order;
4. **queue** — in one transaction: the queue entries, the cycle's selection rows, review requests
   for the SMEs when asked, and ``done``.

Nothing touches the labeling queue before step 4, and step 4 is one transaction: a worker killed
at any step leaves the queue as it was. Tasks are acknowledged late (config/settings.py), so the
killed step is redelivered and resumes from the cycle's stage. While a step runs, a heartbeat
thread stamps the cycle (training/heartbeat.py); when a whole worker process dies, Redis gives
its message back only after the visibility timeout (hours), so the periodic reaper
(active_learning/recovery.py) re-queues a cycle whose heartbeat stopped for ``STALE_AFTER_SECONDS``
from the step it reached, and fails it after ``MAX_ATTEMPTS`` runs; a launch fails a silent cycle
no reaper got to. Each step claims the cycle with a new token and every write is conditional on
it, so a cancelled cycle, or a step another delivery (the broker's or the reaper's) took over,
stops at its next write, and the batch is written once.

The pool: the project's train-split items with no current label, no gold, not finished, not in
the model's snapshot, and not held by a queue entry of another kind (an SME's send-back). Dev and
test items are left to the random order so that the evaluation stays unbiased.
"""

from __future__ import annotations

import logging
import time
import uuid

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from annotation import errors
from annotation.access import acting_user
from annotation.errors import DomainError
from annotation.models import Annotation, GoldLabel, Item, Project, QueueEntry, Split
from annotation.services.review import request_review
from config import queueing
from training import services as training
from training.heartbeat import beating
from training.models import ModelVersion, SnapshotLabel
from training.trainers import atomic_write

from . import error_report, sampling
from . import restriction as R
from .error_model import Earlier
from .models import Cycle, CycleSelection

# The read side lives in progress.py; the pages and the API reach it through services too.
from .progress import STAGE_SPAN, learning_curve, overall_progress, progress_payload  # noqa: F401

logger = logging.getLogger(__name__)

DEFAULTS = {
    "TRAINER": "sklearn_logreg",
    "BATCH_SIZE": 100,
    "MAX_BATCH": 5000,
    "SCORE_CHUNK": 512,  # pool items predicted at a time
    "MAX_CENTERS": 5000,  # labeled items diversity measures distance to (a seeded sample beyond)
    "STALE_AFTER_SECONDS": 180,  # no heartbeat for this long: the worker is gone (see recovery.py)
    "UNCLAIMED_AFTER_SECONDS": 3600,  # never picked up by a worker for this long: failed at the next launch
}
# Cycle entries come after an SME's send-back (1e6) and before everything else; a batch keeps its order.
PRIORITY_BASE = 1000.0
PROGRESS_EVERY_SECONDS = 0.5


class CycleError(DomainError):
    """A cycle request the domain refuses (bad strategy, batch size, trainer...)."""


class CycleConflict(CycleError, errors.Conflict):
    """The project already has a cycle running, or the cycle is not in a state that allows this."""


class Stopped(Exception):
    """The cycle was cancelled, failed or taken over by another delivery: this step stops."""


def cycle_settings() -> dict:
    return {**DEFAULTS, **getattr(settings, "CONCORD_ACTIVE_LEARNING", {})}


# --------------------------------------------------------------------------------------------
# Launch and cancel
# --------------------------------------------------------------------------------------------


def check_request(project, *, strategy, batch_size, trainer, weights, pool_restriction=None) -> dict:
    """The cycle's checked settings, or CycleError naming the field. ``weights`` is the mix's
    ``"name:weight,..."`` text (see sampling.parse_weights); None or "" for the default."""
    config = cycle_settings()
    if strategy not in sampling.STRATEGIES:
        raise CycleError(f"unknown strategy {strategy!r}; choose one of {', '.join(sampling.STRATEGIES)}", "strategy")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= config["MAX_BATCH"]:
        raise CycleError(f"batch size must be a whole number from 1 to {config['MAX_BATCH']}", "batch_size")
    trainer = trainer or config["TRAINER"]
    try:
        training.check_trainer(project, trainer)
    except training.TrainingError as exc:
        raise CycleError(exc.message, exc.field) from exc
    pairs = []
    if strategy == "mix":
        try:
            pairs = sampling.parse_weights(weights)
        except ValueError as exc:
            raise CycleError(str(exc), "weights") from exc
    elif weights:
        raise CycleError("weights are for the mix strategy only", "weights")
    try:  # "label more like this": the pool cut to a slice or a tag (restriction.py)
        gold = GoldLabel.objects.filter(item=OuterRef("pk"))
        unlabeled = _unlabeled(project).filter(split=Split.TRAIN).exclude(Exists(gold))
        restricted = R.check(project, pool_restriction, batch_size=batch_size, unlabeled=unlabeled)
    except R.RestrictionError as exc:
        raise CycleError(exc.message, exc.field) from exc
    return {"strategy": strategy, "batch_size": batch_size, "trainer": trainer, "weights": [list(p) for p in pairs],
            "pool_restriction": restricted}  # fmt: skip


def launch(
    project, *, strategy, batch_size, trainer=None, weights=None, review_top_k=False, user=None, enqueue=True,
    pool_restriction=None,
) -> Cycle:  # fmt: skip
    """Create the project's next cycle and queue its chain on commit (unless ``enqueue`` is false:
    ``run_cycle --sync`` runs the steps itself). Raises CycleConflict when a cycle of the project
    is still queued or running (after failing any whose worker went silent)."""
    fields = check_request(
        project, strategy=strategy, batch_size=batch_size, trainer=trainer, weights=weights,
        pool_restriction=pool_restriction,
    )  # fmt: skip
    fail_stale_cycles(project)
    try:
        with transaction.atomic():
            Project.objects.select_for_update().filter(pk=project.pk).first()  # one launch at a time
            running = Cycle.objects.filter(project=project, status__in=Cycle.ACTIVE).first()
            if running is not None:
                raise _busy(running)
            number = (Cycle.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
            cycle = Cycle.objects.create(
                project=project,
                number=number,
                review_top_k=bool(review_top_k),
                random_state=int(training.training_settings()["RANDOM_STATE"]) + number,
                created_by=acting_user(user),
                **fields,
            )
            cycle_id = cycle.pk
            if enqueue:
                transaction.on_commit(lambda: queue_chain(cycle_id))
    except IntegrityError:
        running = Cycle.objects.filter(project=project, status__in=Cycle.ACTIVE).first()
        raise _busy(running) from None
    return cycle


def _busy(running) -> CycleConflict:
    if running is None:
        return CycleConflict("another cycle of this project was launched at the same moment", "project")
    return CycleConflict(
        f"cycle {running.number} of this project is still {running.get_status_display().lower()} "
        f"({running.get_stage_display().lower()}); wait for it to finish or cancel it",
        "project",
    )


def queue_chain(cycle_id: int, from_stage=Cycle.Stage.QUEUED) -> None:
    """Queue the chain (the steps from ``from_stage`` on: the reaper resumes a cycle where it
    stopped); if the broker refuses, the cycle fails with that reason."""
    from celery import chain

    queue = training.training_settings()["QUEUE"] or None
    first = STEP_STAGES.index(from_stage) if from_stage in STEP_STAGES else 0
    try:
        steps = [queueing.task(name) for name in queueing.CYCLE_STEPS[first:]]
        chain(*(step.si(cycle_id).set(queue=queue) for step in steps)).apply_async()
    except Exception as exc:
        logger.exception("could not queue cycle %s", cycle_id)
        Cycle.objects.filter(pk=cycle_id, status__in=Cycle.ACTIVE).update(
            status=Cycle.Status.FAILED,
            error=f"Could not queue the cycle (is the Celery broker reachable?): {exc}"[: training.ERROR_CHARS],
            finished_at=timezone.now(),
        )


def cancel(cycle: Cycle, *, user=None) -> Cycle:
    """Stop a queued or running cycle: its steps stop at their next write and the queue is left as
    it was; a model it is training stops too (and is marked failed). Raises CycleConflict when the
    cycle has finished."""
    with transaction.atomic():
        locked = Cycle.objects.select_for_update().get(pk=cycle.pk)
        if not locked.is_active:
            raise CycleConflict(
                f"cycle {locked.number} is {locked.status}; only a queued or running cycle can be cancelled"
            )
        who = acting_user(user)
        Cycle.objects.filter(pk=cycle.pk).update(
            status=Cycle.Status.CANCELLED,
            error=f"Cancelled by {who.get_username()}." if who else "Cancelled.",
            finished_at=timezone.now(),
        )
        if locked.model_version_id:
            ModelVersion.objects.filter(pk=locked.model_version_id, status=ModelVersion.Status.TRAINING).update(
                status=ModelVersion.Status.FAILED,
                error=f"Cancelled with cycle {locked.number}.",
                finished_at=timezone.now(),
            )
    _remove_scores(locked)
    cycle.refresh_from_db()
    return cycle


def stale_limit():
    """Heartbeats older than this are a lost worker's."""
    return timezone.now() - timezone.timedelta(seconds=int(cycle_settings()["STALE_AFTER_SECONDS"]))


def stale_cycles(limit, unclaimed_limit=None):
    """Active cycles with no word from a worker since ``limit``: neither from the cycle's steps nor
    from the model it is training. Never started ones count from their creation against
    ``unclaimed_limit`` (default ``limit``): a cycle may wait behind long work in the queue."""
    quiet = Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True, created_at__lt=unclaimed_limit or limit)
    model_quiet = (
        Q(model_version__isnull=True)
        | ~Q(model_version__status=ModelVersion.Status.TRAINING)
        | Q(model_version__heartbeat_at__lt=limit)
        | Q(model_version__heartbeat_at__isnull=True)
    )
    return Cycle.objects.filter(status__in=Cycle.ACTIVE).filter(quiet & model_quiet)


def fail_stale_cycles(project) -> int:
    """Fail the project's active cycles with no word from a worker for ``STALE_AFTER_SECONDS``
    (what a launch does when no reaper re-queued them first)."""
    unclaimed_limit = timezone.now() - timezone.timedelta(seconds=int(cycle_settings()["UNCLAIMED_AFTER_SECONDS"]))
    stale = stale_cycles(stale_limit(), unclaimed_limit).filter(project=project)
    count = 0
    for cycle in stale:
        count += Cycle.objects.filter(pk=cycle.pk, status__in=Cycle.ACTIVE).update(
            status=Cycle.Status.FAILED,
            error=(
                f"No word from the worker for too long while {cycle.get_stage_display().lower()}: it was stopped "
                "or lost. The queue was not changed. Launch a new cycle."
            ),
            finished_at=timezone.now(),
        )
        _remove_scores(cycle)
    return count


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


class Step:
    """One delivery's claim on a cycle at one stage: every write is conditional on its token."""

    def __init__(self, cycle: Cycle, token: str):
        self.cycle = cycle
        self.token = token
        self.started = time.perf_counter()
        self.last_write = 0.0

    def _mine(self):
        return Cycle.objects.filter(pk=self.cycle.pk, run_token=self.token, status=Cycle.Status.RUNNING)

    def write(self, **fields):
        if not self._mine().update(heartbeat_at=timezone.now(), **fields):
            raise Stopped(self.cycle.pk)
        self.last_write = time.perf_counter()

    def advance(self, fraction: float):
        """Progress within the stage, written at most every half second."""
        if time.perf_counter() - self.last_write < PROGRESS_EVERY_SECONDS:
            return
        low, high = STAGE_SPAN[self.cycle.stage]
        self.write(progress=min(max(low + (high - low) * float(fraction), 0.0), 1.0))

    def finish(self, next_stage, **fields):
        """Record this stage's time and move on to ``next_stage``."""
        timings = {**self.cycle.timings, self.cycle.stage: round(time.perf_counter() - self.started, 3)}
        self.write(stage=next_stage, progress=STAGE_SPAN[next_stage][0], timings=timings, **fields)

    def fail(self, message: str):
        self._mine().update(
            status=Cycle.Status.FAILED, error=message[: training.ERROR_CHARS], finished_at=timezone.now()
        )


def claim(cycle_id: int, stage, *, allowed_from) -> Step | None:
    """Take the cycle for the step of ``stage`` when it stands at one of ``allowed_from``; None when
    there is nothing for this step to do (finished, cancelled, or already past this stage)."""
    with transaction.atomic():
        cycle = Cycle.objects.select_for_update().filter(pk=cycle_id).first()
        if cycle is None or not cycle.is_active or cycle.stage not in allowed_from:
            return None
        token = uuid.uuid4().hex
        now = timezone.now()
        fields = {"run_token": token, "attempts": cycle.attempts + 1, "status": Cycle.Status.RUNNING,
                  "stage": stage, "heartbeat_at": now, "started_at": cycle.started_at or now}  # fmt: skip
        if cycle.stage != stage:
            fields["progress"] = STAGE_SPAN[stage][0]
        Cycle.objects.filter(pk=cycle.pk).update(**fields)
        cycle.refresh_from_db()
    return Step(cycle, token)


def _run(step: Step | None, body) -> str | None:
    """Run one step's body; a failure marks the cycle failed with a readable reason."""
    if step is None:
        return None
    try:
        with beating(step._mine, cycle_settings()["STALE_AFTER_SECONDS"]):
            return body(step)
    except Stopped:
        logger.info("cycle %s stopped (cancelled, failed or taken over) during %s", step.cycle.pk, step.cycle.stage)
        return None
    except Exception as exc:
        logger.exception("cycle %s failed while %s", step.cycle.pk, step.cycle.stage)
        step.fail(f"{step.cycle.get_stage_display()} failed: {training.readable_error(exc)}")
        _remove_scores(step.cycle)
        return Cycle.Status.FAILED


def train_step(cycle_id: int) -> str | None:
    """Snapshot, train and evaluate the cycle's model (a new ModelVersion, trained here)."""
    step = claim(cycle_id, Cycle.Stage.TRAINING, allowed_from=(Cycle.Stage.QUEUED, Cycle.Stage.TRAINING))

    def body(step):
        cycle = step.cycle
        if cycle.model_version_id is None:
            with transaction.atomic():
                version = training.create_version(
                    cycle.project, trainer=cycle.trainer, user=cycle.created_by, random_state=cycle.random_state
                )
                step.write(model_version=version)
        else:
            version = cycle.model_version
        training.run_training(version.pk)
        version.refresh_from_db()
        if version.status == ModelVersion.Status.FAILED:
            step.fail(f"Training model {version.short_id} failed: {version.error}")
            return Cycle.Status.FAILED
        if version.status == ModelVersion.Status.TRAINING:
            step.write()  # raises Stopped unless this delivery still holds the cycle
            raise RuntimeError(f"model {version.short_id} is still training in another delivery")
        step.finish(Cycle.Stage.SCORING)
        return Cycle.Stage.SCORING

    return _run(step, body)


def _unlabeled(project):
    """The project's items a cycle may queue: not finished, no current label, and not held by a
    queue entry of another kind (an SME's send-back)."""
    current = Annotation.objects.filter(item=OuterRef("pk"), is_current=True)
    held = QueueEntry.objects.filter(item=OuterRef("pk"), is_active=True, cycle_selection__isnull=True)
    return Item.objects.filter(project=project, queue_done=False).exclude(Exists(current)).exclude(Exists(held))


def pool_items(project, version: ModelVersion, restriction=None):
    """Ids of the unlabeled pool (see the module docstring), in id order, cut to the cycle's
    slice or tag when it has one (restriction.py)."""
    gold = GoldLabel.objects.filter(item=OuterRef("pk"))
    snapshot = SnapshotLabel.objects.filter(item=OuterRef("pk"), snapshot_id=version.snapshot_id)
    return (
        R.filter_items(_unlabeled(project), project, restriction)
        .filter(split=Split.TRAIN)
        .exclude(Exists(gold))
        .exclude(Exists(snapshot))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _predict(model, item_ids, data_kind, random_state, step):
    """(proba (N, K), embedding (N, <= 256) float32) of the items, a chunk at a time."""
    chunk = int(cycle_settings()["SCORE_CHUNK"])
    probas, embeddings = [], []
    for start in range(0, len(item_ids), chunk):
        inputs = training.read_inputs(item_ids[start : start + chunk], data_kind, model.image_size)
        probas.append(model.predict_proba(inputs))
        embeddings.append(sampling.reduce_dim(model.embed(inputs), random_state=random_state))
        step.advance(min(start + chunk, len(item_ids)) / len(item_ids))
    if not probas:
        return np.zeros((0, model.n_classes)), np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(probas), np.concatenate(embeddings)


def scores_path(cycle: Cycle):
    return training.stored_file(f"{cycle.project_id}/cycles/cycle-{cycle.pk}-scores.npz", f"cycle {cycle.number}")


def _remove_scores(cycle: Cycle) -> None:
    try:
        scores_path(cycle).unlink(missing_ok=True)
    except (OSError, training.TrainingError):
        logger.warning("could not remove the scores file of cycle %s", cycle.pk)


def score_step(cycle_id: int) -> str | None:
    """Predict the pool and the labeled items the error model and diversity need; write them to
    the cycle's scores file (temporary file, then rename)."""
    step = claim(cycle_id, Cycle.Stage.SCORING, allowed_from=(Cycle.Stage.SCORING,))

    def body(step):
        cycle = step.cycle
        version = cycle.model_version
        project = cycle.project
        model = training.load_model(version)
        seed = cycle.random_state
        pool = np.array(list(pool_items(project, version, cycle.pool_restriction).iterator(10_000)), dtype=np.int64)
        anchors = R.anchor_ids(project, cycle.pool_restriction)  # "nearest to a tag": the tagged items

        # The labeled side: the model's out-of-sample predictions (what the error model learns
        # from) and a seeded sample of every labeled item (the centers diversity keeps away from).
        oos_ids, oos_proba = training.out_of_sample(version)
        index = {c["id"]: i for i, c in enumerate(version.snapshot.classes)}
        labels = dict(SnapshotLabel.objects.filter(snapshot=version.snapshot).values_list("item_id", "label_class_id"))
        oos_y = np.array([index[labels[int(pk)]] for pk in oos_ids], dtype=np.int64)
        # Labels per class (the mix's cold start lasts until every class has a few).
        labelled = np.array([index[c] for c in labels.values()], dtype=np.int64)
        class_counts = np.bincount(labelled, minlength=len(index))
        centers = np.array(sorted(labels), dtype=np.int64)
        max_centers = int(cycle_settings()["MAX_CENTERS"])
        if centers.size > max_centers:
            centers = np.sort(np.random.default_rng(seed).choice(centers, max_centers, replace=False))

        # Earlier cycles' picks labelled since, as their cycle's model scored them: more held-out
        # rows for the error model, at no extra fit.
        earlier_ids, earlier_uncertainty, earlier_wrong = error_report.labelled_earlier_picks(cycle)

        # One pass over the images: each labeled item once (the out-of-sample rows and the
        # earlier picks are labeled items too), then the pool.
        labeled_ids = np.union1d(np.union1d(oos_ids, centers), earlier_ids)
        everything = np.concatenate([labeled_ids, pool, anchors])
        proba, features = _predict(model, everything, project.data_kind, seed, step)
        oos_features = features[np.searchsorted(labeled_ids, oos_ids)]
        center_features = features[np.searchsorted(labeled_ids, centers)]
        earlier_features = features[np.searchsorted(labeled_ids, earlier_ids)]
        in_pool = slice(len(labeled_ids), len(labeled_ids) + len(pool))
        pool_proba, pool_features = proba[in_pool], features[in_pool]
        if anchors.size:  # "nearest to a tag": only the k pool items closest to the tagged ones stay
            keep = R.nearest_rows(pool_features, features[in_pool.stop :], cycle.pool_restriction["nearest"])
            pool, pool_proba, pool_features = pool[keep], pool_proba[keep], pool_features[keep]
        path = scores_path(cycle)
        arrays = {
            "pool_ids": pool, "pool_proba": pool_proba, "pool_features": pool_features, "labeled_ids": oos_ids,
            "labeled_proba": oos_proba, "labeled_y": oos_y, "labeled_features": oos_features,
            "center_features": center_features, "earlier_features": earlier_features,
            "earlier_uncertainty": earlier_uncertainty, "earlier_wrong": earlier_wrong, "class_counts": class_counts,
        }  # fmt: skip
        atomic_write(path, lambda tmp: np.savez(tmp, **arrays))
        step.finish(Cycle.Stage.SELECTING, pool_size=len(pool))
        return Cycle.Stage.SELECTING

    return _run(step, body)


def select_step(cycle_id: int) -> str | None:
    """Choose the batch from the scores file; keep it on the cycle in queue order."""
    step = claim(cycle_id, Cycle.Stage.SELECTING, allowed_from=(Cycle.Stage.SELECTING,))

    def body(step):
        cycle = step.cycle
        with np.load(scores_path(cycle)) as scores:
            s = {key: scores[key] for key in scores.files}
        labeled = None
        earlier = None
        if len(s.get("earlier_wrong", ())):  # scores files written before this had none
            earlier = Earlier(s["earlier_features"], s["earlier_uncertainty"], s["earlier_wrong"])
        if len(s["labeled_ids"]) or len(s["center_features"]) or earlier is not None:
            # With no held-out rows of its own the error model falls back to margin, and says so.
            labeled = sampling.Labeled(
                features=s["labeled_features"], proba=s["labeled_proba"], y=s["labeled_y"],
                centers=s["center_features"] if len(s["center_features"]) else None, earlier=earlier,
                class_counts=s.get("class_counts"),
            )  # fmt: skip
        selection = sampling.select_batch(
            cycle.strategy,
            min(cycle.batch_size, len(s["pool_ids"])),
            pool_proba=s["pool_proba"],
            pool_features=s["pool_features"] if len(s["pool_ids"]) else None,
            labeled=labeled,
            weights=[tuple(w) for w in cycle.weights] or sampling.DEFAULT_MIX,
            random_state=cycle.random_state,
        )
        chosen = [
            [int(s["pool_ids"][selection.indices[j]]), selection.strategies[j], float(selection.scores[j])]
            for j in sampling.interleave(selection).tolist()
        ]
        # The model's prediction and the error model's chance of "wrong" per item, for the cycle
        # page's check against the labels given later (error_report.py); queue_step keeps it.
        class_ids = [c["id"] for c in cycle.model_version.snapshot.classes]
        summary = error_report.selection_summary(selection, s["pool_ids"], s["pool_proba"], class_ids)
        step.finish(Cycle.Stage.QUEUEING, selection=chosen, summary=summary)
        return Cycle.Stage.QUEUEING

    return _run(step, body)


def queue_step(cycle_id: int) -> str | None:
    """Write the batch to the labeling queue and finish the cycle, all in one transaction."""
    step = claim(cycle_id, Cycle.Stage.QUEUEING, allowed_from=(Cycle.Stage.QUEUEING,))

    def body(step):
        with transaction.atomic():
            cycle = Cycle.objects.select_for_update().get(pk=step.cycle.pk)
            if cycle.run_token != step.token or cycle.status != Cycle.Status.RUNNING:
                raise Stopped(cycle.pk)
            summary = {**(cycle.summary or {}), **write_batch(cycle)}  # the select step's facts stay
            timings = {**cycle.timings, cycle.stage: round(time.perf_counter() - step.started, 3)}
            step.write(
                status=Cycle.Status.DONE, stage=Cycle.Stage.DONE, progress=1.0, summary=summary,
                timings=timings, finished_at=timezone.now(),
            )  # fmt: skip
        _remove_scores(cycle)
        return Cycle.Status.DONE

    return _run(step, body)


# The chain's steps in order: tasks.py queues them; ``run_cycle --sync`` runs them in-process.
STEPS = (train_step, score_step, select_step, queue_step)
# The stage each step claims, in the same order (where a re-queued chain starts).
STEP_STAGES = (Cycle.Stage.TRAINING, Cycle.Stage.SCORING, Cycle.Stage.SELECTING, Cycle.Stage.QUEUEING)


def write_batch(cycle: Cycle) -> dict:
    """The queue entries and selection rows of the cycle's batch (call inside its transaction).

    Entries an earlier cycle wrote and nobody has finished give way to the new batch (a newer
    model chose it); items labeled, finished or sent back since they were scored are skipped."""
    project = cycle.project
    wanted = [int(row[0]) for row in cycle.selection]
    open_ids = set(_unlabeled(project).filter(pk__in=wanted).values_list("pk", flat=True))
    superseded = QueueEntry.objects.filter(project=project, is_active=True, cycle_selection__isnull=False).update(
        is_active=False
    )
    rows = [row for row in cycle.selection if int(row[0]) in open_ids]
    n = len(rows)
    entries = QueueEntry.objects.bulk_create(
        QueueEntry(
            project=project,
            item_id=int(item_id),
            priority=PRIORITY_BASE + (n - position),
            strategy=strategy,
            score=score,
            reason=f"cycle {cycle.number}: {strategy} score {score:.3g}"[:200],
        )
        for position, (item_id, strategy, score) in enumerate(rows)
    )
    CycleSelection.objects.bulk_create(
        CycleSelection(cycle=cycle, item_id=e.item_id, position=j, strategy=e.strategy, score=e.score, queue_entry=e)
        for j, e in enumerate(entries)
    )
    by_strategy = {}
    for name in dict.fromkeys(row[1] for row in rows):
        scores = np.array([row[2] for row in rows if row[1] == name], dtype=float)
        by_strategy[name] = {
            "n": int(scores.size), "min": float(scores.min()), "max": float(scores.max()), "mean": float(scores.mean())
        }  # fmt: skip
    reviewed = 0
    version = cycle.model_version
    if cycle.review_top_k:
        wrong = (version.metrics or {}).get("top_k", {}).get("train", {}).get("confidently_wrong", [])
        if wrong:
            reviewed = request_review(
                project,
                [row["item_id"] for row in wrong],
                requested_by=cycle.created_by,
                reason=f"cycle {cycle.number}: model {version.short_id} is confidently wrong on this training label",
            )
    evaluation = (version.metrics or {}).get("evaluation", {})
    return {
        "selected": n,
        "skipped": len(cycle.selection) - n,
        "superseded_entries": superseded,
        "by_strategy": by_strategy,
        "review_requests": reviewed,
        "labels": version.snapshot.size if version.snapshot_id else None,
        "accuracy": evaluation.get("accuracy"),
        "evaluated_on": evaluation.get("evaluated_on"),
    }
