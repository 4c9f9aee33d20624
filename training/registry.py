"""The model registry: checking and creating versions (:func:`start_training` queues their run on
commit), failing versions whose worker went silent, and :func:`promote` / :func:`rollback` of the
project's current model, each recorded as a Promotion."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from annotation.access import acting_user
from annotation.models import Project
from config import queueing

from . import side_by_side
from .conf import ERROR_CHARS, MAX_SEED, training_settings
from .datasets import check_policy
from .errors import Conflict, TrainingError, checked_note
from .models import ModelVersion, Promotion
from .trainers import TRAINERS, check_hyperparameters

logger = logging.getLogger(__name__)


def trainer_choices(project) -> list[tuple[str, str]]:
    """(name, label) of the trainers that can learn this project's data."""
    return [(name, cls.label) for name, cls in TRAINERS.items() if project.data_kind in cls.data_kinds]


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
    queue_or_fail(queueing.TRAIN_MODEL, version_id, ModelVersion, running=ModelVersion.Status.TRAINING, what="training")


def queue_or_fail(task_name: str, pk: int, model, *, running, what: str) -> None:
    """Queue the task ``task_name(pk)``; if the broker refuses, the row (a ModelVersion or ModelExport still
    `running`) is marked failed with the reason, instead of waiting for a task that never comes."""
    try:
        queueing.task(task_name).apply_async((pk,), queue=training_settings()["QUEUE"] or None)
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
    current model again changes nothing and returns None.

    A model not shown to beat the majority-class baseline and the current model beyond noise
    (training/side_by_side.py: McNemar's test on the shared evaluation items) is promoted only
    with a reason in ``note``; without one, TrainingError on ``note`` names the concerns."""
    Project.objects.select_for_update().filter(pk=version.project_id).first()  # one change at a time
    version.refresh_from_db()
    if version.status != ModelVersion.Status.READY:
        raise Conflict(f"model {version.short_id} is {version.status}; only a ready model can be promoted")
    current = ModelVersion.objects.filter(project_id=version.project_id, is_promoted=True).first()
    if current is not None and current.pk == version.pk:
        return None
    note = checked_note(note)
    concerns = side_by_side.verdict(version, current)["concerns"]
    if concerns and not note:
        raise TrainingError("A reason is required to promote this model. " + " ".join(concerns), "note")
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
