"""annotation.intervals: the design-effect-corrected Wilson interval (hand cases, equal to Wilson where
nothing clusters, wider where labels of an item move together, near a seeded cluster bootstrap,
nominal coverage by simulation) and HLP against gold and against SME resolutions apart."""

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from annotation import intervals as iv
from annotation.quality import wilson_interval

nan = np.nan


def wilson(successes, n):
    return proportion_confint(successes, n, alpha=0.05, method="wilson")


# ------------------------------------------------------------------------------------------------
# clustered_wilson_interval
# ------------------------------------------------------------------------------------------------


def test_one_label_per_item_is_the_plain_wilson_interval():
    rng = np.random.default_rng(0)
    success = rng.random(57) < 0.7
    out = iv.clustered_wilson_interval(success, np.arange(57))
    assert out["design_effect"][0] == pytest.approx(1.0, abs=1e-12)
    low, high = wilson(int(success.sum()), 57)
    assert (out["ci_low"][0], out["ci_high"][0]) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    # ... and the same as the report's current Wilson interval.
    assert out["ci_low"][0] == pytest.approx(float(wilson_interval(int(success.sum()), 57)[0]), abs=1e-12)


def test_items_right_or_wrong_together_count_once_each():
    # 20 items x 5 labels; 16 items all right, 4 all wrong. p = 0.8, every label of an item agrees:
    # sum (s_c - p m_c)^2 = 16 * 1^2 + 4 * 4^2 = 80, n p (1-p) = 16, design effect 5, n_e = 20.
    success = np.repeat([1] * 16 + [0] * 4, 5)
    cluster = np.repeat(np.arange(20), 5)
    out = iv.clustered_wilson_interval(success, cluster)
    assert out["design_effect"][0] == pytest.approx(5.0)
    assert out["effective_n"][0] == pytest.approx(20.0)
    low, high = wilson(16, 20)  # the interval of 20 independent items
    assert out["ci_low"][0] == pytest.approx(low, abs=1e-12) and out["ci_high"][0] == pytest.approx(high, abs=1e-12)
    naive_low, naive_high = wilson(80, 100)
    assert out["ci_high"][0] - out["ci_low"][0] > 2 * (naive_high - naive_low)  # sqrt(5) = 2.24 times


def test_strong_within_item_correlation_is_wider_than_independent():
    # Items are easy or hard: an easy item's 4 labels are right 95 % of the time, a hard one's 30 %.
    rng = np.random.default_rng(1)
    easy = rng.random(150) < 0.7
    p_item = np.where(easy, 0.95, 0.3)
    success = rng.random((150, 4)) < p_item[:, None]
    out = iv.clustered_wilson_interval(success.ravel(), np.repeat(np.arange(150), 4))
    low, high = wilson(int(success.sum()), success.size)
    assert out["design_effect"][0] > 1.5
    assert out["ci_low"][0] < low and out["ci_high"][0] > high
    # Independent labels at the same rate: the correction stays close to nothing.
    flat = rng.random((150, 4)) < success.mean()
    indep = iv.clustered_wilson_interval(flat.ravel(), np.repeat(np.arange(150), 4))
    assert indep["design_effect"][0] < 1.3


def test_all_right_counts_items_not_labels_and_floor_is_one():
    out = iv.clustered_wilson_interval(np.ones(6, dtype=bool), np.repeat([0, 1], 3))
    assert out["design_effect"][0] == 3.0 and out["effective_n"][0] == 2.0
    assert out["ci_low"][0] == pytest.approx(wilson(2, 2)[0])
    # Anti-correlated labels (each item one right, one wrong) would give a design effect under 1.
    anti = iv.clustered_wilson_interval(np.tile([1, 0], 10), np.repeat(np.arange(10), 2))
    assert anti["design_effect"][0] == 1.0
    assert anti["ci_low"][0] == pytest.approx(wilson(10, 20)[0])


def test_groups_are_separate_and_match_one_group_calls():
    rng = np.random.default_rng(2)
    cluster = np.repeat(np.arange(90), 3)
    success = rng.random(cluster.size) < np.repeat(rng.random(90), 3)
    group = np.repeat(rng.integers(-1, 3, 90), 3)  # -1: in no group
    out = iv.clustered_wilson_interval(success, cluster, group, n_groups=4)
    assert out["n"][3] == 0 and np.isnan(out["estimate"][3]) and np.isnan(out["ci_low"][3])
    for g in range(3):
        alone = iv.clustered_wilson_interval(success[group == g], cluster[group == g])
        for key in ("successes", "n", "clusters", "estimate", "design_effect", "ci_low", "ci_high"):
            assert out[key][g] == pytest.approx(alone[key][0], abs=1e-12), key
    assert out["n"][:3].sum() == (group >= 0).sum()


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="0/1"):
        iv.clustered_wilson_interval(np.array([0, 2]), np.array([0, 1]))
    with pytest.raises(ValueError, match="same length"):
        iv.clustered_wilson_interval(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="group must lie"):
        iv.clustered_wilson_interval(np.array([0, 1]), np.array([0, 1]), np.array([0, 2]), n_groups=2)
    empty = iv.clustered_wilson_interval(np.zeros(0), np.zeros(0, dtype=int))
    assert empty["n"][0] == 0 and np.isnan(empty["ci_low"][0])


def cluster_bootstrap(success, cluster, n_boot, rng, level=0.95):
    """Reference: resample items with replacement, percentile interval of the label-level share."""
    items = np.unique(cluster)
    s_c = np.bincount(np.searchsorted(items, cluster), weights=success.astype(float))
    m_c = np.bincount(np.searchsorted(items, cluster)).astype(float)
    draws = rng.integers(0, items.size, size=(n_boot, items.size))
    shares = s_c[draws].sum(axis=1) / m_c[draws].sum(axis=1)
    return np.quantile(shares, [(1 - level) / 2, (1 + level) / 2])


def test_close_to_a_seeded_cluster_bootstrap():
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 6, 400)  # unequal numbers of labels per item
    cluster = np.repeat(np.arange(400), sizes)
    p_item = rng.beta(2.0, 0.8, 400)
    success = rng.random(cluster.size) < p_item[cluster]
    out = iv.clustered_wilson_interval(success, cluster)
    low, high = cluster_bootstrap(success, cluster, 4000, np.random.default_rng(0))
    assert out["ci_low"][0] == pytest.approx(low, abs=0.01)
    assert out["ci_high"][0] == pytest.approx(high, abs=0.01)
    naive = wilson(int(success.sum()), success.size)
    assert (high - low) > 1.2 * (naive[1] - naive[0])  # the bootstrap agrees the naive one is narrow


def coverage(correlated, seed, reps=400, n_items=80, per_item=3, p=0.8):
    rng = np.random.default_rng(seed)
    cluster = np.repeat(np.arange(n_items), per_item)
    hits_clustered = hits_naive = 0
    for _ in range(reps):
        # Correlated: each item has its own chance of being labelled right, Beta with mean p and
        # intra-item correlation 1 / (a + b + 1) = 0.5; the true label-level HLP is still p.
        p_item = rng.beta(p, 1 - p, n_items) if correlated else np.full(n_items, p)
        success = rng.random((n_items, per_item)) < p_item[:, None]
        out = iv.clustered_wilson_interval(success.ravel(), cluster)
        hits_clustered += out["ci_low"][0] <= p <= out["ci_high"][0]
        low, high = wilson(int(success.sum()), success.size)
        hits_naive += low <= p <= high
    return hits_clustered / reps, hits_naive / reps


@pytest.mark.parametrize("seed", [0, 1])
def test_covers_at_the_nominal_rate_on_independent_labels(seed):
    clustered, naive = coverage(correlated=False, seed=seed)
    assert 0.92 <= clustered <= 0.98, clustered  # observed 0.965, 0.9575
    assert abs(clustered - naive) <= 0.02  # nothing to correct: (almost) the plain interval


@pytest.mark.parametrize("seed", [0, 1])
def test_keeps_its_coverage_where_the_independent_interval_loses_it(seed):
    clustered, naive = coverage(correlated=True, seed=seed)
    assert clustered >= 0.90, clustered  # observed 0.93, 0.92 (80 items: a little under nominal)
    assert naive <= 0.88, naive  # observed 0.84, 0.815


# ------------------------------------------------------------------------------------------------
# hlp_by_truth_source
# ------------------------------------------------------------------------------------------------


def small_project():
    """5 items, labelers 0-2 (2 is also the SME, who resolves items 1, 2 and 3).

    item 0: gold 0;           labels 0:0, 1:0         -> gold: 2/2
    item 1: gold 1, res 1 (by 2); labels 0:1, 1:0, 2:1 -> gold: 2/3; resolution: 0 and 1 scored (1/2), 2's excluded
    item 2: res 0 (by 2);     labels 0:1, 1:1, 2:0    -> resolution: 0/2, 2's excluded
    item 3: res 2 (by 2);     labels 0:2              -> resolution: 1/1 (2 did not label it)
    item 4: nothing;          labels 0:0, 1:1         -> not scored
    """
    item = np.array([0, 0, 1, 1, 1, 2, 2, 2, 3, 4, 4])
    labeler = np.array([0, 1, 0, 1, 2, 0, 1, 2, 0, 0, 1])
    label = np.array([0, 0, 1, 0, 1, 1, 1, 0, 2, 0, 1])
    gold = np.array([0, 1, nan, nan, nan])
    resolution = np.array([nan, 1, 0, 2, nan])
    resolver = np.array([-1, 2, 2, 2, -1])
    return item, labeler, label, gold, resolution, resolver


def test_hlp_against_gold_and_resolutions_apart_sme_not_scored_against_self():
    out = iv.hlp_by_truth_source(*small_project())
    gold, res = out["gold"], out["resolution"]
    assert (gold["correct"][0], gold["scored_labels"][0], gold["scored_items"][0]) == (4, 5, 2)
    assert gold["accuracy"][0] == pytest.approx(0.8)
    assert (res["correct"][0], res["scored_labels"][0], res["scored_items"][0]) == (2, 5, 3)
    assert res["own_labels_excluded"][0] == 2  # the SME's labels on items 1 and 2
    assert out["interval_method"] == iv.INTERVAL_METHOD
    # The SME's own label on item 1 is still scored against gold (it is right there).
    item, labeler, label, g, r, resolver = small_project()
    without_sme = labeler != 2
    fewer = iv.hlp_by_truth_source(item[without_sme], labeler[without_sme], label[without_sme], g, r, resolver)
    assert fewer["gold"]["scored_labels"][0] == 4
    assert fewer["resolution"]["scored_labels"][0] == 5 and fewer["resolution"]["own_labels_excluded"][0] == 0
    # Were the SME not excluded, their two labels would score 2/2 against their own resolutions.
    anyone = iv.hlp_by_truth_source(item, labeler, label, g, r, np.full(5, -1))
    assert (anyone["resolution"]["correct"][0], anyone["resolution"]["scored_labels"][0]) == (4, 7)


def test_hlp_by_truth_class_and_by_slice():
    item, labeler, label, gold, resolution, resolver = small_project()
    per_class = iv.hlp_by_truth_source(item, labeler, label, gold, resolution, resolver, by_truth_class=3)
    np.testing.assert_array_equal(per_class["gold"]["scored_labels"], [2, 3, 0])
    np.testing.assert_array_equal(per_class["gold"]["correct"], [2, 2, 0])
    np.testing.assert_array_equal(per_class["resolution"]["scored_labels"], [2, 2, 1])  # res 0, 1, 2
    np.testing.assert_array_equal(per_class["resolution"]["correct"], [0, 1, 1])
    np.testing.assert_array_equal(per_class["resolution"]["own_labels_excluded"], [1, 1, 0])
    slices = np.array([0, 1, 1, -1, 0])
    by_slice = iv.hlp_by_truth_source(item, labeler, label, gold, resolution, resolver, slices, 2)
    np.testing.assert_array_equal(by_slice["gold"]["scored_labels"], [2, 3])
    np.testing.assert_array_equal(by_slice["resolution"]["scored_labels"], [0, 4])
    np.testing.assert_array_equal(by_slice["resolution"]["own_labels_excluded"], [0, 2])
    assert np.isnan(by_slice["resolution"]["accuracy"][0])
    with pytest.raises(ValueError, match="n_groups"):
        iv.hlp_by_truth_source(item, labeler, label, gold, resolution, resolver, slices)
    with pytest.raises(ValueError, match="one entry per item"):
        iv.hlp_by_truth_source(item, labeler, label, gold, resolution[:3], resolver)
