"""select_batch and its helpers: hand-made cases with known answers, one per strategy name."""

import numpy as np
import pytest

from active_learning.sampling import (
    DEFAULT_MIX,
    MAX_EMBEDDING_DIM,
    STRATEGIES,
    Labeled,
    interleave,
    parse_weights,
    reduce_dim,
    select_batch,
)
from active_learning.strategies import Selection

# Five pool rows, from sure to unsure. Entropy ranks 4 > 1 > 2; margin ties 2 and 4 (two classes
# at 0.5 and three at 1/3 both have margin 0) ahead of 1.
PROBA = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.4, 0.3, 0.3],
        [0.5, 0.5, 0.0],
        [0.9, 0.05, 0.05],
        [1 / 3, 1 / 3, 1 / 3],
    ]
)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("entropy", [4, 1, 2]), ("least_confidence", [4, 1, 2]), ("margin", [2, 4, 1])],
)
def test_uncertainty_strategies_pick_the_most_uncertain_rows_best_first(strategy, expected):
    selection = select_batch(strategy, 3, pool_proba=PROBA)
    assert selection.indices.tolist() == expected
    assert selection.strategies == [strategy] * 3
    assert np.all(np.diff(selection.scores) <= 0)


def test_random_is_seeded_without_duplicates():
    pool = np.full((50, 2), 0.5)
    a = select_batch("random", 10, pool_proba=pool, random_state=3)
    b = select_batch("random", 10, pool_proba=pool, random_state=3)
    c = select_batch("random", 10, pool_proba=pool, random_state=4)
    assert a.indices.tolist() == b.indices.tolist() != c.indices.tolist()
    assert len(set(a.indices.tolist())) == 10 and a.indices.max() < 50
    assert a.strategies == ["random"] * 10


def _labeled(features, proba=None, y=None, centers=None):
    features = np.asarray(features, dtype=float)
    proba = np.full((len(features), 2), 0.5) if proba is None else proba
    y = np.zeros(len(features), dtype=int) if y is None else y
    return Labeled(features, proba, y, centers)


def test_diversity_picks_far_points_from_the_labeled_centers_and_returns_pool_indices():
    # k-center runs on the features standardised over the center and the pool together
    # (x: std 4.1, y: std 1.8). In z-units [0, 5] is now the farthest from the center (the origin),
    # 2.74 against 2.24 for [9, 1], which comes next (raw distances would have put [9, 1] first).
    pool = np.array([[1.0, 0.0], [9.0, 0.0], [0.0, 5.0], [9.0, 1.0], [0.0, 0.0]])
    labeled = _labeled(features=[[0.0, 0.0]])
    selection = select_batch("diversity", 2, pool_proba=np.full((5, 2), 0.5), pool_features=pool, labeled=labeled)
    assert selection.indices.tolist() == [2, 3]
    assert selection.strategies == ["diversity", "diversity"]
    both = np.vstack([[[0.0, 0.0]], pool])
    z = (both - both.mean(axis=0)) / both.std(axis=0)
    first = np.linalg.norm(z[3] - z[0])
    second = min(np.linalg.norm(z[4] - z[0]), np.linalg.norm(z[4] - z[3]))
    np.testing.assert_allclose(selection.scores, [first, second], rtol=1e-6)
    # The point on a center comes last.
    everything = select_batch("diversity", 5, pool_proba=np.full((5, 2), 0.5), pool_features=pool, labeled=labeled)
    assert everything.indices[-1] == 4 and sorted(everything.indices.tolist()) == [0, 1, 2, 3, 4]


def test_diversity_uses_the_centers_when_given():
    pool = np.array([[1.0, 0.0], [9.0, 0.0]])
    labeled = _labeled(features=[[0.0, 0.0]], centers=np.array([[9.0, 0.0]]))
    selection = select_batch("diversity", 1, pool_proba=np.full((2, 2), 0.5), pool_features=pool, labeled=labeled)
    assert selection.indices.tolist() == [0]  # [9, 0] is a center, so [1, 0] is the far one


@pytest.mark.parametrize("strategy", ["error_model", "diversity", "typiclust", "mix"])
def test_strategies_that_need_the_labeled_set_say_so(strategy):
    weights = (("margin", 0.5), ("diversity", 0.5))  # the default mix needs none: margin and random
    with pytest.raises(ValueError, match="needs the pool's features and the labeled set"):
        select_batch(strategy, 2, pool_proba=PROBA, weights=weights)


def _error_region_case():
    """A model that is wrong exactly where the feature is positive; pool items on both sides."""
    x = np.linspace(-1, 1, 40)[:, None]
    labeled = _labeled(features=x, proba=np.tile([0.8, 0.2], (40, 1)), y=(x[:, 0] > 0).astype(int))
    pool_features = np.array([[-0.9], [0.9], [-0.5], [0.5], [-0.1], [0.2]])
    return labeled, pool_features, np.tile([0.8, 0.2], (6, 1))


def test_error_model_picks_where_the_model_was_wrong():
    labeled, pool_features, pool_proba = _error_region_case()
    selection = select_batch("error_model", 2, pool_proba=pool_proba, pool_features=pool_features, labeled=labeled)
    assert sorted(selection.indices.tolist()) == [1, 3]
    assert selection.strategies == ["error_model"] * 2 and np.all(selection.notes["p_wrong"] > 0.5)


def test_mix_splits_by_weight_without_duplicates_and_records_who_chose():
    labeled, pool_features, pool_proba = _error_region_case()
    rng = np.random.default_rng(0)
    pool_features = rng.uniform(-1, 1, (40, 1))
    pool_proba = rng.dirichlet([1, 1], 40)
    weights = (("entropy", 0.6), ("error_model", 0.25), ("random", 0.15))
    selection = select_batch(
        "mix", 20, pool_proba=pool_proba, pool_features=pool_features, labeled=labeled, weights=weights
    )
    assert len(selection) == 20 and np.unique(selection.indices).size == 20
    assert [selection.strategies.count(name) for name, _ in weights] == [12, 5, 3]
    entropy_picks = selection.indices[np.asarray(selection.strategies) == "entropy"]
    assert entropy_picks.tolist() == select_batch("entropy", 12, pool_proba=pool_proba).indices.tolist()


def test_mix_of_uncertainty_and_random_needs_no_labeled_set():
    selection = select_batch("mix", 4, pool_proba=PROBA, weights=(("entropy", 0.5), ("random", 0.5)))
    assert selection.strategies == ["entropy", "entropy", "random", "random"]
    assert selection.indices[:2].tolist() == [4, 1] and np.unique(selection.indices).size == 4


def test_a_batch_larger_than_the_pool_returns_the_whole_pool_once():
    selection = select_batch("mix", 9, pool_proba=PROBA, weights=(("margin", 1.0), ("random", 1.0)))
    assert sorted(selection.indices.tolist()) == [0, 1, 2, 3, 4]


def test_unknown_strategy_and_bad_shapes_raise():
    with pytest.raises(ValueError, match="unknown strategy 'coreset'"):
        select_batch("coreset", 2, pool_proba=PROBA)
    with pytest.raises(ValueError, match="pool_features has 2 rows but pool_proba has 5"):
        select_batch("entropy", 2, pool_proba=PROBA, pool_features=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        select_batch("entropy", 2, pool_proba=PROBA[0])
    assert set(STRATEGIES) == {"random", "least_confidence", "margin", "entropy", "error_model", "diversity", "mix"}


def test_parse_weights_reads_pairs_and_defaults_when_empty():
    assert parse_weights(" entropy:0.6, error_model:0.25 ,random:0.15") == (
        ("entropy", 0.6),
        ("error_model", 0.25),
        ("random", 0.15),
    )
    assert parse_weights("") == DEFAULT_MIX and parse_weights(None) == DEFAULT_MIX
    assert [name for name, _ in DEFAULT_MIX] == ["margin", "error_model", "random"]  # tuned: benchmarks/RESULTS.md
    assert parse_weights("diversity:1,margin:0") == (("diversity", 1.0), ("margin", 0.0))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("entropy", "name:weight pairs"),
        ("coreset:1", "name:weight pairs"),
        ("mix:1", "name:weight pairs"),
        ("entropy:x", "weight of entropy must be a number"),
        ("entropy:-1", "non-negative"),
        ("entropy:nan", "non-negative"),
        ("entropy:1,entropy:2", "appears twice"),
        ("entropy:0,random:0", "more than 0"),
    ],
)
def test_parse_weights_rejects_bad_text_naming_the_part(text, message):
    with pytest.raises(ValueError, match=message):
        parse_weights(text)


def test_reduce_dim_keeps_narrow_features_and_projects_wide_ones_deterministically():
    narrow = np.arange(12, dtype=float).reshape(3, 4)
    kept = reduce_dim(narrow)
    assert kept.dtype == np.float32 and np.array_equal(kept, narrow)

    wide = np.random.default_rng(0).standard_normal((30, 1000))
    a, b, other = reduce_dim(wide), reduce_dim(wide), reduce_dim(wide, random_state=1)
    assert a.shape == (30, MAX_EMBEDDING_DIM)
    assert np.array_equal(a, b) and not np.array_equal(a, other)
    # Distances survive the projection up to a small distortion (Johnson-Lindenstrauss).
    ratio = np.linalg.norm(a[1:] - a[0], axis=1) / np.linalg.norm(wide[1:] - wide[0], axis=1)
    assert np.all((ratio > 0.8) & (ratio < 1.2))
    assert reduce_dim(wide, max_dim=8).shape == (30, 8)
    with pytest.raises(ValueError, match="2-D"):
        reduce_dim(np.zeros(5))


def test_reduce_dim_projects_to_float32_as_documented():
    assert reduce_dim(np.ones((3, MAX_EMBEDDING_DIM + 1))).dtype == np.float32


def test_interleave_lets_strategies_take_turns_by_their_share():
    names = ["entropy"] * 6 + ["error_model"] * 2 + ["random"] * 2
    selection = Selection(indices=np.arange(10), strategies=names, scores=np.zeros(10))
    order = interleave(selection)
    assert order.tolist() == [0, 6, 8, 1, 2, 3, 7, 9, 4, 5]
    assert sorted(order.tolist()) == list(range(10))
    assert {names[i] for i in order[:3]} == {"entropy", "error_model", "random"}
    assert interleave(Selection(np.zeros(0, dtype=np.int64), [], np.zeros(0))).tolist() == []
