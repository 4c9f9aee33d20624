from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.errors import DomainError
from annotation.models import DataKind, TaskType
from annotation.services.projects import create_project


def _names(value):
    return [n.strip() for n in value.split(",") if n.strip()] if value else []


class Command(BaseCommand):
    help = "Create a labelling project with its classes."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--data-kind", required=True, choices=DataKind.values)
        parser.add_argument("--classes", required=True, help="Comma-separated class names, e.g. cat,dog")
        parser.add_argument("--ambiguity", default="", help="Comma-separated ambiguity classes, e.g. unclear")
        parser.add_argument("--task-type", default=TaskType.SINGLE_LABEL, choices=TaskType.values)
        parser.add_argument("--overlap", type=int, default=1, help="Labels needed per consistency-sample item")
        parser.add_argument("--overlap-fraction", type=float, default=0.0, help="Share of items in that sample")
        parser.add_argument("--splits", default="0.8,0.1,0.1", help="train,dev,test fractions")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--owner", help="Username that becomes the project's MLE")

    def handle(self, *args, **opts):
        try:
            splits = tuple(float(x) for x in opts["splits"].split(","))
        except ValueError as exc:
            raise CommandError(f"--splits must be three numbers like 0.8,0.1,0.1 ({exc})") from exc
        if len(splits) != 3:
            raise CommandError("--splits must be three numbers: train,dev,test")
        owner = None
        if opts["owner"]:
            owner = get_user_model().objects.filter(username=opts["owner"]).first()
            if owner is None:
                raise CommandError(f"--owner: no user named {opts['owner']!r}")
        try:
            project = create_project(
                slug=opts["slug"],
                name=opts["name"],
                data_kind=opts["data_kind"],
                classes=_names(opts["classes"]),
                ambiguity_classes=_names(opts["ambiguity"]),
                task_type=opts["task_type"],
                overlap=opts["overlap"],
                consistency_fraction=opts["overlap_fraction"],
                split_fractions=splits,
                seed=opts["seed"],
                created_by=owner,
            )
        except DomainError as exc:
            raise CommandError(f"{exc.field or 'project'}: {exc.message}") from exc
        classes = ", ".join(f"{c.name} [{c.shortcut}]" for c in project.label_classes.all())
        self.stdout.write(self.style.SUCCESS(f"Created project {project.slug} (id {project.pk}): {classes}"))
