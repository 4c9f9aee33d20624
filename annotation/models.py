"""The domain model of a labelling project.

Rules that must always hold are database constraints, not only Python checks, so a bulk
write or a second process cannot break them.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now


class TaskType(models.TextChoices):
    SINGLE_LABEL = "single_label", "Single label"
    MULTI_LABEL = "multi_label", "Multi label"


class DataKind(models.TextChoices):
    IMAGE = "image", "Image"
    TEXT = "text", "Text"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    DEV = "dev", "Dev"
    TEST = "test", "Test"


class Role(models.TextChoices):
    LABELER = "labeler", "Labeler"
    SME = "sme", "Subject-matter expert"
    MLE = "mle", "ML engineer"


class ProjectQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Projects the user may see: their memberships; superusers see all."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(memberships__user=user).distinct()

    def with_role(self, user, roles):
        """Projects where the user holds one of `roles` (superusers: all)."""
        if not user.is_authenticated:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(memberships__user=user, memberships__role__in=roles).distinct()


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    task_type = models.CharField(max_length=20, choices=TaskType.choices, default=TaskType.SINGLE_LABEL)
    data_kind = models.CharField(max_length=10, choices=DataKind.choices)
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="Independent labels needed per item in the consistency sample."
    )
    consistency_fraction = models.FloatField(
        default=0.0, help_text="Share of items (besides gold items) that need `overlap` labels."
    )
    train_fraction = models.FloatField(default=0.8)
    dev_fraction = models.FloatField(default=0.1)
    test_fraction = models.FloatField(default=0.1)
    seed = models.PositiveIntegerField(default=0, help_text="Seeds split and consistency-sample draws.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="project_overlap_at_least_1"),
            models.CheckConstraint(
                condition=Q(consistency_fraction__gte=0) & Q(consistency_fraction__lte=1),
                name="project_consistency_fraction_in_0_1",
            ),
            models.CheckConstraint(
                condition=Q(train_fraction__gte=0) & Q(dev_fraction__gte=0) & Q(test_fraction__gte=0),
                name="project_split_fractions_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(
                    train_fraction__gte=1 - 1e-6 - F("dev_fraction") - F("test_fraction"),
                    train_fraction__lte=1 + 1e-6 - F("dev_fraction") - F("test_fraction"),
                ),
                name="project_split_fractions_sum_to_1",
            ),
            models.CheckConstraint(condition=Q(task_type__in=TaskType.values), name="project_task_type_valid"),
            models.CheckConstraint(condition=Q(data_kind__in=DataKind.values), name="project_data_kind_valid"),
        ]

    def __str__(self):
        return self.name

    @property
    def split_fractions(self):
        return {Split.TRAIN: self.train_fraction, Split.DEV: self.dev_fraction, Split.TEST: self.test_fraction}


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices)
    last_seen_guideline_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="The guideline version this member last read (for the 'new version' banner)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "project"], name="membership_one_role_per_project"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self):
        return f"{self.user} is {self.role} in {self.project}"


class LabelClass(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="label_classes")
    name = models.CharField(max_length=100)
    shortcut = models.CharField(max_length=1, blank=True, help_text="One key that picks this class.")
    is_ambiguity = models.BooleanField(default=False, help_text="Means 'can't tell / borderline'.")
    order = models.PositiveIntegerField(default=0)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.RESTRICT, related_name="merged_from"
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["project", "order", "name"]
        verbose_name_plural = "label classes"
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="labelclass_name_unique_in_project"),
            models.UniqueConstraint(
                fields=["project", "shortcut"],
                condition=~Q(shortcut=""),
                name="labelclass_shortcut_unique_in_project",
            ),
            models.CheckConstraint(condition=~Q(name=""), name="labelclass_name_not_empty"),
            models.CheckConstraint(condition=~Q(merged_into=F("pk")), name="labelclass_not_merged_into_itself"),
            models.CheckConstraint(
                condition=Q(merged_into__isnull=True) | Q(is_active=False),
                name="labelclass_merged_is_inactive",
            ),
        ]

    def __str__(self):
        return self.name


class Guideline(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guidelines")
    version = models.PositiveIntegerField()
    text = models.TextField(blank=True, help_text="Markdown.")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True, help_text="Empty while a draft.")

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="guideline_version_unique_in_project"),
            models.CheckConstraint(condition=Q(version__gte=1), name="guideline_version_at_least_1"),
        ]

    def __str__(self):
        return f"{self.project} guideline v{self.version}"


class ImportBatch(models.Model):
    class Kind(models.TextChoices):
        IMAGES = "images", "Images"
        TEXTS = "texts", "Texts"
        ANNOTATIONS = "annotations", "Annotations"
        LABELSTUDIO = "labelstudio", "Label Studio tasks"

    class Status(models.TextChoices):
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        # A large upload waits for (queued) and runs in (running) a Celery task.
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_batches")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    source_name = models.CharField(max_length=255)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DONE)
    created_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0, help_text="Duplicates of what was already there.")
    rejected_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{row, field, message}] per rejected row.")
    summary = models.JSONField(default=dict, blank=True, help_text="What the import found, by kind.")

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "import batches"

    def __str__(self):
        return f"{self.kind} import {self.source_name} into {self.project}"


class Item(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    external_id = models.CharField(max_length=255, help_text="The user's own id for this item.")
    image = models.FileField(upload_to="items/", blank=True)
    thumbnail = models.FileField(upload_to="thumbnails/", blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    text = models.TextField(blank=True)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Of the content; empty when there is none.")
    metadata = models.JSONField(default=dict, blank=True, help_text="Slices, e.g. {'noise': 'car'}.")
    split = models.CharField(max_length=5, choices=Split.choices)
    in_consistency_sample = models.BooleanField(default=False)
    import_batch = models.ForeignKey(
        ImportBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="items"
    )
    source_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The labeling queue's bookkeeping (annotation/services/labeling.py writes both).
    queue_rank = models.BigIntegerField(
        null=True, blank=True, editable=False, help_text="Place in the project's seeded shuffled order."
    )
    queue_done = models.BooleanField(
        default=False,
        editable=False,
        help_text="All label slots filled when the labeling service last looked; only narrows the queue's scan.",
    )
    queue_gold = models.BooleanField(
        default=False,
        editable=False,
        help_text="Had gold when the labeling service last looked: picks the gold pool, never the labels needed.",
    )

    class Meta:
        ordering = ["project", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "external_id"], name="item_external_id_unique_in_project"),
            models.UniqueConstraint(
                fields=["project", "sha256"], condition=~Q(sha256=""), name="item_content_unique_in_project"
            ),
            models.CheckConstraint(condition=Q(split__in=Split.values), name="item_split_valid"),
            models.CheckConstraint(condition=~Q(external_id=""), name="item_external_id_not_empty"),
        ]
        indexes = [
            models.Index(fields=["project", "split"], name="item_project_split"),
            # The queue walks the open items of a project, ordinary or gold, in shuffled order...
            models.Index(
                fields=["project", "queue_gold", "queue_rank", "id"],
                condition=Q(queue_done=False),
                name="item_queue_open",
            ),
            # ...after ranking the few that have no rank yet (new imports).
            models.Index(fields=["project"], condition=Q(queue_rank__isnull=True), name="item_queue_unranked"),
        ]

    def __str__(self):
        return self.external_id


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
