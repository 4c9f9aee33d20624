from django.core.management.base import BaseCommand, CommandError

from annotation.errors import ImportRejected
from annotation.management.lookup import project_named
from annotation.services.item_import import import_items
from annotation.services.labelstudio_import import import_labelstudio


class Command(BaseCommand):
    help = (
        "Import items into a project: a folder or .zip of PNG/JPEG images (optional manifest.csv with "
        "filename, metadata columns and gold), a .csv/.jsonl of texts (external_id, text, metadata, gold), "
        "or a Label Studio JSON export (.json, or a .zip of it with its images: tasks, annotations, predictions)."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug")
        parser.add_argument("path")
        parser.add_argument("--show-errors", type=int, default=20, help="How many row errors to print")
        parser.add_argument(
            "--labelstudio",
            action="store_true",
            help="The file is a Label Studio export (implied by .json; needed for a .zip of one with its images)",
        )
        parser.add_argument(
            "--create-classes", action="store_true", help="Label Studio: add label names the project lacks"
        )

    def handle(self, *args, **opts):
        project = project_named(opts["project"])
        try:
            if opts["labelstudio"] or str(opts["path"]).lower().endswith(".json"):
                batch = import_labelstudio(project, opts["path"], create_classes=opts["create_classes"])
            else:
                batch = import_items(project, opts["path"])
        except ImportRejected as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"{batch.source_name}: {batch.created_count} created, {batch.skipped_count} skipped as duplicates, "
            f"{batch.rejected_count} rejected (import batch {batch.pk})"
        )
        for error in batch.errors[: opts["show_errors"]]:
            self.stderr.write(f"  rejected {error['row']} [{error['field']}]: {error['message']}")
        if batch.rejected_count > opts["show_errors"]:
            self.stderr.write(f"  ... and {batch.rejected_count - opts['show_errors']} more (see the admin)")
