"""The "where to work next" table (training/worknext.py), calibration by slice and the nearest-to-
a-tag pool (active_learning/restriction.py): hand-computed cases and reference libraries."""

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from training import metrics as M
from training import worknext as W


@pytest.fixture
def case():
    """10 evaluated items, 4 errors (items 0, 1, 2 and 7). Slice 0 ("tag blurry"): items 0-3, three
    of the errors. Slice 1 ("noise=car"): items 3-7, one error. Slice 2: items 8-9, no error."""
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    pred = y.copy()
    pred[[0, 1, 2, 7]] = [1, 2, 0, 0]
    member = np.zeros((3, 10), dtype=bool)
    member[0, 0:4] = True
    member[1, 3:8] = True
    member[2, 8:10] = True
    share = np.array([0.30, 0.50, 0.20])  # of all the project's items, not only the evaluated
    hlp = np.array([0.90, 0.85, np.nan])
    return y, pred, member, share, hlp


def test_the_table_has_the_exact_shares_accuracies_gaps_and_priorities(case):
    y, pred, member, share, hlp = case
    t = W.work_next(y, pred, member, share, hlp, hlp - 0.05, hlp + 0.04)
    np.testing.assert_array_equal(t["n"], [4, 5, 2])
    np.testing.assert_array_equal(t["errors"], [3, 1, 0])
    np.testing.assert_allclose(t["error_share"], [3 / 4, 1 / 4, 0.0])
    np.testing.assert_allclose(t["accuracy"], [1 / 4, 4 / 5, 1.0])
    np.testing.assert_allclose(t["gap"][:2], [0.90 - 0.25, 0.85 - 0.80])
    np.testing.assert_allclose(t["priority"][:2], [(0.90 - 0.25) * 0.30, (0.85 - 0.80) * 0.50])
    assert np.isnan(t["gap"][2]) and np.isnan(t["priority"][2])
    np.testing.assert_array_equal(t["order"], [0, 1, 2])  # the tag first; unknown HLP last
    np.testing.assert_allclose(t["hlp_low"][:2], [0.85, 0.80])
    np.testing.assert_allclose(t["share"], share)


def test_the_accuracy_interval_is_statsmodels_wilson(case):
    y, pred, member, share, hlp = case
    t = W.work_next(y, pred, member, share, hlp)
    for s, (correct, n) in enumerate([(1, 4), (4, 5), (2, 2)]):
        low, high = proportion_confint(correct, n, alpha=0.05, method="wilson")
        assert t["acc_low"][s] == pytest.approx(low, abs=1e-4)
        assert t["acc_high"][s] == pytest.approx(high, abs=1e-4)
    assert np.isnan(t["hlp_low"]).all()  # no HLP interval given


def test_a_large_slice_with_a_small_gap_can_outrank_a_small_one_with_a_large_gap():
    y = np.zeros(20, dtype=int)
    pred = np.zeros(20, dtype=int)
    pred[[0, 1, 10, 11, 12, 13]] = 1
    member = np.zeros((2, 20), dtype=bool)
    member[0, :2] = True  # accuracy 0 on 2 items, 2% of the data
    member[1, 2:20] = True  # accuracy 14/18 on 18 items, 90% of the data
    t = W.work_next(y, pred, member, [0.02, 0.90], [0.9, 0.9])
    assert t["gap"][0] > t["gap"][1]
    assert t["priority"][1] == pytest.approx((0.9 - 14 / 18) * 0.90)
    np.testing.assert_array_equal(t["order"], [1, 0])


def test_no_error_and_empty_slices_are_nan_not_a_crash():
    t = W.work_next([0, 1], [0, 1], [[True, False], [False, False]], [0.5, 0.0], [1.0, 0.9])
    assert np.isnan(t["error_share"]).all()
    assert t["n"].tolist() == [1, 0] and np.isnan(t["accuracy"][1]) and np.isnan(t["acc_low"][1])
    t = W.work_next(np.zeros(0), np.zeros(0), np.zeros((0, 0), dtype=bool), [], [])
    assert t["order"].size == 0


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="same slices"):
        W.work_next([0, 1], [0, 1], [[True, True]], [0.5, 0.5], [0.9])
    with pytest.raises(ValueError, match="same length"):
        W.work_next([0, 1], [0], [[True, True]], [0.5], [0.9])


def test_rows_sort_by_any_column_with_none_last():
    rows = [
        {"slice": "b", "priority": 0.1, "share": 0.5, "accuracy": 0.9},
        {"slice": "A", "priority": None, "share": 0.2, "accuracy": 0.5},
        {"slice": "c", "priority": 0.3, "share": 0.3, "accuracy": None},
    ]
    assert [r["slice"] for r in W.sort_rows(rows, "priority")] == ["c", "b", "A"]
    assert [r["slice"] for r in W.sort_rows(rows, "priority", descending=False)] == ["b", "c", "A"]
    assert [r["slice"] for r in W.sort_rows(rows, "accuracy")] == ["A", "b", "c"]  # ascending by default
    assert [r["slice"] for r in W.sort_rows(rows, "share")] == ["b", "c", "A"]
    assert [r["slice"] for r in W.sort_rows(rows, "slice")] == ["A", "b", "c"]
    with pytest.raises(ValueError, match="cannot sort by 'colour'"):
        W.sort_rows(rows, "colour")


def test_calibration_by_slice_is_the_ece_of_each_slice_alone():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=300)
    logits = rng.normal(size=(300, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    codes = rng.integers(-1, 3, size=300)
    ece = M.per_slice_ece(y, proba, codes, 4, n_bins=10)
    for v in range(3):
        rows = codes == v
        conf, correct = proba[rows].max(axis=1), proba[rows].argmax(axis=1) == y[rows]
        # By hand: |mean accuracy - mean confidence| per bin, weighted by the bin's share.
        which = np.clip(np.ceil(conf * 10).astype(int) - 1, 0, 9)
        expected = sum(
            (which == b).mean() * abs(correct[which == b].mean() - conf[which == b].mean())
            for b in range(10)
            if (which == b).any()
        )
        assert ece[v] == pytest.approx(expected)
    assert np.isnan(ece[3])  # no item


def test_nearest_rows_equal_scikit_learn_neighbours():
    from sklearn.metrics import pairwise_distances

    from active_learning.restriction import nearest_rows

    rng = np.random.default_rng(0)
    pool = rng.normal(size=(5000, 8))
    anchors = rng.normal(size=(7, 8)) + 1.0
    keep = nearest_rows(pool, anchors, 40)
    nearest = pairwise_distances(pool, anchors).min(axis=1)
    expected = np.sort(np.argsort(nearest, kind="stable")[:40])
    np.testing.assert_array_equal(keep, expected)
    assert nearest_rows(pool[:3], anchors, 10).tolist() == [0, 1, 2]  # k beyond the pool: all of it
    assert nearest_rows(np.zeros((0, 8)), anchors, 5).size == 0
    with pytest.raises(ValueError, match="anchor_features"):
        nearest_rows(pool, np.zeros((0, 8)), 5)
