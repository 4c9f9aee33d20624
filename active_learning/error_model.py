"""The error model: a small classifier that predicts where the current model is wrong.

Pure NumPy / scikit-learn, no Django (see DESIGN.md, "Pure algorithm modules").

What it learns from. Each row must be a **held-out** prediction of the model lineage that scores
the pool: the current model's dev-split predictions, and the items of earlier batches as the model
of their cycle scored them before their labels came (:class:`Earlier`; free, since those scores
chose the batch; the simulator has only these). In-sample predictions are nearly always right,
and a model fit on fewer labels is wrong in other places than the one that scores the pool, so
either mismatch teaches it the wrong thing (issue #17 measured it losing to random that way).
A model trained by cross-validation gives out-of-fold predictions of its fold models instead of
dev ones: a smaller mismatch (each fold sees (k-1)/k of the labels), which the earlier batches'
rows dilute.

What it reads (the design matrix, ``(N, 3 + C)``): the model's margin ``p1 - p2``, its entropy
and its top probability (where the model is unsure it is more often wrong), plus ``C`` (default 3)
principal components of the embedding, standardised on the pool and the labeled items together
(where in input space it is wrong). A handful of errors cannot support hundreds of dimensions.

Regularisation, and a check against margin. ``C`` is chosen from :data:`CS` by stratified inner
cross-validation of the log loss. The same folds' out-of-fold chances of "wrong" then say whether
the error model finds the held-out errors better than margin uncertainty alone does (area under
the ROC curve, on the same rows); when it does not, it is not used (see Fallback). On the tuning
splits of benchmarks/al_strategies.py, using it unchecked needed 169, 11.1 and 14.9 labels on
digits, breast_cancer and wine, and checked 162, 10.9 and 15.1, against margin's 167, 10.9 and
15.1; checking only where there were enough rows to cross-validate (and fitting a fixed ``C`` on
fewer) needed 176 on digits.

Calibration. A logistic regression fit by maximum likelihood with an unpenalised intercept
(scikit-learn's objective, solved by Newton's method in :class:`_Logistic`) predicts on its
training rows a mean chance of "wrong" equal to the observed error rate, and the log-loss choice
of ``C`` keeps it from being over-confident; so ``predict_wrong_proba`` reads as a probability
and ``>= 0.5`` as "predicted wrong".

Fallback. With fewer than :data:`MIN_ERRORS` wrong (or right) held-out predictions there is
nothing to learn; with fewer than :data:`MIN_ROWS` rows it cannot be checked against margin; and
it may not beat margin at finding the errors. Then :attr:`ErrorModel.fallback_` says why, and
:meth:`ErrorModel.score` ranks by margin uncertainty instead; never a constant score that would
pick items in id order.

Selection. :meth:`ErrorModel.selector` combines it with uncertainty: of the ``ceil(SHORTLIST x k)``
items with the smallest margins, the ``k`` most likely wrong. Ranking the whole pool by the chance
of "wrong", or by its product or sum with margin uncertainty, lost to margin alone on the tuning
splits of benchmarks/al_strategies.py: the error model's top items crowd into one confused region,
much as least confidence's do. The shortlist keeps margin's spread; on the tuning splits (digits,
breast_cancer, wine; splits 100-102, 3 seeds) a shortlist of 1.5 x k needed 169, 11.1 and 14.9
labels against margin's 167, 10.9 and 15.1, and 2 x k or 3 x k needed more on digits (178, 184).
See benchmarks/RESULTS.md for the reporting splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import entr, expit
from scipy.stats import rankdata
from sklearn.model_selection import StratifiedKFold

from .strategies import _as_mask, _check_features, _check_proba, select_top

__all__ = ["Earlier", "ErrorModel", "Standardiser", "error_model_scores", "uncertainty_features"]

MIN_ERRORS = 3  # fewer wrong (or right) held-out predictions than this: fall back to margin
MIN_ROWS = 30  # held-out rows needed to choose C and check the error model against margin
CS = (0.01, 0.1, 1.0, 10.0)
N_COMPONENTS = 3
PCA_SAMPLE = 20_000  # rows the projection is fit on (a seeded sample of pool + labeled)
CHUNK = 16384  # pool rows scored at a time
SHORTLIST = 1.5  # the error model picks k of the ceil(SHORTLIST * k) smallest margins


def uncertainty_features(proba) -> np.ndarray:
    """``(N, 3)``: margin ``p1 - p2``, entropy (nats) and top probability of ``proba`` ``(N, K)``."""
    p = np.clip(_check_proba(proba), 0.0, 1.0)
    out = np.empty((p.shape[0], 3))
    if p.shape[1] >= 2:
        top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
        out[:, 0] = top2[:, 1] - top2[:, 0]
        out[:, 2] = top2[:, 1]
    else:
        out[:, 0] = out[:, 2] = p[:, 0]
    out[:, 1] = entr(p).sum(axis=1)
    return out


def _margin_uncertainty(proba: np.ndarray) -> np.ndarray:
    if proba.shape[1] < 2:
        return np.ones(proba.shape[0])
    top2 = np.partition(proba, proba.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


class Standardiser:
    """Mean and scale of an embedding over the pool **and** the labeled items together (not the
    labeled few alone, whose spread makes pool items land at |z| in the hundreds), and optionally
    its first ``n_components`` principal axes.

    ``fit(*arrays)`` takes ``(N_i, D)`` arrays; ``transform(x)`` returns ``(N, D)`` z-scores, or
    ``(N, n_components)`` projections when ``n_components`` is set. Large inputs are fit on a
    seeded sample of :data:`PCA_SAMPLE` rows (mean, scale and axes, not the data, are kept)."""

    def __init__(self, n_components: int | None = None, random_state=0):
        self.n_components = n_components
        self.random_state = random_state

    def fit(self, *arrays) -> Standardiser:
        arrays = [np.asarray(a) for a in arrays if len(a)]
        sizes = np.cumsum([0] + [len(a) for a in arrays])
        if sizes[-1] > PCA_SAMPLE:
            # Sample the row numbers first: the stacked float64 copy of a 200,000-item pool would
            # take ~100 MiB for a mean and three axes.
            rows = np.sort(np.random.default_rng(self.random_state).choice(sizes[-1], PCA_SAMPLE, replace=False))
            owner = np.searchsorted(sizes, rows, side="right") - 1
            arrays = [arrays[i][rows[owner == i] - sizes[i]] for i in range(len(arrays))]
        x = np.vstack([a.astype(np.float64) for a in arrays])
        self.mean_ = x.mean(axis=0)
        scale = x.std(axis=0)
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)  # constant columns stay 0, not NaN
        if self.n_components is not None:
            z = (x - self.mean_) / self.scale_
            # Right singular vectors of the standardised rows: the principal axes, largest first.
            _, _, vt = np.linalg.svd(z, full_matrices=False)
            self.components_ = vt[: min(self.n_components, vt.shape[0])].T
        return self

    def transform(self, x, out=None) -> np.ndarray:
        """``x`` ``(N, D)`` standardised (or projected), a chunk of rows at a time into ``out`` (a
        new float64 array by default; a float32 one keeps a large pool at half the memory)."""
        x = np.asarray(x)
        width = x.shape[1] if self.n_components is None else self.components_.shape[1]
        out = np.empty((x.shape[0], width)) if out is None else out
        for start in range(0, x.shape[0], CHUNK):
            z = (x[start : start + CHUNK].astype(np.float64) - self.mean_) / self.scale_
            out[start : start + CHUNK] = z if self.n_components is None else z @ self.components_
        return out


@dataclass(frozen=True)
class Earlier:
    """Items of earlier batches, labelled after the model of their cycle scored them: held-out rows
    the error model learns from beside the current model's own. Only what is independent of the
    class list is kept from then (classes may be merged or added between cycles).

    ``features`` ``(H, D)``: their embedding by the current model; ``uncertainty`` ``(H, 3)``:
    :func:`uncertainty_features` of the probabilities they were scored with then; ``wrong`` ``(H,)``:
    whether the class predicted then differs from their label."""

    features: np.ndarray
    uncertainty: np.ndarray
    wrong: np.ndarray

    def check(self, n_columns: int) -> None:
        f, u, w = np.shape(self.features), np.shape(self.uncertainty), np.shape(self.wrong)
        if len(f) != 2 or f[1] != n_columns or u != (f[0], 3) or w != (f[0],):
            raise ValueError(
                f"earlier rows need features (H, {n_columns}), uncertainty (H, 3) and wrong (H,); got {f}, {u}, {w}"
            )
        if not np.all(np.isfinite(self.uncertainty)):
            raise ValueError("earlier rows' uncertainty holds NaN or infinite values")


class ErrorModel:
    """Predicts the chance that the model is wrong on an item (see the module docstring).

    ``fit(features (L, D), proba (L, K), y (L,), pool_features=(P, D) or None)``: ``proba`` are
    held-out predictions, ``y`` class indices; the embedding is standardised on the labeled and
    pool features together. Fitted attributes: ``fallback_`` (None, or why the model fell back
    to margin), ``n_wrong_``, ``n_right_``, ``n_earlier_`` (how many of those rows came from
    ``earlier``), ``C_`` (None when nothing was learnt), ``auc_`` and ``margin_auc_`` (how well
    its out-of-fold chances and margin alone found the held-out errors; None when not checked)."""

    def __init__(self, *, n_components: int = N_COMPONENTS, n_folds: int = 5, random_state=None):
        self.n_components = n_components
        self.n_folds = n_folds
        self.random_state = random_state

    def _design(self, features, uncertainty) -> np.ndarray:
        parts = [uncertainty]
        if features.shape[1]:
            parts.append(self.projection_.transform(features))
        return np.hstack(parts)

    def fit(self, features, proba, y, pool_features=None, earlier: Earlier | None = None) -> ErrorModel:
        """``earlier``: more held-out rows, items of earlier batches (see :class:`Earlier`)."""
        x = _check_features(features, "labeled_features")
        p = _check_proba(proba, "labeled_proba")
        y = _check_labels(y, x.shape[0], p.shape[0], p.shape[1])
        if isinstance(self.n_folds, bool) or not isinstance(self.n_folds, int | np.integer) or self.n_folds < 2:
            raise ValueError(f"n_folds must be an integer >= 2, got {self.n_folds!r}")
        pool = np.zeros((0, x.shape[1])) if pool_features is None else _check_features(pool_features, "pool_features")
        if pool.shape[1] != x.shape[1]:
            raise ValueError(f"pool_features has {pool.shape[1]} columns but labeled_features has {x.shape[1]}")
        wrong = p.argmax(axis=1) != y
        uncertainty = uncertainty_features(p)
        if earlier is not None:
            earlier.check(x.shape[1])
            x = np.vstack([x, np.asarray(earlier.features, dtype=np.float64)])
            uncertainty = np.vstack([uncertainty, earlier.uncertainty])
            wrong = np.concatenate([wrong, np.asarray(earlier.wrong, dtype=bool)])
        self.n_wrong_, self.n_right_ = int(wrong.sum()), int((~wrong).sum())
        self.n_earlier_ = 0 if earlier is None else len(earlier.wrong)
        self.C_, self.model_, self.auc_, self.margin_auc_ = None, None, None, None
        self.fallback_ = _fallback_reason(self.n_wrong_, self.n_right_)
        if self.fallback_:
            return self
        self.projection_ = Standardiser(min(self.n_components, x.shape[1]), self.random_state).fit(x, pool)
        design = self._design(x, uncertainty)
        self.inputs_ = Standardiser().fit(design)  # the LR's penalty treats every input alike
        design = self.inputs_.transform(design)
        folds = min(self.n_folds, self.n_wrong_, self.n_right_)
        self.C_, held = _choose_c(design, wrong, folds, self.random_state)
        self.auc_, self.margin_auc_ = _auc(wrong, held), _auc(wrong, -uncertainty[:, 0])
        if self.auc_ <= self.margin_auc_:
            self.fallback_ = (
                f"it found the held-out errors no better than margin (area under the ROC curve {self.auc_:.2f} "
                f"against margin's {self.margin_auc_:.2f}); ranked by margin"
            )
            return self
        self.model_ = _fit(design, wrong, self.C_)
        return self

    def predict_wrong_proba(self, features, proba) -> np.ndarray:
        """``(N,)`` chance that the model is wrong on each item; NaN on fallback (nothing learnt)."""
        x = _check_features(features, "pool_features")
        p = _check_proba(proba, "pool_proba")
        if x.shape[0] != p.shape[0]:
            raise ValueError(f"pool_features has {x.shape[0]} rows but pool_proba has {p.shape[0]}")
        out = np.full(x.shape[0], np.nan)
        if self.model_ is None:
            return out
        # A chunk at a time: the pool's design matrix never exists whole.
        for start in range(0, x.shape[0], CHUNK):
            rows = slice(start, start + CHUNK)
            design = self.inputs_.transform(self._design(x[rows], uncertainty_features(p[rows])))
            out[rows] = self.model_.predict_proba(design)
        return out

    def _unsure(self, proba):
        p = _check_proba(proba, "pool_proba")
        unsure = np.empty(p.shape[0])
        for start in range(0, p.shape[0], CHUNK):
            rows = slice(start, start + CHUNK)
            unsure[rows] = _margin_uncertainty(np.clip(p[rows], 0.0, 1.0))
        return p, unsure

    def score(self, features, proba) -> np.ndarray:
        """``(N,)`` the chance of "wrong"; on fallback the margin uncertainty ``1 - (p1 - p2)``."""
        p, unsure = self._unsure(proba)
        return unsure if self.model_ is None else self.predict_wrong_proba(features, p)

    def selector(self, features, proba):
        """A selector ``(k, taken) -> (indices, scores)`` for :func:`strategies.mix`: of the
        ``ceil(SHORTLIST * k)`` items (not ``taken``) with the largest margin uncertainty (and any
        tied with the last of them), the ``k`` most likely wrong, scored by that chance; by margin
        alone on fallback."""
        p, unsure = self._unsure(proba)
        chance = None if self.model_ is None else self.predict_wrong_proba(features, p)

        def select(k: int, taken: np.ndarray):
            if chance is None:
                idx = select_top(unsure, k, exclude=taken)
                return idx, unsure[idx]
            shortlist = select_top(unsure, int(np.ceil(SHORTLIST * k)), exclude=taken)
            if shortlist.size:  # items tied with the last one shortlisted join it: never item order
                shortlist = np.flatnonzero((unsure >= unsure[shortlist].min()) & ~_as_mask(taken, unsure.size, "taken"))
            idx = shortlist[np.lexsort((shortlist, -chance[shortlist]))][:k]
            return idx, chance[idx]

        return select

    def report(self) -> dict:
        """JSON-safe facts for the cycle page."""
        return {
            "fallback": self.fallback_,
            "n_wrong": self.n_wrong_,
            "n_right": self.n_right_,
            "n_earlier": self.n_earlier_,
            "C": self.C_,
            "auc": None if self.auc_ is None else round(self.auc_, 4),
            "margin_auc": None if self.margin_auc_ is None else round(self.margin_auc_, 4),
        }


def _check_labels(y, n_features: int, n_proba: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_features or n_proba != n_features:
        raise ValueError(
            "labeled_features, labeled_proba and labeled_y must have the same number of rows "
            f"(got {n_features}, {n_proba}, {y.shape})"
        )
    if n_features == 0:
        return y.astype(int)
    if not (np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise ValueError("labeled_y must hold integer class indices")
    y = y.astype(int)
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labeled_y values must lie in [0, {n_classes})")
    return y


def _fallback_reason(n_wrong: int, n_right: int) -> str | None:
    total = n_wrong + n_right
    if total == 0:
        return "no held-out predictions yet (nothing labelled that the model had scored); ranked by margin"
    if n_wrong == 0:
        return f"the model was right on all {total} held-out items: no errors to learn from; ranked by margin"
    if n_right == 0:
        return f"the model was wrong on all {total} held-out items: nothing to tell errors from; ranked by margin"
    if n_wrong < MIN_ERRORS:
        return f"only {n_wrong} of {total} held-out items were wrong (fewer than {MIN_ERRORS}); ranked by margin"
    if n_right < MIN_ERRORS:
        return f"only {n_right} of {total} held-out items were right (fewer than {MIN_ERRORS}); ranked by margin"
    if total < MIN_ROWS:
        return f"only {total} held-out items (fewer than {MIN_ROWS}) to check it against margin; ranked by margin"
    return None


class _Logistic:
    """Binary L2-penalised logistic regression by Newton's method: the objective of scikit-learn's
    ``LogisticRegression(C)`` (log loss summed over rows + ``||w||^2 / (2 C)``, intercept not
    penalised), solved exactly in a few steps. The error model has at most a dozen inputs, where
    scikit-learn's per-fit overhead (~15 ms) would dominate the inner cross-validation."""

    def fit(self, x: np.ndarray, y: np.ndarray, c: float) -> _Logistic:
        x1 = np.hstack([np.ones((x.shape[0], 1)), x])
        y = y.astype(float)
        penalty = np.full(x1.shape[1], 1.0 / c)
        penalty[0] = 0.0
        theta = np.zeros(x1.shape[1])
        mean = np.clip(y.mean(), 1e-6, 1 - 1e-6)
        theta[0] = np.log(mean / (1 - mean))

        def loss(t):
            z = x1 @ t
            return np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * t * t)

        current = loss(theta)
        for _ in range(100):
            p = expit(x1 @ theta)
            grad = x1.T @ (p - y) + penalty * theta
            hess = (x1 * (p * (1 - p))[:, None]).T @ x1 + np.diag(penalty) + 1e-10 * np.eye(x1.shape[1])
            step = np.linalg.solve(hess, grad)
            scale = 1.0
            while scale > 1e-6:  # backtracking: a Newton step may overshoot on near-separable data
                trial = theta - scale * step
                value = loss(trial)
                if value <= current:
                    break
                scale /= 2
            else:
                break
            theta, converged = trial, current - value < 1e-12 * max(1.0, abs(current))
            current = value
            if converged or np.max(np.abs(scale * step)) < 1e-10:
                break
        self.intercept_, self.coef_ = float(theta[0]), theta[1:]
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """``(N,)`` chance of the positive class."""
        return expit(x @ self.coef_ + self.intercept_)


def _fit(x: np.ndarray, wrong: np.ndarray, c: float) -> _Logistic:
    return _Logistic().fit(x, wrong, c)


def _choose_c(x: np.ndarray, wrong: np.ndarray, n_splits: int, random_state) -> tuple[float, np.ndarray]:
    """The ``C`` of :data:`CS` with the lowest stratified cross-validated log loss, and the
    out-of-fold chances of "wrong" ``(L,)`` at that ``C``."""
    folds = list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state).split(x, wrong))
    losses, held = [], []
    for c in CS:
        loss = 0.0
        out = np.empty(len(wrong))
        for train, test in folds:
            p = np.clip(_fit(x[train], wrong[train], c).predict_proba(x[test]), 1e-12, 1 - 1e-12)
            loss -= np.sum(np.where(wrong[test], np.log(p), np.log1p(-p)))
            out[test] = p
        losses.append(loss)
        held.append(out)
    best = int(np.argmin(losses))
    return float(CS[best]), held[best]


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` ``(N,)`` for the ``positive`` ``(N,)`` bool labels
    (the Mann-Whitney statistic; ties count one half). Needs both classes."""
    ranks = rankdata(score)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def error_model_scores(
    labeled_features, labeled_proba, labeled_y, pool_features, pool_proba, *, n_folds: int = 5, random_state=None
) -> np.ndarray:
    """``(P,)`` the chance that the model is wrong on each pool item, by :class:`ErrorModel` (fit on
    the labeled side, standardised on labeled + pool); shapes as in :meth:`ErrorModel.fit`. The
    margin uncertainty instead when the error model cannot be trained (see ``fallback_``)."""
    pp = _check_proba(pool_proba, "pool_proba")
    lp = _check_proba(labeled_proba, "labeled_proba")
    if pp.shape[1] != lp.shape[1]:
        raise ValueError(f"pool_proba has {pp.shape[1]} classes but labeled_proba has {lp.shape[1]}")
    model = ErrorModel(n_folds=n_folds, random_state=random_state)
    model.fit(labeled_features, lp, labeled_y, pool_features)
    return model.score(pool_features, pp)
