"""What the training curves and the version comparison cost.

1. The logistic regression's validation curve over C (training/trainers.py): fitting the five
   values of C against the plain single fit it replaces, on scikit-learn's 1,797 digits upscaled
   to the demo's 16 x 16 pixels (1,437 train / 360 dev), and on 2,000 short texts (TF-IDF).
2. The comparison of two versions (training/side_by_side.py): joining two versions' stored
   per-item predictions on item id and McNemar's test, at 10k, 100k and 1M evaluation items —
   the cost the compare page pays instead of loading two models.

No database. Prints a table and replaces the "Training curves and version comparison" section of
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/curves_compare.py
"""

import os
import platform
import sys
import time
from pathlib import Path

from results import write_section  # benchmarks/results.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from training import compare  # noqa: E402
from training.side_by_side import Predictions  # noqa: E402
from training.trainers import SklearnLogReg  # noqa: E402

SECTION = "## Training curves and version comparison"
REPEATS = 3


def best_of(fn, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def digits16():
    from sklearn.datasets import load_digits

    d = load_digits()
    small = [Image.fromarray((im * 15.9).astype(np.uint8)).resize((16, 16)) for im in d.images]
    X = np.stack([np.asarray(im) / 255.0 for im in small])
    X = X.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(X))
    cut = int(0.8 * len(X))
    return X[order[:cut]], d.target[order[:cut]], X[order[cut:]], d.target[order[cut:]]


def texts(n=2000):
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(3000)]
    y = rng.integers(0, 4, n)
    docs = [" ".join(rng.choice(words[c * 700 : c * 700 + 900], 12)) for c in y]
    cut = int(0.8 * n)
    return docs[:cut], y[:cut], docs[cut:], y[cut:]


def join_and_test(a: Predictions, b: Predictions):
    ia, ib = compare.align(a.item_ids, b.item_ids)
    same = a.label[ia] == b.label[ib]
    ia, ib = ia[same], ib[same]
    truth = a.label[ia]
    return compare.paired_comparison(a.predicted[ia] == truth, b.predicted[ib] == truth)


def fake_predictions(n, seed, accuracy):
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(n, dtype=np.int64) * 3)  # shuffled: the join must sort
    label = (ids * 7919) % 10
    predicted = np.where(rng.random(n) < accuracy, label, (label + 1) % 10)
    return Predictions(ids, predicted, label, 0)


def main():
    rows = []
    X, y, Xd, yd = digits16()
    plain = best_of(lambda: SklearnLogReg(10).fit(X, y))
    curve = best_of(lambda: SklearnLogReg(10).fit(X, y, Xd, yd))
    rows.append(("digits 16x16, 1,437 train / 360 dev", plain, curve))
    T, ty, Td, tyd = texts()
    plain_t = best_of(lambda: SklearnLogReg(4, data_kind="text").fit(T, ty))
    curve_t = best_of(lambda: SklearnLogReg(4, data_kind="text").fit(T, ty, Td, tyd))
    rows.append(("texts, 1,600 train / 400 dev (TF-IDF)", plain_t, curve_t))
    joins = []
    for n in (10_000, 100_000, 1_000_000):
        a, b = fake_predictions(n, 1, 0.90), fake_predictions(n, 2, 0.91)
        b.item_ids = b.item_ids[::-1].copy()
        b.label, b.predicted = b.label[::-1].copy(), b.predicted[::-1].copy()
        seconds = best_of(lambda a=a, b=b: join_and_test(a, b))
        result = join_and_test(a, b)
        joins.append((n, seconds, result["pvalue"], result["method"]))

    lines = [
        SECTION,
        "",
        f"`benchmarks/curves_compare.py`, 2026-12-02, 2 cores (shared with other engineers' tests), 24 GiB, "
        f"{platform.machine()}, Python {platform.python_version()}; best of {REPEATS} runs. No database.",
        "",
        "Logistic regression: the plain fit at the chosen C against the fit that also records the validation "
        "curve over C (0.01 to 100 times C, five fits on features transformed once; the model kept is the "
        "one at 1 x C, identical to the plain fit).",
        "",
        "| data | plain fit s | with validation curve s | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, p, c in rows:
        lines.append(f"| {name} | {p:.2f} | {c:.2f} | {c / p:.1f}x |")
    lines += [
        "",
        "Comparing two versions from their stored per-item predictions (join on item id, then McNemar's test); "
        "the page also reads the two JSON rows from PostgreSQL, not timed here.",
        "",
        "| evaluation items | join + test ms | p | test |",
        "|---:|---:|---:|---|",
    ]
    for n, s, p, method in joins:
        lines.append(f"| {n:,} | {s * 1000:.1f} | {p:.3g} | {method} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(SECTION, text)


if __name__ == "__main__":
    main()
