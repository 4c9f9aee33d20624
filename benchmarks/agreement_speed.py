"""How fast the agreement metrics, Dawid-Skene and the whole quality report run, against the reference
packages, at 10k / 100k / 1M annotations (N items x 5 labelers, seeded synthetic labels).

No database: the pure modules only (annotation.agreement, annotation.consensus, annotation.quality).

    .venv/bin/python benchmarks/agreement_speed.py            # all sizes, references included
    .venv/bin/python benchmarks/agreement_speed.py --no-reference-at-1m

Prints a table and replaces the "Agreement speed" section of benchmarks/RESULTS.md. Peak memory is
measured with tracemalloc in a separate run of the full report (NumPy reports its allocations to it).
"""

import argparse
import os
import platform
import sys
import time
import tracemalloc
from datetime import date
from importlib.metadata import version
from pathlib import Path

from results import write_section  # benchmarks/results.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import krippendorff  # noqa: E402
import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import statsmodels  # noqa: E402
from sklearn.metrics import cohen_kappa_score  # noqa: E402
from statsmodels.stats.inter_rater import aggregate_raters  # noqa: E402
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa  # noqa: E402

from annotation import agreement as ag  # noqa: E402
from annotation import consensus, quality  # noqa: E402

SECTION = "## Agreement speed"
SIZES = (10_000, 100_000, 1_000_000)
N_LABELERS = 5
N_CLASSES = 5  # four classes and an ambiguity class


def synthetic(n_annotations, seed=0):
    """N items x 5 labelers of known accuracy, 10 % gold, two guideline versions, one slice key."""
    rng = np.random.default_rng(seed)
    n = n_annotations // N_LABELERS
    truth = rng.integers(0, N_CLASSES - 1, n)
    accuracy = np.array([0.92, 0.88, 0.83, 0.78, 0.7])
    item = np.repeat(np.arange(n), N_LABELERS)
    labeler = np.tile(np.arange(N_LABELERS), n)
    right = rng.random(item.size) < accuracy[labeler]
    label = np.where(right, truth[item], rng.integers(0, N_CLASSES, item.size))
    dense = np.full((n, N_LABELERS), np.nan)
    dense[item, labeler] = label
    gold = np.where(rng.random(n) < 0.1, truth, np.nan).astype(float)
    inp = quality.QualityInput(
        item_idx=item,
        labeler_idx=labeler,
        label=label,
        unsure=rng.random(item.size) < 0.03,
        duration_ms=rng.lognormal(7.3, 0.4, item.size),
        version=np.where(item < n // 2, 1, 2),
        truth=gold,
        truth_source=np.where(np.isnan(gold), 0, 1),
        class_names=[*(f"class {k}" for k in range(N_CLASSES - 1)), "unclear"],
        ambiguity=np.arange(N_CLASSES) == N_CLASSES - 1,
        labeler_names=[f"labeler {j}" for j in range(N_LABELERS)],
        labeler_ids=np.arange(N_LABELERS),
        item_ids=np.arange(n),
        item_names=[f"item-{i}" for i in range(n)],
        slices={"device": (rng.integers(0, 3, n), ["phone-a", "phone-b", "tablet"])},
    )
    return dense, inp


def best_of(fn, repeats):
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def measure(n_annotations, with_reference):
    dense, inp = synthetic(n_annotations)
    repeats = 3 if n_annotations <= 100_000 else 1
    counts = ag.class_counts_from_triples(inp.item_idx, inp.label, dense.shape[0], N_CLASSES)
    rows = []  # (what, ours s, reference s or None, |difference| or None)

    def add(what, ours, reference=None, ours_value=None, reference_value=None):
        t_ours, v_ours = best_of(ours, repeats)
        t_ref = diff = None
        if reference is not None and with_reference:
            t_ref, v_ref = best_of(reference, repeats)
            diff = abs(float(v_ours) - float(v_ref)) if ours_value is None else abs(ours_value - reference_value)
        rows.append((what, t_ours, t_ref, diff))

    add(
        "Krippendorff's alpha (package: krippendorff)",
        lambda: ag.krippendorff_alpha(dense),
        lambda: krippendorff.alpha(reliability_data=dense.T, level_of_measurement="nominal"),
    )
    add(
        "Fleiss' kappa (statsmodels, incl. aggregate_raters)",
        lambda: ag.fleiss_kappa(dense, N_CLASSES),
        lambda: sm_fleiss_kappa(aggregate_raters(dense.astype(int))[0]),
    )

    def sklearn_pairs():
        return [
            cohen_kappa_score(dense[:, a], dense[:, b]) for a in range(N_LABELERS) for b in range(a + 1, N_LABELERS)
        ]

    ours_kappa = ag.pairwise_cohen_kappa(dense)
    ref_kappa = sklearn_pairs() if with_reference else None
    t_ours, _ = best_of(lambda: ag.pairwise_cohen_kappa(dense), repeats)
    t_ref = best_of(sklearn_pairs, repeats)[0] if with_reference else None
    diff = (
        max(
            abs(ours_kappa[a, b] - r)
            for (a, b), r in zip(np.argwhere(np.triu(np.ones((5, 5)), 1)), ref_kappa, strict=True)
        )
        if with_reference
        else None
    )
    rows.append(("Cohen's kappa, all 10 pairs (sklearn cohen_kappa_score)", t_ours, t_ref, diff))
    add("percent agreement", lambda: ag.percent_agreement(dense))
    add("labeler confusion (K x K)", lambda: ag.labeler_confusion(dense, N_CLASSES))
    add("majority vote (from counts)", lambda: consensus.majority_vote_from_counts(counts, random_state=0))
    add(
        "Dawid-Skene (sparse EM, <= 100 rounds)",
        lambda: consensus.dawid_skene_from_triples(
            inp.item_idx,
            inp.labeler_idx,
            inp.label,
            dense.shape[0],
            N_LABELERS,
            N_CLASSES,
            max_iter=100,
            random_state=0,
        ),
    )
    t_report, report = best_of(lambda: quality.compute_report(inp), repeats)
    rows.append(("whole quality report (compute_report)", t_report, None, None))

    tracemalloc.start()
    quality.compute_report(inp)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return rows, peak, report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-reference-at-1m", action="store_true", help="skip the reference packages at 1M")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)

    results = {}
    for size in SIZES:
        with_reference = not (size == 1_000_000 and args.no_reference_at_1m)
        start = time.perf_counter()
        rows, peak, report = measure(size, with_reference)
        results[size] = (rows, peak)
        print(f"\n{size:,} annotations ({size // N_LABELERS:,} items x {N_LABELERS} labelers), "
              f"{time.perf_counter() - start:.1f} s in all; report peak memory {peak / 2**20:.0f} MiB; "
              f"alpha {report['agreement']['krippendorff_alpha']:.4f}, "
              f"Dawid-Skene {report['consensus']['dawid_skene']['accuracy']:.3f} vs "
              f"majority {report['consensus']['majority_vote']['accuracy']:.3f} on gold")  # fmt: skip
        print(f"  {'what':58} {'ours s':>9} {'reference s':>12} {'|diff|':>9}")
        for what, ours, ref, diff in rows:
            ref_text = "—" if ref is None else f"{ref:.4f}"
            diff_text = "—" if diff is None else f"{diff:.1e}"
            print(f"  {what:58} {ours:9.4f} {ref_text:>12} {diff_text:>9}")
        if not with_reference:
            print("  (reference packages skipped at 1M: --no-reference-at-1m)")

    machine = (
        f"{os.cpu_count()} cores ({platform.machine()}, {platform.processor() or 'cpu'}), "
        f"Python {platform.python_version()}, NumPy {np.__version__}, krippendorff {version('krippendorff')}, "
        f"statsmodels {statsmodels.__version__}, scikit-learn {sklearn.__version__}"
    )
    lines = [
        SECTION,
        "",
        f"`benchmarks/agreement_speed.py`, {date.today():%Y-%m-%d}, {machine}. Seeded synthetic labels: "
        f"N items x {N_LABELERS} labelers, {N_CLASSES} classes; best of 3 runs (1 at 1M). "
        "|diff| is the largest difference between our value and the reference's.",
        "",
        "| what | " + " | ".join(f"{s:,}: ours s | reference s" for s in SIZES) + " |",
        "|---|" + "---:|---:|" * len(SIZES),
    ]
    names = [what for what, *_ in results[SIZES[0]][0]]
    for i, what in enumerate(names):
        cells = []
        for size in SIZES:
            _, ours, ref, _ = results[size][0][i]
            cells += [f"{ours:.4f}", "—" if ref is None else f"{ref:.4f}"]
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    diffs = [d for size in SIZES for (_, _, _, d) in results[size][0] if d is not None]
    lines += [
        "",
        "Peak memory of the whole report (tracemalloc): "
        + ", ".join(f"{s:,}: {results[s][1] / 2**20:.0f} MiB" for s in SIZES)
        + f". Largest |ours - reference| over all runs: {max(diffs, default=float('nan')):.1e}.",
    ]
    if args.no_reference_at_1m:
        lines.append("The reference packages were skipped at 1M (`--no-reference-at-1m`).")
    lines.append("")
    text = "\n".join(lines)
    print("\n" + text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
