"""Checking telemetry records, one by one, with a reason for each refusal. No database.

Plain Python rather than a DRF serializer: a batch holds up to a thousand records and the target is
thousands of records a second on two cores; a serializer per record costs ~10x this. Each refusal
still names the field and says why, as a serializer's would.

A record (JSON object)::

    seq            int >= 0, the device's own sequence number (unique per device)
    predicted_at   ISO 8601 with a time zone, or seconds since the epoch
    bundle_sha256  the SHA-256 of the bundle that predicted (64 hex digits)
    predicted_class  a class name of that bundle
    top_scores     {class name: score in [0, 1]}, at most MAX_TOP_SCORES, with the predicted class
    latency_ms     number >= 0
    confidence     optional; the predicted class's top score when left out
    input          optional; the input image, base64 (PNG or JPEG)
"""

import base64
import binascii
import math
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_TOP_SCORES = 20
MAX_LATENCY_MS = 3_600_000.0
MAX_SEQ = 2**63 - 1
REQUIRED = ("seq", "predicted_at", "bundle_sha256", "predicted_class", "top_scores", "latency_ms")


@dataclass
class Bundle:
    """What a record's bundle_sha256 may name: an export that has been on one of the project's channels."""

    export_id: int
    channel: str
    class_ids: dict  # {class name: LabelClass id}


@dataclass
class Checked:
    index: int
    seq: int
    bundle: Bundle
    class_id: int
    confidence: float
    top_scores: dict
    latency_ms: float
    predicted_at: datetime
    input: bytes | None


class Refused(Exception):
    def __init__(self, field, reason):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _number(value, field):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Refused(field, "must be a finite number")
    return float(value)


def parse_time(value) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise Refused("predicted_at", "is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise Refused("predicted_at", "has no time zone (add Z or +00:00)")
        return parsed
    seconds = _number(value, "predicted_at")
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise Refused("predicted_at", "is out of range") from None


def decode_input(value, max_bytes):
    if not isinstance(value, str):
        raise Refused("input", "must be base64 text")
    if len(value) > (max_bytes + 2) // 3 * 4 + 4:
        raise Refused("input", f"is larger than the limit of {max_bytes:,} bytes")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("input", "is not valid base64") from None
    if len(data) > max_bytes:
        raise Refused("input", f"is {len(data):,} bytes; the limit is {max_bytes:,}")
    if not data:
        raise Refused("input", "is empty")
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise Refused("input", "is not a PNG or JPEG image")
    return data


def check(raw, index, *, bundles, oldest, newest, max_input_bytes) -> Checked:
    """One record, checked; raises Refused(field, reason). `bundles`: {sha256: Bundle};
    `oldest`/`newest`: the accepted range of predicted_at."""
    if not isinstance(raw, dict):
        raise Refused("record", "must be a JSON object")
    missing = [name for name in REQUIRED if name not in raw or raw[name] is None]
    if missing:
        raise Refused(missing[0], "is required")
    seq = raw["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise Refused("seq", "must be a whole number from 0 to 2**63-1")
    sha = raw["bundle_sha256"]
    bundle = bundles.get(sha) if isinstance(sha, str) else None
    if bundle is None:
        raise Refused("bundle_sha256", "is not a bundle published to this project's channels")
    name = raw["predicted_class"]
    class_id = bundle.class_ids.get(name) if isinstance(name, str) else None
    if class_id is None:
        raise Refused("predicted_class", f"{str(name)[:100]!r} is not a class of this bundle")
    scores = raw["top_scores"]
    if not isinstance(scores, dict) or not scores:
        raise Refused("top_scores", "must be an object {class name: score}")
    if len(scores) > MAX_TOP_SCORES:
        raise Refused("top_scores", f"has {len(scores)} entries; the limit is {MAX_TOP_SCORES}")
    for key, score in scores.items():
        if key not in bundle.class_ids:
            raise Refused("top_scores", f"{key[:100]!r} is not a class of this bundle")
        if not 0 <= _number(score, "top_scores") <= 1:
            raise Refused("top_scores", "scores are between 0 and 1")
    if "confidence" in raw and raw["confidence"] is not None:
        confidence = _number(raw["confidence"], "confidence")
        if not 0 <= confidence <= 1:
            raise Refused("confidence", "must be between 0 and 1")
    elif name in scores:
        confidence = float(scores[name])
    else:
        raise Refused("top_scores", "must include the predicted class (or send confidence)")
    latency = _number(raw["latency_ms"], "latency_ms")
    if not 0 <= latency <= MAX_LATENCY_MS:
        raise Refused("latency_ms", f"must be from 0 to {MAX_LATENCY_MS:,.0f}")
    at = parse_time(raw["predicted_at"])
    if at > newest:
        raise Refused("predicted_at", "is in the future (check the device's clock)")
    if at < oldest:
        raise Refused("predicted_at", "is older than the server keeps telemetry")
    data = decode_input(raw["input"], max_input_bytes) if raw.get("input") is not None else None
    return Checked(index, seq, bundle, class_id, confidence, scores, latency, at, data)
