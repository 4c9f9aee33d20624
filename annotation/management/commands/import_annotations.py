from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.crowd_parse import parse_delimiter
from annotation.errors import DomainError
from annotation.management.lookup import project_named
from annotation.services.annotation_import import import_annotations
from annotation.services.labelstudio_import import import_labels_jsonl, import_labelstudio


def _columns(value, count, option):
    names = [n.strip() for n in value.split(",")]
    if len(names) != count or not all(names):
        raise CommandError(f"{option} takes {count} comma-separated column names, got {value!r}")
    return names


class Command(BaseCommand):
    help = (
        "Import existing annotations: CSV/TSV rows of (item, labeler, label), and optionally a truth file of "
        "(item, label) rows loaded as gold. Items are created by id, one labeler account (no login) per worker. "
        "A .json file is read as a Label Studio export, a .jsonl file as Concord JSONL (one item a line with "
        "its labels); --format says so for other names."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug")
        parser.add_argument("file", help="Annotation file: one (item, labeler, label) row per label")
        parser.add_argument(
            "--columns", help="The header's item, labeler and label columns, e.g. question,worker,answer"
        )
        parser.add_argument(
            "--no-header", action="store_true", help="Files have no header: take the first columns in order"
        )
        parser.add_argument("--delimiter", default=",", help="One character, or TAB (also \\t), comma, semicolon")
        parser.add_argument("--truth", help="Truth file of (item, label) rows, loaded as gold labels")
        parser.add_argument("--truth-columns", help="The truth file's item and label columns, e.g. question,truth")
        parser.add_argument("--create-classes", action="store_true", help="Add label names the project lacks")
        parser.add_argument("--show-errors", type=int, default=20, help="How many rejected rows to print")
        parser.add_argument("--format", choices=["csv", "jsonl", "labelstudio"], help="Default: from the extension")

    def handle(self, *args, **opts):
        by_suffix = {".json": "labelstudio", ".jsonl": "jsonl"}
        fmt = opts["format"] or by_suffix.get(Path(opts["file"]).suffix.lower(), "csv")
        if fmt != "csv":
            return self._import_tasks(fmt, opts)
        header = not opts["no_header"]
        # Naming the columns is required with a header: guessing them could import the wrong ones.
        if header and not opts["columns"]:
            raise CommandError("name the file's columns with --columns ITEM,LABELER,LABEL (or use --no-header)")
        if header and opts["truth"] and not opts["truth_columns"]:
            raise CommandError("name the truth file's columns with --truth-columns ITEM,LABEL (or use --no-header)")
        columns = _columns(opts["columns"], 3, "--columns") if opts["columns"] else None
        truth_columns = _columns(opts["truth_columns"], 2, "--truth-columns") if opts["truth_columns"] else None
        try:
            delimiter = parse_delimiter(opts["delimiter"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        project = project_named(opts["project"])
        try:
            batch = import_annotations(
                project,
                opts["file"],
                columns=columns,
                has_header=header,
                delimiter=delimiter,
                truth_path=opts["truth"],
                truth_columns=truth_columns,
                create_classes=opts["create_classes"],
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self._report(batch, opts["show_errors"])

    def _import_tasks(self, fmt, opts):
        if opts["truth"] or opts["columns"] or opts["truth_columns"]:
            raise CommandError(f"--truth, --columns and --truth-columns are for csv files, not {fmt}")
        project = project_named(opts["project"])
        run = import_labelstudio if fmt == "labelstudio" else import_labels_jsonl
        try:
            batch = run(project, opts["file"], create_classes=opts["create_classes"])
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        s = batch.summary
        self.stdout.write(
            f"Imported {batch.source_name} into {project.slug} (import batch {batch.pk}): {s['tasks']:,} items read, "
            f"{s['tasks_rejected']:,} rejected; {s['items_created']:,} items created; {s['annotations_created']:,} "
            f"labels created, {s['annotations_skipped']:,} skipped as already imported; {s['gold_loaded']:,} gold; "
            f"{s['predictions_created']:,} predictions created, {s['predictions_updated']:,} updated"
        )
        for error in batch.errors[: opts["show_errors"]]:
            self.stderr.write(f"  rejected row {error['row']} [{error['field']}]: {error['message']}")
        if batch.rejected_count > opts["show_errors"]:
            self.stderr.write(f"  ... and {batch.rejected_count - opts['show_errors']:,} more (see the import batch)")

    def _report(self, batch, show_errors):
        s = batch.summary
        lines = [
            f"Imported {batch.source_name} into {batch.project.slug} (import batch {batch.pk})",
            f"  labels read     {s['labels']:,} valid rows, {s['rejected_rows']:,} rejected",
            f"  items           {s['items']:,} ({s['items_created']:,} new)",
            f"  labelers        {s['labelers']:,} ({s['labelers_created']:,} new)",
            f"  classes         {len(s['classes'])}: {', '.join(s['classes'])} ({s['classes_created']} new)",
            f"  duplicates      {s['duplicate_pairs']:,} (item, labeler) pairs labelled more than once, "
            f"{s['duplicate_rows']:,} repeated rows, {s['conflicting_duplicate_pairs']:,} pairs with different labels",
            f"  annotations     {s['annotations_created']:,} created ({s['annotations_edited']:,} edits), "
            f"{s['annotations_skipped']:,} skipped as already imported",
        ]
        if s["truth_source"]:
            lines.append(
                f"  gold            {s['gold_loaded']:,} loaded, {s['gold_skipped']:,} skipped as already there, "
                f"{s['truth_rejected_rows']:,} rejected; {s['gold_without_labels']:,} gold items have no labels "
                "and were not created"
            )
            if s["gold_without_labels_examples"]:
                lines.append(f"                  e.g. {', '.join(s['gold_without_labels_examples'][:5])}")
        self.stdout.write("\n".join(lines))
        for error in batch.errors[:show_errors]:
            where = f"{error['file']} line {error['row']}" if error.get("file") else f"line {error['row']}"
            self.stderr.write(f"  rejected {where} [{error['field']}]: {error['message']}")
        if batch.rejected_count > show_errors:
            self.stderr.write(
                f"  ... and {batch.rejected_count - show_errors:,} more (see the import batch in the admin)"
            )
