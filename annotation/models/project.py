"""Projects, their members, classes, guidelines, import batches and items."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q


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
