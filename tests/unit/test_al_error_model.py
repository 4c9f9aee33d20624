"""active_learning.error_model: known answers (errors in one region are ranked first, where plain
margin cannot see them), the documented fallback to margin (no errors, all errors, too few) that
never degrades to item order, calibration in the large, the standardiser against scikit-learn's
StandardScaler and PCA, and bad input."""

import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from active_learning import error_model as em
from active_learning import strategies as st
from active_learning.sampling import Labeled, select_batch


def _error_data(seed, n=300, d=2):
    """Two classes; the held-out model is right on x0 <= 0.5 and wrong on x0 > 0.5 (a quarter of
    the space), with confidences that carry no information about being wrong."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, d))
    y = rng.integers(0, 2, size=n)
    confidence = rng.uniform(0.6, 0.9, size=n)
    pred = np.where(x[:, 0] > 0.5, 1 - y, y)
    proba = np.where(pred[:, None] == np.arange(2), confidence[:, None], 1 - confidence[:, None])
    return x, proba, y


def test_errors_concentrated_in_one_region_are_ranked_first():
    lx, lp, ly = _error_data(0)
    px, pp, _ = _error_data(1, n=1000)
    model = em.ErrorModel(random_state=0).fit(lx, lp, ly, px)
    assert model.fallback_ is None and model.C_ in em.CS  # 300 rows, ~75 errors: C by inner CV
    assert model.auc_ > model.margin_auc_  # margin cannot see the region; the error model can
    scores = model.score(px, pp)  # the chance of "wrong"
    top = st.select_top(scores, 100)
    in_region = px[:, 0] > 0.5
    assert in_region[top].mean() >= 0.9  # the region holds 25 % of the pool
    # Margin alone cannot see the region: its top 100 hold about the region's share.
    assert in_region[st.select_top(st.margin(pp), 100)].mean() < 0.4
    # "Predicted wrong" (chance >= 0.5) is right on the region, wrong off it.
    p_wrong = model.predict_wrong_proba(px, pp)
    assert np.mean((p_wrong >= 0.5) == in_region) >= 0.9


def test_the_region_is_found_through_the_embedding_projection_in_many_dimensions():
    # A 40-dimensional embedding of a 2-D latent space (as embeddings have low-dimensional
    # structure); the model is wrong where the first latent coordinate exceeds 0.5. The error
    # model reads 3 principal components, not the 40 columns, and must still find the region.
    mixing = np.random.default_rng(10).normal(size=(2, 40))

    def embed(latent, seed):
        return latent @ mixing + 0.05 * np.random.default_rng(seed).normal(size=(len(latent), 40))

    lz, lp, ly = _error_data(2, n=300)
    pz, pp, _ = _error_data(3, n=1000)
    scores = em.error_model_scores(embed(lz, 0), lp, ly, embed(pz, 1), pp, random_state=0)
    assert (pz[st.select_top(scores, 100), 0] > 0.5).mean() >= 0.9


def test_calibrated_in_the_large_on_its_training_rows():
    lx, lp, ly = _error_data(4, n=400)
    model = em.ErrorModel(random_state=0).fit(lx, lp, ly, lx)
    observed = np.mean(lp.argmax(axis=1) != ly)
    assert model.predict_wrong_proba(lx, lp).mean() == pytest.approx(observed, abs=0.01)


def test_too_few_rows_to_check_it_against_margin_fall_back():
    lx, lp, ly = _error_data(5, n=em.MIN_ROWS - 1)
    model = em.ErrorModel(random_state=0).fit(lx, lp, ly)
    assert model.n_wrong_ >= em.MIN_ERRORS and model.n_right_ >= em.MIN_ERRORS  # enough errors, too few rows
    assert f"only {em.MIN_ROWS - 1} held-out items" in model.fallback_ and model.model_ is None


def test_it_is_not_used_where_it_finds_errors_no_better_than_margin():
    """Errors that margin alone explains (the model is wrong exactly where it is unsure, and the
    embedding carries nothing): the check finds no gain over margin, so margin ranks."""
    rng = np.random.default_rng(6)
    n = 300
    x = rng.normal(size=(n, 2))
    confidence = rng.uniform(0.5, 1.0, n)
    y = np.zeros(n, dtype=int)
    wrong = rng.uniform(size=n) > confidence  # P(wrong) = 1 - confidence: margin's own story
    proba = np.where((y ^ wrong)[:, None] == np.arange(2), confidence[:, None], 1 - confidence[:, None])
    model = em.ErrorModel(random_state=0).fit(x, proba, y, x)
    assert "no better than margin" in model.fallback_ and model.auc_ <= model.margin_auc_
    np.testing.assert_array_equal(model.score(x, proba), st.margin(proba))


def test_its_area_under_the_roc_curve_equals_scikit_learns():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(7)
    for _ in range(20):
        positive = rng.uniform(size=200) < 0.3
        score = rng.integers(0, 8, 200).astype(float)  # many ties
        assert em._auc(positive, score) == pytest.approx(roc_auc_score(positive, score), abs=1e-12)


def test_is_seeded_and_chunked_scoring_gives_the_same_result(monkeypatch):
    lx, lp, ly = _error_data(6, n=120)
    px, pp, _ = _error_data(7, n=50)
    a = em.error_model_scores(lx, lp, ly, px, pp, random_state=7)
    np.testing.assert_array_equal(a, em.error_model_scores(lx, lp, ly, px, pp, random_state=7))
    monkeypatch.setattr(em, "CHUNK", 7)
    np.testing.assert_allclose(em.error_model_scores(lx, lp, ly, px, pp, random_state=7), a, rtol=0, atol=1e-12)


# A pool whose most uncertain items come last, so that item order and margin disagree.
POOL_PROBA = np.array([[0.95, 0.05], [0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.52, 0.48]])
POOL_FEATURES = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])


@pytest.mark.parametrize(
    ("case", "flip", "reason"),
    [("none", [], "right on all 6"), ("all", [0, 1, 2, 3, 4, 5], "wrong on all 6"), ("few", [2, 4], "only 2 of 6")],
)
def test_degenerate_cases_fall_back_to_margin_not_item_order(case, flip, reason):
    lx = np.arange(6.0)[:, None]
    ly = np.array([0, 1, 0, 1, 0, 1])
    lp = np.where(ly[:, None] == np.arange(2), 0.8, 0.2)
    lp[flip] = lp[flip][:, ::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = em.ErrorModel(random_state=0).fit(lx, lp, ly, POOL_FEATURES)
    assert reason in model.fallback_ and "margin" in model.fallback_
    np.testing.assert_array_equal(model.score(POOL_FEATURES, POOL_PROBA), st.margin(POOL_PROBA))
    assert np.isnan(model.predict_wrong_proba(POOL_FEATURES, POOL_PROBA)).all()
    selection = select_batch(
        "error_model", 2, pool_proba=POOL_PROBA, pool_features=POOL_FEATURES, labeled=Labeled(lx, lp, ly)
    )
    assert selection.indices.tolist() == [4, 3]  # the smallest margins, not items 0 and 1
    assert selection.notes["error_model"]["fallback"] == model.fallback_
    assert np.isnan(selection.notes["p_wrong"]).all()


def test_with_nothing_held_out_yet_it_falls_back_to_margin():
    """The first cycle: no labelled item was scored by a model before its label came."""
    model = em.ErrorModel(random_state=0).fit(np.zeros((0, 1)), np.zeros((0, 2)), np.zeros(0), POOL_FEATURES)
    assert "no held-out predictions yet" in model.fallback_ and model.n_wrong_ == model.n_right_ == 0
    selection = select_batch(
        "error_model", 2, pool_proba=POOL_PROBA, pool_features=POOL_FEATURES,
        labeled=Labeled(np.zeros((0, 1)), np.zeros((0, 2)), np.zeros(0, dtype=int)),
    )  # fmt: skip
    assert selection.indices.tolist() == [4, 3]


def test_earlier_picks_teach_it_what_the_same_rows_as_probabilities_would():
    """Rows from earlier batches (their uncertainty then, and whether the class then was wrong)
    are the same held-out evidence as probabilities with labels: the fitted model is the same."""
    lx, lp, ly = _error_data(10)
    px, pp, _ = _error_data(11, n=200)
    direct = em.ErrorModel(random_state=0).fit(lx, lp, ly, px)
    earlier = em.Earlier(lx, em.uncertainty_features(lp), lp.argmax(axis=1) != ly)
    empty = (lx[:0], lp[:0], ly[:0])
    via_earlier = em.ErrorModel(random_state=0).fit(*empty, px, earlier=earlier)
    assert via_earlier.n_earlier_ == 300 and via_earlier.report()["n_earlier"] == 300
    assert (via_earlier.n_wrong_, via_earlier.C_) == (direct.n_wrong_, direct.C_)
    np.testing.assert_allclose(via_earlier.score(px, pp), direct.score(px, pp), atol=1e-12)
    # Half and half: the current model's own rows and the earlier ones are pooled.
    half = em.Earlier(lx[150:], em.uncertainty_features(lp[150:]), lp[150:].argmax(axis=1) != ly[150:])
    pooled = em.ErrorModel(random_state=0).fit(lx[:150], lp[:150], ly[:150], px, earlier=half)
    assert pooled.n_wrong_ + pooled.n_right_ == 300 and pooled.n_earlier_ == 150
    np.testing.assert_allclose(pooled.score(px, pp), direct.score(px, pp), atol=1e-12)


@pytest.mark.parametrize(
    ("earlier", "message"),
    [
        (em.Earlier(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros(4, bool)), "features \\(H, 2\\)"),
        (em.Earlier(np.zeros((4, 2)), np.zeros((4, 2)), np.zeros(4, bool)), "uncertainty \\(H, 3\\)"),
        (em.Earlier(np.zeros((4, 2)), np.full((4, 3), np.nan), np.zeros(4, bool)), "NaN"),
    ],
)
def test_malformed_earlier_rows_are_named(earlier, message):
    lx, lp, ly = _error_data(12, n=20)
    with pytest.raises(ValueError, match=message):
        em.ErrorModel().fit(lx, lp, ly, earlier=earlier)


def test_select_batch_reports_the_error_model_and_its_chance_for_each_pick():
    lx, lp, ly = _error_data(8)
    px, pp, _ = _error_data(9, n=200)
    selection = select_batch("error_model", 10, pool_proba=pp, pool_features=px, labeled=Labeled(lx, lp, ly))
    report = selection.notes["error_model"]
    assert report["fallback"] is None and report["n_wrong"] + report["n_right"] == 300
    assert report["C"] in em.CS and report["auc"] > report["margin_auc"]
    p_wrong = selection.notes["p_wrong"]
    assert p_wrong.shape == (10,) and np.all((p_wrong >= 0) & (p_wrong <= 1))
    np.testing.assert_allclose(p_wrong, selection.scores)
    # Combined with uncertainty: the picks are the 10 likeliest wrong among the 15 smallest margins.
    shortlist = st.select_top(st.margin(pp), int(np.ceil(em.SHORTLIST * 10)))
    assert set(selection.indices.tolist()) <= set(shortlist.tolist())
    chance = em.ErrorModel(random_state=0).fit(lx, lp, ly, px).predict_wrong_proba(px, pp)
    assert set(selection.indices.tolist()) == set(shortlist[np.argsort(-chance[shortlist])[:10]].tolist())


def test_standardiser_equals_scikit_learn_on_pool_and_labeled_together():
    rng = np.random.default_rng(0)
    labeled = rng.normal(0, 1, (15, 5))
    pool = rng.normal(3, [1, 10, 100, 1000, 0.1], (400, 5))  # unscaled features
    both = np.vstack([labeled, pool])
    z = em.Standardiser().fit(labeled, pool).transform(pool)
    np.testing.assert_allclose(z, StandardScaler().fit(both).transform(pool), atol=1e-10)
    proj = em.Standardiser(n_components=2).fit(labeled, pool).transform(pool)
    reference = PCA(2).fit(StandardScaler().fit_transform(both))
    expected = reference.transform(StandardScaler().fit(both).transform(pool))
    np.testing.assert_allclose(np.abs(proj), np.abs(expected), atol=1e-8)  # axes are defined up to sign


def test_uncertainty_features_known_values():
    np.testing.assert_allclose(
        em.uncertainty_features([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]]),
        [[0.5, -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)), 0.7], [0.0, np.log(2), 0.5]],
    )


def test_bad_input():
    lx, lp, ly = _error_data(0, n=20)
    with pytest.raises(ValueError, match="same number of rows"):
        em.error_model_scores(lx, lp, ly[:-1], lx, lp)
    with pytest.raises(ValueError, match="columns"):
        em.error_model_scores(lx, lp, ly, lx[:, :1], lp)
    with pytest.raises(ValueError, match="labeled_y values"):
        em.error_model_scores(lx, lp, ly + 5, lx, lp)
    with pytest.raises(ValueError, match="n_folds"):
        em.error_model_scores(lx, lp, ly, lx, lp, n_folds=1)
    with pytest.raises(ValueError, match="pool_proba"):
        em.error_model_scores(lx, lp, ly, lx, lp * 2)


@pytest.mark.parametrize("c", [0.01, 0.1, 1.0, 10.0])
def test_the_logistic_fit_equals_scikit_learn(c):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(int(c * 100))
    x = rng.normal(size=(120, 5))
    y = (x[:, 0] + 0.5 * rng.normal(size=120)) > 0.8
    ours = em._Logistic().fit(x, y, c)
    theirs = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_[0], atol=1e-5)
    assert ours.intercept_ == pytest.approx(theirs.intercept_[0], abs=1e-5)
    np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x)[:, 1], atol=1e-6)


def test_standardiser_fits_a_seeded_sample_of_large_inputs(monkeypatch):
    monkeypatch.setattr(em, "PCA_SAMPLE", 300)
    rng = np.random.default_rng(0)
    labeled, pool = rng.normal(5, 2, (100, 3)), rng.normal(5, 2, (900, 3))
    a, b = em.Standardiser(random_state=1).fit(labeled, pool), em.Standardiser(random_state=1).fit(labeled, pool)
    np.testing.assert_array_equal(a.mean_, b.mean_)
    np.testing.assert_allclose(a.mean_, 5, atol=0.4)
    np.testing.assert_allclose(a.scale_, 2, atol=0.4)
    assert not np.allclose(a.mean_, np.vstack([labeled, pool]).mean(axis=0), atol=1e-12)  # a sample, not all
    out = np.empty((900, 3), dtype=np.float32)
    assert a.transform(pool, out=out) is out
    np.testing.assert_allclose(out, (pool - a.mean_) / a.scale_, rtol=1e-5)
