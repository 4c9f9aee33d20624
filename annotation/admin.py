from django.contrib import admin

from . import models


class LabelClassInline(admin.TabularInline):
    model = models.LabelClass
    fk_name = "project"
    extra = 0


class MembershipInline(admin.TabularInline):
    model = models.Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "task_type", "data_kind", "overlap", "consistency_fraction", "created_at"]
    list_filter = ["task_type", "data_kind"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [LabelClassInline, MembershipInline]


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role"]
    list_filter = ["role", "project"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user", "project"]


@admin.register(models.LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "shortcut", "is_ambiguity", "order", "is_active", "merged_into"]
    list_filter = ["project", "is_ambiguity", "is_active"]
    search_fields = ["name"]


@admin.register(models.Guideline)
class GuidelineAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "author", "created_at", "published_at"]
    list_filter = ["project"]
    search_fields = ["text"]


@admin.register(models.ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = [
        "source_name",
        "project",
        "kind",
        "status",
        "created_count",
        "skipped_count",
        "rejected_count",
        "created_by",
        "created_at",
    ]
    list_filter = ["project", "kind", "status"]
    search_fields = ["source_name"]
    readonly_fields = ["errors", "summary"]


@admin.register(models.Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "split", "in_consistency_sample", "source_name", "created_at"]
    list_filter = ["project", "split", "in_consistency_sample"]
    search_fields = ["external_id", "sha256", "text"]
    raw_id_fields = ["import_batch"]


class AnnotationLabelInline(admin.TabularInline):
    model = models.AnnotationLabel
    extra = 0


@admin.register(models.Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["item", "labeler", "source", "unsure", "is_current", "duration_ms", "created_at"]
    list_filter = ["item__project", "source", "unsure", "is_current"]
    search_fields = ["item__external_id", "labeler__username", "note"]
    raw_id_fields = ["item", "labeler", "guideline", "import_batch"]
    inlines = [AnnotationLabelInline]


class GoldLabelClassInline(admin.TabularInline):
    model = models.GoldLabelClass
    extra = 0


@admin.register(models.GoldLabel)
class GoldLabelAdmin(admin.ModelAdmin):
    list_display = ["item", "created_at"]
    list_filter = ["item__project"]
    search_fields = ["item__external_id"]
    raw_id_fields = ["item", "import_batch"]
    inlines = [GoldLabelClassInline]


class ResolutionLabelInline(admin.TabularInline):
    model = models.ResolutionLabel
    extra = 0


@admin.register(models.ProjectCounts)
class ProjectCountsAdmin(admin.ModelAdmin):
    """The project page's stored counts (annotation/services/project_counts.py): read-only."""

    list_display = ["project", "items", "annotations", "labelled_items", "computed_at", "stale"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(models.ProjectTuning)
class ProjectTuningAdmin(admin.ModelAdmin):
    list_display = ["project", "gold_rate"]


@admin.register(models.DatasetExport)
class DatasetExportAdmin(admin.ModelAdmin):
    list_display = ["project", "format", "status", "rows", "created_by", "created_at"]
    list_filter = ["format", "status", "project"]
    search_fields = ["project__name", "sha256"]
    readonly_fields = ["options", "file", "sha256", "size_bytes", "label_config", "error"]


@admin.register(models.ItemPrediction)
class ItemPredictionAdmin(admin.ModelAdmin):
    list_display = ["item", "source", "label_class", "score", "created_at"]
    list_filter = ["item__project", "source"]
    search_fields = ["item__external_id", "source"]
    raw_id_fields = ["item", "label_class", "import_batch"]


@admin.register(models.AdjudicationEvent)
class AdjudicationEventAdmin(admin.ModelAdmin):
    """The SME decisions' history (resolve, ambiguous, send-back, and their undos): read-only."""

    list_display = ["item", "kind", "actor", "created_at", "undone_at"]
    list_filter = ["kind", "item__project"]
    search_fields = ["item__external_id"]
    raw_id_fields = ["item", "actor", "resolution", "undone_by"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(models.Resolution)
class ResolutionAdmin(admin.ModelAdmin):
    list_display = ["item", "decided_by", "is_ambiguous", "is_current", "created_at"]
    list_filter = ["item__project", "is_ambiguous", "is_current"]
    search_fields = ["item__external_id", "note"]
    raw_id_fields = ["item", "decided_by"]
    inlines = [ResolutionLabelInline]


@admin.register(models.QueueEntry)
class QueueEntryAdmin(admin.ModelAdmin):
    list_display = ["item", "project", "priority", "strategy", "score", "is_active", "created_at"]
    list_filter = ["project", "strategy", "is_active"]
    search_fields = ["item__external_id", "reason"]
    raw_id_fields = ["item"]


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["item", "labeler", "status", "served_at", "expires_at"]
    list_filter = ["item__project", "status"]
    search_fields = ["item__external_id", "labeler__username"]
    raw_id_fields = ["item", "labeler"]


@admin.register(models.QualityReport)
class QualityReportAdmin(admin.ModelAdmin):
    list_display = ["project", "computed_at", "annotation_count"]
    list_filter = ["project"]
    search_fields = ["project__name"]
    readonly_fields = ["data"]


@admin.register(models.ReviewRequest)
class ReviewRequestAdmin(admin.ModelAdmin):
    list_display = ["item", "reason", "requested_by", "created_at", "resolved_at"]
    list_filter = ["item__project"]
    search_fields = ["item__external_id", "reason"]
    raw_id_fields = ["item", "requested_by"]


@admin.register(models.ClassOperation)
class ClassOperationAdmin(admin.ModelAdmin):
    list_display = ["operation", "project", "actor", "created_at"]
    list_filter = ["operation", "project"]
    readonly_fields = ["project", "actor", "operation", "details", "before", "after", "created_at"]


@admin.register(models.GuidelineNote)
class GuidelineNoteAdmin(admin.ModelAdmin):
    list_display = ["project", "item", "author", "draft", "created_at"]
    list_filter = ["project"]
    raw_id_fields = ["item", "draft"]


@admin.register(models.Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "colour", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["name"]


@admin.register(models.ItemTag)
class ItemTagAdmin(admin.ModelAdmin):
    list_display = ["tag", "item", "added_by", "created_at"]
    list_filter = ["tag__project"]
    raw_id_fields = ["tag", "item", "added_by"]


@admin.register(models.TagEvent)
class TagEventAdmin(admin.ModelAdmin):
    """Who added or removed which tag, when: read-only."""

    list_display = ["tag", "item", "action", "actor", "created_at"]
    list_filter = ["action", "tag__project"]
    raw_id_fields = ["tag", "item", "actor"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
