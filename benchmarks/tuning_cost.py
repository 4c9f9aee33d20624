"""What a tuning run costs on the demo digits: wall-clock seconds, trials and the best dev accuracy.

Builds the demo project (scikit-learn's 1,797 digits) with every label true, as
benchmarks/train_digits.py does, then runs four small tuning runs through the same code the worker
runs (training.tuning_search.run_tuning, in this process): random search and successive halving of
the logistic baseline, KerasTuner random search and Hyperband of the CNN. Each registers its best
trial as a model version; the script checks that version's dev accuracy equals the best trial's.

    .venv/bin/python benchmarks/tuning_cost.py

Scratch SQLite database and media folder of its own (or DATABASE_URL, a scratch one); replaces the
"Tuning runs on the demo" section of benchmarks/RESULTS.md.
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
SCRATCH = tempfile.TemporaryDirectory(prefix="concord-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{SCRATCH.name}/bench.sqlite3")
os.environ["MEDIA_ROOT"] = f"{SCRATCH.name}/media"
os.environ.setdefault("CELERY_BROKER_URL", "memory://")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from annotation.models import GoldLabel, GoldLabelClass, Project  # noqa: E402
from annotation.services.demo import DEMO_SLUG, create_demo  # noqa: E402
from training import tuning  # noqa: E402
from training.tuning_search import run_tuning  # noqa: E402

SECTION = "## Tuning runs on the demo"
SEED = 0
C_RANGE = {"low": 0.001, "high": 10, "log": True}
CNN_SPACE = {"learning_rate": {"low": 0.0003, "high": 0.01, "log": True}, "filters": {"values": [16, 32]},
             "dropout": {"low": 0.1, "high": 0.5}}  # fmt: skip
CASES = [
    ("sklearn_logreg", "random", {"C": C_RANGE, "image_size": 16}, 10),
    ("sklearn_logreg", "halving_random", {"C": C_RANGE, "image_size": 16, "max_iter": 500}, 9),
    ("keras_cnn", "random", {**CNN_SPACE, "epochs": 15}, 4),
    ("keras_cnn", "hyperband", {**CNN_SPACE, "epochs": 9}, 8),
]


RESOURCE = {("keras_cnn", "random"): ["epochs"], ("keras_cnn", "hyperband"): ["epochs"],
            ("sklearn_logreg", "halving_random"): ["max_iter"]}  # fmt: skip


def shown(params, keys):
    return ", ".join(f"{k}={params[k]:.4g}" if isinstance(params[k], float) else f"{k}={params[k]}" for k in keys)


def give_every_item_its_true_digit(project):
    from sklearn.datasets import load_digits

    target = load_digits().target
    classes = {c.name: c for c in project.label_classes.all()}
    missing = list(project.items.filter(gold__isnull=True).values_list("pk", "external_id"))
    golds = GoldLabel.objects.bulk_create(GoldLabel(item_id=pk) for pk, _ in missing)
    GoldLabelClass.objects.bulk_create(
        GoldLabelClass(gold=g, label_class=classes[str(target[int(ext[6:10])])])
        for g, (_, ext) in zip(golds, missing, strict=True)
    )


def main():
    call_command("migrate", verbosity=0)
    Project.objects.filter(slug=DEMO_SLUG).delete()
    project, _ = create_demo(simulate_labelers=0, seed=SEED, log=lambda *_: None)
    give_every_item_its_true_digit(project)
    rows = []
    for trainer, search, space, trials in CASES:
        run = tuning.start_tuning(project, trainer=trainer, search=search, space=space, budget_trials=trials,
                                  budget_minutes=30, random_state=SEED)  # fmt: skip
        started = time.perf_counter()
        status = run_tuning(run.pk)
        seconds = time.perf_counter() - started
        run.refresh_from_db()
        if status != "done":
            raise SystemExit(f"{trainer} {search} ended {status}: {run.error}")
        listed = list(run.trials.all())
        best, version = run.best_trial, run.model_version
        assert version.headline_accuracy == best.accuracy, (version.headline_accuracy, best.accuracy)
        searched = sorted(k for k, e in run.space.items() if "fixed" not in e)
        rows.append({
            "case": f"`{trainer}` {search}", "budget": trials, "trials": len(listed), "seconds": seconds,
            "trial_s": sum(t.seconds for t in listed), "best": best.accuracy,
            "params": shown(best.params, searched + RESOURCE.get((trainer, search), [])),
            "n": best.dev_metrics["n"],
        })  # fmt: skip
        r = rows[-1]
        print(f"{r['case']:32} {r['trials']:3} trials  {seconds:7.1f} s  best dev {r['best']:.4f}  ({r['params']})")
    project.delete()

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    machine = f"{os.cpu_count()} cores (shared), {platform.machine()}, Python {platform.python_version()}, {engine}"
    lines = [
        SECTION,
        "",
        f"`benchmarks/tuning_cost.py`, {date.today():%Y-%m-%d}, {machine}. The demo's 1,797 digits with every "
        f"label true, seed {SEED}; each run scored on the dev split ({rows[0]['n']} items) as a training is, run "
        "in one process as the worker runs it (snapshot, load, search, register the best). Seconds are "
        "wall-clock on a machine shared with other engineers' tests: upper bounds, asserted nowhere.",
        "",
        "| run | budget (trials) | trials listed | seconds | of which in trials | best dev accuracy | best trial |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['budget']} | {r['trials']} | {r['seconds']:.1f} | {r['trial_s']:.1f} | "
                     f"{r['best']:.4f} | {r['params']} |")  # fmt: skip
    lines += [
        "",
        "Every run registered its best trial as a model version whose dev accuracy equals the trial's. "
        "Halving's budget is its candidates; they come back at 3x the iterations each rung, so it lists more "
        "trials than its budget. Hyperband's trials train from scratch for the epochs its oracle gives them.",
    ]
    write_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
