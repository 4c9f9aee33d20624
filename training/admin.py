"""Admin for the training app: read-only. Snapshots are immutable, and promote / roll back go
through training.services so every change of the current model is recorded."""

from django.contrib import admin

from . import models


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(models.DatasetSnapshot)
class DatasetSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "content_hash", "size", "created_by", "created_at"]
    list_filter = ["project"]
    search_fields = ["content_hash", "project__name", "project__slug"]


@admin.register(models.SnapshotLabel)
class SnapshotLabelAdmin(ReadOnlyAdmin):
    list_display = ["snapshot", "item", "label_class", "split", "source", "confidence"]
    list_filter = ["split", "source"]
    search_fields = ["item__external_id", "label_class__name"]
    list_select_related = ["item", "label_class", "snapshot__project"]


@admin.register(models.ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "project", "trainer", "status", "stage", "is_promoted", "created_by", "created_at"]
    list_filter = ["status", "trainer", "is_promoted", "project"]
    search_fields = ["short_id", "project__name", "project__slug", "error"]
    list_select_related = ["project", "created_by"]


@admin.register(models.Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    list_display = ["project", "action", "model_version", "previous", "by", "at"]
    list_filter = ["action", "project"]
    search_fields = ["project__name", "model_version__short_id", "note"]
    list_select_related = ["project", "model_version", "previous", "by"]


@admin.register(models.ModelExport)
class ModelExportAdmin(ReadOnlyAdmin):
    list_display = ["id", "model_version", "format", "status", "size_bytes", "override_by", "created_by", "created_at"]
    list_filter = ["format", "status"]
    search_fields = ["model_version__short_id", "sha256", "error", "override_note"]
    list_select_related = ["model_version", "override_by", "created_by"]


@admin.register(models.LeakageReport)
class LeakageReportAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "snapshot", "items_checked", "data_kind", "created_at"]
    list_filter = ["project"]
    list_select_related = ["project", "snapshot"]


@admin.register(models.LeakageMove)
class LeakageMoveAdmin(ReadOnlyAdmin):
    list_display = ["report", "group", "to_split", "by", "at"]
    list_select_related = ["report", "by"]


@admin.register(models.TuningRun)
class TuningRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "project",
        "trainer",
        "search",
        "status",
        "stage",
        "model_version",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "trainer", "search", "project"]
    search_fields = ["project__name", "project__slug", "error"]
    list_select_related = ["project", "model_version", "created_by"]


@admin.register(models.TuningTrial)
class TuningTrialAdmin(ReadOnlyAdmin):
    list_display = ["run", "number", "status", "seconds"]
    list_filter = ["status"]
    list_select_related = ["run"]
