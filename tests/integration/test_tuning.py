"""Tuning runs: checking a launch, the search on a real worker, cancel, the reaper, API and pages."""

import time

import pytest
from django.urls import reverse
from django.utils import timezone

from training import services, tuning, tuning_search
from training.models import ModelVersion, TuningRun
from training.recovery import reap_tuning_runs

from .training_data import add_digit_items

LOGREG_SPACE = {"C": {"low": 1e-3, "high": 10.0, "log": True}, "image_size": 8}
KERAS_SPACE = {
    "learning_rate": {"low": 1e-3, "high": 3e-2, "log": True},
    "filters": {"values": [4, 8]},
    "epochs": 3,
    "image_size": 8,
    "batch_size": 16,
    "augment": 0.0,
}


@pytest.fixture
def holdout(settings):
    """Score on the dev split from 10 labels on (the default switches to K-fold below 200)."""
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "CV_BELOW_LABELS": 10}


def launch(project, trainer="sklearn_logreg", search="random", space=None, trials=3, minutes=5, **kw):
    return tuning.start_tuning(
        project, trainer=trainer, search=search, space=space or LOGREG_SPACE, budget_trials=trials,
        budget_minutes=minutes, **kw,
    )  # fmt: skip


def finished(run):
    run.refresh_from_db()
    return run


def assert_best_registered(run):
    assert run.status == "done", run.error
    trials = list(run.trials.all())
    assert trials and all(t.status == "completed" for t in trials)
    assert run.best_trial is not None and run.model_version is not None
    version = run.model_version
    assert version.status == "ready" and not version.is_promoted
    assert version.snapshot_id == run.snapshot_id and version.hyperparameters == run.best_trial.params
    # The registered model's dev (or out-of-fold) accuracy is the best trial's, exactly.
    assert version.headline_accuracy == run.best_trial.accuracy
    assert version.metrics["evaluation"]["method"] == run.method == run.best_trial.dev_metrics["method"]
    assert services.artifact_path(version).exists()
    assert not (services.artifact_root() / "tuning" / str(run.pk)).exists()
    return trials


# --------------------------------------------------------------------------------------------
# The search, in this process
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_random_search_on_dev_registers_the_best_trial(project, holdout, django_capture_on_commit_callbacks):
    add_digit_items(project, 60)
    with django_capture_on_commit_callbacks(execute=False):
        run = launch(project, trials=3)
    assert tuning_search.run_tuning(run.pk) == "done"
    trials = assert_best_registered(finished(run))
    assert len(trials) == 3 and run.method == "dev"
    assert len({t.params["C"] for t in trials}) == 3  # sampled, not the default thrice
    assert run.best_trial.accuracy == max(t.accuracy for t in trials)
    assert all(t.dev_metrics["n"] == 12 for t in trials)  # the 12 dev items of 60


@pytest.mark.django_db
def test_halving_under_k_fold_spends_max_iter_and_registers_the_last_rungs_best(project):
    add_digit_items(project, 45)  # fewer than CV_BELOW_LABELS: scored out of fold, as training does
    run = launch(project, search="halving_random", trials=4, space={**LOGREG_SPACE, "max_iter": 90})
    assert tuning_search.run_tuning(run.pk) == "done"
    trials = assert_best_registered(finished(run))
    assert run.method == "cross_validation", [(t.params, t.dev_metrics) for t in trials]
    assert all(t.dev_metrics["n"] == 36 for t in trials), [(t.params, t.dev_metrics) for t in trials]
    rungs = sorted({t.params["max_iter"] for t in trials})
    assert len(rungs) >= 2 and rungs[-1] <= 90
    last = [t for t in trials if t.params["max_iter"] == rungs[-1]]
    assert run.best_trial.params["max_iter"] == rungs[-1]
    assert run.best_trial.accuracy == max(t.accuracy for t in last)
    assert len(trials) > 4  # candidates come back at the next rung


@pytest.mark.django_db
def test_trial_scores_equal_scikit_learns_own_search(project, holdout):
    """Each trial's accuracy is what RandomizedSearchCV itself reports for those parameters."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    add_digit_items(project, 60)
    run = launch(project, trials=3, space={**LOGREG_SPACE, "max_iter": {"low": 20, "high": 400}})
    tuning_search.run_tuning(run.pk)
    run = finished(run)
    assert run.status == "done", run.error
    assert len({t.params["max_iter"] for t in run.trials.all()}) == 3  # an integer range, sampled
    data = services.load_dataset(run.snapshot, "image")
    train, dev = data.split == "train", data.split == "dev"
    X = data.inputs(range(len(data.y)), 8).reshape(len(data.y), -1)
    for trial in run.trials.all():
        clf = make_pipeline(
            StandardScaler(), LogisticRegression(C=trial.params["C"], max_iter=trial.params["max_iter"], random_state=0)
        )
        clf.fit(X[train], data.y[train])
        assert trial.accuracy == accuracy_score(data.y[dev], clf.predict(X[dev]))


@pytest.mark.django_db
def test_a_cancel_stops_a_keras_trial_at_its_next_epoch(project, holdout, monkeypatch):
    """The cancel arrives during the first trial's second epoch; the run stops there, lists no
    trial (the one cut short is not listed) and registers nothing."""
    add_digit_items(project, 45)
    run = launch(project, "keras_cnn", space={**KERAS_SPACE, "epochs": 200, "patience": 100}, trials=3)
    epochs_seen = []
    real_check = tuning.Claim.check

    def check(self, force=False):
        epochs_seen.append(1)
        if len(epochs_seen) == 3:  # before trial 1, then epoch 1, then epoch 2: cancel now
            tuning.cancel(run)
        return real_check(self, force=True)

    monkeypatch.setattr(tuning.Claim, "check", check)
    assert tuning_search.run_tuning(run.pk) == "cancelled"
    run = finished(run)
    assert run.status == "cancelled" and run.trials.count() == 0 and run.model_version is None
    assert len(epochs_seen) == 3 and not ModelVersion.objects.filter(project=project).exists()
    assert not (services.artifact_root() / "tuning" / str(run.pk)).exists()
    assert tuning_search.STOPS  # the stop travels through KerasTuner as a FatalError


@pytest.mark.django_db
def test_a_queued_run_cancels_at_once_and_an_ended_one_refuses(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = launch(project)
    run = tuning.cancel(run)
    assert run.status == "cancelled"
    assert tuning_search.run_tuning(run.pk) is None  # a late delivery does nothing
    with pytest.raises(services.TrainingError, match="cancelled"):
        tuning.cancel(run)


@pytest.mark.django_db
def test_the_reaper_requeues_a_silent_run_then_fails_it(project, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(tuning, "enqueue", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        run = launch(project)
    work = tuning.claim(run.pk)
    long_ago = timezone.now() - timezone.timedelta(hours=1)
    TuningRun.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert reap_tuning_runs() == {"requeued": [run.pk], "failed": []}
    run = finished(run)
    assert queued == [run.pk, run.pk] and run.run_token == "" and "re-queued (attempt 2 of 3)" in run.error
    with pytest.raises(tuning.Superseded):
        work.write(progress=0.5)  # the lost worker's run, if alive, stops at its next write
    for _ in range(2):
        tuning.claim(run.pk)
        TuningRun.objects.filter(pk=run.pk).update(heartbeat_at=long_ago)
        with django_capture_on_commit_callbacks(execute=True):
            reap_tuning_runs()
    run = finished(run)
    assert run.status == "failed" and "gave up after 3 attempts" in run.error


# --------------------------------------------------------------------------------------------
# Checking a launch
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"space": {"gamma": {"low": 1, "high": 2}}}, "space", "no hyperparameter 'gamma'"),
        ({"space": {"C": {"low": 0, "high": 2, "log": True}}}, "space", "space.C.low must lie in"),
        ({"space": {"C": {"low": 2.0, "high": 1.0}}}, "space", "low (2.0) must be below high (1.0)"),
        ({"space": {"C": {"low": 1.0}}}, "space", "space.C needs low and high"),
        ({"space": {"C": {"values": []}}}, "space", "space.C.values must be a list"),
        ({"space": {"image_size": {"low": 8, "high": 16}}}, "space", "space.image_size can only be fixed"),
        ({"space": {"C": 1.0}}, "space", "at least one hyperparameter"),
        (
            {
                "space": {"C": {"low": 1e-3, "high": 1.0}, "max_iter": {"low": 10, "high": 99}},
                "search": "halving_random",
            },
            "space",
            "space.max_iter can only be fixed",
        ),
        ({"space": {"max_iter": {"low": 10.5, "high": 99}}}, "space", "space.max_iter.low must be a whole number"),
        ({"search": "hyperband"}, "search", "sklearn_logreg is tuned by random or halving_random"),
        ({"budget_trials": 51}, "budget_trials", "budget_trials is at most 50"),
        ({"budget_minutes": 241}, "budget_minutes", "budget_minutes is at most 240"),
        ({"budget_trials": 0}, "budget_trials", "greater than or equal to 1"),
        (
            {"trainer": "keras_cnn", "search": "random", "space": {"epochs": 1001, "dropout": {"low": 0, "high": 0.5}}},
            "space",
            "space.epochs must lie in",
        ),
        (
            {"trainer": "keras_cnn", "search": "random", "space": {"epochs": 201, "dropout": {"low": 0, "high": 0.5}}},
            "space",
            "at most 200 epochs",
        ),
    ],
)
def test_bad_launches_are_400_naming_the_field(api_as, project, mle, change, field, words):
    body = {"trainer": "sklearn_logreg", "search": "random", "space": LOGREG_SPACE, "budget_trials": 3,
            "budget_minutes": 5, **change}  # fmt: skip
    response = api_as(mle).post(reverse("training_api:project-tuning-runs", args=[project.pk]), body, format="json")
    assert response.status_code == 400, response.content
    assert words in " ".join(str(m) for m in response.data[field])
    assert not TuningRun.objects.exists()


@pytest.mark.django_db
def test_a_text_project_refuses_the_cnn(api_as, other_project, outsider):
    body = {"trainer": "keras_cnn", "search": "random", "space": KERAS_SPACE, "budget_trials": 2, "budget_minutes": 5}
    url = reverse("training_api:project-tuning-runs", args=[other_project.pk])
    response = api_as(outsider).post(url, body, format="json")
    assert response.status_code == 400 and "does not train on text" in response.data["trainer"][0]


# --------------------------------------------------------------------------------------------
# A real worker
# --------------------------------------------------------------------------------------------


def wait_for(run, seconds=240):
    deadline = time.monotonic() + seconds
    while run.is_active and time.monotonic() < deadline:
        time.sleep(0.3)
        run.refresh_from_db()
    return run


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_tunes_the_cnn_and_the_baseline_and_registers_their_best(api_as, project, mle, settings):
    """A Celery worker (solo pool, in a thread) on a queue of its own: KerasTuner's random search
    of the CNN (2 trials, 8x8 pixels, 3 epochs) and successive halving of the logistic baseline,
    both launched through the API; each lists its trials and registers its best, equal accuracy."""
    from uuid import uuid4

    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    queue = f"concord-test-tuning-{uuid4().hex[:8]}"
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "QUEUE": queue, "CV_BELOW_LABELS": 10}
    add_digit_items(project, 60)
    url = reverse("training_api:project-tuning-runs", args=[project.pk])
    cnn = {"trainer": "keras_cnn", "search": "random", "space": KERAS_SPACE, "budget_trials": 2, "budget_minutes": 5}
    halving = {"trainer": "sklearn_logreg", "search": "halving_random", "budget_trials": 3, "budget_minutes": 5,
               "space": {**LOGREG_SPACE, "max_iter": 60}}  # fmt: skip
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue], loglevel="WARNING"):
        runs = []
        for body in (cnn, halving):
            response = api_as(mle).post(url, body, format="json")
            assert response.status_code == 202, response.content
            assert response.data["status"] == "queued"
            runs.append(TuningRun.objects.get(pk=response.data["id"]))
        runs = [wait_for(run) for run in runs]
    for run in runs:
        assert_best_registered(run)
        assert run.attempts == 1 and run.progress == 1.0
    assert runs[0].trials.count() == 2 and all(t.params["image_size"] == 8 for t in runs[0].trials.all())
    detail = api_as(mle).get(reverse("training_api:tuning-run-detail", args=[project.pk, runs[0].pk])).data
    assert detail["model"] == runs[0].model_version.short_id and detail["best_trial"] == runs[0].best_trial.number
    assert [t["number"] for t in detail["trials"]] == [1, 2]
    assert all(t["seconds"] > 0 and t["accuracy"] is not None for t in detail["trials"])


# --------------------------------------------------------------------------------------------
# Who may see and do what
# --------------------------------------------------------------------------------------------


@pytest.fixture
def a_run(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        return launch(project)


@pytest.mark.django_db
def test_only_the_projects_mles_see_tuning_runs_others_get_404(api_as, a_run, project, mle, sme, labeler, outsider):
    list_url = reverse("training_api:project-tuning-runs", args=[project.pk])
    detail_url = reverse("training_api:tuning-run-detail", args=[project.pk, a_run.pk])
    cancel_url = reverse("training_api:tuning-run-cancel", args=[project.pk, a_run.pk])
    body = {"trainer": "sklearn_logreg", "search": "random", "space": LOGREG_SPACE, "budget_trials": 2,
            "budget_minutes": 5}  # fmt: skip
    for user in (sme, labeler, outsider):
        client = api_as(user)
        assert client.get(list_url).status_code == 404
        assert client.post(list_url, body, format="json").status_code == 404
        assert client.get(detail_url).status_code == 404
        assert client.post(cancel_url).status_code == 404
    assert TuningRun.objects.count() == 1 and finished(a_run).status == "queued"
    client = api_as(mle)
    listed = client.get(list_url).data
    assert [r["id"] for r in listed["results"]] == [a_run.pk]
    assert client.get(detail_url).data["trials"] == []
    assert client.post(cancel_url).data["status"] == "cancelled"
    assert client.post(cancel_url).status_code == 409
    # A run of one project is not reachable through another project's id.
    other = reverse("training_api:tuning-run-detail", args=[project.pk + 1000, a_run.pk])
    assert client.get(other).status_code == 404


@pytest.mark.django_db
def test_the_list_takes_a_fixed_number_of_queries(api_as, project, mle, django_assert_num_queries, holdout):
    add_digit_items(project, 30)
    for _ in range(3):
        run = launch(project, trials=2)
        tuning_search.run_tuning(run.pk)
    client = api_as(mle)
    url = reverse("training_api:project-tuning-runs", args=[project.pk])
    client.get(url)
    with django_assert_num_queries(4):
        assert len(client.get(url).data["results"]) == 3


# --------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_are_the_mles_others_get_404(client, a_run, project, mle, sme, labeler, outsider):
    pages = [
        reverse("tuning:tuning-list", args=[project.slug]),
        reverse("tuning:tuning-detail", args=[project.slug, a_run.pk]),
        reverse("tuning:tuning-status", args=[project.slug, a_run.pk]),
    ]
    for user in (sme, labeler, outsider):
        client.force_login(user)
        assert [client.get(url).status_code for url in pages] == [404, 404, 404]
        assert client.post(reverse("tuning:tuning-cancel", args=[project.slug, a_run.pk])).status_code == 404
    client.force_login(mle)
    assert [client.get(url).status_code for url in pages] == [200, 200, 200]
    models_page = client.get(reverse("training:model-list", args=[project.slug])).content.decode()
    assert reverse("tuning:tuning-list", args=[project.slug]) in models_page
    assert client.get(pages[2]).json()["status"] == "queued"


@pytest.mark.django_db
def test_the_launch_form_starts_a_run_or_names_the_problem(client, project, mle, django_capture_on_commit_callbacks):
    client.force_login(mle)
    url = reverse("tuning:tuning-list", args=[project.slug])
    form = {"trainer": "sklearn_logreg", "search": "random", "budget_trials": "3", "budget_minutes": "5"}
    response = client.post(url, {**form, "space": "{not json"})
    assert response.status_code == 400 and "space: not valid JSON" in response.content.decode()
    response = client.post(url, {**form, "space": '{"C": {"low": 5, "high": 1}, "<b>x": 1}'})
    assert response.status_code == 400 and "&lt;b&gt;x" in response.content.decode()
    assert "<b>x" not in response.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {**form, "space": '{"C": {"low": 0.01, "high": 1, "log": true}}'})
    run = TuningRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("tuning:tuning-detail", args=[project.slug, run.pk])
    page = client.get(response.url).content.decode()
    assert "Cancel" in page and 'data-status="queued"' in page
    client.post(reverse("tuning:tuning-cancel", args=[project.slug, run.pk]))
    assert finished(run).status == "cancelled"


@pytest.mark.django_db
def test_the_run_page_lists_trials_and_the_registered_model(client, project, mle, holdout):
    add_digit_items(project, 30)
    run = launch(project, trials=2)
    tuning_search.run_tuning(run.pk)
    run = finished(run)
    client.force_login(mle)
    page = client.get(reverse("tuning:tuning-detail", args=[project.slug, run.pk])).content.decode()
    assert page.count('data-trial="') == 2 and run.model_version.short_id in page and "best" in page


@pytest.mark.django_db
def test_hyperband_gives_trials_the_oracles_epochs_and_registers_the_kept_model(project, holdout):
    add_digit_items(project, 45)
    space = {**KERAS_SPACE, "epochs": 3, "patience": 100}
    run = launch(project, "keras_cnn", search="hyperband", space=space, trials=4)
    assert tuning_search.run_tuning(run.pk) == "done"
    trials = assert_best_registered(finished(run))
    assert 1 <= len(trials) <= 4
    assert {t.params["epochs"] for t in trials} <= {1, 2, 3}
    assert all(t.dev_metrics["epochs_run"] == t.params["epochs"] for t in trials)  # patience never fires
    assert run.model_version.epoch == run.best_trial.params["epochs"]


@pytest.mark.django_db
def test_a_run_whose_worker_was_lost_starts_over_when_requeued(project, holdout, monkeypatch):
    """The first worker claimed the run, listed a trial and died; the reaper re-queued it; the next
    delivery clears the lost trial, searches again and registers; the lost run's writes are refused."""
    add_digit_items(project, 30)
    monkeypatch.setattr(tuning, "enqueue", lambda pk: None)
    run = launch(project, trials=2)
    lost = tuning.claim(run.pk)
    lost.add_trial({"C": 1.0}, {"accuracy": 0.0}, 1.0)
    TuningRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(hours=1))
    assert reap_tuning_runs()["requeued"] == [run.pk]
    assert tuning_search.run_tuning(run.pk) == "done"
    run = finished(run)
    assert run.attempts == 2 and run.recoveries == 1
    assert [t.number for t in assert_best_registered(run)] == [1, 2]
    with pytest.raises(tuning.Superseded):
        lost.add_trial({"C": 2.0}, {"accuracy": 1.0}, 1.0)
