"""Label-quality reports through the database: the loader and service on a hand-built project, the
`quality` command on the real RTE crowd data checked against values computed here from the raw
file with plain Python, the API and the dashboard (roles, 404, escaping, query counts), stale
reports being queued on commit, and a real Celery worker computing one."""

import io
import json
import math
import time
import uuid
from collections import Counter, defaultdict

import krippendorff
import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import call_command
from statsmodels.stats.proportion import proportion_confint

from annotation import consensus
from annotation.models import (
    Annotation,
    AnnotationLabel,
    GoldLabel,
    GoldLabelClass,
    Guideline,
    Item,
    LabelClass,
    Membership,
    Project,
    QualityReport,
    Resolution,
    ResolutionLabel,
)
from annotation.services import quality as service
from annotation.services.projects import create_project
from tests.conftest import CROWD_DIR, make_user

API = "/api/v1/projects/{}/quality/"
PAGE = "/projects/{}/quality/"
XSS = '<script>alert("x")</script>'


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # the refresh throttle lives in the cache
    yield
    cache.clear()


def label(item, user, name, *, current=True, **fields):
    annotation = Annotation.objects.create(item=item, labeler=user, is_current=current, **fields)
    AnnotationLabel.objects.create(annotation=annotation, label_class=item.project.label_classes.get(name=name))
    return annotation


def gold(item, name):
    g = GoldLabel.objects.create(item=item)
    GoldLabelClass.objects.create(gold=g, label_class=item.project.label_classes.get(name=name))


def resolve(item, name=None, *, ambiguous=False, by=None):
    r = Resolution.objects.create(item=item, decided_by=by, is_ambiguous=ambiguous)
    if name:
        ResolutionLabel.objects.create(resolution=r, label_class=item.project.label_classes.get(name=name))


@pytest.fixture
def birds(project, labeler, labeler2, sme, mle, settings):
    """Five items, three labelers, two guideline versions, gold, resolutions and edited labels.

    truth: b0 crow (gold, which beats its resolution), b1 dove (gold), b2 owl (resolution);
    b3 has only an ambiguous resolution, b4 nothing.
    """
    settings.CONCORD_QUALITY = {"MIN_SLICE_ITEMS": 1}
    lab3 = make_user("lab3")
    Membership.objects.create(user=lab3, project=project, role="labeler")
    v1 = Guideline.objects.create(project=project, version=1, text="v1")
    v2 = Guideline.objects.create(project=project, version=2, text="v2")
    light = ["day", "day", "night", "night", "night"]
    b = [
        Item.objects.create(project=project, external_id=f"b{i}", split="train", metadata={"light": light[i]})
        for i in range(5)
    ]
    gold(b[0], "crow")
    gold(b[1], "dove")
    resolve(b[0], "dove", by=sme)
    resolve(b[2], "owl", by=sme)
    resolve(b[3], ambiguous=True, by=sme)
    # History first (earlier rows), then the current ones.
    label(b[1], labeler2, "dove", current=False, guideline=v1)
    label(b[2], labeler, "owl", current=False, guideline=v1)
    label(b[0], labeler, "crow", guideline=v1, duration_ms=2000)
    label(b[0], labeler2, "crow", guideline=v1, duration_ms=4000)
    label(b[0], lab3, "dove", guideline=v2, unsure=True)
    label(b[1], labeler, "dove", guideline=v1, duration_ms=1000)
    label(b[1], labeler2, "owl", guideline=v1)
    label(b[2], labeler, "owl", guideline=v1, duration_ms=3000)
    label(b[2], labeler2, "owl", guideline=v1)
    label(b[3], labeler, "unclear", guideline=v1)
    label(b[3], labeler2, "crow", guideline=v1)
    label(b[4], labeler, "crow", guideline=v1)
    project.lab3 = lab3
    return project


# ------------------------------------------------------------------------------------------------
# The service on a hand-built project
# ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_report_of_a_hand_built_project(birds, labeler, labeler2, django_assert_max_num_queries):
    with django_assert_max_num_queries(18):  # fixed, whatever the number of labels (tags and their last event: 2)
        report = service.compute_quality_report(birds)
    data = report.data
    assert report.annotation_count == 10 and data["supported"] is True
    assert data["counts"] | {} == data["counts"]
    c = data["counts"]
    assert (c["annotations"], c["items"], c["labelers"], c["classes"]) == (10, 5, 3, 4)
    assert (c["truth_items"], c["gold_items"], c["resolution_items"]) == (3, 2, 1)

    # HLP on b0 (crow, crow, dove), b1 (dove, owl), b2 (owl, owl): 5 of 7.
    h = data["hlp"]
    assert (h["basis"], h["correct"], h["scored_labels"], h["scored_items"]) == ("ground_truth", 5, 7, 3)
    assert h["value"] == pytest.approx(5 / 7)
    assert h["labeler_mean"] == pytest.approx((1 + 2 / 3 + 0) / 3)

    rows = {r["name"]: r for r in data["labelers"]}
    lab1, lab2, lab3 = rows["lab1"], rows["lab2"], rows["lab3"]
    assert (lab1["labels"], lab1["scored"], lab1["correct"]) == (5, 3, 3)
    assert (lab2["labels"], lab2["scored"], lab2["correct"]) == (4, 3, 2)
    assert (lab3["labels"], lab3["scored"], lab3["correct"], lab3["unsure_share"]) == (1, 1, 0, 1.0)
    # lab1's pairs: b0 two (one agrees), b1 one, b2 one (agrees), b3 one: 2 of 5.
    assert (lab1["pairs"], lab1["agreement"]) == (5, 0.4)
    assert lab1["labels_per_hour"] == pytest.approx(3 * 3_600_000 / 6000) and lab1["median_seconds"] == 2.0
    assert lab3["labels_per_hour"] is None
    assert lab1["ambiguity_share"] == pytest.approx(1 / 5)

    # Guideline versions: lab3's single v2 label pairs with nobody.
    v1, v2 = data["guideline_versions"]
    assert (v1["version"], v1["labels"], v1["pairs"]) == (1, 9, 4)
    assert (v2["version"], v2["labels"], v2["pairs"], v2["percent_agreement"]) == (2, 1, 0, None)

    # Slices: day = b0, b1; night = b2, b3, b4.
    (key,) = data["slices"]
    day, night = key["values"]
    assert (key["key"], day["value"], day["items"], day["labels"], night["items"]) == ("light", "day", 2, 5, 3)
    assert (day["scored"], day["correct"]) == (5, 3)

    # History: lab2 changed b1 from dove to owl (a conflict); lab1 re-gave owl on b2 (an edit only).
    d = data["duplicates"]
    assert (d["history_rows"], d["edited_pairs"], d["conflicting_pairs"]) == (2, 2, 1)
    assert (d["items_with_edits"], d["items_with_conflicts"]) == (2, 1)
    assert d["examples"] == [
        {"item_id": Item.objects.get(external_id="b1").pk, "external_id": "b1", "labeler": "lab2",
         "current": "owl", "earlier": ["dove"]}
    ]  # fmt: skip

    # Classes: b3's truth is missing, its majority is a tie between unclear and crow.
    classes = {r["name"]: r for r in data["classes"]}
    assert classes["crow"]["truth_items"] == 1 and classes["crow"]["accuracy"] == pytest.approx(2 / 3)
    assert classes["unclear"]["is_ambiguity"] and classes["unclear"]["given"] == 1

    disputed = {d["external_id"]: d for d in data["disputed_items"]}
    assert set(disputed) == {"b0", "b1", "b3"}
    assert disputed["b1"]["entropy_bits"] == 1.0 and disputed["b1"]["truth"] == "dove"
    assert disputed["b0"]["counts"] == [["crow", 2], ["dove", 1]] and disputed["b0"]["unsure"] == 1
    # Consensus is scored against gold only (b0 and b1), never against SME resolutions.
    assert data["consensus"]["gold_items"] == 2
    json.dumps(data, allow_nan=False)


@pytest.mark.django_db
def test_merged_classes_count_as_their_target_and_several_gold_classes_are_skipped(project, labeler, labeler2):
    crow, dove = project.label_classes.get(name="crow"), project.label_classes.get(name="dove")
    old = LabelClass.objects.create(project=project, name="raven", order=9)
    item = Item.objects.create(project=project, external_id="x", split="train")
    label(item, labeler, "raven")
    label(item, labeler2, "crow")
    g = GoldLabel.objects.create(item=item)
    GoldLabelClass.objects.create(gold=g, label_class=crow)
    GoldLabelClass.objects.create(gold=g, label_class=dove)
    LabelClass.objects.filter(pk=old.pk).update(merged_into=crow, is_active=False)

    data = service.compute_quality_report(project).data

    assert "raven" not in data["confusion"]["classes"]
    assert data["agreement"]["percent_agreement"] == 1.0  # raven now reads as crow
    assert data["counts"]["gold_with_several_classes"] == 1 and data["counts"]["truth_items"] == 0


@pytest.mark.django_db
def test_multi_label_project_gets_a_clear_unsupported_report(api_as):
    project = create_project(slug="tags", name="Tags", data_kind="text", classes=["a", "b"], task_type="multi_label")
    mle = make_user("tagger")
    Membership.objects.create(user=mle, project=project, role="mle")
    item = Item.objects.create(project=project, external_id="t", split="train")
    label(item, mle, "a")

    response = api_as(mle).get(API.format(project.pk))

    assert response.status_code == 200
    body = response.json()
    assert body["supported"] is False and "single-label" in body["reason"] and body["counts"]["annotations"] == 1
    client = api_as(mle)  # the page says so too
    client.force_login(mle)
    page = client.get(PAGE.format("tags"))
    assert page.status_code == 200 and b"single-label projects" in page.content


# ------------------------------------------------------------------------------------------------
# The `quality` command on RTE, checked against the raw file
# ------------------------------------------------------------------------------------------------


def rte_from_raw_file():
    """(labels {(item, worker): label}, truth {item: label}) read with plain Python."""
    folder = CROWD_DIR / "RTE"
    labels = {}
    for line in (folder / "rte_crowd.txt").read_text().splitlines():
        if line.strip():
            item, worker, answer = line.split("\t")
            labels[(item, worker)] = answer
    truth = dict(line.split("\t") for line in (folder / "rte_truth.txt").read_text().splitlines() if line.strip())
    return labels, truth


@pytest.mark.crowd
@pytest.mark.django_db
def test_quality_command_on_rte_matches_values_computed_from_the_raw_file(django_assert_max_num_queries):
    create_project(slug="rte", name="RTE", data_kind="text", classes=["1"])
    folder = CROWD_DIR / "RTE"
    call_command(
        "import_annotations", "rte", str(folder / "rte_crowd.txt"), "--no-header", "--delimiter", "TAB",
        "--truth", str(folder / "rte_truth.txt"), "--create-classes", stdout=io.StringIO(),
    )  # fmt: skip
    out = io.StringIO()
    with django_assert_max_num_queries(20):
        call_command("quality", "rte", "--json", stdout=out)
    report = json.loads(out.getvalue())
    labels, truth = rte_from_raw_file()
    assert QualityReport.objects.get().data["hlp"] == report["hlp"]

    # HLP: every label against the truth of its item, pooled; and the mean of the workers.
    right = {key: answer == truth[key[0]] for key, answer in labels.items()}
    assert report["counts"]["annotations"] == len(labels) == 8000
    assert report["hlp"]["basis"] == "ground_truth" and report["hlp"]["scored_labels"] == 8000
    assert report["hlp"]["correct"] == sum(right.values())
    assert report["hlp"]["value"] == pytest.approx(sum(right.values()) / 8000, abs=1e-12)
    per_worker = defaultdict(list)
    for (_, worker), ok in right.items():
        per_worker[worker].append(ok)
    assert report["hlp"]["labeler_mean"] == pytest.approx(
        sum(sum(v) / len(v) for v in per_worker.values()) / len(per_worker), abs=1e-12
    )

    # The per-labeler table: labels, accuracy and its Wilson interval, agreement with the others.
    by_item = defaultdict(list)
    for (item, worker), answer in labels.items():
        by_item[item].append((worker, answer))
    pairs, agree = Counter(), Counter()
    for rows in by_item.values():
        for worker, answer in rows:
            for other, other_answer in rows:
                if other != worker:
                    pairs[worker] += 1
                    agree[worker] += answer == other_answer
    table = {row["name"]: row for row in report["labelers"]}
    assert len(table) == len(per_worker) == 164
    for worker, oks in per_worker.items():
        row = table[f"{worker}@rte"]
        assert (row["labels"], row["scored"], row["correct"]) == (len(oks), len(oks), sum(oks))
        assert row["accuracy"] == pytest.approx(sum(oks) / len(oks), abs=1e-12)
        low, high = proportion_confint(sum(oks), len(oks), method="wilson")
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-12)
        assert row["pairs"] == pairs[worker] and row["agreement"] == pytest.approx(agree[worker] / pairs[worker])
        assert row["labels_per_hour"] is None  # imported labels carry no duration
    assert [r["labels"] for r in report["labelers"]] == sorted((len(v) for v in per_worker.values()), reverse=True)

    # Consensus against gold. Majority vote: the untied items are exact; ties (5-5) are broken at
    # random, so each tie adds 0 or 1 correct.
    untied_correct, ties = 0, 0
    for item, rows in by_item.items():
        (top, n_top), *rest = Counter(a for _, a in rows).most_common()
        if rest and rest[0][1] == n_top:
            ties += 1
        else:
            untied_correct += top == truth[item]
    mv, ds = report["consensus"]["majority_vote"], report["consensus"]["dawid_skene"]
    assert report["consensus"]["gold_items"] == mv["scored"] == ds["scored"] == 800
    assert mv["ties_on_gold"] == mv["ties"] == ties
    assert 0 <= mv["correct"] - untied_correct <= ties
    # Dawid-Skene: the consensus module on arrays built here from the raw file, same seed.
    items, workers = sorted(by_item), sorted(per_worker)
    dense = np.full((len(items), len(workers)), np.nan)
    for (item, worker), answer in labels.items():
        dense[items.index(item), workers.index(worker)] = int(answer) - 1
    fitted = consensus.dawid_skene(dense, 2, max_iter=200, random_state=0)
    gold_vector = np.array([int(truth[i]) - 1 for i in items])
    assert ds["correct"] == int((fitted.labels == gold_vector).sum())
    assert ds["accuracy"] > mv["accuracy"] > 0.85

    # Agreement against the reference package.
    assert report["agreement"]["krippendorff_alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=dense.T, level_of_measurement="nominal"), abs=1e-9
    )
    assert report["agreement"]["paired_items"] == 800 and report["duplicates"]["edited_pairs"] == 0

    summary = io.StringIO()
    call_command("quality", "rte", stdout=summary)
    text = summary.getvalue()
    assert "Krippendorff's alpha" in text and "Dawid-Skene" in text and "1@rte" not in text.splitlines()[0]
    assert QualityReport.objects.count() == 2


def test_quality_command_refuses_an_unknown_project(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="no project"):
        call_command("quality", "nope")


# ------------------------------------------------------------------------------------------------
# API: roles, 404, the stored report, staleness
# ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_roles_and_cross_project_404(birds, labeler, sme, mle, outsider, api_as, other_project):
    url = API.format(birds.pk)
    for user in (sme, mle):
        assert api_as(user).get(url).status_code == 200
    assert api_as(labeler).get(url).status_code == 404
    assert api_as(outsider).get(url).status_code == 404
    assert api_as(sme).get(API.format(other_project.pk)).status_code == 404
    assert api_as(sme).get(API.format(999_999)).status_code == 404
    from rest_framework.test import APIClient

    assert APIClient().get(url).status_code == 401


@pytest.mark.django_db
def test_api_serves_the_stored_report_with_its_age_in_few_queries(
    birds, mle, api_as, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    stored = service.compute_quality_report(birds)
    client = api_as(mle)
    with django_capture_on_commit_callbacks() as callbacks, django_assert_max_num_queries(6):
        response = client.get(API.format(birds.pk))
    assert response.status_code == 200 and callbacks == []
    body = response.json()
    assert body["status"] == "ready" and body["stale"] is False and body["refresh_queued"] is False
    assert body["computed_at"] == stored.computed_at.isoformat() and 0 <= body["age_seconds"] < 60
    assert body["hlp"] == stored.data["hlp"] and body["annotation_count"] == 10
    assert QualityReport.objects.count() == 1  # served, not recomputed


@pytest.mark.django_db
def test_a_stale_report_is_served_and_a_refresh_queued_once_on_commit(
    birds, mle, labeler, api_as, django_capture_on_commit_callbacks, monkeypatch
):
    from annotation import tasks

    queued = []
    monkeypatch.setattr(tasks.refresh_quality_report, "delay", lambda *args: queued.append(args))
    service.compute_quality_report(birds)
    old = QualityReport.objects.get()
    item = Item.objects.get(external_id="b4")
    label(item, birds.lab3, "dove")  # a new label: the stored report is stale

    client = api_as(mle)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        body = client.get(API.format(birds.pk)).json()
    assert body["stale"] is True and body["refresh_queued"] is True and body["annotation_count"] == 11
    assert body["computed_at"] == old.computed_at.isoformat() and body["counts"]["annotations"] == 10
    assert len(callbacks) == 1 and queued == [(birds.pk,)]

    with django_capture_on_commit_callbacks(execute=True):
        again = client.get(API.format(birds.pk)).json()
    assert again["stale"] is True and again["refresh_queued"] is False and queued == [(birds.pk,)]
    assert QualityReport.objects.count() == 1

    # An edit keeps the count but changes the fingerprint: stale again, queued again.
    Annotation.objects.filter(item=item, labeler=birds.lab3).update(is_current=False)
    label(item, birds.lab3, "owl")
    with django_capture_on_commit_callbacks(execute=True):
        edited = client.get(API.format(birds.pk)).json()
    assert edited["annotation_count"] == 11 and edited["stale"] is True and edited["refresh_queued"] is True
    assert len(queued) == 2

    # Running the refresh (what the task does) makes it fresh; running it twice adds nothing.
    first = service.refresh_quality_report(birds.pk)
    assert service.refresh_quality_report(birds.pk) == first
    assert QualityReport.objects.count() == 2
    assert client.get(API.format(birds.pk)).json()["stale"] is False


@pytest.mark.django_db
def test_a_new_resolution_makes_the_report_stale(birds, sme):
    service.compute_quality_report(birds)
    resolve(Item.objects.get(external_id="b4"), "crow", by=sme)
    assert service.quality_for_display(birds).stale is True


@pytest.mark.django_db
def test_first_report_is_computed_inline_for_a_small_project_and_queued_for_a_large_one(
    birds, mle, api_as, settings, django_capture_on_commit_callbacks, monkeypatch
):
    from annotation import tasks

    queued = []
    monkeypatch.setattr(tasks.refresh_quality_report, "delay", lambda *args: queued.append(args))
    settings.CONCORD_QUALITY = {"INLINE_MAX_ANNOTATIONS": 10}  # birds has 10: "large"
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as(mle).get(API.format(birds.pk))
    assert response.status_code == 202
    assert response.json() == {
        "status": "computing", "computed_at": None, "age_seconds": None, "stale": True,
        "refresh_queued": True, "annotation_count": 10,
    }  # fmt: skip
    assert queued == [(birds.pk,)] and not QualityReport.objects.exists()

    settings.CONCORD_QUALITY = {"INLINE_MAX_ANNOTATIONS": 20_000}
    response = api_as(mle).get(API.format(birds.pk))
    assert response.status_code == 200 and response.json()["stale"] is False
    assert QualityReport.objects.count() == 1


@pytest.mark.django_db
def test_reports_beyond_the_kept_number_are_deleted(birds, settings):
    settings.CONCORD_QUALITY = {"KEEP_REPORTS": 2}
    ids = [service.compute_quality_report(birds).pk for _ in range(4)]
    assert sorted(QualityReport.objects.values_list("pk", flat=True)) == sorted(ids[-2:])


@pytest.mark.django_db
def test_refresh_of_a_deleted_project_does_nothing(db):
    from annotation.tasks import refresh_quality_report

    assert refresh_quality_report.run(987_654) is None


@pytest.mark.django_db
def test_openapi_schema_documents_the_quality_endpoint(mle, api_as):
    schema = api_as(mle).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/projects/{project_id}/quality/"]["get"]
    assert set(operation["responses"]) == {"200", "202"}
    report = schema["components"]["schemas"]["QualityReport"]["properties"]
    assert {"hlp", "labelers", "guideline_versions", "stale", "age_seconds", "computed_at"} <= set(report)


# ------------------------------------------------------------------------------------------------
# The dashboard page
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def browser_as(client):
    def log_in(user):
        client.force_login(user)
        return client

    return log_in


@pytest.mark.django_db
def test_page_roles_and_404(birds, labeler, sme, mle, outsider, browser_as, client):
    url = PAGE.format(birds.slug)
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert browser_as(outsider).get(url).status_code == 404
    assert browser_as(labeler).get(url).status_code == 403
    for user in (sme, mle):
        page = browser_as(user).get(url)
        assert page.status_code == 200
        for marker in (b'data-chart="confusion"', b'data-chart="versions"', b'data-table="labelers"',
                       b'data-table="slices"', b'data-table="classes"', b'data-list="duplicates"'):  # fmt: skip
            assert marker in page.content


@pytest.mark.django_db
def test_page_serves_the_stored_report_in_few_queries_and_escapes_names(
    birds, mle, browser_as, django_assert_max_num_queries
):
    LabelClass.objects.filter(project=birds, name="owl").update(name=XSS)
    Item.objects.filter(external_id="b1").update(metadata={"light": XSS})
    service.compute_quality_report(birds)
    client = browser_as(mle)
    with django_assert_max_num_queries(9):
        page = client.get(PAGE.format(birds.slug))
    html = page.content.decode()
    assert XSS not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "Computed" in html and "stale-notice" not in html


@pytest.mark.django_db
def test_page_shows_a_stale_report_with_a_notice(birds, mle, browser_as, monkeypatch):
    from annotation import tasks

    monkeypatch.setattr(tasks.refresh_quality_report, "delay", lambda *args: None)
    service.compute_quality_report(birds)
    label(Item.objects.get(external_id="b4"), birds.lab3, "dove")
    html = browser_as(mle).get(PAGE.format(birds.slug)).content.decode()
    assert 'data-testid="stale-notice"' in html and "11 annotations now" in html
    assert QualityReport.objects.count() == 1


@pytest.mark.django_db
def test_page_while_the_first_report_is_computed(birds, mle, browser_as, settings, monkeypatch):
    from annotation import tasks

    monkeypatch.setattr(tasks.refresh_quality_report, "delay", lambda *args: None)
    settings.CONCORD_QUALITY = {"INLINE_MAX_ANNOTATIONS": 0}
    html = browser_as(mle).get(PAGE.format(birds.slug)).content.decode()
    assert 'data-testid="computing"' in html and "being computed" in html


# ------------------------------------------------------------------------------------------------
# A real Celery worker
# ------------------------------------------------------------------------------------------------


@pytest.mark.celery
def test_a_real_worker_computes_and_stores_the_report(transactional_db, project, labeler, labeler2):
    from celery.contrib.testing.worker import start_worker
    from kombu import Exchange, Queue

    from annotation.tasks import refresh_quality_report
    from config.celery import app

    for i in range(6):
        item = Item.objects.create(project=project, external_id=f"w{i}", split="train")
        label(item, labeler, "crow")
        label(item, labeler2, "crow" if i % 2 else "dove")
    # A queue of its own, so no other worker on the same broker takes the task.
    queue = f"test-quality-{uuid.uuid4().hex[:12]}"
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, queues=[queue], shutdown_timeout=30):
            refresh_quality_report.apply_async(args=[project.pk], queue=queue)
            deadline = time.monotonic() + 60
            while not QualityReport.objects.filter(project=project).exists() and time.monotonic() < deadline:
                time.sleep(0.2)
    finally:
        with app.connection_for_write() as connection:  # leave no binding behind on the broker
            bound = Queue(queue, Exchange(queue), routing_key=queue).bind(connection.default_channel)
            bound.declare()
            bound.delete()
    report = QualityReport.objects.filter(project=project).first()
    assert report is not None, "the worker stored no report within 60 s"
    assert report.annotation_count == 12
    assert report.data["agreement"]["percent_agreement"] == pytest.approx(0.5)
    assert math.isclose(report.data["hlp"]["value"], 0.5)
    assert Project.objects.filter(pk=project.pk).exists()


@pytest.mark.django_db
def test_label_writers_queue_one_debounced_refresh_per_window(
    project, monkeypatch, django_capture_on_commit_callbacks, django_assert_num_queries
):
    from annotation import tasks

    calls = []
    monkeypatch.setattr(tasks.refresh_quality_report, "apply_async", lambda **kw: calls.append(kw))
    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(0):
        assert service.queue_quality_refresh_soon(project.pk) is True
        assert service.queue_quality_refresh_soon(project.pk) is False
    assert calls == [{"args": [project.pk], "countdown": 60}]
