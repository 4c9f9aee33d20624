"""The search of a tuning run, in the worker only (it imports scikit-learn's search or KerasTuner).

Every trial is scored with the protocol a training run uses (training/runs.py): trained on the
train split and scored on dev, or, when train + dev hold fewer than ``CV_BELOW_LABELS`` labels (or
dev has none), scored out of fold by the same K folds over train + dev. So a trial's figure is the
figure the registered model shows, and :func:`register` makes it so by construction:

- **keras_cnn** — KerasTuner's oracles (``RandomSearchOracle``, ``HyperbandOracle``) propose the
  hyperparameters; each trial trains a :class:`~training.trainers.KerasCNN` under the protocol
  (Hyperband's trials train from scratch for the epochs the oracle gives them, rather than resume a
  checkpoint). The best trial's fitted model and its evaluation predictions are kept, in memory
  and under the run's working folder, and registered as they are: Keras on CPU threads is not
  bit-for-bit repeatable, so retraining could not promise the same dev accuracy.
- **sklearn_logreg** — scikit-learn's ``RandomizedSearchCV`` or ``HalvingRandomSearchCV`` (with
  ``max_iter`` as the resource, so every candidate sees all the training rows) over an estimator
  that wraps :class:`~training.trainers.SklearnLogReg`, with the protocol's split as ``cv``. The
  best trial is refit under the protocol: lbfgs is deterministic on the same rows, so its dev
  accuracy is the trial's (a test checks).

KerasTuner's working folder lies under the artifact folder (``tuning/<run id>/``) and is removed
when the run ends, however it ends.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.utils import timezone

from annotation.models import Split

from . import metrics as M
from .artifacts import _save_out_of_sample, artifact_root
from .conf import training_settings
from .datasets import build_snapshot, load_dataset
from .errors import TrainingError, readable_error
from .evaluation import evaluate_model
from .heartbeat import beating
from .models import ModelVersion, TuningRun
from .runs import _folds
from .trainers import check_hyperparameters, get_trainer
from .tuning import Cancelled, Claim, Superseded, claim, fixed_values, tuning_settings

logger = logging.getLogger(__name__)


class BudgetSpent(Exception):
    """The trials or minutes of the budget are used up: the search ends with what it has."""


STOPS = (Cancelled, Superseded, BudgetSpent)


@dataclass
class Context:
    work: Claim
    data: object
    names: list
    train: np.ndarray
    dev: np.ndarray
    test: np.ndarray
    pool: np.ndarray
    folds: list  # [(fit positions, held positions)] into ``pool``; empty on the dev protocol
    size: int
    best: dict = field(default_factory=dict)  # accuracy, trial, model, eval_proba (Keras)

    @property
    def run(self) -> TuningRun:
        return self.work.run

    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def eval_rows(self):
        return self.pool if self.folds else self.dev

    @property
    def fit_rows(self):
        return self.pool if self.folds else self.train

    def trainer(self, params):
        cls = get_trainer(self.run.trainer)
        kwargs = {"random_state": self.run.random_state, "data_kind": self.run.project.data_kind, **params}
        if cls.name == "keras_cnn":
            kwargs["n_threads"] = int(training_settings()["TF_THREADS"])
        return cls(self.k, **kwargs)

    def stop_if_needed(self, force=False):
        self.work.check(force=force)
        if self.work.minutes_left() <= 0:
            raise BudgetSpent("minutes")


def _prepare(work: Claim) -> Context:
    run = work.run
    project = run.project
    config = training_settings()
    work.enter(TuningRun.Stage.SNAPSHOT)
    if run.snapshot_id is None:
        snap = build_snapshot(project, policy=run.policy, user=run.created_by, random_state=run.random_state)
        work.write(snapshot=snap)
        run.snapshot = snap
    names = [c["name"] for c in run.snapshot.classes]
    work.enter(TuningRun.Stage.LOADING)
    data = load_dataset(run.snapshot, project.data_kind)
    train = np.flatnonzero(data.split == Split.TRAIN)
    dev = np.flatnonzero(data.split == Split.DEV)
    test = np.flatnonzero(data.split == Split.TEST)
    pool = np.concatenate([train, dev])
    if len(names) < 2 or np.unique(data.y[pool]).size < 2:
        raise TrainingError("a tuning run needs train/dev labels of at least two classes (check the snapshot)")
    # The same choice as training/runs.py makes, so trials are scored as a training would be.
    use_cv = len(pool) < config["CV_BELOW_LABELS"] or len(dev) == 0 or np.unique(data.y[train]).size < 2
    folds = _folds(data.y[pool], int(config["CV_FOLDS"]), run.random_state) if use_cv else []
    size = fixed_values(run.trainer, run.space)["image_size"]
    work.write(method="cross_validation" if use_cv else "dev")
    return Context(work, data, names, train, dev, test, pool, folds, size)


def _accuracy(ctx, proba) -> dict:
    y = ctx.data.y[ctx.eval_rows]
    return {
        "accuracy": M.accuracy(y, proba.argmax(axis=1)),
        "n": len(y),
        "method": "cross_validation" if ctx.folds else "dev",
    }


def fit_protocol(ctx: Context, params: dict, progress=None):
    """(fitted model, evaluation probabilities (len(eval_rows), K)) of ``params`` under the
    training protocol: dev split, or out of fold over train + dev with a final fit on all of it."""
    data, size = ctx.data, ctx.size
    if not ctx.folds:
        model = ctx.trainer(params)
        model.fit(data.inputs(ctx.train, size), data.y[ctx.train], data.inputs(ctx.dev, size), data.y[ctx.dev],
                  progress=progress)  # fmt: skip
        return model, model.predict_proba(data.inputs(ctx.dev, size))
    pool = ctx.pool
    proba = np.zeros((len(pool), ctx.k))
    for fit_idx, held_idx in ctx.folds:
        if np.unique(data.y[pool[fit_idx]]).size < 2:
            raise TrainingError("a cross-validation fold holds labels of one class only; label more items")
        fold = ctx.trainer(params).fit(data.inputs(pool[fit_idx], size), data.y[pool[fit_idx]], progress=progress)
        proba[held_idx] = fold.predict_proba(data.inputs(pool[held_idx], size))
    model = ctx.trainer(params).fit(data.inputs(pool, size), data.y[pool], progress=progress)
    return model, proba


def _trial_progress(ctx: Context, done: int, expected: int):
    by_trials = done / max(expected, 1)
    by_time = 1 - ctx.work.minutes_left() / ctx.run.budget_minutes
    ctx.work.advance(min(max(by_trials, by_time), 1.0))


# --------------------------------------------------------------------------------------------
# Keras: KerasTuner's oracles, each trial trained under the protocol
# --------------------------------------------------------------------------------------------


def _keras_hyperparameters(kt, space):
    hp = kt.HyperParameters()
    for name, entry in space.items():
        if "fixed" in entry:
            hp.Fixed(name, entry["fixed"])
        elif "values" in entry:
            hp.Choice(name, entry["values"])
        elif isinstance(entry["low"], int) and isinstance(entry["high"], int):
            hp.Int(name, entry["low"], entry["high"], sampling="log" if entry["log"] else "linear")
        else:
            hp.Float(name, float(entry["low"]), float(entry["high"]), sampling="log" if entry["log"] else "linear")
    return hp


def _search_keras(ctx: Context, folder: Path):
    import keras_tuner as kt
    from keras_tuner.engine.base_tuner import BaseTuner

    run = ctx.run
    base = fixed_values(run.trainer, run.space)
    objective = kt.Objective("val_accuracy", direction="max")
    hp = _keras_hyperparameters(kt, run.space)
    if run.search == TuningRun.Search.HYPERBAND:
        oracle = kt.oracles.HyperbandOracle(
            objective=objective, max_epochs=base["epochs"], factor=3, seed=run.random_state, hyperparameters=hp
        )
    else:
        oracle = kt.oracles.RandomSearchOracle(
            objective=objective, max_trials=run.budget_trials, seed=run.random_state, hyperparameters=hp
        )

    oracle.verbose = 0  # KerasTuner prints each trial's table to stdout; the trials are listed on the run

    class Stop(kt.errors.FatalError):
        """Carries a STOPS exception through KerasTuner, which swallows any other error of a trial."""

    class Tuner(BaseTuner):
        def run_trial(self, trial):
            values = dict(trial.hyperparameters.values)
            params = {k: v for k, v in values.items() if not k.startswith("tuner/")}
            if "tuner/epochs" in values:
                params["epochs"] = int(values["tuner/epochs"])
            params = check_hyperparameters(run.trainer, {**base, **params})
            try:
                ctx.stop_if_needed(force=True)
                if ctx.work.run.trials.count() >= run.budget_trials:
                    raise BudgetSpent("trials")
                return {"val_accuracy": _keras_trial(ctx, params)}
            except STOPS as exc:
                raise Stop(str(exc)) from exc

        def save_model(self, trial_id, model, step=0):
            pass  # the best model is kept by _keras_trial

        def load_model(self, trial):
            return None

    expected = run.budget_trials
    ctx.best["expected"] = expected
    tuner = Tuner(oracle, directory=str(folder), project_name="keras_tuner", overwrite=True)
    try:
        tuner.search()
    except Stop as exc:
        if not isinstance(exc.__cause__, BudgetSpent):
            raise exc.__cause__ from None
    except RuntimeError as exc:  # KerasTuner gives up after consecutive failed trials
        if not ctx.best.get("trial"):
            raise TrainingError(f"the trials failed: {exc}") from exc


def _keras_trial(ctx: Context, params: dict) -> float:
    started = time.monotonic()

    def progress(fraction, epoch=None, epochs=None):
        ctx.stop_if_needed()  # a cancel stops the trial at its next epoch

    try:
        model, proba = fit_protocol(ctx, params, progress=progress)
    except STOPS:
        raise
    except Exception as exc:
        ctx.work.add_trial(params, {}, time.monotonic() - started, status="failed", error=readable_error(exc))
        raise
    metrics = _accuracy(ctx, proba)
    metrics["epochs_run"] = getattr(model, "epochs_run_", None)
    trial = ctx.work.add_trial(params, metrics, time.monotonic() - started)
    if not ctx.best.get("trial") or metrics["accuracy"] > ctx.best["trial"].accuracy:
        ctx.best.update(trial=trial, model=model, eval_proba=proba)
    _trial_progress(ctx, trial.number, ctx.best.get("expected", ctx.run.budget_trials))
    return metrics["accuracy"]


# --------------------------------------------------------------------------------------------
# scikit-learn: RandomizedSearchCV / HalvingRandomSearchCV over the protocol's split
# --------------------------------------------------------------------------------------------


def _estimator_class():
    from sklearn.base import BaseEstimator, ClassifierMixin

    class LogRegSearchable(ClassifierMixin, BaseEstimator):
        """SklearnLogReg as a scikit-learn estimator, reporting each fit and score to ``hook``."""

        def __init__(self, C=0.05, max_iter=500, image_size=16, max_features=50_000, hook=None):
            self.C = C
            self.max_iter = max_iter
            self.image_size = image_size
            self.max_features = max_features
            self.hook = hook

        def params(self):
            # The search's distributions give NumPy scalars; the trainer and the JSON column want Python's.
            values = {k: getattr(self, k) for k in ("C", "max_iter", "image_size", "max_features")}
            return {k: v.item() if isinstance(v, np.generic) else v for k, v in values.items()}

        def fit(self, X, y):
            self.model_ = self.hook("fit", self).fit(X, y)
            self.classes_ = np.arange(self.model_.n_classes)
            return self

        def predict_proba(self, X):
            return self.model_.predict_proba(X)

        def predict(self, X):
            return self.predict_proba(X).argmax(axis=1)

        def score(self, X, y, sample_weight=None):
            correct = int((self.predict(X) == np.asarray(y)).sum())
            self.hook("score", self, correct, len(y))
            return correct / max(len(y), 1)

    return LogRegSearchable


def _distributions(space):
    from scipy.stats import loguniform, randint, uniform

    out = {}
    for name, entry in space.items():
        if "fixed" in entry:
            continue
        if "values" in entry:
            out[name] = list(entry["values"])
        elif isinstance(entry["low"], int) and isinstance(entry["high"], int) and not entry["log"]:
            out[name] = randint(entry["low"], entry["high"] + 1)
        elif entry["log"]:
            out[name] = loguniform(entry["low"], entry["high"])
        else:
            out[name] = uniform(entry["low"], entry["high"] - entry["low"])
    return out


def _search_sklearn(ctx: Context):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingRandomSearchCV, PredefinedSplit, RandomizedSearchCV

    run, data = ctx.run, ctx.data
    base = fixed_values(run.trainer, run.space)
    X = data.inputs(ctx.pool, ctx.size)
    y = data.y[ctx.pool]
    cv = ctx.folds or PredefinedSplit(np.r_[np.full(len(ctx.train), -1), np.zeros(len(ctx.dev), dtype=int)])
    n_splits = len(ctx.folds) or 1
    factor = int(tuning_settings()["HALVING_FACTOR"])
    halving = run.search == TuningRun.Search.HALVING_RANDOM
    if halving:  # evaluations: the candidates, then a factor fewer at each next rung
        rungs = max(1, math.ceil(math.log(run.budget_trials, factor)) if run.budget_trials > 1 else 1)
        expected = sum(math.ceil(run.budget_trials / factor**i) for i in range(rungs))
    else:
        expected = run.budget_trials
    pending = {"scores": [], "started": None}

    def hook(event, est, correct=0, n=0):
        if event == "fit":
            ctx.stop_if_needed()  # a cancel stops the search before its next fit
            if pending["started"] is None:
                pending["started"] = time.monotonic()
            return ctx.trainer(check_hyperparameters(run.trainer, est.params()))
        # The search scores the folds of one candidate one after the other (n_jobs=1).
        pending["scores"].append((correct, n))
        if len(pending["scores"]) == n_splits:
            total = sum(c for c, _ in pending["scores"])
            count = sum(m for _, m in pending["scores"])
            params = check_hyperparameters(run.trainer, est.params())
            metrics = {"accuracy": total / count, "n": count, "method": "cross_validation" if ctx.folds else "dev"}
            if halving:
                metrics["resource"] = {"max_iter": params["max_iter"]}
            trial = ctx.work.add_trial(params, metrics, time.monotonic() - pending["started"])
            pending.update(scores=[], started=None)
            _trial_progress(ctx, trial.number, expected)
            # Halving ranks the last rung (most iterations) above earlier ones, as scikit-learn does.
            key = (params["max_iter"] if halving else 0, metrics["accuracy"])
            if "key" not in ctx.best or key > ctx.best["key"]:
                ctx.best.update(key=key, trial=trial)
        return None

    Estimator = _estimator_class()
    estimator = Estimator(**{k: base[k] for k in ("C", "max_iter", "image_size", "max_features")}, hook=hook)
    # return_train_score off: halving turns it on, and every score call must be a held-out one.
    common = {
        "cv": cv,
        "refit": False,
        "return_train_score": False,
        "error_score": "raise",
        "random_state": run.random_state,
        "n_jobs": None,
    }
    distributions = _distributions(run.space)
    if halving:
        search = HalvingRandomSearchCV(
            estimator, distributions, n_candidates=run.budget_trials, resource="max_iter",
            max_resources=base["max_iter"], min_resources="exhaust", factor=factor, **common,
        )  # fmt: skip
    else:
        search = RandomizedSearchCV(estimator, distributions, n_iter=run.budget_trials, **common)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # few iterations on early rungs, by design
            search.fit(X, y)
    except BudgetSpent:
        pass


# --------------------------------------------------------------------------------------------
# The run: search, then register the best trial
# --------------------------------------------------------------------------------------------


def register(ctx: Context, trial, model=None, eval_proba=None) -> ModelVersion:
    """The best trial as a ready ModelVersion (not promoted): its kept model, or a refit under the
    protocol; evaluated, saved and registered as training/runs.py does, on the run's snapshot."""
    run = ctx.run
    version = ModelVersion.objects.create(
        project=run.project, trainer=run.trainer, hyperparameters=trial.params, policy=run.policy,
        random_state=run.random_state, snapshot=run.snapshot, created_by=run.created_by, attempts=1,
        started_at=timezone.now(), stage=ModelVersion.Stage.EVALUATING, progress=0.85,
    )  # fmt: skip
    try:
        if model is None:
            model, eval_proba = fit_protocol(ctx, trial.params)
        config = training_settings()
        report = evaluate_model(version, run.project, ctx.data, model, ctx.names, ctx.eval_rows, eval_proba,
                                ctx.fit_rows, ctx.test, ctx.folds, config)  # fmt: skip
        report["tuning"] = {"run": run.pk, "trial": trial.number}
        relative = Path(str(run.project_id)) / f"{version.short_id}-a1{model.extension}"
        model.save(artifact_root() / relative)
        _save_out_of_sample(version, ctx.data.item_ids[ctx.eval_rows], eval_proba)
        ModelVersion.objects.filter(pk=version.pk).update(
            status=ModelVersion.Status.READY, stage=ModelVersion.Stage.DONE, progress=1.0, artifact=str(relative),
            metrics=M.json_safe(report), finished_at=timezone.now(), epoch=getattr(model, "epochs_run_", None),
        )  # fmt: skip
    except BaseException as exc:
        ModelVersion.objects.filter(pk=version.pk).update(
            status=ModelVersion.Status.FAILED, error=readable_error(exc), finished_at=timezone.now()
        )
        raise
    version.refresh_from_db()
    return version


def search_and_register(work: Claim) -> None:
    ctx = _prepare(work)
    folder = artifact_root() / "tuning" / str(work.run.pk)
    work.enter(TuningRun.Stage.SEARCHING)
    try:
        if work.run.trainer == "keras_cnn":
            _search_keras(ctx, folder)
        else:
            _search_sklearn(ctx)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    work.check(force=True)  # a cancel that came during the last trial
    best = ctx.best.get("trial")
    if best is None:
        raise TrainingError("no trial finished within the budget; give the run more minutes")
    work.write(best_trial=best)
    work.enter(TuningRun.Stage.REGISTERING)
    version = register(ctx, best, ctx.best.get("model"), ctx.best.get("eval_proba"))
    done = work.mine().update(
        model_version=version, status=TuningRun.Status.DONE, stage=TuningRun.Stage.DONE, progress=1.0,
        finished_at=timezone.now(), heartbeat_at=timezone.now(),
    )  # fmt: skip
    if not done:  # superseded while registering: the later run registers its own
        ModelVersion.objects.filter(pk=version.pk).update(
            status=ModelVersion.Status.FAILED, error="Superseded by a later run of the same tuning run."
        )
        raise Superseded(work.run.pk)


def run_tuning(run_id: int) -> str | None:
    """Search, list the trials, register the best (what ``training.tune`` runs). Returns the final
    status, or None when there was nothing to do. A failure marks the run failed with a readable
    error; a cancel marks it cancelled, keeping the trials that finished."""
    work = claim(run_id)
    if work is None:
        return None
    try:
        with beating(work.mine, training_settings()["STALE_AFTER_SECONDS"]):
            search_and_register(work)
        return TuningRun.Status.DONE
    except Superseded:
        logger.info("tuning run %s: another run took over; this one stops", run_id)
        return None
    except Cancelled:
        work.mine().update(
            status=TuningRun.Status.CANCELLED, stage=TuningRun.Stage.DONE, finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )  # fmt: skip
        return TuningRun.Status.CANCELLED
    except Exception as exc:
        logger.exception("tuning run %s (%s) failed", run_id, work.run.trainer)
        work.mine().update(
            status=TuningRun.Status.FAILED, error=readable_error(exc), finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
        )  # fmt: skip
        return TuningRun.Status.FAILED
