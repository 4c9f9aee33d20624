"""Where to work next: tags as slices in the evaluation, the table on a constructed project, its
API and page, and "Label more like this" cycles (in-process and on a real Celery worker)."""

import re
import time

import numpy as np
import pytest
from django.urls import reverse
from django.utils.html import escape

from active_learning import services
from active_learning.models import Cycle
from annotation.models import GoldLabelClass, Item, ItemTag, QueueEntry, Tag
from annotation.tag_slices import tag_metadata, with_tags
from training import services as training
from training import worknext as W
from training.models import ModelVersion

from .training_data import add_digit_items, label


def tag(project, name, items):
    t = Tag.objects.create(project=project, name=name)
    ItemTag.objects.bulk_create(ItemTag(tag=t, item=i) for i in items)
    return t


def trained(project):
    version = ModelVersion.objects.create(
        project=project,
        trainer="sklearn_logreg",
        hyperparameters=training.check_hyperparameters("sklearn_logreg", {}),
        policy=training.check_policy(None),
    )
    assert training.run_training(version.pk) == "ready", ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    return version


@pytest.fixture
def swapped(project, labeler, labeler2, settings):
    """240 gold digits (144 train, 48 dev, 48 test). The tag "swapped" is on 40 items: 10 dev items,
    6 of which carry a wrong gold label (the next class), and 30 train items. The model learns the
    digits from the train split, so its dev errors are the 6 swapped items. Two labelers label 20
    items correctly: the project's HLP is 1.0 and no slice has the report's 20 items of its own."""
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "CV_BELOW_LABELS": 10}
    items = add_digit_items(project, 240)
    classes = list(project.label_classes.filter(is_ambiguity=False).order_by("order")[:3])
    dev = [i for i in items if i.split == "dev"]
    train = [i for i in items if i.split == "train"]
    for item in dev[:6]:
        GoldLabelClass.objects.filter(gold__item=item).update(label_class=classes[(items.index(item) + 1) % 3])
    for item in train[:20]:
        right = classes[items.index(item) % 3]
        label(item, labeler, right)
        label(item, labeler2, right)
    tag(project, "swapped", dev[:10] + train[30:60])
    return {"items": items, "dev": dev, "train": train}


@pytest.mark.django_db
def test_one_tag_holding_the_errors_ranks_first_with_the_exact_shares(project, swapped):
    version = trained(project)
    m = version.metrics
    assert m["evaluation"]["n"] == 48
    table = m["work_next"]
    rows = table["rows"]
    assert table["errors"] == 6 and table["evaluated"] == 48
    top = rows[0]
    assert (top["kind"], top["tag"], top["key"], top["value"]) == ("tag", "swapped", "tag:swapped", "yes")
    assert top["share"] == pytest.approx(40 / 240)
    assert top["error_share"] == pytest.approx(6 / 6)
    assert (top["n"], top["errors"]) == (10, 6)
    assert top["accuracy"] == pytest.approx(4 / 10)
    assert top["hlp"] == pytest.approx(1.0) and top["hlp_basis"] == "project"
    assert top["gap"] == pytest.approx(0.6) and top["priority"] == pytest.approx(0.6 * 40 / 240)
    assert top["acc_low"] < 0.4 < top["acc_high"]
    # The metadata slices: exact shares of all the project's items.
    ink = {r["value"]: r for r in rows if r["key"] == "ink"}
    for value, row in ink.items():
        in_project = Item.objects.filter(project=project, metadata__ink=value).count()
        assert row["share"] == pytest.approx(in_project / 240)
        dev_in = [i for i in swapped["dev"] if i.metadata["ink"] == value]
        assert row["n"] == len(dev_in) and row["errors"] == sum(i in swapped["dev"][:6] for i in dev_in)
        assert row["priority"] < top["priority"]
    assert sum(r["error_share"] for r in ink.values()) == pytest.approx(1.0)
    # Tags are slices in the per-slice accuracy, calibration and gap-to-HLP blocks too.
    tag_block = next(s for s in m["slices"] if s["key"] == "tag:swapped")
    assert tag_block["values"][0]["n"] == 10 and tag_block["values"][0]["accuracy"] == pytest.approx(0.4)
    assert 0 <= tag_block["values"][0]["ece"] <= 1
    assert "tag:swapped=yes" in {r["slice"] for r in m["gap_to_hlp"]["rows"]}
    assert next(r for r in m["gap_to_hlp"]["rows"] if r["slice"] == "tag:swapped=yes")["share"] == pytest.approx(
        40 / 240
    )


@pytest.mark.django_db
def test_tflite_parity_slices_read_tags_like_metadata(project):
    from training.tflite import parity

    items = add_digit_items(project, 6, gold=False)
    tag(project, "blurry", items[:2])
    meta = with_tags([i.pk for i in items], [i.metadata for i in items], tag_metadata(project.pk))
    y = np.array([0, 1, 2, 0, 1, 2])
    figures = parity(y, y, np.array([0, 0, 2, 0, 1, 2]), meta)
    row = next(s for s in figures["slices"] if s["slice"] == "tag:blurry=yes")
    assert (row["n"], row["keras_accuracy"], row["tflite_accuracy"], row["delta"]) == (2, 1.0, 0.5, -0.5)


# --------------------------------------------------------------------------------------------
# API and page
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_work_next_sorts_refuses_bad_sorts_and_hides_from_others(
    api_as, project, swapped, mle, sme, labeler, outsider
):
    version = trained(project)
    url = reverse("training_api:model-work-next", args=[version.short_id])
    body = api_as(sme).get(url).data
    assert body["sort"] == "priority" and body["rows"][0]["tag"] == "swapped" and "gap to HLP" in body["rule"]
    by_share = api_as(mle).get(url, {"sort": "share", "order": "asc"}).data["rows"]
    assert [r["share"] for r in by_share] == sorted(r["share"] for r in by_share)
    bad = api_as(mle).get(url, {"sort": "colour"})
    assert bad.status_code == 400 and "sort" in bad.data
    assert api_as(mle).get(url, {"order": "sideways"}).status_code == 400
    assert api_as(outsider).get(url).status_code == 404
    assert api_as(labeler).get(url).status_code in (403, 404)
    assert api_as(mle).get(reverse("training_api:model-work-next", args=["nope"])).status_code == 404


@pytest.mark.django_db
def test_the_model_page_shows_the_table_escapes_tag_names_and_sorts(client, project, swapped, mle, sme):
    Tag.objects.filter(project=project, name="swapped").update(name="<b>swapped</b>")
    version = trained(project)
    client.force_login(sme)
    url = reverse("training:model-detail", args=[project.slug, version.short_id])
    page = client.get(url).content.decode()
    assert 'data-testid="work-next"' in page and "gap to HLP x share of all data" in page
    assert "&lt;b&gt;swapped&lt;/b&gt;" in page and "<b>swapped</b>" not in page
    assert 'data-testid="label-more"' not in page  # SMEs read; MLEs launch
    assert client.get(url, {"sort": "bogus"}).status_code == 400
    client.force_login(mle)
    page = client.get(url, {"sort": "share", "order": "asc"}).content.decode()
    assert page.count('data-testid="label-more"') >= 3 and 'data-testid="label-nearest"' in page
    table = page[page.index('data-table="work-next"') :]
    table = table[: table.index("</table>")]
    shown = re.findall(r'<tr data-slice="([^"]+)"', table)
    expected = W.sort_rows(version.metrics["work_next"]["rows"], "share", descending=False)
    assert shown == [escape(f"{r['key']}={r['value']}") for r in expected]


# --------------------------------------------------------------------------------------------
# "Label more like this": cycles whose pool is a slice or a tag
# --------------------------------------------------------------------------------------------


def run_steps(cycle):
    for name in ("train", "score", "select", "queue"):
        getattr(services, f"{name}_step")(cycle.pk)
    cycle.refresh_from_db()
    return cycle


def pool_of(project):
    """The al_project's pool: unlabelled train items without gold (54 of them)."""
    return [i for i in project.items.order_by("pk")[60:] if i.split == "train"]


@pytest.mark.django_db
def test_a_tag_cycle_queues_only_the_tagged_unlabelled_items(al_project, mle):
    pool = pool_of(al_project)
    gold_items = list(al_project.items.order_by("pk")[:3])
    tag(al_project, "Blurry", pool[:5] + gold_items)  # gold items are never in the pool
    cycle = run_steps(
        services.launch(al_project, strategy="mix", batch_size=12, user=mle, pool_restriction={"tag": "blurry"})
    )
    assert cycle.status == "done", cycle.error
    assert cycle.pool_restriction == {"kind": "tag", "tag": "Blurry"}
    assert cycle.pool_size == 5 and cycle.summary["selected"] == 5
    queued = set(QueueEntry.objects.filter(project=al_project, is_active=True).values_list("item_id", flat=True))
    assert queued == {i.pk for i in pool[:5]}


@pytest.mark.django_db
def test_a_slice_cycle_queues_only_items_of_the_slice(al_project, mle):
    pool = pool_of(al_project)
    heavy = {i.pk for i in pool if i.metadata["ink"] == "heavy"}
    assert 0 < len(heavy) < len(pool)
    restriction = {"kind": "slice", "key": "ink", "value": "heavy"}
    cycle = run_steps(services.launch(al_project, strategy="margin", batch_size=200, pool_restriction=restriction))
    assert cycle.status == "done", cycle.error
    assert cycle.pool_size == len(heavy)
    queued = set(QueueEntry.objects.filter(project=al_project, is_active=True).values_list("item_id", flat=True))
    assert queued == heavy


@pytest.mark.django_db
def test_nearest_to_a_tag_keeps_the_k_pool_items_closest_in_the_models_embedding(al_project, mle):
    from sklearn.metrics import pairwise_distances

    from active_learning.sampling import reduce_dim

    labelled = list(al_project.items.order_by("pk")[:60])
    anchors = [i for i in labelled if i.split == "train"][:4]
    tag(al_project, "reflection", anchors)
    restriction = {"kind": "tag", "tag": "reflection", "nearest": 9}
    cycle = run_steps(services.launch(al_project, strategy="random", batch_size=50, pool_restriction=restriction))
    assert cycle.status == "done", cycle.error
    assert cycle.pool_size == 9 and cycle.summary["selected"] == 9
    # Recompute the 9 nearest with the cycle's model, independently of the scoring step.
    model = training.load_model(cycle.model_version)
    pool = [i.pk for i in pool_of(al_project)]

    def embed(ids):
        inputs = training.read_inputs(ids, "image", model.image_size)
        return reduce_dim(model.embed(inputs), random_state=cycle.random_state)

    distance = pairwise_distances(embed(pool), embed([i.pk for i in anchors])).min(axis=1)
    expected = {pool[j] for j in np.argsort(distance, kind="stable")[:9]}
    queued = set(QueueEntry.objects.filter(project=al_project, is_active=True).values_list("item_id", flat=True))
    assert queued == expected


@pytest.mark.parametrize(
    ("restriction", "field", "message"),
    [
        ({"tag": "nope"}, "pool_restriction.tag", "this project has no tag named 'nope'"),
        (
            {"kind": "slice", "key": "ink", "value": "purple"},
            "pool_restriction.key",
            "no item of this project has the slice ink=purple",
        ),
        ({"kind": "slice", "key": "colour", "value": "red"}, "pool_restriction.key", "colour=red"),
        ({"kind": "slice", "value": "red"}, "pool_restriction.key", "the slice's key is required"),
        ({"kind": "slice", "key": "ink"}, "pool_restriction.value", "the value of slice 'ink' is required"),
        ({"kind": "shape"}, "pool_restriction.kind", 'kind must be "slice" or "tag"'),
        ({"tag": "gold-only"}, "pool_restriction", "no unlabeled train item is in tag gold-only: nothing to label"),
        ({"tag": "empty", "nearest": 5}, "pool_restriction.tag", "no item carries the tag 'empty'"),
        ({"tag": "gold-only", "nearest": 0}, "pool_restriction.nearest", "nearest must be true or a whole number"),
        ({"kind": "slice", "key": "ink", "value": "heavy", "nearest": 3}, "pool_restriction.nearest", "for a tag only"),
        ({"tag": "gold-only", "colour": 1}, "pool_restriction.colour", "unknown option 'colour'"),
        ("tag:x", "pool_restriction", "must be an object"),
    ],
)
@pytest.mark.django_db
def test_bad_restrictions_name_the_field_and_create_nothing(al_project, restriction, field, message):
    tag(al_project, "gold-only", list(al_project.items.order_by("pk")[:3]))
    Tag.objects.create(project=al_project, name="empty")
    with pytest.raises(services.CycleError, match=re.escape(message)) as caught:
        services.launch(al_project, strategy="mix", batch_size=5, pool_restriction=restriction)
    assert caught.value.field == field
    assert not Cycle.objects.exists()


@pytest.mark.django_db
def test_api_launch_with_a_restriction_and_its_400s(api_as, al_project, mle, sme, outsider):
    tag(al_project, "blurry", pool_of(al_project)[:3])
    url = reverse("cycles_api:project-cycles", args=[al_project.pk])
    bad = api_as(mle).post(url, {"batch_size": 5, "pool_restriction": {"tag": "nope"}}, format="json")
    assert bad.status_code == 400 and "no tag named 'nope'" in bad.data["pool_restriction.tag"][0]
    assert api_as(outsider).post(url, {"pool_restriction": {"tag": "blurry"}}, format="json").status_code == 404
    response = api_as(mle).post(url, {"batch_size": 5, "pool_restriction": {"tag": "blurry"}}, format="json")
    assert response.status_code == 202, response.data
    assert response.data["pool_restriction"] == {"kind": "tag", "tag": "blurry"}
    assert response.data["restricted_to"] == "tag blurry"
    detail = api_as(sme).get(reverse("cycles_api:cycle-detail", args=[response.data["id"]])).data
    assert detail["pool_restriction"] == {"kind": "tag", "tag": "blurry"}
    services.cancel(Cycle.objects.get(pk=response.data["id"]))
    near = api_as(mle).post(
        url, {"batch_size": 5, "pool_restriction": {"tag": "blurry", "nearest": True}}, format="json"
    )
    assert near.status_code == 202, near.data
    assert near.data["pool_restriction"] == {"kind": "tag", "tag": "blurry", "nearest": 25}  # five per batch item
    assert near.data["restricted_to"] == "the 25 unlabeled items nearest to tag blurry"


@pytest.mark.django_db
def test_the_page_button_launches_and_the_cycle_page_shows_the_restriction(client, al_project, mle, sme, outsider):
    from active_learning.models import Cycle as C

    version = trained(al_project)
    url = reverse("training:model-work-next-launch", args=[al_project.slug, version.short_id])
    client.force_login(outsider)
    assert client.post(url, {"key": "ink", "value": "heavy"}).status_code == 404
    client.force_login(sme)
    assert client.post(url, {"key": "ink", "value": "heavy"}).status_code == 403
    client.force_login(mle)
    refused = client.post(url, {"key": "tag:nope", "value": "yes"}, follow=True)
    assert "no tag named &#x27;nope&#x27;" in refused.content.decode() and not C.objects.exists()
    response = client.post(url, {"key": "ink", "value": "heavy"})
    cycle = C.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/cycles/{cycle.number}/")
    assert (
        cycle.pool_restriction == {"kind": "slice", "key": "ink", "value": "heavy"} and cycle.trainer == version.trainer
    )
    page = client.get(response.url).content.decode()
    assert 'data-testid="pool-restriction"' in page and "<b>ink=heavy</b>" in page
    listing = client.get(reverse("cycles:cycle-list", args=[al_project.slug])).content.decode()
    assert 'data-cell="restriction">only ink=heavy</span>' in listing


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_tag_and_slice_cycles_that_queue_only_their_items(api_as, al_project, mle, settings):
    """Launched through the API, consumed by a Celery worker (solo pool, in a thread) from the
    configured broker on a queue of its own."""
    from uuid import uuid4

    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    queue = f"concord-test-worknext-{uuid4().hex[:8]}"
    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "QUEUE": queue}
    pool = pool_of(al_project)
    tag(al_project, "blurry", pool[:4] + list(al_project.items.order_by("pk")[:2]))
    light = {i.pk for i in pool if i.metadata["ink"] == "light"}
    url = reverse("cycles_api:project-cycles", args=[al_project.pk])
    results = []
    with start_worker(app, perform_ping_check=False, pool="solo", queues=[queue], loglevel="WARNING"):
        for restriction in ({"kind": "tag", "tag": "blurry"}, {"kind": "slice", "key": "ink", "value": "light"}):
            response = api_as(mle).post(url, {"batch_size": 100, "pool_restriction": restriction}, format="json")
            assert response.status_code == 202, response.data
            cycle = Cycle.objects.get(pk=response.data["id"])
            deadline = time.monotonic() + 240
            while cycle.is_active and time.monotonic() < deadline:
                time.sleep(0.5)
                cycle.refresh_from_db()
            assert cycle.status == "done", cycle.error or f"still {cycle.stage}"
            results.append(
                set(QueueEntry.objects.filter(project=al_project, is_active=True).values_list("item_id", flat=True))
            )
    assert results[0] == {i.pk for i in pool[:4]}
    assert results[1] == light  # the tag cycle's unlabelled entries gave way to the newer batch


@pytest.mark.django_db
def test_a_real_tflite_export_reports_parity_for_a_tag(project, settings):
    """A small Keras CNN (TensorFlow, in this process) exported to float32: its parity block has the
    tag as a slice with the tagged dev items, beside the metadata slices."""
    from training import exports
    from training.tasks import export_model

    settings.CONCORD_TRAINING = {**settings.CONCORD_TRAINING, "CV_BELOW_LABELS": 10}
    items = add_digit_items(project, 60)
    dev = [i for i in items if i.split == "dev"]
    tag(project, "glare", dev[:5] + items[:2])
    version = ModelVersion.objects.create(
        project=project,
        trainer="keras_cnn",
        hyperparameters=training.check_hyperparameters(
            "keras_cnn", {"epochs": 2, "image_size": 16, "filters": 8, "batch_size": 8, "augment": 0.0}
        ),
        policy=training.check_policy(None),
    )
    assert training.run_training(version.pk) == "ready", ModelVersion.objects.get(pk=version.pk).error
    version.refresh_from_db()
    export = exports.start_export(version, "float32", queue_task=False)
    assert export_model(export.pk) == "ready"
    export.refresh_from_db()
    slices = {s["slice"]: s for s in export.parity["slices"]}
    assert slices["tag:glare=yes"]["n"] == 5
    assert {name for name in slices if name.startswith("ink=")} and len(dev) == 12
    glare = slices["tag:glare=yes"]
    assert glare["delta"] == pytest.approx(glare["tflite_accuracy"] - glare["keras_accuracy"])


@pytest.mark.django_db
def test_tags_cost_one_query_however_many_items_carry_them(project, django_assert_num_queries):
    from training.evaluation import _project_slice_shares

    items = add_digit_items(project, 30, gold=False)
    tag(project, "a", items[:5])
    with django_assert_num_queries(2):  # the tags, then the items
        few = _project_slice_shares(project, 50, tag_metadata(project.pk))
    tag(project, "b", items[5:30])
    tag(project, "c", items)
    with django_assert_num_queries(2):
        many = _project_slice_shares(project, 50, tag_metadata(project.pk))
    assert few[("tag:a", "yes")] == pytest.approx(5 / 30)
    assert many[("tag:b", "yes")] == pytest.approx(25 / 30) and many[("tag:c", "yes")] == pytest.approx(1.0)
