"""annotation.agreement: exact hand-worked cases, equality (1e-9) with scikit-learn, statsmodels and the
krippendorff package on seeded random data and on the six crowd datasets, brute-force pair counts,
degenerate input (NaN, no warning of any kind) and bad input (ValueError)."""

import itertools
import warnings
from collections import Counter

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from annotation import agreement as ag
from tests.unit import crowd_arrays

TOL = 1e-9
nan = np.nan


# ------------------------------------------------------------------------------------------------
# Independent references written out plainly (Python loops over items and pairs)
# ------------------------------------------------------------------------------------------------


def item_labels(labels):
    """Per item, the list of its non-missing labels as ints."""
    return [row[~np.isnan(row)].astype(int).tolist() for row in np.asarray(labels, dtype=float)]


def brute_force_confusion(labels, k):
    """(K, K) counts of ordered pairs of different labelers on the same item."""
    c = np.zeros((k, k), dtype=np.int64)
    for values in item_labels(labels):
        for a, b in itertools.permutations(values, 2):
            c[a, b] += 1
    return c


def brute_force_percent_agreement(labels):
    agree = pairs = 0
    for values in item_labels(labels):
        for a, b in itertools.combinations(values, 2):
            pairs += 1
            agree += a == b
    return agree / pairs


def loop_fleiss_varying(labels, k):
    """The docstring's generalisation of Fleiss' kappa, item by item."""
    p_items, totals = [], Counter()
    for values in item_labels(labels):
        n = len(values)
        if n < 2:
            continue
        counts = Counter(values)
        p_items.append(sum(c * (c - 1) for c in counts.values()) / (n * (n - 1)))
        totals.update(counts)
    grand = sum(totals.values())
    p_e = sum((totals[j] / grand) ** 2 for j in range(k))
    return (sum(p_items) / len(p_items) - p_e) / (1 - p_e)


def statsmodels_table(labels, k):
    """Subjects x categories table for statsmodels, built row by row from the raw labels."""
    return np.array([np.bincount(values, minlength=k) for values in item_labels(labels)])


def sklearn_kappa_on_shared(a, b):
    both = ~(np.isnan(a) | np.isnan(b))
    return cohen_kappa_score(a[both].astype(int), b[both].astype(int))


def random_labels(seed, n_items=60, n_labelers=6, n_classes=3, p_missing=0.3, accuracy=0.6):
    """Seeded labels that agree more than chance: each labeler copies a hidden truth with
    probability `accuracy`, else picks a class at random; cells go missing with `p_missing`."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(n_classes, size=n_items)
    copy = rng.random((n_items, n_labelers)) < accuracy
    noise = rng.integers(n_classes, size=(n_items, n_labelers))
    labels = np.where(copy, truth[:, None], noise).astype(float)
    labels[rng.random((n_items, n_labelers)) < p_missing] = np.nan
    return labels


def assert_no_warnings(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


# ------------------------------------------------------------------------------------------------
# Hand-worked example, exact values
# ------------------------------------------------------------------------------------------------

# Three items, three labelers, two classes:
#
#            lab0 lab1 lab2     counts (class 0, class 1)   n_i
#   item 0     0    0    1      (2, 1)                        3
#   item 1     1    1    1      (0, 3)                        3
#   item 2     0    1    -      (1, 1)                        2
#
# Unordered pairs: item 0 has 3 (1 agrees), item 1 has 3 (3 agree), item 2 has 1 (0 agree)
#   percent agreement = 4 / 7.
# Ordered pairs (labeler_confusion): item 0 adds [[2, 2], [2, 0]], item 1 adds [[0, 0], [0, 6]],
#   item 2 adds [[0, 1], [1, 0]]  ->  [[2, 3], [3, 6]]  (sum 14 = 2 x 7 pairs).
# Specific agreement: class 0: 2 / (2 + 3) = 2/5; class 1: 6 / (3 + 6) = 2/3.
# Fleiss: P_i = 2/6, 6/6, 0/2 -> P = 4/9; class totals (3, 5) of 8 -> P_e = (9 + 25)/64 = 17/32;
#   kappa = (4/9 - 17/32) / (1 - 17/32) = (-25/288) / (15/32) = -5/27.
# Krippendorff: o_00 = 2*1/2 = 1 (item 0), o_11 = 3*2/2 = 3 (item 1); n_k = (3, 5), n = 8;
#   alpha = 1 - (n - 1)(n - sum o_kk) / (n^2 - sum n_k^2) = 1 - 7 * 4 / (64 - 34) = 1/15.
# Cohen lab0 vs lab1 on all 3 items: a = 0,1,0; b = 0,1,1: p_o = 2/3, p_a = (2/3, 1/3),
#   p_b = (1/3, 2/3), p_e = 4/9 -> kappa = (2/9) / (5/9) = 2/5.
# Cohen lab0 vs lab2 on items 0, 1: a = 0,1; c = 1,1: p_o = 1/2, p_e = 1/2*0 + 1/2*1 = 1/2 -> 0.
#   lab1 vs lab2 likewise 0. lab2 against itself used one class only -> NaN.
HAND = np.array([[0, 0, 1], [1, 1, 1], [0, 1, nan]])


def test_hand_example_exact_values():
    assert ag.percent_agreement(HAND) == pytest.approx(4 / 7, abs=TOL)
    np.testing.assert_array_equal(ag.labeler_confusion(HAND, 2), [[2, 3], [3, 6]])
    np.testing.assert_allclose(ag.specific_agreement(HAND, 2), [2 / 5, 2 / 3], atol=TOL)
    assert ag.fleiss_kappa(HAND, 2) == pytest.approx(-5 / 27, abs=TOL)
    assert ag.krippendorff_alpha(HAND) == pytest.approx(1 / 15, abs=TOL)
    assert ag.cohen_kappa(HAND[:, 0], HAND[:, 1]) == pytest.approx(2 / 5, abs=TOL)
    assert ag.cohen_kappa(HAND[:, 0], HAND[:, 2]) == pytest.approx(0.0, abs=TOL)
    expected = np.array([[1, 2 / 5, 0], [2 / 5, 1, 0], [0, 0, nan]])
    np.testing.assert_allclose(ag.pairwise_cohen_kappa(HAND), expected, atol=TOL)


def test_hand_example_matches_references():
    assert ag.krippendorff_alpha(HAND) == pytest.approx(
        krippendorff.alpha(reliability_data=HAND.T, level_of_measurement="nominal"), abs=TOL
    )
    assert ag.cohen_kappa(HAND[:, 0], HAND[:, 1]) == pytest.approx(cohen_kappa_score([0, 1, 0], [0, 1, 1]), abs=TOL)
    # statsmodels needs equal counts: the first two items have 3 labels each.
    assert ag.fleiss_kappa(HAND[:2], 2) == pytest.approx(sm_fleiss_kappa([[2, 1], [0, 3]]), abs=TOL)


def test_published_examples():
    # Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories, kappa 0.210.
    table = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert ag.fleiss_kappa_from_counts(table) == pytest.approx(0.20993, abs=5e-6)
    assert ag.fleiss_kappa_from_counts(table) == pytest.approx(sm_fleiss_kappa(table), abs=TOL)
    # Krippendorff's example with missing values (the krippendorff package's docstring): 0.691358.
    data = np.array(
        [
            [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
            [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
            [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
        ]
    )  # (coders, units); class 0 unused
    assert ag.krippendorff_alpha(data.T) == pytest.approx(0.691358, abs=5e-7)


# ------------------------------------------------------------------------------------------------
# Seeded random data against the references
# ------------------------------------------------------------------------------------------------

SEEDS = [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", SEEDS)
def test_cohen_kappa_matches_sklearn_random(seed):
    labels = random_labels(seed, n_items=40, n_labelers=6, n_classes=4, p_missing=0.4)
    pairwise = ag.pairwise_cohen_kappa(labels)
    checked = 0
    for j, other in itertools.product(range(6), repeat=2):
        a, b = labels[:, j], labels[:, other]
        expected = sklearn_kappa_on_shared(a, b)
        assert ag.cohen_kappa(a, b) == pytest.approx(expected, abs=TOL)
        assert pairwise[j, other] == pytest.approx(expected, abs=TOL)
        checked += 1
    assert checked == 36
    np.testing.assert_array_equal(pairwise, pairwise.T)


@pytest.mark.parametrize("seed", SEEDS)
def test_fleiss_kappa_matches_statsmodels_random(seed):
    # statsmodels' fleiss_kappa asserts the same number of ratings per subject: complete data.
    labels = random_labels(seed, n_items=50, n_labelers=7, n_classes=4, p_missing=0.0)
    expected = sm_fleiss_kappa(statsmodels_table(labels, 4))
    assert ag.fleiss_kappa(labels, 4) == pytest.approx(expected, abs=TOL)
    # Equal counts with missing cells: every item labelled by exactly 3 of 8 labelers.
    rng = np.random.default_rng(seed)
    full = random_labels(seed + 100, n_items=50, n_labelers=8, n_classes=3, p_missing=0.0)
    keep = np.argsort(rng.random((50, 8)), axis=1)[:, :3]
    sparse_labels = np.full_like(full, nan)
    np.put_along_axis(sparse_labels, keep, np.take_along_axis(full, keep, axis=1), axis=1)
    expected = sm_fleiss_kappa(statsmodels_table(sparse_labels, 3))
    assert ag.fleiss_kappa(sparse_labels, 3) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_fleiss_kappa_varying_counts_random(seed):
    labels = random_labels(seed, n_items=80, n_labelers=6, n_classes=3, p_missing=0.5)
    n = (~np.isnan(labels)).sum(axis=1)
    assert len(set(n[n >= 2])) > 1  # genuinely varying
    with pytest.raises(AssertionError):  # statsmodels does not support it
        sm_fleiss_kappa(statsmodels_table(labels[n >= 2], 3))
    assert ag.fleiss_kappa(labels, 3) == pytest.approx(loop_fleiss_varying(labels, 3), abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_krippendorff_alpha_matches_package_random(seed):
    labels = random_labels(seed, n_items=70, n_labelers=5, n_classes=4, p_missing=0.45)
    expected = krippendorff.alpha(reliability_data=labels.T, level_of_measurement="nominal")
    assert ag.krippendorff_alpha(labels) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_pair_counts_match_brute_force_random(seed):
    labels = random_labels(seed, n_items=50, n_labelers=5, n_classes=3, p_missing=0.4)
    confusion = brute_force_confusion(labels, 3)
    np.testing.assert_array_equal(ag.labeler_confusion(labels, 3), confusion)
    assert ag.percent_agreement(labels) == pytest.approx(brute_force_percent_agreement(labels), abs=TOL)
    np.testing.assert_allclose(
        ag.specific_agreement(labels, 3), np.diag(confusion) / confusion.sum(axis=1), atol=TOL, rtol=0
    )


def test_specific_agreement_two_labelers_is_2a_over_2a_b_c():
    labels = random_labels(7, n_items=200, n_labelers=2, n_classes=3, p_missing=0.2)
    a, b = labels[:, 0], labels[:, 1]
    both = ~(np.isnan(a) | np.isnan(b))
    a, b = a[both], b[both]
    for k in range(3):
        both_k = np.sum((a == k) & (b == k))
        one_k = np.sum((a == k) != (b == k))
        assert ag.specific_agreement(labels, 3)[k] == pytest.approx(2 * both_k / (2 * both_k + one_k), abs=TOL)


def test_counts_from_triples_equal_dense_counts():
    labels = random_labels(11, n_items=30, n_labelers=4, n_classes=3, p_missing=0.3)
    item_idx, labeler_idx, label = ag.label_triples(labels, 3)
    np.testing.assert_array_equal(labels[item_idx, labeler_idx], label)
    counts = ag.class_counts_from_triples(item_idx, label, 30, 3)
    np.testing.assert_array_equal(counts, ag.class_counts(labels, 3))
    np.testing.assert_array_equal(counts, statsmodels_table(labels, 3))
    assert ag.fleiss_kappa_from_counts(counts) == ag.fleiss_kappa(labels, 3)
    assert ag.krippendorff_alpha_from_counts(counts) == ag.krippendorff_alpha(labels)
    assert ag.percent_agreement_from_counts(counts) == ag.percent_agreement(labels)


def test_integer_arrays_and_lists_are_accepted():
    labels = [[0, 1, 1], [1, 1, 1], [0, 0, 1]]
    assert ag.krippendorff_alpha(labels) == ag.krippendorff_alpha(np.array(labels, dtype=float))


# ------------------------------------------------------------------------------------------------
# Degenerate input: NaN, never a crash or a warning
# ------------------------------------------------------------------------------------------------

DEGENERATE = {
    "one labeler": np.array([[0.0], [1.0], [1.0]]),
    "all missing": np.full((4, 3), nan),
    "no items": np.empty((0, 3)),
    "no labelers": np.empty((3, 0)),
    "no item labelled twice": np.array([[0, nan, nan], [nan, 1, nan], [nan, nan, 0]]),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_no_pairs_gives_nan(case):
    labels = DEGENERATE[case]
    for fn, args in [
        (ag.percent_agreement, (labels,)),
        (ag.fleiss_kappa, (labels, 2)),
        (ag.krippendorff_alpha, (labels,)),
    ]:
        assert np.isnan(assert_no_warnings(fn, *args)), fn.__name__
    assert np.isnan(assert_no_warnings(ag.specific_agreement, labels, 2)).all()
    confusion = assert_no_warnings(ag.labeler_confusion, labels, 2)
    np.testing.assert_array_equal(confusion, np.zeros((2, 2)))
    pairwise = assert_no_warnings(ag.pairwise_cohen_kappa, labels)
    assert pairwise.shape == (labels.shape[1],) * 2
    off_diagonal = ~np.eye(labels.shape[1], dtype=bool)
    assert np.isnan(pairwise[off_diagonal]).all()


def test_one_class_gives_nan_for_chance_corrected_metrics():
    labels = np.array([[0, 0, nan], [0, 0, 0], [0, nan, 0]])
    assert np.isnan(assert_no_warnings(ag.fleiss_kappa, labels, 3))
    assert np.isnan(assert_no_warnings(ag.fleiss_kappa, labels, 1))
    assert np.isnan(assert_no_warnings(ag.krippendorff_alpha, labels))
    assert np.isnan(assert_no_warnings(ag.pairwise_cohen_kappa, labels)).all()
    assert np.isnan(assert_no_warnings(ag.cohen_kappa, labels[:, 0], labels[:, 1]))
    # Raw agreement is perfectly defined: everyone agrees.
    assert assert_no_warnings(ag.percent_agreement, labels) == 1.0
    np.testing.assert_array_equal(assert_no_warnings(ag.specific_agreement, labels, 3), [1.0, nan, nan])
    # Ordered pairs: 2 + 6 + 2, all agreeing on class 0.
    np.testing.assert_array_equal(ag.labeler_confusion(labels, 3), [[10, 0, 0], [0, 0, 0], [0, 0, 0]])


def test_cohen_kappa_undefined_cases_match_sklearn_nan():
    a = np.array([1.0, 1.0, 1.0, nan])
    b = np.array([1.0, 1.0, 1.0, 0.0])
    assert np.isnan(assert_no_warnings(ag.cohen_kappa, a, b))
    with pytest.warns(UserWarning):  # sklearn's UndefinedMetricWarning
        assert np.isnan(sklearn_kappa_on_shared(a, b))
    # Fewer than 2 shared items: NaN (one item says nothing about chance agreement).
    assert np.isnan(assert_no_warnings(ag.cohen_kappa, [0, nan, 1], [1, 0, nan]))
    assert np.isnan(assert_no_warnings(ag.cohen_kappa, [nan, nan], [nan, nan]))
    assert np.isnan(assert_no_warnings(ag.cohen_kappa, [], []))


def test_pairwise_nan_where_fewer_than_two_shared_items():
    labels = np.array([[0, 1, nan], [1, 1, nan], [0, nan, 1], [1, nan, 0]])
    kappa = ag.pairwise_cohen_kappa(labels)
    assert np.isnan(kappa[1, 2]) and np.isnan(kappa[2, 1])  # no shared item
    assert kappa[0, 2] == pytest.approx(sklearn_kappa_on_shared(labels[:, 0], labels[:, 2]), abs=TOL)


@pytest.mark.parametrize(
    "bad",
    [np.array([[0.5, 1.0]]), np.array([[-1.0, 1.0]]), np.array([[np.inf, 1.0]]), np.array([[0.0, 3.0]])],
)
def test_invalid_labels_raise(bad):
    with pytest.raises(ValueError, match="class indices"):
        ag.fleiss_kappa(bad, 3)


def test_invalid_shapes_and_class_counts_raise():
    with pytest.raises(ValueError, match="2-D"):
        ag.percent_agreement(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="n_classes"):
        ag.fleiss_kappa(np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match="same length"):
        ag.cohen_kappa([0, 1], [0, 1, 1])


# ------------------------------------------------------------------------------------------------
# The six crowd datasets (duplicates resolved: last answer of a repeated (item, worker) pair kept)
# ------------------------------------------------------------------------------------------------

DATASETS = pytest.mark.parametrize("name", crowd_arrays.DATASETS)


@pytest.mark.crowd
def test_crowd_loader_resolves_traps():
    assert crowd_arrays.load("S_Rel").n_duplicates_dropped == 1570
    assert crowd_arrays.load("S_Adult").n_duplicates_dropped == 2922
    assert crowd_arrays.load("S_Adult").has_gold.sum() == 333  # of 1,517 gold items, 333 have labels
    assert crowd_arrays.load("RTE").labels.shape == (800, 164)
    assert np.nanmax(crowd_arrays.load("RTE").labels) == 1  # {1, 2} shifted to {0, 1}
    bluebirds = crowd_arrays.load("bluebirds")
    assert bluebirds.labels.shape == (108, 39) and not np.isnan(bluebirds.labels).any()


@pytest.mark.crowd
@DATASETS
def test_crowd_krippendorff_alpha_matches_package(name):
    d = crowd_arrays.load(name)
    expected = krippendorff.alpha(reliability_data=d.labels.T, level_of_measurement="nominal")
    assert ag.krippendorff_alpha(d.labels) == pytest.approx(expected, abs=TOL)


@pytest.mark.crowd
@DATASETS
def test_crowd_fleiss_kappa_matches_statsmodels(name):
    d = crowd_arrays.load(name)
    n = (~np.isnan(d.labels)).sum(axis=1)
    # statsmodels needs equal counts: take the items with the most common count (all items for
    # D_Product 3, D_PosSent 20, bluebirds 39, RTE 10; S_Rel 5 and S_Adult 10 for a subset).
    modal = np.bincount(n[n >= 2]).argmax()
    subset = d.labels[n == modal]
    expected = sm_fleiss_kappa(statsmodels_table(subset, d.n_classes))
    assert ag.fleiss_kappa(subset, d.n_classes) == pytest.approx(expected, abs=TOL)
    if (n == modal).all():
        assert ag.fleiss_kappa(d.labels, d.n_classes) == pytest.approx(expected, abs=TOL)
    else:  # varying counts: the documented generalisation, item by item
        expected_all = loop_fleiss_varying(d.labels, d.n_classes)
        assert ag.fleiss_kappa(d.labels, d.n_classes) == pytest.approx(expected_all, abs=TOL)


@pytest.mark.crowd
@DATASETS
def test_crowd_cohen_kappa_matches_sklearn(name):
    d = crowd_arrays.load(name)
    kappa = ag.pairwise_cohen_kappa(d.labels)
    observed = (~np.isnan(d.labels)).astype(float)
    shared = observed.T @ observed
    np.fill_diagonal(shared, 0)
    candidates = np.argwhere(np.triu(shared >= 2))
    assert len(candidates) > 0
    rng = np.random.default_rng(0)
    sample = candidates[rng.choice(len(candidates), size=min(40, len(candidates)), replace=False)]
    busiest = np.unravel_index(shared.argmax(), shared.shape)
    checked = 0
    for j, other in [busiest, *sample]:
        a, b = d.labels[:, j], d.labels[:, other]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns where undefined; we compare the NaN
            expected = sklearn_kappa_on_shared(a, b)
        assert kappa[j, other] == pytest.approx(expected, abs=TOL, nan_ok=True)
        assert kappa[other, j] == pytest.approx(expected, abs=TOL, nan_ok=True)
        assert ag.cohen_kappa(a, b) == pytest.approx(expected, abs=TOL, nan_ok=True)
        checked += not np.isnan(expected)
    assert checked >= min(10, len(candidates))
    # NaN exactly where fewer than 2 shared items (off the diagonal) or kappa is undefined.
    assert np.isnan(kappa[(shared < 2) & ~np.eye(len(shared), dtype=bool)]).all()


@pytest.mark.crowd
@DATASETS
def test_crowd_pair_counts_match_brute_force(name):
    d = crowd_arrays.load(name)
    confusion = brute_force_confusion(d.labels, d.n_classes)
    np.testing.assert_array_equal(ag.labeler_confusion(d.labels, d.n_classes), confusion)
    np.testing.assert_array_equal(confusion, confusion.T)
    assert ag.percent_agreement(d.labels) == pytest.approx(np.trace(confusion) / confusion.sum(), abs=TOL)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected_specific = np.diag(confusion) / confusion.sum(axis=1)
    np.testing.assert_allclose(ag.specific_agreement(d.labels, d.n_classes), expected_specific, atol=TOL, rtol=0)
    # The sparse-triple route gives the same counts as the dense one.
    counts = ag.class_counts_from_triples(d.item_idx, d.label, d.labels.shape[0], d.n_classes)
    np.testing.assert_array_equal(counts, ag.class_counts(d.labels, d.n_classes))
