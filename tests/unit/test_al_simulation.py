"""The active-learning simulator and its command: small, fast runs on a slice of the digits."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

import active_learning.simulation as simulation
from active_learning.simulation import (
    curve_summary,
    draw_initial,
    label_schedule,
    labels_to_reach,
    simulate,
    split_pool_test,
    write_png,
)

STRATEGIES = ["random", "margin", "error_model", "diversity", "mix"]


@pytest.fixture(scope="module")
def digits():
    """The first 400 digits as (N, 8, 8) pixels in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images[:400] / 16.0).astype(np.float32), d.target[:400]


@pytest.fixture(scope="module")
def result(digits):
    X, y = digits
    return simulate(X, y, strategies=STRATEGIES, seeds=2, initial=10, batch=10, budget=40)


def test_curves_have_one_point_per_round_for_every_strategy_and_seed(result):
    assert list(result["strategies"]) == STRATEGIES
    for curve in result["strategies"].values():
        assert curve["labels"] == [10, 20, 30, 40]
        for key in ("mean", "std", "min", "max"):
            assert len(curve[key]) == 4
        acc = np.asarray(curve["per_seed"])
        assert acc.shape == (2, 4) and np.all((acc >= 0) & (acc <= 1))
        np.testing.assert_allclose(curve["mean"], acc.mean(axis=0))
        assert np.all(np.asarray(curve["min"]) <= curve["mean"]) and np.all(np.asarray(curve["max"]) >= curve["mean"])
        assert curve["final_accuracy"] == curve["mean"][-1]
        assert [len(order) for order in curve["labeled"]] == [40, 40]
    assert 0.8 < result["full_pool_accuracy"] <= 1
    assert result["target_accuracy"] == pytest.approx(0.95 * result["full_pool_accuracy"])


def test_every_strategy_starts_from_the_same_initial_set_per_seed(result):
    first, second = result["initial"]
    assert len(first) == 10 and set(first) != set(second)
    for curve in result["strategies"].values():
        for seed, order in enumerate(curve["labeled"]):
            assert order[:10] == result["initial"][seed]
    # Same data, same model: the first point of every curve is the same.
    firsts = {tuple(np.asarray(c["per_seed"])[:, 0]) for c in result["strategies"].values()}
    assert len(firsts) == 1


def test_the_test_set_never_enters_the_labeled_set(result):
    test = set(result["test_indices"])
    assert len(test) == result["n_test"] == 120 and result["n_pool"] == 280
    for curve in result["strategies"].values():
        for order in curve["labeled"]:
            assert len(set(order)) == len(order)  # nothing labeled twice
            assert not test & set(order)
            assert all(0 <= i < 400 for i in order)


def test_strategies_choose_differently(result):
    orders = {name: tuple(c["labeled"][0]) for name, c in result["strategies"].items()}
    # With at most 20 earlier picks (fewer than it needs to be checked against margin), the error
    # model falls back to margin and picks as margin does; every other strategy picks its own way.
    assert orders["error_model"] == orders["margin"]
    others = [order for name, order in orders.items() if name != "error_model"]
    assert len(set(others)) == len(others)


def test_a_run_is_reproducible(digits):
    X, y = digits
    args = {"strategies": ["mix"], "seeds": [1], "initial": 10, "batch": 15, "budget": 25}
    a, b = simulate(X, y, **args), simulate(X, y, **args)
    assert a["strategies"]["mix"]["labeled"] == b["strategies"]["mix"]["labeled"]
    assert a["strategies"]["mix"]["per_seed"] == b["strategies"]["mix"]["per_seed"]
    assert a["strategies"]["mix"]["labels"] == [10, 25]


def test_labels_to_reach_reads_the_first_point_at_or_above_the_target():
    labels, accuracy = [10, 20, 30, 40], [0.5, 0.8, 0.9, 0.95]
    assert labels_to_reach(labels, accuracy, 0.9) == 30
    assert labels_to_reach(labels, accuracy, 0.8) == 20
    assert labels_to_reach(labels, accuracy, 0.96) is None
    assert labels_to_reach(labels, [0.5, 0.9, 0.7, 0.8], 0.85) == 20


def test_curve_summary_uses_the_mean_over_seeds():
    summary = curve_summary([10, 20], [[0.5, 0.9], [0.7, 0.8]], target_accuracy=0.85)
    np.testing.assert_allclose(summary["mean"], [0.6, 0.85])
    np.testing.assert_allclose(summary["std"], [0.1, 0.05])
    assert summary["min"] == [0.5, 0.8] and summary["max"] == [0.7, 0.9]
    assert summary["labels_to_target"] == 20  # neither seed alone decides: the mean reaches 0.85
    assert curve_summary([10, 20], [[0.5, 0.9], [0.7, 0.7]], 0.85)["labels_to_target"] is None


def test_the_png_draws_each_strategy_in_its_colour_at_the_figure_size(tmp_path):
    result = {
        "target_accuracy": 0.8,
        "target_fraction": 0.95,
        "strategies": {
            "random": {"labels": [10, 20, 30], "mean": [0.5, 0.6, 0.7], "std": [0.05, 0.05, 0.05]},
            "margin": {"labels": [10, 20, 30], "mean": [0.55, 0.75, 0.9], "std": [0.02, 0.02, 0.02]},
            "modAL": {"labels": [10, 20, 30], "mean": [0.55, 0.74, 0.9], "std": [0.0, 0.0, 0.0]},
        },
    }
    path = write_png(result, tmp_path / "plots" / "curves.png", title="digits", dashed=["modAL"])
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (960, 560)
        drawn = {color for _, color in png.convert("RGB").getcolors(png.width * png.height)}
    # matplotlib's tab10 in the order of the strategies: each curve (and its legend swatch) is there.
    for hex_color in ("#1f77b4", "#ff7f0e", "#2ca02c"):
        assert tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5)) in drawn
    assert (214, 39, 40) not in drawn  # no fourth curve


def test_importing_the_simulator_loads_no_plotting_library():
    code = "import active_learning.simulation, sys; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603
    assert result.stdout.strip() == "False"


def test_label_schedule_ends_at_the_budget():
    assert label_schedule(20, 20, 100) == [20, 40, 60, 80, 100]
    assert label_schedule(20, 30, 100) == [20, 50, 80, 100]
    assert label_schedule(20, 20, 20) == [20]
    assert len(label_schedule(20, 20, 500)) == 25
    with pytest.raises(ValueError, match="budget"):
        label_schedule(20, 20, 10)


def test_initial_draw_does_not_look_at_labels_and_is_seeded():
    y = np.repeat(np.arange(4), [2, 30, 30, 30])
    first = draw_initial(y, 6, random_state=0)
    assert len(set(first.tolist())) == 6
    # Any other labelling (with two classes in the draw) gives the same draw: the labels are not read.
    np.testing.assert_array_equal(draw_initial(np.random.default_rng(5).permutation(y), 6, random_state=0), first)
    np.testing.assert_array_equal(first, np.random.default_rng(0).permutation(len(y))[:6])
    assert first.tolist() == draw_initial(y, 6, random_state=0).tolist()
    assert first.tolist() != draw_initial(y, 6, random_state=1).tolist()
    with pytest.raises(ValueError, match="between 2"):
        draw_initial(y, 1, random_state=0)


def test_a_single_class_initial_draw_swaps_its_last_item_for_another_class():
    y = np.r_[np.zeros(50, dtype=int), 1]
    order = np.random.default_rng(3).permutation(51)
    draw = draw_initial(y, 4, random_state=3)
    assert set(y[draw]) == {0, 1} and draw[:3].tolist() == order[:3].tolist() and draw[3] == 50


def test_split_is_stratified_and_fixed():
    y = np.repeat([0, 1], [20, 80])
    pool, test = split_pool_test(y, 0.3, random_state=0)
    assert len(test) == 30 and not set(pool) & set(test) and len(pool) + len(test) == 100
    assert (y[test] == 0).sum() == 6
    again = split_pool_test(y, 0.3, random_state=0)
    assert again[1].tolist() == test.tolist()


class _RemembersWhatItSaw:
    """Predicts class 0 for a row it was trained on and class 1 for any other (rows carry an id)."""

    def fit(self, X, y):
        self.seen = set(X[:, 0].tolist())
        return self

    def predict_proba(self, X):
        saw = np.array([i in self.seen for i in X[:, 0].tolist()])
        return np.column_stack([saw, ~saw]).astype(float)

    def embed(self, X):
        return X


def test_the_error_model_learns_from_earlier_picks_as_scored_before_their_labels(monkeypatch):
    """Each row the error model learns from is an item picked in an earlier round, with the
    probabilities the model of that round gave it (a model that had not seen it): never an
    in-sample prediction of the current model."""
    seen = []
    real = simulation.select_batch

    def spy(strategy, batch_size, **kwargs):
        seen.append((kwargs["labeled"], kwargs["pool_proba"]))
        return real(strategy, batch_size, **kwargs)

    monkeypatch.setattr(simulation, "select_batch", spy)
    X = np.arange(40, dtype=float)[:, None]
    y = np.arange(40) % 2
    _, order = simulation._run_one(
        lambda seed: _RemembersWhatItSaw(), X, y, X[:4], y[:4], start=np.arange(4), schedule=[4, 8, 12, 16],
        strategy="error_model", seed=0, weights=(), n_classes=2,
    )  # fmt: skip
    assert len(seen) == 3 and order.size == 16
    assert len(seen[0][0].earlier.wrong) == 0  # nothing picked yet: the error model falls back to margin
    for round_index, (labeled, _) in enumerate(seen[1:], start=1):
        picked = order[4 : 4 + 4 * round_index]
        assert len(labeled.y) == 0  # no dev split in the simulator: only the earlier picks
        # Each scored by a model that had not seen it (class 1); in-sample it would have said 0.
        np.testing.assert_array_equal(labeled.earlier.wrong, y[picked] != 1)
        np.testing.assert_array_equal(labeled.earlier.features, X[picked])
        assert len(labeled.centers) == 4 + 4 * round_index  # diversity and the cold start: every label


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategies": ["coreset"]}, "unknown strategy coreset"),
        ({"strategies": ["margin", "margin"]}, "named twice"),
        ({"budget": 5}, "budget \\(5\\) must be at least the initial set \\(10\\)"),
        ({"initial": 1}, "between 2 and"),
        ({"budget": 300}, "larger than the pool \\(280"),
        ({"test_size": 1.5}, "test_size"),
        ({"trainer": "svm"}, "unknown trainer"),
        ({"seeds": 0}, "at least one seed"),
    ],
)
def test_simulate_rejects_bad_settings(digits, kwargs, message):
    X, y = digits
    args = {"strategies": ["random"], "seeds": 1, "initial": 10, "batch": 10, "budget": 20, **kwargs}
    with pytest.raises(ValueError, match=message):
        simulate(X, y, **args)


def test_simulate_rejects_bad_data(digits):
    X, y = digits
    with pytest.raises(ValueError, match="one label per item"):
        simulate(X, y[:-1], initial=10, budget=20)
    with pytest.raises(ValueError, match="at least two classes"):
        simulate(X, np.zeros(len(X)), initial=10, budget=20)
    with pytest.raises(ValueError, match="at least 2 items"):
        simulate(X, np.r_[y[:-1], 99], initial=11, budget=20)
    with pytest.raises(ValueError, match="NaN"):
        simulate(np.full_like(X, np.nan), y, initial=10, budget=20)


def _run_command(*args):
    out = io.StringIO()
    call_command("simulate_al", *args, stdout=out)
    return out.getvalue()


def test_command_writes_curves_json_and_a_png_and_prints_the_table(digits, tmp_path):
    X, y = digits
    data = tmp_path / "named.npz"
    np.savez(data, X=X.reshape(len(X), -1), y=np.array([f"digit-{d}" for d in y]))
    out_dir = tmp_path / "out"
    text = _run_command(
        "--dataset", str(data), "--strategies", "random,margin", "--seeds", "1",
        "--initial", "10", "--batch", "10", "--budget", "30", "--splits", "2", "--out", str(out_dir),
    )  # fmt: skip
    curves = json.loads((out_dir / "curves.json").read_text())
    assert list(curves["strategies"]) == ["random", "margin"]
    assert curves["classes"][:2] == ["digit-0", "digit-1"] and curves["dataset"] == str(data)
    assert curves["strategies"]["margin"]["labels"] == [10, 20, 30]
    with Image.open(out_dir / "learning_curves.png") as png:
        assert png.format == "PNG" and png.size == (960, 560)
        colors = png.convert("RGB").getcolors(png.width * png.height)
        assert len(colors) > 20  # lines, bands and text, not a blank page
    assert "labels to 95%" in text and "accuracy at 30" in text and "2 test split(s) x 1 seed(s) = 2 runs" in text
    assert [split["split_seed"] for split in curves["splits"]] == [0, 1]
    assert set(curves["summary"]) == {"random", "margin"} and curves["summary"]["margin"]["runs"] == 2
    for line in ("random", "margin"):
        assert any(row.startswith(line) for row in text.splitlines())
    assert f"curves: {out_dir / 'curves.json'}" in text and f"plot:   {out_dir / 'learning_curves.png'}" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "missing.npz"], "no such file"),
        (["--dataset", "data.csv"], "must be one of digits, breast_cancer, wine, iris or a .npz"),
        (["--splits", "0"], "--splits must be at least 1"),
        (["--dataset", "{no_y}"], "no array named y"),
        (["--dataset", "{short_y}"], "X has 30 rows but y has 29"),
        (["--dataset", "{garbage}"], "cannot read"),
        (["--strategies", "random,coreset"], "unknown strategy coreset"),
        (["--budget", "10", "--initial", "20"], "budget \\(10\\) must be at least the initial set \\(20\\)"),
        (["--initial", "1"], "between 2 and"),
        (["--initial", "2000", "--budget", "2000"], "larger than the pool \\(1257 items"),
        (["--weights", "entropy:lots"], "--weights: the weight of entropy must be a number"),
    ],
)
def test_command_bad_input_is_a_command_error_with_a_message(tmp_path, args, message):
    files = {"no_y": tmp_path / "no_y.npz", "short_y": tmp_path / "short_y.npz", "garbage": tmp_path / "garbage.npz"}
    np.savez(files["no_y"], X=np.zeros((30, 4)))
    np.savez(files["short_y"], X=np.zeros((30, 4)), y=np.zeros(29))
    files["garbage"].write_bytes(b"not a zip file")
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    with pytest.raises(CommandError, match=message):
        _run_command("--strategies", "random", "--seeds", "1", "--out", str(tmp_path / "out"), *args)
