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


class LeakageReport(models.Model):
    """Near-duplicate items across train / dev / test, found before a snapshot trains
    (training/leakage.py). ``pairs`` and ``groups`` hold only what crosses splits; a group's
    index in ``groups`` is its number in the API. Written once; moves are :class:`LeakageMove`."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="leakage_reports")
    snapshot = models.ForeignKey(
        DatasetSnapshot,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="leakage_reports",
        help_text="The snapshot checked; empty for a check of all the project's items.",
    )
    created_at = models.DateTimeField(db_default=Now())
    data_kind = models.CharField(max_length=10)
    thresholds = models.JSONField(help_text="The detectors and their thresholds (training/leakage.py).")
    items_checked = models.PositiveIntegerField()
    pairs = models.JSONField(
        default=list, help_text="[{a, b, kind: exact|near, distance (bits) | jaccard}] by item id, across splits."
    )
    groups = models.JSONField(default=list, help_text="[{items: [id], splits: {id: split}}] spanning splits.")
    redundancy = models.JSONField(default=dict, help_text="Near-duplicate pairs inside one split: {split: n}.")
    seconds = models.FloatField(default=0.0, help_text="Time the check took.")

    class Meta:
        ordering = ["project", "-created_at", "-id"]

    def __str__(self):
        return f"leakage check of {self.project} ({len(self.groups or [])} groups)"


class LeakageMove(models.Model):
    """An MLE moved one near-duplicate group of a report into one split: who, when, from where."""

    report = models.ForeignKey(LeakageReport, on_delete=models.CASCADE, related_name="moves")
    group = models.PositiveIntegerField(help_text="Index into the report's groups.")
    to_split = models.CharField(max_length=5, choices=Split.choices)
    moved = models.JSONField(help_text="[{item, from}] for the items whose split changed.")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["report", "group", "-at"]
        constraints = [
            models.UniqueConstraint(fields=["report", "group"], name="leakagemove_one_per_group"),
            models.CheckConstraint(condition=Q(to_split__in=Split.values), name="leakagemove_split_valid"),
        ]

    def __str__(self):
        return f"group {self.group} of report {self.report_id} to {self.to_split}"


class TuningRun(models.Model):
    """A hyperparameter search of one trainer over a search space, within a budget, on a worker
    (training/tuning.py queues and claims it, training/tuning_search.py searches). Its trials are
    :class:`TuningTrial` rows; the best one is registered as a ModelVersion, not promoted."""

    class Search(models.TextChoices):
        RANDOM = "random", "Random search"
        HYPERBAND = "hyperband", "Hyperband"
        HALVING_RANDOM = "halving_random", "Successive halving (random candidates)"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Stage(models.TextChoices):
        QUEUED = "queued", "Queued"
        SNAPSHOT = "snapshot", "Freezing the labels"
        LOADING = "loading", "Loading the data"
        SEARCHING = "searching", "Searching"
        REGISTERING = "registering", "Registering the best trial"
        DONE = "done", "Done"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tuning_runs")
    trainer = models.CharField(max_length=40)
    search = models.CharField(max_length=16, choices=Search.choices)
    space = models.JSONField(help_text="The checked search space: {hyperparameter: {fixed|range|choice}}.")
    budget_trials = models.PositiveIntegerField(help_text="At most this many trials (candidates for halving).")
    budget_minutes = models.PositiveIntegerField(help_text="The search stops starting trials after this long.")
    random_state = models.PositiveIntegerField(default=0)
    policy = models.JSONField(default=dict, blank=True, help_text="The snapshot policy asked for.")
    snapshot = models.ForeignKey(
        DatasetSnapshot, null=True, blank=True, on_delete=models.RESTRICT, related_name="tuning_runs"
    )
    method = models.CharField(max_length=20, blank=True, help_text="dev or cross_validation, as training decides.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=12, choices=Stage.choices, default=Stage.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1, for the progress bar.")
    error = models.TextField(blank=True)
    run_token = models.CharField(max_length=32, blank=True, editable=False, help_text="The run allowed to write.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life from the worker.")
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker has started this run.")
    recoveries = models.PositiveIntegerField(
        default=0, help_text="Times the reaper re-queued it after its worker stopped responding."
    )
    best_trial = models.ForeignKey("TuningTrial", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tuning_runs",
        help_text="The best trial, registered (not promoted).",
    )
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(search__in=["random", "hyperband", "halving_random"]), name="tuningrun_search_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed", "cancelled"]),
                name="tuningrun_status_valid",
            ),
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=1), name="tuningrun_progress_in_0_1"),
            models.CheckConstraint(condition=Q(budget_trials__gte=1), name="tuningrun_budget_trials_positive"),
            models.CheckConstraint(condition=Q(budget_minutes__gte=1), name="tuningrun_budget_minutes_positive"),
        ]
        indexes = [models.Index(fields=["project", "status"], name="tuningrun_project_status")]

    def __str__(self):
        return f"tuning run {self.pk} of {self.trainer} ({self.status})"

    @property
    def is_active(self):
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)


class TuningTrial(models.Model):
    """One evaluated set of hyperparameters of a tuning run, scored like a training run."""

    class Status(models.TextChoices):
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(TuningRun, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField(help_text="1, 2, ... in the order the trials ended.")
    params = models.JSONField(help_text="Every hyperparameter of the trainer for this trial.")
    dev_metrics = models.JSONField(
        default=dict, blank=True, help_text="{accuracy, n, method, resource}: dev, or out-of-fold under K-fold."
    )
    seconds = models.FloatField(default=0.0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETED)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="tuningtrial_number_unique"),
            models.CheckConstraint(condition=Q(status__in=["completed", "failed"]), name="tuningtrial_status_valid"),
        ]

    def __str__(self):
        return f"trial {self.number} of tuning run {self.run_id}"

    @property
    def accuracy(self):
        return (self.dev_metrics or {}).get("accuracy")
