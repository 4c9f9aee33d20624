from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.services.demo import create_demo


class Command(BaseCommand):
    help = "Create the demo project (scikit-learn's 1,797 handwritten digits) and demo users."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when any project exists")
        parser.add_argument(
            "--simulate-labelers",
            type=int,
            default=0,
            metavar="N",
            help="Add labels from N simulated labelers of known confusion",
        )
        parser.add_argument("--password", help="One password for all demo users (default: random, printed)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts):
        if opts["if_empty"] and Project.objects.exists():
            self.stdout.write("Projects exist already; demo data not created.")
            return
        if opts["simulate_labelers"] < 0:
            raise CommandError("--simulate-labelers must be 0 or more")
        try:
            project, passwords = create_demo(
                password=opts["password"],
                simulate_labelers=opts["simulate_labelers"],
                seed=opts["seed"],
                log=self.stdout.write,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Demo project '{project.name}' is ready. Demo users:"))
        for username, password in passwords.items():
            self.stdout.write(f"  {username:10} password: {password}")
