import json

from django.core.management.base import BaseCommand, CommandError

from annotation.management.lookup import project_named, user_named
from annotation.text_rules import int32_problem
from training import services
from training.models import ModelVersion
from training.trainers import TRAINERS


def _param(text):
    """'epochs=5' -> ('epochs', 5): numbers as JSON, so 0.1 and 5 keep their types."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CommandError(f"--param takes key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        raise CommandError(f"--param {key}: {value!r} is not a number") from None


class Command(BaseCommand):
    help = (
        "Train a model of a project: freeze its labels into a snapshot, fit the trainer, evaluate on the dev split "
        "(or by cross-validation) and register the version. Queues the Celery task unless --sync."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project slug (or numeric id)")
        parser.add_argument("--trainer", required=True, choices=list(TRAINERS))
        parser.add_argument("--sync", action="store_true", help="Train here and now instead of queueing the task")
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="A hyperparameter")
        parser.add_argument("--consensus", choices=services.CONSENSUS_METHODS)
        parser.add_argument("--min-confidence", type=float, help="Consensus labels need at least this confidence")
        parser.add_argument("--keep-ambiguity", action="store_true", help="Keep ambiguous items as their own class")
        parser.add_argument("--seed", type=int, help="random_state of the snapshot consensus and the trainer")
        parser.add_argument("--user", help="Username recorded as the version's creator")

    def handle(self, *args, **opts):
        if opts["seed"] is not None:
            problem = int32_problem(opts["seed"], "--seed")
            if problem:
                raise CommandError(problem)
        project = project_named(opts["project"])
        user = user_named(opts["user"])
        policy = {}
        if opts["consensus"]:
            policy["consensus"] = opts["consensus"]
        if opts["min_confidence"] is not None:
            policy["min_confidence"] = opts["min_confidence"]
        if opts["keep_ambiguity"]:
            policy["keep_ambiguity"] = True
        try:
            version = self.start(project, opts, user, policy)
        except services.TrainingError as exc:
            raise CommandError(exc.message) from exc
        if not opts["sync"]:
            self.stdout.write(f"Queued model {version.short_id} ({version.trainer}) of {project.slug}.")
            return
        self.stdout.write(f"Training model {version.short_id} ({version.trainer}) of {project.slug} here...")
        services.run_training(version.pk)
        version.refresh_from_db()
        if version.status != ModelVersion.Status.READY:
            raise CommandError(f"model {version.short_id} failed: {version.error}")
        self.stdout.write(self.summary(version))

    def start(self, project, opts, user, policy):
        # --sync: no task, the version is trained in this process.
        create = services.create_version if opts["sync"] else services.start_training
        return create(
            project,
            trainer=opts["trainer"],
            user=user,
            hyperparameters=dict(_param(p) for p in opts["param"]),
            policy=policy,
            random_state=opts["seed"],
        )

    def summary(self, version):
        m = version.metrics
        ev = m["evaluation"]
        snap = version.snapshot
        lines = [
            f"Model {version.short_id} is ready ({version.timings.get('total', 0):.1f} s).",
            f"Snapshot {snap.content_hash[:12]}: {snap.size:,} labels "
            + ", ".join(f"{s} {sum(c.values()):,}" for s, c in snap.counts.items()),
            f"Evaluated on {ev['evaluated_on']} ({ev['n']:,} items): accuracy {ev['accuracy']:.4f}, "
            f"macro F1 {_num(ev['macro_f1'])}, ROC AUC {_num(ev['roc_auc_macro'])}, ECE {_num(ev['ece'])}",
            f"Majority-class baseline: {m['baselines']['majority_class']['accuracy']:.4f}",
        ]
        previous = m["baselines"].get("previous_model")
        if previous and previous.get("accuracy") is not None:
            lines.append(f"Previous model {previous['id']}: {previous['accuracy']:.4f} on the same items")
        if m.get("test"):
            lines.append(f"Test split (final report only): {m['test']['accuracy']:.4f} on {m['test']['n']:,} items")
        return "\n".join(lines)


def _num(value):
    return "—" if value is None else f"{value:.4f}"
