"""Trainers: one scikit-learn-style interface over a scikit-learn baseline and a small Keras CNN.

Every trainer takes the number of classes K, a ``random_state`` and its hyperparameters, and has

- ``fit(X, y, X_dev=None, y_dev=None, progress=None)`` returning ``self``;
- ``predict_proba(X)`` -> float array (N, K), columns in class-index order (a class missing from
  the training data gets probability 0 from the scikit-learn baseline);
- ``save(path)`` writing the artifact atomically (a temporary file in the same folder, then
  ``os.replace``), so a reader never sees half a file;
- ``load(path)`` (a class method) reading it back.

Inputs: for images, X is a float32 array (N, S, S) of grayscale pixels in [0, 1] at the trainer's
``image_size`` (the caller resizes); for texts, a sequence of N strings. ``y`` is int (N,) with
class indices 0..K-1. ``progress(fraction, epoch, epochs)`` is called as fitting advances; it may
raise to stop the fit.

TensorFlow is imported only inside :class:`KerasCNN`'s methods (it costs seconds and hundreds of
MB): importing this module never imports it. Scikit-learn artifacts are joblib pickles that only
this app writes and reads, from paths it chose; Keras artifacts are native ``.keras`` files,
loaded with Keras' safe mode on.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["TRAINERS", "KerasCNN", "SklearnLogReg", "Trainer", "atomic_write", "check_hyperparameters", "get_trainer"]

ARTIFACT_FORMAT = 1


def atomic_write(path, write) -> None:
    """``write(tmp_path)`` into a temporary file beside ``path``, fsync it, then rename it over
    ``path``. On any error (or interruption) the temporary file is removed and ``path`` is
    left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class Trainer:
    """Base class: hyperparameter handling and the atomic write shared by the trainers."""

    name = ""
    label = ""
    data_kinds: tuple[str, ...] = ()
    extension = ""
    # name -> (type, default, low, high); low/high bound numbers (inclusive), None for no bound.
    hyperparameter_specs: dict = {}

    def __init__(self, n_classes: int, *, random_state: int = 0, data_kind: str = "image", **hyperparameters):
        if int(n_classes) < 2:
            raise ValueError("a classifier needs at least two classes")
        if data_kind not in self.data_kinds:
            raise ValueError(f"{self.name} trains on {' or '.join(self.data_kinds)} data, not {data_kind}")
        self.n_classes = int(n_classes)
        self.random_state = int(random_state)
        self.data_kind = data_kind
        self.hyperparameters = check_hyperparameters(self.name, hyperparameters)

    @property
    def image_size(self) -> int:
        return int(self.hyperparameters.get("image_size", 0))

    def fit(self, X, y, X_dev=None, y_dev=None, progress=None):
        raise NotImplementedError

    def predict_proba(self, X) -> np.ndarray:
        raise NotImplementedError

    def embed(self, X) -> np.ndarray:
        """A dense float32 (N, D) representation of X as the fitted model sees it, for the error
        model and diversity sampling (active_learning.sampling)."""
        raise NotImplementedError

    def save(self, path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path):
        raise NotImplementedError

    # Artifacts are written through this attribute, so a test can stand in a dying writer.
    _atomic_write = staticmethod(atomic_write)

    def latest_losses(self) -> dict:
        """{"loss": ..., "val_loss": ...} of the newest point of ``history_`` (None where absent)."""
        series = (getattr(self, "history_", None) or {}).get("series") or {}
        return {key: (series.get(key) or [None])[-1] for key in ("loss", "val_loss")}


HISTORY_SERIES = ("loss", "val_loss", "accuracy", "val_accuracy", "learning_rate")


def new_history(kind: str, x: str, validation: str | None) -> dict:
    """An empty learning history: ``points`` are the x values (epochs 1..n, or values of C);
    ``series`` maps loss / val_loss / accuracy / val_accuracy / learning_rate to lists aligned with
    ``points`` (None where a value is undefined); ``best`` is the point of lowest validation loss;
    ``early_stopping`` says whether and when it fired (Keras only)."""
    return {
        "kind": kind,
        "x": x,
        "validation": validation,
        "points": [],
        "series": {key: [] for key in HISTORY_SERIES},
        "best": None,
        "early_stopping": None,
    }


def _finite(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def mark_best(history: dict) -> dict:
    """Set ``history["best"]`` to the point of lowest validation loss (the first one on ties)."""
    val = history["series"].get("val_loss") or []
    finite = [(v, i) for i, v in enumerate(val) if v is not None]
    if finite:
        value, i = min(finite)
        history["best"] = {"index": i, "x": history["points"][i], "val_loss": value}
    return history


def _log_loss(y, proba) -> float:
    """Mean cross-entropy of labels ``y`` (N,) under ``proba`` (N, K), probabilities clipped at
    1e-15 so a class the model never saw costs a finite amount."""
    p = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
    return float(-np.log(p).mean())


def check_hyperparameters(trainer_name: str, given: dict | None) -> dict:
    """The trainer's hyperparameters: its defaults updated with ``given``, each checked.

    Raises ValueError naming the unknown key or the bad value."""
    cls = get_trainer(trainer_name)
    given = dict(given or {})
    unknown = sorted(set(given) - set(cls.hyperparameter_specs))
    if unknown:
        known = ", ".join(sorted(cls.hyperparameter_specs))
        raise ValueError(f"{trainer_name} has no hyperparameter {', '.join(unknown)}; it takes {known}")
    out = {}
    for key, (kind, default, low, high) in cls.hyperparameter_specs.items():
        value = given.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {value!r}")
        if kind is int:
            if float(value) != int(value):
                raise ValueError(f"{key} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"{key} must lie in [{low}, {high}], got {value!r}")
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------
# scikit-learn: logistic regression on pixels or TF-IDF
# --------------------------------------------------------------------------------------------


class SklearnLogReg(Trainer):
    """Multinomial logistic regression: standardised pixels for images, TF-IDF (word 1-2 grams,
    max-abs scaled) for texts."""

    name = "sklearn_logreg"
    label = "Logistic regression (scikit-learn)"
    data_kinds = ("image", "text")
    extension = ".joblib"
    hyperparameter_specs = {
        "C": (float, 0.05, 1e-6, 1e6),
        "max_iter": (int, 500, 10, 100_000),
        "image_size": (int, 16, 4, 128),
        "max_features": (int, 50_000, 10, 10_000_000),
    }

    def _pipeline(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import MaxAbsScaler, StandardScaler

        hp = self.hyperparameters
        clf = LogisticRegression(C=hp["C"], max_iter=hp["max_iter"], random_state=self.random_state)
        if self.data_kind == "text":
            tfidf = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), max_features=hp["max_features"])
            return Pipeline([("tfidf", tfidf), ("scale", MaxAbsScaler()), ("clf", clf)])
        return Pipeline([("scale", StandardScaler()), ("clf", clf)])

    def _features(self, X):
        if self.data_kind == "text":
            return [str(x) for x in X]
        X = np.asarray(X, dtype=np.float32)
        return X.reshape(X.shape[0], -1)

    # The validation curve's values of C, as multiples of the chosen C (1.0 is the model kept).
    CURVE_FACTORS = (0.01, 0.1, 1.0, 10.0, 100.0)
    # Iterations of each warm-started curve point (the kept model gets max_iter): the curve's
    # large-C end, which converges slowly, stays a picture of the trend, not of an optimum.
    CURVE_MAX_ITER = 100

    def fit(self, X, y, X_dev=None, y_dev=None, progress=None):
        """Fit the pipeline at the chosen C. With a dev split, also fit the classifier at the other
        ``CURVE_FACTORS`` x C on the same features (the transformers are fitted once, each point
        warm-started from its neighbour) and record training and dev loss and accuracy at each: the
        model kept is exactly the plain fit at 1.0 x C."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.pipeline import Pipeline

        y = np.asarray(y, dtype=np.int64)
        if np.unique(y).size < 2:
            raise ValueError("the training labels hold fewer than two classes")
        if progress:
            progress(0.0, None, None)
        has_dev = X_dev is not None and len(X_dev) > 0
        self.history_ = new_history("regularisation", "C", "dev" if has_dev else None)
        template = self._pipeline()
        features = Pipeline(template.steps[:-1])
        Xt = features.fit_transform(self._features(X), y)
        Xd = features.transform(self._features(X_dev)) if has_dev else None
        y_dev = np.asarray(y_dev, dtype=np.int64) if has_dev else None
        chosen = self.hyperparameters["C"]
        # The model kept first, fitted cold exactly as a plain fit; then outwards along C on each
        # side, each fit warm-started from its neighbour's coefficients (the same optimum of a
        # strictly convex loss, reached in a fraction of the iterations).
        below = sorted((f for f in self.CURVE_FACTORS if f < 1.0), reverse=True) if has_dev else []
        above = sorted(f for f in self.CURVE_FACTORS if f > 1.0) if has_dev else []
        total = 1 + len(below) + len(above)
        kept = clone_with_c(template.steps[-1][1], chosen).fit(Xt, y)  # warnings as a plain fit gives them
        points = {1.0: kept}
        if progress:
            progress(1 / total, None, None)
        for side in (below, above):
            previous = kept
            for factor in side:
                clf = clone_with_c(template.steps[-1][1], min(max(chosen * factor, 1e-6), 1e6))
                clf.set_params(warm_start=True, max_iter=min(self.hyperparameters["max_iter"], self.CURVE_MAX_ITER))
                clf.coef_, clf.intercept_ = previous.coef_.copy(), previous.intercept_.copy()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    clf.fit(Xt, y)
                points[factor] = previous = clf
                if progress:
                    progress(len(points) / total, None, None)
        for factor in sorted(points):
            self._record_point(points[factor], Xt, y, Xd, y_dev)
        mark_best(self.history_)
        self.history_["chosen"] = chosen
        self.history_["n_iter"] = int(np.max(kept.n_iter_))
        self.pipeline_ = Pipeline([*features.steps, (template.steps[-1][0], kept)])
        self.classes_ = self.pipeline_.classes_.astype(np.int64)
        if progress:
            progress(1.0, None, None)
        return self

    def _record_point(self, clf, Xt, y, Xd, y_dev):
        def full(P):
            out = np.zeros((P.shape[0], self.n_classes))
            out[:, clf.classes_] = P
            return out

        history = self.history_
        history["points"].append(float(clf.C))
        train = full(clf.predict_proba(Xt))
        series = history["series"]
        series["loss"].append(_log_loss(y, train))
        series["accuracy"].append(float((train.argmax(axis=1) == y).mean()))
        series["learning_rate"].append(None)
        if Xd is None:
            series["val_loss"].append(None)
            series["val_accuracy"].append(None)
        else:
            dev = full(clf.predict_proba(Xd))
            series["val_loss"].append(_log_loss(y_dev, dev))
            series["val_accuracy"].append(float((dev.argmax(axis=1) == y_dev).mean()))

    def predict_proba(self, X) -> np.ndarray:
        n = len(X)
        out = np.zeros((n, self.n_classes))
        if n:
            out[:, self.classes_] = self.pipeline_.predict_proba(self._features(X))
        return out

    def embed(self, X) -> np.ndarray:
        """Images: the standardised pixels the classifier reads. Texts: the classifier's decision
        values (one column per class it saw), as TF-IDF vectors are too wide and sparse to compare."""
        if len(X) == 0:
            return np.zeros((0, 0), dtype=np.float32)
        if self.data_kind == "text":
            scores = self.pipeline_.decision_function(self._features(X))
            return np.asarray(scores, dtype=np.float32).reshape(len(X), -1)
        return np.asarray(self.pipeline_[:-1].transform(self._features(X)), dtype=np.float32)

    def save(self, path) -> None:
        import joblib

        payload = {
            "format": ARTIFACT_FORMAT,
            "trainer": self.name,
            "n_classes": self.n_classes,
            "random_state": self.random_state,
            "data_kind": self.data_kind,
            "hyperparameters": self.hyperparameters,
            "classes": self.classes_,
            "pipeline": self.pipeline_,
        }
        self._atomic_write(path, lambda tmp: joblib.dump(payload, tmp))

    @classmethod
    def load(cls, path):
        """Read an artifact this app wrote (a joblib pickle: never pass a path from user input)."""
        import joblib

        payload = joblib.load(path)  # written only by this app, at a path it chose
        if not isinstance(payload, dict) or payload.get("trainer") != cls.name:
            raise ValueError(f"{path} is not a {cls.name} artifact")
        model = cls(
            payload["n_classes"],
            random_state=payload["random_state"],
            data_kind=payload["data_kind"],
            **payload["hyperparameters"],
        )
        model.pipeline_ = payload["pipeline"]
        model.classes_ = np.asarray(payload["classes"], dtype=np.int64)
        return model


def clone_with_c(clf, C):
    from sklearn.base import clone

    return clone(clf).set_params(C=C)


# --------------------------------------------------------------------------------------------
# Keras: a small convolutional network (TensorFlow imported lazily)
# --------------------------------------------------------------------------------------------


def _keras(n_threads: int = 0):
    """Import Keras on TensorFlow, quietly, configured for this process; only the worker gets here."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    if n_threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n_threads)
            tf.config.threading.set_inter_op_parallelism_threads(n_threads)
        except RuntimeError:
            pass  # already set once TensorFlow has started in this process
    return keras


def _history_callback(keras, history):
    """A Keras callback appending each epoch's logs and learning rate to ``history``."""

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            history["points"].append(epoch + 1)
            series = history["series"]
            for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
                series[key].append(_finite(logs.get(key)))
            rate = self.model.optimizer.learning_rate  # a float32 variable: 7 significant digits
            rate = _finite(rate.numpy() if hasattr(rate, "numpy") else rate)
            series["learning_rate"].append(None if rate is None else float(f"{rate:.7g}"))

    return Recorder()


class KerasCNN(Trainer):
    """Two convolution + pooling blocks, dropout and a softmax layer; Adam; early stopping on the
    dev split's loss (restoring the best weights). Without a dev split it holds out a seeded 10 %
    of the training data for early stopping (when there are at least 50 items).

    ``augment`` > 0 adds seeded random shifts (up to that share of the image) and rotations (up to
    0.4 x ``augment`` turns) while training; they are identity at prediction time. On the demo
    digits they take dev accuracy from about 0.966 to 0.983-0.994 (benchmarks/RESULTS.md)."""

    name = "keras_cnn"
    label = "Convolutional network (Keras)"
    data_kinds = ("image",)
    extension = ".keras"
    hyperparameter_specs = {
        "epochs": (int, 60, 1, 1000),
        "batch_size": (int, 64, 1, 4096),
        "learning_rate": (float, 1e-3, 1e-6, 1.0),
        "patience": (int, 8, 1, 100),
        "filters": (int, 32, 4, 256),
        "dropout": (float, 0.3, 0.0, 0.9),
        "augment": (float, 0.1, 0.0, 0.5),
        "image_size": (int, 32, 8, 128),
    }

    def __init__(self, n_classes: int, *, random_state: int = 0, data_kind: str = "image", n_threads: int = 0, **hp):
        super().__init__(n_classes, random_state=random_state, data_kind=data_kind, **hp)
        self.n_threads = int(n_threads)

    def _build(self, keras):
        hp = self.hyperparameters
        s, f = hp["image_size"], hp["filters"]
        layers = keras.layers
        augment = []
        if hp["augment"] > 0:
            augment = [
                layers.RandomTranslation(hp["augment"], hp["augment"], fill_mode="nearest", seed=self.random_state),
                layers.RandomRotation(0.4 * hp["augment"], fill_mode="nearest", seed=self.random_state),
            ]
        model = keras.Sequential(
            [
                keras.Input(shape=(s, s, 1)),
                *augment,
                layers.Conv2D(f, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(),
                layers.Conv2D(2 * f, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(),
                layers.Flatten(),
                layers.Dropout(hp["dropout"]),
                layers.Dense(self.n_classes, activation="softmax"),
            ],
            name="concord_cnn",
        )
        model.compile(
            optimizer=keras.optimizers.Adam(hp["learning_rate"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    @staticmethod
    def _images(X):
        X = np.asarray(X, dtype=np.float32)
        return X[..., None] if X.ndim == 3 else X

    def fit(self, X, y, X_dev=None, y_dev=None, progress=None):
        keras = _keras(self.n_threads)
        keras.utils.set_random_seed(self.random_state)
        hp = self.hyperparameters
        X = self._images(X)
        y = np.asarray(y, dtype=np.int64)
        if np.unique(y).size < 2:
            raise ValueError("the training labels hold fewer than two classes")
        if X_dev is None or len(X_dev) == 0:
            X_dev = y_dev = None
            if len(X) >= 50:  # hold out a seeded 10 % for early stopping
                order = np.random.default_rng(self.random_state).permutation(len(X))
                cut = max(1, len(X) // 10)
                X_dev, y_dev, X, y = X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]]
            validation = "held-out 10% of the training data" if X_dev is not None else None
        else:
            X_dev = self._images(X_dev)
            y_dev = np.asarray(y_dev, dtype=np.int64)
            validation = "dev"
        epochs = hp["epochs"]
        self.history_ = new_history("epochs", "epoch", validation)
        # The recorder runs first, so the progress callback below can read this epoch's loss.
        callbacks = [_history_callback(keras, self.history_)]
        stopper = None
        if X_dev is not None:
            stopper = keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=hp["patience"], restore_best_weights=True
            )
            callbacks.append(stopper)
        if progress is not None:

            class Progress(keras.callbacks.Callback):
                def on_epoch_end(self, epoch, logs=None):
                    progress((epoch + 1) / epochs, epoch + 1, epochs)

            callbacks.append(Progress())
        self.model_ = self._build(keras)
        history = self.model_.fit(
            X,
            y,
            validation_data=(X_dev, y_dev) if X_dev is not None else None,
            epochs=epochs,
            batch_size=hp["batch_size"],
            callbacks=callbacks,
            shuffle=True,
            verbose=0,
        )
        self.epochs_run_ = len(history.history.get("loss", []))
        mark_best(self.history_)
        if stopper is not None:
            fired = int(stopper.stopped_epoch) > 0
            self.history_["early_stopping"] = {
                "fired": fired,
                "stopped_epoch": int(stopper.stopped_epoch) + 1 if fired else None,
                "patience": hp["patience"],
                # Keras restores the best weights at the end of training, fired or not.
                "restored_epoch": int(stopper.best_epoch) + 1 if stopper.best_weights is not None else None,
            }
        if progress is not None:
            progress(1.0, self.epochs_run_, epochs)
        return self

    def predict_proba(self, X) -> np.ndarray:
        if len(X) == 0:
            return np.zeros((0, self.n_classes))
        out = self.model_.predict(self._images(X), batch_size=256, verbose=0)
        return np.asarray(out, dtype=np.float64)

    def embed(self, X, batch_size: int = 256) -> np.ndarray:
        """The flattened output of the last pooling block (what the softmax layer reads)."""
        keras = _keras(self.n_threads)
        layers = self.model_.layers
        upto = next(i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Flatten))
        X = self._images(X)
        parts = []
        for start in range(0, len(X), batch_size):
            x = X[start : start + batch_size]
            for layer in layers[: upto + 1]:
                x = layer(x, training=False)
            parts.append(np.asarray(x, dtype=np.float32))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def save(self, path) -> None:
        if Path(path).suffix != self.extension:
            raise ValueError(f"a Keras artifact's name ends in {self.extension}")
        self._atomic_write(path, self.model_.save)

    @classmethod
    def load(cls, path, n_threads: int = 0):
        keras = _keras(n_threads)
        model_ = keras.models.load_model(path, compile=False, safe_mode=True)
        size = int(model_.input_shape[1])
        model = cls(int(model_.output_shape[-1]), image_size=size, n_threads=n_threads)
        model.model_ = model_
        return model


TRAINERS = {cls.name: cls for cls in (SklearnLogReg, KerasCNN)}


def get_trainer(name: str) -> type[Trainer]:
    try:
        return TRAINERS[name]
    except KeyError:
        raise ValueError(f"unknown trainer {name!r}; choose one of {', '.join(TRAINERS)}") from None
