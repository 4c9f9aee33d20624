"""annotation.quality: hand-computed small cases with exact values, Wilson intervals against
statsmodels, per-labeler figures against plain-Python loops on seeded data, the confused-pair rule,
and degenerate input (NaN or empty, never a warning of any kind)."""

import json
import math
import warnings
from collections import Counter

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.proportion import proportion_confint

from annotation import agreement as ag
from annotation import quality as q

nan = np.nan


@pytest.fixture(autouse=True)
def _no_warnings():
    """Every test here fails on any warning, not only RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def triples(rows):
    """[(item, labeler, label)] -> three int arrays."""
    a = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return a[:, 0], a[:, 1], a[:, 2]


def seeded(n_items=300, n_labelers=6, n_classes=4, seed=0, p_label=0.6, accuracy=0.75):
    """Seeded synthetic labels as triples, a truth vector with gaps, and per-label attributes."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_classes, n_items)
    item, labeler = np.nonzero(rng.random((n_items, n_labelers)) < p_label)
    right = rng.random(item.size) < accuracy
    label = np.where(right, true[item], rng.integers(0, n_classes, item.size))
    truth = np.where(rng.random(n_items) < 0.4, true, nan).astype(float)
    return item.astype(np.int64), labeler.astype(np.int64), label.astype(np.int64), truth


# ------------------------------------------------------------------------------------------------
# Wilson interval
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("successes", "n"), [(0, 1), (1, 1), (0, 10), (10, 10), (3, 10), (50, 97), (1, 1000)])
def test_wilson_equals_statsmodels(successes, n):
    low, high = q.wilson_interval(successes, n)
    ref_low, ref_high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    assert float(low) == pytest.approx(ref_low, abs=1e-12)
    assert float(high) == pytest.approx(ref_high, abs=1e-12)


def test_wilson_vectorised_on_seeded_counts_and_nan_without_observations():
    rng = np.random.default_rng(3)
    n = rng.integers(1, 400, 200)
    n[:5] = 0
    s = (rng.random(200) * (n + 1)).astype(int).clip(0, n)
    low, high = q.wilson_interval(s, n)
    assert np.isnan(low[:5]).all() and np.isnan(high[:5]).all()
    ref_low, ref_high = proportion_confint(s[5:], n[5:], alpha=0.05, method="wilson")
    np.testing.assert_allclose(low[5:], ref_low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(high[5:], ref_high, rtol=0, atol=1e-12)
    assert ((low[5:] >= -1e-15) & (high[5:] <= 1 + 1e-15)).all()


def test_wilson_hand_value():
    # 8 of 10: centre (0.8 + z^2/20) / (1 + z^2/10), half z/(1 + z^2/10) sqrt(0.016 + z^2/400).
    z = q.WILSON_Z_95
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z / (1 + z * z / 10) * math.sqrt(0.8 * 0.2 / 10 + z * z / 400)
    low, high = q.wilson_interval(8, 10)
    assert float(low) == pytest.approx(centre - half, abs=1e-15)
    assert float(high) == pytest.approx(centre + half, abs=1e-15)
    assert float(low) == pytest.approx(0.4901625, abs=1e-7)  # the textbook 8/10 interval
    assert float(high) == pytest.approx(0.9433178, abs=1e-7)


# ------------------------------------------------------------------------------------------------
# Per labeler: hand cases
# ------------------------------------------------------------------------------------------------

# Items 0..3, truth [0, 1, none, 1]. Labeler 0: item 0 -> 0 (right), item 1 -> 0 (wrong), item 2 -> 1
# (no truth). Labeler 1: items 0, 1, 3 all right. Labeler 2: nothing.
HAND = [(0, 0, 0), (1, 0, 0), (2, 0, 1), (0, 1, 0), (1, 1, 1), (3, 1, 1)]
HAND_TRUTH = np.array([0, 1, nan, 1])


def test_labeler_accuracy_hand_case():
    item, labeler, label = triples(HAND)
    acc = q.labeler_accuracy(item, labeler, label, HAND_TRUTH, n_labelers=3)
    assert acc["scored"].tolist() == [2, 3, 0]
    assert acc["correct"].tolist() == [1, 3, 0]
    assert acc["accuracy"][:2].tolist() == [0.5, 1.0] and np.isnan(acc["accuracy"][2])
    low, high = proportion_confint(3, 3, method="wilson")
    assert (acc["ci_low"][1], acc["ci_high"][1]) == pytest.approx((low, high), abs=1e-12)
    assert np.isnan(acc["ci_low"][2]) and np.isnan(acc["ci_high"][2])


def test_labeler_agreement_hand_case():
    # item 0: A=0, B=0, C=1; item 1: A=1, B=0; item 2: A=0 alone.
    item, labeler, label = triples([(0, 0, 0), (0, 1, 0), (0, 2, 1), (1, 0, 1), (1, 1, 0), (2, 0, 0)])
    agr = q.labeler_agreement(item, labeler, label, n_items=3, n_labelers=3, n_classes=2)
    assert agr["pairs"].tolist() == [3, 3, 2]
    assert agr["agreeing_pairs"].tolist() == [1, 1, 0]
    assert agr["agreement"].tolist() == pytest.approx([1 / 3, 1 / 3, 0.0])
    # A: q = (2/3, 1/3) (said 0 in 2 pairs, 1 in 1); r = (2/3, 1/3) (the others said 0,1 | 0):
    # p_e = 4/9 + 1/9 = 5/9, p_o = 1/3, kappa = (1/3 - 5/9) / (4/9) = -1/2.
    assert agr["kappa"][0] == pytest.approx(-0.5, abs=1e-12)
    # C said 1 in both its pairs and the others said 0 in both: p_e = 0, kappa = p_o = 0.
    assert agr["kappa"][2] == pytest.approx(0.0, abs=1e-12)


def test_kappa_against_the_others_is_cohens_kappa_for_two_labelers():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 3, 200)
    b = np.where(rng.random(200) < 0.7, a, rng.integers(0, 3, 200))
    item = np.concatenate([np.arange(200), np.arange(200)])
    labeler = np.repeat([0, 1], 200)
    agr = q.labeler_agreement(item, labeler, np.concatenate([a, b]), 200, 2, 3)
    expected = cohen_kappa_score(a, b)
    assert agr["kappa"][0] == pytest.approx(expected, abs=1e-12)
    assert agr["kappa"][1] == pytest.approx(expected, abs=1e-12)
    assert agr["agreement"][0] == pytest.approx(np.mean(a == b), abs=1e-15)


def test_labeler_agreement_matches_a_plain_loop_on_seeded_data():
    item, labeler, label, _ = seeded()
    agr = q.labeler_agreement(item, labeler, label, 300, 6, 4)
    by_item = {}
    for i, j, lab in zip(item.tolist(), labeler.tolist(), label.tolist(), strict=True):
        by_item.setdefault(i, []).append((j, lab))
    pairs, agree = Counter(), Counter()
    for rows in by_item.values():
        for j, lab in rows:
            for j2, lab2 in rows:
                if j2 != j:
                    pairs[j] += 1
                    agree[j] += lab == lab2
    assert agr["pairs"].tolist() == [pairs[j] for j in range(6)]
    assert agr["agreeing_pairs"].tolist() == [agree[j] for j in range(6)]


def test_labeler_speed_hand_case():
    labeler = np.array([0, 0, 0, 0, 1, 2, 2])
    duration = np.array([1000, 3000, nan, 2000, nan, 500, 0])
    speed = q.labeler_speed(labeler, duration, n_labelers=4)
    assert speed["timed"].tolist() == [3, 0, 1, 0]
    assert speed["labels_per_hour"][0] == pytest.approx(3 * 3_600_000 / 6000)  # 1,800 an hour
    assert speed["median_seconds"][0] == 2.0
    assert speed["labels_per_hour"][2] == pytest.approx(7200.0)  # the 0 ms label is not counted
    assert np.isnan(speed["labels_per_hour"][[1, 3]]).all() and np.isnan(speed["median_seconds"][[1, 3]]).all()
    even = q.labeler_speed(np.array([0, 0]), np.array([1000.0, 4000.0]), 1)
    assert even["median_seconds"][0] == 2.5


# ------------------------------------------------------------------------------------------------
# Project HLP, groups
# ------------------------------------------------------------------------------------------------


def test_project_hlp_on_ground_truth_is_pooled_accuracy_with_labeler_mean_beside():
    item, labeler, label = triples(HAND)
    hlp = q.project_hlp(item, labeler, label, HAND_TRUTH, n_items=4, n_labelers=3, n_classes=2)
    assert hlp["basis"] == "ground_truth"
    assert (hlp["correct"], hlp["scored_labels"], hlp["scored_items"]) == (4, 5, 3)
    assert hlp["value"] == pytest.approx(4 / 5)
    assert hlp["labeler_mean"] == pytest.approx((0.5 + 1.0) / 2)
    assert (hlp["ci_low"], hlp["ci_high"]) == pytest.approx(proportion_confint(4, 5, method="wilson"), abs=1e-12)
    # Pairs: item 0 (0,0) agree, item 1 (0,1) disagree.
    assert (hlp["pairs"], hlp["pairwise_agreement"]) == (2, 0.5)


def test_project_hlp_without_truth_is_the_named_pairwise_proxy():
    item, labeler, label = triples(HAND)
    hlp = q.project_hlp(item, labeler, label, np.full(4, nan), 4, 3, 2)
    assert hlp["basis"] == "pairwise_agreement"
    assert hlp["value"] == 0.5 == hlp["pairwise_agreement"]
    assert np.isnan(hlp["ci_low"]) and np.isnan(hlp["labeler_mean"]) and hlp["labelers_scored"] == 0
    assert "Proxy" in q.HLP_LABELS["pairwise_agreement"]


def test_group_quality_hand_case():
    # Groups: items 0, 1 -> g0; item 3 -> g1; item 2 -> none.
    item, _, label = triples(HAND)
    unsure = np.array([0, 1, 0, 0, 0, 1], dtype=bool)
    ambiguity = np.array([False, True])  # class 1 is the ambiguity class here
    g = q.group_quality(item, label, HAND_TRUTH, np.array([0, 0, -1, 1]), 2, 2, ambiguity, unsure)
    assert g["items"].tolist() == [2, 1]
    assert g["labels"].tolist() == [4, 1]
    assert g["truth_items"].tolist() == [2, 1]
    assert g["scored"].tolist() == [4, 1] and g["correct"].tolist() == [3, 1]
    assert g["accuracy"].tolist() == [0.75, 1.0]
    assert g["pairs"].tolist() == [2, 0] and g["agreeing_pairs"].tolist() == [1, 0]
    assert g["pairwise_agreement"][0] == 0.5 and np.isnan(g["pairwise_agreement"][1])
    assert g["ambiguity_labels"].tolist() == [1, 1]  # label 1 on item 1 (g0) and on item 3 (g1)
    assert g["unsure_share"].tolist() == [0.25, 1.0]


def test_reference_class_is_truth_else_majority():
    counts = np.array([[2, 1], [0, 3], [1, 1], [0, 0]])
    ref = q.reference_classes(counts, np.array([1, nan, nan, nan]), random_state=0)
    assert ref[0] == 1 and ref[1] == 1 and ref[2] in (0, 1) and ref[3] == -1


# ------------------------------------------------------------------------------------------------
# Ambiguity: confused pairs and their rule
# ------------------------------------------------------------------------------------------------


def two_label_items(spec):
    """[(label a, label b, copies)] -> triples of items each labelled by two labelers."""
    rows, i = [], 0
    for a, b, copies in spec:
        for _ in range(copies):
            rows += [(i, 0, a), (i, 1, b)]
            i += 1
    return (*triples(rows), i)


MERGE_SPEC = [(0, 1, 5), (0, 0, 5), (1, 1, 5), (2, 2, 10)]  # classes 0/1 confused, 2 clear; 3 = unclear


def test_confused_pair_exact_evidence_and_merge():
    item, _, label, n = two_label_items(MERGE_SPEC)
    counts = ag.class_counts_from_triples(item, label, n, 4)
    confusion = ag.labeler_confusion_from_counts(counts)
    amb = np.array([False, False, False, True])
    (pair,) = q.confused_pairs(confusion, amb, np.zeros(n, int), counts.sum(axis=1), counts)
    assert (pair["a"], pair["b"], pair["disagreements"], pair["items"]) == (0, 1, 5, 5)
    # Row 0 of C: 10 (agreeing ordered pairs on 0) + 5 = 15; P(1|0) = 5/15.
    assert pair["p_b_given_a"] == pytest.approx(1 / 3) and pair["p_a_given_b"] == pytest.approx(1 / 3)
    # Pairs involving 0: 5 agreeing + 5 disagreeing = 10, same for 1; 5 / (10 + 10 - 5).
    assert pair["rate"] == pytest.approx(1 / 3)
    assert pair["uncertain_share"] == 0.0
    assert pair["action"] == "merge"


def test_confused_pair_with_many_unsure_labels_is_borderline():
    item, _, label, n = two_label_items(MERGE_SPEC)
    counts = ag.class_counts_from_triples(item, label, n, 4)
    confusion = ag.labeler_confusion_from_counts(counts)
    uncertain = np.zeros(n, int)
    uncertain[:5] = 1  # one of the two labels on each disputed item is flagged unsure: 50 %
    amb = np.array([False, False, False, True])
    (pair,) = q.confused_pairs(confusion, amb, uncertain, counts.sum(axis=1), counts)
    assert pair["uncertain_share"] == 0.5
    assert pair["action"] == "borderline" and "ambiguity class" in pair["reason"]
    (no_class,) = q.confused_pairs(confusion, np.zeros(4, bool), uncertain, counts.sum(axis=1), counts)
    assert no_class["action"] == "borderline" and "add a borderline class" in no_class["reason"]


def test_two_class_project_is_never_told_to_merge_and_weak_pairs_are_not_listed():
    item, _, label, n = two_label_items([(0, 1, 5), (0, 0, 5), (1, 1, 5)])
    confusion = ag.labeler_confusion_from_counts(ag.class_counts_from_triples(item, label, n, 2))
    (pair,) = q.confused_pairs(confusion, np.zeros(2, bool))
    assert pair["action"] == "clarify" and pair["items"] is None and math.isnan(pair["uncertain_share"])
    # 2 disagreements are below the minimum of 3; a 4 % rate is below the 5 % minimum.
    item, _, label, n = two_label_items([(0, 1, 2), (0, 0, 5), (1, 1, 5)])
    confusion = ag.labeler_confusion_from_counts(ag.class_counts_from_triples(item, label, n, 2))
    assert q.confused_pairs(confusion, np.zeros(2, bool)) == []
    item, _, label, n = two_label_items([(0, 1, 4), (0, 0, 50), (1, 1, 50)])
    confusion = ag.labeler_confusion_from_counts(ag.class_counts_from_triples(item, label, n, 2))
    assert q.confused_pairs(confusion, np.zeros(2, bool)) == []  # 4 / 104 < 5 %
    assert q.confused_pairs(confusion, np.zeros(2, bool), min_rate=0.0)[0]["disagreements"] == 4


def test_pairs_with_an_ambiguity_class_are_not_listed_and_order_is_by_rate():
    spec = [(0, 3, 20), (0, 1, 4), (1, 2, 8), (0, 0, 10), (1, 1, 10), (2, 2, 10)]
    item, _, label, n = two_label_items(spec)
    confusion = ag.labeler_confusion_from_counts(ag.class_counts_from_triples(item, label, n, 4))
    pairs = q.confused_pairs(confusion, np.array([False, False, False, True]))
    assert [(p["a"], p["b"]) for p in pairs] == [(1, 2), (0, 1)]
    assert pairs[0]["rate"] > pairs[1]["rate"]


# ------------------------------------------------------------------------------------------------
# Disputed items, entropy
# ------------------------------------------------------------------------------------------------


def test_label_entropy_exact_values():
    h = q.label_entropy(np.array([[1, 1, 0], [2, 1, 0], [1, 1, 1], [3, 0, 0], [0, 0, 0]]))
    assert h[0] == pytest.approx(1.0)
    assert h[1] == pytest.approx(-(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3))
    assert h[2] == pytest.approx(math.log2(3))
    assert h[3] == 0.0 and not math.copysign(1, h[3]) < 0
    assert np.isnan(h[4])


def test_disputed_items_order_and_filters():
    counts = np.array([[1, 1, 0], [2, 1, 0], [1, 1, 1], [3, 0, 0], [0, 0, 0], [2, 2, 0], [1, 0, 0]])
    # Entropy: item 2 (log2 3) > items 0 and 5 (1 bit; 5 has more labels) > item 1; 3 is unanimous,
    # 4 and 6 have fewer than two labels.
    assert q.disputed_items(counts).tolist() == [2, 5, 0, 1]
    assert q.disputed_items(counts, top=2).tolist() == [2, 5]
    assert q.disputed_items(counts, min_labels=4).tolist() == [5]
    assert q.disputed_items(np.zeros((0, 3), int)).tolist() == []


# ------------------------------------------------------------------------------------------------
# Agreement by guideline version
# ------------------------------------------------------------------------------------------------


def test_agreement_by_version_pairs_only_within_a_version():
    # v1: items 0, 1 labelled by two labelers who agree. v2: item 0 again by a third and fourth
    # labeler who disagree. Pairs across versions (item 0: v1 vs v2) do not count.
    item, labeler, label = triples([(0, 0, 0), (0, 1, 0), (1, 0, 1), (1, 1, 1), (0, 2, 0), (0, 3, 1)])
    version = np.array([1, 1, 1, 1, 2, 2])
    truth = np.array([0, 1])
    rows = q.agreement_by_version(item, labeler, label, version, truth, 2, 2, np.zeros(2, bool), np.zeros(6, bool))
    v1, v2 = rows
    assert (v1["version"], v1["labels"], v1["labelers"], v1["paired_items"], v1["pairs"]) == (1, 4, 2, 2, 2)
    assert v1["percent_agreement"] == 1.0 and v1["accuracy"] == 1.0 and v1["krippendorff_alpha"] == 1.0
    assert (v2["version"], v2["pairs"], v2["percent_agreement"], v2["accuracy"]) == (2, 1, 0.0, 0.5)
    # One item, two labels that differ: Fleiss P = 0 against P_e = 1/2 gives -1; alpha (n = 2) gives 0.
    assert v2["fleiss_kappa"] == -1.0 and v2["krippendorff_alpha"] == 0.0
    assert v2["scored"] == 2 and v2["correct"] == 1


def test_agreement_by_version_equals_the_metrics_on_each_subset():
    item, labeler, label, truth = seeded(seed=4)
    version = np.random.default_rng(5).choice([-1, 1, 2], size=item.size)
    rows = q.agreement_by_version(item, labeler, label, version, truth, 300, 4, np.zeros(4, bool), version == 2)
    assert [r["version"] for r in rows] == [-1, 1, 2]
    for row in rows:
        sel = version == row["version"]
        dense = np.full((300, 6), nan)
        dense[item[sel], labeler[sel]] = label[sel]
        assert row["fleiss_kappa"] == pytest.approx(ag.fleiss_kappa(dense, 4), abs=1e-12)
        assert row["krippendorff_alpha"] == pytest.approx(
            krippendorff.alpha(reliability_data=dense.T, level_of_measurement="nominal"), abs=1e-9
        )
        assert row["unsure_share"] == (1.0 if row["version"] == 2 else 0.0)


# ------------------------------------------------------------------------------------------------
# The whole report
# ------------------------------------------------------------------------------------------------


def make_input(item, labeler, label, truth, n_classes, *, ambiguity=None, unsure=None, slices=None, version=None):
    n_items, n_labelers = len(truth), int(labeler.max(initial=-1)) + 1
    return q.QualityInput(
        item_idx=item,
        labeler_idx=labeler,
        label=label,
        unsure=np.zeros(item.size, bool) if unsure is None else unsure,
        duration_ms=np.full(item.size, 1500.0),
        version=np.ones(item.size, np.int64) if version is None else version,
        truth=np.asarray(truth, dtype=float),
        truth_source=np.where(np.isnan(truth), 0, 1),
        class_names=[f"c{k}" for k in range(n_classes)],
        ambiguity=np.zeros(n_classes, bool) if ambiguity is None else ambiguity,
        labeler_names=[f"labeler {j}" for j in range(n_labelers)],
        labeler_ids=np.arange(n_labelers) + 100,
        item_ids=np.arange(n_items) + 1000,
        item_names=[f"item-{i}" for i in range(n_items)],
        slices=slices or {},
    )


def test_report_matches_reference_packages_and_plain_loops_on_seeded_data():
    item, labeler, label, truth = seeded(seed=11)
    rng = np.random.default_rng(12)
    codes = rng.integers(-1, 3, 300)
    report = q.compute_report(make_input(item, labeler, label, truth, 4, slices={"noise": (codes, ["a", "b", "c"])}))
    json.dumps(report, allow_nan=False)

    dense = np.full((300, 6), nan)
    dense[item, labeler] = label
    assert report["agreement"]["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=dense.T, level_of_measurement="nominal"), abs=1e-9
    )
    assert report["agreement"]["fleiss_kappa"] == pytest.approx(ag.fleiss_kappa(dense, 4), abs=1e-12)

    # Per labeler, by plain loops.
    for row in report["labelers"]:
        j = row["id"] - 100
        mine = [(i, lab) for i, jj, lab in zip(item, labeler, label, strict=True) if jj == j]
        scored = [(i, lab) for i, lab in mine if not math.isnan(truth[i])]
        correct = sum(lab == truth[i] for i, lab in scored)
        assert (row["labels"], row["scored"], row["correct"]) == (len(mine), len(scored), correct)
        assert row["accuracy"] == pytest.approx(correct / len(scored))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(
            proportion_confint(correct, len(scored), method="wilson"), abs=1e-12
        )
        assert row["labels_per_hour"] == pytest.approx(2400.0) and row["median_seconds"] == 1.5

    # Project HLP by a plain loop.
    on_truth = [(i, lab) for i, lab in zip(item, label, strict=True) if not math.isnan(truth[i])]
    assert report["hlp"]["value"] == pytest.approx(sum(lab == truth[i] for i, lab in on_truth) / len(on_truth))

    # Slices: labelled items of each value.
    labelled = set(item.tolist())
    for row in report["slices"][0]["values"]:
        code = ["a", "b", "c"].index(row["value"])
        assert row["items"] == sum(1 for i in labelled if codes[i] == code)


def test_report_min_slice_items_hides_small_values():
    item, labeler, label, truth = seeded(seed=2)
    codes = np.where(np.arange(300) < 5, 1, 0)  # value "rare" has at most 5 items
    inp = make_input(item, labeler, label, truth, 4, slices={"k": (codes, ["common", "rare"])})
    report = q.compute_report(inp, q.ReportSettings(min_slice_items=20))
    (key,) = report["slices"]
    assert [v["value"] for v in key["values"]] == ["common"] and key["values_below_min_items"] == 1
    report = q.compute_report(inp, q.ReportSettings(min_slice_items=1))
    assert [v["value"] for v in report["slices"][0]["values"]] == ["common", "rare"]


def test_report_consensus_scores_only_gold_items_that_have_labels():
    # Three labelers, four items; gold on items 0-2 (item 2 unlabelled is not scored).
    item, labeler, label = triples([(0, 0, 1), (0, 1, 1), (0, 2, 0), (1, 0, 0), (1, 1, 0), (3, 0, 1)])
    truth = np.array([1, 0, 1, nan])
    report = q.compute_report(make_input(item, labeler, label, truth, 2))
    c = report["consensus"]
    assert c["gold_items"] == 2
    assert (c["majority_vote"]["correct"], c["majority_vote"]["scored"], c["majority_vote"]["ties"]) == (2, 2, 0)
    assert c["dawid_skene"]["scored"] == 2


@pytest.mark.parametrize(
    "case",
    ["no labels", "one labeler", "one class", "no truth", "all ambiguity", "single label per item"],
)
def test_degenerate_reports_are_json_safe_nan_as_none_and_warning_free(case):
    if case == "no labels":
        item = labeler = label = np.zeros(0, np.int64)
        truth = np.zeros(0)
    elif case == "one labeler":
        item, labeler, label = np.arange(5), np.zeros(5, np.int64), np.array([0, 1, 0, 1, 1])
        truth = np.array([0, 1, 1, nan, 1])
    elif case == "one class":
        item, labeler, label = np.repeat(np.arange(4), 2), np.tile([0, 1], 4), np.zeros(8, np.int64)
        truth = np.full(4, nan)
    elif case == "no truth":
        item, labeler, label, _ = seeded(n_items=20, seed=1)
        truth = np.full(20, nan)
    elif case == "all ambiguity":
        item, labeler, label = np.repeat(np.arange(3), 2), np.tile([0, 1], 3), np.full(6, 2)
        truth = np.array([0, 1, 0])
    else:
        item, labeler, label = np.arange(6), np.arange(6) % 3, np.array([0, 1, 2, 0, 1, 2])
        truth = np.array([0, 1, 2, 1, nan, nan])
    amb = np.array([False, False, True]) if case == "all ambiguity" else None
    k = 3 if case in ("all ambiguity", "single label per item") else (4 if case == "no truth" else 2)
    report = q.compute_report(make_input(item, labeler, label, truth, k, ambiguity=amb))
    text = json.dumps(report, allow_nan=False)
    assert "NaN" not in text
    a = report["agreement"]
    if case in ("no labels", "one labeler", "single label per item"):
        assert a["krippendorff_alpha"] is None and a["fleiss_kappa"] is None and a["percent_agreement"] is None
        assert report["disputed_items"] == [] and report["ambiguity"]["confused_pairs"] == []
    if case == "no labels":
        assert report["hlp"]["basis"] is None and report["hlp"]["value"] is None and report["labelers"] == []
        assert report["guideline_versions"] == [] and report["consensus"]["gold_items"] == 0
    if case == "one class":
        assert a["krippendorff_alpha"] is None and a["percent_agreement"] == 1.0
        assert report["hlp"]["basis"] == "pairwise_agreement" and report["hlp"]["value"] == 1.0
        assert all(r["kappa"] is None for r in report["labelers"])
    if case == "no truth":
        assert report["hlp"]["basis"] == "pairwise_agreement"
        assert all(r["accuracy"] is None and r["ci_low"] is None for r in report["labelers"])
        assert report["consensus"]["majority_vote"]["accuracy"] is None
    if case == "all ambiguity":
        assert report["hlp"]["value"] == 0.0 and report["ambiguity"]["ambiguity_share"] == 1.0
        assert report["confusion"]["row_share"][0] == [None, None, None]


def test_json_safe():
    out = q.json_safe({"a": np.float64(nan), "b": [np.int64(3), np.inf, 1.5], "c": np.array([[1.0, nan]])})
    assert out == {"a": None, "b": [3, None, 1.5], "c": [[1.0, None]]}
    assert isinstance(out["b"][0], int)


def test_group_and_project_intervals_widen_when_an_items_labels_agree_with_each_other():
    """Three labels per item that always agree carry one item's worth of evidence, not three: the
    interval is the Wilson interval of the items, wider than the one of the labels. With one label
    per item it is the plain Wilson interval (statsmodels)."""
    n_items, k = 30, 2
    truth = np.zeros(n_items)
    right = np.arange(n_items) % 3 != 0  # 20 of 30 items labelled right, by all three labelers
    item = np.repeat(np.arange(n_items), 3)
    labeler = np.tile(np.arange(3), n_items)
    label = np.where(right[item], 0, 1)
    group = np.zeros(n_items, dtype=np.int64)
    no_ambiguity, not_unsure = np.zeros(k, dtype=bool), np.zeros(item.size, dtype=bool)

    g = q.group_quality(item, label, truth, group, 1, k, no_ambiguity, not_unsure)
    items_low, items_high = proportion_confint(20, 30, method="wilson")
    labels_low, labels_high = proportion_confint(60, 90, method="wilson")
    assert g["accuracy"][0] == pytest.approx(60 / 90)
    assert g["ci_low"][0] == pytest.approx(items_low) and g["ci_high"][0] == pytest.approx(items_high)
    assert g["ci_high"][0] - g["ci_low"][0] > labels_high - labels_low
    hlp = q.project_hlp(item, labeler, label, truth, n_items, 3, k)
    assert (hlp["ci_low"], hlp["ci_high"]) == pytest.approx((items_low, items_high))

    one = np.arange(n_items)  # one label per item: nothing to widen
    single = q.group_quality(one, np.where(right, 0, 1), truth, group, 1, k, no_ambiguity, np.zeros(n_items, bool))
    assert (single["ci_low"][0], single["ci_high"][0]) == pytest.approx((items_low, items_high))
    assert single["design_effect"][0] == pytest.approx(1.0)
