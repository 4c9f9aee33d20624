"""active_learning.strategies: hand-made cases with known answers, seeded reproducibility, chunked
k-center against a brute-force reference, degenerate inputs (no warning) and bad input (ValueError)."""

import warnings

import numpy as np
import pytest

from active_learning import strategies as st

# ------------------------------------------------------------------------------------------------
# Uncertainty and random scores
# ------------------------------------------------------------------------------------------------


def test_least_confidence_known_values():
    np.testing.assert_allclose(st.least_confidence([[0.5, 0.5], [0.9, 0.1], [1.0, 0.0]]), [0.5, 0.1, 0.0])
    np.testing.assert_allclose(st.least_confidence([[0.2, 0.3, 0.5]]), [0.5])


def test_margin_known_values_small_margin_scores_high():
    np.testing.assert_allclose(st.margin([[0.5, 0.5], [0.9, 0.1]]), [1.0, 0.2])
    # Top two of three classes, regardless of column order.
    np.testing.assert_allclose(st.margin([[0.1, 0.6, 0.3], [0.3, 0.3, 0.4]]), [1 - 0.3, 1 - 0.1])


def test_entropy_uniform_is_log_k_and_one_hot_is_zero():
    for k in (2, 3, 7):
        assert st.entropy(np.full((1, k), 1.0 / k))[0] == pytest.approx(np.log(k))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert st.entropy([[1.0, 0.0, 0.0]])[0] == 0.0
    assert st.entropy([[0.9, 0.1]])[0] == pytest.approx(-(0.9 * np.log(0.9) + 0.1 * np.log(0.1)))


def test_uncertainty_scores_rank_the_same_on_two_classes():
    proba = np.array([[0.5, 0.5], [0.6, 0.4], [0.95, 0.05], [0.2, 0.8]])
    expected = [0, 1, 3, 2]
    for fn in (st.least_confidence, st.margin, st.entropy):
        assert st.select_top(fn(proba), 4).tolist() == expected


def test_empty_pool_gives_empty_scores():
    empty = np.zeros((0, 3))
    for fn in (st.least_confidence, st.margin, st.entropy):
        assert fn(empty).shape == (0,)


@pytest.mark.parametrize(
    "proba",
    [
        [0.5, 0.5],  # 1-D
        [[0.5, 0.6]],  # row sum != 1
        [[1.2, -0.2]],  # out of range
        [[np.nan, 1.0]],  # NaN
    ],
)
def test_bad_proba_raises(proba):
    for fn in (st.least_confidence, st.margin, st.entropy):
        with pytest.raises(ValueError, match="proba"):
            fn(proba)


def test_margin_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2"):
        st.margin([[1.0], [1.0]])


def test_random_scores_seeded_and_in_range():
    a = st.random_scores(50, 3)
    b = st.random_scores(50, np.random.default_rng(3))
    assert a.shape == (50,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, st.random_scores(50, 4))
    assert np.all((a >= 0) & (a < 1))
    with pytest.raises(ValueError, match="n must be"):
        st.random_scores(-1, 0)


# ------------------------------------------------------------------------------------------------
# select_top
# ------------------------------------------------------------------------------------------------


def test_select_top_order_ties_and_exclude():
    scores = np.array([0.2, 0.9, 0.5, 0.9, 0.1, 0.5])
    assert st.select_top(scores, 4).tolist() == [1, 3, 2, 5]
    assert st.select_top(scores, 3, exclude=[1]).tolist() == [3, 2, 5]
    mask = np.zeros(6, dtype=bool)
    mask[[3, 2]] = True
    assert st.select_top(scores, 10, exclude=mask).tolist() == [1, 5, 0, 4]
    assert st.select_top(scores, 0).tolist() == []
    assert st.select_top(scores, 4).dtype == np.int64


def test_select_top_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        st.select_top([0.1, 0.2], -1)
    with pytest.raises(ValueError, match="NaN"):
        st.select_top([0.1, np.nan], 1)
    with pytest.raises(ValueError, match="exclude"):
        st.select_top([0.1, 0.2], 1, exclude=[5])
    with pytest.raises(ValueError, match="1-D"):
        st.select_top([[0.1, 0.2]], 1)


# ------------------------------------------------------------------------------------------------
# k-center greedy
# ------------------------------------------------------------------------------------------------


def _brute_force_k_center(x, labeled, k):
    """Reference: full distance matrix, plain Python loop."""
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    centers = list(np.flatnonzero(labeled))
    picks, dists = [], []
    for _ in range(k):
        best, best_d = None, -1.0
        for i in range(x.shape[0]):
            if i in centers:
                continue
            di = d[i, centers].min()
            if di > best_d:
                best, best_d = i, di
        centers.append(best)
        picks.append(best)
        dists.append(best_d)
    return picks, dists


def test_k_center_on_a_line_picks_farthest_first():
    x = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    idx, dist = st.k_center_greedy(x, [0], 3)
    # 10 is farthest from {0}; then 3 (3 from 0, 7 from 10); then 1 and 2 tie at 1.0: lower index wins.
    assert idx.tolist() == [4, 3, 1]
    np.testing.assert_allclose(dist, [10.0, 3.0, 1.0])


def test_k_center_accepts_mask_and_never_returns_labeled():
    x = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    mask = np.array([False, False, False, False, True])
    idx, _ = st.k_center_greedy(x, mask, 10)
    assert sorted(idx.tolist()) == [0, 1, 2, 3]
    assert idx[0] == 0  # farthest from 10


def test_k_center_chunked_equals_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5))
    labeled = np.zeros(120, dtype=bool)
    labeled[rng.choice(120, 9, replace=False)] = True
    ref_idx, ref_d = _brute_force_k_center(x, labeled, 15)
    for chunk in (1, 7, 50, 4096):
        idx, d = st.k_center_greedy(x, labeled, 15, chunk_size=chunk)
        assert idx.tolist() == ref_idx
        np.testing.assert_allclose(d, ref_d, rtol=1e-9, atol=1e-9)


def test_k_center_no_labeled_seeded_first_pick():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    a, da = st.k_center_greedy(x, [], 5, random_state=11)
    b, _ = st.k_center_greedy(x, np.zeros(40, dtype=bool), 5, random_state=11)
    assert a.tolist() == b.tolist()
    assert np.isinf(da[0]) and np.all(np.isfinite(da[1:]))
    first_picks = {int(st.k_center_greedy(x, [], 1, random_state=s)[0][0]) for s in range(20)}
    assert len(first_picks) > 1
    # After the random first pick the rest is the brute-force greedy with that first pick as a center.
    mask = np.zeros(40, dtype=bool)
    mask[a[0]] = True
    assert a[1:].tolist() == _brute_force_k_center(x, mask, 4)[0]


def test_k_center_duplicates_and_edge_sizes():
    x = np.zeros((4, 2))
    idx, d = st.k_center_greedy(x, [0], 3)
    assert idx.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(d, 0.0)
    assert st.k_center_greedy(x, [0], 0)[0].tolist() == []
    assert st.k_center_greedy(x, [0, 1, 2, 3], 2)[0].tolist() == []


def test_k_center_bad_input():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="batch_size"):
        st.k_center_greedy(x, [0], -1)
    with pytest.raises(ValueError, match="chunk_size"):
        st.k_center_greedy(x, [0], 1, chunk_size=0)
    with pytest.raises(ValueError, match="labeled"):
        st.k_center_greedy(x, [9], 1)
    with pytest.raises(ValueError, match="features"):
        st.k_center_greedy(np.zeros(4), [0], 1)


# ------------------------------------------------------------------------------------------------
# mix
# ------------------------------------------------------------------------------------------------


def _mix_pool(n=100, seed=0):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(3), size=n)
    return proba, rng.uniform(size=n)


def test_mix_counts_per_component_no_duplicates_and_reasons():
    proba, err = _mix_pool()
    ent = st.entropy(proba)
    sel = st.mix([("entropy", 0.6, ent), ("error_model", 0.25, err), ("random", 0.15, None)], 20, rng=0)
    assert len(sel) == 20
    assert len(set(sel.indices.tolist())) == 20
    names = np.array(sel.strategies)
    assert [int((names == s).sum()) for s in ("entropy", "error_model", "random")] == [12, 5, 3]
    # The entropy picks are exactly the top-12 entropies, with their scores.
    assert sel.indices[:12].tolist() == st.select_top(ent, 12).tolist()
    np.testing.assert_array_equal(sel.scores[:12], ent[sel.indices[:12]])
    # Error-model picks are its best items not already taken, scores recorded.
    assert sel.indices[12:17].tolist() == st.select_top(err, 5, exclude=sel.indices[:12]).tolist()
    np.testing.assert_array_equal(sel.scores[12:17], err[sel.indices[12:17]])


def test_mix_is_seeded():
    proba, _ = _mix_pool()
    comps = [("entropy", 0.5, st.entropy(proba)), ("random", 0.5, None)]
    a = st.mix(comps, 30, rng=5)
    b = st.mix(comps, 30, rng=np.random.default_rng(5))
    c = st.mix(comps, 30, rng=6)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, c.indices)


def test_mix_largest_remainder_rounding():
    scores = np.arange(10, dtype=float)
    sel = st.mix([("a", 1, scores), ("b", 1, -scores), ("c", 1, scores)], 4)
    assert sel.strategies == ["a", "a", "b", "c"]
    assert sel.indices.tolist() == [9, 8, 0, 7]
    sel = st.mix([("a", 1, scores), ("b", 1, -scores), ("c", 1, scores)], 5)
    assert sel.strategies == ["a", "a", "b", "b", "c"]
    # Exact shares 2, 1.2, 0.8: the spare slot goes to the largest remainder (c), not the first.
    sel = st.mix([("a", 0.5, scores), ("b", 0.3, -scores), ("c", 0.2, scores)], 4)
    assert sel.strategies == ["a", "a", "b", "c"]


def test_mix_shortfall_filled_from_next_component():
    # "few" can offer only its 2 non-excluded items (the selector returns at most 2).
    def few(k, taken):
        avail = [i for i in (0, 1) if not taken[i]][:k]
        return np.array(avail, dtype=np.int64), np.ones(len(avail))

    scores = np.arange(10, dtype=float)
    sel = st.mix([("few", 0.5, few), ("top", 0.5, scores)], 8, n_items=10)
    assert sel.strategies == ["few"] * 2 + ["top"] * 6
    assert sel.indices.tolist() == [0, 1, 9, 8, 7, 6, 5, 4]
    # The last component's shortfall wraps round to the first.
    sel = st.mix([("top", 0.5, scores), ("few", 0.5, few)], 8, n_items=10)
    assert sel.strategies == ["top"] * 4 + ["few"] * 2 + ["top"] * 2
    assert sel.indices.tolist() == [9, 8, 7, 6, 0, 1, 5, 4]


def test_mix_pool_smaller_than_batch_and_zero_weight_unused():
    scores = np.array([0.1, 0.3, 0.2])
    sel = st.mix([("a", 1.0, scores), ("b", 0.0, scores)], 10)
    assert sel.indices.tolist() == [1, 2, 0]
    assert sel.strategies == ["a"] * 3
    assert len(st.mix([("a", 1.0, scores)], 0)) == 0


def test_mix_with_diversity_selector_treats_other_picks_as_centers():
    x = np.array([[0.0], [1.0], [5.0], [9.0], [10.0]])
    first = np.array([0.0, 0.0, 0.0, 0.0, 1.0])  # picks item 4 (x = 10)
    div = st.diversity_selector(x, [0])
    sel = st.mix([("top", 0.5, first), ("diversity", 0.5, div)], 2)
    assert sel.indices.tolist() == [4, 2]  # 5 is farthest from {0, 10}; without item 4 it would be 4 again
    assert sel.strategies == ["top", "diversity"]
    np.testing.assert_allclose(sel.scores, [1.0, 5.0])


def test_mix_bad_input():
    s = np.zeros(5)
    with pytest.raises(ValueError, match="batch_size"):
        st.mix([("a", 1, s)], -1)
    with pytest.raises(ValueError, match="non-negative"):
        st.mix([("a", -1, s), ("b", 2, s)], 2)
    with pytest.raises(ValueError, match="sum to more than 0"):
        st.mix([("a", 0, s)], 2)
    with pytest.raises(ValueError, match="empty"):
        st.mix([], 2)
    with pytest.raises(ValueError, match="expected 5"):
        st.mix([("a", 1, s), ("b", 1, np.zeros(4))], 2)
    with pytest.raises(ValueError, match="n_items"):
        st.mix([("random", 1, None)], 2, rng=0)
