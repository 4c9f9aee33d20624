"""What a bundle is compared with in the field: its predictions on its own dev split, and the
image statistics of its training images (deployment/drift.py says why image statistics).

The dev predictions are made by the bundle's TFLite model through the device runner
(training/device/classify.py, LiteRT, no TensorFlow), the very code a device runs, so a stable
field and the dev split agree on everything but sampling noise. They are computed once per
export (a few hundred images, about a second) and kept in :class:`MonitoringReference`.

Image statistics of the field's inputs and of the training images go through one function,
:func:`image_array` (grayscale, 32 x 32 bilinear, ink = 1 - brightness): what matters is that
both sides are prepared alike, not that it matches the bundle's own preprocessing.
"""

from __future__ import annotations

import numpy as np
from django.core.files.storage import default_storage
from PIL import Image

from training.models import ModelExport, SnapshotLabel

from . import drift
from .monitoring_models import MonitoringReference

STATS_SIZE = 32
REFERENCE_TRAIN_IMAGES = 500  # training images whose statistics stand for the training data


class ReferenceError(Exception):
    """The bundle has no usable reference (no bundle file, no dev or test images)."""


def image_array(path) -> np.ndarray | None:
    """The (32, 32) ink array of an image file, or None when it cannot be read."""
    try:
        with Image.open(path) as im:
            im.draft("L", (128, 128))
            gray = im.convert("L").resize((STATS_SIZE, STATS_SIZE), Image.Resampling.BILINEAR)
            return 1.0 - np.asarray(gray, dtype=np.float64) / 255.0
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def stats_of_files(paths) -> np.ndarray:
    """(N, 5) image statistics of the readable files among ``paths`` (unreadable ones dropped)."""
    arrays = [a for a in (image_array(p) for p in paths) if a is not None]
    if not arrays:
        return np.zeros((0, len(drift.IMAGE_STATISTICS)))
    return drift.image_statistics(np.stack(arrays))


def _media(name: str) -> str:
    return default_storage.path(name)


def class_index(export: ModelExport) -> dict[int, int]:
    """{label class id: position in the bundle's class order} (the snapshot's class list)."""
    return {int(c["id"]): k for k, c in enumerate(export.model_version.snapshot.classes)}


def reference_for(export: ModelExport) -> MonitoringReference:
    """The export's reference, computed on first use (the worker's monitoring task calls this)."""
    existing = MonitoringReference.objects.filter(export=export).first()
    if existing is not None:
        return existing
    from training.device.classify import Bundle, BundleError
    from training.exports import bundle_path

    snapshot = export.model_version.snapshot
    rows = SnapshotLabel.objects.filter(snapshot=snapshot).exclude(item__image="")
    split = "dev" if rows.filter(split="dev").exists() else "test"
    eval_images = list(rows.filter(split=split).order_by("item_id").values_list("item__image", flat=True))
    if not eval_images:
        raise ReferenceError(f"export {export.pk}: its snapshot has no dev or test images to compare the field with")
    try:
        bundle = Bundle(bundle_path(export))
        scores = np.stack([bundle.scores(_media(name)) for name in eval_images])
    except BundleError as exc:
        raise ReferenceError(f"export {export.pk}: {exc}") from None
    k = len(snapshot.classes)
    counts = np.bincount(scores.argmax(axis=1), minlength=k)[:k]
    train = list(rows.filter(split="train").order_by("item_id").values_list("item__image", flat=True))
    rng = np.random.default_rng(export.model_version.random_state)
    if len(train) > REFERENCE_TRAIN_IMAGES:
        train = [train[i] for i in np.sort(rng.choice(len(train), REFERENCE_TRAIN_IMAGES, replace=False))]
    stats = stats_of_files([_media(name) for name in train or eval_images])
    reference, _ = MonitoringReference.objects.get_or_create(
        export=export,
        defaults={
            "split": split,
            "class_counts": counts.tolist(),
            "confidences": [float(x) for x in scores.max(axis=1)],
            "image_stats": stats.round(6).tolist(),
        },
    )
    return reference
