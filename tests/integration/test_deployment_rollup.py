"""Daily roll-up and retention of raw telemetry: exact aggregates, idempotent, raw rows deleted only
after their day is rolled up; and the beat task run by a real Celery worker."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from deployment import rollup
from deployment.models import DailyAggregate, TelemetryRecord

from .deployment_fixtures import field_fixture  # noqa: F401

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def add(field, seq, at, cls_id, confidence, latency, item=None):
    return TelemetryRecord.objects.create(
        project=field.project,
        device=field.device,
        seq=seq,
        channel="stable",
        export=field.export,
        predicted_class_id=cls_id,
        confidence=confidence,
        top_scores={},
        latency_ms=latency,
        predicted_at=at,
        item=item,
    )


@pytest.fixture
def history(field):
    classes = {c.name: c.pk for c in field.project.label_classes.all()}
    crow, owl = classes["crow"], classes["owl"]
    old = NOW - timedelta(days=40)  # past the 30-day retention
    rows = [
        (1, old, crow, 0.95, 10.0), (2, old + timedelta(hours=3), owl, 0.35, 30.0),
        (3, NOW - timedelta(days=1), crow, 1.0, 5.0), (4, NOW - timedelta(days=1), crow, 0.05, 7.0),
        (5, NOW - timedelta(days=1), owl, 0.55, 2.0), (6, NOW - timedelta(hours=1), owl, 0.999, 4.0),
    ]  # fmt: skip
    for row in rows:
        add(field, *row)
    return field, crow, owl


@pytest.mark.django_db
def test_rollup_and_expire_aggregates_each_day_exactly_then_deletes_old_raw_rows(history, settings):
    field, crow, owl = history
    settings.CONCORD_DEPLOYMENT = {**settings.CONCORD_DEPLOYMENT, "RAW_RETENTION_DAYS": 30}
    summary = rollup.rollup_and_expire(now=NOW)
    assert summary == {"days": 3, "aggregate_rows": 3, "deleted": 2}
    assert sorted(TelemetryRecord.objects.values_list("seq", flat=True)) == [3, 4, 5, 6]

    by_day = {a.day: a for a in DailyAggregate.objects.all()}
    old = by_day[(NOW - timedelta(days=40)).date()]
    assert (old.n, old.class_counts, old.latency_sum_ms, old.latency_max_ms) == (2, {str(crow): 1, str(owl): 1}, 40, 30)
    assert old.confidence_histogram == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1] and old.device_id == field.device.pk
    yesterday = by_day[(NOW - timedelta(days=1)).date()]
    assert yesterday.n == 3 and yesterday.class_counts == {str(crow): 2, str(owl): 1}
    assert yesterday.confidence_histogram == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]  # 1.0 falls in the last bin
    assert (yesterday.latency_sum_ms, yesterday.latency_max_ms, yesterday.channel) == (14, 7, "stable")
    assert yesterday.export_id == field.export.pk and yesterday.inputs_sampled == 0

    # Twice: the same rows (the expired day keeps its aggregate; its raw rows are gone).
    before = sorted((a.day, a.n, a.confidence_histogram) for a in DailyAggregate.objects.all())
    assert rollup.rollup_and_expire(now=NOW)["deleted"] == 0
    assert sorted((a.day, a.n, a.confidence_histogram) for a in DailyAggregate.objects.all()) == before

    # A late record of a day still kept: that day is recomputed, replaced, not added to.
    add(field, 7, NOW - timedelta(days=1, hours=1), owl, 0.75, 1.0)
    rollup.rollup_and_expire(now=NOW)
    yesterday = DailyAggregate.objects.get(day=(NOW - timedelta(days=1)).date())
    assert yesterday.n == 4 and yesterday.class_counts == {str(crow): 2, str(owl): 2}
    assert DailyAggregate.objects.count() == 3


@pytest.mark.django_db
def test_a_device_that_is_deleted_leaves_its_aggregates(history):
    field, _, _ = history
    rollup.rollup_and_expire(now=NOW)
    field.device.delete()
    assert not TelemetryRecord.objects.exists()
    assert DailyAggregate.objects.filter(device__isnull=True).count() == 3


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_beat_task(history, settings):
    """The task as beat schedules it, consumed by a Celery worker from the configured broker."""
    from uuid import uuid4

    from celery.contrib.testing.worker import start_worker

    from config.celery import app
    from config.queueing import task

    assert settings.CELERY_BEAT_SCHEDULE["deployment-rollup-and-retention"]["task"] == "deployment.rollup_and_expire"
    queue = f"concord-test-rollup-{uuid4().hex[:8]}"
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue], loglevel="WARNING"):
        task("deployment.rollup_and_expire").apply_async(queue=queue)
        deadline = time.monotonic() + 60
        while not DailyAggregate.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
    # Real "now": the 40-day-old rows are past retention and gone; three days rolled up.
    assert DailyAggregate.objects.count() == 3
    assert sorted(TelemetryRecord.objects.values_list("seq", flat=True)) == [3, 4, 5, 6]
