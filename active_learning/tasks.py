"""Celery tasks of a cycle: its four steps, chained by ``services.enqueue``. Each takes the cycle's
id, resumes from the cycle's stage and is safe to run twice (see active_learning/services.py)."""

import os

from celery import shared_task

# Silence TensorFlow's start-up noise before a Keras cycle imports it in this worker.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@shared_task(name="active_learning.train_step")
def train_step(cycle_id: int) -> str | None:
    """Snapshot, train and evaluate the cycle's model."""
    from .services import train_step

    return train_step(cycle_id)


@shared_task(name="active_learning.score_step")
def score_step(cycle_id: int) -> str | None:
    """Predict the unlabeled pool (in chunks) into the cycle's scores file."""
    from .services import score_step

    return score_step(cycle_id)


@shared_task(name="active_learning.select_step")
def select_step(cycle_id: int) -> str | None:
    """Choose the batch by the cycle's strategy."""
    from .services import select_step

    return select_step(cycle_id)


@shared_task(name="active_learning.queue_step")
def queue_step(cycle_id: int) -> str | None:
    """Write the batch to the labeling queue and finish the cycle, in one transaction."""
    from .services import queue_step

    return queue_step(cycle_id)


STEPS = (train_step, score_step, select_step, queue_step)


@shared_task(name="active_learning.reap")
def reap() -> dict:
    """Re-queue cycles whose worker stopped responding from the step they reached, or fail them
    after ``MAX_ATTEMPTS`` runs (active_learning/recovery.py). Celery beat runs it."""
    from .recovery import reap

    return reap()
