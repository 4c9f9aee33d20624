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
from dataclasses import dataclass, field

import numpy as np
from scipy.special import entr

__all__ = [
    "Selection",
    "diversity_selector",
    "entropy",
    "k_center_greedy",
    "least_confidence",
    "margin",
    "mix",
    "random_scores",
    "select_top",
]

PROBA_ATOL = 1e-6
DEFAULT_CHUNK_SIZE = 4096
# Rows of a probability matrix handled at a time: temporaries stay at a few hundred KiB.
PROBA_BLOCK = 8192

# A selector takes (k, taken) where ``taken`` is an (N,) bool mask of items that may not be chosen
# (already selected by another component) and returns (indices (m,), scores (m,)) with m <= k.
Selector = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------------------------------------
# Validation helpers
# ------------------------------------------------------------------------------------------------


def _check_proba(proba, name: str = "proba", min_classes: int = 1) -> np.ndarray:
    """Return ``proba`` as a float ``(N, K)`` array (no copy when it already is one, float32 included),
    or raise ``ValueError``.

    Values are checked a block of rows at a time so that no ``(N, K)`` temporary is ever made: on a
    200,000-item pool the checks would otherwise cost more memory than the scores themselves.
    Values within ``PROBA_ATOL`` outside [0, 1] are accepted; the score functions clip."""
    p = _as_proba(proba, name, min_classes)
    for _ in _blocks(p, name):
        pass
    return p


def _as_proba(proba, name: str, min_classes: int) -> np.ndarray:
    p = np.asarray(proba)
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(float)
    if p.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, K) array, got shape {p.shape}")
    if p.shape[1] < min_classes:
        raise ValueError(f"{name} needs at least {min_classes} class column(s), got shape {p.shape}")
    return p


def _blocks(p: np.ndarray, name: str = "proba"):
    """``(rows, block)`` pairs over ``p`` ``(N, K)``, each block checked (finite, in [0, 1], rows
    summing to 1) as it is handed out, so checking and scoring read the data once."""
    ones = np.ones(p.shape[1], dtype=p.dtype)
    for start in range(0, p.shape[0], PROBA_BLOCK):
        rows = slice(start, start + PROBA_BLOCK)
        block = p[rows]
        if block.size:
            # min/max are NaN when a NaN is present, and +-inf fail the range: one check for all three.
            low, high = block.min(), block.max()
            if not (np.isfinite(low) and np.isfinite(high)):
                raise ValueError(f"{name} contains NaN or infinite values")
            if low < -PROBA_ATOL or high > 1 + PROBA_ATOL:
                raise ValueError(f"{name} values must lie in [0, 1]")
            if np.abs(block @ ones - 1.0).max() > PROBA_ATOL:  # a matrix-vector product: the fast row sum
                raise ValueError(f"{name} rows must sum to 1")
        yield rows, block


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
    p = _as_proba(proba, "proba", 1)
    out = np.empty(p.shape[0])
    for rows, block in _blocks(p):
        out[rows] = block.max(axis=1)
    np.subtract(1.0, out, out=out)
    return np.clip(out, 0.0, 1.0, out=out)


def margin(proba) -> np.ndarray:
    """``1 - (p_top1 - p_top2)``: small margins score high. ``proba`` ``(N, K>=2)`` -> ``(N,)`` in [0, 1]."""
    p = _as_proba(proba, "proba", 2)
    out = np.empty(p.shape[0])
    k = p.shape[1]
    for rows, block in _blocks(p):
        top2 = np.partition(block, k - 2, axis=1)[:, -2:]
        out[rows] = top2[:, 1] - top2[:, 0]
    np.subtract(1.0, out, out=out)
    return np.clip(out, 0.0, 1.0, out=out)


def entropy(proba) -> np.ndarray:
    """Shannon entropy in nats, ``0 log 0 = 0``; ``proba`` ``(N, K)`` -> ``(N,)`` in ``[0, log K]``."""
    p = _as_proba(proba, "proba", 1)
    out = np.empty(p.shape[0])
    for rows, block in _blocks(p):
        out[rows] = entr(np.clip(block, 0.0, 1.0)).sum(axis=1)
    return out


# ------------------------------------------------------------------------------------------------
# Selection
# ------------------------------------------------------------------------------------------------


def select_top(scores, batch_size: int, exclude=None) -> np.ndarray:
    """Indices of the ``batch_size`` highest scores, best first; ties go to the lower index.

    ``scores`` ``(N,)`` (no NaN; ``-inf`` allowed); ``exclude`` ``None``, an ``(N,)`` bool mask or
    integer indices never to return. Returns ``(m,)`` int64 with ``m = min(batch_size, #allowed)``.

    ``argpartition`` finds the top ``m`` in O(N) without sorting the pool; only those ``m`` are
    sorted. Items tied with the ``m``-th score are taken in index order, so the result is the same
    as a stable full sort's."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise ValueError(f"scores must be a 1-D (N,) array, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contains NaN")
    k = _check_batch_size(batch_size)
    n = s.shape[0]
    barred = None if exclude is None else _as_mask(exclude, n, "exclude")
    if barred is not None and barred.any():
        k = min(k, n - int(barred.sum()))
        s = np.where(barred, -np.inf, s)  # one (N,) copy, only when something is excluded
    else:
        barred = None
        k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(s, n - k)[n - k :]
    threshold = s[top].min()
    above = top[s[top] > threshold]
    tied = s == threshold
    if barred is not None:
        tied &= ~barred
    ties = np.flatnonzero(tied)[: k - above.size]
    chosen = np.concatenate([above, ties])
    return chosen[np.lexsort((chosen, -s[chosen]))].astype(np.int64)


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
    component names, ``scores`` ``(m,)`` float64; ``notes`` what the caller (sampling.select_batch)
    adds about how the batch was chosen.
    """

    indices: np.ndarray
    strategies: list[str]
    scores: np.ndarray
    notes: dict = field(default_factory=dict)

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
