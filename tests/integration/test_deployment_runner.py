"""The device runner's reporting mode against a real live server: the bundle cached by ETag, the
offline buffer (server down, then up: nothing lost, nothing doubled), inputs sent when asked for,
the command line in a fresh interpreter without Django, and a real TFLite bundle end to end."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from annotation.models import Item
from deployment import channels
from deployment.models import TelemetryRecord
from training.device.classify import Reporter, ReporterError

from .deployment_fixtures import field_fixture  # noqa: F401
from .imaging import png_bytes

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "training" / "device" / "classify.py"


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there now: the server is "down"


class Recording:
    """urlopen that notes each answer's status (the HTTP itself is real)."""

    def __init__(self):
        import urllib.request

        self.statuses = []
        self._open = urllib.request.urlopen

    def __call__(self, request, timeout):
        import urllib.error

        try:
            response = self._open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            self.statuses.append((request.full_url.rsplit("/", 1)[-1], exc.code))
            raise
        self.statuses.append((request.full_url.rsplit("/", 1)[-1], response.status))
        return response


def images(tmp_path, n, start=0):
    paths = []
    for i in range(start, start + n):
        path = tmp_path / f"img{i}.png"
        path.write_bytes(png_bytes(shade=i * 7 % 256, size=(8, 8)))
        paths.append(path)
    return paths


def by_name(scores):
    """A classifier standing in for the TFLite interpreter: scores by the image's number."""
    return lambda path: scores[int(Path(path).stem.removeprefix("img")) % len(scores)]


CONFIDENT = [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.05, 0.9]]


@pytest.mark.django_db(transaction=True)
def test_server_down_then_up_loses_nothing_and_doubles_nothing(field, live_server, tmp_path):
    buffer = tmp_path / "device" / "telemetry.jsonl"
    buffer.parent.mkdir()
    opener = Recording()
    online = Reporter(live_server.url, field.token, buffer, classifier=by_name(CONFIDENT), opener=opener)
    meta = online.sync_bundle()
    assert meta["sha256"] == field.export.sha256 and meta["classes"] == ["crow", "dove", "owl"]
    assert (buffer.parent / "telemetry.jsonl.bundle.zip").read_bytes() == b"stable bundle"
    online.sync_bundle()
    assert opener.statuses == [("meta", 200), ("bundle", 200), ("meta", 200), ("bundle", 304)]

    # The server goes down: predictions keep being made (cached bundle) and buffered.
    down = closed_port_url()
    offline = Reporter(down, field.token, buffer, classifier=by_name(CONFIDENT))
    offline.sync_bundle()  # unreachable: falls back to the cached bundle
    offline.classify(images(tmp_path, 4))
    result = offline.flush()
    assert result["sent"] == 0 and result["kept"] == 4 and "cannot reach" in result["error"]
    # A restart (a new process): the sequence numbers continue, nothing is overwritten.
    restarted = Reporter(down, field.token, buffer, classifier=by_name(CONFIDENT))
    restarted.classify(images(tmp_path, 3, start=4))
    assert [r["seq"] for r in restarted.pending()] == list(range(7))
    assert not TelemetryRecord.objects.exists()

    # The server is back: everything goes, in batches of 3, and leaves the buffer.
    back = Reporter(live_server.url, field.token, buffer, classifier=by_name(CONFIDENT), batch_size=3)
    snapshot = buffer.read_bytes()
    assert back.flush() == {"sent": 7, "dropped": 0, "kept": 0, "error": None}
    assert buffer.read_text() == ""
    rows = list(TelemetryRecord.objects.filter(device=field.device).order_by("seq"))
    assert [r.seq for r in rows] == list(range(7))
    assert [r.predicted_class.name for r in rows] == ["crow", "dove", "owl", "crow", "dove", "owl", "crow"]
    assert rows[1].top_scores == {"dove": 0.8, "crow": 0.1, "owl": 0.1} and rows[1].confidence == 0.8

    # A crash between the server's 2xx and the buffer's rewrite: the batch goes again, lands once.
    buffer.write_bytes(snapshot)
    assert back.flush()["sent"] == 7
    assert TelemetryRecord.objects.filter(device=field.device).count() == 7


@pytest.mark.django_db(transaction=True)
def test_inputs_go_up_front_below_the_threshold_and_later_when_asked(field, live_server, tmp_path):
    channels.update_settings(field.stable, sample_rate=1.0, confidence_threshold=0.5)
    unsure = [[0.4, 0.35, 0.25], [0.9, 0.05, 0.05]]
    reporter = Reporter(live_server.url, field.token, tmp_path / "buf.jsonl", classifier=by_name(unsure))
    reporter.sync_bundle()
    reporter.classify(images(tmp_path, 2))
    first = reporter.flush()
    # seq 0 was unsure: its image went with it; seq 1 was asked for and went in the next batch.
    assert first == {"sent": 3, "dropped": 0, "kept": 0, "error": None}
    rows = {r.seq: r for r in TelemetryRecord.objects.filter(device=field.device)}
    assert rows[0].item is not None and rows[1].item is not None and len(rows) == 2
    assert Item.objects.filter(source_name="field").count() == 2
    assert rows[0].item.metadata["channel"] == "stable"


@pytest.mark.django_db(transaction=True)
def test_a_revoked_token_stops_the_runner_with_its_reason_and_keeps_the_buffer(field, live_server, tmp_path):
    from deployment import devices

    reporter = Reporter(live_server.url, field.token, tmp_path / "buf.jsonl", classifier=by_name(CONFIDENT))
    reporter.sync_bundle()
    reporter.classify(images(tmp_path, 2))
    devices.revoke_device(field.device)
    with pytest.raises(ReporterError, match="refused the device token"):
        reporter.flush()
    assert len(reporter.pending()) == 2


@pytest.mark.django_db(transaction=True)
def test_the_command_line_sends_the_buffer_without_django(field, live_server, tmp_path):
    buffer = tmp_path / "buf.jsonl"
    reporter = Reporter(live_server.url, field.token, buffer, classifier=by_name(CONFIDENT))
    reporter.sync_bundle()
    reporter.classify(images(tmp_path, 3))
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import classify; rc = classify.main(sys.argv[2:]); "
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'tensorflow', 'keras'}); "
        "print('LEAKED' if leaked else 'CLEAN', rc)"
    )
    args = ["report", "--server", live_server.url, "--token", field.token, "--buffer", str(buffer)]
    run = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", code, str(RUNNER.parent), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout.strip() == "CLEAN 0", run.stderr
    assert "sent 3, dropped 0, buffered 0" in run.stderr
    assert TelemetryRecord.objects.filter(device=field.device).count() == 3
    bad = subprocess.run(  # noqa: S603
        [sys.executable, str(RUNNER), "report", "--server", "ftp://x", "--token", "t", "--buffer", str(buffer)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "http:// or https://" in bad.stderr


@pytest.mark.django_db(transaction=True)
def test_the_runner_reports_the_predictions_of_a_real_tflite_bundle(project, mle, live_server, tmp_path, settings):
    """No stand-in classifier: a small Keras CNN trained and exported to TFLite here, published on
    stable, fetched by the runner and run by its interpreter; what lands is what the bundle says."""
    from annotation.models import Item as ItemModel
    from deployment import devices
    from training import exports, registry, services
    from training.device.classify import Bundle
    from training.models import ModelVersion
    from training.tasks import export_model

    from .training_data import add_digit_items

    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "CV_BELOW_LABELS": 10}
    add_digit_items(project, 60)
    version = ModelVersion.objects.create(
        project=project,
        trainer="keras_cnn",
        hyperparameters=services.check_hyperparameters(
            "keras_cnn", {"epochs": 4, "image_size": 16, "filters": 8, "batch_size": 8}
        ),
        policy=services.check_policy(None),
    )
    assert services.run_training(version.pk) == "ready", ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    export = exports.start_export(version, "float32", queue_task=False)
    assert export_model(export.pk) == "ready"
    export.refresh_from_db()
    registry.promote(version, note="a tiny test model: only its bundle is used")
    stable = channels.channels_of(project)["stable"]
    channels.publish(stable, export)
    channels.update_settings(stable, sample_rate=0.0, confidence_threshold=0.0)
    token = devices.create_device(project, name="pi").secret

    paths = []
    for item in ItemModel.objects.filter(project=project).order_by("pk")[:6]:
        path = tmp_path / f"{item.external_id}.png"
        path.write_bytes(item.image.read())
        paths.append(path)
    reporter = Reporter(live_server.url, token, tmp_path / "device" / "buf.jsonl")
    (tmp_path / "device").mkdir()
    reporter.sync_bundle()
    predictions = reporter.classify(paths)
    assert reporter.flush() == {"sent": 6, "dropped": 0, "kept": 0, "error": None}

    reference = Bundle(tmp_path / "device" / "buf.jsonl.bundle.zip").classify(paths)
    rows = list(TelemetryRecord.objects.filter(project=project).order_by("seq"))
    assert [(r.predicted_class.name, round(r.confidence, 4)) for r in rows] == [
        (name, round(score, 4)) for _, name, score in reference
    ]
    assert [p[1] for p in predictions] == [name for _, name, _ in reference]
    assert all(r.export_id == export.pk and r.latency_ms > 0 for r in rows)
