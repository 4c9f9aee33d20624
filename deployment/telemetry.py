"""Telemetry in: one batch of a device's prediction records, checked, written in one transaction.

The sampling protocol (what the device sends, what the server asks for):

1. The device reads `sample_rate` and `confidence_threshold` of its channel from the bundle
   metadata (GET /api/v1/device/bundle/meta).
2. It may send the input (base64 image) with any record whose confidence is below the threshold:
   the server always wants those, so sending them up front saves a round trip.
3. For the other records, the server decides: a record is sampled when a hash of (device, seq) falls
   under the channel's sample rate (a hash, so a retried batch gets the same answer). The answer's
   `inputs_wanted` lists the seqs whose input the server wants and does not have yet.
4. The device keeps those inputs and sends them in a later batch as the same record (same seq)
   with `input` set. The record is already stored, so it counts as a duplicate; its input is
   stored and linked. An input the server did not ask for is ignored (`inputs_ignored`).

Idempotent on (device, seq): a record already stored is a duplicate (not an error); a batch sent
twice gives the same `accepted` count and writes nothing the second time. The records, the inputs'
items and the links are written in ONE transaction; the inputs' files are removed if it fails.
"""

import json
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from training.models import ModelExport

from . import field_inputs, keys
from .channels import assigned_channel, channels_of
from .errors import DeploymentError
from .models import ChannelEvent, TelemetryRecord
from .telemetry_records import Bundle, Refused, check


def config():
    return settings.CONCORD_DEPLOYMENT


class BatchTooLarge(DeploymentError):
    """More records than MAX_BATCH (answered 413)."""


@dataclass
class Outcome:
    accepted: int = 0  # records stored now or before (a retry answers the same)
    duplicates: int = 0  # of those, already stored before this batch
    rejected: list = field(default_factory=list)  # [{index, seq, field, reason}]
    inputs_wanted: list = field(default_factory=list)  # seqs
    inputs_stored: int = 0
    inputs_ignored: int = 0

    def as_json(self):
        return self.__dict__


def _bundles(project, shas, channels, device) -> dict:
    """{sha256: Bundle} for the shas that name an export that is or was on one of the project's
    channels. A record's channel is the device's assigned channel when that runs the bundle, else
    the channel that runs or last ran it."""
    exports = ModelExport.objects.filter(
        sha256__in=shas, model_version__project=project, status=ModelExport.Status.READY
    ).select_related("model_version__snapshot")
    assigned = assigned_channel(device, channels)
    found = {}
    for export in exports:
        if assigned.export_id == export.pk:
            channel = assigned.name
        else:
            current = [c.name for c in channels.values() if c.export_id == export.pk]
            last = (
                ChannelEvent.objects.filter(channel__project=project, export=export)
                .order_by("-at", "-pk")
                .values_list("channel__name", flat=True)
                .first()
            )
            channel = current[0] if current else last
        if channel is None:
            continue  # an export of the project that was never published
        snapshot = export.model_version.snapshot
        classes = {c["name"]: c["id"] for c in (snapshot.classes if snapshot else [])}
        found[export.sha256] = Bundle(export.pk, channel, classes)
    return found


def ingest(device, payload) -> Outcome:
    """Check and store one batch from `device` (already authenticated, not revoked)."""
    cfg = config()
    if not isinstance(payload, dict) or not isinstance(payload.get("records"), list):
        raise DeploymentError('the body is {"records": [...]}', "records")
    raw = payload["records"]
    if len(raw) > cfg["MAX_BATCH"]:
        raise BatchTooLarge(f"a batch has at most {cfg['MAX_BATCH']} records; this one has {len(raw)}", "records")
    project = device.project
    channels = channels_of(project)
    shas = {r.get("bundle_sha256") for r in raw if isinstance(r, dict) and isinstance(r.get("bundle_sha256"), str)}
    bundles = _bundles(project, shas, channels, device) if shas else {}
    now = timezone.now()
    limits = {
        "oldest": now - timedelta(days=cfg["RAW_RETENTION_DAYS"]),
        "newest": now + timedelta(seconds=cfg["FUTURE_SKEW_SECONDS"]),
        "max_input_bytes": cfg["MAX_INPUT_BYTES"],
    }
    out = Outcome()
    good, seen = [], set()
    for index, record in enumerate(raw):
        try:
            checked = check(record, index, bundles=bundles, **limits)
            if checked.seq in seen:
                raise Refused("seq", "appears twice in this batch")
        except Refused as exc:
            seq = record.get("seq") if isinstance(record, dict) else None
            out.rejected.append({"index": index, "seq": seq, "field": exc.field, "reason": exc.reason})
            continue
        seen.add(checked.seq)
        good.append(checked)
    if not good:
        return out
    existing = {
        seq: (requested, item_id)
        for seq, requested, item_id in TelemetryRecord.objects.filter(device=device, seq__in=seen).values_list(
            "seq", "input_requested", "item_id"
        )
    }
    by_name = {c.name: c for c in channels.values()}
    stored = field_inputs.Stored()
    new_rows, links, wanted = [], {}, []
    try:
        for rec in good:
            channel = by_name[rec.bundle.channel]
            if rec.seq in existing:
                requested, item_id = existing[rec.seq]
                needs_input = requested and item_id is None
            else:
                requested = rec.confidence < channel.confidence_threshold or keys.input_sampled(
                    device.device_uid, rec.seq, channel.sample_rate
                )
                needs_input = requested
            sha = None
            if rec.input is not None and needs_input:
                try:
                    sha = field_inputs.prepare(project, rec.input, stored, metadata=_metadata(device, rec))
                except Refused as exc:
                    out.rejected.append({"index": rec.index, "seq": rec.seq, "field": exc.field, "reason": exc.reason})
                    continue
            elif rec.input is not None:
                out.inputs_ignored += 1
            if needs_input and sha is None:
                wanted.append(rec.seq)
            if rec.seq in existing:
                out.duplicates += 1
                if sha is not None:
                    links[rec.seq] = sha
            else:
                new_rows.append((rec, requested, sha))
            out.accepted += 1
        with transaction.atomic():
            item_ids = field_inputs.save(project, stored)
            _insert(device, [(rec, requested, item_ids.get(sha)) for rec, requested, sha in new_rows])
            for seq, sha in links.items():
                TelemetryRecord.objects.filter(device=device, seq=seq, item__isnull=True).update(item_id=item_ids[sha])
    except BaseException:
        stored.discard()
        raise
    out.inputs_stored = sum(1 for _, _, sha in new_rows if sha) + len(links)
    out.inputs_wanted = wanted
    out.rejected.sort(key=lambda r: r["index"])
    return out


def _metadata(device, rec):
    """The item's slices (source, device, channel, bundle) and, hidden from labelers ("_" keys),
    what the device predicted, for the field queue."""
    return {
        "source": field_inputs.FIELD_SOURCE,
        "device": device.name,
        "channel": rec.bundle.channel,
        "bundle": f"export-{rec.bundle.export_id}",
        "_field": {
            "device_id": device.pk,
            "seq": rec.seq,
            "export_id": rec.bundle.export_id,
            "predicted_class_id": rec.class_id,
            "confidence": rec.confidence,
            "predicted_at": rec.predicted_at.isoformat(),
        },
    }


# PostgreSQL: the whole batch as one INSERT of column arrays. Building 500 model instances and
# Django's 6,000-parameter INSERT took about as long as the database's own work; this takes a few ms.
_INSERT_SQL = """
INSERT INTO {table} (project_id, device_id, seq, channel, export_id, predicted_class_id, confidence, top_scores,
                     latency_ms, predicted_at, received_at, input_requested, item_id)
SELECT %s, %s, r.seq, r.channel, r.export_id, r.class_id, r.confidence, r.top_scores::jsonb, r.latency_ms,
       r.predicted_at, now(), r.requested, r.item_id
FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::float8[], %s::text[], %s::float8[],
            %s::timestamptz[], %s::boolean[], %s::bigint[])
     AS r(seq, channel, export_id, class_id, confidence, top_scores, latency_ms, predicted_at, requested, item_id)
ON CONFLICT (device_id, seq) DO NOTHING
"""


def _insert(device, rows):
    """Insert [(Checked, input_requested, item id)]; a (device, seq) already there (a concurrent
    retry of the same batch) is left as it is: the first one wins."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        TelemetryRecord.objects.bulk_create([_row(device, *row) for row in rows], ignore_conflicts=True)
        return
    columns = [
        [rec.seq for rec, _, _ in rows],
        [rec.bundle.channel for rec, _, _ in rows],
        [rec.bundle.export_id for rec, _, _ in rows],
        [rec.class_id for rec, _, _ in rows],
        [rec.confidence for rec, _, _ in rows],
        [json.dumps(rec.top_scores) for rec, _, _ in rows],
        [rec.latency_ms for rec, _, _ in rows],
        [rec.predicted_at for rec, _, _ in rows],
        [requested for _, requested, _ in rows],
        [item_id for _, _, item_id in rows],
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SQL.format(table=connection.ops.quote_name(TelemetryRecord._meta.db_table)),
            [device.project_id, device.pk, *columns],
        )


def _row(device, rec, requested, item_id):
    return TelemetryRecord(
        project_id=device.project_id,
        device_id=device.pk,
        seq=rec.seq,
        channel=rec.bundle.channel,
        export_id=rec.bundle.export_id,
        predicted_class_id=rec.class_id,
        confidence=rec.confidence,
        top_scores=rec.top_scores,
        latency_ms=rec.latency_ms,
        predicted_at=rec.predicted_at,
        input_requested=requested,
        item_id=item_id,
    )
