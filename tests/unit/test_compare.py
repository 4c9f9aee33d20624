"""training/compare.py: McNemar's test equal to statsmodels' in both of its forms, the paired
verdict, alignment of item ids, and the curve summary."""

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from training import compare


def _tables(rng, n_tables, low, high):
    for _ in range(n_tables):
        yield rng.integers(0, 200, size=(2, 2)) * np.array([[1, 0], [0, 1]]) + np.array(
            [[0, rng.integers(low, high)], [rng.integers(low, high), 0]]
        )


@pytest.mark.parametrize("seed", range(5))
def test_exact_form_equals_statsmodels_for_few_discordant_pairs(seed):
    rng = np.random.default_rng(seed)
    for table in _tables(rng, 40, 0, 12):
        ours = compare.mcnemar(table)
        ref = sm_mcnemar(table, exact=True)
        assert ours["method"] == "exact binomial" and ours["discordant"] < compare.EXACT_BELOW
        assert ours["statistic"] == pytest.approx(float(ref.statistic))
        assert ours["pvalue"] == pytest.approx(float(ref.pvalue), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_chi_square_form_equals_statsmodels_with_correction(seed):
    rng = np.random.default_rng(100 + seed)
    for table in _tables(rng, 40, 13, 300):
        ours = compare.mcnemar(table)
        ref = sm_mcnemar(table, exact=False, correction=True)
        assert ours["method"].startswith("chi-square") and ours["discordant"] >= compare.EXACT_BELOW
        assert ours["statistic"] == pytest.approx(float(ref.statistic), rel=1e-12)
        assert ours["pvalue"] == pytest.approx(float(ref.pvalue), rel=1e-10, abs=1e-300)


def test_forced_forms_equal_statsmodels_on_both_sides_of_the_threshold():
    for table in ([[10, 3], [9, 5]], [[50, 20], [40, 7]], [[0, 0], [1, 0]]):
        assert compare.mcnemar(table, exact=True)["pvalue"] == pytest.approx(sm_mcnemar(table, exact=True).pvalue)
    table = [[50, 20], [40, 7]]
    assert compare.mcnemar(table, exact=False)["pvalue"] == pytest.approx(sm_mcnemar(table, exact=False).pvalue)


def test_hand_computed_exact_case_and_no_disagreement():
    # b=1, c=5: p = 2 * P(X <= 1), X ~ Bin(6, 1/2) = 2 * 7/64
    assert compare.mcnemar([[3, 1], [5, 2]])["pvalue"] == pytest.approx(14 / 64)
    none = compare.mcnemar([[7, 0], [0, 3]])
    assert none["pvalue"] == 1.0 and none["discordant"] == 0


def test_bad_tables_are_refused():
    with pytest.raises(ValueError):
        compare.mcnemar([[1, 2, 3]])
    with pytest.raises(ValueError):
        compare.mcnemar([[1, -2], [3, 4]])
    with pytest.raises(ValueError):
        compare.contingency([True, False], [True])


def test_paired_comparison_from_correctness_arrays():
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 3, 400)
    a = np.where(rng.random(400) < 0.70, truth, (truth + 1) % 3)
    b = np.where(rng.random(400) < 0.90, truth, (truth + 1) % 3)
    out = compare.paired_comparison(a == truth, b == truth)
    table = compare.contingency(a == truth, b == truth)
    assert out["table"] == table.tolist() and out["n"] == 400
    assert out["accuracy_a"] == pytest.approx((a == truth).mean())
    assert out["accuracy_b"] == pytest.approx((b == truth).mean())
    assert out["difference"] == pytest.approx((b == truth).mean() - (a == truth).mean())
    assert out["pvalue"] == pytest.approx(sm_mcnemar(table, exact=False, correction=True).pvalue)
    assert out["beyond_noise"] and out["better"] == "b"
    same = compare.paired_comparison(a == truth, a == truth)
    assert not same["beyond_noise"] and same["better"] is None and same["difference"] == 0


def test_align_finds_shared_items_in_any_order():
    ia, ib = compare.align([5, 3, 9, 1], [1, 9, 4, 5])
    assert np.array_equal(np.array([5, 3, 9, 1])[ia], np.array([1, 9, 4, 5])[ib])
    assert sorted(np.array([5, 3, 9, 1])[ia].tolist()) == [1, 5, 9]


def test_curve_summary_finds_the_minimum_and_the_rise_after_it():
    history = {"points": [1, 2, 3, 4, 5], "series": {"val_loss": [0.9, 0.5, 0.4, 0.6, 0.8]}}
    s = compare.curve_summary(history)
    assert s["best_index"] == 2 and s["best_x"] == 3 and s["rose_after_best"]
    assert s["rise_after_best"] == pytest.approx(0.4)
    falling = compare.curve_summary({"points": [1, 2], "series": {"val_loss": [0.9, 0.5]}})
    assert not falling["rose_after_best"]
    assert compare.curve_summary({"points": [1], "series": {"val_loss": [None]}}) is None
