"""Dataset snapshots, model versions and the record of promotions.

A snapshot's labels are rows of :class:`SnapshotLabel` (one per item), not a JSON blob: every
row keeps a foreign key to its item and class, so "which models learned from this item, with
which label" is one query, the pages join thumbnails and slices straight from the rows, and a
100,000-item snapshot is written with ``bulk_create`` instead of one 5 MB JSON value. Rows and
snapshots are never updated: ``save()`` refuses a second save, and the admin is read-only.
"""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from annotation.models import Item, LabelClass, Project, Split


class ImmutableError(Exception):
    """A snapshot row is written once and never changed."""


class DatasetSnapshot(models.Model):
    """The frozen training labels of a project, with the policy that chose them."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dataset_snapshots")
    created_at = models.DateTimeField(db_default=Now())
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    policy = models.JSONField(
        help_text="Label sources and their parameters: {consensus, min_confidence, keep_ambiguity}."
    )
    content_hash = models.CharField(
        max_length=64, help_text="SHA-256 of the rows and class list (training/snapshot.py)."
    )
    classes = models.JSONField(help_text="The class list in index order: [{id, name, is_ambiguity}].")
    counts = models.JSONField(help_text="Labels per split and class: {split: {class name: n}}.")
    sources = models.JSONField(help_text="Items per label source and per reason left out.")
    size = models.PositiveIntegerField(help_text="Labelled items in the snapshot.")

    class Meta:
        ordering = ["project", "-created_at", "-id"]
        indexes = [models.Index(fields=["project", "content_hash"], name="snapshot_project_hash")]

    def __str__(self):
        return f"snapshot {self.content_hash[:10]} of {self.project}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ImmutableError("a dataset snapshot is immutable")
        super().save(*args, **kwargs)

    def split_total(self, split):
        return sum((self.counts or {}).get(split, {}).values())


class SnapshotLabel(models.Model):
    """One item's training label in a snapshot."""

    class Source(models.TextChoices):
        RESOLUTION = "resolution", "SME resolution"
        GOLD = "gold", "Gold"
        CONSENSUS = "consensus", "Consensus"

    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.CASCADE, related_name="labels")
    item = models.ForeignKey(Item, on_delete=models.RESTRICT, related_name="snapshot_labels")
    label_class = models.ForeignKey(LabelClass, on_delete=models.RESTRICT, related_name="snapshot_labels")
    split = models.CharField(max_length=5, choices=Split.choices)
    source = models.CharField(max_length=10, choices=Source.choices)
    confidence = models.FloatField(null=True, blank=True, help_text="The consensus confidence, for consensus labels.")

    class Meta:
        ordering = ["snapshot", "item"]
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "item"], name="snapshotlabel_one_per_item"),
            models.CheckConstraint(condition=Q(split__in=Split.values), name="snapshotlabel_split_valid"),
            models.CheckConstraint(
                condition=Q(source__in=["resolution", "gold", "consensus"]), name="snapshotlabel_source_valid"
            ),
        ]

    def __str__(self):
        return f"{self.item_id} is {self.label_class_id} in snapshot {self.snapshot_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ImmutableError("a snapshot label is immutable")
        super().save(*args, **kwargs)


def new_short_id():
    return secrets.token_hex(4)


class ModelVersionQuerySet(models.QuerySet):
    def ready(self):
        return self.filter(status=ModelVersion.Status.READY)

    def promoted(self):
        return self.filter(is_promoted=True)


class ModelVersion(models.Model):
    """A trained (or training, or failed) model of a project."""

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class Stage(models.TextChoices):
        QUEUED = "queued", "Queued"
        SNAPSHOT = "snapshot", "Freezing the labels"
        LOADING = "loading", "Loading the data"
        FITTING = "fitting", "Fitting"
        EVALUATING = "evaluating", "Evaluating"
        SAVING = "saving", "Saving"
        DONE = "done", "Done"

    short_id = models.CharField(max_length=16, unique=True, default=new_short_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    snapshot = models.ForeignKey(
        DatasetSnapshot,
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="model_versions",
        help_text="Empty until the worker has frozen the labels.",
    )
    trainer = models.CharField(max_length=40)
    hyperparameters = models.JSONField(default=dict, blank=True)
    policy = models.JSONField(default=dict, blank=True, help_text="The snapshot policy asked for.")
    random_state = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    artifact = models.CharField(max_length=500, blank=True, help_text="Path under the artifact folder.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINING)
    error = models.TextField(blank=True)
    stage = models.CharField(max_length=12, choices=Stage.choices, default=Stage.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1, for the progress bar.")
    epoch = models.PositiveIntegerField(null=True, blank=True)
    epochs = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker has started this training.")
    run_token = models.CharField(max_length=32, blank=True, editable=False, help_text="The run allowed to write.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from the worker.")
    recoveries = models.PositiveIntegerField(
        default=0, help_text="Times the reaper re-queued it after its worker stopped responding."
    )
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per stage.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    is_promoted = models.BooleanField(default=False, help_text="The project's current model.")
    # Learning history (training/trainers.py) lives in metrics["history"]; these carry the latest
    # loss to the progress bar while it trains, and the per-item evaluation predictions that let
    # two versions be compared with a cheap join (training/side_by_side.py).
    loss = models.FloatField(null=True, blank=True, help_text="Latest training loss (live, while training).")
    val_loss = models.FloatField(null=True, blank=True, help_text="Latest validation loss (live).")
    predictions = models.JSONField(
        default=dict,
        blank=True,
        help_text="Evaluation items: {item_ids, predicted, label, majority} (class ids), for comparisons.",
    )

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["project", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_promoted=True), name="modelversion_one_promoted_per_project"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["training", "ready", "failed"]), name="modelversion_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(is_promoted=False) | Q(status="ready"), name="modelversion_promoted_is_ready"
            ),
            models.CheckConstraint(
                condition=~Q(status="ready") | (~Q(artifact="") & Q(snapshot__isnull=False)),
                name="modelversion_ready_has_artifact",
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="modelversion_progress_in_0_1"
            ),
        ]
        indexes = [models.Index(fields=["project", "status"], name="modelversion_project_status")]

    def __str__(self):
        return f"{self.short_id} ({self.trainer}, {self.status})"

    @property
    def is_active(self):
        return self.status == self.Status.TRAINING

    @property
    def headline_accuracy(self):
        return (self.metrics or {}).get("evaluation", {}).get("accuracy")


class Promotion(models.Model):
    """One promote or rollback: which model became current, and which was before."""

    class Action(models.TextChoices):
        PROMOTE = "promote", "Promote"
        ROLLBACK = "rollback", "Roll back"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_promotions")
    action = models.CharField(max_length=10, choices=Action.choices)
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="promotions",
        help_text="The model that became current; empty when a rollback left none.",
    )
    previous = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="superseded_by",
        help_text="The model that was current before.",
    )
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(db_default=Now())
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["project", "-at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=["promote", "rollback"]), name="promotion_action_valid"),
            models.CheckConstraint(
                condition=Q(action="rollback") | Q(model_version__isnull=False), name="promotion_promote_names_model"
            ),
        ]

    def __str__(self):
        return f"{self.action} in {self.project} at {self.at:%Y-%m-%d %H:%M}"


class ModelExport(models.Model):
    """A TensorFlow Lite bundle of a ``keras_cnn`` version, float32 or full-integer int8, with the
    parity check of its interpreter against the Keras model on the dev split (training/tflite.py).

    ``exporting`` until the worker has written the bundle; then ``ready``, ``rejected`` (an int8
    export losing more dev accuracy than ``EXPORT_MAX_DROP``; an MLE may accept it with a note,
    which makes it ``ready``) or ``failed`` (see ``error``)."""

    class Format(models.TextChoices):
        FLOAT32 = "float32", "float32"
        INT8 = "int8", "int8 (full integer)"

    class Status(models.TextChoices):
        EXPORTING = "exporting", "Exporting"
        READY = "ready", "Ready"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=8, choices=Format.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.EXPORTING)
    error = models.TextField(blank=True)
    parity = models.JSONField(
        default=dict, blank=True, help_text="Dev accuracy of Keras and TFLite, delta per slice, latency, size."
    )
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True, help_text="Size of model.tflite.")
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the whole bundle (zip).")
    bundle = models.CharField(max_length=500, blank=True, help_text="Path of the zip under the artifact folder.")
    run_token = models.CharField(max_length=32, blank=True, editable=False, help_text="The run allowed to write.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from the worker.")
    recoveries = models.PositiveIntegerField(
        default=0, help_text="Times the reaper re-queued it after its worker stopped responding."
    )
    override_note = models.CharField(max_length=500, blank=True)
    override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    overridden_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model_version", "-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(format__in=["float32", "int8"]), name="modelexport_format_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["exporting", "ready", "rejected", "failed"]), name="modelexport_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["ready", "rejected"]) | (~Q(bundle="") & ~Q(sha256="")),
                name="modelexport_finished_has_bundle",
            ),
        ]

    def __str__(self):
        return f"{self.format} export of {self.model_version_id} ({self.status})"

    @property
    def accuracy(self):
        return (self.parity or {}).get("tflite_accuracy")

    @property
    def delta(self):
        return (self.parity or {}).get("delta")
