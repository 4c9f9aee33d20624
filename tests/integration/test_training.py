"""Training: snapshots, the training run, the model registry, its API, pages, command and task."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from annotation.models import LabelClass
from training import services
from training.models import DatasetSnapshot, ModelVersion, Promotion, SnapshotLabel
from training.trainers import SklearnLogReg

from .training_data import add_digit_items, label, resolve

ROOT = Path(__file__).resolve().parents[2]


def classes(project):
    return {c.name: c for c in project.label_classes.all()}


def new_version(project, trainer="sklearn_logreg", **hp):
    """A queued version, as start_training makes it, without queueing a task."""
    return ModelVersion.objects.create(
        project=project,
        trainer=trainer,
        hyperparameters=services.check_hyperparameters(trainer, hp),
        policy=services.check_policy(None),
    )


def trained(project, trainer="sklearn_logreg", **hp):
    version = new_version(project, trainer, **hp)
    assert services.run_training(version.pk) == "ready", ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    return version


@pytest.fixture
def holdout(settings):
    """Evaluate on the dev split from 10 labels on (the default switches to CV below 200)."""
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "CV_BELOW_LABELS": 10}


# --------------------------------------------------------------------------------------------
# Snapshots
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_snapshot_precedence_resolution_gold_then_confident_consensus(project, labeler, labeler2, sme):
    c = classes(project)
    items = add_digit_items(project, 8, gold=False)
    crow, dove, owl, unclear = c["crow"], c["dove"], c["owl"], c["unclear"]
    # 0: resolution beats gold; 1: gold beats consensus; 2: unanimous consensus; 3: split vote;
    # 4: SME says ambiguous (gold ignored); 5: consensus is the ambiguity class; 6: nothing;
    # 7: a resolution naming the ambiguity class.
    resolve(items[0], owl, user=sme)
    for item, cls in [(items[0], crow), (items[1], dove), (items[4], crow)]:
        from annotation.models import GoldLabel, GoldLabelClass

        GoldLabelClass.objects.create(gold=GoldLabel.objects.create(item=item), label_class=cls)
    for user in (labeler, labeler2):
        label(items[1], user, owl)
        label(items[2], user, crow)
        label(items[5], user, unclear)
    label(items[3], labeler, crow)
    label(items[3], labeler2, dove)
    resolve(items[4], ambiguous=True, user=sme)
    resolve(items[7], unclear, user=sme)

    snap = services.build_snapshot(project, policy={"consensus": "majority_vote", "min_confidence": 0.8})
    rows = {r.item_id: (r.label_class.name, r.source) for r in snap.labels.select_related("label_class")}
    assert rows == {
        items[0].pk: ("owl", "resolution"),
        items[1].pk: ("dove", "gold"),
        items[2].pk: ("crow", "consensus"),
    }
    assert snap.sources == {
        "resolution": 1, "gold": 1, "consensus": 1, "ambiguous": 3, "low_confidence": 1, "unlabelled": 1,
    }  # fmt: skip
    assert [cl["name"] for cl in snap.classes] == ["crow", "dove", "owl"]  # no ambiguity class
    assert snap.size == 3 and sum(sum(v.values()) for v in snap.counts.values()) == 3
    assert snap.labels.get(item=items[2]).confidence == 1.0

    kept = services.build_snapshot(project, policy={"consensus": "majority_vote", "keep_ambiguity": True})
    rows = {r.item_id: r.label_class.name for r in kept.labels.select_related("label_class")}
    assert rows[items[4].pk] == rows[items[5].pk] == rows[items[7].pk] == "unclear"
    assert [cl["name"] for cl in kept.classes] == ["crow", "dove", "owl", "unclear"]


@pytest.mark.django_db
def test_snapshot_hash_is_stable_reused_and_immutable(project, labeler):
    items = add_digit_items(project, 12)
    first = services.build_snapshot(project)
    again = services.build_snapshot(project)
    assert again.pk == first.pk and DatasetSnapshot.objects.count() == 1
    other_policy = services.build_snapshot(project, policy={"consensus": "majority_vote"})
    assert other_policy.pk != first.pk and other_policy.content_hash == first.content_hash

    # An SME resolution changing one label changes the hash.
    resolve(items[0], classes(project)["owl"])
    changed = services.build_snapshot(project)
    assert changed.content_hash != first.content_hash

    with pytest.raises(Exception, match="immutable"):
        first.save()
    with pytest.raises(Exception, match="immutable"):
        SnapshotLabel.objects.filter(snapshot=first).first().save()


@pytest.mark.django_db
def test_a_merged_class_counts_as_its_target(project):
    c = classes(project)
    items = add_digit_items(project, 3, gold=False)
    resolve(items[0], c["dove"])
    resolve(items[1], c["crow"])
    resolve(items[2], c["owl"])
    LabelClass.objects.filter(pk=c["dove"].pk).update(merged_into=c["crow"], is_active=False)
    snap = services.build_snapshot(project)
    assert [cl["name"] for cl in snap.classes] == ["crow", "owl"]
    assert sorted(snap.labels.values_list("label_class__name", flat=True)) == ["crow", "crow", "owl"]


# --------------------------------------------------------------------------------------------
# The training run
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_training_with_few_labels_cross_validates_and_registers(project, settings):
    add_digit_items(project, 60)
    version = trained(project)
    m = version.metrics
    assert version.status == "ready" and version.stage == "done" and version.progress == 1.0
    assert version.attempts == 1 and version.snapshot.size == 60
    ev = m["evaluation"]
    assert ev["method"] == "cross_validation" and ev["folds"] == 5 and ev["n"] == 48  # train + dev
    assert ev["accuracy"] > 0.8 and len(ev["confusion"]) == 3 and sum(map(sum, ev["confusion"])) == 48
    assert m["test"]["n"] == 12 and m["baselines"]["majority_class"]["accuracy"] < 0.5
    assert m["baselines"]["previous_model"] is None
    path = services.artifact_path(version)
    assert path.is_relative_to(Path(settings.MEDIA_ROOT) / "models") and path.name == f"{version.short_id}-a1.joblib"
    assert SklearnLogReg.load(path).predict_proba(np.zeros((1, 16, 16))).shape == (1, 3)
    assert set(version.timings) >= {"snapshot", "loading", "fitting", "evaluating", "saving", "total"}
    # The out-of-fold predictions it was evaluated by are kept for active learning's error model.
    oos_ids, oos_proba = services.out_of_sample(version)
    order = np.argsort(oos_ids)
    oos_ids, oos_proba = oos_ids[order], oos_proba[order]
    train_dev = version.snapshot.labels.exclude(split="test").order_by("item_id")
    assert oos_ids.tolist() == list(train_dev.values_list("item_id", flat=True)) and oos_proba.shape == (48, 3)
    assert np.allclose(oos_proba.sum(axis=1), 1) and m["top_k"]["train_predictions"] == "out of fold"
    index = {c["id"]: i for i, c in enumerate(version.snapshot.classes)}
    y = np.array([index[c] for c in train_dev.values_list("label_class_id", flat=True)])
    assert np.mean(oos_proba.argmax(axis=1) == y) == pytest.approx(ev["accuracy"])


@pytest.mark.django_db
def test_training_on_dev_with_baselines_slices_gap_and_top_k(project, holdout, labeler, labeler2):
    items = add_digit_items(project, 45)
    c = classes(project)
    for item in items[:20]:  # labels for the quality report's HLP
        label(item, labeler, c["crow"])
        label(item, labeler2, c["crow"])
    first = trained(project)
    services.promote(first)
    second = trained(project)
    m = second.metrics
    assert m["evaluation"]["method"] == "dev" and m["evaluation"]["n"] == 9
    previous = m["baselines"]["previous_model"]
    assert previous["id"] == first.short_id and previous["promoted"] and previous["n"] == 9
    assert previous["accuracy"] == pytest.approx(first.metrics["evaluation"]["accuracy"])
    assert {s["key"] for s in m["slices"]} == {"ink"}
    rows = m["gap_to_hlp"]["rows"]
    assert {r["slice"] for r in rows} <= {"ink=light", "ink=heavy"}
    assert m["gap_to_hlp"]["quality_report"] is not None
    for r in rows:
        if r["hlp"] is not None:
            assert r["gap"] == pytest.approx(r["hlp"] - r["model_accuracy"])
    priorities = [r["priority"] for r in rows if r["priority"] is not None]
    assert priorities == sorted(priorities, reverse=True)
    top = m["top_k"]
    assert set(top) == {"train", "dev", "train_predictions"} and top["train_predictions"] == "in sample"
    assert set(top["dev"]) == {"confidently_wrong", "most_uncertain"}
    assert len(top["dev"]["most_uncertain"]) == 9 and top["dev"]["most_uncertain"][0]["has_thumbnail"]


@pytest.mark.django_db
def test_a_text_project_trains_tfidf_logistic_regression(other_project):
    from annotation.models import GoldLabel, GoldLabelClass, Item

    pos, neg = other_project.label_classes.order_by("order")
    words = {pos: ["great", "loved", "superb", "wonderful"], neg: ["awful", "boring", "dull", "terrible"]}
    for i in range(40):
        cls = pos if i % 2 else neg
        item = Item.objects.create(
            project=other_project,
            external_id=f"r{i}",
            split=["train", "train", "train", "dev", "test"][i % 5],
            text=f"a {words[cls][i % 4]} film, {words[cls][(i + 1) % 4]} acting",
        )
        GoldLabelClass.objects.create(gold=GoldLabel.objects.create(item=item), label_class=cls)
    version = trained(other_project)
    assert version.metrics["evaluation"]["accuracy"] == 1.0 and version.metrics["top_k"]["dev"]["most_uncertain"]
    model = services.load_model(version)
    assert model.data_kind == "text" and model.predict_proba(["a superb film"]).argmax() == 0


@pytest.mark.django_db
def test_a_project_without_labels_fails_with_a_readable_error(project):
    add_digit_items(project, 6, gold=False)
    version = new_version(project)
    assert services.run_training(version.pk) == "failed"
    version.refresh_from_db()
    assert version.status == "failed" and version.artifact == "" and not version.is_promoted
    assert "at least two classes" in version.error and "Traceback" not in version.error


@pytest.mark.django_db
def test_an_exception_in_fit_marks_failed_and_names_it(project, monkeypatch):
    add_digit_items(project, 30)

    def boom(self, *args, **kwargs):
        raise RuntimeError("the fit blew up")

    monkeypatch.setattr(SklearnLogReg, "fit", boom)
    version = new_version(project)
    assert services.run_training(version.pk) == "failed"
    version.refresh_from_db()
    assert version.error.startswith("RuntimeError: the fit blew up")


@pytest.mark.django_db
def test_running_twice_is_safe(project):
    add_digit_items(project, 30)
    version = trained(project)
    before = (version.artifact, version.metrics, version.attempts)
    assert services.run_training(version.pk) is None  # a second delivery of a finished task
    version.refresh_from_db()
    assert (version.artifact, version.metrics, version.attempts) == before
    assert services.run_training(10**9) is None  # a version that is gone


@pytest.mark.django_db
def test_a_second_claim_supersedes_the_first_run(project):
    add_digit_items(project, 30)
    version = new_version(project)
    first = services.claim(version.pk)
    second = services.claim(version.pk)
    with pytest.raises(services.Superseded):
        first.write(progress=0.5)
    second.write(progress=0.5)
    assert services.run_training(version.pk) == "ready"  # a third delivery takes over and finishes
    version.refresh_from_db()
    assert version.attempts == 3 and version.status == "ready"


@pytest.mark.django_db
def test_a_worker_killed_mid_write_leaves_no_ready_version_and_the_redelivery_finishes(project, monkeypatch):
    """The worker dies inside the artifact write: half a temporary file is on disk and no Python
    cleanup runs (as with SIGKILL). The version stays `training` with no artifact; the redelivered
    task (acks_late) trains again and registers a complete artifact."""
    add_digit_items(project, 30)
    version = new_version(project)

    class Killed(BaseException):
        pass

    def die_mid_write(path, write):
        tmp = Path(path).with_name(f".{Path(path).stem}-killed.tmp{Path(path).suffix}")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(b"half an artifact")
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(SklearnLogReg, "_atomic_write", staticmethod(die_mid_write))
        with pytest.raises(Killed):
            services.run_training(version.pk)
    version.refresh_from_db()
    assert version.status == "training" and version.artifact == "" and version.stage == "saving"
    folder = services.artifact_root() / str(project.pk)
    assert [p.name for p in folder.iterdir()] == [f".{version.short_id}-a1-killed.tmp.joblib"]
    assert not ModelVersion.objects.filter(status="ready").exists()

    assert services.run_training(version.pk) == "ready"  # the redelivery
    version.refresh_from_db()
    assert version.attempts == 2 and version.artifact.endswith(f"{version.short_id}-a2.joblib")
    assert sorted(p.name for p in folder.iterdir()) == [f"{version.short_id}-a2.joblib", f"{version.short_id}-oos.npz"]
    assert SklearnLogReg.load(services.artifact_path(version)).n_classes == 3


@pytest.mark.django_db
def test_a_ready_version_needs_an_artifact_and_one_promoted_model_per_project(project):
    add_digit_items(project, 30)
    a, b = trained(project), trained(project)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=new_version(project).pk).update(status="ready")
    ModelVersion.objects.filter(pk=a.pk).update(is_promoted=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=b.pk).update(is_promoted=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=new_version(project).pk).update(is_promoted=True)  # not ready


@pytest.mark.django_db
def test_stale_training_versions_are_failed_when_the_next_training_starts(project, django_capture_on_commit_callbacks):
    from django.utils import timezone

    old = new_version(project)
    ModelVersion.objects.filter(pk=old.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(hours=2))
    fresh = new_version(project)
    with django_capture_on_commit_callbacks(execute=False):
        services.start_training(project, trainer="sklearn_logreg")
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.status == "failed" and "worker" in old.error
    assert fresh.status == "training"


# --------------------------------------------------------------------------------------------
# Promote and roll back
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_promote_and_rollback_walk_back_through_the_record(project, mle):
    add_digit_items(project, 30)
    a, b, c = trained(project), trained(project), trained(project)

    def current():
        return list(ModelVersion.objects.filter(project=project, is_promoted=True).values_list("short_id", flat=True))

    services.promote(a, user=mle)
    services.promote(b, user=mle, note="the same labels again")  # no better beyond noise: a reason
    services.promote(c, user=mle, note="the same labels again")
    assert services.promote(c, user=mle) is None  # already current: nothing recorded
    assert current() == [c.short_id]
    services.rollback(c, user=mle)
    assert current() == [b.short_id]
    services.rollback(b, user=mle)  # not back to c: to what was current before b
    assert current() == [a.short_id]
    record = services.rollback(a, user=mle, note="bad on the night shift")
    assert current() == [] and record.model_version is None and record.previous == a
    with pytest.raises(services.Conflict, match="not the current model"):
        services.rollback(a, user=mle)
    actions = list(Promotion.objects.order_by("pk").values_list("action", "model_version__short_id"))
    assert actions == [
        ("promote", a.short_id), ("promote", b.short_id), ("promote", c.short_id),
        ("rollback", b.short_id), ("rollback", a.short_id), ("rollback", None),
    ]  # fmt: skip
    failed = new_version(project)
    ModelVersion.objects.filter(pk=failed.pk).update(status="failed")
    with pytest.raises(services.Conflict, match="only a ready model"):
        services.promote(failed)


# --------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------


@pytest.fixture
def ready_model(project):
    add_digit_items(project, 30)
    return trained(project)


@pytest.mark.django_db
def test_api_train_queues_the_task_on_commit(api_as, mle, project, django_capture_on_commit_callbacks, monkeypatch):
    from training import tasks

    queued = []
    monkeypatch.setattr(tasks.train_model, "apply_async", lambda args, queue=None: queued.append((args, queue)))
    url = reverse("training_api:project-models", args=[project.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(mle).post(
            url, {"trainer": "keras_cnn", "hyperparameters": {"epochs": 3}, "min_confidence": 0.9}, format="json"
        )
    assert response.status_code == 202, response.data
    body = response.data
    assert body["status"] == "training" and body["stage"] == "queued" and body["trainer"] == "keras_cnn"
    assert body["hyperparameters"]["epochs"] == 3 and body["policy"]["min_confidence"] == 0.9
    version = ModelVersion.objects.get(short_id=body["id"])
    assert queued == [((version.pk,), None)] and version.created_by == mle

    bad = api_as(mle).post(url, {"trainer": "sklearn_logreg", "hyperparameters": {"gamma": 1}}, format="json")
    assert bad.status_code == 400 and "no hyperparameter gamma" in bad.data["hyperparameters"][0]
    assert api_as(mle).post(url, {"trainer": "svm"}, format="json").status_code == 400


@pytest.mark.django_db
def test_api_text_projects_refuse_the_cnn(api_as, outsider, other_project):
    url = reverse("training_api:project-models", args=[other_project.pk])
    response = api_as(outsider).post(url, {"trainer": "keras_cnn"}, format="json")
    assert response.status_code == 400 and "text" in response.data["trainer"][0]


@pytest.mark.django_db
def test_api_roles_and_cross_project_404s(api_as, ready_model, project, mle, sme, labeler, outsider):
    m = ready_model.short_id
    reads = [
        reverse("training_api:project-models", args=[project.pk]),
        reverse("training_api:model-detail", args=[m]),
        reverse("training_api:project-promotions", args=[project.pk]),
    ]
    writes = [
        (reverse("training_api:project-models", args=[project.pk]), {"trainer": "sklearn_logreg"}),
        (reverse("training_api:model-promote", args=[m]), {}),
        (reverse("training_api:model-rollback", args=[m]), {}),
    ]
    for url in reads:
        assert api_as(outsider).get(url).status_code == 404, url
        assert api_as(labeler).get(url).status_code == 404, url
        assert api_as(sme).get(url).status_code == 200, url
        assert api_as(mle).get(url).status_code == 200, url
    for url, body in writes:
        assert api_as(outsider).post(url, body, format="json").status_code == 404, url
        assert api_as(labeler).post(url, body, format="json").status_code == 404, url
        assert api_as(sme).post(url, body, format="json").status_code == 403, url
    assert api_as(mle).get(reverse("training_api:model-detail", args=["nope1234"])).status_code == 404
    assert not ModelVersion.objects.filter(is_promoted=True).exists()


@pytest.mark.django_db
def test_api_detail_promote_and_rollback(api_as, ready_model, project, mle):
    client = api_as(mle)
    detail = client.get(reverse("training_api:model-detail", args=[ready_model.short_id])).data
    assert detail["status"] == "ready" and detail["accuracy"] == ready_model.metrics["evaluation"]["accuracy"]
    assert detail["snapshot"]["content_hash"] == ready_model.snapshot.content_hash
    assert detail["metrics"]["evaluation"]["method"] == "cross_validation"
    json.dumps(detail["metrics"], allow_nan=False)

    promoted = client.post(reverse("training_api:model-promote", args=[ready_model.short_id]), {"note": "ship it"})
    assert promoted.status_code == 200 and promoted.data["model"]["is_promoted"]
    assert promoted.data["promotion"]["action"] == "promote" and promoted.data["promotion"]["by"] == "mle"
    again = client.post(reverse("training_api:model-promote", args=[ready_model.short_id]))
    assert again.status_code == 200 and again.data["promotion"] is None
    rolled = client.post(reverse("training_api:model-rollback", args=[ready_model.short_id]))
    assert rolled.status_code == 200 and not rolled.data["model"]["is_promoted"]
    conflict = client.post(reverse("training_api:model-rollback", args=[ready_model.short_id]))
    assert conflict.status_code == 409
    history = client.get(reverse("training_api:project-promotions", args=[project.pk])).data["results"]
    assert [h["action"] for h in history] == ["rollback", "promote"]

    failed = new_version(project)
    ModelVersion.objects.filter(pk=failed.pk).update(status="failed", error="x")
    assert client.post(reverse("training_api:model-promote", args=[failed.short_id])).status_code == 409


@pytest.mark.django_db
def test_api_list_queries_do_not_grow_with_models(api_as, ready_model, project, mle, django_assert_num_queries):
    for _ in range(4):
        new_version(project)
    url = reverse("training_api:project-models", args=[project.pk])
    # project (+ role) + count + versions with snapshot and creator; the session user is forced.
    with django_assert_num_queries(4):
        assert len(api_as(mle).get(url).data["results"]) == 5


# --------------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_for_each_role(client, ready_model, project, mle, sme, labeler, outsider):
    list_url = reverse("training:model-list", args=[project.slug])
    detail_url = reverse("training:model-detail", args=[project.slug, ready_model.short_id])
    status_url = reverse("training:model-status", args=[project.slug])
    for user, code in [(outsider, 404), (labeler, 403), (sme, 200), (mle, 200)]:
        client.force_login(user)
        for url in (list_url, detail_url, status_url):
            assert client.get(url).status_code == code, (user, url)
    client.force_login(sme)
    assert 'data-testid="train-form"' not in client.get(list_url).content.decode()
    assert client.post(list_url, {"trainer": "sklearn_logreg"}).status_code == 403

    client.force_login(mle)
    page = client.get(detail_url).content.decode()
    assert 'data-chart="confusion"' in page and "chart--heatmap" in page and "chart--calibration" in page
    assert 'data-table="gap"' in page and 'data-table="slices"' in page and 'data-table="classes"' in page
    thumb = reverse(
        "item-file", args=[ready_model.metrics["top_k"]["train"]["most_uncertain"][0]["item_id"], "thumbnail"]
    )
    assert thumb in page and 'data-testid="send-to-review-train-most-uncertain"' in page
    status = client.get(status_url, {"ids": ready_model.short_id}).json()["models"]
    assert status == [services.progress_payload(ready_model)]


@pytest.mark.django_db
def test_page_train_form_starts_training(client, project, mle, django_capture_on_commit_callbacks, monkeypatch):
    from training import tasks

    monkeypatch.setattr(tasks.train_model, "apply_async", lambda args, queue=None: None)
    client.force_login(mle)
    url = reverse("training:model-list", args=[project.slug])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"trainer": "sklearn_logreg", "min_confidence": "0.7"})
    assert response.status_code == 302
    version = ModelVersion.objects.get()
    assert version.policy["min_confidence"] == 0.7 and version.created_by == mle
    page = client.get(url).content.decode()
    assert f'data-progress="{version.short_id}"' in page and 'data-status="training"' in page
    bad = client.post(url, {"trainer": "sklearn_logreg", "min_confidence": "2"})
    assert bad.status_code == 400 and "min_confidence" in bad.content.decode()


@pytest.mark.django_db
def test_pages_escape_class_names_and_external_ids(client, project, mle):
    LabelClass.objects.filter(project=project, name="crow").update(name="<b>crow</b>")
    add_digit_items(project, 30)
    from annotation.models import Item

    for item in Item.objects.filter(project=project):
        Item.objects.filter(pk=item.pk).update(external_id=f"<script>alert({item.pk})</script>")
    version = trained(project)
    client.force_login(mle)
    page = client.get(reverse("training:model-detail", args=[project.slug, version.short_id])).content.decode()
    assert "<script>alert(" not in page and "&lt;script&gt;alert(" in page
    assert "<b>crow</b>" not in page and "&lt;b&gt;crow&lt;/b&gt;" in page


@pytest.mark.django_db
def test_promote_and_rollback_from_the_pages(client, ready_model, project, mle):
    client.force_login(mle)
    promote = reverse("training:model-promote", args=[project.slug, ready_model.short_id])
    rollback = reverse("training:model-rollback", args=[project.slug, ready_model.short_id])
    assert client.post(promote).status_code == 302
    assert ModelVersion.objects.get(pk=ready_model.pk).is_promoted
    assert client.post(rollback, {"next": "list"})["Location"] == reverse("training:model-list", args=[project.slug])
    assert not ModelVersion.objects.get(pk=ready_model.pk).is_promoted


# --------------------------------------------------------------------------------------------
# Command and admin
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_train_command_sync(project, capsys):
    add_digit_items(project, 30)
    call_command("train", "birds", "--trainer", "sklearn_logreg", "--sync", "--param", "C=0.5", "--seed", "3")
    out = capsys.readouterr().out
    version = ModelVersion.objects.get()
    assert version.status == "ready" and version.hyperparameters["C"] == 0.5 and version.random_state == 3
    assert f"Model {version.short_id} is ready" in out and "accuracy" in out


@pytest.mark.django_db
def test_train_command_queues_by_default(project, monkeypatch, django_capture_on_commit_callbacks):
    from django.core.management.base import CommandError

    from training import tasks

    queued = []
    monkeypatch.setattr(tasks.train_model, "apply_async", lambda args, queue=None: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("train", "birds", "--trainer", "keras_cnn")
    assert queued == [(ModelVersion.objects.get().pk,)]
    with pytest.raises(CommandError, match="no project"):
        call_command("train", "nope", "--trainer", "keras_cnn")


@pytest.mark.django_db
def test_admin_lists_every_training_model(client, ready_model):
    from django.apps import apps

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    index = client.get(reverse("admin:index")).content.decode()
    for model in apps.get_app_config("training").get_models():
        url = reverse(f"admin:training_{model._meta.model_name}_changelist")
        assert url in index, model
        assert client.get(url, {"q": "1"}).status_code == 200, url


# --------------------------------------------------------------------------------------------
# The web process never imports TensorFlow
# --------------------------------------------------------------------------------------------

NO_TENSORFLOW = textwrap.dedent(
    """
    import re, sys
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import URLPattern, URLResolver, get_resolver
    from annotation.services.projects import create_project
    from tests.integration.training_data import add_digit_items
    from training import services
    from training.models import ModelVersion

    project = create_project(slug="birds", name="Birds", data_kind="image", classes=["a", "b", "c"])
    add_digit_items(project, 30)
    version = ModelVersion.objects.create(project=project, trainer="sklearn_logreg",
                                          policy=services.check_policy(None))
    assert services.run_training(version.pk) == "ready"
    version.refresh_from_db()
    item = project.items.first()
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client(HTTP_HOST="localhost")
    client.force_login(root)

    values = {"slug": project.slug, "model_id": version.short_id, "kind": "thumbnail", "pk": project.pk,
              "project_id": project.pk, "item_id": item.pk}
    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern)
    seen = 0
    for route in walk(get_resolver().url_patterns):
        if route.startswith("^") or "(?P" in route:
            continue  # admin's regex catch-alls
        path = re.sub(r"<(?:\\w+:)?(\\w+)>", lambda m: str(values.get(m.group(1), 1)), route)
        client.get("/" + path.lstrip("/"))
        seen += 1
    client.post(f"/api/v1/projects/{project.pk}/models/", {"trainer": "keras_cnn"}, content_type="application/json")
    client.post(f"/projects/{project.slug}/models/", {"trainer": "keras_cnn"})
    client.post(f"/api/v1/models/{version.short_id}/promote/")
    assert ModelVersion.objects.filter(trainer="keras_cnn").count() == 2
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras"})
    print(f"{seen} urls", "LEAKED" if leaked else "CLEAN", leaked[:5])
    """
)


def test_the_web_process_never_imports_tensorflow(tmp_path):
    """Load every URL of the web process (and train, promote and queue through it) in a fresh
    interpreter, so no other test's imports can hide a leak; then look for TensorFlow."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "CELERY_BROKER_URL": "memory://",
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", NO_TENSORFLOW], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CLEAN" in result.stdout, result.stdout
    assert int(result.stdout.split(" urls")[0].split()[-1]) >= 20


# --------------------------------------------------------------------------------------------
# Keras and a real Celery worker
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_keras_cnn_trains_through_the_service(project, holdout):
    """Small: 45 images of 16x16 pixels, 2 epochs."""
    add_digit_items(project, 45)
    first = trained(project)
    services.promote(first)
    version = trained(project, "keras_cnn", epochs=2, image_size=16, filters=8, batch_size=16)
    assert version.artifact.endswith(".keras") and version.epoch == 2 and version.epochs == 2
    assert version.metrics["evaluation"]["method"] == "dev"
    assert version.metrics["baselines"]["previous_model"]["id"] == first.short_id
    model = services.load_model(version)
    assert model.n_classes == 3 and model.image_size == 16


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_trains_the_logistic_baseline(api_as, project, mle, settings):
    """A Celery worker (solo pool, in a thread) consumes the task from the configured broker (Redis
    in CI, kombu's filesystem transport locally), on a queue of its own so no other worker steals it."""
    from uuid import uuid4

    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    queue = f"concord-test-training-{uuid4().hex[:8]}"
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "QUEUE": queue}
    add_digit_items(project, 60)
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue], loglevel="WARNING"):
        response = api_as(mle).post(
            reverse("training_api:project-models", args=[project.pk]), {"trainer": "sklearn_logreg"}, format="json"
        )
        assert response.status_code == 202
        version = ModelVersion.objects.get(short_id=response.data["id"])
        deadline = time.monotonic() + 120
        while version.status == "training" and time.monotonic() < deadline:
            time.sleep(0.3)
            version.refresh_from_db()
    assert version.status == "ready", version.error or f"still {version.stage} after 120 s"
    assert version.attempts == 1 and services.artifact_path(version).exists()
    assert version.metrics["evaluation"]["accuracy"] > 0.8


# --------------------------------------------------------------------------------------------
# Top-k lists to the SME review queue
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_top_k_list_goes_to_the_sme_review_queue_once(client, ready_model, project, sme, labeler, outsider):
    from annotation.models import ReviewRequest

    url = reverse("training:model-review", args=[project.slug, ready_model.short_id])
    listed = [i["item_id"] for i in ready_model.metrics["top_k"]["train"]["most_uncertain"]]
    assert listed
    client.force_login(sme)
    response = client.post(url, {"list": "train-most-uncertain"}, follow=True)
    assert f"{len(listed)} items sent to the SME review queue." in response.content.decode()
    requests = ReviewRequest.objects.filter(item__project=project)
    assert sorted(requests.values_list("item_id", flat=True)) == sorted(listed)
    assert requests.first().reason == f"model {ready_model.short_id}: Train: most uncertain"
    assert requests.first().requested_by == sme

    again = client.post(url, {"list": "train-most-uncertain"}, follow=True).content.decode()
    assert f"0 items sent to the SME review queue; {len(listed)} were waiting there already." in again
    assert requests.count() == len(listed)
    assert "Choose one of the model" in client.post(url, {"list": "everything"}, follow=True).content.decode()

    client.force_login(labeler)
    assert client.post(url, {"list": "train-most-uncertain"}).status_code == 403
    client.force_login(outsider)
    assert client.post(url, {"list": "train-most-uncertain"}).status_code == 404


@pytest.mark.django_db
def test_request_review_refuses_items_of_another_project(project, other_project, sme):
    from annotation.errors import DomainError
    from annotation.models import Item, ReviewRequest
    from annotation.services.review import request_review

    mine = Item.objects.create(project=project, external_id="a", split="train")
    theirs = Item.objects.create(project=other_project, external_id="b", split="train")
    with pytest.raises(DomainError, match=f"not items of this project: {theirs.pk}"):
        request_review(project, [mine.pk, theirs.pk], requested_by=sme, reason="check")
    assert not ReviewRequest.objects.exists()
    assert request_review(project, [mine.pk], requested_by=sme, reason="check") == 1


@pytest.mark.django_db
def test_a_broker_that_refuses_the_task_fails_the_version_with_the_reason(project, monkeypatch):
    from training import tasks

    def refuse(args, queue=None):
        raise ConnectionError("Connection refused")

    monkeypatch.setattr(tasks.train_model, "apply_async", refuse)
    version = services.start_training(project, trainer="sklearn_logreg")
    services.enqueue(version.pk)  # what the on-commit hook runs
    version.refresh_from_db()
    assert version.status == ModelVersion.Status.FAILED and version.finished_at is not None
    assert version.error == "Could not queue the training (is the Celery broker reachable?): Connection refused"


@pytest.mark.django_db
def test_a_promote_or_roll_back_note_over_its_column_is_refused_not_cut(project, mle):
    add_digit_items(project, 30)
    version = trained(project)
    with pytest.raises(services.TrainingError, match="a note has at most 500 characters; this one has 501"):
        services.promote(version, user=mle, note="n" * 501)
    assert not Promotion.objects.exists()
    services.promote(version, user=mle, note="n" * 500)
    with pytest.raises(services.TrainingError, match="this one has 600"):
        services.rollback(version, user=mle, note="n" * 600)
    assert Promotion.objects.get().note == "n" * 500
