"""The field simulator end to end: a real Keras model exported to an int8 TFLite bundle, published
to canary, devices running the runner's Bundle against the live server, monitoring as beat runs it.
A short version of `manage.py simulate_field` (seeded)."""

import pytest

from deployment import channels
from deployment.models import TelemetryRecord
from deployment.monitoring_models import DriftAlert, MonitoringReference
from deployment.monitoring_simulation import SimulationError, run

from .field_bundle import trained_export

WINDOW = 100
DETECT_WITHIN = 300  # predictions of the drifting phase (of 400) until the alert


@pytest.fixture
def canary_bundle(project, mle, settings):
    """field_bundle's export, published to canary at 100 %."""
    settings.CONCORD_MONITORING = {**settings.CONCORD_MONITORING, "WINDOW": WINDOW, "ALPHA": 0.001}
    export = trained_export(project, settings)
    canary = channels.channels_of(project)["canary"]
    channels.publish(canary, export, user=mle)
    channels.set_share(channels.channels_of(project)["canary"], 100, user=mle)
    return export


@pytest.mark.django_db(transaction=True)
def test_the_simulator_catches_the_drift_raises_no_false_alarm_and_estimates_field_accuracy(
    live_server, project, canary_bundle
):
    lines = []
    figures = run(
        project,
        url=live_server.url,
        channel="canary",
        n_devices=2,
        stable=400,
        drift=400,
        batch=50,
        sample_rate=0.3,
        seed=0,
        label=True,
        log=lines.append,
    )
    # the control stream (800 predictions, 8 windows) raised nothing
    assert figures["control_windows"] == 8 and figures["false_alarm_windows"] == 0
    assert figures["control_alert"] is False
    # the drift was caught, within the stated number of drifting predictions
    assert figures["detected"], figures
    assert 0 < figures["samples_to_alarm"] <= DETECT_WITHIN, figures
    assert figures["stable_windows"] == 4 and figures["stable_false_alarm_windows"] == 0, figures
    assert figures["alert_open"] and figures["caught_by"]
    alert = DriftAlert.objects.get(project=project, device__isnull=True, status="open")
    assert alert.export_id == canary_bundle.pk and alert.reasons
    # every record landed once; the reference is the bundle's own dev predictions
    assert TelemetryRecord.objects.filter(project=project).count() == figures["records"] == 1600
    reference = MonitoringReference.objects.get(export=canary_bundle)
    assert reference.split == "dev" and sum(reference.class_counts) == 30 and len(reference.image_stats) == 90
    # the field-accuracy interval (uniformly sampled, truly labelled field items) covers the truth
    assert figures["field_items"] > 100
    assert figures["covers_truth"], figures
    assert figures["batch_p95_ms"] > 0 and figures["records_per_second_in_requests"] > 0
    # the channel's sampling settings are put back
    canary = channels.channels_of(project)["canary"]
    assert canary.confidence_threshold == 0.5 and canary.sample_rate == 0.05
    assert '"samples_to_alarm"' in lines[-1]


@pytest.mark.django_db
def test_the_simulator_refuses_a_channel_without_bundle(project):
    with pytest.raises(SimulationError, match="no bundle is published on the canary channel"):
        run(project, url="http://127.0.0.1:9", channel="canary")
