"""What monitoring computes and keeps: the dev reference of a bundle, the tested windows of the
field's predictions, the alerts they raise and the thresholds (deployment/monitoring.py writes
them all). Imported by deployment/models.py, so Django sees these as the app's models.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from annotation.models import Project
from training.models import ModelExport

# deployment/models.py imports this module at its end (so Django finds these models); importing it
# back would close a circle. Hence the device by its label and the channels spelled out here
# (tests/integration/test_field_monitoring.py checks they equal ChannelName's).
CHANNEL_CHOICES = [("stable", "Stable"), ("canary", "Canary")]
Device = "deployment.Device"


class MonitoringReference(models.Model):
    """What a bundle predicts on its own dev split (its TFLite model, run once by the monitoring
    task) and the image statistics of its training images: what the field is compared with."""

    export = models.OneToOneField(ModelExport, on_delete=models.CASCADE, related_name="monitoring_reference")
    split = models.CharField(max_length=5, help_text="The split the predictions were made on (dev, else test).")
    class_counts = models.JSONField(help_text="Predicted-class counts in the bundle's class order.")
    confidences = models.JSONField(help_text="Top scores on that split, one per item.")
    image_stats = models.JSONField(default=list, help_text="(N, 5) image statistics of the training images.")
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self):
        return f"reference of export {self.export_id}"


class DriftWindow(models.Model):
    """One tested window of consecutive field predictions (in arrival order) of one channel and
    bundle, over all its devices (``device`` empty) or one device. Windows never overlap: each
    starts after the last record of the group's previous window."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=10, choices=CHANNEL_CHOICES)
    export = models.ForeignKey(ModelExport, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    first_record = models.BigIntegerField(help_text="Id of the window's first telemetry record.")
    last_record = models.BigIntegerField(help_text="Id of its last.")
    start_at = models.DateTimeField(help_text="Earliest prediction time in the window (device clock).")
    end_at = models.DateTimeField(help_text="Latest prediction time in the window.")
    n = models.PositiveIntegerField()
    inputs = models.PositiveIntegerField(default=0, help_text="Predictions whose input came back.")
    mean_confidence = models.FloatField()
    psi = models.FloatField(help_text="PSI of the predicted-class shares against the dev split's.")
    chi2 = models.FloatField()
    chi2_p = models.FloatField()
    ks = models.FloatField(help_text="KS statistic of the confidences against the dev split's.")
    ks_p = models.FloatField()
    input_score = models.FloatField(null=True, blank=True, help_text="Largest KS over the image statistics.")
    input_p = models.FloatField(null=True, blank=True)
    level = models.FloatField(help_text="The per-test level: alpha / number of tests.")
    reasons = models.JSONField(default=list, blank=True, help_text="Tests below the level.")
    alarm = models.BooleanField(default=False)
    computed_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["project", "channel", "export", "device", "first_record"]
        constraints = [
            models.UniqueConstraint(
                fields=["export", "channel", "device", "first_record"],
                nulls_distinct=False,
                name="driftwindow_once_per_start",
            ),
        ]
        indexes = [models.Index(fields=["project", "end_at"], name="driftwindow_project_end")]

    def __str__(self):
        return f"{self.channel} window {self.first_record}-{self.last_record} ({'alarm' if self.alarm else 'ok'})"


class DriftAlert(models.Model):
    """Drift found on a channel and bundle (or one device of it): open until an MLE acknowledges
    it. At most one open alert per channel, bundle and device."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="drift_alerts")
    channel = models.CharField(max_length=10, choices=CHANNEL_CHOICES)
    export = models.ForeignKey(ModelExport, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    window = models.ForeignKey(DriftWindow, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    reasons = models.JSONField(default=list, help_text="classes, confidence, inputs.")
    figures = models.JSONField(default=dict, help_text="The window's test figures when it fired.")
    records_seen = models.PositiveIntegerField(help_text="Predictions of the group tested until it fired.")
    opened_at = models.DateTimeField(db_default=Now())
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["project", "-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "channel", "export", "device"],
                condition=Q(status="open"),
                nulls_distinct=False,
                name="driftalert_one_open_per_group",
            ),
            models.CheckConstraint(condition=Q(status__in=["open", "acknowledged"]), name="driftalert_status_valid"),
        ]

    def __str__(self):
        return f"drift on {self.channel} ({', '.join(self.reasons)}) {self.status}"


class MonitoringThresholds(models.Model):
    """A project's (or one channel's, when ``channel`` is set) alert settings; the defaults come
    from ``CONCORD_MONITORING``. A channel's row wins over the project's."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=10, choices=CHANNEL_CHOICES, blank=True)
    window = models.PositiveIntegerField(help_text="Predictions per tested window.")
    alpha = models.FloatField(help_text="False-alarm probability per window on a stable stream.")
    psi_warning = models.FloatField(help_text="PSI drawn as the warning line.")
    min_inputs = models.PositiveIntegerField(help_text="Inputs a window needs for the input-drift test.")

    class Meta:
        verbose_name_plural = "monitoring thresholds"
        constraints = [
            models.UniqueConstraint(fields=["project", "channel"], name="monitoringthresholds_once"),
            models.CheckConstraint(condition=Q(alpha__gt=0) & Q(alpha__lt=1), name="monitoringthresholds_alpha"),
            models.CheckConstraint(condition=Q(window__gte=20), name="monitoringthresholds_window"),
        ]

    def __str__(self):
        return f"thresholds of {self.project} {self.channel or '(all channels)'}"
