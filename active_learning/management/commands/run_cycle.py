from django.core.management.base import BaseCommand, CommandError

from active_learning import sampling, services
from active_learning.models import Cycle
from annotation.management.lookup import project_named, user_named
from training.trainers import TRAINERS


class Command(BaseCommand):
    help = (
        "Launch a retrain-and-sample cycle of a project: train a model, score the unlabeled pool, select a batch "
        "by strategy and put it at the front of the labelers' queue. Queues the Celery chain unless --sync."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug (or numeric id)")
        parser.add_argument("--strategy", default="mix", help=f"One of {', '.join(sampling.STRATEGIES)} (default mix)")
        parser.add_argument("--batch", type=int, default=services.cycle_settings()["BATCH_SIZE"], help="Batch size")
        parser.add_argument("--trainer", choices=list(TRAINERS), help="Default: sklearn_logreg")
        parser.add_argument(
            "--weights", default="", help="The mix's weights, e.g. margin:0.45,diversity:0.4,random:0.15"
        )
        parser.add_argument(
            "--review-top-k", action="store_true", help="Also send the confidently wrong training items to the SMEs"
        )
        parser.add_argument("--sync", action="store_true", help="Run the cycle here and now instead of queueing it")
        parser.add_argument("--user", help="Username recorded as the cycle's launcher")

    def handle(self, *args, **opts):
        project = project_named(opts["project"])
        user = user_named(opts["user"])
        request = {
            "strategy": opts["strategy"],
            "batch_size": opts["batch"],
            "trainer": opts["trainer"],
            "weights": opts["weights"] or None,
            "review_top_k": opts["review_top_k"],
            "user": user,
        }
        try:
            cycle = self.run_here(project, request) if opts["sync"] else services.launch(project, **request)
        except services.CycleError as exc:
            raise CommandError(exc.message) from exc
        if not opts["sync"]:
            self.stdout.write(f"Queued cycle {cycle.number} of {project.slug} ({cycle.strategy}, {cycle.batch_size}).")
            return
        if cycle.status != Cycle.Status.DONE:
            raise CommandError(f"cycle {cycle.number} {cycle.status}: {cycle.error}")
        self.stdout.write(self.summary(cycle))

    def run_here(self, project, request):
        """Launch without the chain (no worker needed) and run its four steps in this process."""
        cycle = services.launch(project, **request, enqueue=False)
        for step in services.STEPS:
            self.stdout.write(f"{step.__name__.removesuffix('_step').capitalize()}...")
            step(cycle.pk)
        cycle.refresh_from_db()
        return cycle

    def summary(self, cycle):
        s = cycle.summary
        version = cycle.model_version
        breakdown = ", ".join(f"{name}: {block['n']}" for name, block in s["by_strategy"].items()) or "none"
        lines = [
            f"Cycle {cycle.number} of {cycle.project.slug} is done: model {version.short_id}, "
            f"accuracy {s['accuracy']:.4f} on {s['evaluated_on']} from {s['labels']:,} labels.",
            f"Scored {cycle.pool_size:,} unlabeled items; queued {s['selected']:,} ({breakdown}).",
        ]
        if s["skipped"]:
            lines.append(f"Skipped {s['skipped']} items labeled since they were scored.")
        if s["superseded_entries"]:
            lines.append(f"Replaced {s['superseded_entries']} unlabeled entries of earlier cycles.")
        if cycle.review_top_k:
            lines.append(f"Sent {s['review_requests']} confidently wrong training items to the SMEs.")
        return "\n".join(lines)
