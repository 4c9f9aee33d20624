"""Active-learning sampling strategies: pure NumPy / scikit-learn, no Django.

Conventions (see DESIGN.md, "Pure algorithm modules"):

* ``proba`` is an ``(N, K)`` array of class probabilities (rows non-negative, summing to 1).
* ``features`` is an ``(N, D)`` array.
* Every score function returns an ``(N,)`` float array where **higher means "select first"**.
* Randomness comes in only as ``rng`` / ``random_state`` (anything ``np.random.default_rng``
  accepts: ``None``, an int seed or a ``Generator``); the global ``np.random`` is never used.
* Bad input raises ``ValueError`` with a message naming the argument.

Selection helpers: :func:`select_top` turns scores into indices, :func:`k_center_greedy` is the
diversity (core-set) selector, and :func:`mix` combines several strategies by weight, recording
for every selected item which strategy chose it and with what score (:class:`Selection`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import entr
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "Selection",
    "diversity_selector",
    "entropy",
    "error_model_scores",
    "k_center_greedy",
    "least_confidence",
    "margin",
    "mix",
    "random_scores",
    "select_top",
]

PROBA_ATOL = 1e-6
DEFAULT_CHUNK_SIZE = 4096
ERROR_MODEL_CS = (0.01, 0.1, 1.0, 10.0)
ERROR_MODEL_CHUNK = 16384

# A selector takes (k, taken) where ``taken`` is an (N,) bool mask of items that may not be chosen
# (already selected by another component) and returns (indices (m,), scores (m,)) with m <= k.
Selector = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------------------------------------
# Validation helpers
# ------------------------------------------------------------------------------------------------


def _check_proba(proba, name: str = "proba", min_classes: int = 1) -> np.ndarray:
    """Return ``proba`` as a float64 ``(N, K)`` array, or raise ``ValueError``."""
    p = np.asarray(proba, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, K) array, got shape {p.shape}")
    if p.shape[1] < min_classes:
        raise ValueError(f"{name} needs at least {min_classes} class column(s), got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(p < -PROBA_ATOL) or np.any(p > 1 + PROBA_ATOL):
        raise ValueError(f"{name} values must lie in [0, 1]")
    if p.shape[0] and not np.allclose(p.sum(axis=1), 1.0, atol=PROBA_ATOL):
        raise ValueError(f"{name} rows must sum to 1")
    return np.clip(p, 0.0, 1.0)


def _check_features(features, name: str = "features") -> np.ndarray:
    """Return ``features`` as a floating ``(N, D)`` array, or raise ``ValueError``."""
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(float)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"batch_size must be an integer, got {batch_size!r}")
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}")
    return int(batch_size)


def _as_mask(selection, n: int, name: str) -> np.ndarray:
    """An ``(n,)`` bool mask from ``None``, a bool mask of shape ``(n,)`` or integer indices."""
    mask = np.zeros(n, dtype=bool)
    if selection is None:
        return mask
    s = np.asarray(selection)
    if s.dtype == bool:
        if s.shape != (n,):
            raise ValueError(f"{name} as a boolean mask must have shape ({n},), got {s.shape}")
        return s.copy()
    if s.size == 0:
        return mask
    if s.ndim != 1 or not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"{name} must be a boolean mask of shape ({n},) or a 1-D array of integer indices")
    if s.min() < 0 or s.max() >= n:
        raise ValueError(f"{name} indices must lie in [0, {n})")
    mask[s] = True
    return mask


# ------------------------------------------------------------------------------------------------
# Uncertainty and random scores
# ------------------------------------------------------------------------------------------------


def random_scores(n: int, rng=None) -> np.ndarray:
    """Uniform random scores in [0, 1), shape ``(n,)``; reproducible for a given seed/``rng``."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return np.random.default_rng(rng).random(int(n))


def least_confidence(proba) -> np.ndarray:
    """``1 - max_k p[i, k]``; ``proba`` ``(N, K)`` -> scores ``(N,)`` in ``[0, 1 - 1/K]``."""
    p = _check_proba(proba)
    if p.shape[0] == 0:
        return np.zeros(0)
    return 1.0 - p.max(axis=1)


def margin(proba) -> np.ndarray:
    """``1 - (p_top1 - p_top2)``: small margins score high. ``proba`` ``(N, K>=2)`` -> ``(N,)`` in [0, 1]."""
    p = _check_proba(proba, min_classes=2)
    if p.shape[0] == 0:
        return np.zeros(0)
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(proba) -> np.ndarray:
    """Shannon entropy in nats, ``0 log 0 = 0``; ``proba`` ``(N, K)`` -> ``(N,)`` in ``[0, log K]``."""
    p = _check_proba(proba)
    return entr(p).sum(axis=1)


# ------------------------------------------------------------------------------------------------
# Error model
# ------------------------------------------------------------------------------------------------


def _error_model_inputs(features: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Design matrix ``(N, D + K + 1)``: features, class probabilities and the top probability."""
    return np.hstack([features, proba, proba.max(axis=1, keepdims=True)])


def _choose_c(x: np.ndarray, wrong: np.ndarray, n_folds: int, random_state) -> float:
    """Pick the inverse regularisation ``C`` by stratified CV log loss; 1.0 when too few errors."""
    n_splits = min(n_folds, int(wrong.sum()), int((~wrong).sum()))
    if n_splits < 2:
        return 1.0
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    losses = []
    for c in ERROR_MODEL_CS:
        loss = 0.0
        for train, test in folds.split(x, wrong):
            model = _error_pipeline(c).fit(x[train], wrong[train])
            p = np.clip(model.predict_proba(x[test])[:, 1], 1e-12, 1 - 1e-12)
            y = wrong[test]
            loss -= np.sum(y * np.log(p) + (~y) * np.log(1 - p))
        losses.append(loss)
    return float(ERROR_MODEL_CS[int(np.argmin(losses))])


def _error_pipeline(c: float):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))


def error_model_scores(
    labeled_features,
    labeled_proba,
    labeled_y,
    pool_features,
    pool_proba,
    *,
    n_folds: int = 5,
    random_state=None,
) -> np.ndarray:
    """Score the pool by the predicted chance that the current model gets each item wrong.

    Each labeled example is marked *wrong* when ``argmax(labeled_proba[i]) != labeled_y[i]``. A
    binary classifier (standardisation + logistic regression) is fit on ``[features, proba,
    max(proba)]`` to predict "wrong", and the pool is scored with its probability of "wrong".

    ``labeled_proba`` **must be out-of-fold** predictions (each row from a model that did not see
    that example, e.g. ``cross_val_predict(..., method="predict_proba")``). In-sample predictions
    are almost always correct and would teach the error model nothing. This function does not
    recompute them: training the task model is the caller's business.

    ``n_folds`` is used only to choose the error model's regularisation strength ``C`` (from
    ``ERROR_MODEL_CS``) by stratified cross-validated log loss, with ``min(n_folds, #wrong,
    #right)`` folds; with fewer than two of either kind ``C = 1``. ``random_state`` seeds the fold
    shuffle, so results are reproducible.

    Degenerate case: when every labeled example is right (or every one is wrong) there is nothing
    to discriminate, so every pool item gets the same score, the observed error rate (0.0 or 1.0).
    No classifier is fit and no warning is raised; under :func:`select_top` ties then fall back to
    index order, and under :func:`mix` this component's picks carry that constant score.

    Shapes: ``labeled_features`` ``(L, D)``, ``labeled_proba`` ``(L, K)``, ``labeled_y`` ``(L,)``
    integer class indices in ``[0, K)``, ``pool_features`` ``(P, D)``, ``pool_proba`` ``(P, K)``.
    Returns ``(P,)`` floats in [0, 1].
    """
    lx = _check_features(labeled_features, "labeled_features")
    lp = _check_proba(labeled_proba, "labeled_proba")
    px = _check_features(pool_features, "pool_features")
    pp = _check_proba(pool_proba, "pool_proba")
    y = np.asarray(labeled_y)
    if y.ndim != 1 or y.shape[0] != lx.shape[0] or lp.shape[0] != lx.shape[0]:
        raise ValueError(
            "labeled_features, labeled_proba and labeled_y must have the same number of rows "
            f"(got {lx.shape[0]}, {lp.shape[0]}, {y.shape})"
        )
    if lx.shape[0] == 0:
        raise ValueError("error_model_scores needs at least one labeled example")
    if px.shape[0] != pp.shape[0]:
        raise ValueError(f"pool_features has {px.shape[0]} rows but pool_proba has {pp.shape[0]}")
    if px.shape[1] != lx.shape[1]:
        raise ValueError(f"pool_features has {px.shape[1]} columns but labeled_features has {lx.shape[1]}")
    if pp.shape[1] != lp.shape[1]:
        raise ValueError(f"pool_proba has {pp.shape[1]} classes but labeled_proba has {lp.shape[1]}")
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise ValueError("labeled_y must hold integer class indices")
    y = y.astype(int)
    if y.min() < 0 or y.max() >= lp.shape[1]:
        raise ValueError(f"labeled_y values must lie in [0, {lp.shape[1]})")
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")

    wrong = lp.argmax(axis=1) != y
    if wrong.all() or not wrong.any():
        return np.full(px.shape[0], float(wrong.mean()))
    if px.shape[0] == 0:
        return np.zeros(0)
    x = _error_model_inputs(lx, lp)
    c = _choose_c(x, wrong, int(n_folds), random_state)
    model = _error_pipeline(c).fit(x, wrong)
    # The pool is scored a chunk at a time so its design matrix never exists whole.
    out = np.empty(px.shape[0])
    for start in range(0, px.shape[0], ERROR_MODEL_CHUNK):
        rows = slice(start, start + ERROR_MODEL_CHUNK)
        out[rows] = model.predict_proba(_error_model_inputs(px[rows], pp[rows]))[:, 1]
    return out


# ------------------------------------------------------------------------------------------------
# Selection
# ------------------------------------------------------------------------------------------------


def select_top(scores, batch_size: int, exclude=None) -> np.ndarray:
    """Indices of the ``batch_size`` highest scores, best first; ties go to the lower index.

    ``scores`` ``(N,)`` (no NaN; ``-inf`` allowed); ``exclude`` ``None``, an ``(N,)`` bool mask or
    integer indices never to return. Returns ``(m,)`` int64 with ``m = min(batch_size, #allowed)``.
    """
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"scores must be a 1-D (N,) array, got shape {s.shape}")
    if np.any(np.isnan(s)):
        raise ValueError("scores contains NaN")
    k = _check_batch_size(batch_size)
    allowed = np.flatnonzero(~_as_mask(exclude, s.shape[0], "exclude"))
    order = np.argsort(-s[allowed], kind="stable")
    return allowed[order[:k]].astype(np.int64)


def _sq_dist_to_point(x: np.ndarray, c: np.ndarray, chunk_size: int) -> np.ndarray:
    """Exact squared Euclidean distances from every row of ``x`` ``(N, D)`` to ``c`` ``(D,)``."""
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], chunk_size):
        diff = x[start : start + chunk_size] - c
        out[start : start + chunk_size] = np.einsum("ij,ij->i", diff, diff)
    return out


def _min_sq_dist_to_set(x: np.ndarray, centers: np.ndarray, chunk_size: int) -> np.ndarray:
    """Min squared distance from each row of ``x`` ``(N, D)`` to ``centers`` ``(C, D)``, in blocks.

    Only ``chunk_size x chunk_size`` distance blocks exist at any time (never ``N x C``).
    """
    out = np.full(x.shape[0], np.inf)
    c_norm = np.einsum("ij,ij->i", centers, centers)
    for start in range(0, x.shape[0], chunk_size):
        xs = x[start : start + chunk_size]
        x_norm = np.einsum("ij,ij->i", xs, xs)
        best = out[start : start + chunk_size]
        for c0 in range(0, centers.shape[0], chunk_size):
            block = x_norm[:, None] + c_norm[None, c0 : c0 + chunk_size] - 2.0 * xs @ centers[c0 : c0 + chunk_size].T
            np.minimum(best, block.min(axis=1), out=best)
    return np.maximum(out, 0.0)


def k_center_greedy(
    features,
    labeled,
    batch_size: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    random_state=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center (core-set) selection on Euclidean distance.

    Repeatedly picks the unlabeled point farthest from its nearest center (labeled points and points
    already picked are centers); ties go to the lower index. When there is no labeled point the
    first pick is drawn at random with ``random_state``; otherwise the result is deterministic.

    Memory stays bounded: distances are computed for ``chunk_size`` rows (and, for the initial
    labeled set, ``chunk_size`` centers) at a time, keeping only one ``(N,)`` vector of nearest-center
    distances; no ``N x N`` matrix is ever built. Each pick costs ``O(N D)``.

    ``features`` ``(N, D)``; ``labeled`` an ``(N,)`` bool mask or integer indices (may be empty).
    Returns ``(indices (m,), distances (m,))`` with ``m = min(batch_size, #unlabeled)``, in pick
    order; ``distances[j]`` is the distance from the j-th pick to its nearest center when it was
    picked (``inf`` for a random first pick).
    """
    x = _check_features(features)
    k = _check_batch_size(batch_size)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    chunk_size = int(chunk_size)
    n = x.shape[0]
    taken = _as_mask(labeled, n, "labeled")
    k = min(k, int((~taken).sum()))
    picks = np.empty(k, dtype=np.int64)
    dists = np.empty(k)
    if k == 0:
        return picks, dists

    if taken.any():
        min_sq = _min_sq_dist_to_set(x, x[taken], chunk_size)
        start = 0
    else:
        rng = np.random.default_rng(random_state)
        first = int(rng.integers(n))
        picks[0], dists[0] = first, np.inf
        taken[first] = True
        min_sq = _sq_dist_to_point(x, x[first], chunk_size)
        start = 1
    min_sq[taken] = -np.inf
    for j in range(start, k):
        i = int(np.argmax(min_sq))
        picks[j], dists[j] = i, np.sqrt(min_sq[i])
        np.minimum(min_sq, _sq_dist_to_point(x, x[i], chunk_size), out=min_sq)
        min_sq[i] = -np.inf
    return picks, dists


def diversity_selector(features, labeled, *, chunk_size: int = DEFAULT_CHUNK_SIZE, random_state=None) -> Selector:
    """A :data:`Selector` for :func:`mix` running :func:`k_center_greedy`.

    Items other components already chose count as centers too, so the diverse picks also stay away
    from them. ``features`` ``(N, D)``; ``labeled`` ``(N,)`` bool mask or integer indices.
    """
    x = _check_features(features)
    base = _as_mask(labeled, x.shape[0], "labeled")

    def select(k: int, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return k_center_greedy(x, base | taken, k, chunk_size=chunk_size, random_state=random_state)

    return select


@dataclass(frozen=True)
class Selection:
    """The result of :func:`mix`: item ``indices[j]`` was chosen by ``strategies[j]`` with ``scores[j]``.

    ``indices`` ``(m,)`` int64 (no duplicates, in queue order), ``strategies`` ``(m,)`` list of
    component names, ``scores`` ``(m,)`` float64.
    """

    indices: np.ndarray
    strategies: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def _quotas(weights: np.ndarray, batch_size: int) -> np.ndarray:
    """Largest-remainder apportionment of ``batch_size`` by ``weights``; ties go to earlier components."""
    exact = weights / weights.sum() * batch_size
    base = np.floor(exact).astype(int)
    rest = batch_size - int(base.sum())
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:rest]] += 1
    return base


def mix(components: Sequence[tuple], batch_size: int, rng=None, *, n_items: int | None = None) -> Selection:
    """Weighted mixture of strategies without duplicates (e.g. 60 % entropy, 25 % error model, 15 % random).

    ``components`` is a list of ``(name, weight, source)`` where ``source`` is

    * an ``(N,)`` score array (higher first, picked with :func:`select_top`),
    * ``None``, meaning random scores drawn from ``rng`` (see :func:`random_scores`), or
    * a :data:`Selector` ``(k, taken) -> (indices, scores)`` such as :func:`diversity_selector`.

    ``batch_size`` is split by weight with the largest-remainder method (ties to the earlier
    component). Components are served in order; each skips items already chosen. When a component
    runs out of items, its shortfall passes to the next component, wrapping around to the first,
    until the batch is full or no positive-weight component has anything left. Zero-weight
    components are never used. ``N`` comes from the score arrays or, when there are none,
    ``n_items``.

    Returns a :class:`Selection` in queue order (component order, best first within a component).
    """
    k = _check_batch_size(batch_size)
    if not components:
        raise ValueError("components must not be empty")
    names, weights, sources = [], [], []
    n = n_items
    for comp in components:
        if not isinstance(comp, tuple | list) or len(comp) != 3:
            raise ValueError(f"each component must be (name, weight, scores-or-selector), got {comp!r}")
        name, weight, source = comp
        if not isinstance(name, str) or not name:
            raise ValueError(f"component name must be a non-empty string, got {name!r}")
        w = float(weight)
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"weight of {name!r} must be finite and non-negative, got {weight!r}")
        if source is not None and not callable(source):
            source = np.asarray(source, dtype=float)
            if source.ndim != 1:
                raise ValueError(f"scores of {name!r} must be a 1-D (N,) array, got shape {source.shape}")
            if n is None:
                n = source.shape[0]
            elif source.shape[0] != n:
                raise ValueError(f"scores of {name!r} have {source.shape[0]} items, expected {n}")
        names.append(name)
        weights.append(w)
        sources.append(source)
    weights = np.asarray(weights)
    if weights.sum() <= 0:
        raise ValueError("component weights must sum to more than 0")
    if n is None:
        raise ValueError("n_items is required when no component gives a score array")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n_items must be a non-negative integer, got {n!r}")
    sources = [random_scores(int(n), rng) if s is None else s for s in sources]

    taken = np.zeros(int(n), dtype=bool)
    out_idx: list[np.ndarray] = []
    out_name: list[str] = []
    out_score: list[np.ndarray] = []
    active = [i for i in range(len(names)) if weights[i] > 0]
    quotas = _quotas(weights, k)
    exhausted: set[int] = set()
    carry = 0
    first_round = True
    while True:
        progress = False
        for i in active:
            want = (int(quotas[i]) if first_round else 0) + carry
            if want == 0 or i in exhausted:
                continue
            source = sources[i]
            if callable(source):
                idx, sc = source(want, taken.copy())
                idx = np.asarray(idx, dtype=np.int64)
                sc = np.asarray(sc, dtype=float)
                if idx.shape != sc.shape or idx.ndim != 1 or idx.shape[0] > want:
                    raise ValueError(f"selector {names[i]!r} returned malformed output")
                if idx.size and (taken[idx].any() or np.unique(idx).size != idx.size):
                    raise ValueError(f"selector {names[i]!r} returned an already chosen item")
            else:
                idx = select_top(source, want, exclude=taken)
                sc = source[idx]
            taken[idx] = True
            out_idx.append(idx)
            out_name.extend([names[i]] * idx.shape[0])
            out_score.append(sc)
            carry = want - idx.shape[0]
            if carry:
                exhausted.add(i)
            progress = progress or idx.shape[0] > 0
        first_round = False
        if carry == 0 or not progress or all(i in exhausted for i in active):
            break
    indices = np.concatenate(out_idx) if out_idx else np.zeros(0, dtype=np.int64)
    scores = np.concatenate(out_score) if out_score else np.zeros(0)
    return Selection(indices=indices.astype(np.int64), strategies=out_name, scores=scores.astype(float))
