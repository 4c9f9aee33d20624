"""Tuning runs: launch (space and budget checked), cancel, a worker's claim, and the run itself.

- :func:`start_tuning` (a request) checks the trainer, the search, the space and the budget, creates
  a ``queued`` :class:`~training.models.TuningRun` and queues ``training.tune`` once the transaction
  commits (by name, through config/queueing.py: services never import tasks).
- :func:`training.tuning_search.run_tuning` (the worker; that module pulls in scikit-learn's search
  or KerasTuner, so only the task imports it) claims the run through :func:`claim` here, with a
  fresh ``run_token``. Every write of the run is conditional on its token, as a training's is
  (training/runs.py), so of two deliveries only the last claim writes, and a heartbeat thread
  (training/heartbeat.py) stamps the row while the search runs; the reaper
  (training/recovery.py: ``reap_tuning_runs``) re-queues a run whose heartbeat stopped. A re-run
  starts the search over: the trials of the lost run are deleted when it claims the run, because
  they were scored by a search state that died with the worker.
- :func:`cancel` asks a run to stop. A queued run is cancelled at once; a running one stops at its
  worker's next check, made between trials and at every epoch (Keras) or fit (scikit-learn), so it
  stops within the trial it was in. A trial cut short is not listed.

The search space (``space``) maps a hyperparameter of the trainer to one of
``{"low": a, "high": b, "log": bool}`` (a range; whole numbers for an integer hyperparameter),
``{"values": [...]}`` (a choice) or a plain number (fixed). Every value must lie within the
trainer's own bounds (training/trainers.py). ``image_size`` may only be fixed: the inputs are
loaded once per run. Hyperband sets the epochs of each trial itself, up to ``epochs`` (fixed);
successive halving spends ``max_iter`` as its resource, up to ``max_iter`` (fixed).
"""

from __future__ import annotations

import logging
import math
import time
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.access import acting_user
from config import queueing

from .conf import ERROR_CHARS, MAX_SEED, training_settings
from .datasets import check_policy
from .errors import Conflict, TrainingError
from .models import TuningRun, TuningTrial
from .registry import check_trainer
from .trainers import check_hyperparameters, get_trainer

logger = logging.getLogger(__name__)

DEFAULTS = {"MAX_TRIALS": 50, "MAX_MINUTES": 240, "MAX_KERAS_EPOCHS": 200, "HALVING_FACTOR": 3}
SEARCHES = {
    "keras_cnn": (TuningRun.Search.RANDOM, TuningRun.Search.HYPERBAND),
    "sklearn_logreg": (TuningRun.Search.RANDOM, TuningRun.Search.HALVING_RANDOM),
}
# The resource each budget-aware search spends, which the space may only fix.
RESOURCE = {TuningRun.Search.HYPERBAND: "epochs", TuningRun.Search.HALVING_RANDOM: "max_iter"}
FIXED_ONLY = ("image_size",)
MAX_CHOICES = 50
CHECK_EVERY_SECONDS = 0.5
STAGE_SPAN = {
    TuningRun.Stage.SNAPSHOT: (0.0, 0.03),
    TuningRun.Stage.LOADING: (0.03, 0.08),
    TuningRun.Stage.SEARCHING: (0.08, 0.95),
    TuningRun.Stage.REGISTERING: (0.95, 1.0),
}


def tuning_settings() -> dict:
    return {**DEFAULTS, **getattr(settings, "CONCORD_TUNING", {})}


# --------------------------------------------------------------------------------------------
# Checking a launch
# --------------------------------------------------------------------------------------------


def _number(value, kind, where):
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TrainingError(f"{where} must be a number, got {value!r}", "space")
    if kind is int:
        if float(value) != int(value):
            raise TrainingError(f"{where} must be a whole number, got {value!r}", "space")
        return int(value)
    return float(value)


def _in_bounds(value, low, high, where):
    if (low is not None and value < low) or (high is not None and value > high):
        raise TrainingError(f"{where} must lie in the trainer's range [{low}, {high}], got {value!r}", "space")


def check_space(trainer: str, search: str, space) -> dict:
    """The space in its stored form: {name: {"fixed": v} | {"low", "high", "log"} | {"values": [...]}}.
    Raises TrainingError on ``space`` naming the key and what is wrong with it."""
    specs = get_trainer(trainer).hyperparameter_specs
    if not isinstance(space, dict):
        raise TrainingError("space must be an object mapping hyperparameters to ranges, choices or values", "space")
    out = {}
    for key, entry in space.items():
        if key not in specs:
            raise TrainingError(
                f"{trainer} has no hyperparameter {key!r}; it takes {', '.join(sorted(specs))}", "space"
            )
        kind, _default, low, high = specs[key]
        fixed_only = key in FIXED_ONLY or key == RESOURCE.get(search)
        if isinstance(entry, dict):
            if fixed_only:
                why = "the inputs are loaded once per run" if key in FIXED_ONLY else f"{search} sets it per trial"
                raise TrainingError(f"space.{key} can only be fixed (a number): {why}", "space")
            extra = set(entry) - {"low", "high", "log", "values"}
            if extra:
                raise TrainingError(f"space.{key} has unknown field(s) {', '.join(sorted(extra))}", "space")
            if "values" in entry:
                if set(entry) != {"values"}:
                    raise TrainingError(f"space.{key}: give either values or low/high, not both", "space")
                values = entry["values"]
                if not isinstance(values, list) or not 1 <= len(values) <= MAX_CHOICES:
                    raise TrainingError(f"space.{key}.values must be a list of 1 to {MAX_CHOICES} numbers", "space")
                checked = []
                for v in values:
                    v = _number(v, kind, f"space.{key}.values")
                    _in_bounds(v, low, high, f"space.{key}.values")
                    checked.append(v)
                out[key] = {"values": sorted(set(checked))}
                continue
            if "low" not in entry or "high" not in entry:
                raise TrainingError(f"space.{key} needs low and high (or values)", "space")
            lo, hi = _number(entry["low"], kind, f"space.{key}.low"), _number(entry["high"], kind, f"space.{key}.high")
            _in_bounds(lo, low, high, f"space.{key}.low")
            _in_bounds(hi, low, high, f"space.{key}.high")
            if not lo < hi:
                raise TrainingError(f"space.{key}: low ({lo}) must be below high ({hi})", "space")
            log = entry.get("log", False)
            if not isinstance(log, bool):
                raise TrainingError(f"space.{key}.log must be true or false", "space")
            if log and lo <= 0:
                raise TrainingError(f"space.{key}: a log range needs low > 0", "space")
            out[key] = {"low": lo, "high": hi, "log": log}
        else:
            value = _number(entry, kind, f"space.{key}")
            _in_bounds(value, low, high, f"space.{key}")
            out[key] = {"fixed": value}
    if not any("fixed" not in e for e in out.values()):
        raise TrainingError("space must search at least one hyperparameter (a range or a list of values)", "space")
    if trainer == "keras_cnn":
        epochs = fixed_values(trainer, out)["epochs"]
        limit = int(tuning_settings()["MAX_KERAS_EPOCHS"])
        if epochs > limit:
            raise TrainingError(f"space.epochs: at most {limit} epochs per trial on this machine", "space")
    return out


def fixed_values(trainer: str, space: dict) -> dict:
    """The trainer's hyperparameters with the space's fixed values (defaults elsewhere)."""
    fixed = {k: e["fixed"] for k, e in space.items() if "fixed" in e}
    return check_hyperparameters(trainer, fixed)


def check_budget(budget_trials, budget_minutes) -> tuple[int, int]:
    config = tuning_settings()
    for name, value, limit in (
        ("budget_trials", budget_trials, int(config["MAX_TRIALS"])),
        ("budget_minutes", budget_minutes, int(config["MAX_MINUTES"])),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainingError(f"{name} must be a whole number of at least 1", name)
        if value > limit:
            raise TrainingError(f"{name} is at most {limit} on this machine (CONCORD_TUNING), got {value}", name)
    return budget_trials, budget_minutes


def start_tuning(
    project, *, trainer, search, space, budget_trials, budget_minutes, user=None, policy=None, random_state=None
) -> TuningRun:
    """Create a queued tuning run, everything checked, and queue it on commit."""
    check_trainer(project, trainer)
    if search not in SEARCHES[trainer]:
        raise TrainingError(f"{trainer} is tuned by {' or '.join(SEARCHES[trainer])}, not {search!r}", "search")
    space = check_space(trainer, search, space)
    budget_trials, budget_minutes = check_budget(budget_trials, budget_minutes)
    policy = check_policy(policy)
    seed = training_settings()["RANDOM_STATE"] if random_state is None else random_state
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise TrainingError(f"random_state must be a whole number in [0, {MAX_SEED}]", "random_state")
    with transaction.atomic():
        run = TuningRun.objects.create(
            project=project,
            trainer=trainer,
            search=search,
            space=space,
            budget_trials=budget_trials,
            budget_minutes=budget_minutes,
            policy=policy,
            random_state=seed,
            created_by=acting_user(user),
        )
        run_id = run.pk
        transaction.on_commit(lambda: enqueue(run_id))
    return run


def enqueue(run_id: int) -> None:
    """Queue ``training.tune``; if the broker refuses, the run fails with that reason."""
    try:
        queueing.task(queueing.TUNE).apply_async((run_id,), queue=training_settings()["QUEUE"] or None)
    except Exception as exc:
        logger.exception("could not queue tuning run %s", run_id)
        TuningRun.objects.filter(pk=run_id, status__in=[TuningRun.Status.QUEUED, TuningRun.Status.RUNNING]).update(
            status=TuningRun.Status.FAILED,
            error=f"Could not queue the tuning run (is the Celery broker reachable?): {exc}"[:ERROR_CHARS],
            finished_at=timezone.now(),
        )


def cancel(run: TuningRun) -> TuningRun:
    """Ask the run to stop: a queued run is cancelled now, a running one at its worker's next check."""
    with transaction.atomic():
        run = TuningRun.objects.select_for_update().get(pk=run.pk)
        if not run.is_active:
            raise Conflict(f"tuning run {run.pk} is {run.status}; only a queued or running run can be cancelled")
        fields = {"cancel_requested": True}
        if run.status == TuningRun.Status.QUEUED and not run.run_token:
            fields.update(status=TuningRun.Status.CANCELLED, finished_at=timezone.now(), stage=TuningRun.Stage.DONE)
        TuningRun.objects.filter(pk=run.pk).update(**fields)
    run.refresh_from_db()
    return run


# --------------------------------------------------------------------------------------------
# The worker's claim
# --------------------------------------------------------------------------------------------


class Cancelled(Exception):
    """The MLE cancelled the run; the search stops where it is."""


class Superseded(Exception):
    """Another delivery claimed the run (or the reaper re-queued it); this one stops quietly."""


class Claim:
    """One worker's claim on a run: every write goes through here, conditional on the token."""

    def __init__(self, run: TuningRun, token: str):
        self.run = run
        self.token = token
        self.stage = None
        self.started = time.monotonic()
        self._last_check = 0.0

    def mine(self):
        return TuningRun.objects.filter(pk=self.run.pk, run_token=self.token, status=TuningRun.Status.RUNNING)

    def write(self, **fields):
        if not self.mine().update(heartbeat_at=timezone.now(), **fields):
            raise Superseded(self.run.pk)

    def enter(self, stage):
        self.stage = stage
        self.write(stage=stage, progress=STAGE_SPAN[stage][0])

    def advance(self, fraction):
        low, high = STAGE_SPAN[self.stage]
        self.write(progress=min(max(low + (high - low) * float(fraction), 0.0), 1.0))

    def minutes_left(self) -> float:
        return self.run.budget_minutes - (time.monotonic() - self.started) / 60

    def check(self, force=False):
        """Raise Cancelled when the MLE asked to stop, Superseded when the run is no longer ours.
        Reads the row at most every CHECK_EVERY_SECONDS (it is called at every epoch or fit)."""
        now = time.monotonic()
        if not force and now - self._last_check < CHECK_EVERY_SECONDS:
            return
        self._last_check = now
        row = TuningRun.objects.filter(pk=self.run.pk).values("run_token", "status", "cancel_requested").first()
        if row is None or row["run_token"] != self.token or row["status"] != TuningRun.Status.RUNNING:
            raise Superseded(self.run.pk)
        if row["cancel_requested"]:
            raise Cancelled(self.run.pk)

    def add_trial(self, params, dev_metrics, seconds, status=TuningTrial.Status.COMPLETED, error=""):
        """List one trial (conditional on the claim, so a superseded run lists nothing more)."""
        with transaction.atomic():
            if not self.mine().select_for_update().exists():
                raise Superseded(self.run.pk)
            number = TuningTrial.objects.filter(run_id=self.run.pk).count() + 1
            return TuningTrial.objects.create(
                run_id=self.run.pk,
                number=number,
                params=params,
                dev_metrics=dev_metrics,
                seconds=round(float(seconds), 3),
                status=status,
                error=error[:ERROR_CHARS],
            )


def claim(run_id: int) -> Claim | None:
    """Take the run (a new token, attempts + 1, trials of a lost run cleared); None when there is
    nothing to do (gone, cancelled or finished: a second delivery of a finished task is a no-op)."""
    with transaction.atomic():
        run = TuningRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or not run.is_active:
            return None
        if run.cancel_requested:
            TuningRun.objects.filter(pk=run.pk).update(
                status=TuningRun.Status.CANCELLED, stage=TuningRun.Stage.DONE, finished_at=timezone.now()
            )
            return None
        token = uuid.uuid4().hex
        now = timezone.now()
        TuningRun.objects.filter(pk=run.pk).update(best_trial=None)
        TuningTrial.objects.filter(run=run).delete()
        TuningRun.objects.filter(pk=run.pk).update(
            status=TuningRun.Status.RUNNING,
            run_token=token,
            attempts=run.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            stage=TuningRun.Stage.SNAPSHOT,
            progress=0.0,
        )
        run.refresh_from_db()
    return Claim(run, token)


def progress_payload(run: TuningRun, trials: int | None = None) -> dict:
    """The small JSON the tuning page polls."""
    stage_label = run.get_stage_display()
    if run.status == TuningRun.Status.RUNNING and run.error:
        stage_label = f"{stage_label} · {run.error}"
    return {
        "id": run.pk,
        "status": run.status,
        "stage": run.stage,
        "stage_label": stage_label,
        "progress": round(run.progress, 4),
        "trials": trials if trials is not None else run.trials.count(),
        "cancel_requested": run.cancel_requested,
        "error": run.error,
    }
