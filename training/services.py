"""The training app's services, as the rest of Concord calls them: a façade over the modules that
hold them, one concern each.

- :mod:`training.conf` — settings (``CONCORD_TRAINING`` over its defaults) and shared limits.
- :mod:`training.errors` — ``TrainingError``, ``Conflict``, ``Superseded``; notes and error texts.
- :mod:`training.artifacts` — where models and their evaluation predictions are stored; loading them.
- :mod:`training.datasets` — the snapshot policy, building snapshots, reading their rows as arrays.
- :mod:`training.registry` — creating and queueing versions, failing silent ones, promote, roll back.
- :mod:`training.runs` — a worker's claim on a version and the training run with its progress.
- :mod:`training.evaluation` — the evaluation report (HLP gap, previous model, baselines, top-k).

Code outside those modules (other apps, the reapers, commands, tests) imports from here, and the
reapers call ``services.enqueue`` / the cycles ``services.read_inputs`` through this module, so a
test that replaces a name here replaces what they call. Nothing is defined here.
"""

from .artifacts import artifact_path, artifact_root, load_model, out_of_sample, out_of_sample_path, stored_file
from .conf import (
    CONSENSUS_METHODS,
    DEFAULTS,
    ERROR_CHARS,
    MAX_SEED,
    PROGRESS_EVERY_SECONDS,
    STAGE_SPAN,
    training_settings,
)
from .datasets import ClassIndex, Dataset, build_snapshot, check_policy, class_index, load_dataset, read_inputs
from .errors import MAX_NOTE_CHARS, Conflict, Superseded, TrainingError, checked_note, readable_error
from .evaluation import evaluate_model
from .registry import (
    check_trainer,
    create_version,
    enqueue,
    fail_stale_versions,
    promote,
    queue_or_fail,
    rollback,
    stale_limit,
    start_training,
    trainer_choices,
)
from .runs import Run, claim, progress_payload, run_training
from .trainers import check_hyperparameters

__all__ = [
    "CONSENSUS_METHODS",
    "DEFAULTS",
    "ERROR_CHARS",
    "MAX_NOTE_CHARS",
    "MAX_SEED",
    "PROGRESS_EVERY_SECONDS",
    "STAGE_SPAN",
    "ClassIndex",
    "Conflict",
    "Dataset",
    "Run",
    "Superseded",
    "TrainingError",
    "artifact_path",
    "artifact_root",
    "build_snapshot",
    "check_hyperparameters",
    "check_policy",
    "check_trainer",
    "checked_note",
    "claim",
    "class_index",
    "create_version",
    "enqueue",
    "evaluate_model",
    "fail_stale_versions",
    "load_dataset",
    "load_model",
    "out_of_sample",
    "out_of_sample_path",
    "progress_payload",
    "promote",
    "queue_or_fail",
    "read_inputs",
    "readable_error",
    "rollback",
    "run_training",
    "stale_limit",
    "start_training",
    "stored_file",
    "trainer_choices",
    "training_settings",
]
