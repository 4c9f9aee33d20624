"""TFLite export: conversion, parity check, bundle, device runner, rejection, API, pages, command."""

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from annotation.models import Item, LabelClass
from training import exports, services
from training.models import ModelExport, ModelVersion, SnapshotLabel
from training.tasks import export_model

from .training_data import add_digit_items

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "training" / "device" / "classify.py"

# Runs the device runner in a fresh interpreter (outside the repo, so no Django on the path) and
# reports whether TensorFlow or Keras got imported.
RUN_AND_CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import classify
rc = classify.main(sys.argv[2:])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras", "django"})
print("LEAKED" if leaked else "CLEAN", rc, leaked[:3])
"""


def run_runner(*args, cwd):
    return subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, str(RUNNER), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def holdout(settings):
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "CV_BELOW_LABELS": 10}


@pytest.fixture
def keras_model(project, holdout):
    """A small Keras CNN on 60 digit images (36 train, 12 dev, 12 test), 16x16 pixels."""
    add_digit_items(project, 60)
    version = ModelVersion.objects.create(
        project=project,
        trainer="keras_cnn",
        hyperparameters=services.check_hyperparameters(
            "keras_cnn", {"epochs": 6, "image_size": 16, "filters": 8, "batch_size": 8, "augment": 0.05}
        ),
        policy=services.check_policy(None),
    )
    assert services.run_training(version.pk) == "ready", ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    return version


def fake_ready_version(project, trainer="keras_cnn"):
    """A ready version with a snapshot and no real artifact: enough for the request-side checks."""
    snapshot = services.build_snapshot(project)
    return ModelVersion.objects.create(
        project=project,
        trainer=trainer,
        snapshot=snapshot,
        status="ready",
        artifact=f"fake/{trainer}.keras",
        hyperparameters=services.check_hyperparameters(trainer, {}),
    )


def fake_ready_export(version, content=b"bundle bytes"):
    path = services.artifact_root() / "exports" / version.short_id / "fake.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return ModelExport.objects.create(
        model_version=version,
        format="int8",
        status="ready",
        bundle=f"exports/{version.short_id}/fake.zip",
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
    )


# --------------------------------------------------------------------------------------------
# The export, its parity check, the bundle and the device runner (one trained model)
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_parity_bundle_runner_rejection_and_command(keras_model, settings, tmp_path):
    version = keras_model
    project = version.project

    # int8 through the task; a second delivery is a no-op
    export = exports.start_export(version, "int8", queue_task=False)
    assert export_model(export.pk) == "ready"
    assert export_model(export.pk) is None
    export.refresh_from_db()
    p = export.parity
    assert export.status == "ready" and export.error == "" and p["split"] == "dev" and p["n"] == 12
    assert p["delta"] == pytest.approx(p["tflite_accuracy"] - p["keras_accuracy"])
    assert p["delta"] >= -0.01 and p["latency_ms"] > 0 and p["representative_n"] == 36
    assert {s["slice"] for s in p["slices"]} <= {"ink=heavy", "ink=light"} and p["slices"]
    for s in p["slices"]:
        assert s["delta"] == pytest.approx(s["tflite_accuracy"] - s["keras_accuracy"])

    # the bundle: checksum of the whole zip, members, metadata
    path = exports.bundle_path(export)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == export.sha256
    assert not [f for f in path.parent.iterdir() if f.name.startswith(".")]  # no temporary file left
    with zipfile.ZipFile(path) as bundle:
        assert sorted(bundle.namelist()) == ["labels.txt", "metadata.json", "model.tflite"]
        meta = json.loads(bundle.read("metadata.json"))
        labels = bundle.read("labels.txt").decode().splitlines()
        assert len(bundle.read("model.tflite")) == export.size_bytes
    names = [c["name"] for c in version.snapshot.classes]
    assert labels == names == meta["classes"] == ["crow", "dove", "owl"]
    assert meta["model_version"] == version.short_id and meta["snapshot_hash"] == version.snapshot.content_hash
    assert meta["input"]["shape"] == [1, 16, 16, 1] and meta["input"]["dtype"] == "int8"
    assert meta["output"]["dtype"] == "int8" and meta["input"]["scale"] > 0 and meta["output"]["scale"] > 0
    assert isinstance(meta["input"]["zero_point"], int)
    assert meta["preprocessing"] == {
        "grayscale": True,
        "resize": [16, 16],
        "resample": "bilinear",
        "scale": 1 / 255,
        "layout": "NHWC",
    }
    assert meta["parity"] == p and meta["created_at"] and meta["format"] == "int8"

    # the device runner, in a fresh interpreter without TensorFlow, agrees with the parity figures
    dev = list(
        SnapshotLabel.objects.filter(snapshot=version.snapshot, split="dev")
        .order_by("item_id")
        .values_list("item__image", "label_class__name")
    )
    images = [Path(settings.MEDIA_ROOT) / name for name, _ in dev]
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", RUN_AND_CHECK, str(RUNNER.parent), str(path), *map(str, images)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("CLEAN 0"), lines[-1]
    predicted = [line.split("\t")[1] for line in lines[:-1]]
    assert len(predicted) == len(dev) == 12
    accuracy = sum(pred == true for pred, (_, true) in zip(predicted, dev, strict=True)) / len(dev)
    assert accuracy == pytest.approx(p["tflite_accuracy"])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    result = run_runner(path, images[0], bad, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout.count("\t") == 2
    # (LiteRT itself may log an INFO line about its CPU delegate before our message)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "not a readable image" in last and "Traceback" not in result.stderr

    # float32 through the command, copied into --out
    out = tmp_path / "out"
    call_command("export_tflite", version.short_id, "--quantize", "float32", "--out", str(out))
    f32 = version.exports.get(format="float32")
    assert f32.status == "ready" and f32.parity["agreement"] >= 0.9
    copied = out / f"concord-{version.short_id}-float32.zip"
    assert hashlib.sha256(copied.read_bytes()).hexdigest() == f32.sha256
    assert export.size_bytes < f32.size_bytes

    # a forced threshold rejects any int8 export; an MLE overrides it with a note
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "EXPORT_MAX_DROP": -1}
    rejected = exports.start_export(version, "int8", queue_task=False)
    assert exports.run_export(rejected.pk) == "rejected"
    rejected.refresh_from_db()
    assert "below the Keras model's" in rejected.error and rejected.parity["max_drop"] == -1
    assert exports.bundle_path(rejected).is_file()
    with pytest.raises(exports.ExportError, match="needs a note"):
        exports.override(rejected, note="  ")
    exports.override(rejected, note="accepted for the pilot line")
    rejected.refresh_from_db()
    assert rejected.status == "ready" and rejected.override_note == "accepted for the pilot line"
    with pytest.raises(exports.ExportError, match="only a rejected export"):
        exports.override(rejected, note="again")
    assert project.pk == version.project_id


# --------------------------------------------------------------------------------------------
# Bad input (no TensorFlow needed)
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bad_exports_are_refused_with_a_clear_error(project, mle):
    add_digit_items(project, 15)
    keras = fake_ready_version(project)
    sklearn = fake_ready_version(project, "sklearn_logreg")
    with pytest.raises(exports.ExportError, match="only keras_cnn models export to TFLite"):
        exports.start_export(sklearn, "int8")
    failed = ModelVersion.objects.create(project=project, trainer="keras_cnn", status="failed", error="boom")
    with pytest.raises(exports.ExportError, match="is failed: only a ready model"):
        exports.start_export(failed, "float32")
    with pytest.raises(exports.ExportError, match="quantize must be"):
        exports.start_export(keras, "int4")
    # no train images: int8 has no representative set, float32 is fine
    SnapshotLabel.objects.filter(snapshot=keras.snapshot, split="train").delete()
    with pytest.raises(exports.ExportError, match="representative set would be empty"):
        exports.start_export(keras, "int8")
    exports.start_export(keras, "float32", queue_task=False)
    # a class of the snapshot merged since
    crow, dove = LabelClass.objects.filter(project=project, name__in=["crow", "dove"]).order_by("name")
    LabelClass.objects.filter(pk=dove.pk).update(merged_into=crow, is_active=False)
    with pytest.raises(exports.ExportError, match=r"changed since it was trained \(merged or retired: dove\)"):
        exports.start_export(keras, "float32")
    assert ModelExport.objects.count() == 1
    with pytest.raises(CommandError, match="only keras_cnn models"):
        call_command("export_tflite", sklearn.short_id, "--out", "unused")
    with pytest.raises(CommandError, match="no model version"):
        call_command("export_tflite", "nope", "--out", "unused")


@pytest.mark.django_db
def test_a_failing_export_is_marked_failed_with_a_readable_error(project):
    add_digit_items(project, 15)
    version = fake_ready_version(project)  # its artifact does not exist
    export = exports.start_export(version, "float32", queue_task=False)
    assert export_model(export.pk) == "failed"
    export.refresh_from_db()
    assert export.status == "failed" and export.error and export.bundle == ""
    assert export_model(export.pk) is None


def test_the_runner_fails_on_a_bad_bundle_or_image_with_a_message_and_exit_2(tmp_path):
    not_zip = tmp_path / "notzip.zip"
    not_zip.write_bytes(b"this is not a zip")
    empty_zip = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty_zip, "w") as z:
        z.writestr("readme.txt", "hi")
    corrupt_model = tmp_path / "corrupt.zip"
    with zipfile.ZipFile(corrupt_model, "w") as z:
        z.writestr("model.tflite", b"garbage")
        z.writestr("labels.txt", "a\nb\n")
        meta = {"preprocessing": {"resize": [8, 8], "scale": 1 / 255}, "input": {}, "output": {}}
        z.writestr("metadata.json", json.dumps(meta))
    image = tmp_path / "img.png"
    image.write_bytes(b"not an image")
    for bundle, message in [
        (tmp_path / "missing.zip", "no such file"),
        (not_zip, "not a readable zip bundle"),
        (empty_zip, "not a Concord bundle (missing labels.txt, metadata.json, model.tflite)"),
        (corrupt_model, "model.tflite cannot be loaded"),
        (tmp_path, "is a folder"),
    ]:
        result = run_runner(bundle, image, cwd=tmp_path)
        assert result.returncode == 2, (bundle, result.stderr)
        assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert run_runner(cwd=tmp_path).returncode == 2


# --------------------------------------------------------------------------------------------
# API and pages
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_export_roles_queue_and_download(
    api_as, project, mle, sme, labeler, outsider, django_capture_on_commit_callbacks, monkeypatch
):
    add_digit_items(project, 15)
    version = fake_ready_version(project)
    queued = []
    monkeypatch.setattr(exports, "enqueue", queued.append)
    url = reverse("training_api:model-exports", args=[version.short_id])
    assert api_as(outsider).post(url, {"quantize": "int8"}, format="json").status_code == 404
    assert api_as(labeler).post(url, {"quantize": "int8"}, format="json").status_code == 404
    assert api_as(sme).post(url, {"quantize": "int8"}, format="json").status_code == 403
    assert api_as(mle).post(url, {"quantize": "int4"}, format="json").status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(mle).post(url, {"quantize": "int8"}, format="json")
    assert response.status_code == 202, response.data
    assert response.data["status"] == "exporting" and response.data["format"] == "int8"
    assert queued == [response.data["id"]] and response.data["download_url"] is None
    sklearn = fake_ready_version(project, "sklearn_logreg")
    response = api_as(mle).post(
        reverse("training_api:model-exports", args=[sklearn.short_id]), {"quantize": "int8"}, format="json"
    )
    assert response.status_code == 400 and "only keras_cnn" in str(response.data)
    assert len(api_as(sme).get(url).data) == 1

    ready = fake_ready_export(version)
    download = reverse("training_api:export-download", args=[ready.pk])
    assert api_as(outsider).get(download).status_code == 404
    assert api_as(labeler).get(download).status_code == 404
    for user in (sme, mle):
        response = api_as(user).get(download)
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == b"bundle bytes"
        assert response["X-Checksum-SHA256"] == ready.sha256
        assert f"concord-{version.short_id}-int8.zip" in response["Content-Disposition"]
    exporting = reverse("training_api:export-download", args=[queued[0]])
    assert api_as(mle).get(exporting).status_code == 409
    detail = api_as(sme).get(reverse("training_api:export-detail", args=[ready.pk]))
    assert detail.status_code == 200 and detail.data["download_url"].endswith(download)

    # override over the API: MLE only, rejected exports only
    ModelExport.objects.filter(pk=ready.pk).update(status="rejected")
    override = reverse("training_api:export-override", args=[ready.pk])
    assert api_as(sme).post(override, {"note": "fine"}, format="json").status_code == 403
    assert api_as(mle).post(override, {"note": ""}, format="json").status_code == 400
    response = api_as(mle).post(override, {"note": "fine"}, format="json")
    assert response.status_code == 200 and response.data["status"] == "ready"
    assert response.data["override_by"] == "mle"
    assert Item.objects.filter(project=project).count() == 15


@pytest.mark.django_db
def test_model_page_export_section_buttons_override_and_download(
    client, project, mle, sme, labeler, outsider, django_capture_on_commit_callbacks, monkeypatch
):
    add_digit_items(project, 15)
    version = fake_ready_version(project)
    page = reverse("training:model-detail", args=[project.slug, version.short_id])
    queued = []
    monkeypatch.setattr(exports, "enqueue", queued.append)

    client.force_login(mle)
    body = client.get(page).content.decode()
    assert 'data-testid="export-int8"' in body and 'data-testid="export-float32"' in body
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("training:model-export", args=[project.slug, version.short_id]), {"quantize": "int8"}
        )
    assert response.status_code == 302 and len(queued) == 1
    rejected = fake_ready_export(version)
    ModelExport.objects.filter(pk=rejected.pk).update(
        status="rejected", error="<b>int8 dev accuracy</b> too low", parity={"tflite_accuracy": 0.5, "delta": -0.25}
    )
    body = client.get(page).content.decode()
    assert "&lt;b&gt;int8 dev accuracy&lt;/b&gt;" in body and "<b>int8" not in body
    assert f'data-testid="override-{rejected.pk}"' in body and "-0.250" in body
    override = reverse("training:export-override", args=[project.slug, version.short_id, rejected.pk])
    client.post(override, {"note": "<script>ship</script>"})
    rejected.refresh_from_db()
    assert rejected.status == "ready" and rejected.override_by == mle
    body = client.get(page).content.decode()
    assert "&lt;script&gt;ship&lt;/script&gt;" in body and "<script>ship" not in body
    download = reverse("training:export-download", args=[project.slug, version.short_id, rejected.pk])
    assert f'href="{download}"' in body
    assert b"".join(client.get(download).streaming_content) == b"bundle bytes"
    exporting = reverse("training:export-download", args=[project.slug, version.short_id, queued[0]])
    assert client.get(exporting).status_code == 404

    client.force_login(sme)
    body = client.get(page).content.decode()
    assert 'data-testid="exports"' in body and 'data-testid="export-int8"' not in body
    assert client.get(download).status_code == 200
    assert client.post(reverse("training:model-export", args=[project.slug, version.short_id])).status_code == 403
    for user, code in [(labeler, 403), (outsider, 404)]:
        client.force_login(user)
        assert client.get(download).status_code == code
        assert client.get(page).status_code == code
