"""Drift statistics for the field loop. NumPy in, NumPy out; no Django.

What each statistic compares, and against what:

- **PSI** (population stability index) of two histograms over the same bins,
  ``sum_b (a_b - e_b) ln(a_b / e_b)`` with ``e``/``a`` the expected (dev) and actual (field) shares.
  An empty bin would make the log infinite: every share is floored at ``PSI_EPSILON`` = 1e-4
  (a share, not a count, and not renormalised), so one empty bin adds at most
  ``|x - 1e-4| ln(x / 1e-4)``. Usual reading: < 0.1 stable, 0.1-0.25 moving, > 0.25 shifted.
- **chi-square** of the field's predicted-class counts: against the dev split's predicted-class
  *shares* (:func:`chi_square_gof`, equal to ``scipy.stats.chisquare``), and against the dev
  *counts* as a second sample (:func:`chi_square_homogeneity`, equal to
  ``scipy.stats.chi2_contingency(correction=False)``). The alert uses the second: the dev split
  is a sample too (a few hundred items), and treating its shares as exact would raise false
  alarms on a stable field.
- **KS**: the two-sample Kolmogorov-Smirnov statistic of field against dev confidences, with
  SciPy's p-value rules (:func:`ks_2samp`): the exact distribution when both samples have at most
  10,000 values (computed here by a lattice-path recursion), otherwise the asymptotic one
  (Kolmogorov's distribution at n = round(n1 n2 / (n1 + n2)), SciPy's ``kstwo``).
- **input drift** on *simple image statistics* (not the model's embedding: a bundle's TFLite
  model gives the device only class scores, and the statistics need no model at all):
  mean intensity, contrast, ink fraction, edge density and orientation (:func:`image_statistics`).
  The score (:func:`input_drift`) is the largest KS statistic over the statistics between the
  sampled field inputs and the training snapshot's images, with a Bonferroni p-value.
- **the alert** (:class:`WindowedDetector`): the stream is cut into windows of ``window``
  predictions; each full window is tested (class chi-square, confidence KS, and input drift when
  inputs came with it) at level ``alpha / m`` per test (Bonferroni over the m tests), so a stable
  stream raises a false alarm in a given window with probability at most ``alpha``: the expected
  number of windows between false alarms is at least ``1 / alpha`` (1,000 windows at the default
  0.001). ``tests/unit/test_drift.py`` measures it on simulated stable streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import chdtrc
from scipy.stats import kstwo

__all__ = [
    "IMAGE_STATISTICS",
    "KS_EXACT_MAX_N",
    "PSI_EPSILON",
    "WindowedDetector",
    "check_window",
    "chi_square_gof",
    "chi_square_homogeneity",
    "field_priority",
    "image_statistics",
    "input_drift",
    "ks_2samp",
    "outlyingness",
    "psi",
    "psi_continuous",
]

PSI_EPSILON = 1e-4
KS_EXACT_MAX_N = 10_000  # SciPy's MAX_AUTO_N: exact p-values up to this sample size
IMAGE_STATISTICS = ("mean_intensity", "contrast", "ink_fraction", "edge_density", "orientation")


def _shares(counts) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64).ravel()
    if c.size == 0 or (c < 0).any() or not np.isfinite(c).all():
        raise ValueError("counts must be finite, non-negative and not empty")
    total = c.sum()
    if total <= 0:
        raise ValueError("counts must not all be zero")
    return c / total


def psi(expected_counts, actual_counts, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two histograms (B,) over the same bins (counts or shares)."""
    e, a = _shares(expected_counts), _shares(actual_counts)
    if e.shape != a.shape:
        raise ValueError("expected and actual must have the same number of bins")
    e, a = np.maximum(e, epsilon), np.maximum(a, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_continuous(reference, sample, n_bins: int = 10, epsilon: float = PSI_EPSILON) -> float:
    """PSI of a continuous value (N,) against a reference (M,), over the reference's quantile bins
    (``n_bins`` of equal reference mass; tied edges merged)."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    x = np.asarray(sample, dtype=np.float64).ravel()
    if ref.size == 0 or x.size == 0:
        raise ValueError("reference and sample must not be empty")
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, n_bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=inner.size + 1)
    a = np.bincount(np.searchsorted(inner, x, side="right"), minlength=inner.size + 1)
    return psi(e, a, epsilon)


def chi_square_gof(observed_counts, expected_shares, epsilon: float = PSI_EPSILON) -> tuple[float, float]:
    """Pearson's chi-square of counts (K,) against expected shares (K,): (statistic, p-value),
    K - 1 degrees of freedom. Equal to ``scipy.stats.chisquare(obs, shares * obs.sum())`` when
    every share is positive; a zero share (a class the dev split never predicted) is floored at
    ``epsilon`` and the shares renormalised, so a field prediction of it counts as strong
    evidence instead of an infinite statistic."""
    obs = np.asarray(observed_counts, dtype=np.float64).ravel()
    shares = _shares(expected_shares)
    if obs.shape != shares.shape:
        raise ValueError("observed and expected must have the same number of classes")
    if (obs < 0).any() or obs.sum() <= 0:
        raise ValueError("observed counts must be non-negative and not all zero")
    shares = np.maximum(shares, epsilon)
    shares = shares / shares.sum()
    expected = shares * obs.sum()
    stat = float(np.sum((obs - expected) ** 2 / expected))
    return stat, float(chdtrc(obs.size - 1, stat))


def chi_square_homogeneity(reference_counts, observed_counts) -> tuple[float, float]:
    """Chi-square test that two count vectors (K,) come from one distribution (a 2 x K table,
    no continuity correction): (statistic, p-value). Classes empty in both are dropped (they
    carry no information); equal to ``scipy.stats.chi2_contingency`` on the remaining table."""
    r = np.asarray(reference_counts, dtype=np.float64).ravel()
    o = np.asarray(observed_counts, dtype=np.float64).ravel()
    if r.shape != o.shape:
        raise ValueError("both count vectors must have the same number of classes")
    if (r < 0).any() or (o < 0).any() or r.sum() <= 0 or o.sum() <= 0:
        raise ValueError("counts must be non-negative and neither vector all zero")
    keep = (r + o) > 0
    table = np.stack([r[keep], o[keep]])
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, float(chdtrc(table.shape[1] - 1, stat))


def _ks_exact_two_sided(n1: int, n2: int, h: int) -> float:
    """P(D >= h / lcm(n1, n2)) for two samples of sizes n1, n2 without ties.

    Every interleaving of the two sorted samples is a monotone lattice path from (0, 0) to
    (n1, n2), all equally likely; D is the largest |i / n1 - j / n2| along it. The recursion
    carries, per anti-diagonal i + j = k, the probability of reaching (i, j) without having left
    the band |i n2 - j n1| < h g; mass that steps out is added to the answer and dropped. Summing
    the outside mass (never 1 - inside) keeps tiny p-values accurate."""
    g = int(np.gcd(n1, n2))
    bound = h * g  # |i/n1 - j/n2| >= h/lcm  <=>  |i n2 - j n1| >= h g
    total = n1 + n2
    i = np.arange(n1 + 1, dtype=np.int64)
    mass = np.zeros(n1 + 1)
    mass[0] = 1.0
    outside = 0.0
    for k in range(1, total + 1):
        j = k - i
        valid = (j >= 0) & (j <= n2)
        from_left = np.empty_like(mass)  # from (i - 1, j): an x step, (n1 - i + 1) x values left
        from_left[0] = 0.0
        from_left[1:] = mass[:-1] * (n1 - i[1:] + 1)
        from_below = mass * np.maximum(n2 - j + 1, 0)  # from (i, j - 1): a y step
        new = np.where(valid, (from_left + from_below) / (total - k + 1), 0.0)
        out = valid & (np.abs(i * n2 - j * n1) >= bound)
        outside += float(new[out].sum())
        new[out] = 0.0
        mass = new
    return min(max(outside, 0.0), 1.0)


def ks_2samp(sample1, sample2, method: str = "auto") -> tuple[float, float]:
    """Two-sample two-sided Kolmogorov-Smirnov test: (statistic, p-value), as
    ``scipy.stats.ks_2samp(sample1, sample2, method=method)`` computes them.

    ``method``: ``auto`` (exact when both sizes are at most ``KS_EXACT_MAX_N``), ``exact`` or
    ``asymp``. The exact recursion costs O(n1 n2 / max) operations per value: a second at
    10,000 x 10,000."""
    a = np.sort(np.asarray(sample1, dtype=np.float64).ravel())
    b = np.sort(np.asarray(sample2, dtype=np.float64).ravel())
    if a.size == 0 or b.size == 0:
        raise ValueError("ks_2samp needs two non-empty samples")
    if method not in ("auto", "exact", "asymp"):
        raise ValueError("method must be auto, exact or asymp")
    n1, n2 = a.size, b.size
    pooled = np.concatenate([a, b])
    cdf1 = np.searchsorted(a, pooled, side="right") / n1
    cdf2 = np.searchsorted(b, pooled, side="right") / n2
    d = float(np.max(np.abs(cdf1 - cdf2)))
    if method == "auto":
        method = "exact" if max(n1, n2) <= KS_EXACT_MAX_N else "asymp"
    if method == "exact":
        g = int(np.gcd(n1, n2))
        lcm = (n1 // g) * n2
        h = int(np.round(d * lcm))
        if h == 0:
            return h / lcm, 1.0
        small, large = (n1, n2) if n1 <= n2 else (n2, n1)
        return h / lcm, _ks_exact_two_sided(small, large, h)
    en = n1 * n2 / (n1 + n2)
    return d, float(kstwo.sf(d, np.round(en)))


def image_statistics(images) -> np.ndarray:
    """Simple statistics of grayscale images (N, H, W) with ink high in [0, 1] (1 = full ink):
    an (N, 5) array in the order of ``IMAGE_STATISTICS``.

    - mean intensity: the mean ink;
    - contrast: the standard deviation of the ink;
    - ink fraction: the share of pixels with ink above 0.5;
    - edge density: the mean absolute difference between neighbouring pixels (both axes);
    - orientation: the ink's principal-axis angle in radians, (-pi/2, pi/2] (rotation moves it).
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] < 2 or x.shape[2] < 2:
        raise ValueError("images must have shape (N, H, W) with H, W >= 2")
    n, h, w = x.shape
    flat = x.reshape(n, -1)
    mean = flat.mean(axis=1)
    contrast = flat.std(axis=1)
    ink = (flat > 0.5).mean(axis=1)
    edges = (np.abs(np.diff(x, axis=1)).mean(axis=(1, 2)) + np.abs(np.diff(x, axis=2)).mean(axis=(1, 2))) / 2
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    mass = np.maximum(flat.sum(axis=1), 1e-12)
    cy = (x * rows).sum(axis=(1, 2)) / mass
    cx = (x * cols).sum(axis=(1, 2)) / mass
    dy = rows[None] - cy[:, None, None]
    dx = cols[None] - cx[:, None, None]
    mu20 = (x * dx * dx).sum(axis=(1, 2)) / mass
    mu02 = (x * dy * dy).sum(axis=(1, 2)) / mass
    mu11 = (x * dx * dy).sum(axis=(1, 2)) / mass
    orientation = 0.5 * np.arctan2(2 * mu11, mu20 - mu02)
    return np.column_stack([mean, contrast, ink, edges, orientation])


def input_drift(reference_stats, sample_stats) -> dict:
    """Input drift of sampled field inputs against the training images, from their image
    statistics (M, S) and (N, S): ``{"score", "p_value", "per_statistic": {name: D}}``.

    The score is the largest KS statistic over the S statistics (0 = same distributions, 1 =
    disjoint); the p-value is the smallest per-statistic p-value times S (Bonferroni), capped at 1.
    """
    ref = np.asarray(reference_stats, dtype=np.float64)
    x = np.asarray(sample_stats, dtype=np.float64)
    if ref.ndim != 2 or x.ndim != 2 or ref.shape[1] != x.shape[1]:
        raise ValueError("reference and sample statistics must be (M, S) and (N, S) arrays")
    names = IMAGE_STATISTICS if ref.shape[1] == len(IMAGE_STATISTICS) else tuple(map(str, range(ref.shape[1])))
    results = [ks_2samp(ref[:, s], x[:, s], method="asymp") for s in range(ref.shape[1])]
    d = np.array([r[0] for r in results])
    p = np.array([r[1] for r in results])
    return {
        "score": float(d.max()),
        "p_value": float(min(1.0, p.min() * p.size)),
        "per_statistic": {name: float(v) for name, v in zip(names, d, strict=True)},
    }


@dataclass
class WindowedDetector:
    """The alert: a windowed test with a Bonferroni correction.

    Predictions are fed in order (:meth:`update`); every ``window`` of them is tested against the
    reference: the predicted classes (chi-square homogeneity against the dev split's predicted
    counts), the confidences (KS against the dev split's confidences), and the input statistics
    (:func:`input_drift`) when at least ``min_inputs`` of the window's predictions came with one.
    Each of the m tests run on a window uses level ``alpha / m``, so on a stable stream a window
    alarms with probability at most ``alpha``. ``alarm_at`` is the number of predictions seen when
    the first alarm was raised (None until then).

    Parameters
    ----------
    reference_counts : (K,) predicted-class counts on the dev split.
    reference_confidences : (M,) top scores on the dev split.
    reference_stats : (R, S) image statistics of the training images, or None.
    """

    reference_counts: np.ndarray
    reference_confidences: np.ndarray
    reference_stats: np.ndarray | None = None
    window: int = 200
    alpha: float = 0.001
    min_inputs: int = 20
    seen: int = 0
    alarm_at: int | None = None
    windows: list = field(default_factory=list)
    _classes: list = field(default_factory=list)
    _conf: list = field(default_factory=list)
    _stats: list = field(default_factory=list)

    def update(self, predicted_class, confidence, stats=None) -> list[dict]:
        """Feed predictions (N,) and confidences (N,) (and optional input statistics (N, S) with
        NaN rows for predictions without an input); returns the windows completed by them."""
        cls = np.asarray(predicted_class, dtype=np.int64).ravel()
        conf = np.asarray(confidence, dtype=np.float64).ravel()
        if cls.shape != conf.shape:
            raise ValueError("predicted_class and confidence must have the same length")
        st = None if stats is None else np.asarray(stats, dtype=np.float64).reshape(cls.size, -1)
        done = []
        for start in range(0, cls.size):
            self._classes.append(cls[start])
            self._conf.append(conf[start])
            if st is not None and not np.isnan(st[start]).any():
                self._stats.append(st[start])
            self.seen += 1
            if len(self._classes) == self.window:
                done.append(self._close_window())
        return done

    def _close_window(self) -> dict:
        k = len(self.reference_counts)
        counts = np.bincount(np.asarray(self._classes), minlength=k)[:k]
        result = check_window(
            self.reference_counts,
            self.reference_confidences,
            counts,
            np.asarray(self._conf),
            self.reference_stats,
            np.asarray(self._stats) if len(self._stats) >= self.min_inputs else None,
            self.alpha,
        )
        result["end"] = self.seen
        if result["alarm"] and self.alarm_at is None:
            self.alarm_at = self.seen
        self.windows.append(result)
        self._classes, self._conf, self._stats = [], [], []
        return result


def check_window(ref_counts, ref_conf, counts, conf, ref_stats=None, stats=None, alpha: float = 0.001) -> dict:
    """The tests of one window (see :class:`WindowedDetector`): a dict with ``psi`` (class
    shares), ``chi2``, ``chi2_p``, ``ks``, ``ks_p``, ``input_score``, ``input_p`` (None without
    inputs), ``level`` (alpha / m), ``reasons`` (the tests that fired) and ``alarm``."""
    ref_counts = np.asarray(ref_counts, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    chi2, chi2_p = chi_square_homogeneity(ref_counts, counts)
    ks, ks_p = ks_2samp(ref_conf, conf)
    input_score = input_p = None
    if ref_stats is not None and stats is not None and len(stats):
        drift = input_drift(ref_stats, stats)
        input_score, input_p = drift["score"], drift["p_value"]
    m = 3 if input_p is not None else 2
    level = alpha / m
    reasons = [
        name
        for name, p in (("classes", chi2_p), ("confidence", ks_p), ("inputs", input_p))
        if p is not None and p < level
    ]
    return {
        "n": int(counts.sum()),
        "psi": psi(ref_counts, counts),
        "chi2": chi2,
        "chi2_p": chi2_p,
        "ks": ks,
        "ks_p": ks_p,
        "input_score": input_score,
        "input_p": input_p,
        "level": level,
        "reasons": reasons,
        "alarm": bool(reasons),
    }


def outlyingness(reference_stats, stats) -> np.ndarray:
    """How far each input (N, S) lies in the tails of the reference (M, S), in [0, 1]: per
    statistic ``|2 F(x) - 1|`` with F the reference's empirical CDF (0 at the median, 1 beyond
    every reference value), the largest over the statistics. Shape (N,)."""
    ref = np.sort(np.asarray(reference_stats, dtype=np.float64), axis=0)
    x = np.asarray(stats, dtype=np.float64)
    if ref.ndim != 2 or x.ndim != 2 or ref.shape[1] != x.shape[1] or ref.shape[0] == 0:
        raise ValueError("reference and sample statistics must be (M, S) and (N, S) arrays, M > 0")
    m = ref.shape[0]
    cdf = np.column_stack(
        [
            (np.searchsorted(ref[:, s], x[:, s], side="left") + np.searchsorted(ref[:, s], x[:, s], side="right"))
            / (2 * m)
            for s in range(x.shape[1])
        ]
    )
    return np.abs(2 * cdf - 1).max(axis=1) if x.shape[0] else np.zeros(0)


def field_priority(confidence, drifted) -> np.ndarray:
    """The ``field`` strategy's score (N,) in [0, 1]: the mean of the model's doubt
    (1 - confidence) and how drifted the input is (:func:`outlyingness`, 0 where unknown).
    Higher is labelled first: low confidence and far-out inputs lead."""
    conf = np.clip(np.asarray(confidence, dtype=np.float64).ravel(), 0.0, 1.0)
    far = np.nan_to_num(np.asarray(drifted, dtype=np.float64).ravel(), nan=0.0)
    if conf.shape != far.shape:
        raise ValueError("confidence and drifted must have the same length")
    return 0.5 * (1.0 - conf) + 0.5 * np.clip(far, 0.0, 1.0)
