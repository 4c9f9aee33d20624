"""Monitoring: cut the field's predictions into windows, test each against the bundle's dev
reference (deployment/drift.py), raise alerts, and read it all back for the page and the API.

A *group* is one channel and bundle (export) over all its devices, or one device of it. Its
telemetry records are taken in arrival order (record id: what the server saw, so a device that
was offline and sends old records later still gets them tested) and cut into windows of
``window`` records; a partial window waits for more. Each window is tested once and kept
(:class:`DriftWindow`); the first alarming window of a group with no open alert opens one
(:class:`DriftAlert`). Re-running is harmless: windows start after the group's last one, and the
group's channel row is locked while its windows are written, so two runs never write the same
window twice (the unique constraint would refuse it anyway).

Thresholds: ``CONCORD_MONITORING`` (settings) overridden by a project's
:class:`MonitoringThresholds` row, overridden by one for the channel.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max
from django.db.models.functions import TruncDate
from django.utils import timezone

from config import queueing

from . import drift
from .models import Channel, DailyAggregate, Device, TelemetryRecord
from .monitoring_models import DriftAlert, DriftWindow, MonitoringThresholds
from .monitoring_reference import ReferenceError, class_index, reference_for, stats_of_files

logger = logging.getLogger(__name__)
MONITOR_PROJECT = "deployment.monitor_project"
DEFAULTS = {"WINDOW": 200, "ALPHA": 0.001, "PSI_WARNING": 0.25, "MIN_INPUTS": 20}
MAX_WINDOWS_PER_RUN = 500  # per group; the next run continues where this one stopped


def thresholds(project, channel: str | None = None) -> dict:
    """{window, alpha, psi_warning, min_inputs} for the project (and channel)."""
    conf = {**DEFAULTS, **getattr(settings, "CONCORD_MONITORING", {})}
    out = {"window": int(conf["WINDOW"]), "alpha": float(conf["ALPHA"]), "psi_warning": float(conf["PSI_WARNING"])}
    out["min_inputs"] = int(conf["MIN_INPUTS"])
    rows = {r.channel: r for r in MonitoringThresholds.objects.filter(project=project, channel__in=["", channel or ""])}
    for key in ("", channel or ""):
        row = rows.get(key)
        if row is not None:
            out.update(window=row.window, alpha=row.alpha, psi_warning=row.psi_warning, min_inputs=row.min_inputs)
    return out


def queue_monitoring(project) -> None:
    """Queue the monitoring task for the project once the current transaction commits. A broker
    that refuses is logged, not raised: the next beat run computes the same windows."""
    project_id = project.pk
    queue = getattr(settings, "CONCORD_MONITORING", {}).get("QUEUE") or None

    def send():
        try:
            queueing.task(MONITOR_PROJECT).apply_async((project_id,), queue=queue)
        except Exception:
            logger.exception("could not queue monitoring of project %s", project_id)

    transaction.on_commit(send)


def monitor_project(project) -> dict:
    """Test every full new window of every group of the project; returns what it did:
    {windows, alerts, skipped: [reason, ...]}."""
    done = {"windows": 0, "alerts": 0, "skipped": []}
    groups = (
        TelemetryRecord.objects.filter(project=project)
        .values_list("channel", "export_id")
        .distinct()
        .order_by("channel", "export_id")
    )
    for channel, export_id in groups:
        th = thresholds(project, channel)
        try:
            ref = reference_for(_export(export_id))
        except ReferenceError as exc:
            done["skipped"].append(str(exc))
            continue
        devices = [None, *_busy_devices(project, channel, export_id, th["window"])]
        for device_id in devices:
            w, a = _monitor_group(project, channel, export_id, device_id, th, ref)
            done["windows"] += w
            done["alerts"] += a
    return done


def _export(export_id):
    from training.models import ModelExport

    return ModelExport.objects.select_related("model_version__snapshot").get(pk=export_id)


def _busy_devices(project, channel, export_id, window) -> list[int]:
    """Devices of the group with at least one window's worth of records after their last window."""
    last = dict(
        DriftWindow.objects.filter(project=project, channel=channel, export_id=export_id, device__isnull=False)
        .values_list("device_id")
        .annotate(Max("last_record"))
    )
    counts = (
        TelemetryRecord.objects.filter(project=project, channel=channel, export_id=export_id)
        .values_list("device_id")
        .annotate(n=Count("id"), top=Max("id"))
    )
    busy = []
    for device_id, n, top in counts:
        if n < window or top <= last.get(device_id, 0):
            continue
        fresh = TelemetryRecord.objects.filter(
            project=project, channel=channel, export_id=export_id, device_id=device_id, id__gt=last.get(device_id, 0)
        ).count()
        if fresh >= window:
            busy.append(device_id)
    return busy


def _monitor_group(project, channel, export_id, device_id, th, ref) -> tuple[int, int]:
    window = th["window"]
    index = class_index(ref.export)
    k = len(index)
    ref_counts = np.asarray(ref.class_counts, dtype=np.float64)
    ref_conf = np.asarray(ref.confidences, dtype=np.float64)
    ref_stats = np.asarray(ref.image_stats, dtype=np.float64) if ref.image_stats else None
    with transaction.atomic():
        Channel.objects.select_for_update().filter(project=project, name=channel).first()
        mine = DriftWindow.objects.filter(project=project, channel=channel, export_id=export_id, device_id=device_id)
        after = mine.aggregate(m=Max("last_record"))["m"] or 0
        records = TelemetryRecord.objects.filter(project=project, channel=channel, export_id=export_id, id__gt=after)
        if device_id is not None:
            records = records.filter(device_id=device_id)
        rows = list(
            records.order_by("id").values_list("id", "predicted_class_id", "confidence", "predicted_at", "item__image")[
                : window * MAX_WINDOWS_PER_RUN
            ]
        )
        seen = sum(mine.values_list("n", flat=True))
        new, alert = [], None
        open_alert = DriftAlert.objects.filter(
            project=project, channel=channel, export_id=export_id, device_id=device_id, status="open"
        ).exists()
        for start in range(0, len(rows) - window + 1, window):
            chunk = rows[start : start + window]
            cls = np.array([index.get(r[1], -1) for r in chunk])
            counts = np.bincount(cls[cls >= 0], minlength=k)[:k]
            conf = np.array([r[2] for r in chunk], dtype=np.float64)
            images = [r[4] for r in chunk if r[4]]
            stats = None
            if ref_stats is not None and len(images) >= th["min_inputs"]:
                from django.core.files.storage import default_storage

                stats = stats_of_files([default_storage.path(name) for name in images])
                stats = stats if len(stats) >= th["min_inputs"] else None
            result = drift.check_window(ref_counts, ref_conf, counts, conf, ref_stats, stats, th["alpha"])
            seen += window
            w = DriftWindow(
                project=project,
                channel=channel,
                export_id=export_id,
                device_id=device_id,
                first_record=chunk[0][0],
                last_record=chunk[-1][0],
                start_at=min(r[3] for r in chunk),
                end_at=max(r[3] for r in chunk),
                n=window,
                inputs=len(images),
                mean_confidence=float(conf.mean()),
                **{key: _finite(result[key]) for key in ("psi", "chi2", "chi2_p", "ks", "ks_p", "level")},
                input_score=result["input_score"],
                input_p=result["input_p"],
                reasons=result["reasons"],
                alarm=result["alarm"],
            )
            new.append(w)
            if w.alarm and not open_alert and alert is None:
                alert = (w, seen)
        DriftWindow.objects.bulk_create(new)
        if alert is not None:
            w, at = alert
            DriftAlert.objects.create(
                project=project,
                channel=channel,
                export_id=export_id,
                device_id=device_id,
                window=w,
                reasons=w.reasons,
                figures=window_figures(w),
                records_seen=at,
            )
    return len(new), int(alert is not None)


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else 1e300


def window_figures(w: DriftWindow) -> dict:
    return {
        "n": w.n,
        "inputs": w.inputs,
        "psi": w.psi,
        "chi2_p": w.chi2_p,
        "ks": w.ks,
        "ks_p": w.ks_p,
        "input_score": w.input_score,
        "input_p": w.input_p,
        "level": w.level,
        "mean_confidence": w.mean_confidence,
    }


def acknowledge(alert: DriftAlert, user) -> DriftAlert:
    """An MLE has seen the alert: it closes, and the group can raise a new one."""
    DriftAlert.objects.filter(pk=alert.pk, status="open").update(
        status="acknowledged", acknowledged_at=timezone.now(), acknowledged_by=user
    )
    alert.refresh_from_db()
    return alert


def open_alerts(project):
    return DriftAlert.objects.filter(project=project, status="open").select_related("export__model_version", "device")


# --------------------------------------------------------------------------------------------
# Reading it back (page and API)
# --------------------------------------------------------------------------------------------


def selectors(project) -> dict:
    """What the page can filter by: channels, bundles (exports) and devices that reported."""
    pairs = list(TelemetryRecord.objects.filter(project=project).values_list("channel", "export_id").distinct())
    pairs += list(DailyAggregate.objects.filter(project=project).values_list("channel", "export_id").distinct())
    from training.models import ModelExport

    exports = ModelExport.objects.filter(pk__in={e for _, e in pairs}).select_related("model_version")
    return {
        "channels": sorted({c for c, _ in pairs}),
        "exports": [
            {"id": e.pk, "label": f"{e.model_version.short_id} {e.format}", "sha256": e.sha256} for e in exports
        ],
        "devices": list(Device.objects.filter(project=project).order_by("name").values("id", "name")),
    }


def summary(project, *, channel: str | None = None, export_id: int | None = None, device_id: int | None = None):
    """The monitoring figures of a project, optionally for one channel, bundle or device:
    {thresholds, windows: [...], per_day: [...], alerts: [...]}. Without a device the windows are
    the all-devices ones; with one, that device's."""
    windows = DriftWindow.objects.filter(project=project, device_id=device_id)
    records = TelemetryRecord.objects.filter(project=project)
    aggregates = DailyAggregate.objects.filter(project=project)
    alerts = DriftAlert.objects.filter(project=project)
    for field, value in (("channel", channel), ("export_id", export_id)):
        if value is not None:
            windows = windows.filter(**{field: value})
            records = records.filter(**{field: value})
            aggregates = aggregates.filter(**{field: value})
            alerts = alerts.filter(**{field: value})
    if device_id is not None:
        records = records.filter(device_id=device_id)
        aggregates = aggregates.filter(device_id=device_id)
        alerts = alerts.filter(device_id=device_id)
    per_day = defaultdict(int)
    for day, n in records.annotate(day=TruncDate("predicted_at")).values_list("day").annotate(n=Count("id")):
        per_day[day] += n
    # Days whose raw records are gone (past retention) are counted from their roll-ups.
    for day, n in aggregates.exclude(day__in=list(per_day)).values_list("day", "n"):
        per_day[day] += n
    return {
        "thresholds": thresholds(project, channel),
        "windows": [
            {
                "id": w.pk,
                "channel": w.channel,
                "export": w.export_id,
                "device": w.device_id,
                "end_at": w.end_at.isoformat(),
                "records": [w.first_record, w.last_record],
                **window_figures(w),
                "reasons": w.reasons,
                "alarm": w.alarm,
            }
            for w in windows.order_by("end_at", "id")[:2000]
        ],
        "per_day": [{"day": d.isoformat(), "predictions": per_day[d]} for d in sorted(per_day)],
        "alerts": [
            {
                "id": a.pk,
                "channel": a.channel,
                "export": a.export_id,
                "device": a.device_id,
                "status": a.status,
                "reasons": a.reasons,
                "records_seen": a.records_seen,
                "opened_at": a.opened_at.isoformat(),
                "figures": a.figures,
            }
            for a in alerts.order_by(F("device").asc(nulls_first=True), "-opened_at", "-id")[:50]
        ],
    }
