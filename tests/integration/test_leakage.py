"""The leakage check on the real database and file storage: planted copies imported as files,
the report of the training path (a real worker too), moving a group (recorded, stable across a
re-import), the API and the model page, and who may see and do what."""

import time

import pytest
from django.urls import reverse

from annotation.models import Item
from annotation.services.item_import import import_items
from tests import leakage_data as D
from training import leakage_service
from training.models import LeakageMove, LeakageReport, ModelVersion

from .test_training import trained
from .training_data import add_digit_items


def _write_images(case, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in zip(case.names, case.files, strict=True):
        (folder / name).write_bytes(data)
    return folder


def _place(project, case):
    """Put each item in the case's split (the planted placement, across splits)."""
    for split in D.SPLITS:
        names = [n for n, s in zip(case.names, case.splits, strict=True) if s == split]
        Item.objects.filter(project=project, external_id__in=names).update(split=split)


@pytest.fixture
def image_case():
    return D.image_case()


@pytest.fixture
def leak_folder(tmp_path, image_case):
    return _write_images(image_case, tmp_path / "tiles")


@pytest.fixture
def leaky(project, leak_folder, image_case, mle):
    batch = import_items(project, leak_folder, user=mle)
    assert batch.created_count == len(image_case.names), batch.errors
    _place(project, image_case)
    return project


def _names(project):
    return dict(Item.objects.filter(project=project).values_list("pk", "external_id"))


def _found(report, names):
    return {tuple(sorted((names[p["a"]], names[p["b"]]))) for p in report.pairs}


@pytest.mark.django_db
def test_every_planted_image_copy_is_found_and_no_unrelated_tile(leaky, image_case):
    report = leakage_service.check_project(leaky)
    names = _names(leaky)
    assert report.items_checked == len(image_case.names) == 80
    found = _found(report, names)
    assert image_case.planted() <= found <= image_case.group_pairs()  # every copy, nothing unrelated
    assert [{names[i] for i in g["items"]} for g in report.groups] == image_case.groups
    assert report.thresholds["image"] == {"hash": "dhash", "hash_size": 8, "bits": 64, "max_distance": 10}
    assert all(p["kind"] == "near" and 0 <= p["distance"] <= 10 for p in report.pairs)


@pytest.mark.django_db
def test_moving_a_group_is_recorded_and_a_reimport_keeps_it(leaky, leak_folder, image_case, mle):
    report = leakage_service.check_project(leaky)
    group = report.groups[0]
    before = dict(Item.objects.filter(pk__in=group["items"]).values_list("pk", "split"))
    counts = {s: list(before.values()).count(s) for s in D.SPLITS}
    majority = max(D.SPLITS, key=lambda s: (counts[s], -D.SPLITS.index(s)))

    move = leakage_service.move_group(report, 0, user=mle)
    after = dict(Item.objects.filter(pk__in=group["items"]).values_list("pk", "split"))
    assert move.to_split == majority and set(after.values()) == {majority}
    assert move.by == mle and move.at is not None
    assert sorted(m["item"] for m in move.moved) == sorted(pk for pk, s in before.items() if s != majority)
    assert all(before[m["item"]] == m["from"] for m in move.moved)
    with pytest.raises(leakage_service.Conflict):
        leakage_service.move_group(report, 0, user=mle)

    again = import_items(leaky, leak_folder, user=mle)  # the same files: every one skipped
    assert again.created_count == 0 and again.skipped_count == len(image_case.names)
    assert dict(Item.objects.filter(pk__in=group["items"]).values_list("pk", "split")) == after

    fresh = leakage_service.check_project(leaky)
    assert len(fresh.groups) == len(report.groups) - 1
    assert not set(group["items"]) & {i for g in fresh.groups for i in g["items"]}


@pytest.mark.django_db
def test_a_move_to_a_named_split_and_bad_group_numbers(leaky, mle):
    report = leakage_service.check_project(leaky)
    move = leakage_service.move_group(report, 1, user=mle, split="test")
    assert set(Item.objects.filter(pk__in=report.groups[1]["items"]).values_list("split", flat=True)) == {"test"}
    assert move.to_split == "test"
    for bad in (-1, len(report.groups)):
        with pytest.raises(leakage_service.TrainingError) as err:
            leakage_service.move_group(report, bad, user=mle)
        assert err.value.field == "group"
    with pytest.raises(leakage_service.TrainingError) as err:
        leakage_service.move_group(report, 2, user=mle, split="holdout")
    assert err.value.field == "split"
    assert LeakageMove.objects.count() == 1


def _text_items(project, case, gold=True):
    from annotation.models import GoldLabel, GoldLabelClass

    pos, neg = project.label_classes.order_by("order")
    for k, (name, text, split) in enumerate(zip(case.names, case.texts, case.splits, strict=True)):
        item = Item.objects.create(project=project, external_id=name, split=split, text=text)
        if gold:
            GoldLabelClass.objects.create(gold=GoldLabel.objects.create(item=item), label_class=(pos, neg)[k % 2])


@pytest.mark.django_db
def test_training_checks_its_snapshot_first_and_reports_planted_texts(other_project):
    case = D.text_case()
    _text_items(other_project, case)
    version = trained(other_project)
    report = LeakageReport.objects.get(snapshot=version.snapshot)
    names = _names(other_project)
    assert report.items_checked == version.snapshot.size == len(case.names)
    assert _found(report, names) == case.group_pairs()
    assert report.thresholds["text"]["min_jaccard"] == 0.7
    # A second model on the same labels reuses the snapshot, and its report.
    assert trained(other_project).snapshot == version.snapshot
    assert LeakageReport.objects.filter(snapshot=version.snapshot).count() == 1


@pytest.mark.django_db
def test_a_failing_check_never_stops_a_training(other_project, monkeypatch):
    from training import leakage

    _text_items(other_project, D.text_case())

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the check")

    monkeypatch.setattr(leakage, "check", broken)
    version = trained(other_project)
    assert version.status == "ready" and not LeakageReport.objects.exists()


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_check_before_training(api_as, project, mle, settings):
    from uuid import uuid4

    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    queue = f"concord-test-leakage-{uuid4().hex[:8]}"
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "QUEUE": queue}
    items = add_digit_items(project, 45)
    dev = next(i for i in items if i.split == "dev")
    copy = Item.objects.get(pk=dev.pk)
    copy.pk, copy.external_id, copy.split, copy.sha256 = None, "copy-of-dev", "train", ""
    copy.save()  # the same file under another id, in train: an exact duplicate across splits
    from annotation.models import GoldLabel, GoldLabelClass

    dev_class = GoldLabelClass.objects.get(gold__item=dev).label_class
    GoldLabelClass.objects.create(gold=GoldLabel.objects.create(item=copy), label_class=dev_class)
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue], loglevel="WARNING"):
        response = api_as(mle).post(
            reverse("training_api:project-models", args=[project.pk]), {"trainer": "sklearn_logreg"}, format="json"
        )
        version = ModelVersion.objects.get(short_id=response.data["id"])
        deadline = time.monotonic() + 120
        while version.status == "training" and time.monotonic() < deadline:
            time.sleep(0.3)
            version.refresh_from_db()
    assert version.status == "ready", version.error
    report = LeakageReport.objects.get(snapshot=version.snapshot)
    exact = [p for p in report.pairs if p["kind"] == "exact"]
    assert {(p["a"], p["b"]) for p in exact} == {(dev.pk, copy.pk)}


# --------------------------------------------------------------------------------------------
# API and page
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_report_and_move(api_as, leaky, image_case, mle, sme, django_assert_max_num_queries):
    url = reverse("training_api:project-leakage", args=[leaky.pk])
    assert api_as(mle).get(url).status_code == 404  # no check yet
    report = leakage_service.check_project(leaky)
    with django_assert_max_num_queries(8):  # whatever the number of groups
        body = api_as(sme).get(url).json()
    assert body["id"] == report.pk and body["group_count"] == 8 and body["pair_count"] == len(report.pairs) >= 32
    assert body["thresholds"]["image"]["max_distance"] == 10
    first = body["groups"][0]
    assert first["moved"] is None and first["proposed_split"] in D.SPLITS
    assert all(i["thumbnail"].startswith("http") for i in first["items"])
    assert {i["external_id"] for i in first["items"]} in image_case.groups

    move_url = reverse("training_api:leakage-move", args=[leaky.pk, 0]).rstrip("/")
    response = api_as(mle).post(move_url, {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["to_split"] == first["proposed_split"] and response.json()["by"] == "mle"
    assert api_as(mle).post(move_url, {}, format="json").status_code == 409
    moved = api_as(mle).get(url).json()["groups"][0]
    assert moved["moved"]["to_split"] == first["proposed_split"]
    assert {i["split"] for i in moved["items"]} == {first["proposed_split"]}


@pytest.mark.django_db
def test_api_bad_input_is_400_naming_the_field(api_as, leaky, mle):
    leakage_service.check_project(leaky)
    move = reverse("training_api:leakage-move", args=[leaky.pk, 0])
    response = api_as(mle).post(move, {"split": "holdout"}, format="json")
    assert response.status_code == 400 and "split" in response.json()
    response = api_as(mle).post(reverse("training_api:leakage-move", args=[leaky.pk, 999]), {}, format="json")
    assert response.status_code == 400 and "group" in response.json()
    response = api_as(mle).post(move, {"report": "x"}, format="json")
    assert response.status_code == 400 and "report" in response.json()
    response = api_as(mle).get(reverse("training_api:project-leakage", args=[leaky.pk]) + "?report=abc")
    assert response.status_code == 400 and "report" in response.json()
    assert Item.objects.filter(project=leaky).values("split").distinct().count() == 3  # nothing moved


@pytest.mark.django_db
def test_api_permissions(api_as, leaky, labeler, sme, outsider):
    leakage_service.check_project(leaky)
    url = reverse("training_api:project-leakage", args=[leaky.pk])
    move = reverse("training_api:leakage-move", args=[leaky.pk, 0])
    assert api_as(outsider).get(url).status_code == 404
    assert api_as(outsider).post(move, {}, format="json").status_code == 404
    # Labelers: the endpoints do not exist for them (the API's rule); SMEs read, MLEs move.
    assert api_as(labeler).get(url).status_code == 404
    assert api_as(labeler).post(move, {}, format="json").status_code == 404
    assert api_as(sme).get(url).status_code == 200
    assert api_as(sme).post(move, {}, format="json").status_code == 403
    assert not LeakageMove.objects.exists()


@pytest.fixture
def leaky_model(leaky):
    """A ready model of the leaky project whose snapshot has the report (as training writes it)."""
    from annotation.models import GoldLabel, GoldLabelClass

    classes = list(leaky.label_classes.filter(is_ambiguity=False).order_by("order"))
    for k, item in enumerate(Item.objects.filter(project=leaky).order_by("pk")):
        GoldLabelClass.objects.create(gold=GoldLabel.objects.create(item=item), label_class=classes[k % 3])
    return trained(leaky)


@pytest.mark.django_db
def test_model_page_shows_the_pairs_and_an_mle_moves_a_group(client, leaky_model, image_case, mle, sme, outsider):
    page = reverse("training:model-detail", args=[leaky_model.project.slug, leaky_model.short_id])
    client.force_login(sme)
    html = client.get(page).content.decode()
    assert 'data-testid="leakage"' in html and "within 10 bits" in html
    assert html.count('class="lk-group"') == 8
    assert "leakage-move-0" not in html  # SMEs read, MLEs move
    client.force_login(mle)
    html = client.get(page).content.decode()
    assert 'data-testid="leakage-move-0"' in html
    report = LeakageReport.objects.get(snapshot=leaky_model.snapshot)
    move = reverse("training:leakage-move", args=[leaky_model.project.slug, leaky_model.short_id, 0])
    response = client.post(move, {"report": report.pk}, follow=True)
    html = response.content.decode()
    assert "moved to" in html and 'data-testid="leakage-moved"' in html
    assert LeakageMove.objects.get(report=report, group=0).by == mle
    client.force_login(sme)
    assert client.post(move, {"report": report.pk}).status_code == 403
    client.force_login(outsider)
    assert client.get(page).status_code == 404
    assert client.post(move, {"report": report.pk}).status_code == 404


@pytest.mark.django_db
def test_text_snippets_are_escaped_on_the_page(client, other_project, outsider):
    case = D.text_case()
    case.texts[0] = "<script>alert(1)</script> " + case.texts[0]
    case.texts[1] = "<SCRIPT>alert(1)</SCRIPT>, " + case.texts[1]
    _text_items(other_project, case)
    version = trained(other_project)
    client.force_login(outsider)  # the MLE of the text project
    html = client.get(reverse("training:model-detail", args=[other_project.slug, version.short_id])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "Jaccard" in html


@pytest.mark.django_db
def test_a_group_too_big_to_be_copies_is_not_moved(api_as, project, mle):
    """Look-alikes chained by union-find (as the demo's digit scans are) must not empty a split."""
    items = add_digit_items(project, leakage_service.MAX_MOVE_GROUP + 1, gold=False)
    before = {i.pk: i.split for i in items}
    report = LeakageReport.objects.create(
        project=project,
        data_kind="image",
        thresholds={},
        items_checked=len(items),
        groups=[{"items": [i.pk for i in items], "splits": {str(i.pk): i.split for i in items}}],
    )
    response = api_as(mle).post(reverse("training_api:leakage-move", args=[project.pk, 0]), {}, format="json")
    assert response.status_code == 400 and "look-alikes" in response.json()["group"][0]
    assert dict(Item.objects.filter(project=project).values_list("pk", "split")) == before
    body = api_as(mle).get(reverse("training_api:project-leakage", args=[project.pk])).json()
    assert body["groups"][0]["movable"] is False and body["groups"][0]["proposed_split"] is None
    assert report.moves.count() == 0
