"""Learning histories of the trainers (training/trainers.py) and their SVG (frontend/curve_charts.py).

The logistic regression's validation curve is checked against scikit-learn itself: each point
equals ``LogisticRegression`` warm-started along the same path of C on the same standardised
pixels, scored with ``sklearn.metrics.log_loss`` (and lies within 2 % of a cold fit run to
convergence), and the model kept equals a plain pipeline fit at the chosen C."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from frontend import curve_charts
from training.trainers import SklearnLogReg, mark_best, new_history

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)
    return X[:400], d.target[:400], X[400:600], d.target[400:600]


def test_the_validation_curve_over_c_equals_scikit_learn_point_by_point(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler

    X, y, X_dev, y_dev = digits
    losses = []
    model = SklearnLogReg(10, C=0.05).fit(X, y, X_dev, y_dev, progress=lambda *a: losses.append(1))
    history = model.history_
    assert history["kind"] == "regularisation" and history["validation"] == "dev"
    assert history["points"] == pytest.approx([0.05 * f for f in SklearnLogReg.CURVE_FACTORS])
    scaler = StandardScaler().fit(X.reshape(400, -1))
    Xt, Xd = scaler.transform(X.reshape(400, -1)), scaler.transform(X_dev.reshape(200, -1))
    # scikit-learn's own warm start along the same path: out from the chosen C on each side.
    refs = {0.05: LogisticRegression(C=0.05, max_iter=500, random_state=0).fit(Xt, y)}
    for path in ((0.005, 0.0005), (0.5, 5.0)):
        previous = refs[0.05]
        for C in path:
            ref = LogisticRegression(C=C, max_iter=SklearnLogReg.CURVE_MAX_ITER, random_state=0, warm_start=True)
            ref.coef_, ref.intercept_ = previous.coef_.copy(), previous.intercept_.copy()
            refs[C] = previous = ref.fit(Xt, y)
    for i, C in enumerate(history["points"]):
        ref = refs[min(refs, key=lambda c, C=C: abs(c - C))]
        assert abs(ref.C - C) < 1e-12 * max(C, 1.0)
        assert history["series"]["loss"][i] == pytest.approx(log_loss(y, ref.predict_proba(Xt)), rel=1e-6)
        assert history["series"]["val_loss"][i] == pytest.approx(log_loss(y_dev, ref.predict_proba(Xd)), rel=1e-6)
        assert history["series"]["val_accuracy"][i] == pytest.approx((ref.predict(Xd) == y_dev).mean())
    assert history["best"]["val_loss"] == min(history["series"]["val_loss"])
    # The model kept is exactly the plain fit at the chosen C.
    plain = SklearnLogReg(10, C=0.05).fit(X, y)
    np.testing.assert_allclose(model.predict_proba(X_dev), plain.predict_proba(X_dev), rtol=1e-10, atol=1e-12)
    assert model.latest_losses()["val_loss"] == history["series"]["val_loss"][-1]
    assert len(losses) == len(SklearnLogReg.CURVE_FACTORS) + 2  # 0, each point, 1
    # Where the solver converges (C up to 10 x the default here), warm starts reach the cold fits'
    # optimum. At 100 x C neither path converges within its iterations: that point is approximate.
    for i, C in enumerate(history["points"][:-1]):
        cold = LogisticRegression(C=C, max_iter=5000, random_state=0).fit(Xt, y)
        assert history["series"]["val_loss"][i] == pytest.approx(log_loss(y_dev, cold.predict_proba(Xd)), rel=2e-2)


def test_without_a_dev_split_the_logistic_model_fits_once_and_draws_no_validation_curve(digits):
    X, y, _, _ = digits
    model = SklearnLogReg(10).fit(X, y)
    assert model.history_["points"] == [0.05] and model.history_["series"]["val_loss"] == [None]
    assert model.history_["best"] is None and model.latest_losses()["val_loss"] is None


def test_mark_best_takes_the_first_lowest_finite_validation_loss():
    h = new_history("epochs", "epoch", "dev")
    h["points"] = [1, 2, 3, 4]
    h["series"]["val_loss"] = [0.9, None, 0.4, 0.4]
    assert mark_best(h)["best"] == {"index": 2, "x": 3, "val_loss": 0.4}


def _keras_like_history():
    h = new_history("epochs", "epoch", "dev")
    h["points"] = list(range(1, 11))
    h["series"].update(
        loss=[1.0 / k for k in range(1, 11)],
        val_loss=[1.0, 0.7, 0.5, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        accuracy=[0.5 + k / 25 for k in range(10)],
        val_accuracy=[0.5 + k / 40 for k in range(10)],
    )
    mark_best(h)
    h["early_stopping"] = {"fired": True, "stopped_epoch": 10, "patience": 6, "restored_epoch": 4}
    return h


def test_training_curves_are_well_formed_svg_marking_the_minimum_and_early_stopping():
    loss, accuracy = curve_charts.training_curves(_keras_like_history())
    for svg in (loss, accuracy):
        root = ET.fromstring(str(svg))  # noqa: S314 (our own output, parsed to check it)
        assert root.tag == f"{SVG}svg" and root.get("role") == "img"
        assert "style" not in str(svg)  # the CSP forbids style attributes
    root = ET.fromstring(str(loss))  # noqa: S314 (our own output, parsed to check it)
    marks = {m.get("data-mark"): m for m in root.iter(f"{SVG}line") if m.get("data-mark")}
    assert set(marks) == {"best", "early-stop"}
    assert float(marks["best"].get("x1")) < float(marks["early-stop"].get("x1"))
    assert "epoch 4" in marks["best"].find(f"{SVG}title").text
    lines = {p.get("data-series") for p in root.iter(f"{SVG}polyline")}
    assert lines == {"training loss", "validation loss"}


def test_curve_charts_escape_version_names_and_handle_nothing():
    h = _keras_like_history()
    charts = curve_charts.overlaid_curves([("<script>x</script>", h), ("b", h)])
    assert len(charts) == 1
    svg = str(charts[0])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)  # noqa: S314 (our own output, parsed to check it)
    assert curve_charts.training_curves(None) is None
    assert curve_charts.overlaid_curves([("a", None)]) == []
    c = new_history("regularisation", "C", "dev")
    c["points"], c["series"]["val_loss"] = [0.1, 1.0], [0.5, 0.4]
    assert len(curve_charts.overlaid_curves([("a", h), ("b", c)])) == 2  # epochs and C share no axis
    bins = {"confidence": [0.35, 0.9], "accuracy": [0.3, 0.95], "count": [4, 10]}
    cal = str(curve_charts.overlaid_calibration([("a", bins), ("b", {})]))
    ET.fromstring(cal)  # noqa: S314 (our own output, parsed to check it)
    assert "perfectly calibrated" in cal
    assert curve_charts.overlaid_calibration([("a", {})]) is None


def test_a_regularisation_curve_is_drawn_on_a_log_axis_with_the_chosen_c():
    h = new_history("regularisation", "C", "dev")
    h["points"] = [0.0005, 0.005, 0.05, 0.5, 5.0]
    h["series"].update(loss=[1.0, 0.5, 0.2, 0.1, 0.05], val_loss=[1.0, 0.5, 0.3, 0.35, 0.5])
    h["chosen"] = 0.05
    mark_best(h)
    loss, _ = curve_charts.training_curves(h)
    root = ET.fromstring(str(loss))  # noqa: S314 (our own output, parsed to check it)
    marks = {m.get("data-mark"): m for m in root.iter(f"{SVG}line") if m.get("data-mark")}
    assert marks["best"].get("x1") == marks["chosen"].get("x1")  # both at C = 0.05
    ticks = [t.text for t in root.iter(f"{SVG}text")]
    assert "0.001" in ticks and "1" in ticks  # decades
