"""TensorFlow Lite export of the digits CNN: float32 and int8 sizes, accuracy and latency.

Builds the demo project with every label true (as benchmarks/train_digits.py does), trains the
Keras CNN with its default hyperparameters (seeded), then exports it to float32 and to full-integer
int8 TFLite through the same service the worker runs (training/exports.py), whose parity check runs
each ``.tflite`` with the LiteRT interpreter on the dev split, one image at a time. Targets: the
int8 model at most 30 % of the float32 one's size, and its dev accuracy within 1 point of Keras.

    .venv/bin/python benchmarks/tflite_export.py

Scratch SQLite database and media folder of its own (or DATABASE_URL, a scratch one); replaces
the "TFLite export" section of benchmarks/RESULTS.md.
"""

import os
import platform
import time
from datetime import date

from django.conf import settings
from django.core.management import call_command
from results import write_section  # benchmarks/results.py, beside this script

# Importing train_digits sets Django up on the same kind of scratch database and media folder.
from train_digits import SEED, give_every_item_its_true_digit, train

from annotation.models import Project
from annotation.services.demo import DEMO_SLUG, create_demo
from training import exports
from training.models import ModelExport

SECTION = "## TFLite export"
MAX_SIZE_RATIO = 0.30
MAX_DROP = 0.01


def export(version, fmt):
    record = exports.start_export(version, fmt, queue_task=False)
    started = time.perf_counter()
    status = exports.run_export(record.pk)
    seconds = time.perf_counter() - started
    record.refresh_from_db()
    if status == ModelExport.Status.FAILED:
        raise SystemExit(f"{fmt} export failed: {record.error}")
    return record, seconds


def main():
    call_command("migrate", verbosity=0)
    Project.objects.filter(slug=DEMO_SLUG).delete()
    project, _ = create_demo(simulate_labelers=0, seed=SEED, log=lambda *_: None)
    give_every_item_its_true_digit(project)
    version, train_seconds = train(project, "keras_cnn")
    print(f"keras_cnn trained in {train_seconds:.1f} s, dev accuracy {version.metrics['evaluation']['accuracy']:.4f}")
    f32, f32_s = export(version, "float32")
    i8, i8_s = export(version, "int8")
    keras_acc = f32.parity["keras_accuracy"]
    ratio = i8.size_bytes / f32.size_bytes
    drop = keras_acc - i8.parity["tflite_accuracy"]
    size_ok, acc_ok = ratio <= MAX_SIZE_RATIO, drop <= MAX_DROP
    for rec, s in ((f32, f32_s), (i8, i8_s)):
        p = rec.parity
        print(
            f"{rec.format:8} {rec.size_bytes:>9,} bytes  dev {p['tflite_accuracy']:.4f} "
            f"(Keras {p['keras_accuracy']:.4f})"
            f"  {p['latency_ms']:.3f} ms/image  status {rec.status}  export {s:.1f} s"
        )
    size_word, acc_word = ("met" if size_ok else "MISSED"), ("met" if acc_ok else "MISSED")
    print(f"int8/float32 size {ratio:.3f} ({size_word}); drop {drop:+.4f} ({acc_word})")
    slices = ", ".join(f"{s['slice']} {s['delta']:+.4f} (n={s['n']})" for s in i8.parity["slices"]) or "none"
    n_dev = i8.parity["n"]
    project.delete()

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, {engine}"
    try:
        import ai_edge_litert
        import tensorflow as tf

        machine += (
            f", TensorFlow {tf.__version__} (CPU), ai-edge-litert {getattr(ai_edge_litert, '__version__', '2.3.0')}"
        )
    except ImportError:
        pass
    text = "\n".join(
        [
            SECTION,
            "",
            f"`benchmarks/tflite_export.py`, {date.today():%Y-%m-%d}, {machine}. The digits CNN (default "
            f"hyperparameters, seed {SEED}, every label true) exported to float32 and full-integer int8 TFLite "
            f"(representative set: {i8.parity['representative_n']} train images); accuracy on the dev split "
            f"({n_dev:,} images) with the LiteRT interpreter, one image at a time; latency is the mean per image "
            "of `invoke()` with LiteRT's default CPU settings, a rough guide on a shared machine.",
            "",
            "| model | size (bytes) | dev accuracy | latency ms/image |",
            "|---|---:|---:|---:|",
            f"| Keras (`.keras`) | — | {keras_acc:.4f} | — |",
            *(
                f"| TFLite {r.format} | {r.size_bytes:,} | {r.parity['tflite_accuracy']:.4f} "
                f"| {r.parity['latency_ms']:.3f} |"
                for r in (f32, i8)
            ),
            "",
            f"- int8 size / float32 size: **{ratio:.3f}** (target ≤ {MAX_SIZE_RATIO:.2f}: {size_word}).",
            f"- int8 accuracy drop vs Keras: **{drop:+.4f}** (target ≤ {MAX_DROP:.2f}: {acc_word}); "
            f"int8 export status `{i8.status}`. Delta per slice: {slices}.",
            f"- float32 agrees with Keras on {f32.parity['agreement']:.4f} of dev images, "
            f"int8 on {i8.parity['agreement']:.4f}.",
            "",
        ]
    )
    write_section(SECTION, text)
    print("wrote", SECTION)


if __name__ == "__main__":
    main()
