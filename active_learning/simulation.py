"""Active-learning simulator: replay labeling with an oracle to compare sampling strategies.

Pure NumPy / scikit-learn plus a trainer from ``training.trainers``; no Django. The selection goes
through :func:`active_learning.sampling.select_batch`, the same entry point real cycles use, so the
simulator measures the code that runs in production.

Protocol (:func:`simulate`, one test split):

* one stratified split, seeded by ``split_seed`` and the same for every strategy and seed, puts
  ``test_size`` of the data in a held-out test set; the rest is the pool;
* per seed, ``initial`` pool items are drawn at random **without looking at their labels** (the
  one exception: a draw holding a single class, on which no model can be fit, has its last item
  swapped for the next item of the seed's random order that is of another class) — the same
  initial set for every strategy;
* each round fits the trainer on the labeled set, records ``(labels, test accuracy)``, scores the
  unlabeled pool (probabilities, and embeddings for the strategies that read them) and lets the
  strategy pick the next batch, whose true labels (the oracle) join the labeled set; the run
  stops once ``budget`` labels are in (that point is recorded too). The error model learns from
  the items picked in earlier rounds, as the model of their round scored them before their
  labels came: held-out predictions of the same model lineage that scores the pool, at no extra
  fit (out-of-fold models fit on part of the labels were wrong in other places than the model
  that scores the pool, and cost 2 extra fits a round: 3.5-4.4x random's time per cycle). The
  first round has no such items, so the error model falls back to margin there;
* the "full-pool accuracy" is the best test accuracy of the trainer fit on the whole pool over a
  small regularisation grid (:data:`REFERENCE_CS`), so no strategy can beat the ceiling by luck of
  the default; per strategy, the labels needed to reach ``target_fraction`` (95 %) of it.

:func:`simulate_splits` repeats that on several test splits and :func:`aggregate` reports, per
strategy, the area under the learning curve and the labels to the target over every (split, seed)
run, with a 95 % interval from a bootstrap that resamples splits, then seeds within them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from training.trainers import get_trainer

from .error_model import Earlier, uncertainty_features
from .sampling import (
    ALL_STRATEGIES,
    COLD_START_MIN_CLASS,
    COLD_START_PER_CLASS,
    DEFAULT_MIX,
    Labeled,
    reduce_dim,
    select_batch,
)

__all__ = [
    "TARGET_FRACTION",
    "aggregate",
    "area_under_curve",
    "curve_summary",
    "draw_initial",
    "label_schedule",
    "labels_to_reach",
    "simulate",
    "simulate_splits",
    "split_pool_test",
    "write_json",
    "write_png",
]

TARGET_FRACTION = 0.95
REFERENCE_CS = (0.01, 0.05, 0.2, 1.0, 5.0)  # the full-pool reference: best of these (sklearn_logreg)
BOOTSTRAP = 2000


# ------------------------------------------------------------------------------------------------
# Building blocks (also used by benchmarks/al_strategies.py to run a library on the same splits)
# ------------------------------------------------------------------------------------------------


def split_pool_test(y, test_size: float = 0.3, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified ``(pool indices, test indices)`` into ``y`` ``(N,)``, both sorted."""
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must lie strictly between 0 and 1, got {test_size!r}")
    y = np.asarray(y)
    counts = np.unique(y, return_counts=True)[1]
    if counts.min() < 2:
        raise ValueError("every class needs at least 2 items for the stratified test split")
    n_test = int(np.ceil(test_size * len(y)))
    if n_test < counts.size or len(y) - n_test < counts.size:
        raise ValueError(
            f"a test_size of {test_size} leaves too few items to hold every one of the {counts.size} classes "
            f"in both the test set and the pool ({len(y)} items)"
        )
    pool, test = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=random_state)
    return np.sort(pool), np.sort(test)


def draw_initial(y_pool, n: int, random_state) -> np.ndarray:
    """``n`` indices into ``y_pool`` ``(P,)`` drawn at random without looking at the labels, except
    that a draw holding a single class has its last item swapped for the next item (in the same
    random order) of another class: no model can be fit on one class. Needs ``2 <= n <= P``."""
    y_pool = np.asarray(y_pool)
    if not 2 <= n <= len(y_pool):
        raise ValueError(f"the initial set must hold between 2 and {len(y_pool)} items (the pool), got {n}")
    order = np.random.default_rng(random_state).permutation(len(y_pool))
    chosen = order[:n].copy()
    if np.unique(y_pool[chosen]).size < 2:
        other = order[n:][y_pool[order[n:]] != y_pool[chosen[0]]]
        if other.size:
            chosen[-1] = other[0]
    return chosen.astype(np.int64)


def label_schedule(initial: int, batch: int, budget: int) -> list[int]:
    """Label counts at which a model is fit: ``initial``, ``initial + batch``, ..., ending at ``budget``."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    if budget < initial:
        raise ValueError(f"the budget ({budget}) must be at least the initial set ({initial})")
    counts = list(range(initial, budget, batch))
    return [*counts, budget]


def labels_to_reach(labels: Sequence[int], accuracy: Sequence[float], target: float) -> int | None:
    """The first label count whose accuracy is at least ``target``; None if none is."""
    for n, acc in zip(labels, accuracy, strict=True):
        if acc >= target:
            return int(n)
    return None


def curve_summary(labels: Sequence[int], per_seed, target_accuracy: float) -> dict:
    """Mean, spread (std), min, max over seeds of ``per_seed`` ``(S, T)`` accuracies at ``labels``
    ``(T,)``, and the labels the mean curve needs to reach ``target_accuracy``."""
    acc = np.asarray(per_seed, dtype=float)
    mean = acc.mean(axis=0)
    return {
        "labels": [int(n) for n in labels],
        "mean": mean.tolist(),
        "std": acc.std(axis=0).tolist(),
        "min": acc.min(axis=0).tolist(),
        "max": acc.max(axis=0).tolist(),
        "per_seed": acc.tolist(),
        "labels_to_target": labels_to_reach(labels, mean, target_accuracy),
        "final_accuracy": float(mean[-1]),
    }


# ------------------------------------------------------------------------------------------------
# The simulation
# ------------------------------------------------------------------------------------------------


def _uses(strategy: str, weights, component: str) -> bool:
    """Whether ``strategy`` (with mix ``weights``) draws on ``component``."""
    if strategy == "mix":
        return any(name == component and w > 0 for name, w in weights)
    return strategy == component


def _trainer_factory(trainer: str, X: np.ndarray, n_classes: int) -> Callable[[int], object]:
    """``seed -> unfitted trainer`` with default hyperparameters."""
    cls = get_trainer(trainer)
    hyperparameters = {}
    if trainer == "keras_cnn":
        # The CNN reads (N, S, S) images at its image_size (the caller resizes); take S from the data.
        if X.ndim != 3 or X.shape[1] != X.shape[2]:
            raise ValueError(f"{trainer} needs square images: X of shape (N, S, S), got {X.shape}")
        hyperparameters["image_size"] = X.shape[1]
    cls(n_classes, **hyperparameters)  # fail now on bad hyperparameters, not after the first fits
    return lambda seed: cls(n_classes, random_state=seed, **hyperparameters)


def _accuracy(model, X, y) -> float:
    return float((model.predict_proba(X).argmax(axis=1) == y).mean())


def _run_one(
    make_model, X_pool, y_pool, X_test, y_test, *, start, schedule, strategy, seed, weights, n_classes,
    cold_start=(COLD_START_PER_CLASS, COLD_START_MIN_CLASS),
):  # fmt: skip
    """One learning curve: ``(test accuracies (T,), pool indices in labeling order (budget,))``."""
    labeled = list(start)
    is_labeled = np.zeros(len(y_pool), dtype=bool)
    is_labeled[labeled] = True
    uses_error_model = _uses(strategy, weights, "error_model")
    # The mix reads the labeled set for its cold start too.
    needs_labeled = uses_error_model or strategy in ("mix", "diversity", "typiclust")
    # What the error model learns from: every item picked so far, as the model of its round scored
    # it before its label came (held-out by construction, and free: those scores chose the batch).
    picked, picked_uncertainty, picked_predicted = [], [], []
    accuracies = []
    for round_index, n_labels in enumerate(schedule):
        fit_on = np.asarray(labeled)
        model = make_model(seed).fit(X_pool[fit_on], y_pool[fit_on])
        accuracies.append(_accuracy(model, X_test, y_test))
        if n_labels == schedule[-1]:
            break
        unlabeled = np.flatnonzero(~is_labeled)
        pool_proba = model.predict_proba(X_pool[unlabeled])
        pool_features = labeled_set = None
        if needs_labeled:
            pool_features = reduce_dim(model.embed(X_pool[unlabeled]))
            centers = reduce_dim(model.embed(X_pool[fit_on]))
            counts = np.bincount(y_pool[fit_on], minlength=n_classes)
            if uses_error_model:
                rows = np.asarray(picked, dtype=np.int64)
                earlier = Earlier(
                    reduce_dim(model.embed(X_pool[rows])) if rows.size else centers[:0],
                    np.vstack(picked_uncertainty) if rows.size else np.zeros((0, 3)),
                    np.concatenate(picked_predicted) != y_pool[rows] if rows.size else np.zeros(0, dtype=bool),
                )
                # No dev split here: the current model's own held-out rows are none.
                labeled_set = Labeled(centers[:0], np.zeros((0, n_classes)), np.zeros(0, dtype=np.int64),
                                      centers=centers, earlier=earlier, class_counts=counts)  # fmt: skip
            else:  # diversity, TypiClust and the cold start read only the embeddings
                labeled_set = Labeled(centers, model.predict_proba(X_pool[fit_on]), y_pool[fit_on], class_counts=counts)
        selection = select_batch(
            strategy,
            schedule[round_index + 1] - n_labels,
            pool_proba=pool_proba,
            pool_features=pool_features,
            labeled=labeled_set,
            weights=weights,
            random_state=1000 * seed + round_index,  # differs per seed and round, same for every strategy
            cold_start_per_class=cold_start[0],
            cold_start_min_class=cold_start[1],
        )
        picks = unlabeled[selection.indices]
        if uses_error_model:
            picked.extend(picks.tolist())
            picked_uncertainty.append(uncertainty_features(pool_proba[selection.indices]))
            picked_predicted.append(pool_proba[selection.indices].argmax(axis=1))
        is_labeled[picks] = True
        labeled.extend(picks.tolist())  # the oracle: y_pool[picks] are their true labels
    return np.asarray(accuracies), np.asarray(labeled, dtype=np.int64)


def full_pool_reference(trainer: str, X_pool, y_pool, X_test, y_test, n_classes: int, seed: int) -> tuple[float, dict]:
    """(best test accuracy, its hyperparameters) of ``trainer`` fit on the whole pool over
    :data:`REFERENCE_CS` (trainers without ``C`` get their defaults only)."""
    cls = get_trainer(trainer)
    grid = [{"C": c} for c in REFERENCE_CS] if "C" in getattr(cls, "hyperparameter_specs", {}) else [{}]
    best = (-1.0, {})
    for hp in grid:
        if trainer == "keras_cnn":
            hp = {**hp, "image_size": X_pool.shape[1]}
        accuracy = _accuracy(cls(n_classes, random_state=seed, **hp).fit(X_pool, y_pool), X_test, y_test)
        if accuracy > best[0]:
            best = (accuracy, hp)
    return best


def simulate(
    X,
    y,
    *,
    strategies: Sequence[str] = ALL_STRATEGIES,
    seeds: int | Sequence[int] = 5,
    initial: int = 20,
    batch: int = 20,
    budget: int = 500,
    trainer: str = "sklearn_logreg",
    test_size: float = 0.3,
    weights=DEFAULT_MIX,
    split_seed: int = 0,
    target_fraction: float = TARGET_FRACTION,
    cold_start_per_class: float = COLD_START_PER_CLASS,
    cold_start_min_class: int | None = COLD_START_MIN_CLASS,
    progress: Callable[[str, int, np.ndarray], None] | None = None,
) -> dict:
    """Learning curves of ``strategies`` on ``X`` ``(N, ...)`` float features (images or vectors) with
    labels ``y`` ``(N,)`` of any kind (mapped to class indices ``0..K-1`` in sorted order).

    ``seeds`` is a count (seeds ``0..seeds-1``) or the seeds themselves. ``progress(strategy, seed,
    accuracies)`` is called after each curve. Raises ValueError with a message on bad input.

    Returns a JSON-safe dict: the settings, ``classes``, ``n_pool``, ``n_test``, ``test_indices``
    (into X), ``initial`` (per seed, indices into X), ``full_pool_accuracy``, ``target_accuracy``,
    and ``strategies``: name -> :func:`curve_summary` plus ``labeled`` (per seed, indices into X in
    labeling order) and ``seconds``.
    """
    X = np.asarray(X, dtype=np.float32)
    y_raw = np.asarray(y)
    if X.ndim < 2 or y_raw.ndim != 1 or len(X) != len(y_raw):
        raise ValueError(
            f"X must have one row per item and y one label per item; got X of shape {X.shape}, y of shape {y_raw.shape}"
        )
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values")
    classes, y_all = np.unique(y_raw, return_inverse=True)
    if classes.size < 2:
        raise ValueError("y must hold at least two classes")
    strategies = list(strategies)
    unknown = [s for s in strategies if s not in ALL_STRATEGIES]
    if unknown or not strategies:
        named = ", ".join(unknown) or "(none given)"
        raise ValueError(f"unknown strategy {named}; choose from {', '.join(ALL_STRATEGIES)}")
    if len(set(strategies)) != len(strategies):
        raise ValueError(f"a strategy is named twice in {', '.join(strategies)}")
    seed_list = list(range(seeds)) if isinstance(seeds, int | np.integer) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("at least one seed is needed")
    weights = tuple((str(name), float(w)) for name, w in weights)
    schedule = label_schedule(initial, batch, budget)
    pool, test = split_pool_test(y_all, test_size, split_seed)
    if budget > len(pool):
        raise ValueError(f"the budget ({budget}) is larger than the pool ({len(pool)} items after the test split)")
    n_classes = classes.size
    make_model = _trainer_factory(trainer, X, n_classes)
    X_pool, y_pool, X_test, y_test = X[pool], y_all[pool], X[test], y_all[test]
    starts = {seed: draw_initial(y_pool, initial, seed) for seed in seed_list}

    with threadpool_limits(limits=1):
        # Hundreds of small fits: on a busy machine, BLAS threads spin-waiting for each other made
        # them several times slower than one thread (digits, 2 shared cores: 16 s against 3 s).
        full_pool_accuracy, reference = full_pool_reference(
            trainer, X_pool, y_pool, X_test, y_test, n_classes, split_seed
        )
        target_accuracy = target_fraction * full_pool_accuracy
        curves = {}
        for strategy in strategies:
            started = time.perf_counter()
            per_seed, orders = [], []
            for seed in seed_list:
                accuracies, order = _run_one(
                    make_model,
                    X_pool,
                    y_pool,
                    X_test,
                    y_test,
                    start=starts[seed],
                    schedule=schedule,
                    strategy=strategy,
                    seed=seed,
                    weights=weights,
                    n_classes=n_classes,
                    cold_start=(cold_start_per_class, cold_start_min_class),
                )
                per_seed.append(accuracies)
                orders.append(pool[order].tolist())
                if progress:
                    progress(strategy, seed, accuracies)
            curves[strategy] = {
                **curve_summary(schedule, per_seed, target_accuracy),
                "labeled": orders,
                "seconds": time.perf_counter() - started,
            }
    return {
        "trainer": trainer,
        "classes": [str(c) for c in classes],
        "seeds": seed_list,
        "initial_size": initial,
        "batch": batch,
        "budget": budget,
        "test_size": test_size,
        "split_seed": split_seed,
        "weights": [list(w) for w in weights],
        "cold_start_per_class": cold_start_per_class,
        "cold_start_min_class": cold_start_min_class,
        "n_pool": len(pool),
        "n_test": len(test),
        "test_indices": test.tolist(),
        "initial": [pool[starts[seed]].tolist() for seed in seed_list],
        "full_pool_accuracy": full_pool_accuracy,
        "full_pool_hyperparameters": reference,
        "target_fraction": target_fraction,
        "target_accuracy": target_accuracy,
        "strategies": curves,
    }


# ------------------------------------------------------------------------------------------------
# Several test splits
# ------------------------------------------------------------------------------------------------


def area_under_curve(labels: Sequence[int], accuracy: Sequence[float]) -> float:
    """The trapezoidal area under accuracy against labels, divided by the label range: the curve's
    mean accuracy from the first to the last point (1.0 for a perfect model from the start)."""
    x, a = np.asarray(labels, dtype=float), np.asarray(accuracy, dtype=float)
    if x[-1] == x[0]:
        return float(a[0])
    return float(np.trapezoid(a, x) / (x[-1] - x[0]))


def simulate_splits(X, y, *, split_seeds: Sequence[int] = (0, 1, 2), progress=None, **kwargs) -> list[dict]:
    """:func:`simulate` once per test split in ``split_seeds`` (same seeds and settings)."""
    split_seeds = [int(s) for s in split_seeds]
    if not split_seeds or len(set(split_seeds)) != len(split_seeds):
        raise ValueError("at least one test split is needed, each named once")
    return [simulate(X, y, split_seed=seed, progress=progress, **kwargs) for seed in split_seeds]


def _interval(values: np.ndarray) -> dict:
    """{"mean": ..., "low": ..., "high": ...}: the first row is the estimate, the rest bootstrap replicates."""
    return {
        "mean": float(values[0]),
        "low": float(np.percentile(values[1:], 2.5)),
        "high": float(np.percentile(values[1:], 97.5)),
    }


def aggregate(results: Sequence[dict], *, reference: str = "random", n_boot: int = BOOTSTRAP, random_state=0) -> dict:
    """Per strategy, over every (split, seed) run of ``results`` (one :func:`simulate` result per
    split, same seeds and strategies): ``auc`` (:func:`area_under_curve`), ``labels`` (to the
    split's target; a run that never reaches it counts as one batch past the budget, and is
    counted in ``censored``) and ``vs_reference`` (mean labels / the ``reference`` strategy's mean
    labels on the same runs), each as mean and a 95 % percentile interval of a bootstrap that
    resamples splits, then seeds within each split (paired: every strategy on the same draws).
    Curves added by a caller (a library's) count if they have ``per_seed`` like the others."""
    if not results:
        raise ValueError("aggregate needs at least one result")
    names = list(results[0]["strategies"])
    if any(list(r["strategies"]) != names or r["seeds"] != results[0]["seeds"] for r in results):
        raise ValueError("every result must hold the same strategies and seeds")
    labels = np.empty((len(names), len(results), len(results[0]["seeds"])))
    auc = np.empty_like(labels)
    for j, r in enumerate(results):
        cap = r["budget"] + r["batch"]
        for i, name in enumerate(names):
            c = r["strategies"][name]
            for k, accuracy in enumerate(c["per_seed"]):
                n = labels_to_reach(c["labels"], accuracy, r["target_accuracy"])
                labels[i, j, k] = cap if n is None else n
                auc[i, j, k] = area_under_curve(c["labels"], accuracy)
    censored = (labels == np.array([r["budget"] + r["batch"] for r in results])[None, :, None]).sum(axis=(1, 2))
    rng = np.random.default_rng(random_state)
    n_splits, n_seeds = labels.shape[1:]
    # Row 0: the estimate on the runs as they are; rows 1..: resampled splits, seeds within them.
    splits = np.vstack([np.arange(n_splits), rng.integers(0, n_splits, (n_boot, n_splits))])
    seeds = np.concatenate(
        [
            np.arange(n_seeds)[None, None, :].repeat(n_splits, axis=1),
            rng.integers(0, n_seeds, (n_boot, n_splits, n_seeds)),
        ]
    )
    mean_labels = labels[:, splits[:, :, None], seeds].mean(axis=(2, 3))  # (strategies, 1 + n_boot)
    mean_auc = auc[:, splits[:, :, None], seeds].mean(axis=(2, 3))
    ref = names.index(reference) if reference in names else None
    out = {}
    for i, name in enumerate(names):
        out[name] = {
            "auc": _interval(mean_auc[i]),
            "labels": _interval(mean_labels[i]),
            "censored": int(censored[i]),
            "runs": int(n_splits * n_seeds),
            "vs_reference": None if ref is None else _interval(mean_labels[i] / mean_labels[ref]),
            "seconds": float(sum(r["strategies"][name].get("seconds", 0.0) for r in results)),
        }
    return out


# ------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------


def write_json(result: dict, path) -> Path:
    """Write ``result`` as indented JSON (no NaN) to ``path``, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    return path


def write_png(result: dict, path, title: str = "", dashed: Sequence[str] = ()) -> Path:
    """The learning curves of ``result["strategies"]`` as a 960 x 560 PNG: per strategy a mean line
    over a mean ± std band, and a dashed line at the target accuracy. Curves named in ``dashed``
    are drawn dashed, without a band (for a reference that may lie right on top of another curve).
    Colours follow matplotlib's "tab10" in the order of the strategies."""
    # Imported here only: the web process and the simulator's callers that write no PNG never load it.
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib.figure import Figure

    target = result["target_accuracy"]
    figure = Figure(figsize=(9.6, 5.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    for i, (name, c) in enumerate(result["strategies"].items()):
        color = f"C{i % 10}"
        labels, mean = np.asarray(c["labels"]), np.asarray(c["mean"])
        if name in dashed:
            axes.plot(labels, mean, color=color, linewidth=2, linestyle=(0, (4, 2)), label=name)
            continue
        axes.plot(labels, mean, color=color, linewidth=2, label=name)
        std = np.asarray(c["std"])
        axes.fill_between(labels, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
    mark = f"{result['target_fraction']:.0%} of full-pool accuracy ({target:.3f})"
    axes.axhline(target, color="0.2", linewidth=1, linestyle="--", label=mark)
    axes.set(xlabel="labels", ylabel="test accuracy", xlim=(0, None), title=title)
    axes.grid(color="0.9")
    axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, title="band: mean ± 1 std")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
