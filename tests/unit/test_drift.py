"""Drift statistics (deployment/drift.py) against hand computations and SciPy."""

import math

import numpy as np
import pytest
import scipy.stats

from deployment import drift


def test_psi_hand_computed_with_the_stated_epsilon_for_empty_bins():
    # shares e = (0.5, 0.5, 0), a = (0.25, 0.25, 0.5); the empty bin counts as 1e-4
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) * 2 + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert drift.psi([2, 2, 0], [1, 1, 2]) == pytest.approx(expected, rel=1e-12)
    assert drift.psi([3, 1], [3, 1]) == 0.0
    assert drift.psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * math.log(1.8) - 0.4 * math.log(0.2), rel=1e-12)
    with pytest.raises(ValueError):
        drift.psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        drift.psi([0, 0], [1, 2])


def test_psi_of_a_continuous_value_is_small_when_stable_and_large_when_shifted():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    assert drift.psi_continuous(ref, rng.normal(size=5000)) < 0.02
    assert drift.psi_continuous(ref, rng.normal(1.0, size=5000)) > 0.5


@pytest.mark.parametrize("seed", range(5))
def test_chi_square_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    shares = rng.dirichlet(np.ones(k))
    obs = rng.multinomial(int(rng.integers(20, 2000)), rng.dirichlet(np.ones(k)))
    stat, p = drift.chi_square_gof(obs, shares)
    ref = scipy.stats.chisquare(obs, shares * obs.sum())
    assert stat == pytest.approx(ref.statistic, rel=1e-10) and p == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)

    other = rng.multinomial(int(rng.integers(20, 500)), shares)
    stat, p = drift.chi_square_homogeneity(other, obs)
    ref = scipy.stats.chi2_contingency(np.stack([other, obs]), correction=False)
    if (other + obs == 0).any():  # SciPy refuses empty columns; we drop them
        keep = other + obs > 0
        ref = scipy.stats.chi2_contingency(np.stack([other[keep], obs[keep]]), correction=False)
    assert stat == pytest.approx(ref.statistic, rel=1e-10) and p == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)


def test_chi_square_floors_a_share_the_dev_split_never_had():
    stat, p = drift.chi_square_gof([10, 10, 1], [0.5, 0.5, 0.0])
    shares = np.array([0.5, 0.5, 1e-4]) / 1.0001
    expected = shares * 21
    assert stat == pytest.approx(np.sum((np.array([10, 10, 1]) - expected) ** 2 / expected), rel=1e-12)
    assert math.isfinite(stat) and p < 1e-50


@pytest.mark.parametrize(
    ("n1", "n2", "shift", "seed"),
    [(5, 7, 0.0, 0), (30, 30, 0.4, 1), (40, 25, 0.0, 2), (200, 150, 0.3, 3), (400, 900, 0.1, 4), (1000, 60, 1.0, 5)],
)
def test_ks_exact_equals_scipy(n1, n2, shift, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n1), rng.normal(shift, size=n2)
    d, p = drift.ks_2samp(a, b)
    ref = scipy.stats.ks_2samp(a, b)  # 'auto' picks exact at these sizes
    assert d == pytest.approx(ref.statistic, rel=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-14)


@pytest.mark.parametrize(("n1", "n2", "shift"), [(50, 80, 0.2), (12_000, 3_000, 0.05), (20_000, 11_000, 0.0)])
def test_ks_asymptotic_equals_scipy(n1, n2, shift):
    rng = np.random.default_rng(n1)
    a, b = rng.normal(size=n1), rng.normal(shift, size=n2)
    d, p = drift.ks_2samp(a, b, method="asymp")
    ref = scipy.stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    if max(n1, n2) > drift.KS_EXACT_MAX_N:  # 'auto' switches to the asymptotic p-value, as SciPy does
        d2, p2 = drift.ks_2samp(a, b)
        assert (d2, p2) == (d, p)
        assert p2 == pytest.approx(scipy.stats.ks_2samp(a, b).pvalue, rel=1e-9, abs=1e-300)


def test_ks_with_ties_and_identical_samples():
    a = np.array([0.1, 0.2, 0.2, 0.9])
    d, p = drift.ks_2samp(a, a)
    assert d == 0.0 and p == 1.0
    b = np.array([0.2, 0.2, 0.3, 0.5, 0.5])
    d, p = drift.ks_2samp(a, b)
    ref = scipy.stats.ks_2samp(a, b)
    assert d == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, rel=1e-9)


def test_image_statistics_hand_computed_and_rotation_moves_orientation():
    img = np.zeros((1, 4, 4))
    img[0, 1, :] = 1.0  # a horizontal bar: 4 of 16 pixels
    s = drift.image_statistics(img)[0]
    assert s[0] == pytest.approx(0.25) and s[1] == pytest.approx(math.sqrt(0.25 * 0.75))
    assert s[2] == pytest.approx(0.25)
    # vertical differences: 8 of the 12 pairs differ by 1; horizontal: none
    assert s[3] == pytest.approx((8 / 12 + 0) / 2)
    assert s[4] == pytest.approx(0.0)
    vertical = np.transpose(img, (0, 2, 1))
    assert abs(drift.image_statistics(vertical)[0, 4]) == pytest.approx(math.pi / 2)


def test_input_drift_score_and_bonferroni():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(500, 5))
    stable = drift.input_drift(ref, rng.normal(size=(300, 5)))
    moved = ref.copy()[:300]
    moved[:, 4] += 1.0
    drifted = drift.input_drift(ref, moved)
    assert stable["score"] < 0.15 and stable["p_value"] > 0.001
    assert drifted["score"] > 0.3 and drifted["p_value"] < 1e-10
    assert max(drifted["per_statistic"], key=drifted["per_statistic"].get) == "orientation"
    ks = [scipy.stats.ks_2samp(ref[:, s], moved[:, s], method="asymp").pvalue for s in range(5)]
    assert drifted["p_value"] == pytest.approx(min(1.0, 5 * min(ks)), rel=1e-9, abs=1e-300)


def _stream(rng, n, shares, conf_a):
    cls = rng.choice(len(shares), size=n, p=shares)
    return cls, rng.beta(conf_a, 1.0, size=n)


def test_windowed_detector_false_alarm_rate_is_within_alpha():
    """On stable streams the share of windows that alarm stays below alpha (with room for
    the binomial noise of the simulation)."""
    rng = np.random.default_rng(11)
    shares = rng.dirichlet(np.ones(10) * 5)
    ref_cls, ref_conf = _stream(rng, 360, shares, 8.0)
    alpha, windows = 0.05, 0
    alarms = 0
    for _ in range(40):
        det = drift.WindowedDetector(np.bincount(ref_cls, minlength=10), ref_conf, window=100, alpha=alpha)
        cls, conf = _stream(rng, 1000, shares, 8.0)
        results = det.update(cls, conf)
        windows += len(results)
        alarms += sum(r["alarm"] for r in results)
    # 400 windows at alpha 0.05: 20 expected at most; the binomial 99.9 % bound is 35
    assert windows == 400 and alarms <= 35


def test_windowed_detector_catches_a_shift_in_confidence_and_classes():
    rng = np.random.default_rng(12)
    shares = np.full(10, 0.1)
    ref_cls, ref_conf = _stream(rng, 360, shares, 8.0)
    det = drift.WindowedDetector(np.bincount(ref_cls, minlength=10), ref_conf, window=100, alpha=0.001)
    stable = det.update(*_stream(rng, 500, shares, 8.0))
    assert det.alarm_at is None and len(stable) == 5
    drifted_shares = np.r_[np.full(5, 0.02), np.full(5, 0.18)]
    det.update(*_stream(rng, 300, drifted_shares, 2.0))
    assert det.alarm_at is not None and 500 < det.alarm_at <= 600
    last = det.windows[-1]
    assert set(last["reasons"]) == {"classes", "confidence"} and last["level"] == pytest.approx(0.0005)


def test_windowed_detector_uses_inputs_when_they_come():
    rng = np.random.default_rng(13)
    shares = np.full(4, 0.25)
    ref_cls, ref_conf = _stream(rng, 400, shares, 8.0)
    ref_stats = rng.normal(size=(400, 5))
    det = drift.WindowedDetector(np.bincount(ref_cls, minlength=4), ref_conf, ref_stats, window=100, alpha=0.001)
    cls, conf = _stream(rng, 100, shares, 8.0)
    stats = np.full((100, 5), np.nan)
    stats[:50] = rng.normal(size=(50, 5)) + np.array([0, 0, 0, 0, 2.0])
    (window,) = det.update(cls, conf, stats)
    assert window["reasons"] == ["inputs"] and window["level"] == pytest.approx(0.001 / 3)


def test_outlyingness_and_the_field_priority():
    ref = np.arange(100, dtype=float).reshape(100, 1)
    far = drift.outlyingness(ref, np.array([[49.5], [-5.0], [200.0], [24.5]]))
    assert far == pytest.approx([0.0, 1.0, 1.0, 0.5])
    score = drift.field_priority([0.9, 0.9, 0.2, 0.9], far)
    assert score == pytest.approx([0.05, 0.55, 0.9, 0.3])
    assert list(np.argsort(-score)) == [2, 1, 3, 0]
    assert drift.field_priority([0.4], [np.nan]) == pytest.approx([0.3])
