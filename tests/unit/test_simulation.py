import numpy as np
import pytest

from annotation import simulation


@pytest.mark.parametrize(
    "confusion",
    [
        simulation.careful_confusion(11),
        simulation.mixing_confusion(11, [(1, 7), (3, 8)], mix=0.35),
        simulation.noisy_confusion(11, ambiguity_index=10),
    ],
)
def test_confusions_are_row_stochastic(confusion):
    assert confusion.shape == (11, 11)
    np.testing.assert_allclose(confusion.sum(axis=1), 1.0)
    assert (confusion >= 0).all()


def test_mixer_confuses_only_its_pairs():
    confusion = simulation.mixing_confusion(10, [(1, 7)], mix=0.35)
    assert confusion[1, 7] > 0.3 and confusion[7, 1] > 0.3
    assert confusion[2, 2] == pytest.approx(0.97)


def test_simulated_labels_follow_the_confusion():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, size=40_000)
    confusions = np.stack([simulation.careful_confusion(10, 0.9), simulation.mixing_confusion(10, [(1, 7)], 0.4)])
    mask = np.ones((truth.size, 2), dtype=bool)
    labels = simulation.simulate_labels(truth, confusions, mask, rng)
    assert np.mean(labels[:, 0] == truth) == pytest.approx(0.9, abs=0.01)
    ones = truth == 1
    assert np.mean(labels[ones, 1] == 7) == pytest.approx(confusions[1, 1, 7], abs=0.02)


def test_assignment_gives_overlap_items_k_labelers_and_some_others_one():
    rng = np.random.default_rng(1)
    needs_overlap = np.arange(1000) < 200
    mask = simulation.assign_labelers(1000, 4, needs_overlap, overlap=3, other_share=0.5, rng=rng)
    assert (mask[:200].sum(axis=1) == 3).all()
    rest = mask[200:].sum(axis=1)
    assert set(rest) == {0, 1}
    assert rest.mean() == pytest.approx(0.5, abs=0.06)


def test_unassigned_cells_are_nan():
    rng = np.random.default_rng(2)
    mask = np.array([[True, False], [False, True]])
    labels = simulation.simulate_labels(np.array([0, 1]), np.stack([simulation.careful_confusion(2)] * 2), mask, rng)
    assert np.isnan(labels[0, 1]) and np.isnan(labels[1, 0])
    assert not np.isnan(labels[0, 0]) and not np.isnan(labels[1, 1])
