"""Data in and out: imported predictions, the project page's stored counts, per-project tuning
and dataset exports."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from .project import (
    ImportBatch,
    Item,
    LabelClass,
    Project,
)


class ItemPrediction(models.Model):
    """A model's score for one class of an item, imported with it (Label Studio `predictions`).

    Shown to SMEs and MLEs and read by active learning (`labelstudio_import.prediction_scores`);
    never to labelers, who label blind. One row per (item, source, class): a re-import of the same
    source replaces the score."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="predictions")
    source = models.CharField(max_length=255, help_text="The model (Label Studio's model_version) that scored it.")
    label_class = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    score = models.FloatField(null=True, blank=True, help_text="None when the file gave no score.")
    import_batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["item", "source", "label_class"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "source", "label_class"], name="itemprediction_one_per_item_source_class"
            ),
            models.CheckConstraint(condition=~Q(source=""), name="itemprediction_source_not_empty"),
        ]

    def __str__(self):
        return f"{self.source} on {self.item}: {self.label_class} {self.score}"


# --- Project setup in the browser: counts the project page reads, per-project tuning -----------


class ProjectCounts(models.Model):
    """The project page's counts, stored so a page view reads one row instead of counting 100k
    items and 1M annotations (annotation/services/project_counts.py owns it).

    A row is recomputed on read when it is `stale` (an import or a setup change marked it) or
    older than the service's MAX_AGE, so writes that do not mark it (labels, decisions) show
    within that age. One row per project: the primary key is the project."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="counts")
    items = models.PositiveIntegerField(default=0)
    train = models.PositiveIntegerField(default=0)
    dev = models.PositiveIntegerField(default=0)
    test = models.PositiveIntegerField(default=0)
    consistency = models.PositiveIntegerField(default=0)
    gold = models.PositiveIntegerField(default=0)
    annotations = models.PositiveIntegerField(default=0, help_text="Current annotations.")
    labelled_items = models.PositiveIntegerField(default=0, help_text="Items with at least one current annotation.")
    labelers = models.PositiveIntegerField(default=0, help_text="Labelers with at least one current annotation.")
    labeler_rows = models.JSONField(default=list, blank=True, help_text="The most active labelers, for SMEs/MLEs.")
    computed_at = models.DateTimeField(db_default=Now())
    stale = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "project counts"

    def __str__(self):
        return f"counts of {self.project_id} at {self.computed_at}"


class ProjectTuning(models.Model):
    """Per-project settings set when the project is created in the browser (beside the
    app-wide defaults in settings): for now the share of next-item answers that serve gold."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="tuning")
    gold_rate = models.FloatField(help_text="Share of next-item answers that serve a gold item.")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=1), name="projecttuning_gold_rate_in_0_1"
            ),
        ]

    def __str__(self):
        return f"tuning of {self.project_id}"


class DatasetExport(models.Model):
    """One export of a project's labelled dataset (annotation/services/dataset_export.py): who asked,
    with what options, and the file it wrote under MEDIA_ROOT with its SHA-256."""

    class Format(models.TextChoices):
        JSONL = "jsonl", "JSON Lines"
        CSV = "csv", "CSV"
        LABEL_STUDIO = "label_studio", "Label Studio JSON"
        PARQUET = "parquet", "Parquet"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dataset_exports")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now())
    format = models.CharField(max_length=12, choices=Format.choices)
    options = models.JSONField(default=dict, blank=True, help_text="Filters and what to include, as validated.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0..1, for the progress bar.")
    file = models.CharField(max_length=500, blank=True, help_text="Path under MEDIA_ROOT once done.")
    rows = models.PositiveIntegerField(null=True, blank=True, help_text="Items written.")
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Of the file.")
    label_config = models.TextField(blank=True, help_text="Label Studio labeling config (Label Studio exports).")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(format__in=["jsonl", "csv", "label_studio", "parquet"]), name="datasetexport_format_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed"]), name="datasetexport_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="datasetexport_progress_in_0_1"
            ),
        ]

    def __str__(self):
        return f"{self.format} export of {self.project} ({self.status})"
