"""Canary buckets, input sampling and the telemetry record checks: pure functions, no database."""

import base64
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from deployment import keys
from deployment.telemetry_records import Bundle, Refused, check

IDS = [f"device-{i:05d}" for i in range(1000)]


@pytest.mark.parametrize("share", [0, 1, 10, 25, 50, 90, 100])
def test_the_canary_share_over_1000_device_ids_is_close_to_its_percentage(share):
    on = sum(keys.on_canary(uid, share) for uid in IDS)
    # Binomial(1000, p): 4 standard deviations at most (about 63 devices at p = 0.5).
    sd = (1000 * share / 100 * (1 - share / 100)) ** 0.5
    assert abs(on - 10 * share) <= 4 * sd + 1e-9


def test_a_secret_never_starts_with_a_dash_that_a_command_line_would_read_as_an_option(monkeypatch):
    draws = iter(["-leading-dash", "--two", "fine-Token_1"])
    monkeypatch.setattr(keys.secrets, "token_urlsafe", lambda n: next(draws))
    assert keys.new_secret() == "fine-Token_1"


def test_buckets_are_stable_uniform_and_nested_as_the_share_grows():
    assert [keys.canary_bucket(uid) for uid in IDS[:5]] == [keys.canary_bucket(uid) for uid in IDS[:5]]
    counts = Counter(keys.canary_bucket(uid) for uid in IDS)
    assert set(counts) <= set(range(100)) and max(counts.values()) < 25
    at_10 = {uid for uid in IDS if keys.on_canary(uid, 10)}
    at_20 = {uid for uid in IDS if keys.on_canary(uid, 20)}
    assert at_10 < at_20


def test_sampling_is_a_deterministic_draw_at_its_rate():
    drawn = [keys.input_sampled("cam", seq, 0.1) for seq in range(10_000)]
    assert 900 <= sum(drawn) <= 1100 and drawn == [keys.input_sampled("cam", s, 0.1) for s in range(10_000)]
    assert not any(keys.input_sampled("cam", s, 0.0) for s in range(100))
    assert all(keys.input_sampled("cam", s, 1.0) for s in range(100))


def test_tokens_are_random_and_only_their_hash_is_kept():
    a, b = keys.new_secret(), keys.new_secret()
    assert a != b and len(a) == 43 and keys.secret_hash(a) != keys.secret_hash(b) and len(keys.secret_hash(a)) == 64


NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BUNDLES = {"a" * 64: Bundle(export_id=7, channel="stable", class_ids={"cat": 1, "dog": 2})}
LIMITS = {"oldest": NOW - timedelta(days=30), "newest": NOW + timedelta(minutes=5), "max_input_bytes": 100}


def good(**changes):
    base = {
        "seq": 5, "predicted_at": "2026-12-02T11:00:00Z", "bundle_sha256": "a" * 64, "predicted_class": "dog",
        "top_scores": {"dog": 0.8, "cat": 0.2}, "latency_ms": 4,
    }  # fmt: skip
    base.update(changes)
    return base


def test_a_good_record_is_read_with_its_class_confidence_and_time():
    checked = check(good(), 0, bundles=BUNDLES, **LIMITS)
    assert (checked.seq, checked.class_id, checked.confidence, checked.bundle.export_id) == (5, 2, 0.8, 7)
    assert checked.predicted_at == datetime(2026, 12, 2, 11, tzinfo=UTC) and checked.input is None
    by_epoch = check(good(predicted_at=NOW.timestamp() - 60, confidence=0.5), 0, bundles=BUNDLES, **LIMITS)
    assert by_epoch.predicted_at == NOW - timedelta(minutes=1) and by_epoch.confidence == 0.5
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 10
    assert check(good(input=base64.b64encode(png).decode()), 0, bundles=BUNDLES, **LIMITS).input == png


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"seq": True}, "seq"), ({"seq": 1.5}, "seq"), ({"seq": None}, "seq"),
        ({"bundle_sha256": "b" * 64}, "bundle_sha256"),
        ({"bundle_sha256": 5}, "bundle_sha256"), ({"predicted_class": "cow"}, "predicted_class"),
        ({"predicted_class": ["dog"]}, "predicted_class"), ({"top_scores": []}, "top_scores"),
        ({"top_scores": {"cow": 0.1}}, "top_scores"), ({"top_scores": {"dog": float("nan")}}, "top_scores"),
        ({"top_scores": {"cat": 0.9}}, "top_scores"), ({"confidence": 2}, "confidence"),
        ({"latency_ms": -1}, "latency_ms"), ({"latency_ms": "3"}, "latency_ms"),
        ({"predicted_at": "2026-12-02T12:06:00+00:00"}, "predicted_at"), ({"predicted_at": 1e20}, "predicted_at"),
        ({"predicted_at": "2026-11-01T00:00:00Z"}, "predicted_at"), ({"input": 5}, "input"),
        ({"input": base64.b64encode(b"\xff\xd8\xff" + b"x" * 200).decode()}, "input"),
        ({"input": base64.b64encode(b"plain text").decode()}, "input"), ({"input": ""}, "input"),
    ],
)  # fmt: skip
def test_each_bad_field_is_refused_by_name(changes, field):
    with pytest.raises(Refused) as refused:
        check(good(**changes), 0, bundles=BUNDLES, **LIMITS)
    assert refused.value.field == field and refused.value.reason
