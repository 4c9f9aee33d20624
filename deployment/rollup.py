"""Daily roll-up of raw telemetry, and its retention.

A day's aggregates are recomputed from its raw records and replace the rows that were there (one
transaction per project and day), so running the roll-up twice, or after late records of a day
arrived, gives the same rows as running it once at the end. Raw records are deleted once older
than RAW_RETENTION_DAYS, at a UTC day boundary and only after their day was rolled up in the same
run. Ingestion refuses records older than the retention (deployment/telemetry_records.py), so a
day whose raw records are gone never changes again and its aggregates stay.
"""

from collections import defaultdict
from datetime import UTC, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Sum, Value
from django.db.models.functions import Floor, Least, TruncDate
from django.utils import timezone

from .models import DailyAggregate, TelemetryRecord

BINS = DailyAggregate.CONFIDENCE_BINS


def _day_bounds(day):
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def days_with_records(before=None):
    """[(project id, day)] that have raw records (all, or those of days before `before`)."""
    rows = TelemetryRecord.objects.all()
    if before is not None:
        rows = rows.filter(predicted_at__lt=before)
    days = rows.annotate(day=TruncDate("predicted_at", tzinfo=UTC)).values_list("project_id", "day").distinct()
    return sorted(set(days))


@transaction.atomic
def rollup_day(project_id, day) -> int:
    """Replace the aggregates of one project and UTC day with those of its raw records; returns rows."""
    start, end = _day_bounds(day)
    raw = TelemetryRecord.objects.filter(project_id=project_id, predicted_at__gte=start, predicted_at__lt=end)
    key = ("channel", "export_id", "device_id")
    groups = {}
    for row in raw.values(*key, "predicted_class_id").annotate(
        n=Count("id"), latency_sum=Sum("latency_ms"), latency_max=Max("latency_ms"), inputs=Count("item_id")
    ):
        k = tuple(row[name] for name in key)
        agg = groups.setdefault(
            k, {"n": 0, "class_counts": {}, "hist": [0] * BINS, "sum": 0.0, "max": 0.0, "inputs": 0}
        )
        agg["n"] += row["n"]
        agg["class_counts"][str(row["predicted_class_id"])] = row["n"]
        agg["sum"] += row["latency_sum"] or 0.0
        agg["max"] = max(agg["max"], row["latency_max"] or 0.0)
        agg["inputs"] += row["inputs"]
    # Bin b holds confidence in [b/BINS, (b+1)/BINS); 1.0 goes in the last bin.
    binned = raw.annotate(bin=Least(Floor(F("confidence") * Value(float(BINS))), Value(BINS - 1.0)))
    for row in binned.values(*key, "bin").annotate(n=Count("id")):
        groups[tuple(row[name] for name in key)]["hist"][int(row["bin"])] += row["n"]
    DailyAggregate.objects.filter(project_id=project_id, day=day).delete()
    DailyAggregate.objects.bulk_create(
        DailyAggregate(
            project_id=project_id,
            day=day,
            channel=channel,
            export_id=export_id,
            device_id=device_id,
            n=agg["n"],
            class_counts=agg["class_counts"],
            confidence_histogram=agg["hist"],
            latency_sum_ms=agg["sum"],
            latency_max_ms=agg["max"],
            inputs_sampled=agg["inputs"],
        )
        for (channel, export_id, device_id), agg in groups.items()
    )
    return len(groups)


def retention_cutoff(now=None):
    """Raw records predicted before this instant are deleted: the start of the UTC day
    RAW_RETENTION_DAYS before now."""
    now = now or timezone.now()
    day = (now - timedelta(days=settings.CONCORD_DEPLOYMENT["RAW_RETENTION_DAYS"])).astimezone(UTC).date()
    return _day_bounds(day)[0]


def rollup_and_expire(now=None) -> dict:
    """Roll up every day that has raw records, then delete the raw records past retention."""
    cutoff = retention_cutoff(now)
    per_day = defaultdict(int)
    for project_id, day in days_with_records():
        if _day_bounds(day)[0] < cutoff:
            continue  # expiring: rolled up below, in the transaction that deletes its records
        per_day[day.isoformat()] += rollup_day(project_id, day)
    with transaction.atomic():
        for project_id, day in days_with_records(before=cutoff):
            per_day[day.isoformat()] += rollup_day(project_id, day)
        deleted, _ = TelemetryRecord.objects.filter(predicted_at__lt=cutoff).delete()
    return {"days": len(per_day), "aggregate_rows": sum(per_day.values()), "deleted": deleted}
