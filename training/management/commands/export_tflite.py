import json
import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.management.lookup import user_named
from training import exports
from training.models import ModelExport, ModelVersion
from training.services import TrainingError


class Command(BaseCommand):
    help = (
        "Export a ready keras_cnn model version to a TensorFlow Lite bundle (float32 or full-integer int8), "
        "run the parity check on the dev split, register the export and copy the bundle into --out. Runs here "
        "and now (it imports TensorFlow)."
    )

    def add_arguments(self, parser):
        parser.add_argument("model_id", help="The model version's short id")
        parser.add_argument("--quantize", choices=ModelExport.Format.values, default="int8")
        parser.add_argument("--out", required=True, help="Folder to copy the bundle (zip) into")
        parser.add_argument("--user", help="Username recorded as the export's creator")

    def handle(self, *args, **opts):
        version = ModelVersion.objects.select_related("snapshot").filter(short_id=opts["model_id"]).first()
        if version is None:
            raise CommandError(f"no model version {opts['model_id']!r}")
        user = user_named(opts["user"])
        try:
            export = exports.start_export(version, opts["quantize"], user=user, queue_task=False)
        except TrainingError as exc:
            raise CommandError(exc.message) from exc
        exports.run_export(export.pk)
        export.refresh_from_db()
        if export.status == ModelExport.Status.FAILED:
            raise CommandError(f"export {export.pk} failed: {export.error}")
        out = Path(opts["out"])
        out.mkdir(parents=True, exist_ok=True)
        target = out / exports.bundle_filename(export)
        shutil.copyfile(exports.bundle_path(export), target)
        p = export.parity
        summary = {
            "export": export.pk,
            "status": export.status,
            "bundle": str(target),
            "sha256": export.sha256,
            "size_bytes": export.size_bytes,
            "keras_accuracy": p.get("keras_accuracy"),
            "tflite_accuracy": p.get("tflite_accuracy"),
            "delta": p.get("delta"),
            "latency_ms": p.get("latency_ms"),
        }
        self.stdout.write(json.dumps(summary))
        if export.status == ModelExport.Status.REJECTED:
            self.stderr.write(f"rejected: {export.error}")
