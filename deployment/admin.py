"""Admin for devices and telemetry: read-only. Tokens, channels and shares change through
deployment services, so every change is recorded (ChannelEvent) and no token is ever shown."""

from django.contrib import admin

from . import models


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(models.Fleet)
class FleetAdmin(ReadOnlyAdmin):
    list_display = ["name", "project", "created_by", "created_at", "revoked_at"]
    list_filter = ["project"]
    search_fields = ["name", "project__name"]
    exclude = ["enrolment_secret_hash"]


@admin.register(models.Device)
class DeviceAdmin(ReadOnlyAdmin):
    list_display = ["name", "device_uid", "project", "fleet", "token_prefix", "last_seen_at", "revoked_at"]
    list_filter = ["project"]
    search_fields = ["name", "device_uid", "token_prefix"]
    exclude = ["token_hash"]
    list_select_related = ["project", "fleet"]


@admin.register(models.Channel)
class ChannelAdmin(ReadOnlyAdmin):
    list_display = ["name", "project", "export", "canary_share", "sample_rate", "confidence_threshold", "updated_at"]
    list_filter = ["name", "project"]
    list_select_related = ["project", "export"]


@admin.register(models.ChannelEvent)
class ChannelEventAdmin(ReadOnlyAdmin):
    list_display = ["channel", "action", "export", "previous_export", "share", "by", "at"]
    list_filter = ["action"]
    search_fields = ["note"]
    list_select_related = ["channel__project", "export", "previous_export", "by"]


@admin.register(models.TelemetryRecord)
class TelemetryRecordAdmin(ReadOnlyAdmin):
    list_display = ["device", "seq", "channel", "predicted_class", "confidence", "predicted_at", "received_at"]
    list_filter = ["channel"]
    search_fields = ["device__name", "device__device_uid"]
    list_select_related = ["device", "predicted_class"]


@admin.register(models.DailyAggregate)
class DailyAggregateAdmin(ReadOnlyAdmin):
    list_display = ["day", "project", "channel", "export", "device", "n", "inputs_sampled"]
    list_filter = ["channel", "project"]
    list_select_related = ["project", "device", "export"]


from . import monitoring_admin  # noqa: E402, F401  (monitoring models: deployment/monitoring_admin.py)
