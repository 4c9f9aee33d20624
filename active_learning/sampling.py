"""Choosing a batch by strategy name: the one entry point real cycles and the simulator share.

Pure NumPy / scikit-learn (no Django). :func:`select_batch` takes what a trained model says about
the unlabeled pool (class probabilities and an embedding) and, for the error model and diversity,
about the labeled set, and returns a :class:`~active_learning.strategies.Selection`: the chosen
pool indices in queue order, each with the strategy and score that chose it.

Strategy names: ``random``, ``least_confidence``, ``margin``, ``entropy``, ``error_model``,
``diversity`` and ``mix`` (by default 45 % margin, 40 % diversity, 15 % random: the best of the
mixes benchmarks/al_strategies.py measured, confirmed on seeds it was not chosen on; any other
weights by :func:`parse_weights`, e.g. issue #7's example 60 % entropy, 25 % error model, 15 % random).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import strategies as S

STRATEGIES = ("random", "least_confidence", "margin", "entropy", "error_model", "diversity", "mix")
MIXABLE = tuple(s for s in STRATEGIES if s != "mix")
DEFAULT_MIX = (("margin", 0.45), ("diversity", 0.40), ("random", 0.15))
# Embeddings wider than this are projected down before k-center (distances are kept up to a
# small distortion, Johnson-Lindenstrauss) so memory and time stay bounded on large pools.
MAX_EMBEDDING_DIM = 256


@dataclass(frozen=True)
class Labeled:
    """What the error model and diversity need of the labeled set (L rows).

    ``proba`` must be out-of-sample: dev predictions of a model that never trained on them, or
    out-of-fold predictions (see :func:`strategies.error_model_scores`)."""

    features: np.ndarray  # (L, D) embeddings of the rows with out-of-sample predictions
    proba: np.ndarray  # (L, K) out-of-sample probabilities
    y: np.ndarray  # (L,) class indices
    centers: np.ndarray | None = None  # (C, D) embeddings of every labeled item, for diversity


def parse_weights(text: str) -> tuple[tuple[str, float], ...]:
    """``"entropy:0.6,error_model:0.25,random:0.15"`` -> ``(("entropy", 0.6), ...)``.

    Raises ValueError naming the bad part. An empty text gives :data:`DEFAULT_MIX`."""
    text = (text or "").strip()
    if not text:
        return DEFAULT_MIX
    out, seen = [], set()
    for part in text.split(","):
        name, sep, weight = part.strip().partition(":")
        name = name.strip()
        if not sep or name not in MIXABLE:
            raise ValueError(f"mix weights are name:weight pairs of {', '.join(MIXABLE)}; got {part.strip()!r}")
        if name in seen:
            raise ValueError(f"{name} appears twice in the mix weights")
        try:
            w = float(weight)
        except ValueError:
            raise ValueError(f"the weight of {name} must be a number, got {weight.strip()!r}") from None
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"the weight of {name} must be a non-negative number, got {weight.strip()!r}")
        seen.add(name)
        out.append((name, w))
    if sum(w for _, w in out) <= 0:
        raise ValueError("the mix weights must add up to more than 0")
    return tuple(out)


def reduce_dim(features, max_dim: int = MAX_EMBEDDING_DIM, random_state=0) -> np.ndarray:
    """``features`` (N, D) as float32, projected to ``max_dim`` columns by a seeded Gaussian random
    projection when D is larger (the same seed gives the same projection for every call)."""
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D (N, D) array, got shape {x.shape}")
    if x.shape[1] <= max_dim:
        return x
    rng = np.random.default_rng(random_state)
    projection = (rng.standard_normal((x.shape[1], max_dim)) / np.sqrt(max_dim)).astype(np.float32)
    return x @ projection


def _component(name, pool_proba, pool_features, labeled, random_state):
    """(name, source) for :func:`strategies.mix`: a score array, None (random) or a selector."""
    if name == "random":
        return None
    if name == "least_confidence":
        return S.least_confidence(pool_proba)
    if name == "margin":
        return S.margin(pool_proba)
    if name == "entropy":
        return S.entropy(pool_proba)
    if labeled is None or pool_features is None:
        raise ValueError(f"{name} needs the pool's features and the labeled set")
    if name == "error_model":
        return S.error_model_scores(
            labeled.features, labeled.proba, labeled.y, pool_features, pool_proba, random_state=random_state
        )
    if name == "diversity":
        centers = labeled.features if labeled.centers is None else labeled.centers
        both = np.vstack([np.asarray(centers, dtype=np.float32), np.asarray(pool_features, dtype=np.float32)])
        n_centers = len(centers)
        inner = S.diversity_selector(both, np.arange(n_centers), random_state=random_state)

        def select(k, taken):
            idx, dist = inner(k, np.concatenate([np.zeros(n_centers, dtype=bool), taken]))
            return idx - n_centers, dist

        return select
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def select_batch(
    strategy: str,
    batch_size: int,
    *,
    pool_proba,
    pool_features=None,
    labeled: Labeled | None = None,
    weights=DEFAULT_MIX,
    random_state=0,
) -> S.Selection:
    """The ``batch_size`` pool items ``strategy`` picks, in queue order.

    ``pool_proba`` (P, K) and ``pool_features`` (P, D) describe the pool; ``labeled`` is needed by
    ``error_model`` and ``diversity`` (and by ``mix`` when its weights use them). ``weights`` are
    the ``mix`` components as (name, weight) pairs. Seeded by ``random_state``."""
    pool_proba = np.asarray(pool_proba, dtype=float)
    if pool_proba.ndim != 2:
        raise ValueError(f"pool_proba must be a 2-D (P, K) array, got shape {pool_proba.shape}")
    n = pool_proba.shape[0]
    if pool_features is not None and len(pool_features) != n:
        raise ValueError(f"pool_features has {len(pool_features)} rows but pool_proba has {n}")
    if strategy == "mix":
        chosen = tuple(weights)
    elif strategy in STRATEGIES:
        chosen = ((strategy, 1.0),)
    else:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    rng = np.random.default_rng(random_state)
    components = [
        (name, weight, _component(name, pool_proba, pool_features, labeled, random_state))
        for name, weight in chosen
        if weight > 0
    ]
    return S.mix(components, batch_size, rng, n_items=n)


def interleave(selection: S.Selection) -> np.ndarray:
    """Positions into ``selection`` in the order labelers should meet them: the strategies take
    turns in proportion to their share of the batch (an item at rank r of a component of size m
    comes at r / m), so a batch labeled only halfway still holds some of every strategy."""
    names = np.asarray(selection.strategies, dtype=object)
    key = np.empty(len(selection))
    for name in dict.fromkeys(selection.strategies):
        where = np.flatnonzero(names == name)
        key[where] = np.arange(where.size) / where.size
    return np.lexsort((np.arange(len(selection)), key))
