"""Active-learning cycles: the four steps, the queue they write, refusals, cancel and killed workers."""

import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from active_learning import services
from active_learning.models import Cycle, CycleSelection
from annotation.models import GoldLabelClass, QueueEntry, ReviewRequest
from annotation.services import labeling
from annotation.services.adjudication import send_back
from training.models import ModelVersion

from .training_data import label


class NoGoldDraw:
    """The labeling queue's draw, fixed so that it never serves a gold item instead."""

    def random(self):
        return 0.999


class Killed(BaseException):
    """The worker dies mid-step: no Python cleanup runs after it, as with SIGKILL."""


def die(*args, **kwargs):
    raise Killed


def launch(project, user=None, **kwargs):
    kwargs.setdefault("strategy", "mix")
    kwargs.setdefault("batch_size", 12)
    return services.launch(project, user=user, **kwargs)


def run_steps(cycle, steps=("train", "score", "select", "queue")):
    """Run the named steps in this process, as the worker would, and return the cycle as it is then."""
    for name in steps:
        getattr(services, f"{name}_step")(cycle.pk)
    cycle.refresh_from_db()
    return cycle


@pytest.mark.django_db
def test_a_cycle_trains_scores_selects_and_queues_its_batch(al_project, mle, labeler):
    cycle = run_steps(launch(al_project, mle))
    assert cycle.status == "done", cycle.error
    assert cycle.stage == "done" and cycle.progress == 1.0 and cycle.number == 1
    version = cycle.model_version
    assert version.status == "ready" and version.snapshot.size == 60
    assert cycle.pool_size == 54 and cycle.summary["selected"] == 12
    assert sum(block["n"] for block in cycle.summary["by_strategy"].values()) == 12
    assert {name: block["n"] for name, block in cycle.summary["by_strategy"].items()} == {
        "margin": 7, "error_model": 3, "random": 2
    }  # fmt: skip
    assert set(cycle.timings) == {"training", "scoring", "selecting", "queueing"}

    entries = list(QueueEntry.objects.filter(project=al_project, is_active=True).order_by("-priority"))
    selections = list(CycleSelection.objects.filter(cycle=cycle).order_by("position"))
    assert [e.item_id for e in entries] == [s.item_id for s in selections] == [r[0] for r in cycle.selection]
    assert all(s.queue_entry_id == e.pk for s, e in zip(selections, entries, strict=True))
    assert all(e.reason.startswith(f"cycle 1: {e.strategy} score") for e in entries)
    assert all(e.priority < 1_000_000 for e in entries)  # after an SME's send-back
    # The default mix (60 % margin, 25 % error model, 15 % random) takes turns along the queue.
    assert [e.strategy for e in entries[:4]] == ["margin", "error_model", "random", "margin"]

    served = labeling.next_item(al_project, labeler, rng=NoGoldDraw())
    assert served.item.pk == entries[0].item_id
    assert not services.scores_path(cycle).exists()  # the scores file goes once the batch is queued


@pytest.mark.parametrize("strategy", ["random", "least_confidence", "margin", "entropy", "error_model", "diversity"])
@pytest.mark.django_db
def test_every_strategy_runs_a_cycle_and_is_recorded_on_each_entry(al_project, strategy):
    cycle = run_steps(launch(al_project, strategy=strategy, batch_size=8))
    assert cycle.status == "done", cycle.error
    entries = QueueEntry.objects.filter(is_active=True)
    assert entries.count() == 8 and set(entries.values_list("strategy", flat=True)) == {strategy}
    assert cycle.summary["by_strategy"][strategy]["n"] == 8


@pytest.mark.django_db
def test_the_pool_is_unlabelled_train_items_without_gold_or_a_send_back(al_project, labeler, sme):
    items = list(al_project.items.order_by("pk"))
    unlabelled_train = [i for i in items[60:] if i.split == "train"]
    label(unlabelled_train[0], labeler, al_project.label_classes.get(name="crow"))
    send_back(al_project, unlabelled_train[1].pk, sme)
    labeling.refresh_queue_state(al_project)
    cycle = run_steps(launch(al_project), ("train",))
    pool = set(services.pool_items(al_project, cycle.model_version))
    assert pool == {i.pk for i in unlabelled_train[2:]}


@pytest.mark.django_db
def test_a_second_launch_is_refused_while_one_runs_and_allowed_after_cancel(al_project, mle):
    first = launch(al_project, mle)
    with pytest.raises(services.CycleConflict, match="cycle 1 of this project is still queued"):
        launch(al_project, mle)
    services.cancel(first, user=mle)
    assert first.status == "cancelled" and first.error == "Cancelled by mle."
    second = launch(al_project, mle)
    assert second.number == 2
    assert run_steps(first).status == "cancelled"  # a cancelled cycle's steps do nothing
    assert not QueueEntry.objects.exists()


@pytest.mark.django_db
def test_cancel_after_scoring_leaves_the_queue_and_removes_the_scores(al_project, mle):
    cycle = run_steps(launch(al_project, mle), ("train", "score"))
    assert cycle.stage == "selecting" and services.scores_path(cycle).exists()
    services.cancel(cycle, user=mle)
    run_steps(cycle, ("select", "queue"))
    assert cycle.status == "cancelled" and cycle.selection == []
    assert not QueueEntry.objects.exists() and not services.scores_path(cycle).exists()
    with pytest.raises(services.CycleConflict, match="only a queued or running cycle can be cancelled"):
        services.cancel(cycle)


@pytest.mark.django_db
def test_cancel_while_training_stops_the_model_too(al_project, mle):
    cycle = launch(al_project, mle)
    version = ModelVersion.objects.create(project=al_project, trainer="sklearn_logreg")
    Cycle.objects.filter(pk=cycle.pk).update(model_version=version, status="running", stage="training")
    services.cancel(cycle, user=mle)
    version.refresh_from_db()
    assert version.status == "failed" and version.error == "Cancelled with cycle 1."


@pytest.mark.django_db
def test_a_worker_killed_while_writing_the_queue_leaves_it_untouched_and_the_redelivery_finishes(
    al_project, mle, monkeypatch
):
    """The worker dies after the new entries are inserted and the last cycle's entries retired, but
    before the transaction commits: the queue is exactly as it was, and the redelivered step
    writes the whole batch."""
    run_steps(launch(al_project, mle, strategy="random", batch_size=5))
    cycle = run_steps(launch(al_project, mle), ("train", "score", "select"))
    before = list(QueueEntry.objects.order_by("pk").values_list("pk", "item_id", "is_active", "priority"))
    assert len(before) == 5 and all(active for _, _, active, _ in before)

    with monkeypatch.context() as patch:
        patch.setattr(CycleSelection.objects, "bulk_create", die)
        with pytest.raises(Killed):
            services.queue_step(cycle.pk)
    assert list(QueueEntry.objects.order_by("pk").values_list("pk", "item_id", "is_active", "priority")) == before
    cycle.refresh_from_db()
    assert cycle.status == "running" and cycle.stage == "queueing" and not cycle.selections.exists()

    assert services.queue_step(cycle.pk) == "done"  # the redelivery
    cycle.refresh_from_db()
    assert cycle.summary["superseded_entries"] == 5
    assert QueueEntry.objects.filter(is_active=True).count() == 12 and cycle.attempts == 5


@pytest.mark.django_db
def test_a_worker_killed_while_training_is_resumed_by_the_redelivery(al_project, mle, monkeypatch):
    from training.trainers import SklearnLogReg

    cycle = launch(al_project, mle)

    with monkeypatch.context() as patch:
        patch.setattr(SklearnLogReg, "fit", die)
        with pytest.raises(Killed):
            services.train_step(cycle.pk)
    cycle.refresh_from_db()
    assert cycle.status == "running" and cycle.stage == "training" and cycle.model_version.status == "training"
    assert run_steps(cycle).status == "done" and not QueueEntry.objects.exclude(cycle_selection__cycle=cycle).exists()
    assert cycle.model_version.attempts == 2 and ModelVersion.objects.count() == 1  # the same model, trained again


@pytest.mark.django_db
def test_a_worker_killed_while_scoring_is_resumed_by_the_redelivery(al_project, mle, monkeypatch):
    cycle = run_steps(launch(al_project, mle), ("train",))

    with monkeypatch.context() as patch:
        patch.setattr(services.training, "read_inputs", die)
        with pytest.raises(Killed):
            services.score_step(cycle.pk)
    cycle.refresh_from_db()
    assert cycle.status == "running" and cycle.stage == "scoring" and not QueueEntry.objects.exists()
    assert run_steps(cycle, ("score", "select", "queue")).status == "done"
    assert cycle.model_version.attempts == 1  # the model is not trained again


@pytest.mark.django_db
def test_a_training_failure_fails_the_cycle_with_its_reason(project, mle):
    cycle = run_steps(launch(project, mle))
    assert cycle.status == "failed"
    assert cycle.error.startswith(f"Training model {cycle.model_version.short_id} failed: ")
    assert "there are 0 usable train/dev labels" in cycle.error
    assert not QueueEntry.objects.exists()


@pytest.mark.django_db
def test_a_new_cycle_replaces_the_unlabelled_entries_of_the_last_one(al_project, mle, sme):
    first = run_steps(launch(al_project, mle, strategy="entropy", batch_size=5))
    held_back = first.selection[0][0]
    send_back(al_project, held_back, sme)  # an SME's entry is never replaced by a cycle
    second = run_steps(launch(al_project, mle, strategy="random", batch_size=5))
    assert second.status == "done", second.error
    assert second.summary["superseded_entries"] == 4
    active = QueueEntry.objects.filter(is_active=True)
    assert sorted(active.values_list("strategy", flat=True)) == ["random"] * 5 + ["send_back"]
    assert held_back not in {row[0] for row in second.selection}


@pytest.mark.django_db
def test_items_labelled_after_scoring_are_skipped_when_the_queue_is_written(al_project, mle, labeler):
    cycle = run_steps(launch(al_project, mle, strategy="least_confidence", batch_size=6), ("train", "score", "select"))
    first = al_project.items.get(pk=cycle.selection[0][0])
    label(first, labeler, al_project.label_classes.get(name="dove"))
    cycle = run_steps(cycle, ("queue",))
    assert cycle.summary["selected"] == 5 and cycle.summary["skipped"] == 1
    assert not QueueEntry.objects.filter(item=first).exists()


@pytest.mark.django_db
def test_ticking_review_sends_the_confidently_wrong_training_items_to_the_smes(al_project, mle):
    gold_items = list(al_project.items.filter(gold__isnull=False).order_by("pk")[:6])
    owl = al_project.label_classes.get(name="owl")
    for item in gold_items:  # wrong gold: the model will disagree with confidence
        GoldLabelClass.objects.filter(gold=item.gold).update(label_class=owl)
    cycle = run_steps(launch(al_project, mle, review_top_k=True))
    assert cycle.status == "done", cycle.error
    wrong = cycle.model_version.metrics["top_k"]["train"]["confidently_wrong"]
    assert wrong and cycle.summary["review_requests"] == len(wrong)
    requests = ReviewRequest.objects.filter(resolved_at__isnull=True)
    assert set(requests.values_list("item_id", flat=True)) == {row["item_id"] for row in wrong}
    assert all(r.reason.startswith("cycle 1: model ") and r.requested_by == mle for r in requests)


@pytest.mark.django_db
def test_a_silent_cycle_is_failed_when_the_next_one_is_launched(al_project, mle, settings):
    stale = launch(al_project, mle)
    settings.CONCORD_ACTIVE_LEARNING = {"STALE_AFTER_SECONDS": 0, "UNCLAIMED_AFTER_SECONDS": 0}
    fresh = launch(al_project, mle)
    stale.refresh_from_db()
    assert stale.status == "failed" and "No word from the worker" in stale.error
    assert fresh.number == 2 and fresh.status == "queued"


@pytest.mark.django_db
def test_a_cycle_no_worker_has_picked_up_yet_waits_longer_than_a_silent_one(al_project, mle, settings):
    from django.utils import timezone

    waiting = launch(al_project, mle)  # queued behind other work: no worker has claimed it
    settings.CONCORD_ACTIVE_LEARNING = {"STALE_AFTER_SECONDS": 0, "UNCLAIMED_AFTER_SECONDS": 3600}
    with pytest.raises(services.CycleConflict, match="cycle 1 of this project is still queued"):
        launch(al_project, mle)
    Cycle.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timezone.timedelta(hours=2))
    assert launch(al_project, mle).number == 2
    waiting.refresh_from_db()
    assert waiting.status == "failed"


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"strategy": "greedy"}, "strategy", "unknown strategy 'greedy'"),
        ({"batch_size": 0}, "batch_size", "batch size must be a whole number from 1 to 5000"),
        ({"batch_size": "10"}, "batch_size", "batch size must be a whole number"),
        ({"trainer": "svm"}, "trainer", "unknown trainer 'svm'"),
        ({"weights": "entropy:x"}, "weights", "the weight of entropy must be a number"),
        ({"weights": "entropy:0.5,nonsense:1"}, "weights", "name:weight pairs of"),
        ({"strategy": "entropy", "weights": "entropy:1"}, "weights", "weights are for the mix strategy only"),
    ],
)
@pytest.mark.django_db
def test_bad_requests_name_the_field_and_create_nothing(al_project, kwargs, field, message):
    with pytest.raises(services.CycleError, match=message) as caught:
        launch(al_project, **kwargs)
    assert caught.value.field == field
    assert not Cycle.objects.exists()


@pytest.mark.django_db
def test_text_projects_refuse_the_cnn(other_project):
    with pytest.raises(services.CycleError, match="keras_cnn does not train on text projects"):
        launch(other_project, trainer="keras_cnn")


@pytest.mark.django_db
def test_a_broker_that_refuses_the_chain_fails_the_cycle(al_project, monkeypatch):
    from celery.canvas import _chain

    def refuse(self, *args, **kwargs):
        raise ConnectionError("broker down")

    cycle = launch(al_project)
    monkeypatch.setattr(_chain, "apply_async", refuse)
    services.queue_chain(cycle.pk)
    cycle.refresh_from_db()
    assert cycle.status == "failed" and "is the Celery broker reachable?" in cycle.error


@pytest.mark.django_db
def test_run_cycle_command_sync_prints_the_batch(al_project, capsys):
    call_command("run_cycle", "birds", "--strategy", "margin", "--batch", "7", "--sync")
    out = capsys.readouterr().out
    cycle = Cycle.objects.get()
    assert cycle.status == "done" and cycle.summary["selected"] == 7
    assert "Cycle 1 of birds is done" in out and "margin: 7" in out
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        call_command("run_cycle", "nope")
    with pytest.raises(CommandError, match="batch size must be a whole number"):
        call_command("run_cycle", "birds", "--batch", "0")


# --------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_launch_refuse_read_and_cancel(api_as, al_project, mle, sme, labeler, outsider):
    cycles = reverse("cycles_api:project-cycles", args=[al_project.pk])
    launched = api_as(mle).post(cycles, {"strategy": "entropy", "batch_size": 10}, format="json")
    assert launched.status_code == 202, launched.data
    assert launched.data["status"] == "queued" and launched.data["number"] == 1 and launched.data["progress"] == 0
    again = api_as(mle).post(cycles, {}, format="json")
    assert again.status_code == 409 and "cycle 1 of this project is still queued" in again.data["project"][0]

    assert [c["number"] for c in api_as(sme).get(cycles).data["results"]] == [1]
    assert api_as(sme).post(cycles, {}, format="json").status_code == 403
    assert api_as(labeler).get(cycles).status_code == 404
    assert api_as(outsider).get(cycles).status_code == 404
    detail = reverse("cycles_api:cycle-detail", args=[launched.data["id"]])
    assert api_as(outsider).get(detail).status_code == 404 and api_as(labeler).get(detail).status_code == 404

    cancel = reverse("cycles_api:cycle-cancel", args=[launched.data["id"]])
    assert api_as(sme).post(cancel).status_code == 403
    cancelled = api_as(mle).post(cancel)
    assert cancelled.status_code == 200 and cancelled.data["status"] == "cancelled"
    assert api_as(mle).post(cancel).status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": "many"}, "batch_size"),
        ({"strategy": "greedy"}, "strategy"),
        ({"trainer": "svm"}, "trainer"),
        ({"weights": "entropy:-1"}, "weights"),
        ({"strategy": "margin", "weights": "margin:1"}, "weights"),
    ],
)
@pytest.mark.django_db
def test_api_bad_launches_are_400_naming_the_field(api_as, al_project, mle, body, field):
    response = api_as(mle).post(reverse("cycles_api:project-cycles", args=[al_project.pk]), body, format="json")
    assert response.status_code == 400 and field in response.data
    assert not Cycle.objects.exists()


@pytest.mark.django_db
def test_api_detail_lists_the_batch_in_queue_order(api_as, al_project, mle):
    cycle = run_steps(launch(al_project, mle, batch_size=6))
    data = api_as(mle).get(reverse("cycles_api:cycle-detail", args=[cycle.pk])).data
    assert data["status"] == "done" and data["model"] == cycle.model_version.short_id and data["progress"] == 1
    assert [row["item"] for row in data["batch"]] == [row[0] for row in cycle.selection]
    assert [row["position"] for row in data["batch"]] == list(range(6)) and all(r["queued"] for r in data["batch"])


@pytest.mark.django_db
def test_api_list_queries_do_not_grow_with_cycles(api_as, al_project, mle, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api_as(mle)
    url = reverse("cycles_api:project-cycles", args=[al_project.pk])
    Cycle.objects.create(project=al_project, number=1, strategy="mix", batch_size=5, trainer="sklearn_logreg")
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for number in range(2, 7):
        Cycle.objects.create(
            project=al_project, number=number, strategy="mix", batch_size=5, trainer="sklearn_logreg", status="done"
        )
    with django_assert_num_queries(len(one.captured_queries)):
        assert len(client.get(url).data["results"]) == 6


# --------------------------------------------------------------------------------------------
# A real worker
# --------------------------------------------------------------------------------------------


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_cycle_on_the_demo_and_the_labeler_gets_its_batch(api_as, settings):
    """The demo project (1,797 digits, simulated labels), a cycle launched through the API, a Celery
    worker (solo pool, in a thread) consuming the chain from the configured broker (Redis in CI)
    on a queue of its own; then a labeler's next item is the batch's first."""
    from uuid import uuid4

    from celery.contrib.testing.worker import start_worker
    from django.contrib.auth import get_user_model

    from annotation.services.demo import create_demo
    from config.celery import app

    queue = f"concord-test-cycles-{uuid4().hex[:8]}"
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "QUEUE": queue}
    project, _ = create_demo(password="demo-pass-1", simulate_labelers=3, log=lambda *args: None)
    users = get_user_model().objects
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue], loglevel="WARNING"):
        response = api_as(users.get(username="mle")).post(
            reverse("cycles_api:project-cycles", args=[project.pk]),
            {"strategy": "mix", "batch_size": 30},
            format="json",
        )
        assert response.status_code == 202, response.data
        cycle = Cycle.objects.get(pk=response.data["id"])
        deadline = time.monotonic() + 300
        while cycle.is_active and time.monotonic() < deadline:
            time.sleep(0.5)
            cycle.refresh_from_db()
    assert cycle.status == "done", cycle.error or f"still {cycle.stage} after 300 s"
    assert cycle.pool_size > 100 and cycle.summary["selected"] == 30

    entries = list(QueueEntry.objects.filter(project=project, is_active=True).order_by("-priority"))
    assert len(entries) == 30 and [e.item_id for e in entries] == [row[0] for row in cycle.selection]
    assert {e.strategy for e in entries} == {"margin", "error_model", "random"}
    assert all(e.reason.startswith(f"cycle 1: {e.strategy} score") and e.score is not None for e in entries)

    labeler = users.get(username="labeler1")
    served = labeling.next_item(project, labeler, rng=NoGoldDraw())
    assert served.item.pk == entries[0].item_id
