"""How good a model the demo digits support when every label is true, and how long training takes.

Builds the demo project (scikit-learn's 1,797 digits rendered as 96x96 PNGs), gives every item its
true digit as a gold label (sklearn's `load_digits().target`), then trains the logistic baseline
and the Keras CNN through the same service the worker runs (snapshot -> fit -> evaluate on the dev
split -> register), seeded, with their default hyperparameters. Targets: dev accuracy >= 0.95
(logistic regression) and >= 0.97 (CNN).

    .venv/bin/python benchmarks/train_digits.py

It works in a scratch SQLite database and media folder of its own (or the database in
DATABASE_URL, if set: a scratch one, as it creates the demo project there) and replaces the
"Training on digits" section of benchmarks/RESULTS.md.
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
from training import services  # noqa: E402
from training.models import ModelVersion  # noqa: E402

SECTION = "## Training on digits"
TARGETS = {"sklearn_logreg": 0.95, "keras_cnn": 0.97}
SEED = 0


def give_every_item_its_true_digit(project):
    """Gold = sklearn's target for every item (the demo gives 100 of them gold already)."""
    from sklearn.datasets import load_digits

    target = load_digits().target
    classes = {c.name: c for c in project.label_classes.all()}
    missing = list(project.items.filter(gold__isnull=True).values_list("pk", "external_id"))
    golds = GoldLabel.objects.bulk_create(GoldLabel(item_id=pk) for pk, _ in missing)
    GoldLabelClass.objects.bulk_create(
        GoldLabelClass(gold=g, label_class=classes[str(target[int(ext[6:10])])])
        for g, (_, ext) in zip(golds, missing, strict=True)
    )
    wrong = [
        ext
        for ext, name in GoldLabelClass.objects.filter(gold__item__project=project).values_list(
            "gold__item__external_id", "label_class__name"
        )
        if name != str(target[int(ext[6:10])])
    ]
    assert not wrong, f"gold disagrees with sklearn's target on {wrong[:5]}"


def train(project, trainer):
    version = ModelVersion.objects.create(
        project=project,
        trainer=trainer,
        hyperparameters=services.check_hyperparameters(trainer, {}),
        policy=services.check_policy(None),
        random_state=SEED,
    )
    started = time.perf_counter()
    status = services.run_training(version.pk)
    seconds = time.perf_counter() - started
    version.refresh_from_db()
    if status != "ready":
        raise SystemExit(f"{trainer} failed: {version.error}")
    return version, seconds


def main():
    call_command("migrate", verbosity=0)
    Project.objects.filter(slug=DEMO_SLUG).delete()
    started = time.perf_counter()
    project, _ = create_demo(simulate_labelers=0, seed=SEED, log=lambda *_: None)
    give_every_item_its_true_digit(project)
    print(f"demo with true labels: {time.perf_counter() - started:.1f} s")

    rows = []
    for trainer in ("sklearn_logreg", "keras_cnn"):
        version, seconds = train(project, trainer)
        m = version.metrics
        ev, t = m["evaluation"], version.timings
        ok = ev["accuracy"] >= TARGETS[trainer]
        epochs = f"; early stop at epoch {version.epoch}" if version.epoch else ""
        rows.append(
            {
                "trainer": trainer,
                "hp": ", ".join(f"{k}={v}" for k, v in version.hyperparameters.items()) + epochs,
                "dev": ev["accuracy"],
                "n_dev": ev["n"],
                "target": TARGETS[trainer],
                "ok": ok,
                "test": m["test"]["accuracy"],
                "n_test": m["test"]["n"],
                "train_n": m["train"]["n"],
                "macro_f1": ev["macro_f1"],
                "ece": ev["ece"],
                "fit": t.get("fitting", 0.0),
                "total": seconds,
            }
        )
        print(
            f"{trainer:15} dev {ev['accuracy']:.4f} (target {TARGETS[trainer]:.2f}: {'met' if ok else 'MISSED'}) "
            f"test {m['test']['accuracy']:.4f}  fit {t.get('fitting', 0):.1f} s  total {seconds:.1f} s"
        )
    project.delete()

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, {engine}"
    try:
        import tensorflow as tf

        machine += f", TensorFlow {tf.__version__} (CPU)"
    except ImportError:
        pass
    r0 = rows[0]
    table = [
        SECTION,
        "",
        f"`benchmarks/train_digits.py`, {date.today():%Y-%m-%d}, {machine}. The demo's 1,797 digits (96x96 PNGs) "
        f"with every label true (gold = scikit-learn's target), seed {SEED}, default hyperparameters; trained on "
        f"the train split ({r0['train_n']:,} items), evaluated on dev ({r0['n_dev']:,}), test ({r0['n_test']:,}) "
        "reported once. Seconds are wall-clock on a shared machine: a rough guide, not asserted anywhere.",
        "",
        "| trainer | hyperparameters | dev accuracy | target | test accuracy | macro F1 | ECE | fit s | total s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| `{r['trainer']}` | {r['hp']} | **{r['dev']:.4f}** "
            f"| ≥ {r['target']:.2f} {'met' if r['ok'] else 'MISSED'} | {r['test']:.4f} | {r['macro_f1']:.4f} "
            f"| {r['ece']:.4f} | {r['fit']:.1f} | {r['total']:.1f} |"
            for r in rows
        ),
        "",
        "Total = snapshot + loading the images + fit + evaluation (baselines, slices, top-k) + saving the artifact.",
        "",
    ]
    write_section(SECTION, "\n".join(table))


if __name__ == "__main__":
    main()
