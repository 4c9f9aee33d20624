"""Label efficiency of the active-learning strategies on digits, against an established library.

Runs the simulator (active_learning/simulation.py) on scikit-learn's 1,797 digits (8x8 pixels / 16)
with every strategy: 5 seeds, 20 initial labels, batches of 20, a budget of 500, the logistic
regression trainer with its default hyperparameters, a fixed stratified 30 % test set. In the same
run, modAL's uncertainty sampling (least confidence; its margin and entropy sampling too, for
reference) picks from the same pool with the same seeds, initial sets and model (StandardScaler +
LogisticRegression with SklearnLogReg's defaults), so the curves differ only in what was picked.

Issue #7's target: the best Concord strategy reaches 95 % of the full-pool accuracy with at most
60 % of the labels random sampling needs, and with no more labels than the library's uncertainty
sampling (labels read off the mean curve over seeds).

    .venv/bin/python benchmarks/al_strategies.py

Prints the table, replaces the "Active learning on digits (simulator)" section of
benchmarks/RESULTS.md and writes the plot to docs/active_learning_digits.png.

modAL 0.4.2.1's ActiveLearner.teach() calls check_X_y(force_all_finite=...), a keyword
scikit-learn 1.8 removed, so the loop here retrains the model itself and calls modAL's query
functions (uncertainty_sampling, margin_sampling, entropy_sampling) on it, as ActiveLearner.query
would.
"""

import os
import platform
import sys
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path

from results import write_section  # benchmarks/results.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from modAL.uncertainty import entropy_sampling, margin_sampling, uncertainty_sampling  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from active_learning.sampling import STRATEGIES  # noqa: E402
from active_learning.simulation import curve_summary, label_schedule, labels_to_reach, simulate, write_png  # noqa: E402
from training.trainers import check_hyperparameters  # noqa: E402

SECTION = "## Active learning on digits (simulator)"
SETTINGS = {"seeds": 5, "initial": 20, "batch": 20, "budget": 500}
PNG = ROOT / "docs" / "active_learning_digits.png"
LIBRARY = {
    "modAL uncertainty": uncertainty_sampling,
    "modAL margin": margin_sampling,
    "modAL entropy": entropy_sampling,
}
COUNTERPART = {"modAL uncertainty": "least_confidence", "modAL margin": "margin", "modAL entropy": "entropy"}
REFERENCE = "modAL uncertainty"  # the library's "uncertainty sampling" the issue compares with
# Issue #7's example mix, measured beside the default one (45 % margin, 40 % diversity, 15 % random).
EXAMPLE_WEIGHTS = (("entropy", 0.60), ("error_model", 0.25), ("random", 0.15))
EXAMPLE = "mix: 60 % entropy, 25 % error model, 15 % random (issue #7's example)"
# The default mix was chosen after a first run on seeds 0-4 showed margin and diversity best; these
# seeds and this test split took no part in that choice, so they check it.
CONFIRMATION = {"seeds": [5, 6, 7, 8, 9], "split_seed": 1}
CONFIRMED = ("random", "margin", "diversity", "mix")
MAX_SHARE_OF_RANDOM = 0.60


def library_curve(query, X, y, result) -> dict:
    """A modAL query strategy on the simulator's test set, seeds and initial sets, with the same model."""
    hp = check_hyperparameters("sklearn_logreg", {})
    X = X.reshape(len(X), -1)
    test = np.asarray(result["test_indices"])
    schedule = label_schedule(result["initial_size"], result["batch"], result["budget"])
    started = time.perf_counter()
    per_seed = []
    for seed, start in zip(result["seeds"], result["initial"], strict=True):
        unlabeled = np.ones(len(y), dtype=bool)
        unlabeled[test] = False
        unlabeled[start] = False
        labeled = list(start)
        accuracies = []
        for round_index, n_labels in enumerate(schedule):
            model = make_pipeline(
                StandardScaler(), LogisticRegression(C=hp["C"], max_iter=hp["max_iter"], random_state=seed)
            ).fit(X[labeled], y[labeled])
            accuracies.append(model.score(X[test], y[test]))
            if n_labels == schedule[-1]:
                break
            candidates = np.flatnonzero(unlabeled)
            picked = query(model, X[candidates], n_instances=schedule[round_index + 1] - n_labels)
            picked = candidates[picked[0] if isinstance(picked, tuple) else picked]  # (indices, scores) in 0.4.2
            unlabeled[picked] = False
            labeled.extend(picked.tolist())
        per_seed.append(accuracies)
    return {
        **curve_summary(schedule, per_seed, result["target_accuracy"]),
        "seconds": time.perf_counter() - started,
    }


def per_seed_range(curve, target) -> str:
    """Labels each seed's own curve needs to reach the target, as 'fewest to most' ('never' if a seed
    never does within the budget)."""
    reached = [labels_to_reach(curve["labels"], acc, target) for acc in curve["per_seed"]]
    known = [n for n in reached if n is not None]
    if not known:
        return "never"
    return f"{min(known)} to {'never' if None in reached else max(known)}"


def at(curve, n_labels) -> float:
    """The mean accuracy at ``n_labels``."""
    return curve["mean"][curve["labels"].index(n_labels)]


def labels_text(curve, budget) -> str:
    n = curve["labels_to_target"]
    return f"> {budget}" if n is None else f"{n}"


def needed(curve) -> float:
    """Labels to the mark; never within the budget counts as more than any number."""
    return np.inf if curve["labels_to_target"] is None else curve["labels_to_target"]


def judge(curves, budget) -> tuple[list[str], list[str]]:
    """The best Concord strategies (ties included) and one line per part of issue #7's target, saying
    met or not; plus a line for the exploratory mix, which does not count."""
    best_n = min(needed(curves[name]) for name in STRATEGIES)
    best = [name for name in STRATEGIES if needed(curves[name]) == best_n]
    random_n = needed(curves["random"])
    if random_n < np.inf:
        verdict = "met" if best_n <= MAX_SHARE_OF_RANDOM * random_n else "MISSED"
        against_random = (
            f"{best_n:.0f} / {random_n:.0f} = {best_n / random_n:.0%} of the labels random sampling needs "
            f"(target ≤ {MAX_SHARE_OF_RANDOM:.0%}): **{verdict}**"
        )
    else:  # random needs more than the budget, so only best <= 60 % of the budget proves the point
        verdict = "met" if best_n <= MAX_SHARE_OF_RANDOM * budget else "not shown within the budget"
        against_random = (
            f"random sampling does not reach the mark within {budget} labels, so the target holds for sure only "
            f"if the best needs ≤ {MAX_SHARE_OF_RANDOM * budget:.0f}; it needs {labels_text(curves[best[0]], budget)}: "
            f"**{verdict}**"
        )
    library = curves[REFERENCE]
    verdict = "met" if best_n <= needed(library) else "MISSED"
    against_library = (
        f"{labels_text(curves[best[0]], budget)} against {labels_text(library, budget)} for {REFERENCE}: **{verdict}**"
    )
    best_library = min(LIBRARY, key=lambda name: needed(curves[name]))
    if best_library != REFERENCE:
        against_library += f" (the best modAL query, {best_library}, needs {labels_text(curves[best_library], budget)})"
    return best, [f"against random sampling: {against_random}", f"against the library: {against_library}"]


def confirmation_lines(check) -> list[str]:
    """Labels to 95 % per strategy of the confirmation run, and the share of random's."""
    curves, budget = check["strategies"], check["budget"]
    random_n = needed(curves["random"])
    lines = []
    for name in CONFIRMED:
        n = needed(curves[name])
        share = f" ({n / random_n:.0%} of random's)" if name != "random" and n < np.inf and random_n < np.inf else ""
        lines.append(f"`{name}`: {labels_text(curves[name], budget)} labels{share}")
    best = min(needed(curves[name]) for name in CONFIRMED if name != "random")
    verdict = "met" if best <= MAX_SHARE_OF_RANDOM * random_n else "MISSED"
    lines.append(f"the best here against random sampling (target ≤ {MAX_SHARE_OF_RANDOM:.0%}): **{verdict}**")
    return lines


def table(result) -> list[str]:
    budget, target = result["budget"], result["target_accuracy"]
    rows = [
        f"| strategy | labels to 95 % | per seed | accuracy at 100 | at 200 | at {budget} (mean ± std) | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in result["strategies"].items():
        shown = f"`{name}`" if name in STRATEGIES else name
        rows.append(
            f"| {shown} | **{labels_text(c, budget)}** | {per_seed_range(c, target)} | {at(c, 100):.3f} "
            f"| {at(c, 200):.3f} | {c['final_accuracy']:.3f} ± {c['std'][-1]:.3f} | {c['seconds']:.1f} |"
        )
    return rows


def main():
    digits = load_digits()
    X, y = (digits.images / 16.0).astype(np.float32), digits.target
    started = time.perf_counter()

    def progress(strategy, seed, accuracies):
        elapsed = time.perf_counter() - started
        print(f"  {strategy:<17} seed {seed}: {accuracies[0]:.3f} -> {accuracies[-1]:.3f}  ({elapsed:.0f} s)")

    result = simulate(X, y, strategies=STRATEGIES, progress=progress, **SETTINGS)
    other = simulate(X, y, strategies=["mix"], weights=EXAMPLE_WEIGHTS, progress=progress, **SETTINGS)
    assert other["initial"] == result["initial"] and other["test_indices"] == result["test_indices"]
    check = simulate(X, y, strategies=CONFIRMED, progress=progress, **{**SETTINGS, **CONFIRMATION})
    with threadpool_limits(limits=1):  # as in the simulator: small fits on shared cores
        for name, query in LIBRARY.items():
            result["strategies"][name] = library_curve(query, X, y, result)
            print(f"  {name:<17} done ({time.perf_counter() - started:.0f} s)")
    result["strategies"][EXAMPLE] = other["strategies"]["mix"]
    total = time.perf_counter() - started

    curves, budget = result["strategies"], result["budget"]
    # Same model, same initial sets: the library's first point must equal Concord's; and where the
    # scores are the same measure, whole curves should match (only ties could part them).
    first_points_agree = np.allclose(
        np.asarray(curves[REFERENCE]["per_seed"])[:, 0], np.asarray(curves["random"]["per_seed"])[:, 0]
    )
    curves_match = all(curves[lib]["per_seed"] == curves[ours]["per_seed"] for lib, ours in COUNTERPART.items())
    best, verdicts = judge(curves, budget)
    rows = table(result)
    print("\n".join(["", *rows, ""]))
    print(f"full-pool accuracy {result['full_pool_accuracy']:.4f}; 95 % of it {result['target_accuracy']:.4f}")
    print(f"the library's first point equals Concord's (same model and initial sets): {first_points_agree}")
    print(f"modAL's uncertainty / margin / entropy curves equal Concord's, every seed and point: {curves_match}")
    print(f"best Concord strategy: {', '.join(best)}")
    print("\n".join(verdicts).replace("**", ""))
    confirmation = confirmation_lines(check)
    print("\n".join(confirmation).replace("**", ""))
    print(f"total {total:.0f} s")

    title = f"Active learning on digits: logistic regression, {len(result['seeds'])} seeds"
    shown = {name: c for name, c in curves.items() if name in STRATEGIES or name == REFERENCE}
    write_png({**result, "strategies": shown}, PNG, title=title, dashed=[REFERENCE])
    print(f"plot: {PNG}")

    machine = (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, NumPy {np.__version__}, "
        f"scikit-learn {version('scikit-learn')}, modAL-python {version('modAL-python')}"
    )
    mix = ", ".join(f"{w:.0%} {n}" for n, w in result["weights"])
    text = [
        SECTION,
        "",
        f"`benchmarks/al_strategies.py`, {date.today():%Y-%m-%d}, {machine}. scikit-learn's 1,797 digits "
        f"(8x8 pixels / 16); one fixed stratified test set of {result['n_test']} items, a pool of {result['n_pool']}; "
        f"{len(result['seeds'])} seeds, {result['initial_size']} initial labels (one per class, then random; the "
        f"same for every strategy), batches of {result['batch']}, a budget of {budget}; `sklearn_logreg` with its "
        "default hyperparameters (StandardScaler + LogisticRegression, C=0.05), refit every round; the error model "
        f"learns from 5-fold out-of-fold predictions on the labeled set; `mix` = {mix}. modAL's query functions "
        "run on the same test set, seeds, initial sets and model (its `ActiveLearner.teach` fails on "
        "scikit-learn ≥ 1.8, so the loop refits the model itself; the first points agree: "
        f"{'yes' if first_points_agree else 'NO'}; modAL's uncertainty, margin and entropy curves equal Concord's "
        f"`least_confidence`, `margin` and `entropy` at every point of every seed: {'yes' if curves_match else 'no'}). "
        "Labels to 95 % are read off the mean curve over seeds; "
        "'per seed' is the range over the seeds' own curves.",
        "",
        f"Full-pool accuracy (all {result['n_pool']} pool labels): **{result['full_pool_accuracy']:.4f}**; "
        f"95 % of it: {result['target_accuracy']:.4f}.",
        "",
        *rows,
        "",
        f"Issue #7's target, for the best Concord strategy ({' and '.join(f'`{b}`' for b in best)}, "
        f"{labels_text(curves[best[0]], budget)} labels):",
        "",
        *(f"- {line}" for line in verdicts),
        "",
        f"Confirmation on seeds {', '.join(map(str, check['seeds']))} and another test split (split seed "
        f"{check['split_seed']}; full-pool accuracy {check['full_pool_accuracy']:.4f}, 95 % of it "
        f"{check['target_accuracy']:.4f}), which took no part in choosing the default mix:",
        "",
        *(f"- {line}" for line in confirmation),
        "",
        f"Whole run: {total:.0f} s wall-clock (per strategy in the table, all seeds together; a shared machine, so "
        "a rough guide).",
        "",
        "![Learning curves on digits](../docs/active_learning_digits.png)",
        "",
    ]
    write_section(SECTION, "\n".join(text))


if __name__ == "__main__":
    main()
