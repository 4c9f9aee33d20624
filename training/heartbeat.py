"""A heartbeat for long worker runs (training, TFLite export, a cycle's step).

Progress writes already stamp ``heartbeat_at``, but some stretches of a run write nothing for
minutes (building a snapshot, a long Keras epoch, evaluation, the TFLite conversion). While a run
holds its claim, :func:`beating` stamps ``heartbeat_at`` from a small daemon thread every few
seconds, conditional on the run's token, so a stopped heartbeat means the worker process is gone
(SIGKILL, OOM, a lost machine) rather than busy. The reapers (``training/recovery.py``,
``active_learning/recovery.py``) act on that after ``STALE_AFTER_SECONDS``.

The thread has its own database connection and closes it when it stops. It stops by itself when
its update matches no row (the run was superseded, cancelled, finished or re-queued); a failed
update (a locked SQLite file, a dropped connection) is logged and retried at the next beat.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import contextmanager

from django.conf import settings
from django.db import connection
from django.utils import timezone

logger = logging.getLogger(__name__)

DEFAULTS = {
    "HEARTBEAT_SECONDS": 15,  # how often a running task stamps heartbeat_at
    "REAP_EVERY_SECONDS": 60,  # how often Celery beat runs the reapers
    "MAX_ATTEMPTS": 3,  # runs of one piece of work, the first included, before the reaper fails it
}


def worker_settings() -> dict:
    """DEFAULTS overridden by ``settings.CONCORD_WORKER`` (the Celery section of the settings)."""
    return {**DEFAULTS, **getattr(settings, "CONCORD_WORKER", {})}


def interval(stale_after: float) -> float:
    """Seconds between beats: the configured interval, but at least three beats per stale window
    so one slow update never makes a live run look dead."""
    return max(0.5, min(float(worker_settings()["HEARTBEAT_SECONDS"]), float(stale_after) / 3))


@contextmanager
def beating(rows: Callable, stale_after: float):
    """Stamp ``heartbeat_at`` on ``rows()`` (a queryset of the run's own row, filtered by its token
    and running status) every :func:`interval` seconds while the block runs."""
    every = interval(stale_after)
    stop = threading.Event()

    def beat():
        try:
            while not stop.wait(every):
                try:
                    if not rows().update(heartbeat_at=timezone.now()):
                        return  # no longer ours: the run stops at its own next write
                except Exception:
                    logger.warning("heartbeat write failed; retrying in %.0f s", every, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name="concord-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        # Never wait long: the beat may be queued behind a lock this very run holds.
        thread.join(timeout=2)
