"""The simulator's statistics over several test splits (area under the curve, labels to the
target with a bootstrap interval over splits and seeds), the full-pool reference over a
regularisation grid."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from active_learning.simulation import (
    REFERENCE_CS,
    aggregate,
    area_under_curve,
    full_pool_reference,
    simulate_splits,
)
from training.trainers import get_trainer


def test_area_under_curve_is_the_mean_accuracy_over_the_label_range():
    assert area_under_curve([0, 10, 20], [0.5, 0.7, 0.9]) == pytest.approx(0.7)
    assert area_under_curve([10, 20, 40], [0.5, 0.5, 1.0]) == pytest.approx((5 + 15) / 30)
    assert area_under_curve([10], [0.4]) == 0.4


def _result(curves, target=0.9, budget=30, batch=10):
    return {
        "seeds": [0, 1],
        "budget": budget,
        "batch": batch,
        "target_accuracy": target,
        "strategies": {
            name: {"labels": [10, 20, 30], "per_seed": per_seed, "seconds": 1.0} for name, per_seed in curves.items()
        },
    }


def test_aggregate_counts_labels_per_run_with_censoring_and_pairs_the_ratio():
    results = [
        _result({"random": [[0.5, 0.8, 0.9], [0.5, 0.7, 0.8]], "margin": [[0.5, 0.9, 0.95], [0.5, 0.9, 0.9]]}),
        _result({"random": [[0.5, 0.9, 0.9], [0.5, 0.8, 0.9]], "margin": [[0.9, 0.9, 0.9], [0.5, 0.95, 0.9]]}),
    ]
    out = aggregate(results, n_boot=500)
    # random: 30, never (40 = budget + batch), 20, 30 -> 30; margin: 20, 20, 10, 20 -> 17.5
    assert out["random"]["labels"]["mean"] == pytest.approx(30.0) and out["random"]["censored"] == 1
    assert out["margin"]["labels"]["mean"] == pytest.approx(17.5) and out["margin"]["censored"] == 0
    assert out["margin"]["vs_reference"]["mean"] == pytest.approx(17.5 / 30)
    assert out["random"]["vs_reference"] == {"mean": 1.0, "low": 1.0, "high": 1.0}
    for name in ("random", "margin"):
        for key in ("labels", "auc", "vs_reference"):
            block = out[name][key]
            assert block["low"] <= block["mean"] <= block["high"]
        assert out[name]["runs"] == 4 and out[name]["seconds"] == 2.0
    expected_auc = np.mean(
        [area_under_curve([10, 20, 30], a) for r in results for a in r["strategies"]["margin"]["per_seed"]]
    )
    assert out["margin"]["auc"]["mean"] == pytest.approx(expected_auc)
    with pytest.raises(ValueError, match="same strategies"):
        aggregate([results[0], _result({"random": [[0.5] * 3] * 2})])


def test_the_full_pool_reference_is_the_best_of_the_grid():
    d = load_digits()
    X, y = (d.images[:500] / 16.0).astype(np.float32), d.target[:500]
    accuracy, hp = full_pool_reference("sklearn_logreg", X[:350], y[:350], X[350:], y[350:], 10, 0)
    cls = get_trainer("sklearn_logreg")
    each = [
        float((cls(10, C=c).fit(X[:350], y[:350]).predict_proba(X[350:]).argmax(1) == y[350:]).mean())
        for c in REFERENCE_CS
    ]
    assert accuracy == max(each) and hp == {"C": REFERENCE_CS[int(np.argmax(each))]}


def test_simulate_splits_runs_each_split_and_aggregates():
    d = load_digits()
    X, y = (d.images[:300] / 16.0).astype(np.float32), d.target[:300]
    results = simulate_splits(
        X, y, strategies=["random", "typiclust"], seeds=2, split_seeds=[0, 1], initial=10, batch=10, budget=30
    )
    assert [r["split_seed"] for r in results] == [0, 1]
    assert results[0]["test_indices"] != results[1]["test_indices"]
    out = aggregate(results)
    assert set(out) == {"random", "typiclust"} and out["typiclust"]["runs"] == 4
    with pytest.raises(ValueError, match="each named once"):
        simulate_splits(X, y, split_seeds=[0, 0])
