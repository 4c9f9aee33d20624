"""manage.py export_labels PROJECT --format jsonl --out FILE [filters]: the labelled dataset to a file.

The same rows as the API's export (annotation/services/dataset_export.py), written straight to
FILE: to a temporary name beside it first, renamed once complete, so FILE is never half written.
"""

import hashlib
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation import export_writers as W
from annotation.errors import DomainError
from annotation.management.lookup import project_named
from annotation.services import dataset_export as service


class Command(BaseCommand):
    help = "Export a project's labelled dataset (final labels with their provenance) to a file."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug or id.")
        parser.add_argument("--format", required=True, choices=W.FORMATS)
        parser.add_argument("--out", required=True, help="File to write (replaced if it exists).")
        parser.add_argument("--include-labels", action="store_true", help="Every labeler's current label.")
        parser.add_argument("--include-history", action="store_true", help="Also labels replaced by edits.")
        parser.add_argument("--include-predictions", action="store_true", help="The promoted model's predictions.")
        parser.add_argument("--pseudonymize", action="store_true", help="Pseudonyms instead of labeler names.")
        parser.add_argument("--consensus", choices=service.CONSENSUS_METHODS, default="dawid_skene")
        parser.add_argument("--split", action="append", default=[], help="train, dev or test (repeatable).")
        parser.add_argument("--source", action="append", default=[], help="gold, resolution, consensus or none.")
        parser.add_argument("--min-confidence", type=float, default=None)
        parser.add_argument("--slice", action="append", default=[], help="key=value (repeatable).")
        parser.add_argument("--class", dest="label_class", action="append", default=[], help="A final label.")
        parser.add_argument("--only-final", action="store_true", help="Only items with a final label.")
        parser.add_argument("--label-config", help="Also write Label Studio's labeling config (XML) here.")

    def handle(self, *args, **opts):
        project = project_named(opts["project"])
        raw = {
            name: opts[name]
            for name in (
                "include_labels",
                "include_history",
                "include_predictions",
                "pseudonymize",
                "consensus",
                "split",
                "source",
                "min_confidence",
                "slice",
                "label_class",
                "only_final",
            )
        }
        try:
            options = service.check_options(project, raw)
        except DomainError as exc:
            raise CommandError(f"{exc.field}: {exc.message}") from exc
        out = Path(opts["out"])
        if not out.parent.is_dir():
            raise CommandError(f"--out: no folder {out.parent}")
        temp = out.with_name(f".{out.name}.{os.getpid()}.part")
        try:
            with open(temp, "wb") as fh:
                rows = service.write_export(project, opts["format"], options, fh)
            os.replace(temp, out)
        finally:
            temp.unlink(missing_ok=True)
        digest = hashlib.sha256()
        with open(out, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        if opts["label_config"]:
            Path(opts["label_config"]).write_text(service.label_config(project), encoding="utf-8")
        self.stdout.write(f"{rows} rows written to {out} (sha256 {digest.hexdigest()})")
