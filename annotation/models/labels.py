"""What people say about items: annotations, gold, resolutions, the queue, reports and the SME's
class operations, notes and decisions."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from .project import (
    Guideline,
    ImportBatch,
    Item,
    LabelClass,
    Project,
)


class Source(models.TextChoices):
    HUMAN = "human", "Human"
    IMPORTED = "imported", "Imported"
    SIMULATED = "simulated", "Simulated"


class ClassChoice(models.Model):
    """One class given in a record (an annotation, a gold label, a resolution): the through row of
    the record's `labels`. A class merge points `label_class` at the new class and keeps the
    class first given in `original_label_class`."""

    label_class = models.ForeignKey(LabelClass, on_delete=models.RESTRICT)
    original_label_class = models.ForeignKey(
        LabelClass,
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="+",
        help_text="The class first given, when a class merge remapped this label; empty otherwise.",
    )

    class Meta:
        abstract = True


class AnnotationQuerySet(models.QuerySet):
    def current(self):
        return self.filter(is_current=True)


class Annotation(models.Model):
    """One labeler's label(s) for one item.

    An edit does not update a row: it marks the old row `is_current=False` and adds a new
    one, so the history of every (item, labeler) pair stays readable.
    """

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="annotations")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotations")
    labels = models.ManyToManyField(
        LabelClass, through="AnnotationLabel", through_fields=("annotation", "label_class"), related_name="annotations"
    )
    unsure = models.BooleanField(default=False)
    note = models.TextField(blank=True)
    guideline = models.ForeignKey(Guideline, null=True, blank=True, on_delete=models.RESTRICT)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.HUMAN)
    client_id = models.UUIDField(null=True, blank=True, help_text="Makes a client's retry idempotent.")
    import_batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.SET_NULL)
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(db_default=Now())

    objects = AnnotationQuerySet.as_manager()

    class Meta:
        ordering = ["item", "labeler", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "labeler"],
                condition=Q(is_current=True),
                name="annotation_one_current_per_item_labeler",
            ),
            models.UniqueConstraint(
                fields=["labeler", "client_id"],
                condition=Q(client_id__isnull=False),
                name="annotation_client_id_unique_per_labeler",
            ),
            models.CheckConstraint(condition=Q(source__in=Source.values), name="annotation_source_valid"),
        ]
        indexes = [
            models.Index(fields=["item", "is_current"], name="annotation_item_current"),
            models.Index(fields=["labeler", "-created_at"], name="annotation_labeler_recent"),
        ]

    def __str__(self):
        return f"{self.labeler} on {self.item}"


class AnnotationLabel(ClassChoice):
    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["annotation", "label_class"], name="annotationlabel_unique"),
        ]

    def __str__(self):
        return f"{self.label_class_id} on {self.annotation_id}"


class GoldLabel(models.Model):
    """Truth for an item, defined outside the labelers (imported)."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="gold")
    labels = models.ManyToManyField(
        LabelClass, through="GoldLabelClass", through_fields=("gold", "label_class"), related_name="gold_labels"
    )
    import_batch = models.ForeignKey(ImportBatch, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self):
        return f"gold for {self.item}"


class GoldLabelClass(ClassChoice):
    gold = models.ForeignKey(GoldLabel, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gold", "label_class"], name="goldlabelclass_unique")]

    def __str__(self):
        return f"{self.label_class_id} on {self.gold_id}"


class Resolution(models.Model):
    """An SME's decision on an item: final label(s), or 'ambiguous'. Latest one is current."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="resolutions")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    labels = models.ManyToManyField(
        LabelClass,
        through="ResolutionLabel",
        through_fields=("resolution", "label_class"),
        related_name="resolutions",
        blank=True,
    )
    is_ambiguous = models.BooleanField(default=False)
    note = models.TextField(blank=True)
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["item", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"], condition=Q(is_current=True), name="resolution_one_current_per_item"
            ),
        ]

    def __str__(self):
        return f"resolution of {self.item}"


class ResolutionLabel(ClassChoice):
    resolution = models.ForeignKey(Resolution, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["resolution", "label_class"], name="resolutionlabel_unique")]

    def __str__(self):
        return f"{self.label_class_id} on {self.resolution_id}"


class QueueEntry(models.Model):
    """Moves an item ahead in labelers' queues; active-learning cycles write these.

    Higher `priority` is served first; `strategy` and `score` record what chose the item.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="queue_entries")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="queue_entries")
    priority = models.FloatField()
    strategy = models.CharField(max_length=40, help_text="What chose the item, e.g. entropy, error_model, manual.")
    score = models.FloatField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        verbose_name_plural = "queue entries"
        ordering = ["project", "-priority"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"], condition=Q(is_active=True), name="queueentry_one_active_per_item"
            ),
        ]
        indexes = [models.Index(fields=["project", "is_active", "-priority"], name="queueentry_project_priority")]

    def __str__(self):
        return f"{self.item} at {self.priority:g} ({self.strategy})"


class Assignment(models.Model):
    """An item served to a labeler. While `leased` and not expired it holds one of the item's
    label slots for that labeler; `done` once labelled, `skipped` when the labeler passed."""

    class Status(models.TextChoices):
        LEASED = "leased", "Leased"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    labeler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LEASED)
    served_at = models.DateTimeField(db_default=Now())
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "labeler"], name="assignment_unique_item_labeler"),
            models.CheckConstraint(
                condition=Q(status__in=["leased", "done", "skipped"]), name="assignment_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["item", "status", "expires_at"], name="assignment_item_lease"),
            models.Index(fields=["labeler", "status", "expires_at"], name="assignment_labeler_lease"),
        ]

    def __str__(self):
        return f"{self.item} for {self.labeler} ({self.status})"


class QualityReport(models.Model):
    """A computed label-quality report, stored so pages never recompute it in a request."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quality_reports")
    computed_at = models.DateTimeField(db_default=Now())
    annotation_count = models.PositiveIntegerField(help_text="Current annotations the report was computed from.")
    data = models.JSONField()

    class Meta:
        ordering = ["project", "-computed_at"]
        get_latest_by = "computed_at"

    def __str__(self):
        return f"quality of {self.project} at {self.computed_at:%Y-%m-%d %H:%M}"


class ReviewRequest(models.Model):
    """An item sent to the SMEs' queue by hand, e.g. a model's confidently wrong training items."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="review_requests")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(db_default=Now())
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="Set when an SME decides the item.")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["item"], condition=Q(resolved_at__isnull=True), name="reviewrequest_one_open_per_item"
            ),
        ]

    def __str__(self):
        return f"review {self.item}: {self.reason}"


class ClassOperation(models.Model):
    """The audit log of class operations (merge, rename, add, deactivate): who, when, what, and
    the label counts per class before and after."""

    class Kind(models.TextChoices):
        MERGE = "merge", "Merge"
        RENAME = "rename", "Rename"
        ADD = "add", "Add"
        DEACTIVATE = "deactivate", "Deactivate"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="class_operations")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    operation = models.CharField(max_length=12, choices=Kind.choices)
    details = models.JSONField(default=dict, blank=True, help_text="Classes involved, names, remapped row ids.")
    before = models.JSONField(default=dict, blank=True, help_text="Counts per class before the operation.")
    after = models.JSONField(default=dict, blank=True, help_text="Counts per class after the operation.")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["project", "-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(operation__in=["merge", "rename", "add", "deactivate"]),
                name="classoperation_operation_valid",
            ),
        ]

    def __str__(self):
        return f"{self.operation} in {self.project} at {self.created_at}"


class GuidelineNote(models.Model):
    """A note an SME writes from an item; it goes into the project's next guideline draft."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guideline_notes")
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="guideline_notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    text = models.TextField()
    draft = models.ForeignKey(
        Guideline,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notes",
        help_text="The draft the note was added to.",
    )
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["project", "-created_at", "-id"]

    def __str__(self):
        return f"note on {self.item} in {self.project}"


class AdjudicationEvent(models.Model):
    """One SME decision on an item (resolve, ambiguous, send back): the item's history on the review
    page, and what an undo needs to put the item back as it was (`details`)."""

    class Kind(models.TextChoices):
        RESOLVE = "resolve", "Resolved"
        AMBIGUOUS = "ambiguous", "Marked ambiguous"
        SEND_BACK = "send_back", "Sent back"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="adjudication_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    resolution = models.ForeignKey(Resolution, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    details = models.JSONField(default=dict, blank=True, help_text="The state before, for undo.")
    created_at = models.DateTimeField(db_default=Now())
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["item", "created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["resolve", "ambiguous", "send_back"]), name="adjudicationevent_kind_valid"
            ),
        ]

    def __str__(self):
        return f"{self.kind} of {self.item}"
