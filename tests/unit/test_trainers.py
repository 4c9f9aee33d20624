"""The trainers' shared interface: fit / predict_proba / save / load, seeded, atomic artifacts."""

import numpy as np
import pytest

from training.trainers import KerasCNN, SklearnLogReg, Trainer, check_hyperparameters, get_trainer


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's digits as (N, 8, 8) pixels in [0, 1], a fixed 600/200 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)
    return X[:600], d.target[:600], X[600:800], d.target[600:800]


def test_logreg_on_pixels_learns_digits_and_round_trips(digits, tmp_path):
    X, y, X_dev, y_dev = digits
    seen = []
    model = SklearnLogReg(10, random_state=0).fit(X, y, progress=lambda f, e, n: seen.append(f))
    proba = model.predict_proba(X_dev)
    assert proba.shape == (200, 10) and np.allclose(proba.sum(axis=1), 1)
    assert (proba.argmax(axis=1) == y_dev).mean() > 0.85
    assert seen[0] == 0.0 and seen[-1] == 1.0
    path = tmp_path / "m.joblib"
    model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.joblib"]  # no temporary file left
    again = SklearnLogReg.load(path)
    np.testing.assert_array_equal(again.predict_proba(X_dev), proba)
    np.testing.assert_array_equal(SklearnLogReg(10, random_state=0).fit(X, y).predict_proba(X_dev), proba)


def test_logreg_gives_zero_to_classes_it_never_saw(digits):
    X, y, X_dev, _ = digits
    keep = y < 3
    proba = SklearnLogReg(5).fit(X[keep], y[keep]).predict_proba(X_dev[:4])
    assert proba.shape == (4, 5) and (proba[:, 3:] == 0).all()


def test_logreg_on_text_uses_tfidf(tmp_path):
    texts = ["great film, loved it", "awful, boring film", "loved the acting", "boring and awful"] * 5
    y = np.array([0, 1, 0, 1] * 5)
    model = SklearnLogReg(2, data_kind="text").fit(texts, y)
    assert model.pipeline_.steps[0][0] == "tfidf"
    assert model.predict_proba(["loved it"]).argmax() == 0
    model.save(tmp_path / "t.joblib")
    assert SklearnLogReg.load(tmp_path / "t.joblib").predict_proba(["so boring"]).argmax() == 1


def test_logreg_embeds_images_as_the_standardised_pixels_it_reads(digits):
    from sklearn.preprocessing import StandardScaler

    X, y, X_dev, _ = digits
    embedding = SklearnLogReg(10).fit(X, y).embed(X_dev)
    expected = StandardScaler().fit(X.reshape(600, -1)).transform(X_dev.reshape(200, -1))
    assert embedding.dtype == np.float32 and embedding.shape == (200, 64)
    np.testing.assert_allclose(embedding, expected, rtol=1e-5, atol=1e-5)


def test_logreg_embeds_texts_as_decision_values():
    texts = ["great film, loved it", "awful, boring film", "loved the acting", "boring and awful"] * 5
    model = SklearnLogReg(2, data_kind="text").fit(texts, np.array([0, 1, 0, 1] * 5))
    embedding = model.embed(["loved it", "so boring", "film"])
    assert embedding.shape == (3, 1)
    assert ((embedding[:, 0] > 0) == (model.predict_proba(["loved it", "so boring", "film"]).argmax(axis=1) == 1)).all()


def test_hyperparameters_are_checked():
    assert check_hyperparameters("sklearn_logreg", {"C": 1})["C"] == 1.0
    with pytest.raises(ValueError, match="no hyperparameter gamma"):
        check_hyperparameters("sklearn_logreg", {"gamma": 1})
    with pytest.raises(ValueError, match="whole number"):
        check_hyperparameters("keras_cnn", {"epochs": 2.5})
    with pytest.raises(ValueError, match=r"must lie in"):
        check_hyperparameters("keras_cnn", {"dropout": 2})
    with pytest.raises(ValueError, match="must be a number"):
        check_hyperparameters("keras_cnn", {"epochs": "10"})
    with pytest.raises(ValueError, match="unknown trainer"):
        get_trainer("svm")
    with pytest.raises(ValueError, match="image"):
        KerasCNN(3, data_kind="text")


def test_a_failed_write_leaves_the_old_artifact_and_no_temporary_file(tmp_path):
    path = tmp_path / "m.joblib"
    path.write_bytes(b"the old artifact")

    def half_then_die(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise KeyboardInterrupt  # not even an Exception: as close to a kill as Python gets

    with pytest.raises(KeyboardInterrupt):
        Trainer._atomic_write(path, half_then_die)
    assert path.read_bytes() == b"the old artifact"
    assert [p.name for p in tmp_path.iterdir()] == ["m.joblib"]


def test_keras_cnn_trains_a_little_and_round_trips(digits, tmp_path):
    """Tiny: 300 images of 8x8 pixels, 2 epochs (a few seconds once TensorFlow is loaded)."""
    X, y, X_dev, y_dev = digits
    seen = []
    model = KerasCNN(10, random_state=0, image_size=8, epochs=2, filters=8, batch_size=32)
    model.fit(X[:300], y[:300], X_dev[:100], y_dev[:100], progress=lambda f, e, n: seen.append((e, n)))
    assert seen[:2] == [(1, 2), (2, 2)] and model.epochs_run_ == 2
    proba = model.predict_proba(X_dev[:50])
    assert proba.shape == (50, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    path = tmp_path / "m.keras"
    model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]
    again = KerasCNN.load(path)
    assert again.image_size == 8 and again.n_classes == 10
    np.testing.assert_allclose(again.predict_proba(X_dev[:50]), proba, atol=1e-6)
    with pytest.raises(ValueError, match=r"\.keras"):
        model.save(tmp_path / "m.h5")

    # The embedding is what the softmax layer reads: applying that layer to it gives the probabilities.
    embedding = again.embed(X_dev[:50])
    assert embedding.shape == (50, 16 * 2 * 2) and embedding.dtype == np.float32
    weights, bias = again.model_.layers[-1].get_weights()
    logits = embedding @ weights + bias
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True), proba, atol=1e-5)
