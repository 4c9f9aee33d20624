"""The device endpoints, /api/v1/device/...: enrol, the bundle and its metadata, telemetry in.

Only a device token opens them (device_auth.py); every query starts from the authenticated device.
The sampling protocol is in deployment/telemetry.py's docstring.
"""

import json
import zlib

from django.conf import settings
from django.http import FileResponse, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.errors import api_error
from training.api import BundleGone, bundle_file

from . import devices, telemetry
from .channels import assigned_channel
from .device_auth import DeviceTokenAuthentication, IsDevice
from .errors import DeploymentError


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class DeviceView(APIView):
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]
    parser_classes = []  # telemetry reads its body itself, with its own caps


class EnrolSerializer(serializers.Serializer):
    secret = serializers.CharField(max_length=200, help_text="The fleet's enrolment secret.")
    device_uid = serializers.CharField(max_length=100, help_text="The device's own stable id.")
    name = serializers.CharField(max_length=100, required=False, help_text="Defaults to device_uid.")


class EnrolledSerializer(serializers.Serializer):
    device_id = serializers.IntegerField()
    token = serializers.CharField(help_text="The device's token: shown once, send it as 'Authorization: Bearer'.")
    project = serializers.IntegerField()


class Enrol(APIView):
    """A device of a fleet enrols itself with the fleet's shared secret and receives its own token."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(request=EnrolSerializer, responses={201: EnrolledSerializer})
    def post(self, request):
        data = EnrolSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        try:
            issued = devices.enrol(fields["secret"], device_uid=fields["device_uid"], name=fields.get("name"))
        except DeploymentError as exc:
            raise api_error(exc) from exc
        body = {"device_id": issued.obj.pk, "token": issued.secret, "project": issued.obj.project_id}
        return Response(body, status=status.HTTP_201_CREATED)


def _channel_with_bundle(device):
    channel = assigned_channel(device)
    if channel.export_id is None:
        raise NotFound(f"No bundle is published on the {channel.name} channel of this project yet.")
    return channel


class BundleMetaSerializer(serializers.Serializer):
    channel = serializers.CharField()
    sha256 = serializers.CharField()
    export_id = serializers.IntegerField()
    format = serializers.CharField()
    classes = serializers.ListField(child=serializers.CharField(), help_text="Class names in output order.")
    sample_rate = serializers.FloatField()
    confidence_threshold = serializers.FloatField(help_text="Send the input of any prediction less confident.")
    max_batch = serializers.IntegerField()
    max_input_bytes = serializers.IntegerField()


class BundleMeta(DeviceView):
    """What the device needs besides the zip: its channel, the bundle's SHA-256, classes, sampling."""

    @extend_schema(responses={200: BundleMetaSerializer})
    def get(self, request):
        channel = _channel_with_bundle(request.auth)
        export = channel.export
        snapshot = export.model_version.snapshot
        cfg = settings.CONCORD_DEPLOYMENT
        body = {
            "channel": channel.name,
            "sha256": export.sha256,
            "export_id": export.pk,
            "format": export.format,
            "classes": [c["name"] for c in (snapshot.classes if snapshot else [])],
            "sample_rate": channel.sample_rate,
            "confidence_threshold": channel.confidence_threshold,
            "max_batch": cfg["MAX_BATCH"],
            "max_input_bytes": cfg["MAX_INPUT_BYTES"],
        }
        return Response(body)


class BundleDownload(DeviceView):
    """The zip of the device's channel; ETag is its SHA-256, If-None-Match with it answers 304."""

    @extend_schema(responses={(200, "application/zip"): bytes, 304: OpenApiResponse(description="Unchanged.")})
    def get(self, request):
        channel = _channel_with_bundle(request.auth)
        export = channel.export
        etag = f'"{export.sha256}"'
        asked = [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]
        if etag in asked or f"W/{etag}" in asked or "*" in asked:
            response = HttpResponse(status=304)
        else:
            path = bundle_file(export)
            if path is None:
                raise BundleGone(f"The bundle file of export {export.pk} is gone from the server.")
            response = FileResponse(path.open("rb"), content_type="application/zip")
        response["ETag"] = etag
        response["X-Concord-Channel"] = channel.name
        response["Cache-Control"] = "private, no-cache"
        return response


def read_body(request) -> bytes:
    """The request body, decompressed if gzip, within the configured caps (413 beyond them)."""
    cfg = settings.CONCORD_DEPLOYMENT
    max_body, max_plain = cfg["MAX_BODY_BYTES"], cfg["MAX_DECOMPRESSED_BYTES"]
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > max_body:
        raise PayloadTooLarge(f"The body is {declared:,} bytes; the limit is {max_body:,}. Send smaller batches.")
    body = request._request.read(max_body + 1)
    if len(body) > max_body:
        raise PayloadTooLarge(f"The body is over {max_body:,} bytes. Send smaller batches.")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            plain = inflater.decompress(body, max_plain + 1)
        except zlib.error as exc:
            raise _bad("Content-Encoding", f"the body is not valid gzip ({exc})") from None
        if len(plain) > max_plain or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"The body decompresses to more than {max_plain:,} bytes.")
        if not inflater.eof:
            raise _bad("Content-Encoding", "the gzip body is truncated")
        return plain
    if encoding not in ("identity", ""):
        raise _bad("Content-Encoding", f"{encoding!r} is not supported; send gzip or nothing")
    return body


def _bad(field, message):
    return serializers.ValidationError({field: [message]})


class TelemetryRecordSerializer(serializers.Serializer):
    """One prediction, as deployment/telemetry_records.py checks it (documentation of the body)."""

    seq = serializers.IntegerField(min_value=0, help_text="The device's own sequence number; unique per device.")
    predicted_at = serializers.DateTimeField(help_text="ISO 8601 with a time zone, or seconds since the epoch.")
    bundle_sha256 = serializers.CharField(help_text="SHA-256 of the bundle that predicted.")
    predicted_class = serializers.CharField(help_text="A class name of that bundle.")
    top_scores = serializers.DictField(child=serializers.FloatField(), help_text="{class name: score in [0, 1]}")
    latency_ms = serializers.FloatField(min_value=0)
    confidence = serializers.FloatField(required=False, help_text="Default: the predicted class's top score.")
    input = serializers.CharField(required=False, help_text="The input image (PNG or JPEG), base64.")


class TelemetryBatchSerializer(serializers.Serializer):
    records = TelemetryRecordSerializer(many=True, help_text="At most max_batch (see bundle/meta).")


class TelemetryAnswerSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Records stored, now or by an earlier send of the same seq.")
    duplicates = serializers.IntegerField()
    rejected = serializers.JSONField(help_text="[{index, seq, field, reason}]")
    inputs_wanted = serializers.ListField(child=serializers.IntegerField(), help_text="Send these seqs' inputs.")
    inputs_stored = serializers.IntegerField()
    inputs_ignored = serializers.IntegerField()


class Telemetry(DeviceView):
    """A batch of prediction records (JSON, gzip accepted): `{"records": [...]}`. Good records land,
    bad ones come back by index with their reason: 200 when any landed, 400 when none did."""

    @extend_schema(
        request={"application/json": TelemetryBatchSerializer},
        responses={200: TelemetryAnswerSerializer, 400: TelemetryAnswerSerializer},
        description="Send `Content-Encoding: gzip` to compress. The sampling protocol: inputs of predictions below "
        "the channel's confidence_threshold may go with the record; the answer's inputs_wanted lists the seqs "
        "whose input the server also wants: send those records again, same seq, with input.",
    )
    def post(self, request):
        body = read_body(request)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _bad("body", f"not JSON ({exc})") from None
        try:
            outcome = telemetry.ingest(request.auth, payload)
        except telemetry.BatchTooLarge as exc:
            raise PayloadTooLarge(exc.message) from exc
        except DeploymentError as exc:
            raise api_error(exc) from exc
        code = status.HTTP_400_BAD_REQUEST if outcome.rejected and not outcome.accepted else status.HTTP_200_OK
        return Response(outcome.as_json(), status=code)
