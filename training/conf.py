"""Training settings (``settings.CONCORD_TRAINING`` over :data:`DEFAULTS`) and the limits every
training module shares."""

from __future__ import annotations

from django.conf import settings

from .models import ModelVersion

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


MAX_SEED = 2**31 - 1  # the random_state column is a 32-bit integer


def training_settings() -> dict:
    """DEFAULTS overridden by ``settings.CONCORD_TRAINING``."""
    return {**DEFAULTS, **getattr(settings, "CONCORD_TRAINING", {})}
