"""Where trained models and their evaluation predictions are stored (under ``ARTIFACT_DIR``), and
loading them back. Paths are always resolved inside the artifact folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.conf import settings

from .conf import training_settings
from .errors import TrainingError
from .models import ModelVersion
from .trainers import atomic_write, get_trainer


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
