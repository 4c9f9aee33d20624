"""Device endpoints: bundle delivery (ETag, 304, canary), telemetry in (idempotence, every bad input,
sampled inputs as field items), the rate and size limits."""

import base64
import gzip
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.storage import default_storage
from rest_framework.test import APIClient

from annotation.models import Item
from deployment import channels, devices, keys
from deployment.models import TelemetryRecord

from .deployment_fixtures import field_fixture, ready_export, ready_version, record  # noqa: F401
from .imaging import png_bytes

TELEMETRY = "/api/v1/device/telemetry"


def device_client(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def send(token, records, *, gzip_body=False, raw=None, **headers):
    body = raw if raw is not None else json.dumps({"records": records}).encode()
    if gzip_body:
        body = gzip.compress(body)
        headers["HTTP_CONTENT_ENCODING"] = "gzip"
    return device_client(token).post(TELEMETRY, data=body, content_type="application/json", **headers)


def b64(data):
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------------------------
# Bundle delivery
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bundle_with_etag_and_304_and_meta(field):
    client = device_client(field.token)
    response = client.get("/api/v1/device/bundle")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"stable bundle"
    assert response["ETag"] == f'"{field.export.sha256}"' and response["Content-Type"] == "application/zip"
    again = client.get("/api/v1/device/bundle", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again["ETag"] == response["ETag"] and again.content == b""
    stale = client.get("/api/v1/device/bundle", HTTP_IF_NONE_MATCH='"' + "0" * 64 + '"')
    assert stale.status_code == 200

    meta = client.get("/api/v1/device/bundle/meta").json()
    assert meta["channel"] == "stable" and meta["sha256"] == field.export.sha256
    assert meta["export_id"] == field.export.pk and meta["classes"] == ["crow", "dove", "owl"]
    assert meta["sample_rate"] == 0.0 and meta["confidence_threshold"] == 0.5 and meta["max_batch"] == 1000

    field.device.refresh_from_db()
    assert field.device.last_seen_at is not None


@pytest.mark.django_db
def test_no_bundle_on_the_channel_is_404_with_a_reason(project, mle):
    token = devices.create_device(project, name="cam-9").secret
    for url in ("/api/v1/device/bundle", "/api/v1/device/bundle/meta"):
        response = device_client(token).get(url)
        assert response.status_code == 404
        assert "No bundle is published on the stable channel" in response.json()["detail"]


@pytest.mark.django_db
def test_canary_devices_get_the_canary_bundle_by_their_stable_bucket(field):
    canary_version = ready_version(field.project)  # never promoted: canary only
    canary_export = ready_export(canary_version, b"canary bundle")
    with pytest.raises(devices.DeploymentError, match="never been promoted"):
        channels.publish(field.stable, canary_export)
    channels.publish(field.canary, canary_export, user=field.mle)
    channels.set_share(field.canary, 30, user=field.mle)
    issued = [devices.create_device(field.project, name=f"d{i}") for i in range(40)]
    for one in issued:
        response = device_client(one.secret).get("/api/v1/device/bundle")
        expected = "canary" if keys.canary_bucket(one.obj.device_uid) < 30 else "stable"
        assert response["X-Concord-Channel"] == expected
        assert response["ETag"] == f'"{(canary_export if expected == "canary" else field.export).sha256}"'
    assert any(keys.canary_bucket(one.obj.device_uid) < 30 for one in issued)


# --------------------------------------------------------------------------------------------
# Telemetry
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_batch_lands_and_a_retry_lands_nothing_twice(field):
    batch = [record(seq, field.export, cls, 0.9) for seq, cls in [(1, "crow"), (2, "dove"), (3, "owl")]]
    first = send(field.token, batch)
    assert first.status_code == 200, first.json()
    assert first.json() == {
        "accepted": 3, "duplicates": 0, "rejected": [], "inputs_wanted": [], "inputs_stored": 0, "inputs_ignored": 0,
    }  # fmt: skip
    again = send(field.token, batch, gzip_body=True)
    assert again.status_code == 200 and again.json()["accepted"] == 3 and again.json()["duplicates"] == 3
    rows = TelemetryRecord.objects.filter(device=field.device).order_by("seq")
    assert rows.count() == 3
    row = rows[1]
    assert (row.channel, row.export_id, row.predicted_class.name) == ("stable", field.export.pk, "dove")
    assert row.confidence == 0.9
    assert row.project_id == field.project.pk and row.latency_ms == 3.5


@pytest.mark.django_db
def test_each_bad_record_is_refused_with_its_reason_and_the_good_ones_land(field, other_project, settings):
    settings.CONCORD_DEPLOYMENT = {**settings.CONCORD_DEPLOYMENT, "MAX_INPUT_BYTES": 2000}
    foreign = ready_export(ready_version(other_project), b"other project's bundle")
    unpublished = ready_export(ready_version(field.project), b"never on a channel")
    now = datetime.now(UTC)
    good = record(1, field.export)
    batch = [
        good,
        record(2, foreign),
        record(3, unpublished),
        record(4, field.export, predicted_at=(now + timedelta(hours=1)).isoformat()),
        record(5, field.export, predicted_at=(now - timedelta(days=31)).timestamp()),
        record(6, field.export, cls="eagle"),
        record(7, field.export, score=0.2, input=b64(b"GIF89a not an image we take")),
        record(8, field.export, score=0.2, input=b64(png_bytes(size=(400, 400)) + b"\0" * 3000)),
        {k: v for k, v in record(9, field.export).items() if k != "latency_ms"},
        record(-1, field.export),
        record(1, field.export),
        record(10, field.export, predicted_at="yesterday"),
        record(11, field.export, predicted_at="2026-12-02T01:00:00"),
        record(12, field.export, top_scores={"crow": 1.5}),
        record(13, field.export, input="!!not base64!!", score=0.1),
        "not an object",
        record(14, field.export, score=0.2, input=b64(b"\x89PNG\r\n\x1a\n truncated")),
    ]
    response = send(field.token, batch)
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    reasons = {r["index"]: (r["field"], r["reason"]) for r in body["rejected"]}
    assert reasons == {
        1: ("bundle_sha256", "is not a bundle published to this project's channels"),
        2: ("bundle_sha256", "is not a bundle published to this project's channels"),
        3: ("predicted_at", "is in the future (check the device's clock)"),
        4: ("predicted_at", "is older than the server keeps telemetry"),
        5: ("predicted_class", "'eagle' is not a class of this bundle"),
        6: ("input", "is not a PNG or JPEG image"),
        7: ("input", reasons[7][1]),
        8: ("latency_ms", "is required"),
        9: ("seq", "must be a whole number from 0 to 2**63-1"),
        10: ("seq", "appears twice in this batch"),
        11: ("predicted_at", "is not an ISO 8601 time"),
        12: ("predicted_at", "has no time zone (add Z or +00:00)"),
        13: ("top_scores", "scores are between 0 and 1"),
        14: ("input", "is not valid base64"),
        15: ("record", "must be a JSON object"),
        16: ("input", reasons[16][1]),
    }
    assert "2,000 bytes" in reasons[7][1]
    assert "corrupt or truncated" in reasons[16][1] or "not an image" in reasons[16][1]
    assert list(TelemetryRecord.objects.values_list("seq", flat=True)) == [1]
    assert not Item.objects.filter(source_name="field").exists()


@pytest.mark.django_db
def test_a_batch_of_only_bad_records_is_400_and_writes_nothing(field):
    response = send(field.token, [record(1, field.export, cls="eagle")])
    assert response.status_code == 400 and response.json()["accepted"] == 0
    assert response.json()["rejected"][0]["field"] == "predicted_class"
    assert not TelemetryRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "encoding", "status", "field_or_text"),
    [
        (b"{not json", None, 400, "body"),
        (b'{"recs": []}', None, 400, "records"),
        (b"[1, 2]", None, 400, "records"),
        (b"\x1f\x8b\x08 not really gzip", "gzip", 400, "Content-Encoding"),
        (b"{}", "br", 400, "Content-Encoding"),
    ],
)
def test_a_bad_body_is_400_naming_the_field(field, raw, encoding, status, field_or_text):
    headers = {"HTTP_CONTENT_ENCODING": encoding} if encoding else {}
    response = send(field.token, None, raw=raw, **headers)
    assert response.status_code == status and field_or_text in response.json()


@pytest.mark.django_db
def test_size_limits_refuse_with_413_and_a_reason(field, settings):
    settings.CONCORD_DEPLOYMENT = {
        **settings.CONCORD_DEPLOYMENT, "MAX_BATCH": 5, "MAX_BODY_BYTES": 50_000, "MAX_DECOMPRESSED_BYTES": 200_000,
    }  # fmt: skip
    too_many = send(field.token, [record(i, field.export) for i in range(6)])
    assert too_many.status_code == 413 and "at most 5 records; this one has 6" in too_many.json()["detail"]
    too_big = send(field.token, None, raw=b" " * 60_000)
    assert too_big.status_code == 413 and "the limit is 50,000" in too_big.json()["detail"]
    # A gzip bomb: 100 MB of spaces in ~100 KB. Refused after inflating no more than the cap.
    bomb = gzip.compress(b'{"records": [' + b" " * 20_000_000 + b"]}", compresslevel=9)
    assert len(bomb) < 50_000
    response = send(field.token, None, raw=bomb, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413 and "decompresses to more than 200,000 bytes" in response.json()["detail"]
    assert not TelemetryRecord.objects.exists()
    ok = send(field.token, [record(1, field.export)], gzip_body=True)
    assert ok.status_code == 200 and ok.json()["accepted"] == 1


@pytest.mark.django_db
def test_the_rate_limit_is_per_device_and_answers_429_with_retry_after(field, settings):
    settings.CONCORD_DEPLOYMENT = {**settings.CONCORD_DEPLOYMENT, "BATCHES_PER_MINUTE": 3}
    other = devices.create_device(field.project, name="cam-2").secret
    for seq in range(3):
        assert send(field.token, [record(seq, field.export)]).status_code == 200
    refused = send(field.token, [record(9, field.export)])
    assert refused.status_code == 429 and "more than 3 requests in a minute" in refused.json()["detail"]
    assert 1 <= int(refused["Retry-After"]) <= 61
    assert send(other, [record(9, field.export)]).status_code == 200  # another device: its own count
    assert not TelemetryRecord.objects.filter(device=field.device, seq=9).exists()


# --------------------------------------------------------------------------------------------
# Sampled inputs become field items
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_low_confidence_inputs_sent_up_front_become_field_items(field):
    image = png_bytes(shade=77, size=(20, 12))
    response = send(field.token, [record(1, field.export, "owl", 0.3, input=b64(image))])
    body = response.json()
    assert response.status_code == 200 and body["inputs_stored"] == 1 and body["inputs_wanted"] == []
    row = TelemetryRecord.objects.get(device=field.device, seq=1)
    item = row.item
    assert row.input_requested and item.project_id == field.project.pk and (item.width, item.height) == (20, 12)
    assert item.source_name == "field" and item.metadata["source"] == "field"
    assert item.metadata["device"] == "cam-1" and item.metadata["channel"] == "stable"
    assert item.metadata["bundle"] == f"export-{field.export.pk}"
    assert item.metadata["_field"]["confidence"] == 0.3 and item.metadata["_field"]["seq"] == 1
    assert default_storage.open(item.image.name).read() == image and default_storage.exists(item.thumbnail.name)


@pytest.mark.django_db
def test_the_server_asks_for_sampled_inputs_and_links_them_when_they_come(field):
    channels.update_settings(field.stable, sample_rate=1.0)  # every input wanted
    first = send(field.token, [record(1, field.export, score=0.95), record(2, field.export, score=0.95)]).json()
    assert first["inputs_wanted"] == [1, 2] and first["inputs_stored"] == 0
    image = png_bytes(shade=5)
    second = send(field.token, [record(2, field.export, score=0.95, input=b64(image))]).json()
    assert second == {
        "accepted": 1, "duplicates": 1, "rejected": [], "inputs_wanted": [], "inputs_stored": 1, "inputs_ignored": 0,
    }  # fmt: skip
    assert TelemetryRecord.objects.get(device=field.device, seq=2).item.sha256
    assert send(field.token, [record(1, field.export, score=0.95)]).json()["inputs_wanted"] == [1]  # still wanted
    # Not asked for: ignored, nothing stored.
    channels.update_settings(field.stable, sample_rate=0.0)
    third = send(field.token, [record(3, field.export, score=0.95, input=b64(png_bytes(shade=9)))]).json()
    assert third["inputs_ignored"] == 1 and third["inputs_stored"] == 0
    assert Item.objects.filter(source_name="field").count() == 1


@pytest.mark.django_db
def test_sampling_draws_close_to_the_rate_and_answers_a_retry_the_same(field):
    channels.update_settings(field.stable, sample_rate=0.2)
    batch = [record(seq, field.export, score=0.99) for seq in range(1000)]
    first = send(field.token, batch).json()["inputs_wanted"]
    assert 150 <= len(first) <= 250
    assert send(field.token, batch).json()["inputs_wanted"] == first


@pytest.mark.django_db(transaction=True)
def test_a_failed_write_leaves_no_records_items_or_files(field, monkeypatch):
    from deployment import telemetry

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(telemetry, "_insert", broken)  # after the items were written
    image = png_bytes(shade=123)
    with pytest.raises(RuntimeError):
        telemetry.ingest(field.device, {"records": [record(1, field.export, score=0.1, input=b64(image))]})
    assert not TelemetryRecord.objects.exists() and not Item.objects.filter(source_name="field").exists()
    for folder in ("items", "thumbnails"):
        assert not os.path.exists(default_storage.path(folder)) or not any(
            files for _, _, files in os.walk(default_storage.path(folder))
        )


# --------------------------------------------------------------------------------------------
# Token reach
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_revoked_token_is_refused_at_once(field):
    client = device_client(field.token)
    assert client.get("/api/v1/device/bundle/meta").status_code == 200
    devices.revoke_device(field.device)
    response = client.get("/api/v1/device/bundle/meta")
    assert response.status_code == 401 and response.json()["detail"] == "Unknown or revoked device token."
    assert send(field.token, [record(1, field.export)]).status_code == 401
    assert device_client("x" * 43).get("/api/v1/device/bundle").status_code == 401


@pytest.mark.django_db
def test_people_cannot_use_the_device_endpoints(field, api_as, client):
    for url in ("/api/v1/device/bundle", "/api/v1/device/bundle/meta"):
        assert api_as(field.mle).get(url).status_code in (401, 403)
        assert APIClient().get(url).status_code == 401
    client.force_login(field.mle)
    assert client.get("/api/v1/device/bundle/meta").status_code in (401, 403)
    assert client.post(TELEMETRY, data=b"{}", content_type="application/json").status_code in (401, 403)


def _all_paths(patterns, prefix=""):
    """Every URL pattern as a concrete path: converters filled with plausible values."""
    from django.urls import URLPattern, URLResolver

    fill = {"int": "1", "slug": "x", "str": "stable", "path": "x", "uuid": "00000000-0000-0000-0000-000000000000"}
    for pattern in patterns:
        route = str(pattern.pattern)
        if hasattr(pattern.pattern, "converters"):
            for name, converter in pattern.pattern.converters.items():
                kind = type(converter).__name__.replace("Converter", "").lower()
                route = route.replace(f"<{kind}:{name}>", fill.get(kind, "1")).replace(f"<{name}>", "x")
        route = route.lstrip("^").rstrip("$").replace("\\Z", "")
        if isinstance(pattern, URLResolver):
            yield from _all_paths(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            yield "/" + prefix + route


@pytest.mark.django_db
def test_a_device_token_opens_nothing_but_the_device_endpoints(field):
    """Every URL pattern in the URLconf, with every method: 401/403, except the device's own."""
    from django.urls import get_resolver

    paths = sorted(set(_all_paths(get_resolver().url_patterns)))
    assert len(paths) > 50 and "/api/v1/projects/1/devices/" in paths
    client = device_client(field.token)
    opened = []
    for path in paths:
        if path.startswith("/api/v1/device/"):
            continue
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            response = client.generic(method, path, b"{}", content_type="application/json")
            if response.status_code not in (401, 403):
                opened.append((method, path, response.status_code))
    assert opened == []
    # The device endpoints answer it, for its own project only.
    assert client.get("/api/v1/device/bundle/meta").json()["export_id"] == field.export.pk
