"""Admin for monitoring: windows, references and alerts are read-only (the monitoring task writes
them); thresholds are edited here (a project's, or one channel's)."""

from django.contrib import admin

from .monitoring_models import DriftAlert, DriftWindow, MonitoringReference, MonitoringThresholds


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(MonitoringReference)
class MonitoringReferenceAdmin(_ReadOnly):
    list_display = ["export", "split", "created_at"]


@admin.register(DriftWindow)
class DriftWindowAdmin(_ReadOnly):
    list_display = ["project", "channel", "export", "device", "end_at", "n", "psi", "ks", "input_score", "alarm"]
    list_filter = ["project", "channel", "alarm"]


@admin.register(DriftAlert)
class DriftAlertAdmin(_ReadOnly):
    list_display = ["project", "channel", "export", "device", "status", "records_seen", "opened_at"]
    list_filter = ["project", "status"]


@admin.register(MonitoringThresholds)
class MonitoringThresholdsAdmin(admin.ModelAdmin):
    list_display = ["project", "channel", "window", "alpha", "psi_warning", "min_inputs"]
    list_filter = ["project"]
