"""What the pages read of a cycle: its progress (the bar, the JSON they poll) and the project's
learning curve. Read-only; the writes are in active_learning/services.py."""

from django.db.models import Count, Q

from training.models import ModelVersion

from .models import Cycle

# Where each stage sits on the cycle's progress bar.
STAGE_SPAN = {
    Cycle.Stage.QUEUED: (0.0, 0.0),
    Cycle.Stage.TRAINING: (0.0, 0.7),
    Cycle.Stage.SCORING: (0.7, 0.93),
    Cycle.Stage.SELECTING: (0.93, 0.98),
    Cycle.Stage.QUEUEING: (0.98, 1.0),
    Cycle.Stage.DONE: (1.0, 1.0),
}


def overall_progress(cycle: Cycle) -> float:
    """0..1 for the progress bar; while training, the model's own progress fills the first span."""
    if cycle.stage == Cycle.Stage.TRAINING and cycle.model_version is not None:
        low, high = STAGE_SPAN[Cycle.Stage.TRAINING]
        return low + (high - low) * cycle.model_version.progress
    return cycle.progress


def progress_payload(cycle: Cycle) -> dict:
    """The small JSON the cycle pages poll (cycle with ``model_version`` selected)."""
    version = cycle.model_version
    stage_label = cycle.get_stage_display()
    if cycle.stage == Cycle.Stage.TRAINING and version is not None and version.status == ModelVersion.Status.TRAINING:
        stage_label = f"Training: {version.get_stage_display().lower()}"
    if cycle.is_active and cycle.error:
        stage_label = f"{stage_label} · {cycle.error}"  # the reaper's note: its worker was lost
    return {
        "id": cycle.pk,
        "number": cycle.number,
        "status": cycle.status,
        "stage": cycle.stage,
        "stage_label": stage_label,
        "progress": round(overall_progress(cycle), 4),
        "error": cycle.error,
        "selected": (cycle.summary or {}).get("selected"),
        "model": version.short_id if version else None,
    }


def learning_curve(project) -> list[dict]:
    """Labels vs the model's evaluated accuracy, one point per finished cycle, oldest first;
    ``field``: how many of the snapshot's labels are on field items (inputs sent back by devices)."""
    field = Q(model_version__snapshot__labels__item__source_name="field")
    cycles = (
        Cycle.objects.filter(project=project, status=Cycle.Status.DONE)
        .select_related("model_version__snapshot")
        .annotate(field_labels=Count("model_version__snapshot__labels", filter=field))
        .order_by("number")
    )
    points = []
    for cycle in cycles:
        version = cycle.model_version
        if version is None or version.snapshot is None or version.headline_accuracy is None:
            continue
        points.append(
            {
                "cycle": cycle.number,
                "labels": version.snapshot.size,
                "accuracy": version.headline_accuracy,
                "field": cycle.field_labels,
            }
        )
    return points
