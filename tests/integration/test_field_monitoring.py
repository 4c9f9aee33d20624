"""Field monitoring on PostgreSQL: windows, alerts, the page and the API, the field queue and field
accuracy. The bundle's dev reference is written directly here (computing it needs a real TFLite
bundle: tests/integration/test_field_simulator.py does that end to end)."""

import hashlib
import secrets
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone
from statsmodels.stats.proportion import proportion_confint

from annotation.models import QueueEntry
from annotation.services import labeling
from deployment import field_queue, monitoring
from deployment.models import Channel, Device, TelemetryRecord
from deployment.monitoring_models import DriftAlert, DriftWindow, MonitoringReference, MonitoringThresholds
from training import services
from training.models import ModelExport, ModelVersion

from .training_data import add_digit_items, label

WINDOW = 50


class NoGoldDraw:
    def random(self):
        return 0.99


@pytest.fixture
def field(project, settings):
    settings.CONCORD_MONITORING = {**settings.CONCORD_MONITORING, "WINDOW": WINDOW, "ALPHA": 0.001}
    items = add_digit_items(project, 30)
    snapshot = services.build_snapshot(project)
    version = ModelVersion.objects.create(
        project=project, trainer="keras_cnn", snapshot=snapshot, status="ready", artifact="fake/model.keras"
    )
    export = ModelExport.objects.create(
        model_version=version,
        format="int8",
        status="ready",
        bundle="exports/fake.zip",
        sha256="a" * 64,
        parity={"tflite_accuracy": 0.95, "n": 200},
    )
    k = len(snapshot.classes)
    rng = np.random.default_rng(0)
    shares = np.full(k, 1 / k)
    MonitoringReference.objects.create(
        export=export,
        split="dev",
        class_counts=rng.multinomial(300, shares).tolist(),
        confidences=rng.beta(8, 1, size=300).round(4).tolist(),
        image_stats=[],
    )
    Channel.objects.create(project=project, name="canary", export=export, canary_share=50)
    devices = [
        Device.objects.create(
            project=project,
            name=f"cam-{j}",
            device_uid=f"uid-{j}",
            token_hash=hashlib.sha256(secrets.token_bytes(16)).hexdigest(),
            token_prefix="abcd",
        )
        for j in range(2)
    ]
    ids = [c["id"] for c in snapshot.classes]
    return {"export": export, "devices": devices, "class_ids": ids, "shares": shares, "rng": rng, "items": items}


def send(project, field, n, *, shares=None, conf_a=8.0, device=0, start=0, items=None, confidence=None):
    rng = field["rng"]
    shares = field["shares"] if shares is None else shares
    cls = rng.choice(len(shares), size=n, p=shares)
    conf = rng.beta(conf_a, 1.0, size=n) if confidence is None else np.full(n, confidence)
    now = timezone.now()
    TelemetryRecord.objects.bulk_create(
        TelemetryRecord(
            project=project,
            device=field["devices"][device],
            seq=start + j,
            channel="canary",
            export=field["export"],
            predicted_class_id=field["class_ids"][cls[j]],
            confidence=float(conf[j]),
            latency_ms=3.0,
            predicted_at=now - timedelta(seconds=n - j),
            item=items[j] if items is not None else None,
        )
        for j in range(n)
    )


@pytest.mark.django_db
def test_stable_then_drifting_stream_opens_one_alert_and_reruns_change_nothing(project, field):
    send(project, field, 5 * WINDOW + 20)  # five full windows and a partial one
    done = monitoring.monitor_project(project)
    assert done["windows"] == 5 + 5 and done["alerts"] == 0  # all devices, and device 0 on its own
    windows = DriftWindow.objects.filter(device__isnull=True).order_by("first_record")
    assert [w.n for w in windows] == [WINDOW] * 5 and not any(w.alarm for w in windows)
    assert windows[0].level == pytest.approx(0.001 / 2) and windows[0].input_p is None
    ids = list(TelemetryRecord.objects.order_by("id").values_list("id", flat=True))
    assert windows[0].first_record == ids[0] and windows[4].last_record == ids[5 * WINDOW - 1]

    k = len(field["class_ids"])
    skewed = np.r_[np.full(k - 1, 0.1 / (k - 1)), 0.9]
    send(project, field, 2 * WINDOW, shares=skewed, conf_a=1.5, start=10_000)
    done = monitoring.monitor_project(project)
    alert = DriftAlert.objects.get(device__isnull=True)
    assert done["alerts"] == 2  # the channel and its only reporting device
    assert alert.status == "open" and "confidence" in alert.reasons and set(alert.reasons) <= {"classes", "confidence"}
    # the first drifting window holds the 20 waiting stable records and 30 drifting ones
    assert alert.records_seen == 6 * WINDOW and alert.window.alarm and alert.figures["psi"] > 0.25
    again = monitoring.monitor_project(project)
    assert again == {"windows": 0, "alerts": 0, "skipped": []}
    assert DriftAlert.objects.filter(status="open").count() == 2

    monitoring.acknowledge(alert, None)
    assert DriftAlert.objects.get(pk=alert.pk).status == "acknowledged"


@pytest.mark.django_db
def test_thresholds_come_from_settings_project_and_channel(project, field):
    assert monitoring.thresholds(project, "canary")["window"] == WINDOW
    MonitoringThresholds.objects.create(project=project, window=100, alpha=0.01, psi_warning=0.2, min_inputs=5)
    assert monitoring.thresholds(project, "canary")["alpha"] == 0.01
    MonitoringThresholds.objects.create(
        project=project, channel="canary", window=80, alpha=0.02, psi_warning=0.2, min_inputs=5
    )
    assert monitoring.thresholds(project, "canary")["window"] == 80
    assert monitoring.thresholds(project, "stable")["window"] == 100


@pytest.mark.django_db
def test_api_scoping_roles_and_bad_filters(project, field, api_as, mle, sme, labeler, outsider, other_project):
    send(project, field, 2 * WINDOW)
    monitoring.monitor_project(project)
    url = reverse("monitoring:api", args=[project.pk])
    body = api_as(mle).get(url).data
    assert len(body["windows"]) == 2 and body["per_day"][0]["predictions"] == 2 * WINDOW
    assert body["selectors"]["channels"] == ["canary"] and body["thresholds"]["window"] == WINDOW
    assert api_as(sme).get(url, {"channel": "canary", "device": field["devices"][0].pk}).status_code == 200
    assert api_as(labeler).get(url).status_code == 404
    assert api_as(outsider).get(url).status_code == 404
    for params, name in [
        ({"export": "x"}, "export"),
        ({"device": "0"}, "device"),
        ({"channel": "beta"}, "channel"),
        ({"export": 10**6}, "export"),
    ]:
        response = api_as(mle).get(url, params)
        assert response.status_code == 400 and name in response.data, (params, response.data)
    other_device = Device.objects.create(
        project=other_project, name="x", device_uid="x", token_hash="b" * 64, token_prefix="b"
    )
    assert "device" in api_as(mle).get(url, {"device": other_device.pk}).data

    refresh = reverse("monitoring:api-refresh", args=[project.pk])
    assert api_as(sme).post(refresh).status_code == 403
    assert api_as(outsider).post(refresh).status_code == 404


@pytest.mark.django_db
def test_the_page_draws_the_alert_and_the_project_page_names_it(client, project, field, mle, labeler, outsider):
    send(project, field, WINDOW)
    k = len(field["class_ids"])
    send(project, field, WINDOW, shares=np.r_[np.zeros(k - 1), 1.0], conf_a=1.0, start=5000)
    monitoring.monitor_project(project)
    page = reverse("monitoring:page", args=[project.slug])
    client.force_login(mle)
    html = client.get(page).content.decode()
    assert 'data-testid="drift-alert"' in html and html.count("<svg") >= 4 and 'data-alarm="1"' in html
    assert "style=" not in html.split("<main", 1)[-1] and "<script>" not in html
    assert client.get(reverse("monitoring:channel", args=[project.slug, "canary"])).status_code == 200
    assert client.get(reverse("monitoring:channel", args=[project.slug, "beta"])).status_code == 404
    bad = client.get(page, {"device": "abc"})
    assert bad.status_code == 400 and "device" in bad.content.decode()
    detail = client.get(reverse("frontend:project-detail", args=[project.slug])).content.decode()
    assert 'data-testid="drift-banner"' in detail and "canary" in detail

    client.force_login(labeler)
    assert client.get(page).status_code == 403
    assert (
        'data-testid="drift-banner"'
        not in client.get(reverse("frontend:project-detail", args=[project.slug])).content.decode()
    )
    client.force_login(outsider)
    assert client.get(page).status_code == 404

    client.force_login(mle)
    alert = DriftAlert.objects.filter(project=project).first()
    client.post(reverse("monitoring:acknowledge", args=[project.slug, alert.pk]))
    assert DriftAlert.objects.get(pk=alert.pk).status == "acknowledged"


@pytest.mark.django_db
def test_field_items_are_queued_least_confident_first_ahead_of_a_cycle(project, field, labeler):
    from annotation.models import Annotation

    Annotation.objects.filter(item__project=project).delete()
    items = field["items"][:6]
    # records on items 0..5 with confidences 0.9, 0.8, ... 0.4
    for j, item in enumerate(items):
        send(project, field, 1, device=1, start=100 + j, items=[item], confidence=0.9 - 0.1 * j)
    cycle_item = field["items"][10]
    QueueEntry.objects.create(project=project, item=cycle_item, priority=1000 + 50, strategy="margin", score=0.9)
    result = field_queue.queue_field_items(project)
    assert result == {"queued": 6, "candidates": 6}
    entries = list(QueueEntry.objects.filter(project=project, strategy="field").order_by("-priority"))
    assert [e.item_id for e in entries] == [i.pk for i in reversed(items)]
    assert entries[0].score == pytest.approx(0.5 * (1 - 0.4)) and entries[0].reason.startswith("field: confidence")
    assert all(e.priority > 1050 for e in entries)
    assert field_queue.queue_field_items(project) == {"queued": 0, "candidates": 0}  # already queued
    served = labeling.next_item(project, labeler, rng=NoGoldDraw())
    assert served.item.pk == items[-1].pk


@pytest.mark.django_db
def test_field_accuracy_per_bundle_with_wilson_interval_and_concept_drift(project, field, labeler):
    from annotation.models import Annotation, GoldLabel

    GoldLabel.objects.filter(item__project=project).delete()
    Annotation.objects.filter(item__project=project).delete()
    classes = field["class_ids"]
    items = field["items"][:20]
    from annotation.models import LabelClass

    first = LabelClass.objects.get(pk=classes[0])
    second = LabelClass.objects.get(pk=classes[1])
    # the bundle predicted class 0 on all twenty; labelers say 0 on eight and 1 on twelve
    TelemetryRecord.objects.bulk_create(
        TelemetryRecord(
            project=project,
            device=field["devices"][0],
            seq=j,
            channel="canary",
            export=field["export"],
            predicted_class_id=classes[0],
            confidence=0.6,
            latency_ms=1.0,
            predicted_at=timezone.now(),
            item=item,
        )
        for j, item in enumerate(items)
    )
    for j, item in enumerate(items):
        label(item, labeler, first if j < 8 else second)
    (row,) = field_queue.field_accuracy(project)
    low, high = proportion_confint(8, 20, method="wilson")
    dev_low, dev_high = proportion_confint(190, 200, method="wilson")
    assert row["labelled"] == 20 and row["correct"] == 8 and row["accuracy"] == pytest.approx(0.4)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert (row["dev_ci_low"], row["dev_ci_high"]) == (pytest.approx(dev_low), pytest.approx(dev_high))
    assert row["concept_drift"] is True


def test_the_monitoring_models_name_the_same_channels():
    from deployment.models import ChannelName
    from deployment.monitoring_models import CHANNEL_CHOICES

    assert ChannelName.choices == CHANNEL_CHOICES


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_monitoring_task_the_api_queues(project, field, api_as, mle, settings):
    """POST .../monitoring/refresh/ queues deployment.monitor_project on commit; a Celery worker
    (solo pool, in a thread) on a queue of this test's own computes the windows and the field queue."""
    import time
    from uuid import uuid4

    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    queue = f"concord-test-monitoring-{uuid4().hex[:8]}"
    settings.CONCORD_MONITORING = {**settings.CONCORD_MONITORING, "QUEUE": queue}
    send(project, field, 2 * WINDOW, items=[field["items"][0]] * (2 * WINDOW))
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue], loglevel="WARNING"):
        response = api_as(mle).post(reverse("monitoring:api-refresh", args=[project.pk]))
        assert response.status_code == 202 and response.data == {"queued": True}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not QueueEntry.objects.filter(strategy="field").exists():
            time.sleep(0.2)
    assert DriftWindow.objects.filter(project=project, device__isnull=True).count() == 2
    assert list(QueueEntry.objects.filter(strategy="field").values_list("item_id", flat=True)) == [field["items"][0].pk]


@pytest.mark.django_db
def test_the_learning_curve_counts_the_field_items_a_cycle_trained_on(project, field):
    from active_learning.models import Cycle
    from active_learning.progress import learning_curve
    from annotation.models import Item

    version = field["export"].model_version
    version.metrics = {"evaluation": {"accuracy": 0.9}}
    version.save(update_fields=["metrics"])
    Cycle.objects.create(
        project=project, number=1, strategy="mix", batch_size=5, trainer="keras_cnn", status="done",
        model_version=version,
    )  # fmt: skip
    assert learning_curve(project)[0]["field"] == 0
    # two of the snapshot's items came from the field: a later snapshot would hold them like this
    Item.objects.filter(pk__in=[i.pk for i in field["items"][:2]]).update(source_name="field")
    (point,) = learning_curve(project)
    assert point["field"] == 2 and point["labels"] == version.snapshot.size
