"""training.metrics against scikit-learn and hand-computed answers on fixed cases."""

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from training import metrics as M


@pytest.fixture
def case():
    """A seeded 4-class case: 200 items, a noisy but informative classifier, every class present."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 4, size=200)
    logits = rng.normal(size=(200, 4)) + 2.0 * np.eye(4)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def test_accuracy_confusion_and_per_class_match_sklearn(case):
    y, proba = case
    pred = proba.argmax(axis=1)
    assert M.accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred))
    confusion = M.confusion_matrix(y, pred, 4)
    np.testing.assert_array_equal(confusion, skm.confusion_matrix(y, pred, labels=range(4)))
    prf = M.per_class_prf(confusion)
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=range(4), zero_division=np.nan)
    np.testing.assert_allclose(prf["precision"], p)
    np.testing.assert_allclose(prf["recall"], r)
    np.testing.assert_allclose(prf["f1"], f)
    np.testing.assert_array_equal(prf["support"], s)
    assert M.evaluate(y, proba)["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))


def test_undefined_precision_is_nan_like_sklearn_zero_division_nan():
    y = np.array([0, 0, 1, 2])
    pred = np.array([0, 0, 0, 0])  # classes 1 and 2 never predicted
    prf = M.per_class_prf(M.confusion_matrix(y, pred, 3))
    p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=range(3), zero_division=np.nan)
    np.testing.assert_array_equal(np.isnan(prf["precision"]), np.isnan(p))
    np.testing.assert_allclose(prf["recall"], r)
    np.testing.assert_allclose(prf["f1"], f)
    assert prf["precision"][0] == pytest.approx(0.5)


def test_roc_auc_one_vs_rest_matches_sklearn(case):
    y, proba = case
    per_class, macro = M.roc_auc_ovr(y, proba)
    assert macro == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    for c in range(4):
        assert per_class[c] == pytest.approx(skm.roc_auc_score(y == c, proba[:, c]))


def test_roc_auc_with_ties_and_a_missing_class():
    y = np.array([0, 0, 1, 1, 1])
    proba = np.array([[0.6, 0.4, 0], [0.5, 0.5, 0], [0.5, 0.5, 0], [0.2, 0.8, 0], [0.6, 0.4, 0]])
    per_class, macro = M.roc_auc_ovr(y, proba)
    assert per_class[1] == pytest.approx(skm.roc_auc_score(y == 1, proba[:, 1]))
    assert np.isnan(per_class[2])  # no item of class 2: undefined, left out of the mean
    assert macro == pytest.approx(np.mean(per_class[:2]))


def test_reliability_bins_match_sklearn_calibration_curve(case):
    y, proba = case
    bins = M.reliability_bins(y, proba, n_bins=10)
    correct = (proba.argmax(axis=1) == y).astype(int)
    prob_true, prob_pred = calibration_curve(correct, proba.max(axis=1), n_bins=10, strategy="uniform")
    used = bins["count"] > 0
    np.testing.assert_allclose(bins["accuracy"][used], prob_true)
    np.testing.assert_allclose(bins["confidence"][used], prob_pred)
    assert bins["count"].sum() == 200
    assert np.isnan(bins["accuracy"][~used]).all()


def test_ece_by_hand():
    # Two items at confidence 0.9 (one right), two at 0.6 (both right):
    # bins 0.8-0.9 and 0.5-0.6: ECE = 0.5 * |0.5 - 0.9| + 0.5 * |1 - 0.6| = 0.4.
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    bins = M.reliability_bins(y, proba, n_bins=10)
    assert bins["count"].tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 2, 0]  # 0.6 and 0.9 close their bins
    assert M.expected_calibration_error(bins) == pytest.approx(0.4)


def test_per_slice_accuracy_and_gap_table():
    y = np.array([0, 1, 1, 0, 1, 0])
    pred = np.array([0, 1, 0, 0, 0, 1])
    codes = np.array([0, 0, 1, 1, 1, -1])
    count, acc = M.per_slice_accuracy(y, pred, codes, 3)
    assert count.tolist() == [2, 3, 0]
    assert acc[0] == 1.0 and acc[1] == pytest.approx(1 / 3) and np.isnan(acc[2])

    rows = M.gap_to_hlp(["a", "b", "c", "d"], [0.9, 0.5, 0.8, 0.7], [0.95, 0.9, np.nan, 0.9], [0.6, 0.1, 0.2, 0.1])
    # gaps 0.05, 0.4, nan, 0.2; priorities 0.03, 0.04, nan, 0.02: b, a, d, then c (unknown)
    assert [r["slice"] for r in rows] == ["b", "a", "d", "c"]
    assert rows[0]["gap"] == pytest.approx(0.4) and rows[0]["priority"] == pytest.approx(0.04)
    assert np.isnan(rows[-1]["gap"])


def test_top_k_lists():
    y = np.array([0, 1, 2, 0, 1])
    proba = np.array(
        [
            [0.1, 0.8, 0.1],  # wrong, 0.8
            [0.1, 0.8, 0.1],  # right
            [0.95, 0.05, 0.0],  # wrong, 0.95
            [0.45, 0.44, 0.11],  # right, margin 0.01
            [0.4, 0.35, 0.25],  # wrong, 0.4, margin 0.05
        ]
    )
    idx, conf = M.confidently_wrong(y, proba, 2)
    assert idx.tolist() == [2, 0] and conf.tolist() == pytest.approx([0.95, 0.8])
    idx, margin = M.most_uncertain(proba, 2)
    assert idx.tolist() == [3, 4] and margin.tolist() == pytest.approx([0.01, 0.05])


def test_evaluate_is_json_safe():
    import json

    y = np.array([0, 0, 1])
    proba = np.array([[0.7, 0.3, 0.0], [0.6, 0.4, 0.0], [0.2, 0.8, 0.0]])
    report = M.json_safe(M.evaluate(y, proba))
    text = json.dumps(report, allow_nan=False)
    assert report["accuracy"] == 1.0 and report["roc_auc"][2] is None
    assert '"confusion": [[2, 0, 0], [0, 1, 0], [0, 0, 0]]' in text
