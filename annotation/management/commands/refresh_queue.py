from django.core.management.base import BaseCommand

from annotation.management.lookup import project_named
from annotation.services.labeling import refresh_queue_state


class Command(BaseCommand):
    help = (
        "Recompute a project's labeling-queue bookkeeping (which items are gold, which have all their labels) "
        "after annotations or gold were written outside the labeling workflow, or the overlap changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug")

    def handle(self, *args, **opts):
        project = project_named(opts["project"])
        changed = refresh_queue_state(project)
        self.stdout.write(
            f"{project.slug}: {changed['closed']} item(s) now have all their labels, {changed['opened']} need more."
        )
