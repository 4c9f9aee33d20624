"""Retrain-and-sample cycles and the batch each one chose.

A :class:`Cycle` trains a model (a training ModelVersion), scores the project's unlabeled pool with
it, selects a batch by strategy and finally writes the batch to the labeling queue
(``annotation.QueueEntry``) together with its :class:`CycleSelection` rows, in one transaction.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from annotation.models import Item, Project, QueueEntry
from training.models import ModelVersion

STRATEGY_CHOICES = [
    ("mix", "Mix (weighted)"),
    ("entropy", "Entropy"),
    ("margin", "Margin"),
    ("least_confidence", "Least confidence"),
    ("error_model", "Error model"),
    ("diversity", "Diversity (k-center)"),
    ("random", "Random"),
]


class Cycle(models.Model):
    """One retrain-and-sample cycle of a project; at most one is queued or running per project."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Stage(models.TextChoices):
        QUEUED = "queued", "Queued"
        TRAINING = "training", "Training and evaluating"
        SCORING = "scoring", "Scoring the pool"
        SELECTING = "selecting", "Selecting the batch"
        QUEUEING = "queueing", "Writing the queue"
        DONE = "done", "Done"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="cycles")
    number = models.PositiveIntegerField(help_text="1, 2, 3... within the project.")
    strategy = models.CharField(max_length=20, choices=STRATEGY_CHOICES)
    weights = models.JSONField(default=list, blank=True, help_text="The mix's [[strategy, weight], ...].")
    batch_size = models.PositiveIntegerField()
    trainer = models.CharField(max_length=40)
    random_state = models.PositiveIntegerField(default=0)
    pool_restriction = models.JSONField(
        null=True,
        blank=True,
        help_text='Only these unlabeled items are scored: {"kind": "slice", "key", "value"}, {"kind": "tag", "tag"} '
        'or {"kind": "tag", "tag", "nearest": k} (the k nearest to the tagged items in the model\'s embedding). '
        "See active_learning/restriction.py.",
    )
    review_top_k = models.BooleanField(
        default=False, help_text="Also send the model's confidently wrong training items to the SME queue."
    )
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="cycles"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1 for the progress bar (see services.STAGE_SPAN).")
    error = models.TextField(blank=True)
    pool_size = models.PositiveIntegerField(null=True, blank=True, help_text="Unlabeled items scored.")
    selection = models.JSONField(
        default=list, blank=True, help_text="The chosen [[item id, strategy, score], ...] in queue order."
    )
    summary = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per stage.")
    attempts = models.PositiveIntegerField(default=0, help_text="Steps a worker has started.")
    run_token = models.CharField(max_length=32, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from the worker.")
    recoveries = models.PositiveIntegerField(
        default=0, help_text="Times the reaper re-queued it after its worker stopped responding."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="cycle_number_per_project"),
            models.UniqueConstraint(
                fields=["project"], condition=Q(status__in=["queued", "running"]), name="cycle_one_active_per_project"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed", "cancelled"]), name="cycle_status_valid"
            ),
            models.CheckConstraint(condition=Q(batch_size__gte=1), name="cycle_batch_size_positive"),
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=1), name="cycle_progress_in_0_1"),
        ]

    def __str__(self):
        return f"cycle {self.number} of {self.project} ({self.status})"

    @property
    def is_active(self):
        return self.status in self.ACTIVE


class CycleSelection(models.Model):
    """One item a cycle put in the queue: the strategy and score that chose it, and its place."""

    cycle = models.ForeignKey(Cycle, on_delete=models.CASCADE, related_name="selections")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="cycle_selections")
    position = models.PositiveIntegerField(help_text="0 = first in the batch's queue order.")
    strategy = models.CharField(max_length=20)
    score = models.FloatField()
    queue_entry = models.OneToOneField(
        QueueEntry, null=True, blank=True, on_delete=models.SET_NULL, related_name="cycle_selection"
    )

    class Meta:
        ordering = ["cycle", "position"]
        constraints = [
            models.UniqueConstraint(fields=["cycle", "item"], name="cycleselection_item_once"),
            models.UniqueConstraint(fields=["cycle", "position"], name="cycleselection_position_once"),
        ]

    def __str__(self):
        return f"{self.item_id} by {self.strategy} in cycle {self.cycle_id}"
