"""manage.py simulate_field PROJECT --url URL: simulated devices against a live server
(deployment/monitoring_simulation.py says what it does and measures)."""

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from deployment.monitoring_simulation import SimulationError, run


class Command(BaseCommand):
    help = "Stream predictions from simulated devices (stable, then drifting) and report when drift is caught."

    def add_arguments(self, parser):
        parser.add_argument("project", help="The project's slug (the demo: digits).")
        parser.add_argument("--url", required=True, help="The running server, e.g. http://127.0.0.1:8000")
        parser.add_argument("--channel", default="canary", choices=["stable", "canary"])
        parser.add_argument("--devices", type=int, default=4)
        parser.add_argument("--stable", type=int, default=1000, help="Predictions in the stable phase (all devices).")
        parser.add_argument("--drift", type=int, default=1000, help="Predictions in the drifting phase.")
        parser.add_argument("--batch", type=int, default=50, help="Records per telemetry batch.")
        parser.add_argument("--sample-rate", type=float, default=0.2, help="Share of inputs the server asks for.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--label", action="store_true", help="Label the field items with their truth.")
        parser.add_argument("--json", dest="json_out", help="Also write the figures to this file.")

    def handle(self, *args, **options):
        for name in ("devices", "stable", "drift", "batch"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1")
        if not 0 < options["sample_rate"] <= 1:
            raise CommandError("--sample-rate must be in (0, 1]")
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        try:
            figures = run(
                project,
                url=options["url"],
                channel=options["channel"],
                n_devices=options["devices"],
                stable=options["stable"],
                drift=options["drift"],
                batch=options["batch"],
                sample_rate=options["sample_rate"],
                seed=options["seed"],
                label=options["label"],
                log=self.stdout.write,
            )
        except SimulationError as exc:
            raise CommandError(str(exc)) from exc
        if options["json_out"]:
            with open(options["json_out"], "w") as fh:
                json.dump(figures, fh, indent=2)
