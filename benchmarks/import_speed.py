"""How fast imports run: the largest crowd dataset (S_Rel, 98,453 labels) and the demo's 1,797 images.

Run against the database in DATABASE_URL (a scratch one: it creates and deletes projects):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/concord_bench .venv/bin/python benchmarks/import_speed.py

Prints a table and replaces the "Import speed" section of benchmarks/RESULTS.md.
"""

import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from results import write_section  # benchmarks/results.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from annotation.models import Project  # noqa: E402
from annotation.services.annotation_import import import_annotations  # noqa: E402
from annotation.services.demo import create_demo  # noqa: E402
from annotation.services.projects import create_project  # noqa: E402

CROWD = ROOT.parent / "shared" / "datasets" / "crowd"
SECTION = "## Import speed"


def timed(label, fn):
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    print(f"{label:55} {seconds:7.1f} s")
    return label, seconds, result


def main():
    call_command("migrate", verbosity=0)
    Project.objects.filter(slug__in=["bench-srel", "digits"]).delete()
    rows = []
    project = create_project(slug="bench-srel", name="S_Rel bench", data_kind="text", classes=["0"])

    def srel():
        return import_annotations(
            project, CROWD / "S_Rel" / "answer.csv", columns=("question", "worker", "answer"),
            truth_path=CROWD / "S_Rel" / "truth.csv", truth_columns=("question", "truth"), create_classes=True,
        )  # fmt: skip

    label, seconds, batch = timed("S_Rel: 98,453 labels + 4,460 gold, first import", srel)
    rows.append((label, seconds, f"{batch.created_count / seconds:,.0f} labels/s"))
    label, seconds, batch = timed("S_Rel: the same file again (nothing written)", srel)
    rows.append((label, seconds, f"{batch.skipped_count:,} rows skipped"))
    project.delete()

    with tempfile.TemporaryDirectory() as media:
        settings.MEDIA_ROOT = media
        label, seconds, (demo, _) = timed(
            "demo: render + import 1,797 PNGs, 3 simulated labelers",
            lambda: create_demo(simulate_labelers=3, log=lambda *_: None),
        )
        rows.append((label, seconds, f"{1797 / seconds:,.0f} images/s (incl. rendering)"))
        demo.delete()

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, {engine}"
    table = [
        SECTION,
        "",
        f"`benchmarks/import_speed.py`, {date.today():%Y-%m-%d}, {machine}.",
        "",
        "| what | seconds | rate |",
        "|---|---:|---|",
        *(f"| {label} | {seconds:.1f} | {rate} |" for label, seconds, rate in rows),
        "",
    ]
    write_section(SECTION, "\n".join(table))


if __name__ == "__main__":
    main()
