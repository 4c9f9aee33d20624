"""Shared set-up of the deployment tests: a project with a ready model, published bundles, devices."""

import hashlib
from datetime import UTC, datetime

import pytest

from deployment import channels, devices
from training import services
from training.models import ModelExport, ModelVersion


def ready_version(project, *, promote=False):
    """A ready version with a snapshot (its classes are the project's) and no real artifact."""
    from training import registry

    version = ModelVersion.objects.create(
        project=project,
        trainer="keras_cnn",
        snapshot=services.build_snapshot(project),
        status="ready",
        artifact="fake/keras.keras",
    )
    if promote:
        registry.promote(version)
    return version


def ready_export(version, content=b"bundle bytes"):
    path = services.artifact_root() / "exports" / version.short_id / f"{hashlib.sha256(content).hexdigest()[:16]}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return ModelExport.objects.create(
        model_version=version,
        format="int8",
        status="ready",
        bundle=str(path.relative_to(services.artifact_root())),
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
    )


def now_iso():
    return datetime.now(UTC).isoformat()


def record(seq, export, cls="crow", score=0.9, **extra):
    return {
        "seq": seq,
        "predicted_at": now_iso(),
        "bundle_sha256": export.sha256,
        "predicted_class": cls,
        "top_scores": {cls: score},
        "latency_ms": 3.5,
        **extra,
    }


@pytest.fixture(name="field")
def field_fixture(project, mle):
    """The project with a promoted model's export on stable (sampling off, threshold 0.5), and one
    device; `field.token` is its token."""

    class Field:
        pass

    f = Field()
    f.project, f.mle = project, mle
    f.version = ready_version(project, promote=True)
    f.export = ready_export(f.version, b"stable bundle")
    chans = channels.channels_of(project)
    f.stable, f.canary = chans["stable"], chans["canary"]
    channels.publish(f.stable, f.export, user=mle)
    channels.update_settings(f.stable, sample_rate=0.0, confidence_threshold=0.5)
    issued = devices.create_device(project, name="cam-1", user=mle)
    f.device, f.token = issued.obj, issued.secret
    return f
