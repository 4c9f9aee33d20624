"""Devices, the channels they run, and what they report back (telemetry).

A device authenticates with a token that is stored only as its SHA-256 (a 32-byte random token
needs no slow password hash: it cannot be guessed, only stolen, and a stolen hash opens nothing).
Raw telemetry rows are kept `CONCORD_DEPLOYMENT["RAW_RETENTION_DAYS"]`; their daily roll-ups
(:class:`DailyAggregate`) are kept forever (deployment/rollup.py).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from annotation.models import Item, LabelClass, Project
from training.models import ModelExport


class Fleet(models.Model):
    """Devices that enrol themselves with a shared secret (POST /api/v1/device/enrol)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="fleets")
    name = models.CharField(max_length=100)
    enrolment_secret_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the secret.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(db_default=Now())
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="Set: the secret enrols no more devices.")

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="fleet_name_unique_in_project"),
            models.CheckConstraint(condition=~Q(name=""), name="fleet_name_not_empty"),
        ]

    def __str__(self):
        return self.name


class Device(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="devices")
    fleet = models.ForeignKey(Fleet, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices")
    name = models.CharField(max_length=100)
    device_uid = models.CharField(
        max_length=100, help_text="The device's own stable id; its hash picks the canary devices."
    )
    token_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the token (shown once).")
    token_prefix = models.CharField(max_length=8, help_text="The token's first characters, to recognise it.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(db_default=Now())
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Per-device rate limit: a fixed one-minute window, counted in the same UPDATE that stamps
    # last_seen_at (deployment/device_auth.py), so every web worker sees one count.
    rate_window_start = models.DateTimeField(null=True, blank=True, editable=False)
    rate_window_count = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["project", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "device_uid"],
                condition=Q(revoked_at__isnull=True),
                name="device_uid_unique_among_active",
            ),
            models.CheckConstraint(condition=~Q(device_uid=""), name="device_uid_not_empty"),
            models.CheckConstraint(condition=~Q(name=""), name="device_name_not_empty"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_revoked(self):
        return self.revoked_at is not None


class ChannelName(models.TextChoices):
    STABLE = "stable", "Stable"
    CANARY = "canary", "Canary"


class Channel(models.Model):
    """The bundle a group of a project's devices runs. `canary_share` (on the canary channel) is the
    percentage of devices that run canary; the others run stable."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=10, choices=ChannelName.choices)
    export = models.ForeignKey(
        ModelExport, null=True, blank=True, on_delete=models.RESTRICT, related_name="channels", help_text="The bundle."
    )
    canary_share = models.PositiveSmallIntegerField(default=0, help_text="Percent of devices on canary (0-100).")
    sample_rate = models.FloatField(default=0.05, help_text="Share of inputs the server asks devices for (0-1).")
    confidence_threshold = models.FloatField(
        default=0.5, help_text="Inputs of predictions less confident than this are always asked for (0-1)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="channel_name_unique_in_project"),
            models.CheckConstraint(condition=Q(name__in=ChannelName.values), name="channel_name_valid"),
            models.CheckConstraint(condition=Q(canary_share__lte=100), name="channel_share_at_most_100"),
            models.CheckConstraint(
                condition=Q(sample_rate__gte=0) & Q(sample_rate__lte=1), name="channel_sample_rate_in_0_1"
            ),
            models.CheckConstraint(
                condition=Q(confidence_threshold__gte=0) & Q(confidence_threshold__lte=1),
                name="channel_threshold_in_0_1",
            ),
        ]

    def __str__(self):
        return f"{self.name} of {self.project}"


class ChannelEvent(models.Model):
    """One change of a channel: a bundle published, the canary share changed, a rollback, settings."""

    class Action(models.TextChoices):
        PROMOTE = "promote", "Publish a bundle"
        SHARE = "share", "Change the canary share"
        ROLLBACK = "rollback", "Roll back"
        SETTINGS = "settings", "Change sampling settings"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=10, choices=Action.choices)
    export = models.ForeignKey(
        ModelExport, null=True, blank=True, on_delete=models.RESTRICT, related_name="+", help_text="Bundle after."
    )
    previous_export = models.ForeignKey(
        ModelExport, null=True, blank=True, on_delete=models.RESTRICT, related_name="+", help_text="Bundle before."
    )
    share = models.PositiveSmallIntegerField(null=True, blank=True, help_text="The canary share after.")
    previous_share = models.PositiveSmallIntegerField(null=True, blank=True)
    channel_settings = models.JSONField(
        default=dict, blank=True, help_text="sample_rate and confidence_threshold after."
    )
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(db_default=Now())
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["channel", "-at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=["promote", "share", "rollback", "settings"]), name="channelevent_action_valid"
            ),
        ]

    def __str__(self):
        return f"{self.action} on {self.channel} at {self.at:%Y-%m-%d %H:%M}"


class TelemetryRecord(models.Model):
    """One prediction a device made, as it reported it. Unique per (device, seq): a batch sent
    twice lands once."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="records")
    seq = models.BigIntegerField(help_text="The device's own sequence number.")
    channel = models.CharField(max_length=10, choices=ChannelName.choices)
    export = models.ForeignKey(ModelExport, on_delete=models.RESTRICT, related_name="+")
    predicted_class = models.ForeignKey(LabelClass, on_delete=models.RESTRICT, related_name="+")
    confidence = models.FloatField()
    top_scores = models.JSONField(default=dict, help_text="{class name: score} as the device sent them.")
    latency_ms = models.FloatField()
    predicted_at = models.DateTimeField(help_text="The device's clock.")
    received_at = models.DateTimeField(db_default=Now())
    input_requested = models.BooleanField(default=False, help_text="The server asked for this record's input.")
    item = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The stored input."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "seq"], name="telemetry_once_per_device_seq"),
        ]
        indexes = [
            models.Index(fields=["project", "predicted_at"], name="telemetry_project_time"),
            models.Index(fields=["project", "channel", "predicted_at"], name="telemetry_project_channel_time"),
        ]

    def __str__(self):
        return f"{self.device_id}#{self.seq}"


class DailyAggregate(models.Model):
    """One UTC day of one device's predictions on one channel and bundle; recomputing a day
    replaces its rows. `device` is empty once the device is deleted."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    channel = models.CharField(max_length=10, choices=ChannelName.choices)
    export = models.ForeignKey(ModelExport, on_delete=models.RESTRICT, related_name="+")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    n = models.PositiveIntegerField()
    class_counts = models.JSONField(default=dict, help_text="{label class id: predictions}.")
    confidence_histogram = models.JSONField(
        default=list, help_text="Counts in CONFIDENCE_BINS equal bins over [0, 1] (1.0 in the last)."
    )
    latency_sum_ms = models.FloatField(default=0.0)
    latency_max_ms = models.FloatField(default=0.0)
    inputs_sampled = models.PositiveIntegerField(default=0, help_text="Records whose input was stored.")

    CONFIDENCE_BINS = 10

    class Meta:
        ordering = ["project", "-day", "channel"]
        indexes = [models.Index(fields=["project", "day"], name="dailyaggregate_project_day")]

    def __str__(self):
        return f"{self.day} {self.channel} of {self.project}: {self.n}"


from .monitoring_models import DriftAlert, DriftWindow, MonitoringReference, MonitoringThresholds  # noqa: E402, F401
