"""Admin for cycles: read-only. Cycles are launched and cancelled through active_learning.services,
so the one-active-cycle rule and the queue's single transaction always hold."""

from django.contrib import admin

from training.admin import ReadOnlyAdmin

from . import models


@admin.register(models.Cycle)
class CycleAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "number", "status", "stage", "strategy", "batch_size", "created_by", "created_at"]
    list_filter = ["status", "strategy", "project"]
    search_fields = ["project__name", "project__slug", "error"]
    list_select_related = ["project", "created_by"]


@admin.register(models.CycleSelection)
class CycleSelectionAdmin(ReadOnlyAdmin):
    list_display = ["cycle", "position", "item", "strategy", "score"]
    list_filter = ["strategy"]
    search_fields = ["item__external_id"]
    list_select_related = ["cycle__project", "item"]
