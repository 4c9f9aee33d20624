"""Work whose worker stopped responding: the heartbeat, and the reapers that re-queue it (from the
step a cycle reached) or fail it with the reason after MAX_ATTEMPTS runs. The real-process kill is
tests/integration/test_worker_kill.py; here the steps run in this process and the kill is simulated
as in test_cycles.py (an exception no Python cleanup catches, then a heartbeat left in the past)."""

import threading
import time

import pytest
from django.utils import timezone

from active_learning import recovery as cycle_recovery
from active_learning import services
from active_learning.models import Cycle, CycleSelection
from annotation.models import QueueEntry
from training import recovery
from training import services as training
from training.heartbeat import beating
from training.models import ModelExport, ModelVersion
from training.trainers import SklearnLogReg

from .training_data import add_digit_items


class Killed(BaseException):
    """The worker dies mid-step: no Python cleanup runs after it, as with SIGKILL."""


def die(*args, **kwargs):
    raise Killed


def silence(model, pk, minutes=120):
    """The worker went quiet ``minutes`` ago (its heartbeat stopped then)."""
    at = timezone.now() - timezone.timedelta(minutes=minutes)
    model.objects.filter(pk=pk).update(heartbeat_at=at)
    return timezone.localtime(at).strftime("%H:%M")


def killed_while(al_project, mle, monkeypatch, *, target, name, step="train"):
    """A cycle whose worker died in ``step`` (``target.name`` raised Killed), the steps before it done."""
    cycle = services.launch(al_project, user=mle, strategy="mix", batch_size=12)
    if step == "score":
        services.train_step(cycle.pk)
    with monkeypatch.context() as patch:
        patch.setattr(target, name, die)
        with pytest.raises(Killed):
            getattr(services, f"{step}_step")(cycle.pk)
    cycle.refresh_from_db()
    assert cycle.status == "running" and cycle.run_token
    return cycle


@pytest.fixture
def chains(monkeypatch):
    """What the reapers queue, instead of the broker: [(kind, id, stage)]."""
    queued = []
    monkeypatch.setattr(services, "queue_chain", lambda pk, stage: queued.append(("cycle", pk, stage)))
    monkeypatch.setattr(training, "enqueue", lambda pk: queued.append(("model", pk, None)))
    from training import exports

    monkeypatch.setattr(exports, "enqueue", lambda pk: queued.append(("export", pk, None)))
    return queued


@pytest.mark.django_db
def test_a_silent_cycle_is_requeued_from_the_step_it_reached_and_finishes(
    al_project, mle, monkeypatch, chains, django_capture_on_commit_callbacks
):
    cycle = killed_while(al_project, mle, monkeypatch, target=training, name="read_inputs", step="score")
    assert cycle.stage == "scoring"
    at = silence(Cycle, cycle.pk)

    with django_capture_on_commit_callbacks(execute=True):
        assert cycle_recovery.reap() == {"requeued": [cycle.pk], "failed": []}
    cycle.refresh_from_db()
    assert chains == [("cycle", cycle.pk, "scoring")]
    note = f"The worker stopped responding at {at} while scoring the pool; re-queued (attempt 2 of 3)."
    assert cycle.error == note
    assert (cycle.status, cycle.stage, cycle.recoveries, cycle.run_token) == ("queued", "scoring", 1, "")
    assert services.progress_payload(cycle)["stage_label"] == f"Scoring the pool · {note}"
    assert cycle_recovery.reap() == {"requeued": [], "failed": []}  # waiting for its worker is not silence

    for step in ("score", "select", "queue"):  # the re-queued chain
        getattr(services, f"{step}_step")(cycle.pk)
    cycle.refresh_from_db()
    assert cycle.status == "done" and cycle.error == note  # the page keeps saying what happened
    assert cycle.model_version.attempts == 1  # the model was not trained again
    assert QueueEntry.objects.filter(project=al_project).count() == CycleSelection.objects.count() == 12


@pytest.mark.django_db
def test_the_broker_s_redelivery_racing_the_reaper_s_requeue_queues_one_batch(
    al_project, mle, monkeypatch, chains, django_capture_on_commit_callbacks
):
    """Both deliveries of the training step run, the broker's starting while the reaper's is
    mid-fit; then both chains' later steps run. The later claim wins each time: one model, one
    batch, and every queue entry the project has is the batch's."""
    cycle = killed_while(al_project, mle, monkeypatch, target=SklearnLogReg, name="fit")
    silence(Cycle, cycle.pk)
    silence(ModelVersion, cycle.model_version_id)
    with django_capture_on_commit_callbacks(execute=True):
        cycle_recovery.reap()
    assert chains == [("cycle", cycle.pk, "training")]
    version = cycle.model_version
    version.refresh_from_db()
    assert version.run_token == "" and version.error.endswith("re-queued (attempt 2 of 3).")

    fit = SklearnLogReg.fit
    redelivered = []

    def fit_while_the_broker_redelivers(self, *args, **kwargs):
        if not redelivered:
            redelivered.append("started")
            redelivered.append(services.train_step(cycle.pk))  # the broker's copy, from the start
        return fit(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SklearnLogReg, "fit", fit_while_the_broker_redelivers)
        assert services.train_step(cycle.pk) is None  # the reaper's copy: taken over, it stops
    assert redelivered == ["started", "scoring"]
    for step in ("score", "select", "queue", "score", "select", "queue"):  # both chains go on
        getattr(services, f"{step}_step")(cycle.pk)
    cycle.refresh_from_db()
    assert cycle.status == "done" and cycle.summary["superseded_entries"] == 0
    entries = QueueEntry.objects.filter(project=al_project)
    assert entries.count() == CycleSelection.objects.filter(cycle=cycle).count() == 12
    assert ModelVersion.objects.filter(project=al_project).count() == 1


@pytest.mark.django_db
def test_after_max_attempts_the_cycle_and_its_model_fail_with_the_reason(
    al_project, mle, monkeypatch, chains, django_capture_on_commit_callbacks
):
    cycle = killed_while(al_project, mle, monkeypatch, target=SklearnLogReg, name="fit")
    Cycle.objects.filter(pk=cycle.pk).update(recoveries=2)  # attempts 1, 2 and 3 have run
    at = silence(Cycle, cycle.pk)
    silence(ModelVersion, cycle.model_version_id)
    with django_capture_on_commit_callbacks(execute=True):
        assert cycle_recovery.reap() == {"requeued": [], "failed": [cycle.pk]}
    cycle.refresh_from_db()
    reason = (
        f"The worker stopped responding at {at} while training and evaluating; gave up after 3 attempts. "
        "The queue was not changed. Launch a new cycle."
    )
    assert (cycle.status, cycle.error) == ("failed", reason) and cycle.finished_at
    assert (cycle.model_version.status, cycle.model_version.error) == ("failed", reason)
    assert chains == [] and not QueueEntry.objects.exists()
    assert services.launch(al_project, user=mle, strategy="random", batch_size=5).number == 2


@pytest.mark.django_db
def test_live_waiting_and_finished_cycles_are_left_alone(al_project, mle, monkeypatch, settings, chains):
    cycle = killed_while(al_project, mle, monkeypatch, target=SklearnLogReg, name="fit")
    assert cycle_recovery.reap() == {"requeued": [], "failed": []}  # it beat a moment ago
    silence(Cycle, cycle.pk)
    assert cycle_recovery.reap() == {"requeued": [], "failed": []}  # its model still beats
    Cycle.objects.filter(pk=cycle.pk).update(run_token="", status="queued")
    silence(ModelVersion, cycle.model_version_id)
    assert cycle_recovery.reap() == {"requeued": [], "failed": []}  # waiting for a worker, not claimed
    Cycle.objects.filter(pk=cycle.pk).update(run_token="x", status="done")
    assert cycle_recovery.reap() == {"requeued": [], "failed": []}
    settings.CONCORD_WORKER = {"MAX_ATTEMPTS": 1}
    Cycle.objects.filter(pk=cycle.pk).update(status="running")
    assert cycle_recovery.reap() == {"requeued": [], "failed": [cycle.pk]}  # one attempt allowed: no retry
    assert chains == []


@pytest.mark.django_db
def test_a_silent_training_is_requeued_then_failed_after_max_attempts(
    project, chains, django_capture_on_commit_callbacks
):
    add_digit_items(project, 30)
    version = ModelVersion.objects.create(project=project, trainer="sklearn_logreg")
    run = training.claim(version.pk)
    run.enter(ModelVersion.Stage.FITTING)
    at = silence(ModelVersion, version.pk)

    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.reap() == {"models": {"requeued": [version.short_id], "failed": []},
                                   "exports": {"requeued": [], "failed": []}}  # fmt: skip
    version.refresh_from_db()
    note = f"The worker stopped responding at {at} while fitting; re-queued (attempt 2 of 3)."
    assert (version.status, version.error, version.recoveries, version.run_token) == ("training", note, 1, "")
    assert chains == [("model", version.pk, None)]
    with pytest.raises(training.Superseded):
        run.write(progress=0.5)  # the lost run, were it still alive, stops at its next write

    assert training.run_training(version.pk) == "ready"  # the re-queued task
    version.refresh_from_db()
    assert version.attempts == 2 and version.recoveries == 1

    second = ModelVersion.objects.create(project=project, trainer="sklearn_logreg", recoveries=2)
    training.claim(second.pk)
    at = silence(ModelVersion, second.pk)
    assert recovery.reap_versions() == {"requeued": [], "failed": [second.short_id]}
    second.refresh_from_db()
    assert second.status == "failed"
    assert second.error == (
        f"The worker stopped responding at {at} while freezing the labels; gave up after 3 attempts. "
        "Start a new training."
    )


@pytest.mark.django_db
def test_a_cycle_s_model_is_left_to_the_cycle_s_reaper(al_project, mle, monkeypatch, chains):
    cycle = killed_while(al_project, mle, monkeypatch, target=SklearnLogReg, name="fit")
    silence(ModelVersion, cycle.model_version_id)
    assert recovery.reap_versions() == {"requeued": [], "failed": []}
    assert chains == []


@pytest.mark.django_db
def test_a_silent_export_is_requeued_then_failed(project, chains, django_capture_on_commit_callbacks):
    version = ModelVersion.objects.create(project=project, trainer="keras_cnn")
    export = ModelExport.objects.create(model_version=version, format="int8", run_token="lost")
    at = silence(ModelExport, export.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.reap_exports() == {"requeued": [export.pk], "failed": []}
    export.refresh_from_db()
    assert export.error == f"The worker stopped responding at {at} while exporting to int8; re-queued (attempt 2 of 3)."
    assert (export.status, export.run_token, export.recoveries) == ("exporting", "", 1)
    assert chains == [("export", export.pk, None)]

    ModelExport.objects.filter(pk=export.pk).update(run_token="lost again", recoveries=2)
    at = silence(ModelExport, export.pk)
    assert recovery.reap_exports() == {"requeued": [], "failed": [export.pk]}
    export.refresh_from_db()
    assert export.status == "failed" and export.error == (
        f"The worker stopped responding at {at} while exporting to int8; gave up after 3 attempts. "
        "Export the model again."
    )


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_beats_while_the_run_holds_its_claim_and_stops_when_it_loses_it(project):
    """The thread writes through its own database connection, so the rows are committed here."""
    version = ModelVersion.objects.create(project=project, trainer="sklearn_logreg")
    run = training.claim(version.pk)
    first = ModelVersion.objects.get(pk=version.pk).heartbeat_at

    def beats():
        return [t for t in threading.enumerate() if t.name == "concord-heartbeat"]

    with beating(run._mine, stale_after=1.5):  # a beat every 0.5 s
        deadline = time.monotonic() + 30
        while ModelVersion.objects.get(pk=version.pk).heartbeat_at == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ModelVersion.objects.get(pk=version.pk).heartbeat_at > first
        training.claim(version.pk)  # another delivery takes over: this run's beat finds no row
        deadline = time.monotonic() + 30
        while beats() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not beats()


@pytest.mark.django_db
def test_the_pages_say_why_the_work_was_requeued(
    client, al_project, mle, monkeypatch, chains, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    cycle = killed_while(al_project, mle, monkeypatch, target=SklearnLogReg, name="fit")
    at = silence(Cycle, cycle.pk)
    silence(ModelVersion, cycle.model_version_id)
    with django_capture_on_commit_callbacks(execute=True):
        cycle_recovery.reap()
    note = f"The worker stopped responding at {at} while training and evaluating; re-queued (attempt 2 of 3)."
    client.force_login(mle)
    for page in ("cycle-list", "cycle-detail"):
        args = [al_project.slug] + ([1] if page == "cycle-detail" else [])
        assert note in client.get(reverse(f"cycles:{page}", args=args)).content.decode(), page
    live = client.get(reverse("cycles:cycle-status", args=[al_project.slug])).json()["cycles"]
    assert [c["stage_label"] for c in live] == [f"Training: fitting · {note}"]
    models = client.get(reverse("training:model-status", args=[al_project.slug])).json()["models"]
    assert [m["stage_label"] for m in models] == [f"Fitting · {note}"]
